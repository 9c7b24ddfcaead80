"""``bench check``: compare reproduced pAUC values with the published ones, cell by cell.

Reads ``RESULTS/pauc.csv`` (latest row per identity, :func:`bench.results.table.latest_per_identity`),
maps registered names to the paper's printed names through the cards, and classifies every
published cell as ``match`` (within the tolerance), ``drift`` (outside it) or ``not
reproduced`` (no result). Only rows of the paper's protocol (:func:`bench.results.table.paper_rows`)
are compared; every other row is listed as ``other protocol (<what differs>)`` and never set
against a published value. It only reads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.cards import paper_name
from bench.results.published import load_pauc
from bench.results.table import (
    DEFAULT_EDC_VARIANT,
    PAPER_SETTINGS,
    latest_per_identity,
    paper_rows,
    protocol_differences,
    read_pauc_csv,
)

KEY = ["discard", "fr", "method", "dataset"]
DEFAULT_TOL = 0.0005
# Status prefix of rows run with settings other than the paper's: listed, never compared.
OTHER_PROTOCOL = "other protocol"
# Status of a paper-protocol cell whose reproduced pAUC is undefined (its pauc_note says why).
UNDEFINED = "undefined"
# ``note``: why the reproduced pAUC is undefined ("" when it is a number).
COLUMNS = [*KEY, "reproduced", "published", "delta", "status", "note"]
UNDEFINED_LISTED = 5  # cells named in the "undefined" line; the rest are counted


def load_results(results: Path) -> pd.DataFrame:
    """Every identity's latest pAUC row of ``results/pauc.csv`` (``attrs["assumed"]`` kept)."""
    return latest_per_identity(read_pauc_csv(Path(results)))


def assumed_note(frame: pd.DataFrame, edc_variant: str = DEFAULT_EDC_VARIANT) -> str:
    """One line saying a published-columns-only file was read as the paper's protocol, else ``""``."""
    if not frame.attrs.get("assumed"):
        return ""
    settings = (f"all folds, FMR {PAPER_SETTINGS['fmr']:g}, quality rule {PAPER_SETTINGS['quality_rule']}, "
                f"template rule {PAPER_SETTINGS['template_rule']}, the paper's quality FR model, default options, "
                f"EDC {DEFAULT_EDC_VARIANT}")
    line = f"pauc.csv has only the published columns: read as the paper's protocol ({settings})"
    if edc_variant != DEFAULT_EDC_VARIANT:
        line += f"; --edc-variant {edc_variant} therefore compares none of its rows"
    return line


def to_paper_names(frame: pd.DataFrame) -> pd.DataFrame:
    """Registered names → printed names (``diffiqa`` → ``DifFIQA``, ``cfp-fp`` → ``CFP-FP``)."""
    out = frame.copy()
    out["method"] = out["method"].map(lambda n: paper_name("method", n))
    out["dataset"] = out["dataset"].map(lambda n: paper_name("dataset", n))
    return out


def compare_published(results: pd.DataFrame, tol: float = DEFAULT_TOL, source: str = "diffiqa_ijcb2023",
                      edc_variant: str = DEFAULT_EDC_VARIANT) -> pd.DataFrame:
    """One row per published cell, per extra paper-protocol cell, and per other-protocol row.

    ``results`` is a pauc.csv frame (:func:`load_results`). Columns: discard, fr, method,
    dataset, reproduced, published, delta, status, note where status is match / drift / not
    reproduced / no published value / undefined for the paper's protocol (``edc_variant``
    being the variant compared), and ``other protocol (<what differs>)`` for the rest: those
    rows carry no published value and no delta, whatever cell they resemble. A reproduced
    pAUC that is undefined (NaN, its ``pauc_note`` in ``note``) is never compared.
    """
    pub = load_pauc(source).rename(columns={"pauc": "published"})
    pub = pub[pub["dataset"] != "mean"]
    rep = to_paper_names(paper_rows(results, edc_variant))[[*KEY, "pauc", "pauc_note"]]
    rep = rep.rename(columns={"pauc": "reproduced", "pauc_note": "note"})
    rep["discard"] = rep["discard"].astype(float).round(4)
    pub["discard"] = pub["discard"].astype(float).round(4)
    merged = pub.merge(rep, on=KEY, how="outer")
    merged["note"] = merged["note"].fillna("").astype(str)
    merged["delta"] = merged["reproduced"] - merged["published"]
    merged["status"] = np.select(
        [merged["note"] != "", merged["published"].isna() & merged["reproduced"].notna(), merged["reproduced"].isna(),
         merged["delta"].abs() <= tol + 1e-12],
        [UNDEFINED, "no published value", "not reproduced", "match"], default="drift")
    merged = merged.sort_values(KEY).reset_index(drop=True)[COLUMNS]
    differs = protocol_differences(results, edc_variant)
    other = to_paper_names(results[(differs != "").to_numpy()])
    other = pd.DataFrame({
        **{k: other[k].to_numpy() for k in KEY}, "reproduced": other["pauc"].to_numpy(),
        "published": np.nan, "delta": np.nan,
        "status": [f"{OTHER_PROTOCOL} ({d})" for d in differs[differs != ""]],
        "note": other["pauc_note"].astype(str).to_numpy(),
    }, columns=COLUMNS)
    other["discard"] = other["discard"].astype(float).round(4)
    other = other.sort_values([*KEY, "status"], kind="stable")
    return pd.concat([merged, other], ignore_index=True) if not other.empty else merged


def exit_code(table: pd.DataFrame, strict: bool) -> int:
    """1 on any drift (and, with ``strict``, on any published cell not reproduced)."""
    if (table["status"] == "drift").any():
        return 1
    if strict and ((table["status"] == "not reproduced") & table["published"].notna()).any():
        return 1
    return 0


def status_counts(table: pd.DataFrame) -> dict[str, int]:
    """Rows per status, every ``other protocol (...)`` counted under ``other protocol``."""
    kinds = table["status"].map(lambda s: OTHER_PROTOCOL if s.startswith(OTHER_PROTOCOL) else s)
    return {k: int(v) for k, v in sorted(kinds.value_counts().items())}


def format_table(table: pd.DataFrame, show_not_reproduced: bool = False) -> str:
    """Plain-text drift table plus a status count line."""
    shown = table if show_not_reproduced else table[table["status"] != "not reproduced"]
    lines = [f"{'discard':>7}  {'fr':<15} {'method':<12} {'dataset':<10} {'reproduced':>10} {'published':>9} {'delta':>8}  status"]
    for r in shown.itertuples(index=False):
        rep = "n/a" if r.note else "" if pd.isna(r.reproduced) else f"{r.reproduced:.4f}"
        pub = "" if r.status.startswith(OTHER_PROTOCOL) else "n/a" if pd.isna(r.published) else f"{r.published:.3f}"
        delta = "" if pd.isna(r.delta) else f"{r.delta:+.4f}"
        lines.append(f"{r.discard:>7}  {r.fr:<15} {r.method:<12} {r.dataset:<10} {rep:>10} {pub:>9} {delta:>8}  {r.status}")
    lines.append("; ".join(f"{k}: {v}" for k, v in status_counts(table).items()))
    undefined = undefined_line(table)
    return "\n".join([*lines, undefined] if undefined else lines)


def undefined_line(table: pd.DataFrame) -> str:
    """``"2 cells undefined (not compared): <cell>: <why>; ..."``, or ``""`` when every pAUC is a number.

    Counts every row with a ``note``, of the paper's protocol or not; names the first few.
    """
    rows = table[table["note"] != ""]
    if rows.empty:
        return ""
    named = [f"{r.discard:g} {r.fr} {r.method} {r.dataset}: {r.note}" for r in rows.head(UNDEFINED_LISTED).itertuples()]
    more = f"; and {len(rows) - UNDEFINED_LISTED} more" if len(rows) > UNDEFINED_LISTED else ""
    return f"{len(rows)} cell{'s' if len(rows) != 1 else ''} undefined (not compared): {'; '.join(named)}{more}"

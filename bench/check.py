"""``bench check``: compare reproduced pAUC values with the published ones, cell by cell.

Reads ``RESULTS/pauc.csv`` (latest run per cell wins), maps registered names to the paper's
printed names through the cards, and classifies every published cell as ``match`` (within
the tolerance), ``drift`` (outside it) or ``not reproduced`` (no result). It only reads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.cards import paper_name
from bench.published import load_pauc
from bench.results import read_pauc_csv

KEY = ["discard", "fr", "method", "dataset"]
DEFAULT_TOL = 0.0005


def load_results(results: Path, edc_variant: str | None = "fixed-threshold") -> pd.DataFrame:
    """The latest pAUC row per (discard, fr, method, dataset[, variant]) of a results folder."""
    frame = read_pauc_csv(Path(results))
    if edc_variant is not None:
        frame = frame[frame["edc_variant"] == edc_variant]
    frame = frame.drop_duplicates(subset=[*KEY, "edc_variant"], keep="last")
    return frame.reset_index(drop=True)


def to_paper_names(frame: pd.DataFrame) -> pd.DataFrame:
    """Registered names → printed names (``diffiqa`` → ``DifFIQA``, ``cfp-fp`` → ``CFP-FP``)."""
    out = frame.copy()
    out["method"] = out["method"].map(lambda n: paper_name("method", n))
    out["dataset"] = out["dataset"].map(lambda n: paper_name("dataset", n))
    return out


def compare_published(results: pd.DataFrame, tol: float = DEFAULT_TOL, source: str = "diffiqa_ijcb2023") -> pd.DataFrame:
    """One row per published cell (and per extra reproduced cell) with its status.

    Columns: discard, fr, method, dataset, reproduced, published, delta, status where status
    is match / drift / not reproduced / no published value.
    """
    pub = load_pauc(source).rename(columns={"pauc": "published"})
    pub = pub[pub["dataset"] != "mean"]
    rep = to_paper_names(results)[KEY + ["pauc"]].rename(columns={"pauc": "reproduced"})
    rep["discard"] = rep["discard"].astype(float).round(4)
    pub["discard"] = pub["discard"].astype(float).round(4)
    merged = pub.merge(rep, on=KEY, how="outer")
    merged["delta"] = merged["reproduced"] - merged["published"]
    status = np.select(
        [merged["published"].isna() & merged["reproduced"].notna(), merged["reproduced"].isna(),
         merged["delta"].abs() <= tol + 1e-12],
        ["no published value", "not reproduced", "match"], default="drift")
    merged["status"] = status
    return merged.sort_values(KEY).reset_index(drop=True)


def exit_code(table: pd.DataFrame, strict: bool) -> int:
    """1 on any drift (and, with ``strict``, on any published cell not reproduced)."""
    if (table["status"] == "drift").any():
        return 1
    if strict and ((table["status"] == "not reproduced") & table["published"].notna()).any():
        return 1
    return 0


def format_table(table: pd.DataFrame, show_not_reproduced: bool = False) -> str:
    """Plain-text drift table plus a status count line."""
    shown = table if show_not_reproduced else table[table["status"] != "not reproduced"]
    lines = [f"{'discard':>7}  {'fr':<15} {'method':<12} {'dataset':<10} {'reproduced':>10} {'published':>9} {'delta':>8}  status"]
    for r in shown.itertuples(index=False):
        rep = "" if pd.isna(r.reproduced) else f"{r.reproduced:.4f}"
        pub = "n/a" if pd.isna(r.published) else f"{r.published:.3f}"
        delta = "" if pd.isna(r.delta) else f"{r.delta:+.4f}"
        lines.append(f"{r.discard:>7}  {r.fr:<15} {r.method:<12} {r.dataset:<10} {rep:>10} {pub:>9} {delta:>8}  {r.status}")
    counts = table["status"].value_counts()
    lines.append("; ".join(f"{k}: {int(v)}" for k, v in sorted(counts.items())))
    return "\n".join(lines)

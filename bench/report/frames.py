"""Read a results directory (docs/RESULTS_FORMAT.md) and the published tables into tidy frames.

Everything downstream (tables, figures) is a pure function of these frames; nothing here
recomputes an EDC curve. Names are mapped to the paper's printed names on the way in so
reproduced and published rows share one key: ``(discard, fr, method, dataset)``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from bench.core.cards import load_cards, registered_name
from bench.core.errors import DataError
from bench.report.names import card_name, fr_name
from bench.results import published
from bench.results.table import (
    ALL_FOLDS,
    PAPER_FMR,
    PAPER_SETTINGS,
    latest_per_identity,
    paper_quality_fr,
    read_pauc_csv,
    read_run_record,
)
from bench.stats.bootstrap import INTERVALS
from bench.stats.edc import VARIANTS, best_pauc, floor_relative_pauc

KEY: list[str] = ["discard", "fr", "method", "dataset"]
# The value a pAUC table shows: the pAUC itself, its distance from the cell's theoretical best
# (Schlett et al.'s "area under theoretical best") as a share of what discarding can gain, or the
# author scripts' AUC (CR-FIQA's ERC convention), so a cell can be set beside those papers' numbers.
METRICS: tuple[str, ...] = ("pauc", "floor-relative", "author-scripts")
RERUN_AUTHOR_AUC = ("no author scripts' AUC in this run's record (run before fiqa-bench recorded it): rerun the cell "
                    "to get it")
UNDEFINED_AUTHOR_AUC = "author scripts' AUC undefined: no non-mated comparison left at some discard step up to 0.95"
FLOOR_VARIANT = "fixed-threshold"  # best_pauc bounds the fixed-threshold EDC only
MEAN = published.MEAN_COLUMN
NOT_RUN_FILE = "not_run.json"
WILDCARD = "*"

# Table 4: registered ablation methods -> the paper's variant ids (the rows of Table 4).
ABLATION_VARIANTS: dict[str, str] = {
    "diffiqa-noflip": "A1",
    "diffiqa-noforward": "A2",
    "diffiqa-t20": "A3",
    "diffiqa": "complete",
}
ABLATION_DATASETS: tuple[str, ...] = ("LFW", "CPLFW", "CALFW", "XQLFW")
ABLATION_FR = "cosface"
# Table 3 and Table 8 were timed over XQLFW; prefer a run on it when there is one.
RUNTIME_DATASET = "XQLFW"
# runs json ``runtime_breakdown`` keys -> published Table 8 step ids, in printed order.
BREAKDOWN_STEPS: dict[str, str] = {
    "init": "initialization",
    "forward": "forward",
    "backward": "backward",
    "fr": "embedding",
    "score": "quality",
}
DIFFIQA = "diffiqa"

Reasons = Mapping[tuple[str, str, str], str]
EVALUATION_FR = "the evaluating FR model"


def printed_fr(name: str, sha256: str | None = None) -> str:
    """FR key as used by the published tables: lower-case ids (``arcface``); an FR model that
    is not the paper's keeps its display name (:func:`bench.report.names.fr_name`)."""
    card = load_cards("fr").get(name)
    if card is not None and card.get("paper_name"):
        return card.paper_name.lower()
    return fr_name(name, sha256)


def choose_variant(variants: list[str], wanted: str | None, path: Path) -> str:
    """The EDC variant to report: ``wanted``, else the harness default if present."""
    if wanted is not None:
        if wanted not in variants:
            raise DataError(f"{path}: no rows with edc_variant {wanted!r} (present: {', '.join(variants)})")
        return wanted
    for variant in VARIANTS:
        if variant in variants:
            return variant
    return min(variants)


def evaluation_differences(row: Any, edc_variant: str) -> str:
    """What of a row's *evaluation* (the comparisons and how they are scored) differs from the
    paper's: EDC variant, FMR, folds, quality and template rule ("" = the paper's settings).

    Rows with equal evaluations (and FR model, dataset) are scored on the same comparisons at
    the same threshold: they share a table column, a plot panel and paired tests.
    """
    parts: list[str] = []
    if row.edc_variant != edc_variant:
        parts.append(f"EDC {row.edc_variant}")
    if not math.isclose(float(row.fmr), PAPER_FMR, rel_tol=1e-9):
        parts.append(f"FMR {float(row.fmr):g}")
    if row.folds != ALL_FOLDS:
        parts.append(f"folds {row.folds}")
    if row.quality_rule != PAPER_SETTINGS["quality_rule"]:
        parts.append(f"quality rule {row.quality_rule}")
    if row.template_rule != PAPER_SETTINGS["template_rule"]:
        parts.append(f"template rule {row.template_rule}")
    return "; ".join(parts)


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def configuration_differences(method: str, fr: str, quality_fr: str, method_options: str,
                              names: Mapping[str, str] | None = None, paper: bool = True) -> str:
    """What of a method's *configuration* differs from the paper's: its quality FR model and its
    non-default options, e.g. ``quality FR dlib-torch (paper: CosFace); repeats = 1 (paper: 10)``.

    ``names`` maps FR names to printed ones; ``paper`` False leaves the "(paper: ...)" parts out
    (a row label telling two configurations apart).
    """
    names = names or {}
    parts: list[str] = []
    wanted = paper_quality_fr(method, fr)
    if quality_fr != wanted:
        shown = names.get(quality_fr, fr_name(quality_fr))
        # A method whose card names no quality FR model uses the one that evaluates: say so, not its name.
        paper_fr = EVALUATION_FR if wanted == fr else names.get(wanted, fr_name(wanted))
        parts.append(f"quality FR {shown}" + (f" (paper: {paper_fr})" if paper else ""))
    try:
        options = json.loads(method_options) if method_options not in ("", "{}") else {}
    except json.JSONDecodeError:
        options = {"method options": method_options}
    card = load_cards("method").get(method)
    declared = (card.get("options") or {}) if card is not None else {}
    for key in sorted(options):
        default = declared.get(key, {}).get("default") if isinstance(declared.get(key), dict) else None
        parts.append(f"{key} = {_value(options[key])}"
                     + (f" (paper: {_value(default)})" if paper and default is not None else ""))
    return "; ".join(parts)


def _weights_hashes(results: Path, run_ids: list[str]) -> dict[str, tuple[str | None, str | None]]:
    """Per run: the sha256 of its FR model's weights and of its quality FR model's (None unknown)."""
    out: dict[str, tuple[str | None, str | None]] = {}
    for run_id in sorted(set(run_ids)):
        path = results / "runs" / f"{run_id}.json"
        record = read_run_record(path) if path.is_file() else {}
        fr_hash = (record.get("fr_provenance") or {}).get("fr_weights_sha256")
        quality_hash = (record.get("score_provenance") or {}).get("quality_fr_weights_sha256")
        out[run_id] = (fr_hash, quality_hash)
    return out


def results_pauc(results: Path, discard: float, edc_variant: str | None = None) -> tuple[pd.DataFrame, str]:
    """Tidy reproduced pAUC at ``discard``: one row per identity (every seed), the latest run winning.

    Returns the frame and the EDC variant taken as the paper's protocol. Columns: printed
    names in ``fr`` (key of the published tables, :func:`printed_fr`), ``method``, ``dataset``
    and ``quality_fr``; registered ones in ``*_id``; ``pauc``, ``pauc_lo``/``pauc_hi`` (NaN
    when no interval was computed), ``pauc_note`` (why a pAUC is undefined), the evaluation
    columns (``edc_variant``, ``fmr``, ``folds``, ``quality_rule``, ``template_rule``,
    ``fr_options``) and ``setting`` (:func:`evaluation_differences`), the configuration
    columns (``method_options``, ``seed``) and ``config`` (:func:`configuration_differences`;
    ``config_short`` without the paper's values),
    ``differs`` (both: ``""`` for the paper's protocol), ``n_mated``, ``n_nonmated``,
    ``run_id``, ``note`` (comparison counts unlike the paper's), ``replicates``, ``best`` (the
    theoretical best pAUC from the run record, nan without one), ``best_note`` (why nan), and from
    the run record ``fmr_support`` (its dict, None in a record without it), ``author_scripts_auc``
    (nan when absent or undefined), ``author_scripts_note`` (why nan) and ``interval_method``
    (``percentile`` or ``bca``: how the run read its interval; "" without one).
    ``attrs["assumed"]`` lists the columns a published-columns-only file lacked
    (:func:`bench.results.table.read_pauc_csv`).
    """
    path = results / "pauc.csv"
    raw = read_pauc_csv(results)
    rows = raw[np.isclose(raw["discard"], discard, rtol=0, atol=1e-9)]
    if rows.empty:
        present = ", ".join(f"{d:g}" for d in sorted(raw["discard"].unique()))
        raise DataError(f"{path}: no rows at discard {discard:g} (present: {present or 'none'})")
    variant = choose_variant(sorted(rows["edc_variant"].unique()), edc_variant, path)
    rows = latest_per_identity(rows).reset_index(drop=True)
    hashes = _weights_hashes(results, list(rows["run_id"]))
    fr_names = {fr: fr_name(fr, hashes[r][0]) for fr, r in zip(rows["fr"], rows["run_id"], strict=True)}
    for quality_fr, r, fr in zip(rows["quality_fr"], rows["run_id"], rows["fr"], strict=True):
        fr_names.setdefault(quality_fr, fr_name(quality_fr, hashes[r][0] if quality_fr == fr else hashes[r][1]))
    setting = [evaluation_differences(r, variant) for r in rows.itertuples(index=False)]
    configs = list(zip(rows["method"], rows["fr"], rows["quality_fr"], rows["method_options"], strict=True))
    config = [configuration_differences(*c, fr_names) for c in configs]
    config_short = [configuration_differences(*c, fr_names, paper=False) for c in configs]
    fr_options = ["" if o in ("", "{}") else f"FR options {o}" for o in rows["fr_options"]]
    differs = ["; ".join(p for p in parts if p) for parts in zip(setting, config, fr_options, strict=True)]
    notes = rows["pauc_note"] if "pauc_note" in rows.columns else pd.Series("", index=rows.index)
    tidy = pd.DataFrame(
        {
            "discard": float(discard),
            "fr": [printed_fr(n, hashes[r][0]) for n, r in zip(rows["fr"], rows["run_id"], strict=True)],
            "method": [card_name("method", n) for n in rows["method"]],
            "dataset": [card_name("dataset", n) for n in rows["dataset"]],
            "quality_fr": [fr_names[q] for q in rows["quality_fr"]],
            **{c: rows[c].to_numpy() for c in ("pauc", "pauc_lo", "pauc_hi", "edc_variant", "fmr", "folds",
                                               "quality_rule", "template_rule", "fr_options", "method_options",
                                               "seed", "n_mated", "n_nonmated", "run_id")},
            "pauc_note": notes.fillna("").astype(str).to_numpy(),
            "setting": setting,
            "config": config,
            "config_short": config_short,
            "differs": differs,
            "fr_id": rows["fr"].to_numpy(),
            "method_id": rows["method"].to_numpy(),
            "dataset_id": rows["dataset"].to_numpy(),
            "quality_fr_id": rows["quality_fr"].to_numpy(),
        }
    )
    tidy["note"] = cell_notes(tidy)
    tidy["replicates"] = [_replicates(results, run_id, discard) for run_id in tidy["run_id"]]
    floors = [_theoretical_best(results, r, discard, v) for r, v in zip(tidy["run_id"], tidy["edc_variant"], strict=True)]
    tidy["best"] = [b for b, _ in floors]
    tidy["best_note"] = [n for _, n in floors]
    extras = [_record_extras(results, r) for r in tidy["run_id"]]
    tidy["fmr_support"] = [support for support, _, _, _ in extras]
    tidy["author_scripts_auc"] = [auc for _, auc, _, _ in extras]
    tidy["author_scripts_note"] = [note for _, _, note, _ in extras]
    tidy["interval_method"] = [method for *_, method in extras]
    tidy = tidy.sort_values(["differs", "fr", "method", "dataset", "seed"], kind="stable").reset_index(drop=True)
    tidy.attrs["assumed"] = raw.attrs["assumed"]
    return tidy, variant


def _theoretical_best(results: Path, run_id: str, discard: float, edc_variant: str) -> tuple[float, str]:
    """(the run's theoretical best pAUC at ``discard``, why it is nan or ""), from the FNMR at
    discard 0 and the mated count its run record holds (:func:`bench.stats.edc.best_pauc`)."""
    if edc_variant != FLOOR_VARIANT:
        return math.nan, f"no theoretical best for the {edc_variant} EDC (it bounds the {FLOOR_VARIANT} one)"
    path = results / "runs" / f"{run_id}.json"
    record = read_run_record(path) if path.is_file() else {}
    fnmr0, n_mated = record.get("fnmr_at_0"), record.get("n_mated")
    if not isinstance(fnmr0, int | float) or not isinstance(n_mated, int | float):
        return math.nan, "no run record with fnmr_at_0 and n_mated: no theoretical best"
    try:
        best = best_pauc(float(fnmr0), int(n_mated), discard)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from exc
    return best, "" if math.isfinite(best) else "FNMR is 0 at zero discard: no theoretical best"


def _record_extras(results: Path, run_id: str) -> tuple[dict[str, Any] | None, float, str, str]:
    """(``fmr_support``, ``author_scripts_auc``, why the AUC is nan or "", how the bootstrap
    interval was read: ``percentile``, ``bca`` or "" without one) from a run's record.

    A record written before ``bench run`` stored them lacks the keys: the support is None and the
    AUC nan with :data:`RERUN_AUTHOR_AUC`; a stored null AUC is undefined (:data:`UNDEFINED_AUTHOR_AUC`).
    """
    path = results / "runs" / f"{run_id}.json"
    record = read_run_record(path) if path.is_file() else {}
    boot = record.get("bootstrap")
    method = str(boot.get("method", "percentile")) if isinstance(boot, dict) and "interval" in boot else ""
    if method not in ("", *INTERVALS):
        raise DataError(f"{path}: bootstrap method {method!r} is none of {', '.join(INTERVALS)}")
    support = record.get("fmr_support")
    if support is not None and not (isinstance(support, dict) and isinstance(support.get("n_false_matches"), int)):
        raise DataError(f"{path}: fmr_support must be an object with an integer n_false_matches")
    if "author_scripts_auc" not in record:
        return support, math.nan, RERUN_AUTHOR_AUC, method
    auc = record["author_scripts_auc"]
    if auc is None:
        return support, math.nan, UNDEFINED_AUTHOR_AUC, method
    if not isinstance(auc, int | float):
        raise DataError(f"{path}: author_scripts_auc must be a number or null, got {auc!r}")
    return support, float(auc), "", method


def author_scripts(tidy: pd.DataFrame) -> pd.DataFrame:
    """``tidy`` showing each run's author scripts' AUC (:func:`bench.stats.edc.trapezoid_auc`, read
    from its record) in place of the pAUC: no interval and no replicates (the bootstrap resampled
    the pAUC, not this AUC); a run without one reads n/a with ``author_scripts_note`` as its reason
    (a pAUC's own ``pauc_note`` does not apply: the AUC is defined where FNMR is 0 at discard 0)."""
    return tidy.assign(pauc=tidy["author_scripts_auc"], pauc_lo=math.nan, pauc_hi=math.nan, replicates=None,
                       pauc_note=tidy["author_scripts_note"], interval_method="")


def floor_relative(tidy: pd.DataFrame) -> pd.DataFrame:
    """``tidy`` in floor-relative pAUC: ``pauc``, its interval and replicates become
    ``(pAUC - best) / (1 - best)`` with the row's ``best`` (one constant per cell, so an interval
    maps end to end and paired differences keep their order); rows without a best read n/a
    with ``best_note`` as their reason."""
    out = tidy.copy()
    rel = [float(floor_relative_pauc(v, b)) for v, b in zip(out["pauc"], out["best"], strict=True)]
    for column in ("pauc_lo", "pauc_hi"):
        out[column] = [float(floor_relative_pauc(v, b)) for v, b in zip(out[column], out["best"], strict=True)]
    out["replicates"] = [Replicates(r.key, floor_relative_pauc(r.values, b)) if isinstance(r, Replicates) else None
                         for r, b in zip(out["replicates"], out["best"], strict=True)]
    out["pauc_note"] = [n or (w if math.isnan(v) else "")
                        for n, w, v in zip(out["pauc_note"], out["best_note"], rel, strict=True)]
    out["pauc"] = rel
    return out


def _stored_bootstrap(results: Path, run_id: str) -> Any:
    """The bootstrap file of one run (:class:`bench.stats.bootstrap.StoredReplicates`), None without one."""
    from bench.stats import bootstrap

    path = results / "runs" / f"{run_id}.json"
    entry = (read_run_record(path).get("bootstrap") or {}) if path.is_file() else {}
    return bootstrap.load(path.parent / entry["file"]) if "file" in entry else None


def _replicates(results: Path, run_id: str, discard: float) -> Replicates | None:
    """The stored bootstrap replicates of one run at ``discard`` (None when there are none)."""
    stored = _stored_bootstrap(results, run_id)
    if stored is None:
        return None
    column = np.flatnonzero(np.isclose(stored.discard_limits, discard, rtol=0, atol=1e-9))
    if not column.size:
        return None
    return Replicates(stored.resamples(), stored.replicates[:, int(column[0])])


class Replicates(tuple):
    """(resamples key, replicate pAUCs at one discard limit): equal keys mean the same resamples."""

    def __new__(cls, key: tuple, values: np.ndarray) -> Replicates:
        return super().__new__(cls, (key, values))

    @property
    def key(self) -> tuple:
        return self[0]

    @property
    def values(self) -> np.ndarray:
        return self[1]


def cell_notes(tidy: pd.DataFrame) -> list[str]:
    """Per row, its comparison counts where they differ from the paper's protocol.

    The paper's counts are the dataset cards' ``[table1]`` mated / non-mated comparisons;
    an unknown count (a published-columns-only file) says nothing. (Folds are part of the
    evaluation: a group's title names them.)
    """
    cards = load_cards("dataset")
    notes = []
    for row in tidy.itertuples(index=False):
        parts = []
        card = cards.get(row.dataset_id) or cards.get(registered_name("dataset", row.dataset_id) or "")
        paper = card.get("table1", {}) if card is not None else {}
        counts = (row.n_mated, row.n_nonmated)
        wanted = (paper.get("mated"), paper.get("nonmated"))
        if not any(math.isnan(c) for c in counts) and None not in wanted and tuple(map(int, counts)) != wanted:
            parts.append(f"{int(counts[0]):,} mated / {int(counts[1]):,} non-mated comparisons "
                         f"(paper {wanted[0]:,} / {wanted[1]:,})")
        notes.append("; ".join(parts))
    return notes


def add_means(frame: pd.DataFrame) -> pd.DataFrame:
    """Add a ``mean`` row per (discard, fr, method) over the datasets present with a value.

    Printed ``mean`` rows already in the frame (the paper's, from unrounded values) are kept
    as they are. ``n_datasets`` on every mean row says how many datasets it averages.
    """
    values = frame[frame["dataset"] != MEAN]
    counts = (
        values.dropna(subset=["pauc"]).groupby(["discard", "fr", "method"], sort=True)["pauc"].agg(["mean", "size"])
    )
    given = frame[frame["dataset"] == MEAN].set_index(["discard", "fr", "method"])
    rows = []
    for key, row in counts.iterrows():
        pauc = float(given.loc[key, "pauc"]) if key in given.index else float(row["mean"])
        rows.append({"discard": key[0], "fr": key[1], "method": key[2], "dataset": MEAN, "pauc": pauc, "n_datasets": int(row["size"])})
    means = pd.DataFrame(rows, columns=["discard", "fr", "method", "dataset", "pauc", "n_datasets"])
    return pd.concat([values.assign(n_datasets=np.nan), means], ignore_index=True)


def averages(frame: pd.DataFrame, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """Tables 6/7: per method, the mean over FR models of the per-FR ``mean`` (``n_fr`` of them).

    With ``reference`` (published pAUC cells at the same discard), ``comparable`` says whether
    a method's average covers the same FR models and as many datasets per FR model as the
    published one: only then is a difference to the published average meaningful.
    """
    means = frame[(frame["dataset"] == MEAN) & frame["pauc"].notna()]
    out = means.groupby(["discard", "method"], sort=True)["pauc"].agg(["mean", "size"]).reset_index()
    out = out.rename(columns={"mean": "pauc", "size": "n_fr"})
    if reference is None:
        return out.assign(comparable=True)
    cells = reference[(reference["dataset"] != MEAN) & reference["pauc"].notna()]
    expected = cells.groupby(["method", "fr"])["dataset"].nunique()
    covered = means.set_index(["method", "fr"])["n_datasets"]
    out["comparable"] = [
        m in expected.index.get_level_values(0)
        and set(means.loc[means["method"] == m, "fr"]) == set(expected.loc[m].index)
        and all(covered.get((m, fr), 0) >= n for fr, n in expected.loc[m].items())
        for m in out["method"]
    ]
    return out


def published_pauc(source: str, discard: float) -> pd.DataFrame:
    """Published pAUC (with the paper's mean rows) at ``discard``; empty if not reported."""
    frame = published.load_pauc(source)
    return frame[np.isclose(frame["discard"], discard, rtol=0, atol=1e-9)].reset_index(drop=True)


def published_averages(source: str, discard: float) -> pd.DataFrame:
    """Published Table 6/7 row at ``discard`` (columns discard, method, pauc)."""
    frame = published.load_table("table6_7_average", source)
    return frame[np.isclose(frame["discard"], discard, rtol=0, atol=1e-9)].reset_index(drop=True)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read JSON ({exc})") from exc


def load_runs(results: Path) -> pd.DataFrame:
    """One row per ``runs/<run_id>.json`` (sorted by file name), printed names added."""
    rows = []
    for path in sorted((results / "runs").glob("*.json")):
        if path.name == NOT_RUN_FILE:
            continue
        meta = _read_json(path)
        missing = [k for k in ("run_id", "method", "fr", "dataset") if k not in meta]
        if not isinstance(meta, dict) or missing:
            raise DataError(f"{path}: run metadata lacks {', '.join(missing) or 'an object'}")
        rows.append(
            {
                "run_id": str(meta["run_id"]),
                "created": str(meta.get("created", "")),
                "method_id": meta["method"],
                "dataset_id": meta["dataset"],
                "fr_id": meta["fr"],
                "method": card_name("method", meta["method"]),
                "dataset": card_name("dataset", meta["dataset"]),
                "fr": printed_fr(meta["fr"], (meta.get("fr_provenance") or {}).get("fr_weights_sha256")),
                "seconds_per_image_mean": _float(meta.get("seconds_per_image_mean")),
                "seconds_per_image_std": _float(meta.get("seconds_per_image_std")),
                "device": str(meta.get("device") or "unknown device"),
                "runtime_breakdown": meta.get("runtime_breakdown") or {},
            }
        )
    columns = ["run_id", "created", "method_id", "dataset_id", "fr_id", "method", "dataset", "fr",
               "seconds_per_image_mean", "seconds_per_image_std", "device", "runtime_breakdown"]
    return pd.DataFrame(rows, columns=columns)


def _float(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


def _latest_per_method(runs: pd.DataFrame) -> pd.DataFrame:
    """Per method the newest run, preferring the dataset the paper timed on (XQLFW)."""
    ranked = runs.assign(_pref=(runs["dataset"] == RUNTIME_DATASET).astype(int))
    ranked = ranked.sort_values(["method", "_pref", "created", "run_id"], kind="stable")
    return ranked.drop_duplicates("method", keep="last").drop(columns="_pref").reset_index(drop=True)


def runtime_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """Table 3 from runs: method, mean_ms, std_ms, device, dataset (one run per method)."""
    timed = runs[runs["seconds_per_image_mean"].notna()]
    latest = _latest_per_method(timed)
    return pd.DataFrame(
        {
            "method": latest["method"],
            "mean_ms": latest["seconds_per_image_mean"] * 1000.0,
            "std_ms": latest["seconds_per_image_std"] * 1000.0,
            "device": latest["device"],
            "dataset": latest["dataset"],
        }
    )


def breakdown_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """Table 8 from the newest DifFIQA run with a ``runtime_breakdown`` (empty if none).

    Columns step, mean_ms, std_ms, device, dataset; the ``total`` row is the run's measured
    time per image (timed around the whole call, like the paper's separately timed sum).
    """
    columns = ["step", "mean_ms", "std_ms", "device", "dataset"]
    timed = runs[(runs["method_id"] == DIFFIQA) & runs["runtime_breakdown"].map(bool)]
    if timed.empty:
        return pd.DataFrame(columns=columns)
    run = _latest_per_method(timed).iloc[0]
    rows = []
    for key, step in BREAKDOWN_STEPS.items():
        value = run["runtime_breakdown"].get(key)
        if value is None:
            continue
        if not (isinstance(value, list | tuple) and len(value) == 2):
            raise DataError(f"run {run['run_id']}: runtime_breakdown[{key!r}] must be [mean_ms, std_ms]")
        rows.append([step, float(value[0]), float(value[1]), run["device"], run["dataset"]])
    rows.append(["total", run["seconds_per_image_mean"] * 1000.0, run["seconds_per_image_std"] * 1000.0,
                 run["device"], run["dataset"]])
    return pd.DataFrame(rows, columns=columns)


def ablation_frame(tidy: pd.DataFrame, labels: Mapping[str, str]) -> pd.DataFrame:
    """Table 4 rows (variant, label, dataset, pauc) from reproduced CosFace pAUC rows.

    ``labels`` maps variant ids to printed row names; the mean is over the four datasets.
    """
    rows = tidy[tidy["method_id"].isin(list(ABLATION_VARIANTS)) & (tidy["fr"] == ABLATION_FR)]
    rows = rows[rows["dataset"].isin(ABLATION_DATASETS)]
    out = pd.DataFrame(
        {
            "variant": [ABLATION_VARIANTS[m] for m in rows["method_id"]],
            "dataset": rows["dataset"].to_numpy(),
            "pauc": rows["pauc"].to_numpy(),
        }
    )
    means = out.dropna(subset=["pauc"]).groupby("variant", sort=True)["pauc"].mean().reset_index()
    out = pd.concat([out, means.assign(dataset=MEAN)], ignore_index=True)
    out["label"] = [labels.get(v, v) for v in out["variant"]]
    return out[["variant", "label", "dataset", "pauc"]]


def band_frame(results: Path, tidy: pd.DataFrame) -> pd.DataFrame:
    """The stored bootstrap EDC bands of the runs behind ``tidy``: fr, method, dataset,
    discard_fraction, low, high (runs without a band contribute nothing)."""
    parts = []
    for row in tidy.sort_values(["fr", "method", "dataset"]).itertuples():
        stored = _stored_bootstrap(results, row.run_id)
        band = stored.band if stored is not None else None
        if band is not None:
            grid, low, high = band
            parts.append(pd.DataFrame({"fr": row.fr, "method": row.method, "dataset": row.dataset,
                                       "discard_fraction": grid, "low": low, "high": high}))
    columns = ["fr", "method", "dataset", "discard_fraction", "low", "high"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def _check_curve_identity(path: Path, metadata: Mapping[bytes, bytes], row: Any, what: str = "EDC curve") -> None:
    """Refuse a curve file (``what``: an EDC or EVF curve) whose metadata names another run or
    cell than the pauc.csv row drawn with it.

    ``bench run`` writes the run id and the cell's identity into each curve's metadata; a
    file without them (made by other code) is taken as named.
    """
    wanted = {"run_id": row.run_id, **{k: getattr(row, f"{k}_id", None) for k in ("method", "fr", "dataset")}}
    for key, value in wanted.items():
        found = metadata.get(key.encode())
        if found is not None and value is not None and found.decode() != str(value):
            raise DataError(f"{path}: {what} of {key} {found.decode()!r}, but the pauc.csv row drawn with it has "
                            f"{value!r}: the file belongs to another run")


def curve_frame(results: Path, tidy: pd.DataFrame) -> pd.DataFrame:
    """The EDC points of the runs behind ``tidy``: fr, method, dataset, run_id, discard_fraction, fnmr
    (``method`` as ``tidy`` labels the row: a method configuration's label in a group's figure)."""
    parts = []
    for row in tidy.sort_values(["fr", "method", "dataset"]).itertuples():
        path = results / "curves" / f"{row.run_id}.parquet"
        if not path.is_file():
            raise DataError(f"{path}: EDC curve of run {row.run_id} not found")
        try:
            table = pq.read_table(path, columns=["discard_fraction", "fnmr"])
        except Exception as exc:  # pyarrow raises several unrelated types for bad files
            raise DataError(f"{path}: cannot read EDC curve ({exc})") from exc
        _check_curve_identity(path, table.schema.metadata or {}, row)
        parts.append(table.to_pandas().assign(fr=row.fr, method=row.method, dataset=row.dataset, run_id=row.run_id))
    columns = ["fr", "method", "dataset", "run_id", "discard_fraction", "fnmr"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


EVF_COLUMNS: list[str] = ["fr", "method", "dataset", "run_id", "discard", "fmr", "fnmr", "n_false_matches"]


def evf_frame(results: Path, tidy: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The error-versus-FMR points of the runs behind ``tidy`` (``curves/<run_id>.evf.parquet``:
    :data:`EVF_COLUMNS`, ``method`` as ``tidy`` labels the row), and the run ids without an EVF
    file (runs made before ``bench run`` wrote one): those are left out, and said, not an error."""
    parts, missing = [], []
    for row in tidy.sort_values(["fr", "method", "dataset"]).itertuples():
        path = results / "curves" / f"{row.run_id}.evf.parquet"
        if not path.is_file():
            missing.append(row.run_id)
            continue
        try:
            table = pq.read_table(path, columns=["discard", "fmr", "fnmr", "n_false_matches"])
        except Exception as exc:  # pyarrow raises several unrelated types for bad files
            raise DataError(f"{path}: cannot read EVF curve ({exc})") from exc
        _check_curve_identity(path, table.schema.metadata or {}, row, "EVF curve")
        parts.append(table.to_pandas().assign(fr=row.fr, method=row.method, dataset=row.dataset, run_id=row.run_id))
    frame = pd.concat(parts, ignore_index=True)[EVF_COLUMNS] if parts else pd.DataFrame(columns=EVF_COLUMNS)
    return frame, missing


def score_frame(results: Path) -> pd.DataFrame:
    """Quality scores for Fig. 5: method, dataset, fr, image_id, score, oriented so higher = better.

    For an FR-dependent method (files ``<dataset>__<fr>.parquet``) only the first FR in
    sorted order is kept, so each (method, dataset) contributes one distribution. The
    registered names (``method_id``, ``dataset_id``, ``fr_id``: the file's ``fr`` metadata,
    else its name's FR part) and ``higher_is_better`` (the native orientation) come along,
    so the image strips can find crops and print the native scores.
    """
    columns = ["method", "dataset", "fr", "image_id", "score", "method_id", "dataset_id", "fr_id", "higher_is_better"]
    chosen: dict[tuple[str, str], tuple[str, Path]] = {}
    for path in sorted((results / "scores").glob("*/*.parquet")):
        dataset, _, fr = path.stem.partition("__")
        key = (path.parent.name, dataset)
        if key not in chosen or (chosen[key][0] and not fr):
            chosen[key] = (fr, path)
    parts = []
    for (method_id, dataset_id), (fr, path) in sorted(chosen.items()):
        try:
            table = pq.read_table(path, columns=["image_id", "score"])
        except Exception as exc:  # pyarrow raises several unrelated types for bad files
            raise DataError(f"{path}: cannot read score file ({exc})") from exc
        meta = table.schema.metadata or {}
        flag = meta.get(b"higher_is_better")
        if flag not in (b"true", b"false", b"True", b"False"):
            raise DataError(f"{path}: score file metadata lacks higher_is_better")
        scores = table.column("score").to_numpy().astype(float)
        if flag.lower() == b"false":
            scores = -scores
        fr_id = meta.get(b"fr", fr.encode()).decode()
        sha = meta.get(b"quality_fr_weights_sha256", b"").decode() or None
        parts.append(pd.DataFrame({
            "method": card_name("method", method_id),
            "dataset": card_name("dataset", dataset_id),
            "fr": printed_fr(fr_id, sha) if fr else "",
            "image_id": table.column("image_id").to_pylist(),
            "score": scores,
            "method_id": method_id,
            "dataset_id": dataset_id,
            "fr_id": fr_id,
            "higher_is_better": flag.lower() == b"true",
        }))
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def agreement_frame(scores: pd.DataFrame, fraction: float = 0.1) -> pd.DataFrame:
    """Per dataset and pair of methods: Spearman, Kendall and lowest-``fraction`` overlap of
    their scores on the images both scored (``n_images``), from :func:`score_frame`."""
    from bench.stats.agreement import pair_agreement

    rows = []
    for dataset, group in scores.groupby("dataset", sort=True):
        wide = group.pivot_table(index="image_id", columns="method", values="score", aggfunc="first")
        present = set(wide.columns)
        methods = [m for m in published.PAPER_METHODS if m in present] + sorted(present - set(published.PAPER_METHODS))
        for i, a in enumerate(methods):
            for b in methods[i + 1:]:
                both = wide[[a, b]].dropna()
                if len(both) >= 2:
                    rows.append({"dataset": dataset, "method_a": a, "method_b": b, "n_images": len(both),
                                 **pair_agreement(both[a].to_numpy(), both[b].to_numpy(), fraction)})
    columns = ["dataset", "method_a", "method_b", "n_images", "spearman", "kendall", "low_overlap"]
    return pd.DataFrame(rows, columns=columns)


def load_not_run(results: Path) -> dict[tuple[str, str, str], str]:
    """Reasons for cells that were not run, from ``runs/not_run.json`` (optional).

    The file is a list of objects ``{"reason": ..., "fr"?, "method"?, "dataset"?}`` with
    registered names; an omitted name applies to all (``*``). Keys use printed names.
    """
    path = results / "runs" / NOT_RUN_FILE
    if not path.is_file():
        return {}
    entries = _read_json(path)
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "reason" in e for e in entries):
        raise DataError(f"{path}: expected a list of objects with a 'reason'")
    mappers = {"fr": printed_fr, "method": lambda n: card_name("method", n), "dataset": lambda n: card_name("dataset", n)}
    reasons = {}
    for entry in entries:
        key = tuple(mappers[k](entry[k]) if k in entry else WILDCARD for k in ("fr", "method", "dataset"))
        reasons[key] = str(entry["reason"])
    return reasons


def reason_for(reasons: Reasons, fr: str, method: str, dataset: str) -> str:
    """The most specific reason matching a cell (exact names before ``*``), or ``""``."""
    for use_fr, use_method, use_dataset in (
        (1, 1, 1), (0, 1, 1), (1, 0, 1), (1, 1, 0), (0, 0, 1), (0, 1, 0), (1, 0, 0), (0, 0, 0)
    ):
        key = (fr if use_fr else WILDCARD, method if use_method else WILDCARD, dataset if use_dataset else WILDCARD)
        if key in reasons:
            return reasons[key]
    return ""

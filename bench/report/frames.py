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

from bench.core.cards import load_cards, paper_name, registered_name
from bench.core.errors import DataError
from bench.results import published
from bench.results.table import ALL_FOLDS, latest_per_identity, paper_rows, protocol_differences, read_pauc_csv
from bench.stats.edc import VARIANTS

KEY: list[str] = ["discard", "fr", "method", "dataset"]
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


def printed_fr(name: str) -> str:
    """FR key as used by the published tables: lower-case ids (``arcface``)."""
    return paper_name("fr", name).lower()


def choose_variant(variants: list[str], wanted: str | None, path: Path) -> str:
    """The EDC variant to report: ``wanted``, else the harness default if present."""
    if wanted is not None:
        if wanted not in variants:
            raise DataError(f"{path}: no rows with edc_variant {wanted!r} (present: {', '.join(variants)})")
        return wanted
    for variant in VARIANTS:
        if variant in variants:
            return variant
    return sorted(variants)[0]


def results_pauc(results: Path, discard: float, edc_variant: str | None = None) -> tuple[pd.DataFrame, str]:
    """Tidy reproduced pAUC at ``discard``: one row per identity, the latest run winning.

    Returns the frame and the EDC variant taken as the paper's protocol. Columns: printed
    names in ``fr``/``method``/``dataset``, registered ones in ``*_id``, ``pauc``,
    ``pauc_lo``/``pauc_hi`` (NaN when no interval was computed), ``folds``, ``n_mated``,
    ``n_nonmated``, ``run_id`` and ``differs``: ``""`` for the paper's protocol (one row per
    cell, the latest), else what differs from it (:func:`bench.results.table.protocol_differences`),
    so such rows are never shown under the paper's captions. ``attrs["assumed"]`` lists the
    columns a published-columns-only file lacked (:func:`bench.results.table.read_pauc_csv`).
    """
    path = results / "pauc.csv"
    raw = read_pauc_csv(results)
    rows = raw[np.isclose(raw["discard"], discard, rtol=0, atol=1e-9)]
    if rows.empty:
        present = ", ".join(f"{d:g}" for d in sorted(raw["discard"].unique()))
        raise DataError(f"{path}: no rows at discard {discard:g} (present: {present or 'none'})")
    variant = choose_variant(sorted(rows["edc_variant"].unique()), edc_variant, path)
    rows = latest_per_identity(rows)
    differs = protocol_differences(rows, variant)
    others = rows[(differs != "").to_numpy()].assign(differs=differs[differs != ""].to_numpy())
    # As for the paper's protocol, seeds do not define a setting: the latest run stands for it.
    others = others.drop_duplicates(subset=["differs", "fr", "method", "dataset"], keep="last")
    rows = pd.concat([paper_rows(rows, variant).assign(differs=""), others], ignore_index=True)
    tidy = pd.DataFrame(
        {
            "discard": float(discard),
            "fr": [printed_fr(n) for n in rows["fr"]],
            "method": [paper_name("method", n) for n in rows["method"]],
            "dataset": [paper_name("dataset", n) for n in rows["dataset"]],
            **{c: rows[c].to_numpy() for c in ("pauc", "pauc_lo", "pauc_hi", "folds", "n_mated", "n_nonmated",
                                               "run_id", "differs")},
            "fr_id": rows["fr"].to_numpy(),
            "method_id": rows["method"].to_numpy(),
            "dataset_id": rows["dataset"].to_numpy(),
        }
    )
    tidy["note"] = cell_notes(tidy)
    tidy["replicates"] = [_replicates(results, run_id, discard) for run_id in tidy["run_id"]]
    tidy = tidy.sort_values(["differs", "fr", "method", "dataset"], kind="stable").reset_index(drop=True)
    tidy.attrs["assumed"] = raw.attrs["assumed"]
    return tidy, variant


def _stored_bootstrap(results: Path, run_id: str) -> Any:
    """The bootstrap file of one run (:class:`bench.stats.bootstrap.StoredReplicates`), None without one."""
    from bench.stats import bootstrap

    path = results / "runs" / f"{run_id}.json"
    entry = (json.loads(path.read_text(encoding="utf-8")).get("bootstrap") or {}) if path.is_file() else {}
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
    """Per row, its folds and comparison counts where they differ from the paper's protocol.

    The paper's counts are the dataset cards' ``[table1]`` mated / non-mated comparisons;
    an unknown count (a published-columns-only file) says nothing.
    """
    cards = load_cards("dataset")
    notes = []
    for row in tidy.itertuples(index=False):
        parts = [] if row.folds == ALL_FOLDS else [f"folds {row.folds}"]
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
                "method": paper_name("method", meta["method"]),
                "dataset": paper_name("dataset", meta["dataset"]),
                "fr": printed_fr(meta["fr"]),
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


def curve_frame(results: Path, tidy: pd.DataFrame) -> pd.DataFrame:
    """The EDC points of the runs behind ``tidy``: fr, method, dataset, discard_fraction, fnmr."""
    parts = []
    for row in tidy.sort_values(["fr", "method", "dataset"]).itertuples():
        path = results / "curves" / f"{row.run_id}.parquet"
        if not path.is_file():
            raise DataError(f"{path}: EDC curve of run {row.run_id} not found")
        try:
            points = pq.read_table(path, columns=["discard_fraction", "fnmr"]).to_pandas()
        except Exception as exc:  # pyarrow raises several unrelated types for bad files
            raise DataError(f"{path}: cannot read EDC curve ({exc})") from exc
        parts.append(points.assign(fr=row.fr, method=row.method, dataset=row.dataset))
    columns = ["fr", "method", "dataset", "discard_fraction", "fnmr"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


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
        parts.append(pd.DataFrame({
            "method": paper_name("method", method_id),
            "dataset": paper_name("dataset", dataset_id),
            "fr": printed_fr(fr) if fr else "",
            "image_id": table.column("image_id").to_pylist(),
            "score": scores,
            "method_id": method_id,
            "dataset_id": dataset_id,
            "fr_id": meta.get(b"fr", fr.encode()).decode(),
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
    mappers = {"fr": printed_fr, "method": lambda n: paper_name("method", n), "dataset": lambda n: paper_name("dataset", n)}
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

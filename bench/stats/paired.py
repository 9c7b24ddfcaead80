"""Paired bootstrap comparison of two methods from stored replicate pAUCs (``bench compare``).

Two methods evaluated on the same cell (same dataset, FR model, protocol settings) have the
same similarities and, when their bootstraps share seed, unit kind, unit count and replicate
count, the same resamples (:func:`bench.stats.bootstrap.draw_counts` depends on nothing else). So
replicate ``r`` of method A and replicate ``r`` of method B are the same resampled data set,
and ``d_r = pAUC_A[r] - pAUC_B[r]`` is a draw from the bootstrap distribution of the
difference; no score is recomputed.

* Interval: the percentile interval of the finite ``d_r`` (replicates where either pAUC is
  undefined are dropped and counted).
* p-value (two-sided, H0: no difference): with ``n`` finite differences,
  ``p = min(1, 2 * (min(#{d_r <= 0}, #{d_r >= 0}) + 1) / (n + 1))``, i.e. twice the smaller
  share of replicates on one side of 0, with the +1 correction so that it is never 0 (the
  smallest reportable value is ``2 / (n + 1)``). Equal replicates give ``d_r = 0`` and p = 1.
* Pooled over cells: replicate ``r`` of the pool is the mean over cells of their
  ``d_r`` (and the point the mean of the cells' point differences). Cells on different
  datasets are independent resamples, cells sharing a dataset share them, and both keep the
  pool's replicate a valid draw of the mean difference; the pool needs one replicate count.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench.core.errors import DataError
from bench.core.records import read_run_record
from bench.stats import bootstrap

CELL_KEYS = ("fr", "dataset", "edc_variant", "fmr", "folds", "quality_rule", "template_rule")


@dataclass(frozen=True)
class PairedTest:
    """Per discard limit: point difference A - B, its interval, p-value and replicates used."""

    difference: np.ndarray
    low: np.ndarray
    high: np.ndarray
    p_value: np.ndarray
    n_used: np.ndarray


def paired_test(reps_a: npt.ArrayLike, reps_b: npt.ArrayLike, point_a: npt.ArrayLike | None = None,
                point_b: npt.ArrayLike | None = None, level: float = bootstrap.LEVEL) -> PairedTest:
    """Paired bootstrap test of A - B from replicate pAUCs ``[R, limits]`` drawn on the same
    resamples (see module doc). The point difference is ``point_a - point_b`` when both are
    given, else the mean replicate difference."""
    a, b = np.asarray(reps_a, dtype=np.float64), np.asarray(reps_b, dtype=np.float64)
    a, b = (x[:, None] if x.ndim == 1 else x for x in (a, b))
    if a.shape != b.shape or a.ndim != 2:
        raise DataError(f"paired test: replicate arrays differ in shape ({a.shape} vs {b.shape}); "
                        "both methods need the same replicates and discard limits")
    diff = a - b
    low, high = bootstrap.percentile_interval(diff, level)
    finite = np.isfinite(diff)
    n = finite.sum(axis=0)
    below = (finite & (diff <= 0)).sum(axis=0)
    above = (finite & (diff >= 0)).sum(axis=0)
    p = np.where(n > 0, np.minimum(1.0, 2.0 * (np.minimum(below, above) + 1) / (n + 1)), np.nan)
    if point_a is not None and point_b is not None:
        point = np.asarray(point_a, dtype=np.float64) - np.asarray(point_b, dtype=np.float64)
    else:
        point = np.array([diff[finite[:, j], j].mean() if n[j] else np.nan for j in range(diff.shape[1])])
    return PairedTest(point, low, high, p, n)


@dataclass(frozen=True)
class Side:
    """One method's run of a cell: its point pAUC per limit and stored replicates."""

    run_id: str
    pauc: np.ndarray
    stored: bootstrap.StoredReplicates


def _cell_key(record: dict) -> tuple:
    return tuple(json.dumps(record.get(k), sort_keys=True) for k in CELL_KEYS)


def latest_runs(results: Path, methods: tuple[str, str], fr: str | None = None,
                dataset: str | None = None) -> dict[tuple, dict[str, tuple[Path, dict]]]:
    """Per cell key, per method, the latest run (by ``created``) in ``results/runs/*.json``."""
    runs = Path(results) / "runs"
    if not runs.is_dir():
        raise DataError(f"{runs}: no runs folder; pass the --results folder that 'bench run' wrote")
    cells: dict[tuple, dict[str, tuple[Path, dict]]] = {}
    for path in sorted(runs.glob("*.json")):
        if path.name == "not_run.json":
            continue
        record = read_run_record(path)
        if record["method"] not in methods or (fr and record.get("fr") != fr) or (
                dataset and record.get("dataset") != dataset):
            continue
        slot = cells.setdefault(_cell_key(record), {})
        old = slot.get(record["method"])
        if old is None or str(record.get("created", "")) >= str(old[1].get("created", "")):
            slot[record["method"]] = (path, record)
    return cells


def _side(path: Path, record: dict) -> Side:
    boot = record.get("bootstrap")
    if not isinstance(boot, dict) or "file" not in boot:
        raise DataError(f"{path}: run has no bootstrap replicates; re-run the cell with the bootstrap on")
    stored = bootstrap.load(path.parent / str(boot["file"]))
    paucs = record.get("pauc") or {}
    point = np.array([float(paucs.get(repr(float(d)), paucs.get(str(d), np.nan))) for d in stored.discard_limits])
    return Side(str(record.get("run_id", path.stem)), point, stored)


@dataclass(frozen=True)
class Row:
    """One line of the comparison table."""

    fr: str
    dataset: str
    edc_variant: str
    discard: float
    pauc_a: float
    pauc_b: float
    test_difference: float
    low: float
    high: float
    p_value: float
    n_used: int


def compare_methods(results: Path, method_a: str, method_b: str, fr: str | None = None,
                    dataset: str | None = None) -> tuple[list[Row], list[str]]:
    """Paired tests of A vs B per cell and pooled per (variant, fmr, discard); rows and notes."""
    if method_a == method_b:
        raise DataError(f"--method {method_a} given twice; compare two different methods")
    rows: list[Row] = []
    notes: list[str] = []
    pools: dict[tuple, list[tuple[np.ndarray, np.ndarray, float, float]]] = {}
    for key, slot in sorted(latest_runs(results, (method_a, method_b), fr, dataset).items()):
        label = ", ".join(f"{k}={json.loads(v)}" for k, v in zip(CELL_KEYS[:3], key[:3]))
        if len(slot) < 2:
            missing = method_b if method_a in slot else method_a
            notes.append(f"{label}: no run of {missing}; skipped")
            continue
        try:
            a, b = _side(*slot[method_a]), _side(*slot[method_b])
        except DataError as exc:
            notes.append(f"{label}: {exc}; skipped")
            continue
        if a.stored.resamples() != b.stored.resamples():
            notes.append(f"{label}: runs {a.run_id} and {b.run_id} used different resamples "
                         f"(unit, units, seed, replicates: {a.stored.resamples()} vs {b.stored.resamples()}); skipped")
            continue
        shared = np.intersect1d(a.stored.discard_limits, b.stored.discard_limits)
        ia = np.searchsorted(a.stored.discard_limits, shared)
        ib = np.searchsorted(b.stored.discard_limits, shared)
        test = paired_test(a.stored.replicates[:, ia], b.stored.replicates[:, ib], a.pauc[ia], b.pauc[ib])
        fr_name, ds_name, variant = (json.loads(v) for v in key[:3])
        for j, d in enumerate(shared):
            rows.append(Row(fr_name, ds_name, variant, float(d), float(a.pauc[ia[j]]), float(b.pauc[ib[j]]),
                            float(test.difference[j]), float(test.low[j]), float(test.high[j]),
                            float(test.p_value[j]), int(test.n_used[j])))
            pools.setdefault((variant, key[3], float(d)), []).append(
                (a.stored.replicates[:, ia[j]], b.stored.replicates[:, ib[j]], a.pauc[ia[j]], b.pauc[ib[j]]))
    for (variant, _fmr, d), cells in sorted(pools.items()):
        if len(cells) < 2:
            continue
        if len({len(c[0]) for c in cells}) > 1:
            notes.append(f"pooled {variant} @ {d}: cells have different replicate counts; not pooled")
            continue
        mean_a = np.mean([c[0] for c in cells], axis=0)
        mean_b = np.mean([c[1] for c in cells], axis=0)
        pa, pb = float(np.mean([c[2] for c in cells])), float(np.mean([c[3] for c in cells]))
        test = paired_test(mean_a, mean_b, [pa], [pb])
        rows.append(Row("pooled", f"{len(cells)} cells", variant, d, pa, pb, float(test.difference[0]),
                        float(test.low[0]), float(test.high[0]), float(test.p_value[0]), int(test.n_used[0])))
    if not rows:
        notes.append(f"no cell has bootstrap replicates of both {method_a} and {method_b} in {results}")
    return rows, notes


def format_table(rows: list[Row], method_a: str, method_b: str) -> str:
    """A Markdown table of the rows (differences are A - B; lower pAUC is better)."""
    head = ["fr", "dataset", "edc_variant", "discard", f"pAUC {method_a}", f"pAUC {method_b}",
            "A - B", "95% interval", "p", "replicates"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        lines.append(f"| {r.fr} | {r.dataset} | {r.edc_variant} | {r.discard:g} | {r.pauc_a:.4f} | {r.pauc_b:.4f} | "
                     f"{r.test_difference:+.4f} | [{r.low:+.4f}, {r.high:+.4f}] | {r.p_value:.3g} | {r.n_used} |")
    return "\n".join(lines)

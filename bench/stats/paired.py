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
* Holm: every p-value the comparison reports (cells and pools, every discard limit) is one
  family; :func:`holm` gives Holm's step-down adjusted p beside the raw one (valid under any
  dependence between the tests, so also for the correlated discard limits).
* Seeded methods: a method with runs of several ``seed`` values in a cell (``random``: 10) is
  compared as the set of its seeds, not its latest run: its replicate ``r`` is the mean over
  seeds of the seeds' replicate ``r`` (all drawn on the same resamples), its point the mean
  of the seeds' points. The test is then against the method's seed-averaged pAUC; the spread
  over seeds of the point difference (A - B for each seed of B alone) is reported beside it.
  Among runs of one seed the latest (``created``) wins; a seed without usable replicates (run
  with ``--bootstrap 0``, other resamples) is left out and named.
* Pooled over cells: replicate ``r`` of the pool is the mean over cells of their ``d_r`` (and
  the point the mean of the cells' point differences). That is a valid draw of the mean
  difference only when the cells are *disjoint* evaluations or share their resamples: cells
  on different datasets are treated as independent resamples; cells of one dataset with the
  same folds and the same resamples (e.g. two FR models) draw the same subjects jointly; but
  cells of one dataset whose fold sets overlap without being equal (LFW folds 1-2 inside LFW
  all folds) re-use comparisons under independent resamples and would be counted twice, so
  the pool keeps the cell covering more folds and drops the nested one, saying which.
  ``pool`` chooses the pools: ``all`` (one per EDC variant, FMR and discard limit),
  ``dataset`` (one per dataset: over FR models), ``fr`` (one per FR model: over datasets) or
  ``none``. Datasets derived from one source (CALFW, CPLFW, XQLFW from LFW's subjects) are
  still treated as independent: the pool cannot see shared subjects across datasets.
* ``metric="floor-relative"``: each cell's pAUCs become ``(pAUC - best) / (1 - best)`` with
  ``best`` the cell's theoretical best (:func:`bench.stats.edc.best_pauc`, from the run's FNMR
  at discard 0 and mated count; fixed-threshold cells only). ``best`` is the full data's value,
  a constant per cell applied to every replicate, so a cell's p-value is unchanged and only
  the scale (and so the pool's weighting of cells) differs.
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
from bench.stats.edc import best_pauc, floor_relative_pauc

CELL_KEYS = ("fr", "dataset", "edc_variant", "fmr", "folds", "quality_rule", "template_rule")
POOL_MODES = ("all", "dataset", "fr", "none")
METRICS = ("pauc", "floor-relative")


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


def holm(p_values: npt.ArrayLike) -> np.ndarray:
    """Holm's step-down adjusted p-values of one family (nan entries stay nan and do not count):
    the ``i``-th smallest of ``m`` becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    m = order.size
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


@dataclass(frozen=True)
class Side:
    """One method on a cell: its point pAUC per limit and replicates, averaged over its seeds."""

    run_ids: tuple[str, ...]
    seeds: tuple[int | None, ...]
    pauc: np.ndarray  # [limits], mean over seeds
    seed_paucs: np.ndarray  # [seeds, limits]
    replicates: np.ndarray  # [R, limits], mean over seeds per replicate
    resamples: tuple[str, int, int, int]
    discard_limits: np.ndarray
    fnmr_at_0: float | None
    n_mated: int | None


def _cell_key(record: dict) -> tuple:
    return tuple(json.dumps(record.get(k), sort_keys=True) for k in CELL_KEYS)


def _describe(key: tuple, keys: tuple[str, ...] = CELL_KEYS) -> str:
    return ", ".join(f"{k}={json.loads(v)}" for k, v in zip(keys, key))


def _read_runs(results: Path, methods: tuple[str, ...], fr: str | None,
               dataset: str | None) -> list[tuple[Path, dict]]:
    runs = Path(results) / "runs"
    if not runs.is_dir():
        raise DataError(f"{runs}: no runs folder; pass the --results folder that 'bench run' wrote")
    out = []
    for path in sorted(runs.glob("*.json")):
        if path.name == "not_run.json":
            continue
        record = read_run_record(path)
        if record["method"] in methods and not (fr and record.get("fr") != fr) and not (
                dataset and record.get("dataset") != dataset):
            out.append((path, record))
    return out


def latest_runs(results: Path, methods: tuple[str, ...], fr: str | None = None,
                dataset: str | None = None) -> dict[tuple, dict[str, dict[object, tuple[Path, dict]]]]:
    """Per cell key, per method, per ``seed``: the latest run (by ``created``) in ``results/runs``."""
    cells: dict[tuple, dict[str, dict[object, tuple[Path, dict]]]] = {}
    for path, record in _read_runs(results, methods, fr, dataset):
        slot = cells.setdefault(_cell_key(record), {}).setdefault(record["method"], {})
        seed = record.get("seed")
        old = slot.get(seed)
        if old is None or str(record.get("created", "")) >= str(old[1].get("created", "")):
            slot[seed] = (path, record)
    return cells


def _side(runs: dict[object, tuple[Path, dict]], notes: list[str], label: str) -> Side:
    """The method's seeds on a cell as one side (module doc). A seed whose run has no usable
    replicates, or other resamples or limits than the first usable seed, is left out and noted;
    DataError when no seed is left."""
    usable: list[tuple[object, Path, dict, bootstrap.StoredReplicates]] = []
    for seed, (path, record) in sorted(runs.items(), key=lambda kv: str(kv[0])):
        boot = record.get("bootstrap")
        try:
            if not isinstance(boot, dict) or "file" not in boot:
                raise DataError(f"{path}: run has no bootstrap replicates; re-run the cell with the bootstrap on")
            stored = bootstrap.load(path.parent / str(boot["file"]))
            if usable and (stored.resamples() != usable[0][3].resamples()
                           or not np.array_equal(stored.discard_limits, usable[0][3].discard_limits)):
                raise DataError(f"{path}: other resamples or discard limits than seed {usable[0][0]}")
        except DataError as exc:
            if len(runs) == 1:
                raise
            notes.append(f"{label}: seed {seed} of {record['method']} left out ({exc})")
            continue
        usable.append((seed, path, record, stored))
    if not usable:
        raise DataError(f"no seed of {next(iter(runs.values()))[1]['method']} has usable replicates")
    limits = usable[0][3].discard_limits
    points = [[float((record.get("pauc") or {}).get(repr(float(d)), (record.get("pauc") or {}).get(str(d), np.nan)))
               for d in limits] for _, _, record, _ in usable]
    first = usable[0][2]
    fnmr0, n_mated = first.get("fnmr_at_0"), first.get("n_mated")
    return Side(tuple(str(r.get("run_id", p.stem)) for _, p, r, _ in usable),
                tuple(None if seed is None else int(seed) for seed, *_ in usable),
                np.mean(points, axis=0), np.array(points), np.mean([st.replicates for *_, st in usable], axis=0),
                usable[0][3].resamples(), limits, None if fnmr0 is None else float(fnmr0),
                None if n_mated is None else int(n_mated))


def _folds(key: tuple) -> set[int] | None:
    """The fold set of a cell key; None means all folds."""
    folds = json.loads(key[CELL_KEYS.index("folds")])
    if folds in (None, "all"):
        return None
    return {int(f) for f in (folds if isinstance(folds, list) else str(folds).split(","))}


def _overlap(x: set[int] | None, y: set[int] | None) -> bool:
    return x is None or y is None or bool(x & y)


@dataclass(frozen=True)
class Row:
    """One line of the comparison table (pooled rows: ``fr == "pooled"``)."""

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
    seeds: str = "1/1"
    seed_range: tuple[float, float] | None = None
    p_holm: float = float("nan")
    folds: str = "all"


@dataclass(frozen=True)
class _Cell:
    key: tuple
    a: Side
    b: Side
    limits: np.ndarray


def _restrict(side: Side, columns: np.ndarray, metric: str, variant: str, label: str) -> Side:
    """``side`` at the discard limits ``columns``, in ``metric`` (see module doc)."""
    limits = side.discard_limits[columns]
    points, seeds, reps = side.pauc[columns], side.seed_paucs[:, columns], side.replicates[:, columns]
    if metric == "floor-relative":
        if variant != "fixed-threshold" or side.fnmr_at_0 is None or side.n_mated is None:
            raise DataError(f"{label}: floor-relative pAUC needs fixed-threshold runs that record "
                            "fnmr_at_0 and n_mated")
        best = np.array([best_pauc(side.fnmr_at_0, side.n_mated, float(d)) for d in limits])
        points, seeds, reps = (np.stack([floor_relative_pauc(x[..., j], b) for j, b in enumerate(best)], axis=-1)
                               for x in (points, seeds, reps))
    return Side(side.run_ids, side.seeds, points, seeds, reps, side.resamples, limits, side.fnmr_at_0,
                side.n_mated)


def _why_missing(key: tuple, method: str, others: dict[tuple, dict]) -> str:
    """Which cell settings differ between this cell and the nearest cell that has ``method``."""
    holders = [k for k, slot in others.items() if method in slot]
    if not holders:
        return f"no run of {method}"
    def differs(k: tuple) -> list[int]:
        return [i for i, (x, y) in enumerate(zip(key, k)) if x != y]
    nearest = min(holders, key=lambda k: (len(differs(k)), k))
    what = "; ".join(f"{CELL_KEYS[i]} {json.loads(nearest[i])} instead of {json.loads(key[i])}"
                     for i in differs(nearest))
    return f"no run of {method} with these settings (nearest run of {method} differs in {what})"


def _pool_group(cell: _Cell, pool: str) -> tuple:
    fr_name, ds_name, variant, fmr = (json.loads(v) for v in cell.key[:4])
    return {"all": (), "dataset": (ds_name,), "fr": (fr_name,)}[pool] + (variant, fmr)


def _disjoint(cells: list[_Cell], notes: list[str], label: str) -> list[_Cell]:
    """The cells a pool may average (module doc): widest fold sets first; a cell whose folds
    overlap a kept cell of its dataset without sharing its folds and resamples is dropped."""
    def width(c: _Cell) -> float:
        folds = _folds(c.key)
        return float("inf") if folds is None else len(folds)
    kept: list[_Cell] = []
    for cell in sorted(cells, key=lambda c: -width(c)):
        ds = cell.key[1]
        clash = next((k for k in kept if k.key[1] == ds and _overlap(_folds(k.key), _folds(cell.key))
                      and not (_folds(k.key) == _folds(cell.key) and k.a.resamples == cell.a.resamples)), None)
        if clash is None:
            kept.append(cell)
        else:
            notes.append(f"{label}: left out {_describe(cell.key[:2] + cell.key[4:5], ('fr', 'dataset', 'folds'))}: "
                         f"its comparisons overlap those of {_describe(clash.key[:2] + clash.key[4:5], ('fr', 'dataset', 'folds'))} "
                         "(nested or overlapping folds; averaging both would count them twice)")
    return kept


def compare_methods(results: Path, method_a: str, method_b: str, fr: str | None = None,
                    dataset: str | None = None, pool: str = "all",
                    metric: str = "pauc") -> tuple[list[Row], list[str], list[str]]:
    """Paired tests of A vs B per cell and per pool (``pool``: one of ``POOL_MODES``) in
    ``metric`` (one of ``METRICS``); returns rows (Holm-adjusted over all of them), notes and
    the pools' members (one line per pool)."""
    if method_a == method_b:
        raise DataError(f"--method {method_a} given twice; compare two different methods")
    if pool not in POOL_MODES:
        raise DataError(f"unknown pool {pool!r}; expected one of {POOL_MODES}")
    if metric not in METRICS:
        raise DataError(f"unknown metric {metric!r}; expected one of {METRICS}")
    rows: list[Row] = []
    notes: list[str] = []
    cells: list[_Cell] = []
    found = latest_runs(results, (method_a, method_b), fr, dataset)
    for key, slot in sorted(found.items()):
        label = _describe(key[:3] + key[4:5], ("fr", "dataset", "edc_variant", "folds"))
        if len(slot) < 2:
            missing = method_b if method_a in slot else method_a
            notes.append(f"{label}: {_why_missing(key, missing, found)}; skipped")
            continue
        try:
            a, b = _side(slot[method_a], notes, label), _side(slot[method_b], notes, label)
        except DataError as exc:
            notes.append(f"{label}: {exc}; skipped")
            continue
        if a.resamples != b.resamples:
            notes.append(f"{label}: runs {a.run_ids[-1]} and {b.run_ids[-1]} used different resamples "
                         f"(unit, units, seed, replicates: {a.resamples} vs {b.resamples}); skipped")
            continue
        shared = np.intersect1d(a.discard_limits, b.discard_limits)
        ia, ib = np.searchsorted(a.discard_limits, shared), np.searchsorted(b.discard_limits, shared)
        variant = json.loads(key[2])
        try:
            a, b = _restrict(a, ia, metric, variant, label), _restrict(b, ib, metric, variant, label)
        except DataError as exc:
            notes.append(f"{exc}; skipped")
            continue
        cell = _Cell(key, a, b, shared)
        cells.append(cell)
        test = paired_test(a.replicates, b.replicates, a.pauc, b.pauc)
        # Every seed of A against every seed of B: how much the choice of seed alone moves A - B.
        per_seed = (a.seed_paucs[:, None, :] - b.seed_paucs[None, :, :]).reshape(-1, shared.size)
        spread = len(a.seeds) > 1 or len(b.seeds) > 1
        fr_name, ds_name, folds = json.loads(key[0]), json.loads(key[1]), json.loads(key[4])
        for j, d in enumerate(shared):
            rows.append(Row(fr_name, ds_name, variant, float(d), float(a.pauc[j]), float(b.pauc[j]),
                            float(test.difference[j]), float(test.low[j]), float(test.high[j]),
                            float(test.p_value[j]), int(test.n_used[j]), f"{len(a.seeds)}/{len(b.seeds)}",
                            (float(per_seed[:, j].min()), float(per_seed[:, j].max())) if spread else None,
                            folds="all" if folds is None else str(folds)))
    members = _pooled_rows(cells, pool, rows, notes)
    if not rows:
        notes.append(f"no cell has bootstrap replicates of both {method_a} and {method_b} in {results}")
    adjusted = holm([r.p_value for r in rows])
    rows = [Row(**{**r.__dict__, "p_holm": float(h)}) for r, h in zip(rows, adjusted)]
    return rows, notes, members


def _pooled_rows(cells: list[_Cell], pool: str, rows: list[Row], notes: list[str]) -> list[str]:
    """Append one row per pool and discard limit; return a line per pool naming its cells."""
    if pool == "none":
        return []
    members: list[str] = []
    groups: dict[tuple, list[_Cell]] = {}
    for cell in cells:
        groups.setdefault(_pool_group(cell, pool), []).append(cell)
    for group, group_cells in sorted(groups.items(), key=lambda kv: str(kv[0])):
        *scope, variant, fmr = group
        label = f"pool {'/'.join(str(s) for s in scope) or 'all'} ({variant}, FMR {fmr})"
        kept = _disjoint(group_cells, notes, label)
        if len(kept) < 2:
            continue
        if len({c.a.replicates.shape[0] for c in kept}) > 1:
            notes.append(f"{label}: cells have different replicate counts; not pooled")
            continue
        limits = np.unique(np.concatenate([c.limits for c in kept]))
        members.append(f"{label}: " + "; ".join(
            _describe(c.key[:2] + c.key[4:5], ("fr", "dataset", "folds")) for c in kept))
        for d in limits:
            at = [(c, int(np.flatnonzero(c.limits == d)[0])) for c in kept if d in c.limits]
            if len(at) < 2:
                continue
            mean_a = np.mean([c.a.replicates[:, j] for c, j in at], axis=0)
            mean_b = np.mean([c.b.replicates[:, j] for c, j in at], axis=0)
            pa, pb = float(np.mean([c.a.pauc[j] for c, j in at])), float(np.mean([c.b.pauc[j] for c, j in at]))
            test = paired_test(mean_a, mean_b, [pa], [pb])
            where = f"{'/'.join(str(s) for s in scope)}: " if scope else ""
            rows.append(Row("pooled", f"{where}{len(at)} cells", variant,
                            float(d), pa, pb, float(test.difference[0]), float(test.low[0]), float(test.high[0]),
                            float(test.p_value[0]), int(test.n_used[0]), folds="-"))
    return members


def format_table(rows: list[Row], method_a: str, method_b: str, metric: str = "pauc") -> str:
    """A Markdown table of the rows (differences are A - B; lower is better)."""
    name = "pAUC" if metric == "pauc" else "floor-rel. pAUC"
    head = ["fr", "dataset", "folds", "edc_variant", "discard", f"{name} {method_a}", f"{name} {method_b}",
            "A - B", "95% interval", "p", "p (Holm)", "replicates", "seeds A/B", "A - B per seed"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        spread = "" if r.seed_range is None else f"{r.seed_range[0]:+.4f} … {r.seed_range[1]:+.4f}"
        seeds = "" if r.fr == "pooled" else r.seeds
        lines.append(f"| {r.fr} | {r.dataset} | {r.folds} | {r.edc_variant} | {r.discard:g} | {r.pauc_a:.4f} | "
                     f"{r.pauc_b:.4f} | {r.test_difference:+.4f} | [{r.low:+.4f}, {r.high:+.4f}] | "
                     f"{r.p_value:.3g} | {r.p_holm:.3g} | {r.n_used} | {seeds} | {spread} |")
    return "\n".join(lines)

"""Bootstrap confidence intervals of the normalised pAUC (both EDC variants of :mod:`bench.stats.edc`).

Method
------
A *resampling unit* is attached to each side of every comparison (:class:`Units`):

* ``subject``: the identity of the image (LFW, CALFW, CPLFW, XQLFW, CFP-FP, Adience: the
  loaders' ``FaceDataset.identities``), or for IJB-C templates the connected component of
  the graph whose edges are the protocol's mated template pairs (the 1:1 meta files carry no
  identity, but every mated pair joins two templates of one subject, so a component is one
  subject; a template in no mated pair is its own unit).
* ``pair``: each comparison is its own unit, when the protocol knows no identities
  (InsightFace ``.bin`` files).

A replicate draws ``n_units`` units uniformly with replacement (the cluster bootstrap);
``c_u`` is how often unit ``u`` was drawn. A comparison whose two sides share unit ``u`` (a
mated comparison, or any comparison of the ``pair`` kind) enters the replicate ``c_u``
times; one between units ``u != v`` (non-mated) enters ``c_u * c_v`` times: every copy of
``u`` is compared with every copy of ``v``, as if the drawn subjects formed a new data set
with the same protocol (the *product rule*). The replicate is the data set of those
repeated comparisons, and its pAUC is exactly (bit for bit) what :mod:`bench.stats.edc` gives on
it materialised: the threshold is the numpy linear quantile at ``1 - fmr`` of the
replicate's own non-mated similarities (fixed-threshold: once, on all of them; recomputed-
threshold: at every grid point, on those left), copies of a comparison tie in quality, and
so on. The interval is the percentile interval (2.5 % and 97.5 %
linear quantiles) of the finite replicate values; a replicate whose pAUC is undefined (no
error at discard 0, no mated or no non-mated comparison left) is nan and counted apart.
``interval="bca"`` (fixed-threshold only) gives Efron's bias-corrected and accelerated
interval instead (:func:`bca_interval`), its acceleration from the leave-one-unit-out
jackknife (:func:`jackknife_paucs`, one more pass per unit). Measured by
``benchmarks/bench_intervals.py`` (200 simulated data sets each, 1,000 replicates): dense
design percentile 95.5 % coverage, BCa 94.0 %; LFW-like sparse design (threshold on the top
3 non-mated scores) percentile 97.5 % at 1.25x the ideal width, BCa 96.0 % at 1.23x. Neither
is better beyond the simulation's +-1.5 points, so percentile stays the default.

Limits: the product rule keeps the expected number of comparisons (E[c_u c_v] = 1 - 1/n,
E[c_u] = 1) but a subject's copies are never compared with each other (no new mated pairs
appear), units absent from every comparison are not resampled, and the ``pair`` kind treats
comparisons sharing an image as independent (intervals too narrow where they are not).
Percentile intervals of a ratio statistic with an estimated threshold can under-cover on
small data (few errors at FMR 1e-3); the coverage test in ``tests/test_bootstrap.py``
measures it on one generating model (96.75 % of 400 data sets with subject units; 89.5 %
of 200 with pair units on the same subject-clustered model).

Speed: the threshold depends only on the top ~``fmr`` share of the replicate's non-mated
similarities, so the non-mated comparisons are ranked once and only a tail of them is
weighted per replicate; a replicate whose quantile falls outside the tail is redone with a
tail four times longer (up to all comparisons). The replicate's non-mated total is
``C @ s + rowsum((C @ M) * C)`` with ``s`` the same-unit counts per unit and ``M`` the
unit-pair count matrix (dense when small and well filled, else sparse), integer-exact in
float64. The recomputed-threshold variant has no such shortcut (each grid point has its own
non-mated set): it costs O(grid x comparisons) per replicate, about a second for 1,000
replicates of LFW, but far too long for IJB-C (``benchmarks/bench_bootstrap.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from bench.core.errors import DataError
from bench.datasets.protocol import PairProtocol
from bench.stats.edc import RECOMPUTED_GRID, VARIANTS, Edc, pauc

if TYPE_CHECKING:
    from bench.datasets.base import FaceDataset

UNIT_KINDS = ("subject", "pair")
INTERVALS = ("percentile", "bca")
DEFAULT_REPLICATES = 1000
LEVEL = 0.95
BLOCK = 64  # replicates weighted at once: bounds the [block, mated] arrays
BLOCK_ELEMENTS = 1 << 22  # at most this many [block, tail] weights at once (32 MiB int64)
DENSE_UNITS = 4096  # up to this many units the unit-pair matrix is dense (128 MiB float64)
# Comparisons weighted first per replicate: TAIL_FACTOR x fmr x n (+ 256); a replicate whose
# quantile falls outside is redone with four times as many (benchmarks/bench_bootstrap.py).
# A replicate's quantile sits near rank fmr x n from the top, so 1.5x leaves half again as
# margin; the thresholds are the same whatever the factor (a miss is redone, never guessed).
# At IJB-C size, 1,000 replicates: factor 4 1.40 CPU-s, 2 1.14, 1.5 0.79 (identical output).
TAIL_FACTOR = 1.5


@dataclass(frozen=True)
class Units:
    """The resampling unit of each side of every comparison, dense in ``[0, n_units)``.

    Arrays follow :class:`bench.pipeline.similarity.Comparisons`: mated then non-mated, each in protocol
    order.
    """

    kind: str
    n_units: int
    mated_a: np.ndarray
    mated_b: np.ndarray
    nonmated_a: np.ndarray
    nonmated_b: np.ndarray


def units_from_labels(kind: str, unit_a: npt.ArrayLike, unit_b: npt.ArrayLike, mated: npt.ArrayLike) -> Units:
    """Units from any integer label per comparison side (protocol order), renumbered densely."""
    if kind not in UNIT_KINDS:
        raise DataError(f"unknown bootstrap unit {kind!r}; expected one of {UNIT_KINDS}")
    a, b, m = np.asarray(unit_a), np.asarray(unit_b), np.asarray(mated, dtype=bool)
    if not (a.shape == b.shape == m.shape) or a.ndim != 1:
        raise DataError(f"bootstrap units: unit_a, unit_b and mated differ in shape ({a.shape}, {b.shape}, {m.shape})")
    labels, dense = np.unique(np.concatenate((a, b)), return_inverse=True)
    da, db = dense[: a.size].astype(np.int64), dense[a.size:].astype(np.int64)
    return Units(kind, int(labels.size), da[m], db[m], da[~m], db[~m])


def template_subjects(protocol: PairProtocol) -> np.ndarray:
    """Per template, the connected component of the mated-pair graph (one subject each)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    assert protocol.templates is not None
    n = protocol.templates.n_templates
    m = protocol.mated
    graph = coo_matrix((np.ones(int(m.sum()), dtype=np.int8), (protocol.a[m], protocol.b[m])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def units_from_dataset(dataset: FaceDataset, protocol: PairProtocol | None = None) -> Units:
    """The resampling units of ``protocol`` (default ``dataset.protocol``; pass the one the
    comparisons were computed on, e.g. after fold selection or dropping unreadable images)."""
    protocol = dataset.protocol if protocol is None else protocol
    if protocol.templates is not None:
        subject = template_subjects(protocol)
        return units_from_labels("subject", subject[protocol.a], subject[protocol.b], protocol.mated)
    if dataset.identities is not None:
        ident = np.asarray(dataset.identities)
        return units_from_labels("subject", ident[protocol.a], ident[protocol.b], protocol.mated)
    index = np.arange(len(protocol))
    return units_from_labels("pair", index, index, protocol.mated)


def draw_counts(n_units: int, replicates: int, seed: int) -> np.ndarray:
    """``[replicates, n_units]`` draw counts: each row, ``n_units`` units drawn uniformly with
    replacement. Depends only on its arguments, so every method of a cell gets the same resamples."""
    if n_units < 1 or replicates < 1:
        raise DataError(f"bootstrap needs at least one unit and one replicate (got {n_units}, {replicates})")
    rng = np.random.default_rng(seed)
    counts = np.empty((replicates, n_units), dtype=np.int32)
    for r in range(replicates):
        counts[r] = np.bincount(rng.integers(0, n_units, n_units), minlength=n_units)
    return counts


def _weights(counts: np.ndarray, a: np.ndarray, b: np.ndarray, dtype: type = np.int64) -> np.ndarray:
    """Copies of each comparison per replicate: ``c_a`` on a shared unit, else ``c_a * c_b``."""
    w = counts[:, a].astype(dtype)
    cross = a != b
    if cross.all():  # non-mated comparisons: one product, no masked copies
        w *= counts[:, b]
    elif cross.any():
        w[:, cross] *= counts[:, b[cross]]
    return w


def nonmated_totals(units: Units, counts: np.ndarray) -> np.ndarray:
    """Number of non-mated comparisons in each replicate (int64), without per-comparison work."""
    a, b, n = units.nonmated_a, units.nonmated_b, units.n_units
    same = a == b
    self_counts = np.bincount(a[same], minlength=n).astype(np.float64)
    pair_counts = None
    # A dense unit-pair matrix pays off only when comparisons fill much of it (IJB-C), not LFW's few.
    dense = n <= DENSE_UNITS and n * n <= 16 * int(np.count_nonzero(~same))
    if not same.all():
        ca, cb = a[~same], b[~same]
        if dense:
            pair_counts = np.bincount(ca * n + cb, minlength=n * n).astype(np.float64).reshape(n, n)
        else:
            from scipy.sparse import coo_matrix

            pair_counts = coo_matrix((np.ones(ca.size), (ca, cb)), shape=(n, n)).tocsr().T.tocsr()
    exact32 = (dense and pair_counts is not None
               and float(counts.max(initial=0)) * float(pair_counts.sum(axis=0).max()) < 2**24)
    if exact32:
        pair_counts = pair_counts.astype(np.float32)
    total = np.empty(len(counts))
    # Row blocks keep the float copy of the counts small; float sums of integers are exact here.
    block = max(1, BLOCK_ELEMENTS // max(n, 1))
    for start in range(0, len(counts), block):
        c = counts[start:start + block].astype(np.float64)
        part = c @ self_counts
        if pair_counts is not None:
            cm = (c.astype(np.float32) @ pair_counts if exact32 else c @ pair_counts) if dense \
                else (pair_counts @ c.T).T
            part += np.einsum("ri,ri->r", np.asarray(cm, dtype=np.float64), c)
        total[start:start + block] = part
    return np.rint(total).astype(np.int64)


def _lerp(lo: np.ndarray, hi: np.ndarray, t: np.ndarray) -> np.ndarray:
    """numpy's quantile interpolation, rounding included (``numpy._lerp``)."""
    diff = hi - lo
    return np.where(t >= 0.5, hi - diff * (1 - t), lo + diff * t)


def _quantile_ranks(totals: np.ndarray, fmr: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ascending ranks of the two neighbours numpy's linear quantile at ``1 - fmr`` interpolates
    between in a sorted sample of ``totals`` values, and the interpolation weight."""
    h = (totals - 1).astype(np.float64) * (np.float64(1.0) - np.float64(fmr))
    above = h >= totals - 1  # numpy then takes the largest value for both neighbours
    lower = np.where(above, totals - 1, np.floor(h)).astype(np.int64)
    upper = np.where(above, lower, lower + 1)
    return lower, upper, h - np.floor(h)


def _top(values: np.ndarray, size: int) -> np.ndarray:
    """Indices of the ``size`` largest values, largest first."""
    if size >= values.size:
        return np.argsort(values, kind="stable")[::-1]
    part = np.argpartition(values, values.size - size)[values.size - size:]
    return part[np.argsort(values[part], kind="stable")[::-1]]


def replicate_thresholds(nonmated_similarity: npt.ArrayLike, units: Units, counts: np.ndarray,
                         fmr: float = 1e-3, tail: int | None = None) -> np.ndarray:
    """Per replicate, ``np.quantile(materialised non-mated, 1 - fmr, method="linear")``; nan
    for a replicate without non-mated comparisons. ``tail``: how many top comparisons to
    weight first (default ``TAIL_FACTOR * fmr * n + 256``; it grows fourfold for replicates it misses)."""
    sim = np.asarray(nonmated_similarity)
    totals = nonmated_totals(units, counts)
    lower, upper, gamma = _quantile_ranks(totals, fmr)
    rank_lo, rank_hi = totals - 1 - lower, totals - 1 - upper  # ranks from the top
    out = np.full(len(totals), np.nan)
    todo = np.flatnonzero(totals > 0)
    size = min(sim.size, int(np.ceil(TAIL_FACTOR * fmr * sim.size)) + 256 if tail is None else max(1, tail))
    top_count = int(counts.max(initial=0))
    while todo.size:
        order = _top(sim, size)
        values = sim[order].astype(np.float64)
        a, b = units.nonmated_a[order], units.nonmated_b[order]
        # Cumulative copies stay below size x max(c)^2: int32 when that fits (half the memory traffic).
        dtype = np.int32 if size * top_count * top_count < 2**31 else np.int64
        missed = []
        block = max(1, min(BLOCK, BLOCK_ELEMENTS // size))
        for start in range(0, todo.size, block):
            rows = todo[start:start + block]
            cum = np.cumsum(_weights(counts[rows], a, b, dtype), axis=1, dtype=dtype)
            inside = cum[:, -1] > rank_lo[rows]
            missed.append(rows[~inside])
            rows, cum = rows[inside], cum[inside]
            # Position of the first cumulative count above the rank (cum is non-decreasing).
            pos_lo = np.array([np.searchsorted(c, r, side="right") for c, r in zip(cum, rank_lo[rows])], dtype=np.int64)
            pos_hi = np.array([np.searchsorted(c, r, side="right") for c, r in zip(cum, rank_hi[rows])], dtype=np.int64)
            out[rows] = _lerp(values[pos_lo], values[pos_hi], gamma[rows])
        todo = np.concatenate(missed)
        if todo.size and size >= sim.size:
            raise AssertionError("bootstrap threshold: a replicate's quantile lies outside all its comparisons")
        size = min(sim.size, 4 * size)
    return out


@dataclass(frozen=True)
class _MatedLevels:
    """Mated comparisons ordered by pair quality, with the start of each quality level."""

    similarity: np.ndarray
    unit_a: np.ndarray
    unit_b: np.ndarray
    level_starts: np.ndarray

    @classmethod
    def build(cls, similarity: np.ndarray, quality: np.ndarray, units: Units) -> _MatedLevels:
        order = np.argsort(quality, kind="stable")
        q = quality[order]
        starts = np.flatnonzero(np.concatenate(([True], q[1:] != q[:-1])))
        return cls(similarity[order], units.mated_a[order], units.mated_b[order], starts)


def _replicate_curve(level_weight: np.ndarray, level_errors: np.ndarray) -> Edc | None:
    """The EDC of one replicate from its per-level comparison and error counts, built exactly as
    :func:`bench.stats.edc.edc` builds the curve of the materialised data (absent levels dropped)."""
    present = level_weight > 0
    weight, errors = level_weight[present], level_errors[present]
    if weight.size == 0:
        return None
    n = int(weight.sum())
    starts = np.concatenate(([0], np.cumsum(weight)[:-1]))
    errors_left = int(errors.sum()) - np.concatenate(([0], np.cumsum(errors)[:-1]))
    return Edc(np.append(starts / n, 1.0), np.append(errors_left / (n - starts), 0.0), 0.0)


def curve_at(curve: Edc, grid: np.ndarray) -> np.ndarray:
    """FNMR of a non-interpolated EDC at each discard fraction of ``grid`` (left steps)."""
    return curve.fnmr[np.searchsorted(curve.discard_fraction, grid, side="right") - 1]


def replicate_paucs(mated_similarity: npt.ArrayLike, mated_quality: npt.ArrayLike,
                    nonmated_similarity: npt.ArrayLike, units: Units, counts: np.ndarray,
                    discard_limits: npt.ArrayLike, fmr: float = 1e-3,
                    curves: np.ndarray | None = None, grid: np.ndarray | None = None) -> np.ndarray:
    """``[replicates, limits]`` normalised pAUC of each replicate (fixed-threshold EDC).

    With ``grid`` and ``curves`` (``[replicates, len(grid)]``, filled here), each replicate's
    FNMR at the discard fractions of ``grid`` too: the material of the EDC band.
    """
    m_sim = np.asarray(mated_similarity, dtype=np.float64)
    m_q = np.asarray(mated_quality, dtype=np.float64)
    limits = np.atleast_1d(np.asarray(discard_limits, dtype=np.float64))
    if m_sim.shape != (units.mated_a.size,) or np.shape(nonmated_similarity) != (units.nonmated_a.size,):
        raise DataError(f"bootstrap units: {units.mated_a.size} mated / {units.nonmated_a.size} non-mated units "
                        f"for {m_sim.size} / {np.size(nonmated_similarity)} comparisons; derive the units from the "
                        "protocol the comparisons were computed on")
    thresholds = replicate_thresholds(nonmated_similarity, units, counts, fmr)
    levels = _MatedLevels.build(m_sim, m_q, units)
    out = np.full((len(counts), limits.size), np.nan)
    for start in range(0, len(counts), BLOCK):
        rows = np.arange(start, min(start + BLOCK, len(counts)))
        w = _weights(counts[rows], levels.unit_a, levels.unit_b)
        errors = w * (levels.similarity[None, :] < thresholds[rows, None])
        level_w = np.add.reduceat(w, levels.level_starts, axis=1)
        level_e = np.add.reduceat(errors, levels.level_starts, axis=1)
        for k, r in enumerate(rows):
            curve = _replicate_curve(level_w[k], level_e[k]) if np.isfinite(thresholds[r]) else None
            if curve is not None:
                out[r] = [pauc(curve, float(limit)) for limit in limits]
                if curves is not None and grid is not None:
                    curves[r] = curve_at(curve, grid)
    return out


def replicate_paucs_recomputed(mated_similarity: npt.ArrayLike, mated_quality: npt.ArrayLike,
                               nonmated_similarity: npt.ArrayLike, nonmated_quality: npt.ArrayLike, units: Units,
                               counts: np.ndarray, discard_limits: npt.ArrayLike, fmr: float = 1e-3) -> np.ndarray:
    """``[replicates, limits]`` normalised pAUC of each replicate, recomputed-threshold EDC.

    Exactly :func:`bench.stats.edc.edc_recomputed` on the materialised replicate: the copies of a
    comparison are adjacent in its pooled quality order, so a discard count ``k`` removes
    whole comparisons and possibly part of one's copies. Costs O(grid x comparisons) per
    replicate (no tail shortcut: each grid point has its own non-mated set). The grid is
    :data:`bench.stats.edc.RECOMPUTED_GRID`, the one :func:`bench.stats.edc.compute_edc` uses.
    """
    m_sim = np.asarray(mated_similarity, dtype=np.float64)
    n_sim = np.asarray(nonmated_similarity, dtype=np.float64)
    limits = np.atleast_1d(np.asarray(discard_limits, dtype=np.float64))
    n_m = m_sim.size
    pooled = np.argsort(np.concatenate((np.asarray(mated_quality), np.asarray(nonmated_quality))), kind="stable")
    is_mated = pooled < n_m
    by_similarity = np.argsort(n_sim, kind="stable")
    similarity_rank = np.empty(n_sim.size, dtype=np.int64)
    similarity_rank[by_similarity] = np.arange(n_sim.size)
    rank_of = similarity_rank[pooled[~is_mated] - n_m]  # pooled non-mated -> rank by similarity
    sorted_sim, m_pooled_sim = n_sim[by_similarity], m_sim[pooled[is_mated]]
    ua = np.concatenate((units.mated_a, units.nonmated_a))[pooled]
    ub = np.concatenate((units.mated_b, units.nonmated_b))[pooled]
    out = np.full((len(counts), limits.size), np.nan)
    for r in range(len(counts)):
        w = _weights(counts[r:r + 1], ua, ub)[0]
        before = np.cumsum(w) - w
        total = int(before[-1] + w[-1])
        fnmr = np.empty(RECOMPUTED_GRID.size)
        for g, u in enumerate(RECOMPUTED_GRID):
            left = w - np.clip(int(u * total) - before, 0, w)
            m_left, n_left = left[is_mated], np.zeros(n_sim.size, dtype=np.int64)
            n_left[rank_of] = left[~is_mated]
            n_total = int(n_left.sum())
            if n_total == 0:
                fnmr[g] = np.nan
                continue
            lower, upper, gamma = _quantile_ranks(np.array([n_total]), fmr)
            cum = np.cumsum(n_left)
            lo, hi = np.searchsorted(cum, [lower[0], upper[0]], side="right")
            threshold = _lerp(sorted_sim[lo:lo + 1], sorted_sim[hi:hi + 1], gamma)[0]
            kept = int(m_left.sum())
            fnmr[g] = int(m_left[m_pooled_sim < threshold].sum()) / kept if kept else 0.0
        curve = Edc(RECOMPUTED_GRID.astype(np.float64), fnmr, 0.0, "recomputed-threshold")
        out[r] = [pauc(curve, float(limit)) for limit in limits]
    return out


@dataclass(frozen=True)
class BootstrapResult:
    """Replicate pAUCs of one cell and their percentile intervals (one column per limit)."""

    discard_limits: np.ndarray
    replicates: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n_undefined: np.ndarray
    unit: str
    n_units: int
    seed: int
    fmr: float
    level: float = LEVEL
    band_grid: np.ndarray | None = None  # discard fractions of the EDC band (fixed-threshold only)
    band_low: np.ndarray | None = None
    band_high: np.ndarray | None = None
    interval: str = "percentile"  # how low / high were made: one of INTERVALS

    def record(self, file: str) -> dict[str, object]:
        """The run JSON's ``bootstrap`` entry; ``file`` is the replicates file (see :func:`save`)."""
        return {"file": file, "replicates": len(self.replicates), "unit": self.unit, "n_units": self.n_units,
                "seed": self.seed, "level": self.level, "method": self.interval,
                "interval": {repr(float(d)): [float(lo), float(hi)]
                             for d, lo, hi in zip(self.discard_limits, self.low, self.high)},
                "n_undefined": {repr(float(d)): int(k) for d, k in zip(self.discard_limits, self.n_undefined)}}


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the ``(1 - level) / 2`` and ``(1 + level) / 2`` linear quantiles of the
    finite values (nan where a column has none)."""
    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    low, high = np.full(values.shape[1], np.nan), np.full(values.shape[1], np.nan)
    for j in range(values.shape[1]):
        finite = values[np.isfinite(values[:, j]), j]
        if finite.size:
            low[j], high[j] = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2])
    return low, high


def bootstrap_pauc(mated_similarity: npt.ArrayLike, mated_quality: npt.ArrayLike,
                   nonmated_similarity: npt.ArrayLike, units: Units, discard_limits: npt.ArrayLike,
                   fmr: float = 1e-3, replicates: int = DEFAULT_REPLICATES, seed: int = 0,
                   variant: str = "fixed-threshold", level: float = LEVEL,
                   nonmated_quality: npt.ArrayLike | None = None, band_grid: npt.ArrayLike | None = None,
                   interval: str = "percentile") -> BootstrapResult:
    """Bootstrap the normalised pAUC of one cell at each discard limit (see module doc);
    ``nonmated_quality`` is needed by the recomputed-threshold variant only. With
    ``band_grid`` (fixed-threshold only) the result also holds the pointwise percentile band
    of the replicates' EDC curves (FNMR) at those discard fractions."""
    if not 0.0 < level < 1.0:
        raise DataError(f"bootstrap level must lie strictly between 0 and 1, got {level}")
    limits = np.atleast_1d(np.asarray(discard_limits, dtype=np.float64))
    counts = draw_counts(units.n_units, replicates, seed)
    grid = curves = None
    if variant == "fixed-threshold":
        if band_grid is not None:
            grid = np.asarray(band_grid, dtype=np.float64)
            curves = np.full((len(counts), grid.size), np.nan)
        reps = replicate_paucs(mated_similarity, mated_quality, nonmated_similarity, units, counts, limits, fmr,
                               curves, grid)
    elif variant == "recomputed-threshold":
        if nonmated_quality is None:
            raise DataError("recomputed-threshold bootstrap needs the non-mated pair qualities")
        reps = replicate_paucs_recomputed(mated_similarity, mated_quality, nonmated_similarity, nonmated_quality,
                                          units, counts, limits, fmr)
    else:
        raise DataError(f"unknown EDC variant {variant!r}; expected one of {VARIANTS}")
    if interval == "bca":
        if variant != "fixed-threshold":
            raise DataError("BCa intervals need the fixed-threshold EDC (its jackknife is one pass per unit)")
        ones = np.ones((1, units.n_units), dtype=np.int32)
        point = replicate_paucs(mated_similarity, mated_quality, nonmated_similarity, units, ones, limits, fmr)[0]
        jack = jackknife_paucs(mated_similarity, mated_quality, nonmated_similarity, units, limits, fmr)
        low, high = bca_interval(reps, point, jack, level)
    elif interval == "percentile":
        low, high = percentile_interval(reps, level)
    else:
        raise DataError(f"unknown bootstrap interval {interval!r}; expected one of {INTERVALS}")
    band = percentile_interval(curves, level) if curves is not None else (None, None)
    return BootstrapResult(limits, reps, low, high, (~np.isfinite(reps)).sum(axis=0), units.kind, units.n_units,
                           int(seed), float(fmr), float(level), grid, *band, interval=interval)


def save(path: str | os.PathLike[str], result: BootstrapResult) -> None:
    """Write the replicates (float64 ``[R, limits]``) and how they were drawn to ``path`` (.npz), atomically."""
    from bench.core.io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        band = ({} if result.band_grid is None else
                {"band_grid": result.band_grid, "band_low": result.band_low, "band_high": result.band_high})
        np.savez(fh, replicates=result.replicates, discard_limits=result.discard_limits, unit=np.str_(result.unit),
                 n_units=np.int64(result.n_units), seed=np.int64(result.seed), fmr=np.float64(result.fmr), **band)


@dataclass(frozen=True)
class StoredReplicates:
    """Replicate pAUCs read back from a file written by :func:`save`."""

    replicates: np.ndarray
    discard_limits: np.ndarray
    unit: str
    n_units: int
    seed: int
    fmr: float
    band: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (discard fractions, low, high) FNMR

    def resamples(self) -> tuple[str, int, int, int]:
        """What identifies the resamples: equal keys mean the same replicate draws."""
        return (self.unit, self.n_units, self.seed, len(self.replicates))


def load(path: str | os.PathLike[str]) -> StoredReplicates:
    """Read a replicates file; DataError naming it when absent or malformed."""
    try:
        with np.load(path, allow_pickle=False) as z:
            reps = np.asarray(z["replicates"], dtype=np.float64)
            limits = np.asarray(z["discard_limits"], dtype=np.float64)
            band = ((np.asarray(z["band_grid"]), np.asarray(z["band_low"]), np.asarray(z["band_high"]))
                    if "band_grid" in z.files else None)
            stored = StoredReplicates(reps, limits, str(z["unit"]), int(z["n_units"]), int(z["seed"]), float(z["fmr"]),
                                      band)
    except FileNotFoundError:
        raise DataError(f"{path}: bootstrap replicates file not found; re-run the cell with bootstrap on") from None
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: not a bootstrap replicates file ({exc}); re-run the cell") from None
    if reps.ndim != 2 or reps.shape[1] != limits.size:
        raise DataError(f"{path}: replicates of shape {reps.shape} do not match {limits.size} discard limits")
    return stored


def bootstrap_run(runs_dir: str | os.PathLike[str], run_id: str, mated_similarity: npt.ArrayLike, mated_quality: npt.ArrayLike,
                  nonmated_similarity: npt.ArrayLike, units: Units, discard_limits: npt.ArrayLike,
                  fmr: float = 1e-3, replicates: int = DEFAULT_REPLICATES, seed: int = 0,
                  variant: str = "fixed-threshold", nonmated_quality: npt.ArrayLike | None = None,
                  band_grid: npt.ArrayLike | None = None, interval: str = "percentile") -> dict[str, object]:
    """Bootstrap one run's cell, write ``runs_dir/<run_id>.boot.npz`` and return the run JSON's
    ``bootstrap`` entry (its ``file`` is relative to ``runs_dir``; its ``method`` the interval)."""
    result = bootstrap_pauc(mated_similarity, mated_quality, nonmated_similarity, units, discard_limits, fmr,
                            replicates, seed, variant, nonmated_quality=nonmated_quality, band_grid=band_grid,
                            interval=interval)
    name = f"{run_id}.boot.npz"
    save(Path(runs_dir) / name, result)
    return result.record(name)



def jackknife_paucs(mated_similarity: npt.ArrayLike, mated_quality: npt.ArrayLike,
                    nonmated_similarity: npt.ArrayLike, units: Units, discard_limits: npt.ArrayLike,
                    fmr: float = 1e-3) -> np.ndarray:
    """``[n_units, limits]`` fixed-threshold pAUC with each unit left out in turn (every other
    unit drawn once): the leave-one-out values BCa's acceleration is estimated from."""
    limits = np.atleast_1d(np.asarray(discard_limits, dtype=np.float64))
    out = np.empty((units.n_units, limits.size))
    step = 4 * BLOCK  # leave-one-out count rows built per chunk: n_units^2 of them at once would not fit IJB-C
    for start in range(0, units.n_units, step):
        rows = np.arange(start, min(start + step, units.n_units))
        counts = np.ones((rows.size, units.n_units), dtype=np.int32)
        counts[np.arange(rows.size), rows] = 0
        out[rows] = replicate_paucs(mated_similarity, mated_quality, nonmated_similarity, units, counts, limits, fmr)
    return out


def bca_interval(replicates: np.ndarray, point: npt.ArrayLike, jackknife: np.ndarray,
                 level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Per column, Efron's bias-corrected and accelerated (BCa) interval of the finite replicates.

    Bias correction ``z0 = Phi^-1((#{theta* < point} + #{theta* = point} / 2) / R)``;
    acceleration ``a = sum(d^3) / (6 sum(d^2)^1.5)`` with ``d`` the jackknife mean minus each
    finite leave-one-out value; the interval is the replicates' linear quantiles at
    ``Phi(z0 + (z0 + z) / (1 - a (z0 + z)))`` for ``z = Phi^-1((1 -+ level) / 2)``. nan where
    a column has no finite replicate or ``z0`` is infinite (every replicate on one side).
    """
    from scipy.stats import norm

    reps = np.asarray(replicates, dtype=np.float64).reshape(len(replicates), -1)
    jack = np.asarray(jackknife, dtype=np.float64).reshape(len(jackknife), -1)
    points = np.atleast_1d(np.asarray(point, dtype=np.float64))
    low, high = np.full(reps.shape[1], np.nan), np.full(reps.shape[1], np.nan)
    z = norm.ppf([(1 - level) / 2, (1 + level) / 2])
    for j in range(reps.shape[1]):
        finite = reps[np.isfinite(reps[:, j]), j]
        leave = jack[np.isfinite(jack[:, j]), j]
        if finite.size == 0 or not np.isfinite(points[j]):
            continue
        share = (np.count_nonzero(finite < points[j]) + 0.5 * np.count_nonzero(finite == points[j])) / finite.size
        z0 = norm.ppf(share)
        if not np.isfinite(z0):
            continue
        d = leave.mean() - leave if leave.size else np.zeros(1)
        spread = float(np.sum(d ** 2))
        accel = float(np.sum(d ** 3)) / (6.0 * spread ** 1.5) if spread > 0 else 0.0
        shifted = z0 + z
        low[j], high[j] = np.quantile(finite, norm.cdf(z0 + shifted / (1 - accel * shifted)))
    return low, high

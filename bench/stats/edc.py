"""Error-versus-Discard Characteristic (EDC) curves and their normalised pAUC.

Two named variants (``VARIANTS``); :func:`compute_edc` dispatches between them.

``fixed-threshold`` (default; Schlett et al. 2023, arXiv 2303.13294):

* The threshold is :func:`threshold_at_fmr`: ``np.quantile(nonmated, 1 - fmr,
  method="linear")`` over ALL non-mated similarities, fixed before any discarding.
* A mated comparison is a false non-match iff ``similarity < threshold`` (strict: a
  similarity equal to the threshold is a match).
* Each mated comparison carries a pair quality (:func:`pair_quality`, default
  ``min(q_a, q_b)``). Comparisons are discarded lowest pair quality first and a group of
  equal pair qualities is always discarded together, never split.
* :func:`edc` returns one point per distinct quality level ``v``: ``discard_fraction`` =
  (#comparisons with quality < v) / #mated and ``fnmr`` = errors left / comparisons left.
  The first point is (0, full FNMR). A final point (1.0, 0.0) is appended (everything
  discarded; no comparison left, no error left), since no level point reaches 1.0.

``recomputed-threshold`` (as the MagFace ``eval_quality.py`` and CR-FIQA ``ERC/erc.py``
scripts evaluate): mated and non-mated comparisons are pooled (N in all) and ordered by
pair quality, ascending; ties keep input order, mated before non-mated (a stable sort of
the concatenation; the scripts' unstable ``argsort`` leaves ties arbitrary). For each
``u`` on the grid 0, 0.05, ..., 0.95 (a custom grid must start at 0) the first ``k = int(u * N)`` (float64 product,
truncated, as in the scripts) pooled comparisons are discarded, so mated and non-mated
lose whatever share of the k falls on them, and a tie group may be split. The threshold is
re-chosen with :func:`threshold_at_fmr` on the remaining non-mated (the scripts pick the
nearest ROC operating point instead) and FNMR (strict ``<``, as above; the scripts, on
angular distances, count a tie with the threshold as a non-match) is taken on the
remaining mated. The curve's points are (u, FNMR); FNMR is 0.0 when no mated comparison
remains and nan when no non-mated remains. No (1.0, 0.0) point is appended; :func:`pauc`
applies to it unchanged (the scripts report a trapezoidal AUC instead).

:func:`pauc` integrates the non-interpolated curve as a left step function (each point's
FNMR holds until the next point's discard fraction; the last point's until the limit)
from 0 to ``discard_limit``, the last step cut at the limit. Normalised pAUC = area /
(``discard_limit`` x FNMR at discard 0): 1.0 is no better than not discarding, lower is
better. It is nan when the FNMR at discard 0 is 0 (no error to remove: undefined).

Beside the curve:

* :func:`best_pauc`: the floor of the fixed-threshold pAUC ("area under theoretical best",
  Schlett et al. 2023): the curve when the lowest-quality comparisons are exactly the false
  non-matches, one per level; :func:`floor_relative_pauc` maps a pAUC to
  ``(pAUC - best) / (1 - best)`` (0 = the floor, 1 = no better than not discarding), so cells
  with very different floors (LFW x dlib 0.054, CFP-FP x dlib 0.967 in our reference set) are
  comparable.
* :func:`trapezoid_auc`: the author scripts' AUC convention (variant ``author-scripts``:
  recomputed-threshold curve, trapezoid rule over its grid 0 to 0.95, unnormalised).
* :func:`evf`: the error-versus-FMR curve, FNMR at a fixed discard fraction against the FMR
  target (threshold fixed on all non-mated comparisons, as the fixed-threshold EDC).
* :func:`fmr_support`: how many false matches the FMR threshold rests on; below
  :data:`MIN_IMPOSTORS` the FMR target is nominal (LFW View 2: about 3 at FMR 1e-3).

Example (threshold 0.5; similarity 0.5 is a match):

>>> e = edc([0.2, 0.6, 0.5, 0.4], [1.0, 2.0, 2.0, 3.0], threshold=0.5)
>>> e.discard_fraction.tolist(), e.fnmr.tolist()
([0.0, 0.25, 0.75, 1.0], [0.5, 0.3333333333333333, 1.0, 0.0])
>>> round(pauc(e, 0.5), 6)  # (0.5*0.25 + (1/3)*0.25) / (0.5*0.5)
0.833333
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bench.core.errors import DataError

VARIANTS = ("fixed-threshold", "recomputed-threshold")
PAIR_QUALITY_RULES = ("min", "mean", "product")
RECOMPUTED_GRID = np.arange(20) * 0.05  # 0, 0.05, ..., 0.95: same floats as np.arange(0, .98, .05)

ArrayLike = npt.ArrayLike


@dataclass(frozen=True)
class Edc:
    """A non-interpolated EDC curve: points (``discard_fraction[i]``, ``fnmr[i]``).

    ``threshold`` is the similarity threshold of the curve (for ``recomputed-threshold``,
    the one chosen at discard 0); ``variant`` names the variant that produced it.
    """

    discard_fraction: np.ndarray
    fnmr: np.ndarray
    threshold: float
    variant: str = "fixed-threshold"


def _vector(values: ArrayLike, name: str, *, dtype: type | None = np.float64) -> np.ndarray:
    """Return ``values`` as a non-empty, finite 1-D array, or raise DataError naming it."""
    try:
        arr = np.asarray(values) if dtype is None else np.asarray(values, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name}: not numeric ({exc})") from None
    if arr.ndim != 1:
        raise DataError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise DataError(f"{name}: expected at least one comparison, got none")
    if not np.issubdtype(arr.dtype, np.number) or not np.isfinite(arr).all():
        raise DataError(f"{name}: contains non-finite (nan/inf) or non-numeric values")
    return arr


def _same_length(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if a.shape != b.shape:
        raise DataError(f"{names}: lengths differ ({a.size} vs {b.size})")


def _check_fmr(fmr: float) -> None:
    if not 0.0 < fmr < 1.0:
        raise DataError(f"fmr must lie strictly between 0 and 1, got {fmr}")


def linear_quantile(values: np.ndarray, q: float) -> float:
    """``np.quantile(values.astype(np.float64), q, method="linear")``, bit for bit, from one
    single-point partition and the minimum of the part above it (numpy partitions at four
    points and, for float32 input, needs a float64 copy first).

    numpy's rule: virtual index ``h = (n - 1) * q`` (float64); when ``h >= n - 1`` the
    maximum; else the neighbours ``v[floor(h)]`` and ``v[floor(h) + 1]`` of the sorted
    values, interpolated with weight ``h - floor(h)`` by numpy's two-sided lerp. Converting
    float32 to float64 is exact and monotone, so partitioning the float32 values selects the
    same neighbours. ``values`` must be non-empty, 1-D and free of nan.
    """
    n = values.size
    h = (n - 1) * np.float64(q)
    if h >= n - 1:
        return float(np.float64(values.max()))
    k = int(np.floor(h))
    part = np.partition(values, k)
    lo, hi = np.float64(part[k]), np.float64(part[k + 1:].min())
    gamma = h - np.floor(h)
    diff = hi - lo
    return float(hi - diff * (1 - gamma) if gamma >= 0.5 else lo + diff * gamma)


def threshold_at_fmr(nonmated_similarity: ArrayLike, fmr: float = 1e-3) -> float:
    """Linear (``np.quantile``) quantile of all non-mated similarities at ``1 - fmr``
    (computed by :func:`linear_quantile`, identical to numpy's)."""
    _check_fmr(fmr)
    scores = _vector(nonmated_similarity, "nonmated_similarity", dtype=None)
    return linear_quantile(scores, 1.0 - fmr)


def pair_quality(q_a: ArrayLike, q_b: ArrayLike, rule: str = "min") -> np.ndarray:
    """Pair quality of comparisons from the two images' qualities: min, mean or product."""
    a, b = _vector(q_a, "q_a"), _vector(q_b, "q_b")
    _same_length(a, b, "q_a/q_b")
    if rule == "min":
        return np.minimum(a, b)
    if rule == "mean":
        return (a + b) / 2.0
    if rule == "product":
        return a * b
    raise DataError(f"unknown pair-quality rule {rule!r}; expected one of {PAIR_QUALITY_RULES}")


def _frozen(arr: np.ndarray) -> np.ndarray:
    arr.flags.writeable = False
    return arr


def edc(mated_similarity: ArrayLike, mated_pair_quality: ArrayLike, threshold: float) -> Edc:
    """Fixed-threshold EDC: one point per distinct quality level, then (1.0, 0.0)."""
    sim = _vector(mated_similarity, "mated_similarity")
    quality = _vector(mated_pair_quality, "mated_pair_quality")
    _same_length(sim, quality, "mated_similarity/mated_pair_quality")
    if not np.isfinite(threshold):
        raise DataError(f"threshold must be finite, got {threshold}")
    n = sim.size
    order = np.argsort(quality, kind="stable")
    sorted_quality = quality[order]
    errors_before = np.concatenate(([0], np.cumsum(sim[order] < threshold)))
    is_new_level = np.concatenate(([True], sorted_quality[1:] != sorted_quality[:-1]))
    level_starts = np.flatnonzero(is_new_level)
    errors_left = errors_before[-1] - errors_before[level_starts]
    discard = np.append(level_starts / n, 1.0)
    fnmr = np.append(errors_left / (n - level_starts), 0.0)
    return Edc(_frozen(discard), _frozen(fnmr), float(threshold), "fixed-threshold")


def edc_recomputed(mated_similarity: ArrayLike, mated_pair_quality: ArrayLike,
                   nonmated_similarity: ArrayLike, nonmated_pair_quality: ArrayLike,
                   fmr: float = 1e-3, grid: ArrayLike | None = None) -> Edc:
    """Recomputed-threshold EDC on a discard grid (default 0, 0.05, ..., 0.95); see module doc."""
    _check_fmr(fmr)
    m_sim = _vector(mated_similarity, "mated_similarity")
    m_q = _vector(mated_pair_quality, "mated_pair_quality")
    n_sim = _vector(nonmated_similarity, "nonmated_similarity", dtype=None)
    n_q = _vector(nonmated_pair_quality, "nonmated_pair_quality", dtype=None)
    _same_length(m_sim, m_q, "mated_similarity/mated_pair_quality")
    _same_length(n_sim, n_q, "nonmated_similarity/nonmated_pair_quality")
    fractions = RECOMPUTED_GRID if grid is None else _vector(grid, "grid")
    if fractions[0] != 0 or np.any(fractions >= 1) or np.any(np.diff(fractions) <= 0):
        raise DataError("grid: discard fractions must start at 0 and increase strictly below 1")
    n_mated, total = m_sim.size, m_sim.size + n_sim.size
    # One stable sort of the pooled qualities; every grid point is then a suffix of it.
    order = np.argsort(np.concatenate((m_q, n_q)), kind="stable")
    is_mated = order < n_mated
    m_sorted = m_sim[order[is_mated]]
    n_sorted = n_sim[order[~is_mated] - n_mated].astype(np.float64, copy=False)
    del order
    fnmr = np.empty(fractions.size)
    thresholds = np.empty(fractions.size)
    for i, u in enumerate(fractions):
        k = int(u * total)
        mated_cut = np.count_nonzero(is_mated[:k])
        m_left, n_left = m_sorted[mated_cut:], n_sorted[k - mated_cut:]
        if n_left.size == 0:
            thresholds[i] = fnmr[i] = np.nan
            continue
        thresholds[i] = linear_quantile(n_left, 1.0 - fmr)
        fnmr[i] = np.count_nonzero(m_left < thresholds[i]) / m_left.size if m_left.size else 0.0
    return Edc(_frozen(np.array(fractions, dtype=np.float64)), _frozen(fnmr),
               float(thresholds[0]), "recomputed-threshold")


def pauc(curve: Edc, discard_limit: float, normalize: bool = True) -> float:
    """Left-step area under ``curve`` on [0, discard_limit]; normalised by limit x FNMR(0)."""
    if not 0.0 < discard_limit <= 1.0:
        raise DataError(f"discard_limit must lie in (0, 1], got {discard_limit}")
    x, y = curve.discard_fraction, curve.fnmr
    step_end = np.minimum(np.append(x[1:], np.inf), discard_limit)
    area = float(np.sum(y * np.clip(step_end - x, 0.0, None)))
    if not normalize:
        return area
    if y[0] == 0:
        return float("nan")
    return area / (discard_limit * float(y[0]))


def pauc_undefined_reason(curve: Edc) -> str:
    """Why :func:`pauc` of ``curve`` is undefined (nan at every limit), or ``""`` when it is a number.

    :func:`pauc` returns nan rather than raising: bootstrap replicates count such draws
    apart; a run writes this reason beside its rows (``pauc_note``).
    """
    if curve.fnmr[0] == 0:
        return "FNMR is 0 at zero discard (no false non-match to remove)"
    if np.isnan(curve.fnmr).any():
        return "FNMR undefined at some discard (no non-mated comparison left)"
    return ""


def compute_edc(variant: str, mated_similarity: ArrayLike, mated_pair_quality: ArrayLike,
                nonmated_similarity: ArrayLike, nonmated_pair_quality: ArrayLike | None,
                fmr: float = 1e-3) -> Edc:
    """EDC by variant name (one of ``VARIANTS``); fixed-threshold ignores non-mated quality."""
    if variant == "fixed-threshold":
        return edc(mated_similarity, mated_pair_quality,
                   threshold_at_fmr(nonmated_similarity, fmr))
    if variant == "recomputed-threshold":
        if nonmated_pair_quality is None:
            raise DataError("recomputed-threshold EDC needs the non-mated pair qualities")
        return edc_recomputed(mated_similarity, mated_pair_quality, nonmated_similarity,
                              nonmated_pair_quality, fmr)
    raise DataError(f"unknown EDC variant {variant!r}; expected one of {VARIANTS}")


def best_pauc(fnmr_at_zero: float, n_mated: int, discard_limit: float) -> float:
    """Normalised pAUC of the theoretical best fixed-threshold EDC ("area under theoretical best",
    Schlett et al. 2023): the lowest pAUC any pair-quality assignment can reach on a cell whose
    FNMR at discard 0 is ``fnmr_at_zero`` over ``n_mated`` mated comparisons.

    With ``E = fnmr_at_zero * n_mated`` false non-matches, discarding ``j`` comparisons leaves at
    least ``E - j`` errors among ``n_mated - j`` comparisons, and ``(E - j) / (n - j)`` falls with
    ``j``; a level of :func:`edc` starts at some ``j <= x * n``, so the left-step curve at ``x`` is
    at least ``max(0, E - floor(x n)) / (n - floor(x n))``. That bound is reached when each false
    non-match has its own quality level below every match (then every ``j`` is a level start),
    so the best curve is that step function and its area the sum of its steps up to the limit.
    nan when undefined: no error at discard 0 (as :func:`pauc`) or no mated comparison.
    """
    if not 0.0 < discard_limit <= 1.0:
        raise DataError(f"discard_limit must lie in (0, 1], got {discard_limit}")
    if n_mated < 1 or not 0.0 <= fnmr_at_zero <= 1.0:
        raise DataError(f"best pAUC needs n_mated >= 1 and FNMR in [0, 1], got {n_mated} and {fnmr_at_zero}")
    errors = round(float(fnmr_at_zero) * n_mated)
    if errors == 0:
        return float("nan")
    j = np.arange(errors)
    step_end = np.minimum((j + 1) / n_mated, discard_limit)
    area = float(np.sum((errors - j) / (n_mated - j) * np.clip(step_end - j / n_mated, 0.0, None)))
    return area / (discard_limit * errors / n_mated)


def floor_relative_pauc(pauc_value: ArrayLike, best: float) -> np.ndarray:
    """``(pAUC - best) / (1 - best)``: 0 at the theoretical best (:func:`best_pauc`), 1 at no
    better than not discarding; nan where ``best`` is nan or 1 (nothing to gain)."""
    values = np.asarray(pauc_value, dtype=np.float64)
    if not np.isfinite(best) or best >= 1.0:
        return np.full(values.shape, np.nan)
    return (values - best) / (1.0 - best)


def trapezoid_auc(curve: Edc) -> float:
    """The author scripts' AUC (variant ``author-scripts``): the unnormalised trapezoid area under
    a recomputed-threshold curve's points, from its first to its last grid point (0 to 0.95 on
    :data:`RECOMPUTED_GRID`). CR-FIQA's ``ERC/erc.py`` applies ``sklearn.metrics.auc`` (the
    trapezoid rule) to its FNMR on ``np.arange(0, 0.98, 0.05)``; MagFace's ``eval_quality.py``
    draws the same curve and reports no AUC. nan where a point's FNMR is nan (no non-mated left)."""
    if curve.variant != "recomputed-threshold":
        raise DataError(f"the author scripts' AUC integrates a recomputed-threshold curve, not {curve.variant!r}")
    x, y = curve.discard_fraction, curve.fnmr
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


MIN_IMPOSTORS = 10  # fewer non-mated comparisons at or above the threshold: the FMR target is nominal


@dataclass(frozen=True)
class FmrSupport:
    """How many non-mated comparisons the FMR threshold rests on, and the FMR it realises."""

    fmr: float
    n_nonmated: int
    n_false_matches: int  # non-mated similarities >= threshold (equal counts as a match)
    realised_fmr: float

    @property
    def nominal(self) -> bool:
        """True when fewer than :data:`MIN_IMPOSTORS` false matches define the operating point:
        the threshold is then an interpolation between a handful of extreme scores."""
        return self.n_false_matches < MIN_IMPOSTORS


def fmr_support(nonmated_similarity: ArrayLike, fmr: float = 1e-3) -> FmrSupport:
    """The false matches at :func:`threshold_at_fmr`'s threshold (e.g. LFW View 2's 3,000
    non-mated comparisons at FMR 1e-3: about 3), for stating when an FMR target is nominal."""
    scores = _vector(nonmated_similarity, "nonmated_similarity")
    threshold = threshold_at_fmr(scores, fmr)
    false_matches = int(np.count_nonzero(scores >= threshold))
    return FmrSupport(float(fmr), int(scores.size), false_matches, false_matches / scores.size)


@dataclass(frozen=True)
class Evf:
    """An error-versus-FMR curve: FNMR at each FMR target after discarding ``discard``."""

    fmr: np.ndarray
    fnmr: np.ndarray
    threshold: np.ndarray
    discard: float


def evf(mated_similarity: ArrayLike, mated_pair_quality: ArrayLike, nonmated_similarity: ArrayLike,
        fmrs: ArrayLike, discard: float) -> Evf:
    """Error-versus-FMR (EVF) curve beside the EDC: for each FMR target, the threshold is
    :func:`threshold_at_fmr` on all non-mated comparisons (fixed before discarding, as the
    fixed-threshold EDC) and the FNMR is that EDC's left-step value at discard fraction
    ``discard`` (``discard=0``: the plain FNMR-versus-FMR curve of the FR model). Where the EDC
    fixes the operating point and varies the discard, the EVF fixes the discard and varies the
    operating point: whether a quality measure's gain holds away from FMR 1e-3."""
    return evf_curves(mated_similarity, mated_pair_quality, nonmated_similarity, fmrs, [discard])[0]


def evf_curves(mated_similarity: ArrayLike, mated_pair_quality: ArrayLike, nonmated_similarity: ArrayLike,
               fmrs: ArrayLike, discards: Sequence[float]) -> list[Evf]:
    """:func:`evf` at each of ``discards``, from one threshold and one EDC per FMR target."""
    targets = _vector(fmrs, "fmrs")
    for discard in discards:
        if not 0.0 <= discard < 1.0:
            raise DataError(f"discard must lie in [0, 1), got {discard}")
    thresholds = np.array([threshold_at_fmr(nonmated_similarity, float(f)) for f in targets])
    fnmr = np.empty((len(discards), targets.size))
    for i, threshold in enumerate(thresholds):
        curve = edc(mated_similarity, mated_pair_quality, float(threshold))
        at = np.searchsorted(curve.discard_fraction, np.asarray(discards, dtype=np.float64), side="right") - 1
        fnmr[:, i] = curve.fnmr[at]
    return [Evf(_frozen(targets.copy()), _frozen(fnmr[k].copy()), _frozen(thresholds.copy()), float(d))
            for k, d in enumerate(discards)]

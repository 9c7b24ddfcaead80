"""EDC / pAUC engine against slow oracles written straight from the definitions."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bench.stats.edc
from bench.core.errors import DataError
from bench.stats.edc import VARIANTS, Edc, compute_edc, edc, edc_recomputed, pair_quality, pauc, threshold_at_fmr

GRID = [i * 0.05 for i in range(20)]


Points = list[tuple[float, float]]


def _reference_edc(sims: list[float], quals: list[float], threshold: float) -> Points:
    """One point per distinct quality level v: discard everything below v, count errors left."""
    n = len(sims)
    points = []
    for level in sorted(set(quals)):
        kept = [i for i in range(n) if quals[i] >= level]
        errors = sum(1 for i in kept if sims[i] < threshold)
        points.append(((n - len(kept)) / n, errors / len(kept)))
    points.append((1.0, 0.0))
    return points


def _reference_pauc(points: Points, limit: float, normalize: bool = True) -> float:
    area = 0.0
    for i, (x, y) in enumerate(points):
        if x >= limit:
            break
        next_x = points[i + 1][0] if i + 1 < len(points) else math.inf
        area += y * (min(next_x, limit) - x)
    if not normalize:
        return area
    return math.nan if points[0][1] == 0 else area / (limit * points[0][1])


def _reference_quantile(values: list[float], p: float) -> float:
    """Linear-interpolation quantile ('type 7'), written out by hand."""
    ordered = sorted(values)
    h = (len(ordered) - 1) * p
    lo = math.floor(h)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (h - lo) * (ordered[hi] - ordered[lo])


def _reference_recomputed(m_sim: list[float], m_q: list[float], n_sim: list[float],
                          n_q: list[float], fmr: float, grid: list[float]) -> list[float]:
    """Pool, sort by quality, cut int(u * N) at each grid point, re-threshold, count FNMR."""
    pooled = [(q, True, s) for s, q in zip(m_sim, m_q)]
    pooled += [(q, False, s) for s, q in zip(n_sim, n_q)]
    pooled.sort(key=lambda item: item[0])  # Python's sort is stable: ties keep mated first
    fnmrs = []
    for u in grid:
        kept = pooled[int(u * len(pooled)):]
        mated = [s for _, is_mated, s in kept if is_mated]
        nonmated = [s for _, is_mated, s in kept if not is_mated]
        threshold = _reference_quantile(nonmated, 1 - fmr)
        errors = 0
        for s in mated:
            if s < threshold:
                errors += 1
        fnmrs.append(errors / len(mated) if mated else 0.0)
    return fnmrs


def _points(curve: Edc) -> Points:
    return list(zip(curve.discard_fraction.tolist(), curve.fnmr.tolist()))


def _assert_matches_reference(sims, quals, threshold):
    curve = edc(sims, quals, threshold)
    expected = _reference_edc(list(sims), list(quals), threshold)
    assert curve.discard_fraction.dtype == np.float64 and curve.fnmr.dtype == np.float64
    np.testing.assert_allclose(_points(curve), expected, rtol=0, atol=1e-12)
    limits = [0.05, 0.2, 0.3, 1.0] + [x for x, _ in expected if 0 < x <= 1][:3]
    for limit in limits:
        for normalize in (True, False):
            got, want = pauc(curve, limit, normalize), _reference_pauc(expected, limit, normalize)
            assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-12)


def test_module_docstring_example():
    assert doctest.testmod(bench.stats.edc).failed == 0


def test_hand_worked_six_pairs():
    # threshold 0.5; errors are sims < 0.5: A(0.2), D(0.4), F(0.3); C(0.5) equals it -> match.
    #   pair:  A    B    C    D    E    F
    sims = [0.2, 0.6, 0.5, 0.4, 0.9, 0.3]
    quals = [0.1, 0.2, 0.2, 0.3, 0.5, 0.5]
    # level 0.1: discard 0/6, errors 3/6 = 0.5
    # level 0.2: discard A -> 1/6, left B..F, errors D,F = 2/5 = 0.4
    # level 0.3: discard B,C together -> 3/6 = 0.5, left D,E,F, errors 2/3
    # level 0.5: discard D -> 4/6, left E,F, errors F = 1/2
    # final: (1.0, 0.0)
    curve = edc(sims, quals, 0.5)
    np.testing.assert_allclose(curve.discard_fraction, [0.0, 1 / 6, 0.5, 4 / 6, 1.0])
    np.testing.assert_allclose(curve.fnmr, [0.5, 0.4, 2 / 3, 0.5, 0.0])
    assert curve.threshold == 0.5
    # pAUC@0.3 (between points): 0.5*(1/6) + 0.4*(0.3 - 1/6) = 1/12 + 4/75 = 41/300;
    # normalised: (41/300) / (0.3 * 0.5) = 41/45.
    assert pauc(curve, 0.3, normalize=False) == pytest.approx(41 / 300)
    assert pauc(curve, 0.3) == pytest.approx(41 / 45)
    # pAUC@0.5 (exactly on a point): 1/12 + 0.4*(1/2 - 1/6) = 13/60; normalised 13/15.
    assert pauc(curve, 0.5) == pytest.approx(13 / 15)


@pytest.mark.parametrize("size", [1, 2, 7, 50, 300])
@pytest.mark.parametrize("decimals", [1, None])
def test_random_inputs_match_reference(size, decimals):
    rng = np.random.default_rng(1000 + size)
    sims = rng.normal(0.4, 0.2, size)
    quals = rng.random(size)
    if decimals is not None:
        quals = np.round(quals, decimals)
    for threshold in (float(np.median(sims)), 0.3, -5.0, 5.0):
        _assert_matches_reference(sims.tolist(), quals.tolist(), threshold)


def test_all_equal_qualities_discard_nothing_until_everything():
    sims = [0.1, 0.9, 0.2, 0.8]
    curve = edc(sims, [0.7] * 4, 0.5)
    assert _points(curve) == [(0.0, 0.5), (1.0, 0.0)]
    assert pauc(curve, 0.3) == pytest.approx(1.0)


@pytest.mark.parametrize("sim,fnmr", [(0.1, 1.0), (0.9, 0.0)])
def test_single_comparison(sim, fnmr):
    curve = edc([sim], [0.3], 0.5)
    assert _points(curve) == [(0.0, fnmr), (1.0, 0.0)]
    assert pauc(curve, 0.3, normalize=False) == pytest.approx(0.3 * fnmr)
    assert math.isnan(pauc(curve, 0.3)) == (fnmr == 0.0)  # nothing to remove: undefined


def test_threshold_equal_to_mated_similarities_is_a_match():
    curve = edc([0.5, 0.5, 0.49999, 0.7], [1, 2, 3, 4], 0.5)
    assert curve.fnmr[0] == 0.25
    _assert_matches_reference([0.5, 0.5, 0.49999, 0.7], [1, 2, 3, 4], 0.5)


def test_perfect_quality_falls_fastest_and_anti_perfect_does_not_help():
    rng = np.random.default_rng(7)
    sims = rng.normal(0.5, 0.2, 400)
    threshold = 0.35
    errors, n = int(np.sum(sims < threshold)), sims.size
    perfect = edc(sims, sims, threshold)
    k = np.arange(n)
    np.testing.assert_allclose(perfect.fnmr[:-1], np.maximum(errors - k, 0) / (n - k))
    for limit in (0.1, 0.2, 0.3):
        best = pauc(perfect, limit)
        for seed in range(5):
            shuffled = edc(sims, np.random.default_rng(seed).random(n), threshold)
            assert best <= pauc(shuffled, limit)
        assert pauc(edc(sims, -sims, threshold), limit) >= 1.0


def test_threshold_at_fmr_is_linear_quantile_of_all_nonmated():
    rng = np.random.default_rng(3)
    scores = rng.normal(0, 0.1, 5001)
    for fmr in (1e-3, 1e-2, 0.3):
        want = _reference_quantile(scores.tolist(), 1 - fmr)
        assert threshold_at_fmr(scores, fmr) == pytest.approx(want, abs=1e-15)
    as32 = scores.astype(np.float32)
    assert threshold_at_fmr(as32) == float(np.quantile(as32.astype(np.float64), 0.999))
    np.testing.assert_array_equal(as32, scores.astype(np.float32))  # input left untouched


def test_pair_quality_rules():
    a, b = [0.2, 0.9], [0.5, 0.4]
    np.testing.assert_allclose(pair_quality(a, b), [0.2, 0.4])
    np.testing.assert_allclose(pair_quality(a, b, "mean"), [0.35, 0.65])
    np.testing.assert_allclose(pair_quality(a, b, "product"), [0.1, 0.36])
    with pytest.raises(DataError, match="rule"):
        pair_quality(a, b, "max")


@pytest.mark.parametrize("call, message", [
    (lambda: edc([0.1, 0.2], [0.3], 0.5), "lengths differ"),
    (lambda: edc([[0.1]], [[0.3]], 0.5), "1-D"),
    (lambda: edc([], [], 0.5), "at least one"),
    (lambda: edc([0.1, np.nan], [0.3, 0.4], 0.5), "non-finite"),
    (lambda: edc([0.1], [np.inf], 0.5), "mated_pair_quality"),
    (lambda: edc(["a"], [0.3], 0.5), "not numeric"),
    (lambda: threshold_at_fmr([], 1e-3), "nonmated_similarity"),
    (lambda: threshold_at_fmr([0.1], 0.0), "fmr"),
    (lambda: pauc(edc([0.1], [0.3], 0.5), 0.0), "discard_limit"),
    (lambda: compute_edc("bogus", [0.1], [0.3], [0.2], [0.3]), "unknown EDC variant"),
    (lambda: compute_edc("recomputed-threshold", [0.1], [0.3], [0.2], None), "non-mated pair"),
    (lambda: edc_recomputed([0.1], [0.3], [0.2, 0.1], [0.3], 1e-3), "lengths differ"),
    (lambda: edc_recomputed([0.1], [0.3], [0.2], [0.3], 1e-3, [0.0, 0.5, 0.2]), "grid"),
    (lambda: edc_recomputed([0.1], [0.3], [0.2], [0.3], 1e-3, [0.1, 0.2]), "start at 0"),
])
def test_bad_input_raises_data_error(call, message):
    with pytest.raises(DataError, match=message):
        call()


def test_edc_is_immutable():
    curve = edc([0.1, 0.9], [0.2, 0.3], 0.5)
    with pytest.raises(ValueError):
        curve.fnmr[0] = 0.0
    with pytest.raises(AttributeError):
        curve.threshold = 0.1  # type: ignore[misc]


@pytest.mark.parametrize("seed, n_mated, n_nonmated", [(0, 40, 3000), (1, 200, 2000), (2, 5, 50)])
def test_recomputed_matches_reference(seed, n_mated, n_nonmated):
    rng = np.random.default_rng(seed)
    m_sim, n_sim = rng.normal(0.6, 0.2, n_mated), rng.normal(0.0, 0.15, n_nonmated)
    m_q = np.round(rng.random(n_mated), 1)  # many ties, also across mated/non-mated
    n_q = np.round(rng.random(n_nonmated), 1)
    fmr = 1e-2
    curve = edc_recomputed(m_sim, m_q, n_sim, n_q, fmr)
    want = _reference_recomputed(m_sim.tolist(), m_q.tolist(), n_sim.tolist(), n_q.tolist(),
                                 fmr, GRID)
    np.testing.assert_array_equal(curve.discard_fraction, np.arange(0, 0.98, 0.05))
    np.testing.assert_allclose(curve.fnmr, want, rtol=0, atol=1e-12)
    assert curve.threshold == pytest.approx(_reference_quantile(n_sim.tolist(), 1 - fmr))
    assert curve.variant == "recomputed-threshold"
    assert _reference_pauc(_points(curve), 0.3) == pytest.approx(pauc(curve, 0.3))


def test_recomputed_threshold_equal_to_mated_similarity_is_a_match():
    nonmated = np.arange(11) / 10  # fmr 0.1: quantile index (11 - 1) * 0.9 = 9 exactly -> 0.9
    curve = edc_recomputed([0.9, 0.9, 0.5], [1, 1, 1], nonmated, np.ones(11), 0.1, [0.0])
    assert curve.threshold == 0.9 and curve.fnmr.tolist() == [1 / 3]


def test_recomputed_reports_nan_when_no_nonmated_left_and_zero_when_no_mated_left():
    # 1 non-mated at the lowest quality: gone once k >= 1 of the 5 pooled comparisons.
    curve = edc_recomputed([0.9, 0.1, 0.9, 0.9], [1, 2, 3, 4], [0.5], [0], 1e-3, [0.0, 0.2, 0.8])
    assert curve.fnmr[0] == 0.25 and np.isnan(curve.fnmr[1:]).all()
    # The 3 mated at the lowest qualities: none left from k = 3 of 10.
    curve = edc_recomputed([0.9, 0.1, 0.9], [0, 0, 0], np.arange(7) / 10, np.ones(7), 0.1,
                           [0.0, 0.3])
    assert curve.fnmr.tolist() == [1 / 3, 0.0]


def test_compute_edc_dispatches_to_both_variants():
    rng = np.random.default_rng(5)
    m_sim, m_q = rng.random(30), rng.random(30)
    n_sim, n_q = rng.random(500) * 0.5, rng.random(500)
    assert VARIANTS == ("fixed-threshold", "recomputed-threshold")
    fixed = compute_edc("fixed-threshold", m_sim, m_q, n_sim, None)
    direct = edc(m_sim, m_q, threshold_at_fmr(n_sim))
    np.testing.assert_array_equal(fixed.fnmr, direct.fnmr)
    assert fixed.threshold == direct.threshold and fixed.variant == "fixed-threshold"
    recomputed = compute_edc("recomputed-threshold", m_sim, m_q, n_sim, n_q)
    np.testing.assert_array_equal(recomputed.fnmr, edc_recomputed(m_sim, m_q, n_sim, n_q).fnmr)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9]),
                          st.integers(0, 4)), min_size=1, max_size=40),
       st.sampled_from([0.3, 0.5, 0.7]),
       st.floats(0.01, 1.0))
def test_property_fixed_threshold_matches_reference(pairs, threshold, limit):
    sims = [s for s, _ in pairs]
    quals = [float(q) for _, q in pairs]
    curve = edc(sims, quals, threshold)
    expected = _reference_edc(sims, quals, threshold)
    np.testing.assert_allclose(_points(curve), expected, atol=1e-12)
    assert np.all(np.diff(curve.discard_fraction) > 0)
    got, want = pauc(curve, limit), _reference_pauc(expected, limit)
    assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-12)


# --- theoretical best (issue 24): the floor of the fixed-threshold pAUC ---------------------------


def _reference_best(errors: int, n: int, limit: float) -> float:
    """Exact rational area under the best curve: each of the first ``errors`` discards removes
    one false non-match (each its own quality level), so after ``j`` discards FNMR is
    ``(errors - j) / (n - j)``; the left step holds over ``[j/n, (j+1)/n)``, cut at the limit."""
    from fractions import Fraction

    lim = Fraction(limit)
    area = Fraction(0)
    for j in range(n):
        start, end = Fraction(j, n), min(Fraction(j + 1, n), lim)
        if end <= start:
            break
        area += Fraction(max(0, errors - j), n - j) * (end - start)
    return float(area / (lim * Fraction(errors, n)))


@pytest.mark.parametrize(("errors", "n", "limit"), [(1, 1, 1.0), (3, 10, 0.3), (96, 3000, 0.3), (2981, 3500, 0.3),
                                                    (7, 7, 0.5), (40, 200, 0.2), (5, 50, 0.01)])
def test_best_pauc_matches_exact_reference(errors, n, limit):
    assert bench.stats.edc.best_pauc(errors / n, n, limit) == pytest.approx(_reference_best(errors, n, limit), rel=1e-12)


def test_best_pauc_is_reached_by_errors_first_and_never_beaten():
    rng = np.random.default_rng(24)
    for _ in range(40):
        n, threshold = int(rng.integers(5, 60)), 0.5
        sims = rng.random(n)
        errors = int((sims < threshold).sum())
        if errors == 0:
            continue
        best = bench.stats.edc.best_pauc(errors / n, n, 0.3)
        # Each false non-match its own quality level below every match: the bound is attained.
        perfect = np.where(sims < threshold, np.arange(n) * 1e-3, 10.0)
        assert pauc(edc(sims, perfect, threshold), 0.3) == pytest.approx(best, rel=1e-12)
        for _ in range(20):
            quality = rng.integers(0, 4, n).astype(float)  # ties included
            assert pauc(edc(sims, quality, threshold), 0.3) >= best - 1e-12


def test_floor_relative_pauc_and_undefined_best():
    best = bench.stats.edc.best_pauc(0.032, 3000, 0.3)
    assert best == pytest.approx(0.0545, abs=5e-4)  # LFW x dlib in the reference set (issue 24)
    assert bench.stats.edc.best_pauc(2981 / 3500, 3500, 0.3) == pytest.approx(0.967, abs=5e-4)  # CFP-FP x dlib
    np.testing.assert_allclose(bench.stats.edc.floor_relative_pauc([best, 1.0], best), [0.0, 1.0])
    assert math.isnan(bench.stats.edc.best_pauc(0.0, 100, 0.3))
    assert np.isnan(bench.stats.edc.floor_relative_pauc(0.9, 1.0)).all()  # every comparison an error
    with pytest.raises(DataError, match="n_mated"):
        bench.stats.edc.best_pauc(0.5, 0, 0.3)


def _reference_author_auc(m_sim, m_q, n_sim, n_q, fmr):
    """The CR-FIQA ERC script's steps written out: pool the pairs, sort by pair quality, drop the
    first int(u * N) for u = 0, 0.05, ..., 0.95, FNMR at the FMR threshold of the pairs left (our
    threshold rule), then the trapezoid rule over (u, FNMR)."""
    pairs = [(q, True, s) for s, q in zip(m_sim, m_q)] + [(q, False, s) for s, q in zip(n_sim, n_q)]
    pairs.sort(key=lambda p: p[0])  # stable: mated before non-mated on ties, as the engine
    xs, ys = [], []
    for i in range(20):
        u = i * 0.05
        kept = pairs[int(u * len(pairs)):]
        mated = [s for _, is_mated, s in kept if is_mated]
        threshold = np.quantile([s for _, is_mated, s in kept if not is_mated], 1 - fmr)
        xs.append(u)
        ys.append(sum(s < threshold for s in mated) / len(mated))
    return sum((xs[k + 1] - xs[k]) * (ys[k] + ys[k + 1]) / 2 for k in range(len(xs) - 1))


def test_trapezoid_auc_matches_the_author_scripts_formula():
    rng = np.random.default_rng(7)
    for _ in range(10):
        m_sim, n_sim = rng.normal(0.6, 0.2, 300), rng.normal(0.0, 0.2, 600)
        m_q, n_q = np.round(rng.random(300), 2), np.round(rng.random(600), 2)
        curve = edc_recomputed(m_sim, m_q, n_sim, n_q, fmr=0.01)
        assert bench.stats.edc.trapezoid_auc(curve) == pytest.approx(
            _reference_author_auc(m_sim, m_q, n_sim, n_q, 0.01), rel=1e-12)
    with pytest.raises(DataError, match="recomputed-threshold"):
        bench.stats.edc.trapezoid_auc(edc([0.1, 0.9], [1.0, 2.0], threshold=0.5))


def test_fmr_support_counts_false_matches_at_the_threshold():
    lfw_like = np.arange(3000, dtype=float)  # distinct scores: the 1e-3 quantile sits between the top 4 and 3
    support = bench.stats.edc.fmr_support(lfw_like, 1e-3)
    assert (support.n_false_matches, support.n_nonmated, support.nominal) == (3, 3000, True)
    assert support.realised_fmr == pytest.approx(1e-3)
    dense = bench.stats.edc.fmr_support(np.arange(100_000, dtype=float), 1e-3)
    assert dense.n_false_matches == 100 and not dense.nominal


def _reference_evf_point(sims, quals, nonmated, fmr, discard):
    """FNMR after discarding whole quality levels below the highest level whose discarded share
    is <= ``discard``, at the threshold fixed on all non-mated comparisons."""
    threshold = float(np.quantile(nonmated, 1 - fmr))
    n = len(sims)
    chosen = min(quals)
    for level in sorted(set(quals)):
        if sum(q < level for q in quals) / n <= discard:
            chosen = level
    kept = [s for s, q in zip(sims, quals) if q >= chosen]
    return sum(s < threshold for s in kept) / len(kept)


def test_evf_matches_reference_and_its_zero_discard_is_the_fnmr_at_each_fmr():
    rng = np.random.default_rng(31)
    fmrs = [1e-3, 1e-2, 0.05, 0.2]
    for _ in range(10):
        sims, nonmated = rng.normal(0.5, 0.25, 200), rng.normal(0, 0.2, 2000)
        quals = np.round(rng.random(200), 1)
        for discard in (0.0, 0.1, 0.3):
            curve = bench.stats.edc.evf(sims, quals, nonmated, fmrs, discard)
            want = [_reference_evf_point(list(sims), list(quals), nonmated, f, discard) for f in fmrs]
            np.testing.assert_allclose(curve.fnmr, want, rtol=1e-12)
        plain = bench.stats.edc.evf(sims, quals, nonmated, fmrs, 0.0)
        np.testing.assert_allclose(plain.fnmr, [np.mean(sims < np.quantile(nonmated, 1 - f)) for f in fmrs])
    with pytest.raises(DataError, match="discard"):
        bench.stats.edc.evf([0.1], [1.0], [0.0, 0.2], [1e-2], 1.0)


def test_linear_quantile_is_numpys_bit_for_bit():
    """One partition + tail minimum gives exactly np.quantile(float64 copy, q, "linear"):
    sizes 1..2000, float32/float64/integer input, heavy ties, q at 0, near 1 and 1."""
    from bench.stats.edc import linear_quantile

    rng = np.random.default_rng(11)
    qs = (0.0, 0.5, 1 - 1e-3, 1 - 1e-4, 0.999999, 1.0, 0.3)
    for trial in range(600):
        n = int(rng.integers(1, 2000))
        values = rng.normal(size=n)
        if trial % 3 == 0:
            values = np.round(values, 1)  # ties
        values = values.astype((np.float32, np.float64)[trial % 2]) if trial % 5 else (values * 100).astype(np.int64)
        q = qs[trial % len(qs)] if trial % 4 else float(rng.random())
        want = float(np.quantile(values.astype(np.float64), q, method="linear"))
        assert linear_quantile(values, q) == want, (n, values.dtype, q)
    as32 = rng.normal(size=101).astype(np.float32)
    kept = as32.copy()
    linear_quantile(as32, 0.99)
    np.testing.assert_array_equal(as32, kept)  # input left untouched

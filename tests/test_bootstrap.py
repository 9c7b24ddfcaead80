"""Bootstrap intervals of the pAUC (bench.stats.bootstrap) and paired tests (bench.stats.paired, bench compare)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, stats

from bench.cli import main
from bench.core.errors import DataError
from bench.datasets.base import FaceDataset
from bench.datasets.protocol import PairProtocol, Templates
from bench.stats import bootstrap
from bench.stats.edc import edc, edc_recomputed, pauc, threshold_at_fmr
from bench.stats.paired import paired_test

LIMITS = (0.1, 0.3, 1.0)


def _cell(rng: np.random.Generator, n_subjects: int = 30, per: int = 4, decimals: int = 1):
    """All image pairs of ``n_subjects`` x ``per`` images: similarities, rounded pair qualities, subject units."""
    subj = np.repeat(np.arange(n_subjects), per)
    ia, ib = np.triu_indices(subj.size, 1)
    mated = subj[ia] == subj[ib]
    sim = np.where(mated, rng.normal(0.5, 0.2, ia.size), rng.normal(0, 0.15, ia.size)).astype(np.float32)
    quality = np.round(rng.random(ia.size), decimals)
    units = bootstrap.units_from_labels("subject", subj[ia], subj[ib], mated)
    return sim[mated], quality[mated], sim[~mated], units


def _materialised(m_sim, m_q, n_sim, units, counts_row, fmr):
    """bench.stats.edc's pAUCs of one replicate built explicitly: each comparison repeated by its copies."""
    c = counts_row[None]
    wm = bootstrap._weights(c, units.mated_a, units.mated_b)[0]
    wn = bootstrap._weights(c, units.nonmated_a, units.nonmated_b)[0]
    if wn.sum() == 0 or wm.sum() == 0:
        return np.full(len(LIMITS), np.nan)
    curve = edc(np.repeat(m_sim, wm), np.repeat(m_q, wm), threshold_at_fmr(np.repeat(n_sim, wn), fmr))
    return np.array([pauc(curve, d) for d in LIMITS])


def test_copies_follow_the_product_rule_of_a_resampled_subject_set():
    # Build the resampled data set literally: list the drawn subject copies, then count each
    # original comparison once per (copy of its a-subject, copy of its b-subject), or once per
    # copy when both sides are one subject (a copy is never compared with another copy of itself).
    rng = np.random.default_rng(11)
    _, _, _, units = _cell(rng, n_subjects=6, per=3)
    counts = bootstrap.draw_counts(units.n_units, 5, seed=2)
    for row in counts:
        copies = np.repeat(np.arange(units.n_units), row)
        for a, b in ((units.mated_a, units.mated_b), (units.nonmated_a, units.nonmated_b)):
            literal = [sum(1 for i in copies for j in copies if i == u and j == v) if u != v
                       else int(np.sum(copies == u)) for u, v in zip(a, b)]
            assert bootstrap._weights(row[None], a, b)[0].tolist() == literal


def test_bootstrap_run_writes_the_replicates_the_record_names(tmp_path):
    rng = np.random.default_rng(13)
    m_sim, m_q, n_sim, units = _cell(rng)
    record = bootstrap.bootstrap_run(tmp_path, "run1", m_sim, m_q, n_sim, units, [0.2, 0.3], fmr=0.01,
                                     replicates=30, seed=4)
    stored = bootstrap.load(tmp_path / record["file"])
    direct = bootstrap.bootstrap_pauc(m_sim, m_q, n_sim, units, [0.2, 0.3], fmr=0.01, replicates=30, seed=4)
    assert np.array_equal(stored.replicates, direct.replicates, equal_nan=True)
    assert stored.resamples() == ("subject", units.n_units, 4, 30) == (record["unit"], record["n_units"],
                                                                      record["seed"], record["replicates"])
    assert record["interval"]["0.2"] == [direct.low[0], direct.high[0]]


@pytest.mark.parametrize("tail", [None, 1, 7])
def test_replicates_equal_edc_on_materialised_resamples(tail, monkeypatch):
    rng = np.random.default_rng(1)
    m_sim, m_q, n_sim, units = _cell(rng)
    counts = bootstrap.draw_counts(units.n_units, 40, seed=3)
    fmr = 0.01
    if tail is not None:  # a tail too short for every replicate: the fourfold growth must recover all
        real = bootstrap.replicate_thresholds
        monkeypatch.setattr(bootstrap, "replicate_thresholds",
                            lambda *a, **k: real(*a, **{**k, "tail": tail}))
    reps = bootstrap.replicate_paucs(m_sim, m_q, n_sim, units, counts, LIMITS, fmr)
    expected = np.array([_materialised(m_sim, m_q, n_sim, units, c, fmr) for c in counts])
    assert np.array_equal(reps, expected, equal_nan=True)  # exact, not approximately
    assert np.isfinite(reps).all()


def test_recomputed_variant_equals_edc_on_materialised_resamples():
    rng = np.random.default_rng(14)
    m_sim, m_q, n_sim, units = _cell(rng, n_subjects=20)
    n_q = np.round(rng.random(n_sim.size), 1)  # ties with the mated qualities too
    counts = bootstrap.draw_counts(units.n_units, 15, seed=6)
    fmr = 0.01
    res = bootstrap.bootstrap_pauc(m_sim, m_q, n_sim, units, LIMITS, fmr=fmr, replicates=15, seed=6,
                                   variant="recomputed-threshold", nonmated_quality=n_q)
    for r, c in enumerate(counts):
        wm = bootstrap._weights(c[None], units.mated_a, units.mated_b)[0]
        wn = bootstrap._weights(c[None], units.nonmated_a, units.nonmated_b)[0]
        curve = edc_recomputed(np.repeat(m_sim, wm), np.repeat(m_q, wm), np.repeat(n_sim, wn),
                               np.repeat(n_q, wn), fmr)
        assert np.array_equal(res.replicates[r], [pauc(curve, d) for d in LIMITS], equal_nan=True)
    assert np.isfinite(res.replicates).all()


def test_thresholds_equal_numpy_quantile_for_pair_units():
    rng = np.random.default_rng(2)
    n = 3000
    mated = rng.random(n) < 0.1
    sim = rng.normal(size=n).astype(np.float32)
    index = np.arange(n)
    units = bootstrap.units_from_labels("pair", index, index, mated)
    counts = bootstrap.draw_counts(units.n_units, 25, seed=0)
    got = bootstrap.replicate_thresholds(sim[~mated], units, counts, fmr=1e-3)
    for r, c in enumerate(counts):
        w = c[units.nonmated_a]
        assert got[r] == threshold_at_fmr(np.repeat(sim[~mated], w), 1e-3)


def test_nonmated_totals_dense_and_sparse_agree_with_weights(monkeypatch):
    rng = np.random.default_rng(4)
    _, _, _, units = _cell(rng, n_subjects=12)
    counts = bootstrap.draw_counts(units.n_units, 30, seed=1)
    direct = bootstrap._weights(counts, units.nonmated_a, units.nonmated_b).sum(axis=1)
    assert np.array_equal(bootstrap.nonmated_totals(units, counts), direct)
    monkeypatch.setattr(bootstrap, "DENSE_UNITS", 0)
    assert np.array_equal(bootstrap.nonmated_totals(units, counts), direct)


def test_large_counts_take_the_exact_wide_paths():
    """Copies beyond int32 and unit-pair products beyond float32's integers: the totals and the
    thresholds switch to int64 / float64 and stay exact (here every comparison of a replicate
    has the same number of copies W, so the materialised sample is the sorted values, each W times)."""
    n = 50
    sim = np.random.default_rng(6).normal(size=n).astype(np.float32)
    a, b = np.zeros(n, dtype=np.int64), np.ones(n, dtype=np.int64)
    units = bootstrap.Units("subject", 2, np.array([0]), np.array([0]), a, b)
    counts = np.array([[400_000, 50_000], [40_000, 50_000], [3, 1]], dtype=np.int32)
    copies = counts[:, 0].astype(np.int64) * counts[:, 1]
    assert np.array_equal(bootstrap.nonmated_totals(units, counts), copies * n)
    got = bootstrap.replicate_thresholds(sim, units, counts, fmr=1e-3)
    ordered = np.sort(sim).astype(np.float64)
    for r, w in enumerate(copies):
        h = (n * w - 1) * np.float64(1.0 - 1e-3)
        lo, hi = ordered[int(np.floor(h)) // w], ordered[(int(np.floor(h)) + 1) // w]
        gamma = h - np.floor(h)
        assert got[r] == (hi - (hi - lo) * (1 - gamma) if gamma >= 0.5 else lo + (hi - lo) * gamma)
    assert got[2] == threshold_at_fmr(np.repeat(sim, 3), 1e-3)


def test_counts_depend_only_on_seed_and_units():
    a = bootstrap.draw_counts(50, 8, seed=7)
    assert np.array_equal(a, bootstrap.draw_counts(50, 8, seed=7))
    assert not np.array_equal(a, bootstrap.draw_counts(50, 8, seed=8))
    assert (a.sum(axis=1) == 50).all()


def test_units_from_dataset_identities_templates_and_pairs():
    ident = np.array([5, 5, 9, 9, 2])
    proto = PairProtocol(a=np.array([0, 2, 0, 1]), b=np.array([1, 3, 2, 4]), mated=np.array([True, True, False, False]))
    ds = FaceDataset("x", Path("."), [f"{i}.png" for i in range(5)], proto, identities=ident)
    u = bootstrap.units_from_dataset(ds)
    assert (u.kind, u.n_units) == ("subject", 3)
    assert np.array_equal(u.mated_a, u.mated_b) and u.mated_a[0] != u.mated_a[1]
    assert u.nonmated_a[0] == u.mated_a[0] and u.nonmated_b[0] == u.mated_a[1]

    # Templates 0-1 and 1-2 mated: one subject {0, 1, 2}; template 3 is alone; no identities needed.
    templates = Templates(image=np.arange(4), template=np.arange(4), media=np.zeros(4, int), template_ids=np.arange(4))
    tproto = PairProtocol(a=np.array([0, 1, 0, 3]), b=np.array([1, 2, 3, 2]),
                          mated=np.array([True, True, False, False]), templates=templates)
    u = bootstrap.units_from_dataset(FaceDataset("t", Path("."), ["i"] * 4, tproto))
    assert u.n_units == 2 and len(set(u.mated_a) | set(u.mated_b)) == 1
    assert (u.nonmated_a != u.nonmated_b).all()

    u = bootstrap.units_from_dataset(FaceDataset("b", Path("."), ["i"] * 5, proto))
    assert (u.kind, u.n_units) == ("pair", 4)
    assert np.array_equal(u.nonmated_a, u.nonmated_b)


def test_separable_similarities_leave_every_replicate_undefined():
    # Every mated similarity above every non-mated one: FNMR at discard 0 is 0, pAUC undefined (nan).
    rng = np.random.default_rng(5)
    m_sim, m_q, n_sim, units = _cell(rng)
    res = bootstrap.bootstrap_pauc(m_sim + 10, m_q, n_sim, units, LIMITS, fmr=0.01, replicates=50)
    assert np.isnan(res.replicates).all() and (res.n_undefined == 50).all() and np.isnan(res.low).all()


def test_quality_separating_errors_gives_the_closed_form():
    # Errors (far below every non-mated similarity) all share the lowest quality: the curve is
    # (0, f) then 0 from discard f, so pAUC at limit L >= f is f / L with f the replicate's error share.
    rng = np.random.default_rng(6)
    m_sim, m_q, n_sim, units = _cell(rng)
    error = rng.random(m_sim.size) < 0.2
    m_sim = np.where(error, -5.0, 5.0)
    m_q = np.where(error, -1.0, rng.random(m_sim.size))
    res = bootstrap.bootstrap_pauc(m_sim, m_q, n_sim, units, [0.5, 1.0], fmr=0.01, replicates=60, seed=2)
    counts = bootstrap.draw_counts(units.n_units, 60, seed=2)
    w = bootstrap._weights(counts, units.mated_a, units.mated_b)
    share = (w * error).sum(axis=1) / w.sum(axis=1)
    assert share.max() < 0.5
    np.testing.assert_allclose(res.replicates, share[:, None] / np.array([0.5, 1.0]), rtol=1e-12)


def test_all_equal_quality_gives_pauc_one_wherever_defined():
    rng = np.random.default_rng(7)
    m_sim, m_q, n_sim, units = _cell(rng)
    res = bootstrap.bootstrap_pauc(m_sim, np.zeros_like(m_q), n_sim, units, LIMITS, fmr=0.01, replicates=80)
    defined = np.isfinite(res.replicates)
    assert defined.any()
    assert (res.replicates[defined] == 1.0).all()
    assert res.low.tolist() == res.high.tolist() == [1.0, 1.0, 1.0]


def test_paired_identical_scores_give_exact_zero_and_p_one():
    rng = np.random.default_rng(8)
    m_sim, m_q, n_sim, units = _cell(rng)
    one = bootstrap.bootstrap_pauc(m_sim, m_q, n_sim, units, LIMITS, fmr=0.01, replicates=100, seed=5)
    two = bootstrap.bootstrap_pauc(m_sim, m_q.copy(), n_sim, units, LIMITS, fmr=0.01, replicates=100, seed=5)
    test = paired_test(one.replicates, two.replicates)
    assert (test.difference == 0).all() and (test.low == 0).all() and (test.high == 0).all()
    assert (test.p_value == 1).all()


def test_paired_test_detects_a_better_quality_measure():
    rng = np.random.default_rng(9)
    m_sim, _, n_sim, units = _cell(rng, n_subjects=60)
    informative = m_sim + rng.normal(0, 0.05, m_sim.size)  # tracks the similarity: errors go first
    noise = rng.random(m_sim.size)
    good = bootstrap.bootstrap_pauc(m_sim, informative, n_sim, units, [0.3], fmr=0.01, replicates=300, seed=1)
    bad = bootstrap.bootstrap_pauc(m_sim, noise, n_sim, units, [0.3], fmr=0.01, replicates=300, seed=1)
    test = paired_test(good.replicates, bad.replicates)
    assert test.high[0] < 0 and test.p_value[0] == pytest.approx(2 / 301)
    swapped = paired_test(bad.replicates, good.replicates)
    assert swapped.low[0] > 0 and swapped.p_value[0] == test.p_value[0]


def test_bad_inputs_are_one_line_errors(tmp_path):
    rng = np.random.default_rng(10)
    m_sim, m_q, n_sim, units = _cell(rng, n_subjects=5)
    with pytest.raises(DataError, match="needs the non-mated pair qualities"):
        bootstrap.bootstrap_pauc(m_sim, m_q, n_sim, units, [0.3], variant="recomputed-threshold")
    with pytest.raises(DataError, match="unknown EDC variant"):
        bootstrap.bootstrap_pauc(m_sim, m_q, n_sim, units, [0.3], variant="nope")
    with pytest.raises(DataError, match="derive the units"):
        bootstrap.bootstrap_pauc(m_sim[:-1], m_q[:-1], n_sim, units, [0.3])
    with pytest.raises(DataError, match="differ in shape"):
        paired_test(np.zeros((5, 2)), np.zeros((4, 2)))
    with pytest.raises(DataError, match="not found"):
        bootstrap.load(tmp_path / "missing.boot.npz")
    (tmp_path / "bad.boot.npz").write_text("nope")
    with pytest.raises(DataError, match="not a bootstrap replicates file"):
        bootstrap.load(tmp_path / "bad.boot.npz")


# --- coverage on a generating model with subject random effects -----------------------------------

SA, SE, SB, SN, LIMIT = 0.10, 0.15, 0.05, 0.10, 0.3


def _true_pauc(fmr: float = 1e-3) -> float:
    """The model's pAUC at LIMIT in closed form (population threshold, population EDC).

    Non-mated similarity b_s + b_t + e is N(0, sqrt(2 SB^2 + SN^2)); mated similarity given the
    pair quality p = min of two U(0, 1) (density 2(1 - p)) is N(0.5 + 0.3 p, sqrt(SA^2 + SE^2)).
    """
    threshold = stats.norm.ppf(1 - fmr) * np.sqrt(2 * SB**2 + SN**2)
    spread = np.hypot(SA, SE)

    def error_density(p: float) -> float:
        return stats.norm.cdf((threshold - 0.5 - 0.3 * p) / spread) * 2 * (1 - p)

    def fnmr(x: float) -> float:
        return integrate.quad(error_density, 1 - np.sqrt(1 - x), 1)[0] / (1 - x)

    return integrate.quad(fnmr, 0, LIMIT)[0] / (LIMIT * fnmr(0))


def _model_cell(rng: np.random.Generator, n_subjects: int = 100, per: int = 4):
    """One data set: subjects with random effects on mated (a_s) and non-mated (b_s) similarity."""
    subj = np.repeat(np.arange(n_subjects), per)
    q = rng.random(subj.size)
    a, b = rng.normal(0, SA, n_subjects), rng.normal(0, SB, n_subjects)
    ia, ib = np.triu_indices(subj.size, 1)
    mated = subj[ia] == subj[ib]
    pq = np.minimum(q[ia], q[ib])
    sim = np.where(mated, 0.5 + a[subj[ia]] + 0.3 * pq + rng.normal(0, SE, ia.size),
                   b[subj[ia]] + b[subj[ib]] + rng.normal(0, SN, ia.size))
    return sim[mated], pq[mated], sim[~mated], bootstrap.units_from_labels("subject", subj[ia], subj[ib], mated)


def _coverage(n_sets: int, replicates: int, seed: int) -> float:
    truth = _true_pauc()
    rng = np.random.default_rng(seed)
    hits = 0
    for i in range(n_sets):
        m_sim, m_q, n_sim, units = _model_cell(rng)
        res = bootstrap.bootstrap_pauc(m_sim, m_q, n_sim, units, [LIMIT], replicates=replicates, seed=i)
        hits += bool(res.low[0] <= truth <= res.high[0])
    return hits / n_sets


def test_coverage_small():
    # 40 data sets x 300 replicates: a quick guard (binomial SD ~3.5 points at 95 %).
    assert 0.85 <= _coverage(40, 300, seed=11) <= 1.0


@pytest.mark.slow
def test_coverage_of_nominal_95_percent_intervals():
    # 400 data sets x 1,000 replicates (about a minute): measured 96.75 %.
    assert 0.92 <= _coverage(400, 1000, seed=1) <= 0.98


# --- bench compare from fabricated runs ----------------------------------------------------------


def _fake_run(results: Path, method: str, reps: np.ndarray, point: dict[str, float], seed: int = 0,
              created: str = "2026-01-01T00:00:00", dataset: str = "lfw", fr: str = "arcface") -> None:
    run_id = f"{created[:10]}-{method}-{dataset}-{fr}"
    result = bootstrap.BootstrapResult(np.array([0.2, 0.3]), reps, reps.min(0), reps.max(0),
                                       np.zeros(2, int), "subject", 40, seed, 1e-3)
    bootstrap.save(results / "runs" / f"{run_id}.boot.npz", result)
    record = {"run_id": run_id, "created": created, "method": method, "fr": fr, "dataset": dataset,
              "edc_variant": "fixed-threshold", "fmr": 0.001, "folds": None, "quality_rule": "min",
              "template_rule": "min", "pauc": point, "bootstrap": result.record(f"{run_id}.boot.npz")}
    (results / "runs" / f"{run_id}.json").write_text(json.dumps(record))


def test_bench_compare_reads_stored_replicates(tmp_path, capsys):
    rng = np.random.default_rng(12)
    base = rng.normal(0.8, 0.02, (200, 2))
    better = base - 0.05 + rng.normal(0, 0.005, (200, 2))
    for dataset in ("lfw", "cfp-fp"):
        _fake_run(tmp_path, "a", better, {"0.2": 0.75, "0.3": 0.74}, dataset=dataset)
        _fake_run(tmp_path, "b", base, {"0.2": 0.80, "0.3": 0.79}, dataset=dataset)
    # An older run of "a" on lfw is ignored in favour of the latest.
    _fake_run(tmp_path, "a", base + 1, {"0.2": 9.0, "0.3": 9.0}, created="2025-01-01T00:00:00")
    assert main(["compare", "--results", str(tmp_path), "--method", "a", "--method", "b"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("| arcface")]
    assert len(lines) == 4 and all("-0.0500 |" in line and "| 0.00995 |" in line for line in lines)
    pooled = [line for line in out.splitlines() if line.startswith("| pooled | 2 cells")]
    assert len(pooled) == 2 and all("-0.0500" in line for line in pooled)

    assert main(["compare", "--results", str(tmp_path), "--method", "a", "--method", "b", "--dataset", "lfw"]) == 0
    assert "pooled" not in capsys.readouterr().out


def test_bench_compare_refuses_different_resamples(tmp_path, capsys):
    reps = np.full((50, 2), 0.8)
    _fake_run(tmp_path, "a", reps, {"0.2": 0.8, "0.3": 0.8}, seed=1)
    _fake_run(tmp_path, "b", reps, {"0.2": 0.8, "0.3": 0.8}, seed=2)
    assert main(["compare", "--results", str(tmp_path), "--method", "a", "--method", "b"]) == 1
    assert "different resamples" in capsys.readouterr().err
    assert main(["compare", "--results", str(tmp_path), "--method", "a"]) == 2


# --- BCa intervals (issue 24) ----------------------------------------------------------------------


def _reference_bca(reps: np.ndarray, point: float, jack: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Efron & Tibshirani (1993, eq. 14.9-14.15) written out with loops."""
    below = sum(1 for r in reps if r < point) + 0.5 * sum(1 for r in reps if r == point)
    z0 = stats.norm.ppf(below / len(reps))
    mean = sum(jack) / len(jack)
    accel = sum((mean - j) ** 3 for j in jack) / (6 * sum((mean - j) ** 2 for j in jack) ** 1.5)
    out = []
    for alpha in ((1 - level) / 2, (1 + level) / 2):
        z = stats.norm.ppf(alpha)
        out.append(float(np.quantile(reps, stats.norm.cdf(z0 + (z0 + z) / (1 - accel * (z0 + z))))))
    return out[0], out[1]


def test_jackknife_leaves_each_subject_out_of_the_materialised_data():
    rng = np.random.default_rng(21)
    m_sim, m_q, n_sim, units = _cell(rng, n_subjects=12)
    jack = bootstrap.jackknife_paucs(m_sim, m_q, n_sim, units, LIMITS, fmr=0.01)
    for u in range(units.n_units):
        counts = np.ones(units.n_units, dtype=np.int32)
        counts[u] = 0
        np.testing.assert_allclose(jack[u], _materialised(m_sim, m_q, n_sim, units, counts, 0.01), rtol=1e-12)


def test_bca_interval_matches_reference_and_reduces_to_percentile_when_symmetric():
    rng = np.random.default_rng(22)
    m_sim, m_q, n_sim, units = _cell(rng, n_subjects=25)
    res = bootstrap.bootstrap_pauc(m_sim, m_q, n_sim, units, [0.3], fmr=0.01, replicates=300, seed=3, interval="bca")
    point = pauc(edc(m_sim, m_q, threshold_at_fmr(n_sim, 0.01)), 0.3)
    jack = bootstrap.jackknife_paucs(m_sim, m_q, n_sim, units, [0.3], fmr=0.01)
    reps = res.replicates[np.isfinite(res.replicates[:, 0]), 0]
    assert (res.low[0], res.high[0]) == pytest.approx(_reference_bca(reps, point, jack[:, 0]), rel=1e-12)
    assert res.record("x.npz")["method"] == "bca"
    # Symmetric replicates around the point and a symmetric jackknife: z0 = a = 0, so BCa = percentile.
    sym = np.concatenate([0.5 + np.linspace(0.01, 0.2, 50), 0.5 - np.linspace(0.01, 0.2, 50)])
    low, high = bootstrap.bca_interval(sym, 0.5, np.array([0.4, 0.6, 0.5]))
    assert (low[0], high[0]) == pytest.approx(tuple(np.quantile(sym, [0.025, 0.975])))


def test_bca_bad_inputs():
    rng = np.random.default_rng(23)
    m_sim, m_q, n_sim, units = _cell(rng, n_subjects=5)
    with pytest.raises(DataError, match="unknown bootstrap interval"):
        bootstrap.bootstrap_pauc(m_sim, m_q, n_sim, units, [0.3], replicates=10, interval="basic")
    with pytest.raises(DataError, match="fixed-threshold"):
        bootstrap.bootstrap_pauc(m_sim, m_q, n_sim, units, [0.3], replicates=10, variant="recomputed-threshold",
                                 nonmated_quality=np.zeros(n_sim.size), interval="bca")

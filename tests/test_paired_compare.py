"""``bench compare`` (bench.stats.paired): disjoint pools, Holm, seeded methods, floor-relative pAUC (issue 24)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main
from bench.stats import bootstrap
from bench.stats.edc import best_pauc
from bench.stats.paired import compare_methods, holm

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference" / "dlib-lfw-cfpfp-v2"


def _run(results: Path, method: str, reps: np.ndarray, point: tuple[float, float], *, seed: int = 0,
         dataset: str = "lfw", fr: str = "arcface", folds: str = "all", n_units: int = 40,
         created: str = "2026-01-01T00:00:00", fnmr0: float = 0.05, n_mated: int = 400) -> None:
    """A run record with stored replicates, as `bench run` writes them (bootstrap seed 2023)."""
    run_id = f"{method}-{dataset}-{fr}-{folds.replace(',', '_')}-s{seed}-{created[:4]}"
    result = bootstrap.BootstrapResult(np.array([0.2, 0.3]), reps, reps.min(0), reps.max(0), np.zeros(2, int),
                                       "subject", n_units, 2023, 1e-3)
    (results / "runs").mkdir(parents=True, exist_ok=True)
    bootstrap.save(results / "runs" / f"{run_id}.boot.npz", result)
    record = {"run_id": run_id, "created": created, "method": method, "fr": fr, "dataset": dataset,
              "edc_variant": "fixed-threshold", "fmr": 0.001, "folds": folds, "quality_rule": "min",
              "template_rule": "min", "seed": seed, "fnmr_at_0": fnmr0, "n_mated": n_mated,
              "pauc": {"0.2": point[0], "0.3": point[1]}, "bootstrap": result.record(f"{run_id}.boot.npz")}
    (results / "runs" / f"{run_id}.json").write_text(json.dumps(record))


def test_reference_set_never_pools_nested_cells(capsys):
    # LFW x dlib folds 1-2 lies inside LFW x dlib all folds: before issue 24 the pool averaged all
    # five cells ("pooled | 5 cells") as if independent.
    assert main(["compare", "--results", str(REFERENCE), "--method", "ser-fiq", "--method", "random"]) == 0
    captured = capsys.readouterr()
    pooled = [line for line in captured.out.splitlines() if line.startswith("| pooled")]
    assert len(pooled) == 2 and all("| 4 cells |" in line for line in pooled)
    assert "p (Holm)" in captured.out
    assert "left out fr=dlib, dataset=lfw, folds=1,2" in captured.err
    members = [line for line in captured.out.splitlines() if line.startswith("pool all")]
    assert len(members) == 1 and "folds=1,2" not in members[0] and members[0].count("dataset=") == 4


def test_pool_modes_on_the_reference_set():
    rows = {mode: compare_methods(REFERENCE, "ser-fiq", "random", pool=mode)[0] for mode in ("dataset", "fr", "none")}
    pooled = {mode: sorted(r.dataset for r in rs if r.fr == "pooled") for mode, rs in rows.items()}
    assert pooled["none"] == []
    assert pooled["dataset"] == ["cfp-fp: 2 cells"] * 2 + ["lfw: 2 cells"] * 2
    # Per FR model over datasets: dlib pools CFP-FP and LFW all folds (folds 1-2 left out), MobileFaceNet likewise.
    assert len(pooled["fr"]) == 4 and all(p.endswith(": 2 cells") for p in pooled["fr"])


def test_disjoint_folds_pool_and_overlapping_folds_do_not(tmp_path):
    rng = np.random.default_rng(1)
    for folds, units in (("1,2", 20), ("3,4", 20), ("2,3", 20)):
        base = rng.normal(0.8, 0.02, (100, 2))
        _run(tmp_path, "a", base - 0.1, (0.7, 0.7), folds=folds, n_units=units)
        _run(tmp_path, "b", base, (0.8, 0.8), folds=folds, n_units=units)
    rows, notes, members = compare_methods(tmp_path, "a", "b")
    assert [r.dataset for r in rows if r.fr == "pooled"] == ["2 cells"] * 2
    assert len(members) == 1 and "folds=1,2" in members[0] and "folds=3,4" in members[0]
    assert any("left out fr=arcface, dataset=lfw, folds=2,3" in n for n in notes)


def test_seeded_method_is_compared_as_the_set_of_its_seeds(tmp_path):
    rng = np.random.default_rng(2)
    reps_a = rng.normal(0.7, 0.02, (200, 2))
    _run(tmp_path, "a", reps_a, (0.70, 0.69))
    seeds = []
    for seed in range(4):
        reps = rng.normal(1.0, 0.03, (200, 2))
        point = (1.0 + 0.02 * seed, 1.0 - 0.01 * seed)
        seeds.append((reps, point))
        _run(tmp_path, "b", reps, point, seed=seed, created=f"2026-01-0{seed + 1}T00:00:00")
    rows, _notes, _members = compare_methods(tmp_path, "a", "b", pool="none")
    mean_point = np.mean([p for _, p in seeds], axis=0)
    mean_reps = np.mean([r for r, _ in seeds], axis=0)
    for j, row in enumerate(rows):
        assert row.seeds == "1/4"
        assert row.pauc_b == pytest.approx(mean_point[j])  # not the latest seed's 1.06 / 0.97
        assert row.test_difference == pytest.approx((0.70, 0.69)[j] - mean_point[j])
        low, high = bootstrap.percentile_interval(reps_a[:, j] - mean_reps[:, j])
        assert (row.low, row.high) == pytest.approx((low[0], high[0]))
        per_seed = [(0.70, 0.69)[j] - p[j] for _, p in seeds]
        assert row.seed_range == pytest.approx((min(per_seed), max(per_seed)))


def test_runs_on_different_folds_say_which_setting_differs(tmp_path, capsys):
    reps = np.full((50, 2), 0.8)
    _run(tmp_path, "a", reps, (0.8, 0.8), folds="1,2")
    _run(tmp_path, "oracle", reps, (0.5, 0.5), folds="3")
    assert main(["compare", "--results", str(tmp_path), "--method", "a", "--method", "oracle"]) == 1
    err = capsys.readouterr().err
    assert "nearest run of oracle differs in folds 3 instead of 1,2" in err
    assert "nearest run of a differs in folds 1,2 instead of 3" in err


def test_floor_relative_metric(tmp_path, capsys):
    rng = np.random.default_rng(3)
    base = rng.normal(0.9, 0.02, (100, 2))
    _run(tmp_path, "a", base - 0.05, (0.85, 0.84), fnmr0=0.8, n_mated=500)
    _run(tmp_path, "b", base, (0.90, 0.89), fnmr0=0.8, n_mated=500)
    rows, _, _ = compare_methods(tmp_path, "a", "b", metric="floor-relative")
    for row, d, (pa, pb) in zip(rows, (0.2, 0.3), ((0.85, 0.90), (0.84, 0.89))):
        best = best_pauc(0.8, 500, d)
        assert row.pauc_a == pytest.approx((pa - best) / (1 - best))
        assert row.test_difference == pytest.approx((pa - pb) / (1 - best))
    plain, _, _ = compare_methods(tmp_path, "a", "b")
    assert [r.p_value for r in plain] == [r.p_value for r in rows]  # a per-cell constant: same test
    assert main(["compare", "--results", str(tmp_path), "--method", "a", "--method", "b",
                 "--metric", "floor-relative"]) == 0
    assert "floor-rel. pAUC a" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["compare", "--results", str(tmp_path), "--method", "a", "--method", "b", "--pool", "bad"])
    assert exc.value.code == 2


def _holm_by_rejection(p: np.ndarray) -> np.ndarray:
    """Holm's adjusted p from its definition: the smallest alpha at which the step-down procedure
    (reject p_(1) <= alpha/m, then p_(2) <= alpha/(m-1), ... until one fails) rejects it."""
    m = p.size
    candidates = np.unique(np.concatenate([np.minimum(1.0, p * k) for k in range(1, m + 1)] + [[1.0]]))
    out = np.ones(m)
    for alpha in candidates[::-1]:
        rejected = set()
        for rank, i in enumerate(np.argsort(p, kind="stable")):
            if p[i] <= alpha / (m - rank):
                rejected.add(int(i))
            else:
                break
        for i in rejected:
            out[i] = alpha
    return out


def test_holm_matches_the_step_down_procedure():
    rng = np.random.default_rng(4)
    for _ in range(30):
        p = np.round(rng.random(rng.integers(1, 9)) ** 3, 3)
        np.testing.assert_allclose(holm(p), _holm_by_rejection(p))
    assert np.isnan(holm([0.01, np.nan, 0.02])[1])
    np.testing.assert_allclose(holm([0.01, np.nan, 0.02]), [0.02, np.nan, 0.02])


def test_a_seed_without_replicates_is_left_out_and_named(tmp_path):
    reps = np.random.default_rng(5).normal(0.9, 0.02, (60, 2))
    _run(tmp_path, "a", reps - 0.1, (0.8, 0.8))
    _run(tmp_path, "b", reps, (0.9, 0.9), seed=0)
    _run(tmp_path, "b", reps + 0.01, (0.91, 0.91), seed=1)
    record = json.loads((tmp_path / "runs" / "b-lfw-arcface-all-s1-2026.json").read_text())
    record["bootstrap"] = None  # a run made with --bootstrap 0
    (tmp_path / "runs" / "b-lfw-arcface-all-s1-2026.json").write_text(json.dumps(record))
    rows, notes, _ = compare_methods(tmp_path, "a", "b")
    assert [r.seeds for r in rows] == ["1/1", "1/1"] and rows[0].pauc_b == pytest.approx(0.9)
    assert any("seed 1 of b left out" in n and "no bootstrap replicates" in n for n in notes)

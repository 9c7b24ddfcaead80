import numpy as np
import pytest
from scipy import stats

from bench.core.errors import DataError
from bench.stats.agreement import low_set_overlap, pair_agreement


def test_hand_case_matches_scipy():
    a = np.array([0.1, 0.4, 0.2, 0.9, 0.5, 0.3, 0.8, 0.7, 0.6, 0.05])
    b = np.array([0.2, 0.1, 0.3, 0.8, 0.6, 0.4, 0.9, 0.5, 0.7, 0.15])
    got = pair_agreement(a, b, fraction=0.2)
    assert got["spearman"] == pytest.approx(stats.spearmanr(a, b).statistic)
    assert got["kendall"] == pytest.approx(stats.kendalltau(a, b).statistic)
    # lowest 2 of a: idx 9, 0; of b: idx 1, 9 -> overlap 1/2
    assert got["low_overlap"] == pytest.approx(0.5)


def test_identical_scores_agree_fully():
    a = np.random.default_rng(0).random(50)
    got = pair_agreement(a, a.copy())
    assert got == {"spearman": pytest.approx(1.0), "kendall": pytest.approx(1.0), "low_overlap": 1.0}


def test_reversed_scores_disagree():
    a = np.arange(20.0)
    assert low_set_overlap(a, -a) == 0.0
    assert pair_agreement(a, -a)["spearman"] == pytest.approx(-1.0)


def test_misaligned_arrays_raise():
    with pytest.raises(DataError):
        pair_agreement(np.zeros(3), np.zeros(4))


def test_report_shows_the_agreement_of_methods_scored_on_the_same_images(tmp_path) -> None:
    from bench.pipeline.runner import RunConfig, run
    from bench.report import build_report
    from bench.report.frames import agreement_frame, score_frame

    for method in ("random", "oracle"):
        run(RunConfig(method=method, fr="synthetic", dataset="synthetic", results=tmp_path / "res", progress=False,
                      bootstrap=0))
    pairs = agreement_frame(score_frame(tmp_path / "res"))
    assert len(pairs) == 1 and pairs["n_images"].iloc[0] == 200
    scores = score_frame(tmp_path / "res").pivot_table(index="image_id", columns="method", values="score")
    expected = pair_agreement(scores.iloc[:, 0].to_numpy(), scores.iloc[:, 1].to_numpy())
    assert pairs["spearman"].iloc[0] == expected["spearman"]
    written = build_report(results=tmp_path / "res", source="r", discard=0.3, out=tmp_path / "out", tables=["agreement"])
    md = next(p for p in written if p.name == "report.md").read_text()
    assert "Agreement between methods" in md and f"{expected['spearman']:.3f}" in md

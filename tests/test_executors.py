"""The Ray executor on a local 2-CPU cluster: the same rows and score files as the local executor,
score ranges in worker tasks, and a worker killed mid-run resumed by the same command."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.cli import main
from bench.pipeline.cell import RunConfig

ray = pytest.importorskip("ray")

# A high cost prior for `random` makes the executors split its scoring into one range per worker.
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


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    yield
    ray.shutdown()


def _plan(tmp_path: Path) -> Path:
    path = tmp_path / "plan.toml"
    path.write_text(PLAN)
    return path


def _run(plan: Path, results: Path, cache: Path, *extra: str) -> int:
    return main(["run", "--plan", str(plan), "--results", str(results), "--cache", str(cache), "--no-progress", *extra])


def _rows(results: Path) -> pd.DataFrame:
    return pd.read_csv(results / "pauc.csv").drop(columns=["run_id"])


def _scores(results: Path) -> pd.DataFrame:
    return pd.read_parquet(results / "scores" / "random" / "synthetic.parquet")


def test_ray_writes_what_local_writes(tmp_path, cluster) -> None:
    plan = _plan(tmp_path)
    assert _run(plan, tmp_path / "local", tmp_path / "c1") == 0
    assert _run(plan, tmp_path / "ray", tmp_path / "c2", "--executor", "ray") == 0
    pd.testing.assert_frame_equal(_rows(tmp_path / "local"), _rows(tmp_path / "ray"), check_exact=True)
    pd.testing.assert_frame_equal(_scores(tmp_path / "local"), _scores(tmp_path / "ray"), check_exact=True)
    assert not list((tmp_path / "ray").rglob("*.tmp")) and not list((tmp_path / "ray").rglob("part-*.npz"))


def test_cli_lists_on_ray_match_local(tmp_path, cluster) -> None:
    args = ["run", "--method", "random,oracle", "--fr", "synthetic", "--dataset", "synthetic", "--no-progress"]
    assert main([*args, "--results", str(tmp_path / "a")]) == 0
    assert main([*args, "--results", str(tmp_path / "b"), "--executor", "ray"]) == 0
    pd.testing.assert_frame_equal(_rows(tmp_path / "a"), _rows(tmp_path / "b"), check_exact=True)


def test_killed_worker_resumes_without_recomputing_finished_parts(tmp_path, cluster) -> None:
    from bench.pipeline.executors.stages import score_range

    plan = _plan(tmp_path)
    results, cache = tmp_path / "ray", tmp_path / "cache"
    cfg = RunConfig(method="random", fr="synthetic", dataset="synthetic", results=results, cache=cache,
                    progress=False, batch_size=16)
    env = {"BENCH_CACHE": str(cache), "BENCH_RESULTS": str(results)}

    def scores_in_batches(die_after: int | None, shard: int, n: int) -> None:
        # `random` scores in one part; here one part per batch, as slow methods do. With
        # die_after, the worker process exits (no exception, no cleanup) after writing that many.
        from bench.methods.mock import RandomQuality
        from bench.pipeline import score_parts

        write, count = score_parts.ScoreParts.write, [0]

        def write_then_die(self, *args, **kw):
            write(self, *args, **kw)
            count[0] += 1
            if count[0] == die_after:
                os._exit(1)

        score_parts.ScoreParts.write = write_then_die
        RandomQuality.checkpoint_batches = True
        os.environ.update(env)
        try:
            score_range(cfg, shard, n)
        finally:
            score_parts.ScoreParts.write, RandomQuality.checkpoint_batches = write, False

    task = ray.remote(max_retries=0)(scores_in_batches)
    with pytest.raises((ray.exceptions.WorkerCrashedError, ray.exceptions.RayTaskError)):
        ray.get(task.remote(3, 0, 2))
    folder = next(results.rglob("*.parts-*"))
    before = {p.name: p.stat().st_mtime_ns for p in folder.glob("part-*.npz")}
    assert len(before) == 3  # 3 of the 7 batches of shard 0's 100 images
    # The same range again on the cluster: the finished parts stay as they are, the rest is added.
    ray.get(task.remote(None, 0, 2))
    after = {p.name: p.stat().st_mtime_ns for p in folder.glob("part-*.npz")}
    assert {k: after[k] for k in before} == before and len(after) == 7
    ids = [i for p in sorted(folder.glob("part-*.npz")) for i in np.load(p)["ids"]]
    assert len(ids) == len(set(ids)) == 100
    # The same command as before completes the run, with the results of an uninterrupted local run.
    assert _run(plan, results, cache, "--executor", "ray") == 0
    assert _run(plan, tmp_path / "local", tmp_path / "c2") == 0
    pd.testing.assert_frame_equal(_rows(results), _rows(tmp_path / "local"), check_exact=True)
    pd.testing.assert_frame_equal(_scores(results), _scores(tmp_path / "local"), check_exact=True)
    assert not list(results.rglob("*.tmp")) and not folder.exists()


@pytest.mark.slow
def test_ray_on_real_lfw_fold_matches_local(tmp_path, cluster) -> None:
    from tests.conftest import shared_data

    data = shared_data("lfw").parent
    args = ["run", "--method", "random,oracle", "--fr", "dlib", "--dataset", "lfw", "--folds", "1",
            "--data-root", str(data), "--no-progress"]
    assert main([*args, "--results", str(tmp_path / "local"), "--cache", str(tmp_path / "c1")]) == 0
    assert main([*args, "--results", str(tmp_path / "ray"), "--cache", str(tmp_path / "c2"), "--executor", "ray"]) == 0
    pd.testing.assert_frame_equal(_rows(tmp_path / "local"), _rows(tmp_path / "ray"), check_exact=True)

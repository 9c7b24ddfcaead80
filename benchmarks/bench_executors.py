"""Local executor vs Ray: the overhead of Ray on a whole plan, and its speedup on a scoring-bound cell.

Run: ``.venv/bin/python benchmarks/bench_executors.py --data-root ../shared/data [--faceqan-images 24]``
(about 10 minutes on 2 cores; needs ``pip install 'fiqa-bench[ray]'`` and LFW under the data root).

1. Whole plan: ``plans/demo.toml`` (random, oracle, SER-FIQ on LFW folds 1-2, ``--fr dlib``), once
   in one local process and once on a local Ray cluster of 2 CPUs (2 workers). Both start from
   the same warm crop/embedding cache (made by a first, untimed run) and an empty results
   folder, so each scores every image again: the difference is Ray's overhead (cluster start,
   tasks, per-task cell resolution and cache checks) against its parallel scoring.
2. Scoring-bound cell: FaceQAN on LFW fold 1 with ``--fr dlib --quality-fr dlib-torch`` (about
   1.2 s per image on this CPU), limited to the first N images of the cell (``--faceqan-images``)
   to keep the benchmark short: scored in one process, then as 2 equal image ranges by 2 Ray
   tasks (what ``score_range`` does for a sharded cell). Part files only; merge/EDC are not timed.

Reported: wall seconds of each and the ratio (local / Ray). Torch in the local process uses its
default intra-op threads (both cores); Ray gives each 1-CPU worker one thread.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.core import paths
from bench.pipeline.cell import RunConfig, resolve_cell
from bench.pipeline.executors import execute
from bench.pipeline.plan import expand, load_plan
from bench.pipeline.runner import prepare
from bench.pipeline.scoring import plan_scores, score_images


def _plan_seconds(data_root: Path, results: Path, cache: Path, executor: str, jobs: int | None) -> float:
    base = RunConfig(method="", fr="", dataset="", data_root=data_root, results=results, cache=cache, progress=False)
    cells = expand(load_plan(paths.REPO_ROOT / "plans" / "demo.toml"), base)
    cells = [c for c in cells if c.cfg.method in ("random", "oracle", "ser-fiq")]
    t0 = time.perf_counter()
    outcome = execute(cells, executor, jobs)
    seconds = time.perf_counter() - t0
    if outcome.failed or outcome.not_run or len(outcome.records) != len(cells):
        raise SystemExit(f"plan run incomplete: {outcome.failed or outcome.not_run}")
    return seconds


def _score_subset(cfg: RunConfig, indices: np.ndarray) -> int:
    """Score the given dataset indices of the cell into part files (no merge)."""
    cell = resolve_cell(cfg)
    prep = prepare(cell)
    plan = plan_scores(cell, prep.scored, prep.fr_crops.digests(prep.scored))
    todo = np.intersect1d(indices, plan.todo)
    score_images(cell, plan, todo, prep.method_crops, lambda: prep.embeddings)
    return len(todo)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", type=Path, default=paths.REPO_ROOT.parent / "shared" / "data")
    p.add_argument("--faceqan-images", type=int, default=24, help="images of the FaceQAN cell to score (default 24)")
    p.add_argument("--skip-plan", action="store_true", help="only the scoring-bound cell")
    p.add_argument("--cache", type=Path, help="a crop/embedding cache to reuse (default: a new one, made by the warm-up)")
    args = p.parse_args()
    import ray

    work = Path(tempfile.mkdtemp(prefix="bench-executors-"))
    cache = args.cache or work / "cache"
    try:
        if not args.skip_plan:
            warm = _plan_seconds(args.data_root, work / "warm", cache, "local", 1)
            print(f"warm-up (align + embed unless --cache is warm; score), local 1 process: {warm:.1f} s")
            local = _plan_seconds(args.data_root, work / "local", cache, "local", 1)
            t0 = time.perf_counter()
            ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
            start = time.perf_counter() - t0
            on_ray = _plan_seconds(args.data_root, work / "ray", cache, "ray", None)
            print(f"demo plan, warm cache: local 1 process {local:.1f} s; Ray 2 workers {on_ray:.1f} s "
                  f"(+ {start:.1f} s cluster start); local/Ray = {local / on_ray:.2f} "
                  f"(with start: {local / (on_ray + start):.2f})")
        elif not ray.is_initialized():
            ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")

        cfg = RunConfig(method="faceqan", fr="dlib", dataset="lfw", quality_fr="dlib-torch", folds=[1],
                        data_root=args.data_root, results=work / "fq-local", cache=cache, progress=False)
        cell = resolve_cell(cfg)
        prep = prepare(cell)
        subset = prep.scored[: args.faceqan_images]
        t0 = time.perf_counter()
        n_local = _score_subset(cfg, subset)
        local = time.perf_counter() - t0
        ray_cfg = RunConfig(**{**cfg.__dict__, "results": work / "fq-ray"})
        task = ray.remote(num_cpus=1)(_score_subset)
        t0 = time.perf_counter()
        n_ray = sum(ray.get([task.remote(ray_cfg, part) for part in np.array_split(subset, 2)]))
        on_ray = time.perf_counter() - t0
        print(f"FaceQAN, LFW fold 1, first {len(subset)} images ({n_local} / {n_ray} scored): local 1 process "
              f"{local:.1f} s ({local / max(n_local, 1):.2f} s/image); Ray 2 workers {on_ray:.1f} s "
              f"({on_ray / max(n_ray, 1):.2f} s/image); speedup {local / on_ray:.2f}x")
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

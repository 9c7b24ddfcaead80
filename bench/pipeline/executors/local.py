"""The local executor: the stages in this process (``--jobs 1``) or in N worker processes."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from bench.core.errors import BenchError
from bench.pipeline.executors.stages import bench_env, evaluate, in_env, prepare_dataset, score_range
from bench.pipeline.plan import PlanCell

Done = Callable[[PlanCell, dict[str, Any] | None, str | None], None]


def by_dataset(runnable: list[PlanCell]) -> dict[str, list[PlanCell]]:
    """The cells grouped by dataset, in plan order (one preparation task per dataset)."""
    groups: dict[str, list[PlanCell]] = {}
    for pc in runnable:
        groups.setdefault(pc.cfg.dataset, []).append(pc)
    return groups


def evaluate_cell(pc: PlanCell, done: Done) -> None:
    """The driver's evaluation of one cell; a BenchError fails that cell only."""
    try:
        record = evaluate(pc.cfg)
    except BenchError as exc:
        done(pc, None, str(exc))
        return
    done(pc, record, None)


def run_cells(runnable: list[PlanCell], jobs: int | None, done: Done, address: str | None = None) -> None:
    """Prepare per dataset, score, evaluate in plan order; ``jobs`` > 1 uses worker processes."""
    if address:
        raise BenchError("--ray-address is for --executor ray")
    groups = by_dataset(runnable)
    jobs = jobs or 1
    if jobs == 1:
        failed: dict[str, str] = {}
        for dataset, cells in groups.items():
            try:
                prepare_dataset([pc.cfg for pc in cells])
            except BenchError as exc:
                failed[dataset] = str(exc)
        for pc in runnable:
            if pc.cfg.dataset in failed:
                done(pc, None, failed[pc.cfg.dataset])
            else:  # scoring happens inside the evaluation: no worker to hand it to
                evaluate_cell(pc, done)
        return
    _run_pool(runnable, groups, jobs, done)


def _worker_threads(threads: int) -> None:
    """Pool initializer: each worker's share of the cores for torch/BLAS (set before they are
    imported), as Ray does for its 1-CPU workers; N workers with all cores each oversubscribe."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))


def _error(future: Future) -> str | None:
    exc = future.exception()
    if exc is None:
        return None
    if isinstance(exc, BenchError):
        return str(exc)
    raise exc


def _run_pool(runnable: list[PlanCell], groups: dict[str, list[PlanCell]], jobs: int, done: Done) -> None:
    from bench.pipeline.executors.stages import plan_work

    env = bench_env()
    # spawn, not fork: a forked copy of a driver holding torch or open memmaps is unsafe.
    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_threads,
                             initargs=(threads,)) as pool:
        prepared = {ds: pool.submit(in_env, env, prepare_dataset, [pc.cfg for pc in cells]) for ds, cells in groups.items()}
        failed = {ds: err for ds, fut in prepared.items() if (err := _error(fut)) is not None}
        work = plan_work([pc for pc in runnable if pc.cfg.dataset not in failed], jobs)
        scoring = [[pool.submit(in_env, env, score_range, w.pc.cfg, k, w.shards) for k in range(w.shards)] for w in work]
        evaluated = set()
        for w, futures in zip(work, scoring):
            errors = [err for fut in futures if (err := _error(fut)) is not None]
            evaluated.add(id(w.pc))
            if w.error or errors:
                done(w.pc, None, w.error or errors[0])
            else:
                evaluate_cell(w.pc, done)
    for pc in runnable:
        if id(pc) not in evaluated:
            done(pc, None, failed[pc.cfg.dataset])

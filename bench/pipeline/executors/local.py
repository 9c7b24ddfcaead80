"""The local executor: the stages in this process (``--jobs 1``) or in N worker processes."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from bench.core.errors import BenchError
from bench.core.threads import ENV, apply, configure, worker_env
from bench.pipeline.executors.stages import (
    Costs,
    bench_env,
    evaluate,
    in_env,
    prepare_dataset,
    score_range,
    scored_elsewhere,
)
from bench.pipeline.plan import PlanCell

Done = Callable[[PlanCell, dict[str, Any] | None, str | None], None]


def by_dataset(runnable: list[PlanCell]) -> dict[str, list[PlanCell]]:
    """The cells grouped by dataset, in plan order (one preparation task per dataset)."""
    groups: dict[str, list[PlanCell]] = {}
    for pc in runnable:
        groups.setdefault(pc.cfg.dataset, []).append(pc)
    return groups


def evaluate_cell(pc: PlanCell, done: Done, elsewhere: Costs | None = None) -> None:
    """The driver's evaluation of one cell (``elsewhere``: what other tasks spent on it); a
    BenchError fails that cell only."""
    try:
        record = evaluate(pc.cfg, elsewhere)
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
        shared: dict[int, Costs] = {}
        for dataset, cells in groups.items():
            try:
                shared.update(zip(map(id, cells), prepare_dataset([pc.cfg for pc in cells])))
            except BenchError as exc:
                failed[dataset] = str(exc)
        for pc in runnable:
            if pc.cfg.dataset in failed:
                done(pc, None, failed[pc.cfg.dataset])
            else:  # scoring happens inside the evaluation: no worker to hand it to
                evaluate_cell(pc, done, shared[id(pc)])
        return
    _run_pool(runnable, groups, jobs, done)


def _worker_threads(env: dict[str, str]) -> None:
    """Pool initializer: each worker's share of the cores (threads.worker_env), set before
    torch or a BLAS loads in it; N workers with all cores each oversubscribe."""
    os.environ.update(env)
    configure()


def _error(future: Future) -> str | None:
    exc = future.exception()
    if exc is None:
        return None
    if isinstance(exc, BenchError):
        return str(exc)
    raise exc


def _run_pool(runnable: list[PlanCell], groups: dict[str, list[PlanCell]], jobs: int, done: Done) -> None:
    from bench.pipeline.executors.stages import plan_work

    env = {**bench_env(), **worker_env(jobs)}
    # The driver evaluates beside the workers: it takes a worker's share too, and spawned workers
    # inherit it in their environment before their first import loads numpy's BLAS.
    apply(int(env[ENV]))
    # spawn, not fork: a forked copy of a driver holding torch or open memmaps is unsafe.
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_threads,
                             initargs=(env,)) as pool:
        prepared = {ds: pool.submit(in_env, env, prepare_dataset, [pc.cfg for pc in cells]) for ds, cells in groups.items()}
        failed = {ds: err for ds, fut in prepared.items() if (err := _error(fut)) is not None}
        shared = {id(pc): costs for ds, fut in prepared.items() if ds not in failed
                  for pc, costs in zip(groups[ds], fut.result())}
        work = plan_work([pc for pc in runnable if pc.cfg.dataset not in failed], jobs)
        scoring = [[pool.submit(in_env, env, score_range, w.pc.cfg, k, w.shards) for k in range(w.shards)] for w in work]
        evaluated = set()
        for w, futures in zip(work, scoring):
            errors = [err for fut in futures if (err := _error(fut)) is not None]
            evaluated.add(id(w.pc))
            if w.error or errors:
                done(w.pc, None, w.error or errors[0])
            else:
                evaluate_cell(w.pc, done, {**shared[id(w.pc)], **scored_elsewhere([fut.result() for fut in futures])})
    for pc in runnable:
        if id(pc) not in evaluated:
            done(pc, None, failed[pc.cfg.dataset])

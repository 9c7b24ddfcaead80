"""Executors: run a plan's cells in one process, in worker processes, or on a Ray cluster.

Every executor runs the same stages (:mod:`bench.pipeline.executors.stages`) in the same order:

1. the driver resolves every cell (:func:`bench.pipeline.plan.validate`); cells that cannot run are
   recorded in ``runs/not_run.json`` before any work starts and reported;
2. shared work, once per dataset: crops per (dataset, crop domain), embeddings per
   (dataset, FR model) (:func:`~bench.pipeline.executors.stages.prepare_dataset`);
3. scoring, each cell's images split into ranges scored by workers into atomic part files
   (:func:`~bench.pipeline.executors.stages.score_range`);
4. the driver evaluates the cells in plan order (cheap first): merge, compare, EDC, pAUC rows.

So the executors write the same score files and the same pAUC rows; an interrupted run is
resumed by the same command (finished crops, embeddings and score parts are kept).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.core.errors import BenchError
from bench.pipeline.cell import record_not_run
from bench.pipeline.plan import PlanCell, validate

EXECUTORS = ("local", "ray")
OnDone = Callable[[PlanCell, dict[str, Any] | None, str | None], None]


@dataclass
class Outcome:
    """What a plan run did: records of the evaluated cells, and the cells skipped or failed with why."""

    records: list[dict[str, Any]] = field(default_factory=list)
    not_run: list[tuple[PlanCell, str]] = field(default_factory=list)
    failed: list[tuple[PlanCell, str]] = field(default_factory=list)


def execute(cells: list[PlanCell], executor: str = "local", jobs: int | None = None, ray_address: str | None = None,
            on_done: OnDone | None = None, ray_timeout: float | None = None) -> Outcome:
    """Run ``cells`` with the chosen executor; ``on_done`` is told of each cell as it is evaluated.

    ``jobs``: worker processes (local; default 1) or CPUs of the local Ray cluster started for
    the run (default all); ``ray_address``: an existing Ray cluster instead, which must answer
    within ``ray_timeout`` seconds (default :data:`bench.pipeline.executors.ray.DEFAULT_TIMEOUT`).
    """
    if executor not in EXECUTORS:
        raise BenchError(f"--executor {executor!r}: choose one of {', '.join(EXECUTORS)}")
    if jobs is not None and jobs < 1:
        raise BenchError(f"--jobs {jobs}: must be at least 1")
    if executor == "ray":
        from bench.pipeline.executors.ray import DEFAULT_TIMEOUT, check_cluster, import_ray

        import_ray()  # a missing Ray, or a cluster that does not answer, is said before any cell is checked
        check_cluster(ray_address, DEFAULT_TIMEOUT if ray_timeout is None else ray_timeout)
    outcome = Outcome()
    runnable = []
    for pc, cell in validate(cells):
        if cell is not None:
            runnable.append(pc)
            continue
        outcome.not_run.append((pc, pc.excluded or pc.reason or "unknown"))
        if on_done is not None:
            on_done(pc, None, pc.excluded or pc.reason)
    if not runnable:
        return outcome
    if executor == "ray":
        from bench.pipeline.executors.ray import run_cells
    else:
        from bench.pipeline.executors.local import run_cells  # type: ignore[assignment]

    def done(pc: PlanCell, record: dict[str, Any] | None, error: str | None) -> None:
        if record is not None:
            outcome.records.append(record)
        else:
            outcome.failed.append((pc, error or "unknown"))
            record_not_run(pc.cfg.results, pc.cfg, error or "unknown")
        if on_done is not None:
            on_done(pc, record, error)

    run_cells(runnable, jobs, done, ray_address)
    return outcome

"""The Ray executor: the stages as Ray Core tasks on a local or existing cluster.

Ray is optional (``pip install fiqa-bench[ray]``) and imported only here. A stage on
``--device cuda`` requests one GPU, so Ray runs it where a GPU is (and sets
``CUDA_VISIBLE_DEVICES`` for it). A task whose worker dies is retried by Ray
(``MAX_RETRIES``); a retried or restarted score range skips its finished part files.
"""

from __future__ import annotations

from typing import Any

from bench.core.errors import BenchError
from bench.pipeline.cell import RunConfig
from bench.pipeline.executors.local import Done, by_dataset, evaluate_cell
from bench.pipeline.executors.stages import bench_env, in_env, prepare_dataset, score_range
from bench.pipeline.plan import PlanCell

MAX_RETRIES = 2


def import_ray() -> Any:
    """The ray module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise BenchError("--executor ray needs Ray: install fiqa-bench[ray] (pip install 'fiqa-bench[ray]')") from None
    return ray


def gpus(cfgs: list[RunConfig]) -> int:
    """GPUs a task over ``cfgs`` requests: one when any runs on CUDA."""
    return int(any(cfg.device.startswith("cuda") for cfg in cfgs))


def _error(ray: Any, ref: Any) -> str | None:
    """None when the task succeeded; else its BenchError's message, or why its worker died."""
    try:
        ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, BenchError):
            return str(cause)
        raise
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as exc:
        return f"a Ray worker died ({type(exc).__name__}); run the same command again to resume"
    return None


def run_cells(runnable: list[PlanCell], jobs: int | None, done: Done, address: str | None = None) -> None:
    """Prepare per dataset, score in ranges on the cluster, evaluate in plan order here."""
    from bench.pipeline.executors.stages import plan_work

    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=None if address else jobs, include_dashboard=False,
                 logging_level="warning", configure_logging=True)
    try:
        workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        env = bench_env()
        task = ray.remote(max_retries=MAX_RETRIES)(in_env)
        groups = by_dataset(runnable)
        prepared = {ds: task.options(num_gpus=gpus([pc.cfg for pc in cells])).remote(
            env, prepare_dataset, [pc.cfg for pc in cells]) for ds, cells in groups.items()}
        failed = {ds: err for ds, ref in prepared.items() if (err := _error(ray, ref)) is not None}
        work = plan_work([pc for pc in runnable if pc.cfg.dataset not in failed], workers)
        scoring = [[task.options(num_gpus=gpus([w.pc.cfg])).remote(env, score_range, w.pc.cfg, k, w.shards)
                    for k in range(w.shards)] for w in work]
        for w, refs in zip(work, scoring):
            errors = [err for ref in refs if (err := _error(ray, ref)) is not None]
            if w.error or errors:
                done(w.pc, None, w.error or errors[0])
            else:
                evaluate_cell(w.pc, done)
        for pc in runnable:
            if pc.cfg.dataset in failed:
                done(pc, None, failed[pc.cfg.dataset])
    finally:
        if started:
            ray.shutdown()

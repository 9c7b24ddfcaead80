"""The Ray executor: the stages as Ray Core tasks on a local or existing cluster.

Ray is optional (``pip install fiqa-bench[ray]``) and imported only here. A stage on
``--device cuda`` requests one GPU, so Ray runs it where a GPU is (and sets
``CUDA_VISIBLE_DEVICES`` for it). A task whose worker dies is retried by Ray
(``MAX_RETRIES``); a retried or restarted score range skips its finished part files. An
existing cluster that does not answer is said in one line within ``--ray-timeout`` seconds
(:func:`check_cluster`), not after minutes of Ray's reconnect warnings.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

from bench.core.errors import BenchError
from bench.core.threads import cores, worker_env
from bench.pipeline.cell import RunConfig
from bench.pipeline.executors.local import Done, by_dataset, evaluate_cell
from bench.pipeline.executors.stages import bench_env, in_env, prepare_dataset, score_range, scored_elsewhere
from bench.pipeline.plan import PlanCell

MAX_RETRIES = 2
DEFAULT_TIMEOUT = 30.0  # seconds an existing cluster gets to answer (--ray-timeout)


def import_ray() -> Any:
    """The ray module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise BenchError("--executor ray needs Ray: install fiqa-bench[ray] (pip install 'fiqa-bench[ray]')") from None
    return ray


def _cluster(address: str | None) -> tuple[str, str | None]:
    """The cluster address ray.init will use (``address``, else ``RAY_ADDRESS``; None: start a
    local one) and how the user gave it, for error lines."""
    if address:
        return f"--ray-address {address}", address
    env = os.environ.get("RAY_ADDRESS")
    return (f"RAY_ADDRESS={env}", env) if env else ("a local Ray cluster", None)


def check_cluster(address: str | None, timeout: float = DEFAULT_TIMEOUT) -> None:
    """One error line, within ``timeout`` seconds, when the existing cluster at ``address`` (or
    ``RAY_ADDRESS``) does not answer; nothing to check when a local cluster is to be started.

    ray.init retries an unreachable GCS for minutes, printing warnings, so the address is tried
    first: a TCP connection (refused or silent: said at once, or after ``timeout``), then a Ray
    GCS client on it (a port that answers but is no Ray cluster, or refuses us). That client
    cannot be interrupted, so it runs in a daemon thread that is abandoned after ``timeout``.
    """
    label, target = _cluster(address)
    if target is None or target in ("auto", "local") or ("://" in target and not target.startswith("ray://")):
        return  # started here, found by Ray on this machine, or a scheme only Ray knows
    host, sep, port = target.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise BenchError(f"{label}: expected HOST:PORT, the cluster's GCS address (e.g. 10.0.0.5:6379)")
    host = host.strip("[]")  # an IPv6 literal
    start = time.monotonic()
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except socket.gaierror as exc:
        raise BenchError(f"{label}: unknown host {host} ({exc.strerror})") from None
    except TimeoutError:
        raise BenchError(f"{label}: no Ray cluster answered within {timeout:g} s (--ray-timeout)") from None
    except OSError as exc:
        raise BenchError(f"{label}: no Ray cluster there ({exc.strerror or exc}); start one with "
                         f"`ray start --head` or fix the address") from None
    if not target.startswith("ray://"):  # Ray Client servers speak another protocol
        _check_gcs(label, f"{host}:{port}", timeout, timeout - (time.monotonic() - start))


def _check_gcs(label: str, address: str, timeout: float, left: float) -> None:
    """Ask the GCS at ``address`` whether it is alive, in the ``left`` seconds of ``timeout``."""
    ray = import_ray()
    try:
        from ray._raylet import GcsClient  # what ray.init connects with; absent in other Ray versions
    except ImportError:
        return
    answer: list[BaseException | None] = []

    def ask() -> None:
        try:
            GcsClient(address=address).check_alive([], timeout=max(1, int(left)))
            answer.append(None)
        except ray.exceptions.RayError as exc:  # no GCS there, or it refuses us (e.g. token authentication)
            answer.append(exc)
        except Exception:  # noqa: BLE001 - an API this Ray lacks: leave the verdict to ray.init
            answer.append(None)

    thread = threading.Thread(target=ask, name="bench-ray-check", daemon=True)
    thread.start()
    thread.join(max(0.0, left))
    if not answer:
        raise BenchError(f"{label}: something listens there, but no Ray cluster answered within {timeout:g} s "
                         f"(--ray-timeout)")
    if answer[0] is not None:
        raise BenchError(f"{label}: the Ray cluster refused the connection ({type(answer[0]).__name__}: {answer[0]})")


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
        try:
            ray.init(address=address, num_cpus=None if address else jobs, include_dashboard=False,
                     logging_level="warning", configure_logging=True)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise BenchError(f"{_cluster(address)[0]}: Ray did not start or connect ({exc})") from None
    try:
        workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        env = {**bench_env(), **worker_env(cores())}  # each task holds one CPU: one thread
        task = ray.remote(max_retries=MAX_RETRIES)(in_env)
        groups = by_dataset(runnable)
        prepared = {ds: task.options(num_gpus=gpus([pc.cfg for pc in cells])).remote(
            env, prepare_dataset, [pc.cfg for pc in cells]) for ds, cells in groups.items()}
        failed = {ds: err for ds, ref in prepared.items() if (err := _error(ray, ref)) is not None}
        shared = {id(pc): costs for ds, ref in prepared.items() if ds not in failed
                  for pc, costs in zip(groups[ds], ray.get(ref))}
        work = plan_work([pc for pc in runnable if pc.cfg.dataset not in failed], workers)
        scoring = [[task.options(num_gpus=gpus([w.pc.cfg])).remote(env, score_range, w.pc.cfg, k, w.shards)
                    for k in range(w.shards)] for w in work]
        for w, refs in zip(work, scoring):
            errors = [err for ref in refs if (err := _error(ray, ref)) is not None]
            if w.error or errors:
                done(w.pc, None, w.error or errors[0])
            else:
                evaluate_cell(w.pc, done, {**shared[id(w.pc)], **scored_elsewhere(ray.get(refs))})
        for pc in runnable:
            if pc.cfg.dataset in failed:
                done(pc, None, failed[pc.cfg.dataset])
    finally:
        if started:
            ray.shutdown()

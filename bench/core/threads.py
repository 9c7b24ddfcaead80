"""The thread budget of a process: how many threads torch, OpenMP and BLAS may use.

Every entry point (``bench run`` and plan runs, ``bench train``, ``make demo``, local worker
processes and Ray tasks) calls :func:`configure` before torch starts, so each process gets
``cores // concurrent processes`` threads (at least one), unless ``--threads N`` or
``BENCH_THREADS`` says otherwise, and OpenMP threads that wait passively
(``OMP_WAIT_POLICY=PASSIVE`` unless already set). Why: with the libraries' defaults two
OpenMP threads spin-wait on each other on a busy 2-core machine. Measured with
``benchmarks/bench_threads.py`` on 2 cores shared with other agents' work (two runs; wall
time per image as a ratio to 1 thread in the same run): with the default wait policy 2
threads took 2.9x-7.2x (dlib-torch) and 7.0x-27x (DifFIQA n = 1) without extra load, 0.9x-1.2x
and 7.9x-37x beside 2 competing busy processes; 2 passive threads took 0.81x-1.08x and
0.62x-0.85x without, 0.30x-1.45x and 0.52x-0.84x beside them. Passive waiting removes the
collapse, and 2 passive threads were as fast as 1 or faster in all but one measurement, so
the default stays one thread per core of the process's share, waiting passively.

The budget travels in the environment: ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and
``OPENBLAS_NUM_THREADS`` (read once by each library when it loads) and ``BENCH_THREADS``
(an explicit budget, read by worker processes, which receive the driver's ``BENCH_*``
variables); torch, when already imported, is told directly (``torch.set_num_threads``).
"""

from __future__ import annotations

import os
import sys

from bench.core.errors import BenchError

ENV = "BENCH_THREADS"
LIBRARY_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
WAIT_POLICY = ("OMP_WAIT_POLICY", "PASSIVE")


def cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity masks on this platform
        return os.cpu_count() or 1


def budget(workers: int = 1, threads: int | None = None) -> int:
    """Threads for each of ``workers`` concurrent processes: ``threads`` when given
    (``--threads``), else ``BENCH_THREADS`` when set, else ``cores() // workers``, at least 1."""
    if threads is None and os.environ.get(ENV):
        try:
            threads = int(os.environ[ENV])
        except ValueError:
            raise BenchError(f"{ENV}={os.environ[ENV]!r}: expected a positive integer") from None
    if threads is not None:
        if threads < 1:
            raise BenchError(f"--threads {threads}: must be at least 1")
        return threads
    return max(1, cores() // max(1, workers))


def apply(threads: int) -> int:
    """Give this process (and the processes it starts) ``threads`` threads; returns it."""
    for name in LIBRARY_ENV:
        os.environ[name] = str(threads)
    os.environ.setdefault(*WAIT_POLICY)
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def configure(threads: int | None = None, workers: int = 1) -> int:
    """The entry points' call: apply the :func:`budget` of one of ``workers`` processes. An
    explicit ``threads`` is also put in ``BENCH_THREADS``, so worker processes keep it."""
    n = budget(workers, threads)
    if threads is not None:
        os.environ[ENV] = str(n)
    return apply(n)


def worker_env(workers: int) -> dict[str, str]:
    """``BENCH_THREADS`` for each of ``workers`` worker processes started by this driver."""
    return {ENV: str(budget(workers))}

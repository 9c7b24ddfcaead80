"""A warm rerun of a 3-cell plan (random, oracle, SER-FIQ; dlib; LFW folds 1-2), in one process.

Run: ``.venv/bin/python benchmarks/bench_plan_rerun.py WORK [DATA_ROOT]`` (DATA_ROOT defaults to
../shared/data). The first call fills WORK/cache and WORK/results (aligning and scoring ~1,200
LFW images: minutes); later calls find every stage cached, which is what this measures.

A plan resolves each cell three times (validate, the shared preparation, the run). Timed,
alternately, ``REPEATS`` times each after one untimed warm-up: the rerun with the per-process
memo of folder listings and protocol-file checks (:mod:`bench.datasets.listing`) as it is,
and with it defeated (every look recomputed, as before the memo). Printed: the median wall
seconds of each, the seconds spent inside ``resolve_cell``, and the ratio of the two reruns.
Interpreter start-up and imports (torch alone is ~2 s) are outside the timing: they are paid
once per command whatever the plan does.
"""

from __future__ import annotations

import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.core import paths
from bench.core.threads import configure
from bench.datasets import listing
from bench.pipeline import cell as cell_module
from bench.pipeline.cell import RunConfig
from bench.pipeline.executors import execute
from bench.pipeline.plan import expand, load_plan

REPEATS = 3
PLAN = """
[settings]
folds = [1, 2]
[methods.ser-fiq]
quality_fr = "dlib-torch"
[[grid]]
methods = ["random", "oracle", "ser-fiq"]
fr = ["dlib"]
datasets = ["lfw"]
"""


@contextmanager
def memo(enabled: bool) -> Any:
    """The listing memo as it is, or defeated: every recorded folder state reads as changed."""
    real = listing.unchanged
    if not enabled:
        listing.unchanged = lambda recorded: False  # type: ignore[assignment]
    try:
        yield
    finally:
        listing.unchanged = real  # type: ignore[assignment]


def timed_rerun(cells: Any, enabled: bool) -> tuple[float, float]:
    """(wall seconds of the whole plan, seconds inside resolve_cell)."""
    spent = [0.0]
    real = cell_module._resolve

    def counting(cfg: RunConfig) -> Any:
        t0 = time.perf_counter()
        try:
            return real(cfg)
        finally:
            spent[0] += time.perf_counter() - t0

    cell_module._resolve = counting  # type: ignore[assignment]
    try:
        with memo(enabled):
            t0 = time.perf_counter()
            outcome = execute(cells)
            wall = time.perf_counter() - t0
    finally:
        cell_module._resolve = real  # type: ignore[assignment]
    if outcome.failed or outcome.not_run:
        sys.exit(f"error: cells failed: {outcome.failed or outcome.not_run}")
    return wall, spent[0]


def main(work: Path, data_root: Path) -> None:
    configure(1)
    work.mkdir(parents=True, exist_ok=True)
    plan_file = work / "plan3.toml"
    plan_file.write_text(PLAN, encoding="utf-8")
    base = RunConfig(method="", fr="", dataset="", data_root=data_root, results=work / "results", cache=work / "cache",
                     progress=False)
    cells = expand(load_plan(plan_file), base)
    execute(cells)  # fills the caches on the first call; warm-up afterwards
    runs: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for _ in range(REPEATS):
        for enabled in (False, True):
            runs[enabled].append(timed_rerun(cells, enabled))
    before = statistics.median(w for w, _ in runs[False])
    after = statistics.median(w for w, _ in runs[True])
    for name, enabled in (("memo defeated (before)", False), ("memo (after)", True)):
        walls, resolving = zip(*runs[enabled])
        print(f"{name:<24} rerun {statistics.median(walls):5.2f} s wall, "
              f"resolve_cell {statistics.median(resolving):5.2f} s ({REPEATS} runs, median)")
    print(f"after / before: {after / before:.2f}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: bench_plan_rerun.py WORK [DATA_ROOT]")
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else paths.REPO_ROOT.parent / "shared" / "data")

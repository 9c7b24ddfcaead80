"""``make demo``: a real, offline, end-to-end evaluation on LFW with dlib's FR model.

Steps: obtain LFW (from ``BENCH_MIRROR`` or the official URL) → align (dlib's 5-point chips)
→ embed with ``dlib`` → score with every method that runs without extra weights, and DifFIQA
(n = 1) with the DDPM this repository ships for dlib's crops (trained on CFP) → EDC / pAUC → report (tables + EDC plot) in
``demo-out/``. By default a documented subset of the protocol's folds keeps it under
15 minutes on 2 cores; ``--full`` evaluates all ten folds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from bench.core import paths, resources
from bench.core.errors import BenchError
from bench.pipeline.plan import PlanCell

DEFAULT_FOLDS = [1, 2]
# Worker processes by default. One per core: a 48-px UNet pass keeps one thread busy but
# scales poorly across threads, so two one-thread workers scored DifFIQA 2.0x faster than one
# two-thread process on 2 cores (1.9 vs 3.8 images/s; make demo 16.1 min cold with one worker,
# 6.7 min warm with two).
MAX_DEFAULT_JOBS = 4
DEMO_PLAN = resources.folder("plans") / "demo.toml"
SHIPPED_DDPM = paths.REPO_ROOT / "weights" / "dlib150-cfp" / "diffiqa_ddpm.pt"


def demo_cells(plan_path: Path, data_root: Path, results: Path, cache: Path, folds: list[int] | None, faceqan: bool,
               ddpm: Path | None) -> list[PlanCell]:
    """The cells of the demo plan this demo runs: the plan's methods less FaceQAN (unless
    ``faceqan``) and DifFIQA (unless a DDPM checkpoint ``ddpm`` is given), on ``folds``."""
    from bench.pipeline.cell import RunConfig
    from bench.pipeline.plan import expand, load_plan

    base = RunConfig(method="", fr="", dataset="", data_root=data_root, results=results, cache=cache)
    chosen = []
    for pc in expand(load_plan(plan_path), base, {"folds": folds}):
        # FaceQAN only when asked for (slow), DifFIQA only when its DDPM checkpoint exists.
        if pc.cfg.method == "faceqan" and not faceqan or pc.cfg.method == "diffiqa" and ddpm is None:
            continue
        if pc.cfg.method == "diffiqa":
            pc.cfg.method_weights = paths.absolute(ddpm)
        chosen.append(pc)
    return chosen


def demo_locations(out: Path) -> dict[str, Path]:
    """Where the demo puts LFW, its results, its cache (``BENCH_CACHE`` when set) and its report,
    all absolute from here on: the cells must read the cache the shared preparation wrote even
    if the working directory changes meanwhile (issue 28)."""
    out = paths.absolute(out)
    cache = paths.cache_dir(None) if "BENCH_CACHE" in os.environ else out / "cache"
    return {"data": out / "data", "results": out / "results", "cache": cache, "report": out / "report"}


def default_ddpm() -> Path | None:
    """``$BENCH_WEIGHTS/diffiqa_ddpm.pt``, else the DDPM this repository ships for dlib's crops
    (``weights/dlib150-cfp``, trained on CFP: it never saw LFW), else None."""
    w = paths.weights_dir()
    for candidate in ([w / "diffiqa_ddpm.pt"] if w is not None else []) + [SHIPPED_DDPM]:
        if candidate.is_file():
            return candidate
    return None


def main(argv: list[str] | None = None) -> int:
    from bench.core.threads import configure, cores
    from bench.datasets.fetch import fetch
    from bench.pipeline.executors import execute
    from bench.report import build_report

    p = argparse.ArgumentParser(prog="python -m bench.demo", description=__doc__)
    p.add_argument("--out", type=Path, default=Path("demo-out"))
    p.add_argument("--full", action="store_true", help="all ten LFW folds (about 7,700 images; slower)")
    p.add_argument("--folds", default=",".join(map(str, DEFAULT_FOLDS)), help="LFW folds to evaluate (default 1,2)")
    p.add_argument("--faceqan", action="store_true", help="also run FaceQAN (50 forward+backward passes per image)")
    p.add_argument("--jobs", type=int, help=f"worker processes (default: one per core, at most {MAX_DEFAULT_JOBS}); "
                                            "DifFIQA's images are split between them")
    p.add_argument("--threads", type=int, help="torch/OpenMP/BLAS threads per process (default: $BENCH_THREADS, "
                                               "else cores / concurrent processes; bench.core.threads)")
    p.add_argument("--ddpm", type=Path, help="DifFIQA DDPM checkpoint (default: $BENCH_WEIGHTS/diffiqa_ddpm.pt, else the "
                                             "shipped weights/dlib150-cfp/diffiqa_ddpm.pt)")
    args = p.parse_args(argv)
    start = time.perf_counter()
    try:
        configure(args.threads)  # before anything starts torch or a BLAS
        where = demo_locations(args.out)
        data_root, results = where["data"], where["results"]
        print(f"[demo] obtaining LFW into {data_root} (mirror: {os.environ.get('BENCH_MIRROR', 'official URL')})")
        fetch("lfw", data_root, None)
        ddpm = args.ddpm or default_ddpm()
        folds = None if args.full else [int(f) for f in args.folds.split(",")]
        cells = demo_cells(DEMO_PLAN, data_root, results, where["cache"], folds, args.faceqan, ddpm)
        print(f"[demo] {len(cells)} cells of {DEMO_PLAN}: "
              + ", ".join(pc.cfg.method for pc in cells))
        t0 = time.perf_counter()

        def report(pc: PlanCell, rec: dict | None, error: str | None) -> None:
            nonlocal t0
            if rec is None:
                print(f"[demo] {pc.cfg.method:<10} not run: {error}")
            else:
                print(f"[demo] {pc.cfg.method:<10} pAUC@0.2={rec['pauc']['0.2']:.3f}  pAUC@0.3={rec['pauc']['0.3']:.3f}  "
                      f"FNMR@1e-3={rec['fnmr_at_0']:.3f}  ({time.perf_counter() - t0:.0f} s)")
            t0 = time.perf_counter()

        jobs = args.jobs or min(cores(), MAX_DEFAULT_JOBS)
        outcome = execute(cells, "local", jobs, on_done=report)
        if outcome.failed or outcome.not_run:
            return 2
        # The report names its source as the user gave it, not as this machine's absolute path.
        written = build_report(results=results, source=str(args.out / "results"), discard=0.3, out=where["report"],
                               tables=None, data_root=None, cache=where["cache"])
        # The demo's evaluation (folds 1-2) differs from the paper's: its table is pauc-folds-1-2.md.
        table = [p for p in written if p.parent.name == "tables" and p.name.startswith("pauc") and p.suffix == ".md"]
        for path in table:
            print(path.read_text(encoding="utf-8"))
        print(f"[demo] done in {time.perf_counter() - start:.0f} s; report: {where['report']}")
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``make demo``: a real, offline, end-to-end evaluation on LFW with dlib's FR model.

Steps: obtain LFW (from ``BENCH_MIRROR`` or the official URL) → align (dlib's 5-point chips)
→ embed with ``dlib`` → score with every method that runs without extra weights (plus
DifFIQA when a DDPM checkpoint is found) → EDC / pAUC → report (tables + EDC plot) in
``demo-out/``. By default a documented subset of the protocol's folds keeps it under
15 minutes on 2 cores; ``--full`` evaluates all ten folds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from bench import paths
from bench.errors import BenchError

DEFAULT_FOLDS = [1, 2]
QUALITY_FR = "dlib-torch"


def _methods(ddpm: Path | None, with_slow: bool) -> list[tuple[str, dict]]:
    """(method, extra RunConfig fields) for the methods the demo can run here."""
    chosen: list[tuple[str, dict]] = [("random", {}), ("oracle", {}), ("ser-fiq", {"quality_fr": QUALITY_FR})]
    if with_slow:
        chosen.append(("faceqan", {"quality_fr": QUALITY_FR}))
    if ddpm is not None:
        chosen.append(("diffiqa", {"quality_fr": QUALITY_FR, "method_weights": ddpm}))
    return chosen


def main(argv: list[str] | None = None) -> int:
    from bench.fetch import fetch
    from bench.report import build_report
    from bench.runner import RunConfig, run

    p = argparse.ArgumentParser(prog="python -m bench.demo", description=__doc__)
    p.add_argument("--out", type=Path, default=Path("demo-out"))
    p.add_argument("--full", action="store_true", help="all ten LFW folds (about 7,700 images; slower)")
    p.add_argument("--folds", default=",".join(map(str, DEFAULT_FOLDS)), help="LFW folds to evaluate (default 1,2)")
    p.add_argument("--faceqan", action="store_true", help="also run FaceQAN (50 forward+backward passes per image)")
    p.add_argument("--ddpm", type=Path, help="DifFIQA DDPM checkpoint (default: $BENCH_WEIGHTS/diffiqa_ddpm.pt if present)")
    args = p.parse_args(argv)
    start = time.perf_counter()
    try:
        data_root = args.out / "data"
        print(f"[demo] obtaining LFW into {data_root} (mirror: {os.environ.get('BENCH_MIRROR', 'official URL')})")
        fetch("lfw", data_root, None)
        ddpm = args.ddpm
        if ddpm is None and (w := paths.weights_dir()) is not None and (w / "diffiqa_ddpm.pt").is_file():
            ddpm = w / "diffiqa_ddpm.pt"
        folds = None if args.full else [int(f) for f in args.folds.split(",")]
        results = args.out / "results"
        for method, extra in _methods(ddpm, args.faceqan):
            t0 = time.perf_counter()
            rec = run(RunConfig(method=method, fr="dlib", dataset="lfw", data_root=data_root, results=results,
                                cache=paths.cache_dir(None) if "BENCH_CACHE" in os.environ else args.out / "cache",
                                folds=folds, **extra))
            print(f"[demo] {method:<10} pAUC@0.2={rec['pauc']['0.2']:.3f}  pAUC@0.3={rec['pauc']['0.3']:.3f}  "
                  f"FNMR@1e-3={rec['fnmr_at_0']:.3f}  ({time.perf_counter() - t0:.0f} s)")
        written = build_report(results=results, source=str(results), discard=0.3, out=args.out / "report", tables=None, data_root=None)
        table = [p for p in written if p.parent.name == "tables" and p.name == "pauc.md"]
        for path in table:
            print(path.read_text(encoding="utf-8"))
        print(f"[demo] done in {time.perf_counter() - start:.0f} s; report: {args.out / 'report'}")
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

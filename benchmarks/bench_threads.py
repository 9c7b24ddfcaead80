"""Threads per process: 1 vs 2 torch/OpenMP threads for dlib-torch embedding and DifFIQA (n = 1), idle and loaded.

Run: ``.venv/bin/python benchmarks/bench_threads.py [--images 32 --diffiqa-images 4]`` (about 4 minutes on 2 cores).

Each measurement runs in a fresh process whose thread budget is set before torch starts
(``bench.core.threads``): 1 thread, 2 threads with the libraries' default wait policy (spin,
then sleep) and 2 passive ones (``OMP_WAIT_POLICY=PASSIVE``), one after another.
"Loaded" adds a competing load of 2 busy processes (one per core, pure CPU spin) started by
this script and stopped after the loaded measurements. Timed: dlib-torch on ``--images``
random 150x150 chips (CPU seconds and wall seconds per image), and DifFIQA n = 1 with the
shipped DDPM (``weights/dlib150-cfp``) on dlib-torch for ``--diffiqa-images`` chips, after a
one-image warm-up. Printed: per image ms and the 2-thread / 1-thread wall ratio; the wall
time is what a user waits for.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

VARIANTS = (("1 thread", 1, False), ("2 threads (default wait)", 2, False), ("2 threads, OMP_WAIT_POLICY=PASSIVE", 2, True))


def child(threads: int, passive: bool, images: int, diffiqa_images: int) -> dict[str, float]:
    """Measure in this (fresh) process with ``threads`` threads; torch is imported only after the budget is set."""
    from bench.core.threads import WAIT_POLICY, apply

    apply(threads)
    if not passive:  # the libraries' default: threads spin a while before they sleep
        del os.environ[WAIT_POLICY[0]]
    import numpy as np
    import torch

    from bench.core import paths
    from bench.core.registry import create
    from bench.datasets.base import FaceDataset
    from bench.datasets.protocol import PairProtocol
    from bench.methods.base import ScoreContext

    assert torch.get_num_threads() == threads
    chips = (np.random.default_rng(0).random((images, 150, 150, 3)) * 255).astype(np.uint8)
    fr = create("fr", "dlib-torch")
    fr.embed(chips[:2])
    out: dict[str, float] = {}
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, images, 32):  # the runner's batches
        fr.embed(chips[start:start + 32])
    out["embed_wall"], out["embed_cpu"] = (time.perf_counter() - wall) / images, (time.process_time() - cpu) / images

    class Crops:
        def get(self, idx: np.ndarray) -> np.ndarray:
            return chips[idx]

    ds = FaceDataset(name="bench", root=paths.REPO_ROOT, image_ids=[f"{i}.png" for i in range(images)],
                     protocol=PairProtocol(a=np.array([0]), b=np.array([1]), mated=np.array([True])))
    method = create("method", "diffiqa", weights=paths.REPO_ROOT / "weights" / "dlib150-cfp" / "diffiqa_ddpm.pt",
                    repeats=1)
    ctx = ScoreContext(dataset=ds, fr=fr, crops=Crops(), batch_size=32, progress=False)
    method.score_dataset(np.arange(1), ctx)  # warm-up: checkpoint load, allocations
    wall, cpu = time.perf_counter(), time.process_time()
    method.score_dataset(np.arange(1, 1 + diffiqa_images), ctx)
    out["diffiqa_wall"] = (time.perf_counter() - wall) / diffiqa_images
    out["diffiqa_cpu"] = (time.process_time() - cpu) / diffiqa_images
    return out


def measure(threads: int, passive: bool, args: argparse.Namespace) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", str(threads), "--images", str(args.images),
           "--diffiqa-images", str(args.diffiqa_images)] + (["--passive"] if passive else [])
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                             "OMP_WAIT_POLICY", "BENCH_THREADS")}
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def spin() -> None:
    """A competing process: pure CPU spin until killed."""
    x = 0
    while True:
        x += 1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--diffiqa-images", type=int, default=4)
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--passive", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--spin", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.spin:
        spin()
    if args.child:
        print(json.dumps(child(args.child, args.passive, args.images, args.diffiqa_images)))
        return
    print(f"{args.images} chips (dlib-torch), {args.diffiqa_images} (DifFIQA n = 1); "
          f"{len(os.sched_getaffinity(0))} cores; load average before: {os.getloadavg()[0]:.2f}")
    for load in ("no extra load", "+2 spinning processes"):
        spinners = []
        if load != "no extra load":
            spinners = [subprocess.Popen([sys.executable, __file__, "--spin"]) for _ in range(2)]
        try:
            res = {label: measure(t, passive, args) for label, t, passive in VARIANTS}
        finally:
            for proc in spinners:
                proc.kill()
                proc.wait()
        print(f"[{load}]")
        base = res[VARIANTS[0][0]]
        for label, r in res.items():
            print(f"  {label:<36} dlib-torch {1000 * r['embed_wall']:7.1f} ms/image wall ({1000 * r['embed_cpu']:6.1f} CPU)"
                  f" = {r['embed_wall'] / base['embed_wall']:.2f}x 1 thread;  DifFIQA n=1 {r['diffiqa_wall']:6.2f} s/image"
                  f" wall ({r['diffiqa_cpu']:.2f} CPU) = {r['diffiqa_wall'] / base['diffiqa_wall']:.2f}x 1 thread")


if __name__ == "__main__":
    main()

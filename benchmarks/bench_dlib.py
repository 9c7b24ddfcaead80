"""Per-image cost of the dlib FR path on real LFW images: alignment, dlib-native, dlib (the port).

Run: ``.venv/bin/python benchmarks/bench_dlib.py [N]`` (N LFW deep-funneled images, default
32; needs ../shared/data/lfw). Times, per image: reading + HOG detection + 5-point landmarks +
``get_face_chip`` (dlib150 aligner); ``dlib-native`` (dlib's ``compute_face_descriptor``) on a
batch of chips; ``dlib`` (the PyTorch port, what runs use when torch is installed) on CPU in
batches of 16. The port is reported as a ratio to dlib-native, measured in the same run; the
largest embedding difference between the two is printed as a check.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from bench.align.dlib_chip import DlibChipAligner
from bench.core import paths
from bench.core.registry import create
from bench.datasets.base import read_rgb

BATCH = 16


def main(n: int = 32) -> None:
    root = paths.REPO_ROOT.parent / "shared" / "data" / "lfw" / "lfw-deepfunneled"
    if not root.is_dir():
        sys.exit(f"error: LFW not found at {root}")
    files = [next(iter(sorted(p.iterdir()))) for p in sorted(root.iterdir())[:n]]
    aligner = DlibChipAligner()
    aligner.align(read_rgb(files[0]), None, False)  # load the detector and predictor
    start = time.perf_counter()
    made = [aligner.align(read_rgb(f), None, False) for f in files]
    align_s = (time.perf_counter() - start) / n
    chips = np.stack([c for c, _ in made])

    dlib_fr, torch_fr = create("fr", "dlib-native"), create("fr", "dlib")
    dlib_fr.embed(chips[:2])
    torch_fr.embed(chips[:2])
    start = time.perf_counter()
    reference = dlib_fr.embed(chips)
    dlib_s = (time.perf_counter() - start) / n
    start = time.perf_counter()
    ours = np.concatenate([torch_fr.embed(chips[i : i + BATCH]) for i in range(0, n, BATCH)])
    torch_s = (time.perf_counter() - start) / n

    print(f"{n} LFW images, torch threads {torch.get_num_threads()}")
    print(f"align (read + HOG + landmarks + chip): {1000 * align_s:.1f} ms/image, "
          f"{sum(d for _, d in made)}/{n} detected")
    print(f"dlib-native (compute_face_descriptor): {1000 * dlib_s:.1f} ms/image")
    print(f"dlib, the port (CPU, batch {BATCH}):        {1000 * torch_s:.1f} ms/image "
          f"= {torch_s / dlib_s:.3f}x dlib-native")
    print(f"max |dlib - dlib-native|: {np.abs(ours - reference).max():.2e}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 32)

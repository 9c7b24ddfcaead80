"""Benchmark: IJB-C-sized template comparisons (23,124 templates, 15,658,489 pairs) in bounded memory.

Measures the time and the peak resident memory of ``bench.pipeline.similarity.compare`` on synthetic
data of IJB-C's size (512-D embeddings, ~3.4 images per template), printed as a ratio to one
``np.sort`` of the similarities in the same run. Run: ``.venv/bin/python benchmarks/bench_compare.py``.
"""

from __future__ import annotations

import resource
import time

import numpy as np

from bench.datasets.protocol import PairProtocol, Templates
from bench.pipeline.similarity import compare

N_TEMPLATES = 23_124
N_MATED = 19_557
N_NONMATED = 15_638_932
N_IMAGES = 79_000
DIM = 512


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(N_IMAGES, DIM)).astype(np.float32)
    rows = np.concatenate([np.arange(N_TEMPLATES), rng.integers(0, N_TEMPLATES, N_IMAGES - N_TEMPLATES)])
    templates = Templates(image=np.arange(N_IMAGES), template=rows, media=rng.integers(0, 40_000, N_IMAGES),
                          template_ids=np.arange(N_TEMPLATES))
    n = N_MATED + N_NONMATED
    a = rng.integers(0, N_TEMPLATES, n).astype(np.int32)
    b = rng.integers(0, N_TEMPLATES, n).astype(np.int32)
    mated = np.zeros(n, dtype=bool)
    mated[:N_MATED] = True
    protocol = PairProtocol(a=a, b=b, mated=mated, templates=templates)
    quality = rng.random(N_IMAGES)
    before = _peak_gib()
    t0 = time.perf_counter()
    comps = compare(protocol, emb, quality)
    elapsed = time.perf_counter() - t0
    t0 = time.perf_counter()
    np.sort(comps.nonmated_similarity)
    sort_s = time.perf_counter() - t0
    print(f"inputs held: {before:.2f} GiB peak RSS before comparing")
    print(f"compare (template features + {n:,} similarities + pair qualities): {elapsed:.2f} s "
          f"= {elapsed / sort_s:.1f}x one np.sort of the non-mated similarities ({sort_s:.2f} s)")
    print(f"peak RSS after: {_peak_gib():.2f} GiB (increase {_peak_gib() - before:.2f} GiB; goal < 4 GiB)")


if __name__ == "__main__":
    main()

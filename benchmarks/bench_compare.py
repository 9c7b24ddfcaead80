"""Benchmark: IJB-C-sized template comparisons (23,124 templates, 15,658,489 pairs) in bounded memory.

Measures the time (wall and CPU) and the peak resident memory of
``bench.pipeline.similarity.compare`` on synthetic data of IJB-C's size (512-D embeddings,
~3.4 images per template), printed as a ratio to one ``np.sort`` of the similarities in the
same run, and its template pooling alone against the ``np.add.at`` formulation it replaced
(same run, checked bit-identical). Run: ``.venv/bin/python benchmarks/bench_compare.py``.
"""

from __future__ import annotations

import resource
import time

import numpy as np

from bench.datasets.protocol import PairProtocol, Templates
from bench.fr.base import normalise
from bench.pipeline.similarity import compare, template_features

N_TEMPLATES = 23_124
N_MATED = 19_557
N_NONMATED = 15_638_932
N_IMAGES = 79_000
DIM = 512


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def add_at_template_features(embeddings: np.ndarray, templates: Templates) -> np.ndarray:
    """The np.add.at pooling template_features used before (the baseline)."""
    emb = normalise(embeddings)
    width = int(templates.media.max()) + 1
    group_keys, group = np.unique(templates.template.astype(np.int64) * width + templates.media, return_inverse=True)
    sums = np.zeros((len(group_keys), emb.shape[1]))
    np.add.at(sums, group, emb[templates.image])
    media_mean = sums / np.bincount(group, minlength=len(group_keys))[:, None]
    feats = np.zeros((templates.n_templates, emb.shape[1]))
    np.add.at(feats, group_keys // width, media_mean)
    feats /= np.bincount(group_keys // width, minlength=templates.n_templates)[:, None].clip(min=1)
    return normalise(feats)


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
    t0, c0 = time.perf_counter(), time.process_time()
    comps = compare(protocol, emb, quality)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    after = _peak_gib()
    t0 = time.perf_counter()
    ours = template_features(emb, templates)
    pool_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    theirs = add_at_template_features(emb, templates)
    add_at_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    np.sort(comps.nonmated_similarity)
    sort_s = time.perf_counter() - t0
    print(f"inputs held: {before:.2f} GiB peak RSS before comparing")
    print(f"compare (template features + {n:,} similarities + pair qualities): {elapsed:.2f} s wall, {cpu:.2f} CPU-s "
          f"= {elapsed / sort_s:.1f}x one np.sort of the non-mated similarities ({sort_s:.2f} s)")
    print(f"  template pooling: sparse products {pool_s:.2f} s, np.add.at {add_at_s:.2f} s "
          f"({add_at_s / pool_s:.1f}x); bit-identical: {np.array_equal(ours, theirs)}")
    print(f"peak RSS after compare: {after:.2f} GiB (increase {after - before:.2f} GiB; goal < 4 GiB)")


if __name__ == "__main__":
    main()

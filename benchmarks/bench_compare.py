"""Benchmark: IJB-C-sized template comparisons (23,124 templates, 15,658,489 pairs) in bounded memory.

Measures the time (wall and CPU) and the peak resident memory of
``bench.pipeline.similarity.compare`` on synthetic data of IJB-C's size and shape (512-D
embeddings, ~3.4 images per template; the 1:1 protocol's pairs join one of 3,531 enrolment
templates to one of 19,593 mixed-media probes, their ids interleaved), printed as a ratio to
one ``np.sort`` of the similarities in the same run. Baselines in the same run: the template
pooling against the ``np.add.at`` two-step means it replaced (equal within float32 rounding), and the pair similarities against
the full-matrix blocks they replaced (23,124² products), each checked equal.
Run: ``.venv/bin/python benchmarks/bench_compare.py``.
"""

from __future__ import annotations

import resource
import time

import numpy as np

from bench.datasets.protocol import PairProtocol, Templates
from bench.fr.base import normalise
from bench.pipeline.similarity import compare, pair_similarity, template_features

N_TEMPLATES = 23_124
N_ENROLMENT = 3_531  # IJB-C 1:1: enrolment (gallery) templates; the other 19,593 are probes
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


def full_matrix_similarity(features: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 1 << 24) -> np.ndarray:
    """The pair similarities as computed before: blocks of the full subject-by-subject matrix."""
    out = np.empty(len(a), dtype=np.float32)
    n = len(features)
    block = max(1, chunk // n)
    order = np.argsort(a, kind="stable")
    bounds = np.searchsorted(a[order], np.arange(0, n + block, block))
    feats_t = np.ascontiguousarray(features.T)
    for k in range(len(bounds) - 1):
        if bounds[k] != bounds[k + 1]:
            idx = order[bounds[k] : bounds[k + 1]]
            out[idx] = (features[k * block : (k + 1) * block] @ feats_t)[a[idx] - k * block, b[idx]]
    return out


def ijbc_pairs(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Enrolment x probe pairs of IJB-C's count, template ids of both kinds interleaved."""
    ids = rng.permutation(N_TEMPLATES).astype(np.int32)
    enrol, probe = ids[:N_ENROLMENT], ids[N_ENROLMENT:]
    n = N_MATED + N_NONMATED
    flat = rng.choice(N_ENROLMENT * len(probe), size=n, replace=False)
    return enrol[flat // len(probe)], probe[flat % len(probe)]


def main() -> None:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(N_IMAGES, DIM)).astype(np.float32)
    rows = np.concatenate([np.arange(N_TEMPLATES), rng.integers(0, N_TEMPLATES, N_IMAGES - N_TEMPLATES)])
    templates = Templates(image=np.arange(N_IMAGES), template=rows, media=rng.integers(0, 40_000, N_IMAGES),
                          template_ids=np.arange(N_TEMPLATES))
    n = N_MATED + N_NONMATED
    a, b = ijbc_pairs(rng)
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
    feats = ours.astype(np.float32)
    t0 = time.perf_counter()
    new_sim = pair_similarity(feats, a, b)
    new_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    old_sim = full_matrix_similarity(feats, a, b)
    old_s = time.perf_counter() - t0
    print(f"inputs held: {before:.2f} GiB peak RSS before comparing")
    print(f"compare (template features + {n:,} similarities + pair qualities): {elapsed:.2f} s wall, {cpu:.2f} CPU-s "
          f"= {elapsed / sort_s:.1f}x one np.sort of the non-mated similarities ({sort_s:.2f} s)")
    print(f"  template pooling: one weighted sparse product {pool_s:.2f} s, np.add.at {add_at_s:.2f} s "
          f"({add_at_s / pool_s:.1f}x); max |difference| {float(np.abs(ours - theirs).max()):.1e} (float32 rounding)")
    print(f"  pair similarities: used-subject blocks {new_s:.2f} s, full-matrix blocks {old_s:.2f} s "
          f"({old_s / new_s:.1f}x); max |difference| {float(np.abs(new_sim - old_sim).max()):.1e}")
    print(f"peak RSS after compare: {after:.2f} GiB (increase {after - before:.2f} GiB; goal < 4 GiB)")


if __name__ == "__main__":
    main()

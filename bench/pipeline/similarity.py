"""Comparisons: cosine similarity and pair quality for every protocol comparison, vectorised.

For template protocols (IJB-C) a template's feature is the mean over its media of the
per-media mean image embeddings, L2-normalised, and its quality is derived from its images'
qualities by a named rule (``min`` by default, as the CR-FIQA IJB-C code; ``mean``).
Template pairs are compared in chunks so that 15.6 M comparisons stay in bounded memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.core.errors import DataError
from bench.datasets.protocol import PairProtocol, Templates
from bench.fr.base import normalise
from bench.stats.edc import pair_quality

TEMPLATE_QUALITY_RULES = ("min", "mean")
CHUNK = 1 << 24  # elements (float32) held per chunk: 64 MiB
# Below this many comparisons per subject pair, gathering rows beats block matrix products.
DENSE_FACTOR = 64
SUM_COLUMNS = 64  # embedding columns pooled per sparse product (bounds the float64 copy)


def template_features(embeddings: np.ndarray, templates: Templates) -> np.ndarray:
    """Per-template features: mean over media of per-media mean unit embeddings, L2-normalised.

    One sparse product: template ``t``'s feature is ``sum_j w_j e_j`` over its rows ``j`` with
    ``w_j = 1 / (|e_j| * images in j's (template, media) group * media of t)``, the two means
    and the unit scaling folded into one weight, accumulated in float64 (column blocks through
    one reused buffer: IJB-C's 79,000 x 512 embeddings never exist in float64 at once). Equal
    to the two-step mean of unit vectors up to float rounding; zero embeddings weigh nothing.
    """
    from scipy.sparse import csr_matrix

    emb = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(emb, axis=1).astype(np.float64)[templates.image]
    width = int(templates.media.max()) + 1
    keys = templates.template.astype(np.int64) * width + templates.media
    group_keys, group = np.unique(keys, return_inverse=True)
    per_template = np.bincount(group_keys // width, minlength=templates.n_templates)
    scale = norms * np.bincount(group, minlength=len(group_keys))[group] * per_template[templates.template]
    weight = np.divide(1.0, scale, out=np.zeros_like(scale), where=norms > 0)
    pool = csr_matrix((weight, (templates.template, templates.image)), shape=(templates.n_templates, len(emb)))
    feats = np.empty((templates.n_templates, emb.shape[1]))
    buf = np.empty((len(emb), min(SUM_COLUMNS, emb.shape[1])))
    for start in range(0, emb.shape[1], SUM_COLUMNS):
        cols = slice(start, start + SUM_COLUMNS)
        block = buf[:, : emb[:, cols].shape[1]]
        np.copyto(block, emb[:, cols])
        feats[:, cols] = pool @ block
    return normalise(feats)


def template_quality(image_quality: np.ndarray, templates: Templates, rule: str = "min") -> np.ndarray:
    """Per-template quality from its images' qualities by ``rule`` (min or mean)."""
    q = np.asarray(image_quality, dtype=np.float64)[templates.image]
    n = templates.n_templates
    if rule == "min":
        out = np.full(n, np.inf)
        np.minimum.at(out, templates.template, q)
    elif rule == "mean":
        out = np.bincount(templates.template, weights=q, minlength=n) / np.bincount(templates.template, minlength=n).clip(min=1)
    else:
        raise DataError(f"unknown template quality rule {rule!r}; known: {', '.join(TEMPLATE_QUALITY_RULES)}")
    return out


@dataclass(frozen=True)
class Comparisons:
    """Similarity and pair quality of every comparison, split into mated / non-mated."""

    mated_similarity: np.ndarray
    mated_quality: np.ndarray
    nonmated_similarity: np.ndarray
    nonmated_quality: np.ndarray


def pair_similarity(features: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """Cosine similarity of rows ``a[k]`` and ``b[k]`` of unit-norm ``features``.

    Sparse protocols (few comparisons per subject, e.g. LFW) gather the two rows of each
    comparison in chunks. Dense ones compute blocks of the matrix between the subjects that
    appear as ``a`` and those that appear as ``b`` (one matrix product per block) and pick the
    comparisons from them: far less memory traffic than gathering 2 x 15.6 M rows. Only those
    subjects enter the product: IJB-C's 1:1 protocol compares its 3,531 enrolment templates
    with its 19,593 mixed-media probes, a 3,531 x 19,593 product (71 GFLOP at 512-D) where the
    full 23,124² one costs 548. Memory stays bounded by ``chunk`` elements either way.
    """
    out = np.empty(len(a), dtype=np.float32)
    rows_used, row_of = _used(a, len(features))
    cols_used, col_of = _used(b, len(features))
    if len(a) * DENSE_FACTOR < len(rows_used) * len(cols_used):
        step = max(1, chunk // max(1, features.shape[1]))
        for start in range(0, len(a), step):
            sl = slice(start, start + step)
            out[sl] = np.einsum("ij,ij->i", features[a[sl]], features[b[sl]])
        return out
    block = max(1, chunk // len(cols_used))
    # Comparisons grouped by row block: a stable sort of small integer keys (numpy's radix sort).
    block_of = (row_of // block).astype(np.int16 if len(rows_used) // block < 2**15 else np.int64)
    order = np.argsort(block_of, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(block_of, minlength=-(-len(rows_used) // block)))))
    cols_t = np.ascontiguousarray(features[cols_used].T)
    for k in range(len(bounds) - 1):
        if bounds[k] == bounds[k + 1]:
            continue
        products = features[rows_used[k * block : (k + 1) * block]] @ cols_t
        idx = order[bounds[k] : bounds[k + 1]]
        # One flat gather: 2-D fancy indexing of the block costs twice as much.
        flat = (row_of[idx] - (k * block)).astype(np.int64) * len(cols_used) + col_of[idx]
        out[idx] = products.ravel().take(flat)
    return out


def _used(index: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of ``index`` (ascending) and each entry's position among them, by a
    lookup table over ``0..n-1`` (no sort of the 15.6 M entries); positions as int32 when they
    fit (half the memory traffic of the gathers that use them)."""
    present = np.zeros(n, dtype=bool)
    present[index] = True
    position = np.cumsum(present, dtype=np.int32 if n < 2**31 else np.int64) - 1
    return np.flatnonzero(present), position[index]


def compare(protocol: PairProtocol, embeddings: np.ndarray, image_quality: np.ndarray,
            quality_rule: str = "min", template_rule: str = "min") -> Comparisons:
    """Similarities and pair qualities for every comparison of ``protocol``.

    ``image_quality`` is higher-is-better, one value per dataset image.
    """
    if protocol.templates is None:
        feats, quality = normalise(embeddings), np.asarray(image_quality, dtype=np.float64)
    else:
        feats = template_features(embeddings, protocol.templates).astype(np.float32)
        quality = template_quality(image_quality, protocol.templates, template_rule)
    sim = pair_similarity(feats, protocol.a, protocol.b)
    pq = pair_quality(quality[protocol.a], quality[protocol.b], quality_rule)
    m = protocol.mated
    return Comparisons(sim[m], pq[m], sim[~m], pq[~m])

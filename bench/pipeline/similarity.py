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


def template_features(embeddings: np.ndarray, templates: Templates) -> np.ndarray:
    """Per-template features: mean over media of per-media mean embeddings, L2-normalised."""
    emb = normalise(embeddings)
    # Dense (template, media) groups: the mean per group, then the mean of groups per template.
    keys = templates.template.astype(np.int64) * (int(templates.media.max()) + 1) + templates.media
    group_keys, group = np.unique(keys, return_inverse=True)
    sums = np.zeros((len(group_keys), emb.shape[1]), dtype=np.float64)
    np.add.at(sums, group, emb[templates.image])
    counts = np.bincount(group, minlength=len(group_keys))[:, None]
    media_mean = sums / counts
    group_template = group_keys // (int(templates.media.max()) + 1)
    feats = np.zeros((templates.n_templates, emb.shape[1]), dtype=np.float64)
    np.add.at(feats, group_template, media_mean)
    feats /= np.bincount(group_template, minlength=templates.n_templates)[:, None].clip(min=1)
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
    comparison in chunks. Dense ones (IJB-C: ~680 comparisons per template) compute blocks
    of the subject-by-subject similarity matrix with one matrix product each and pick the
    comparisons from them: far less memory traffic than gathering 2 x 15.6 M rows.
    Memory stays bounded by ``chunk`` rows either way.
    """
    out = np.empty(len(a), dtype=np.float32)
    n_subjects = len(features)
    if len(a) * DENSE_FACTOR < n_subjects * n_subjects:
        step = max(1, chunk // max(1, features.shape[1]))
        for start in range(0, len(a), step):
            sl = slice(start, start + step)
            out[sl] = np.einsum("ij,ij->i", features[a[sl]], features[b[sl]])
        return out
    block = max(1, chunk // n_subjects)
    order = np.argsort(a, kind="stable")
    bounds = np.searchsorted(a[order], np.arange(0, n_subjects + block, block))
    feats_t = np.ascontiguousarray(features.T)
    for k in range(len(bounds) - 1):
        if bounds[k] == bounds[k + 1]:
            continue
        rows = features[k * block : (k + 1) * block] @ feats_t
        idx = order[bounds[k] : bounds[k + 1]]
        out[idx] = rows[a[idx] - k * block, b[idx]]
    return out


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

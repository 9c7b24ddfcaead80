"""Mock methods for tests and sanity checks: ``random`` (no information) and ``oracle``.

``oracle`` peeks at the ground truth (FR embeddings + mated labels), so its EDC is close to
the best achievable; ``random`` must give a normalised pAUC within noise of 1.0.
"""

from __future__ import annotations

import zlib

import numpy as np

from bench.core.registry import register_method
from bench.methods.base import QualityMethod, ScoreContext, ScoreResult


@register_method("random")
class RandomQuality(QualityMethod):
    """Uniform [0, 1) scores from a generator seeded by (seed, dataset name, image id)."""

    checkpoint_batches = False

    def score_batch(self, crops: np.ndarray, indices: np.ndarray, ctx: ScoreContext) -> np.ndarray:
        ids = [ctx.dataset.image_ids[int(i)] for i in indices]
        # Seed per image id so scores do not depend on batch size or image order.
        return np.array([np.random.default_rng([self.seed, zlib.crc32(i.encode())]).random() for i in ids])

    def score_dataset(self, indices: np.ndarray, ctx: ScoreContext) -> ScoreResult:
        # Crops are not needed; skip alignment entirely.
        return ScoreResult(scores=self.score_batch(np.empty(0), indices, ctx))


@register_method("oracle")
class OracleQuality(QualityMethod):
    """Quality = min cosine similarity over the image's mated comparisons (ground truth)."""

    checkpoint_batches = False

    def score_batch(self, crops: np.ndarray, indices: np.ndarray, ctx: ScoreContext) -> np.ndarray:
        raise NotImplementedError("oracle scores whole datasets only")

    def score_dataset(self, indices: np.ndarray, ctx: ScoreContext) -> ScoreResult:
        from bench.fr.base import normalise

        if ctx.embeddings is None:
            raise ValueError("oracle needs FR embeddings")
        emb = normalise(ctx.embeddings())
        proto = ctx.dataset.protocol
        if proto.templates is not None:
            raise ValueError("oracle supports image-pair protocols only")
        a, b = proto.a[proto.mated], proto.b[proto.mated]
        sim = np.einsum("ij,ij->i", emb[a], emb[b])
        quality = np.ones(len(ctx.dataset))
        np.minimum.at(quality, a, sim)
        np.minimum.at(quality, b, sim)
        return ScoreResult(scores=quality[indices])

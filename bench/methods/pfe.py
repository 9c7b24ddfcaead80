"""PFE (Shi and Jain, ICCV 2019): import-only here.

The official release (seasonSH/Probabilistic-Face-Embeddings) is TensorFlow 1.x: a
SphereFace-64 backbone on 112x96 crops plus an uncertainty module (FC, BN, ReLU, FC, BN,
``gamma * x + beta``, ``log(1e-6 + exp(x))`` = log sigma^2). Its quality score is the negated
harmonic mean of sigma^2. Running it needs the TensorFlow backbone *and* head; there is no
official PyTorch port of either, and an unofficial conversion would not be the method the
papers evaluated, so the harness only imports scores computed with the official code.
"""

from __future__ import annotations

from bench.core.registry import register_method
from bench.methods.import_only import ImportOnlyMethod


@register_method("pfe")
class PFE(ImportOnlyMethod):
    """Scores come from `bench import-scores --method pfe`."""

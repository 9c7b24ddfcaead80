"""Face alignment into the crop *domain* an FR model expects.

Domains: ``arcface112`` (ArcFace 5-point similarity transform, 112x112), ``dlib150``
(dlib's own 5-point chip, 150x150), ``lightqnet160`` (LightQNet's 3-point alignment, 160x160),
``mtcnn224`` (FaceQnet's MTCNN face box, resized to 224x224), ``native`` (images used as
stored, all of one size).
Aligners are imported lazily by domain name so that the detector libraries load only when
crops are actually made.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod

import numpy as np

from bench.core.errors import RegistryError
from bench.core.optional import missing_dependency, require

_DOMAINS = {
    "arcface112": "bench.align.arcface:ArcFaceAligner",
    "dlib150": "bench.align.dlib_chip:DlibChipAligner",
    "native": "bench.align:NativeAligner",
    "lightqnet160": "bench.align.lightqnet:LightQNetAligner",
    "mtcnn224": "bench.align.mtcnn_box:MtcnnBoxAligner",
}


def domains() -> list[str]:
    """Names of the crop domains, for command-line choices."""
    return list(_DOMAINS)


class Aligner(ABC):
    """Turns one RGB image into one aligned RGB crop of ``size`` x ``size``."""

    size: int

    @abstractmethod
    def align(self, image: np.ndarray, landmarks: np.ndarray | None, pre_aligned: bool) -> tuple[np.ndarray, bool]:
        """Return (crop uint8 [size, size, 3] RGB, detected).

        ``landmarks`` [5, 2] are used when the dataset ships them; ``pre_aligned`` says the
        image is already an ArcFace 112 crop. ``detected`` False means the documented
        fallback (a centre crop) was used and the image is flagged in the outputs.
        """

    def cache_tag(self, pre_aligned: bool) -> str:
        """Appended to the crop cache's file names: a new tag whenever the crops this aligner makes
        for such inputs change, so a cache made by the earlier behaviour is not served as current
        (the cache is keyed by the source images' content, which did not change)."""
        return ""


class NativeAligner(Aligner):
    """No alignment: the stored image is the crop (synthetic data, pre-made crops)."""

    size = 0

    def align(self, image: np.ndarray, landmarks: np.ndarray | None, pre_aligned: bool) -> tuple[np.ndarray, bool]:
        return np.ascontiguousarray(image), True


def get_aligner(domain: str) -> Aligner:
    """The aligner of a crop domain."""
    if domain not in _DOMAINS:
        raise RegistryError(f"unknown crop domain {domain!r}; known: {', '.join(_DOMAINS)}")
    module, _, attr = _DOMAINS[domain].partition(":")
    try:
        return getattr(importlib.import_module(module), attr)()
    except ModuleNotFoundError as exc:
        missing_dependency(exc, f"the {domain} aligner")
        raise


def centre_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The documented fallback when no face is found: the central square, resized to ``size``."""
    cv2 = require("cv2", "the centre-crop fallback")

    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = image[top : top + side, left : left + side]
    return cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA)

"""The dataset interface: a loader finds a dataset under a data root and parses its protocol.

A loaded :class:`FaceDataset` gives image ids (paths relative to the dataset folder, the ids
score files are keyed by), a way to read each image, and its :class:`PairProtocol`.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.core.cards import Card
from bench.core.errors import DataError
from bench.core.optional import require
from bench.datasets.protocol import PairProtocol


def read_source(path: Path) -> tuple[bytes, int]:
    """The bytes of an image file and its mtime_ns (of the file read, not of a later
    replacement); a missing or unreadable file raises DataError."""
    try:
        with open(path, "rb") as fh:
            return fh.read(), os.fstat(fh.fileno()).st_mtime_ns
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read image file ({exc.strerror or exc})") from None


def decode_rgb(data: bytes, path: Path) -> np.ndarray:
    """Encoded image bytes (read from ``path``) as RGB uint8 [H, W, 3]; DataError if they do not decode."""
    if not data:
        # cv2.imdecode asserts on an empty buffer instead of returning None.
        raise DataError(f"{path}: image file is empty (0 bytes)")
    cv2 = require("cv2", "reading images")
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None:
        raise DataError(f"{path}: cannot decode image (corrupt or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_rgb(path: Path) -> np.ndarray:
    """Read an image file as RGB uint8 [H, W, 3]; a missing, empty or corrupt file raises DataError."""
    return decode_rgb(read_source(path)[0], path)


@dataclass
class FaceDataset:
    """A dataset found on disk (or made in memory) with its comparison protocol.

    ``aligned`` is True when the images are already ArcFace-aligned 112x112 crops (XQLFW,
    InsightFace .bin files), so no detector runs on them. ``landmarks`` [N, 5, 2] are given
    when the dataset ships them (IJB-C). ``identities`` (int per image) serve Table 1 and the
    oracle method. ``reader`` replaces file reading for in-memory datasets.
    """

    name: str
    root: Path
    image_ids: list[str]
    protocol: PairProtocol
    aligned: bool = False
    identities: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    n_images_total: int | None = None
    n_identities_total: int | None = None
    reader: Callable[[int], np.ndarray] | None = field(default=None, repr=False)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.image_ids)

    def image_path(self, index: int) -> Path:
        return self.root / self.image_ids[index]

    def source_path(self, index: int) -> Path | None:
        """The file image ``index`` is decoded from, or None when ``reader`` supplies it."""
        return None if self.reader is not None else self.image_path(index)

    def read_image(self, index: int) -> np.ndarray:
        """RGB uint8 [H, W, 3] of image ``index``."""
        if self.reader is not None:
            return self.reader(index)
        return read_rgb(self.image_path(index))

    def check_files(self) -> None:
        """Raise one DataError naming the count and first five missing files, if any."""
        if self.reader is not None:
            return
        missing = [i for i in self.protocol.used_images() if not self.image_path(int(i)).is_file()]
        if missing:
            first = ", ".join(str(self.image_path(int(i))) for i in missing[:5])
            raise DataError(f"{self.name}: {len(missing)} image file(s) named by the protocol are missing, first: {first}")


class DatasetLoader(ABC):
    """Finds one dataset under a data root and loads it. Subclasses register by name."""

    registered_name: str

    def __init__(self, card: Card) -> None:
        self.card = card

    @abstractmethod
    def locate(self, root: Path) -> Path:
        """The dataset folder under ``root``; DataError naming the expected path and card if absent."""

    @abstractmethod
    def load(self, root: Path) -> FaceDataset:
        """Parse the protocol and image list of the dataset found under ``root``."""

"""The dataset interface: a loader finds a dataset under a data root and parses its protocol.

A loaded :class:`FaceDataset` gives image ids (paths relative to the dataset folder, the ids
score files are keyed by), a way to read each image, and its :class:`PairProtocol`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from bench.cards import Card
from bench.errors import DataError
from bench.protocol import PairProtocol


def read_rgb(path: Path) -> np.ndarray:
    """Read an image file as RGB uint8 [H, W, 3]; a missing or corrupt file raises DataError."""
    data = np.fromfile(path, dtype=np.uint8) if path.is_file() else None
    if data is None:
        raise DataError(f"{path}: image file not found")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"{path}: cannot decode image (corrupt or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


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

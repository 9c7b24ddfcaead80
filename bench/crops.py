"""Aligned crops, cached per (dataset, domain) in a memory-mapped .npy with a status array.

Alignment is the slowest preprocessing step, so it runs once per image and domain and an
interrupted run resumes where it stopped. Status per image: 0 not yet made, 1 detected and
aligned, 2 no face found (the aligner's documented fallback: a centre crop for arcface112, a
fixed mean face box for dlib150; flagged), 3 unreadable (only with skip_bad).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench.align import get_aligner
from bench.datasets.base import FaceDataset
from bench.errors import DataError
from bench.io import atomic_write_text

PENDING, DETECTED, FALLBACK, UNREADABLE = 0, 1, 2, 3


def manifest_hash(dataset: FaceDataset) -> str:
    """A short hash of the dataset's image list: caches are keyed by it, not by path alone."""
    h = hashlib.sha256(dataset.name.encode())
    for image_id in dataset.image_ids:
        h.update(b"\0" + image_id.encode())
    return h.hexdigest()[:16]


class CropStore:
    """Aligned crops of one dataset in one domain, made on demand and cached on disk."""

    def __init__(self, dataset: FaceDataset, domain: str, cache_dir: Path, skip_bad: bool = False) -> None:
        self.dataset = dataset
        self.domain = domain
        self.skip_bad = skip_bad
        self.aligner = get_aligner(domain)
        self.folder = Path(cache_dir) / "crops" / f"{dataset.name}-{manifest_hash(dataset)}"
        self._crops: np.ndarray | None = None
        self._status: np.ndarray | None = None

    @property
    def status_path(self) -> Path:
        return self.folder / f"{self.domain}.status.npy"

    def _open(self, shape: tuple[int, ...]) -> None:
        if self._crops is not None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self.domain}.crops.npy"
        n = len(self.dataset)
        if path.exists() and self.status_path.exists():
            self._crops = np.load(path, mmap_mode="r+")
            self._status = np.load(self.status_path)
            if self._crops.shape != (n, *shape):
                raise DataError(f"{path}: cached crops have shape {self._crops.shape}, expected {(n, *shape)}; delete it")
        else:
            self._crops = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, *shape))
            self._status = np.zeros(n, dtype=np.uint8)

    def _save_status(self) -> None:
        assert self._crops is not None and self._status is not None
        self._crops.flush()
        tmp = self.status_path.with_suffix(".tmp.npy")
        np.save(tmp, self._status)
        tmp.replace(self.status_path)

    def _make(self, index: int) -> tuple[np.ndarray | None, int]:
        try:
            image = self.dataset.read_image(index)
        except DataError:
            if self.skip_bad:
                return None, UNREADABLE
            raise
        marks = None if self.dataset.landmarks is None else self.dataset.landmarks[index]
        crop, detected = self.aligner.align(image, marks, self.dataset.aligned)
        return crop, DETECTED if detected else FALLBACK

    def ensure(self, indices: np.ndarray, progress: bool = True) -> None:
        """Align every image of ``indices`` not cached yet (status saved every 500 images)."""
        indices = np.asarray(indices, dtype=np.int64)
        if self._status is None:
            first_crop, first_status = self._make(int(indices[0]))
            shape = first_crop.shape if first_crop is not None else None
            if shape is None:
                raise DataError(f"{self.dataset.image_path(int(indices[0]))}: unreadable first image")
            self._open(tuple(shape))
            assert self._status is not None and self._crops is not None
            if self._status[indices[0]] == PENDING:
                self._crops[indices[0]] = first_crop
                self._status[indices[0]] = first_status
        assert self._status is not None and self._crops is not None
        todo = indices[self._status[indices] == PENDING]
        for k, index in enumerate(tqdm(todo, desc=f"align {self.dataset.name} [{self.domain}]", disable=not progress or len(todo) == 0, unit="img")):
            crop, status = self._make(int(index))
            if crop is not None:
                self._crops[index] = crop
            self._status[index] = status
            if k % 500 == 499:
                self._save_status()
        self._save_status()
        self._write_summary()

    def get(self, indices: np.ndarray) -> np.ndarray:
        """Crops of ``indices`` (uint8 [N, H, W, 3] RGB); they must have been made by ``ensure``."""
        if self._status is None:
            self.ensure(indices, progress=False)
        assert self._crops is not None and self._status is not None
        if np.any(self._status[indices] == PENDING):
            self.ensure(indices, progress=False)
        return np.asarray(self._crops[indices])

    def status(self, indices: np.ndarray | None = None) -> np.ndarray:
        """Per-image status codes (see the module docstring)."""
        assert self._status is not None, "call ensure() first"
        return self._status if indices is None else self._status[indices]

    def flagged(self, indices: np.ndarray | None = None) -> dict[str, list[str]]:
        """Image ids (of ``indices``, default all) whose face was not found (fallback crop),
        and those skipped as unreadable."""
        assert self._status is not None
        ids = np.asarray(self.dataset.image_ids, dtype=object)
        keep = np.zeros(len(ids), dtype=bool)
        keep[np.arange(len(ids)) if indices is None else indices] = True
        return {
            "no_face_fallback": ids[keep & (self._status == FALLBACK)].tolist(),
            "unreadable_skipped": ids[keep & (self._status == UNREADABLE)].tolist(),
        }

    def _write_summary(self) -> None:
        assert self._status is not None
        counts = {name: int(np.count_nonzero(self._status == code)) for name, code in
                  (("pending", PENDING), ("detected", DETECTED), ("fallback", FALLBACK), ("unreadable", UNREADABLE))}
        atomic_write_text(self.folder / f"{self.domain}.summary.json", json.dumps({"counts": counts, **self.flagged()}, indent=1))

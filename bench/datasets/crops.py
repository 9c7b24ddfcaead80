"""Aligned crops, cached per (dataset, domain) in a memory-mapped .npy, keyed by source content.

Alignment is the slowest preprocessing step, so it runs once per image and domain and an
interrupted run resumes where it stopped: progress is saved after every batch of
``ALIGN_BATCH`` images (and on any exception). Status per image: 0 not yet made, 1 detected
and aligned, 2 no face found (the aligner's documented fallback: a centre crop for arcface112,
a fixed mean face box for dlib150; flagged), 3 unreadable (only with skip_bad; retried by
every run).

Each crop is keyed by the content of its source: the state file beside the crops records,
per image, the source file's size, mtime_ns and sha256 (for in-memory datasets, the sha256
of the decoded pixels), saved atomically together with the status. A run first compares
size and mtime (one ``stat`` per image); only where they differ is the file hashed, and only
a changed sha256 re-aligns that image. The cache folder depends on the dataset's name and
image ids, never on the data root, so moved or copied data with identical files reuses
every crop. The folder also holds ``image_ids.txt`` (one id per line, in dataset order: row
``k`` of every ``<domain>.crops.npy`` is image ``k``), so a report can show cached crops by
image id without the raw dataset.

A filled cache is only read (memory maps opened read-only), so a shared read-only cache serves
every run that has nothing to align; making or extending a cache file takes an exclusive lock
beside it (:func:`write_lock`), so two processes never write the same cache file at once, and
a folder that missing work cannot write to is one error naming it. A new cache file is made
under a temporary name and renamed into place, never half-made under its final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench.align import get_aligner
from bench.core.errors import DataError
from bench.core.io import atomic_path, atomic_write_text, file_lock
from bench.datasets.base import FaceDataset, decode_rgb, read_source

PENDING, DETECTED, FALLBACK, UNREADABLE = 0, 1, 2, 3
ALIGN_BATCH = 32
NO_DIGEST = bytes(32)
IMAGE_IDS_FILE = "image_ids.txt"


def manifest_hash(dataset: FaceDataset) -> str:
    """A short hash of the dataset's name and image ids (not its root): caches are keyed by it."""
    h = hashlib.sha256(dataset.name.encode())
    for image_id in dataset.image_ids:
        h.update(b"\0" + image_id.encode())
    return h.hexdigest()[:16]


def writable(folder: Path) -> bool:
    """Whether this process may create files in ``folder`` (or, when it does not exist yet, make
    it in its nearest existing parent)."""
    probe = Path(folder)
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    return os.access(probe, os.W_OK)


@contextlib.contextmanager
def write_lock(folder: Path, name: str, work: str) -> Iterator[None]:
    """Hold the exclusive lock of cache file ``folder/name`` while ``work`` (what needs writing,
    for the error) is done: a preparation and a concurrent run never write one cache file at once.

    A folder this process may not write is a one-line DataError naming it: a read-only cache
    serves reads, only missing work needs write access.
    """
    if not writable(folder):
        raise DataError(f"{folder}: cache folder not writable, and {work}; use a writable --cache (or BENCH_CACHE)")
    with file_lock(Path(folder) / f".{name}.lock"):
        yield


def new_memmap(path: Path, dtype: type, shape: tuple[int, ...]) -> np.memmap:
    """A new zero-filled .npy at ``path``, opened for writing: made under a temporary name and
    renamed into place (its folder made just before), so no half-made file ever has the final
    name; callers hold the file's :func:`write_lock`."""
    with atomic_path(path) as tmp:
        np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape).flush()
    return np.load(path, mmap_mode="r+")


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
        self._size = self._mtime = self._sha = np.empty(0)
        # Images whose content this instance has checked; the others are checked by ensure().
        self._verified = np.zeros(len(dataset), dtype=bool)
        self._writing = False  # holding the write lock, crops opened for writing

    @property
    def stem(self) -> str:
        """The cache files' name: the domain, tagged by the aligner when its crops of such inputs changed."""
        return self.domain + self.aligner.cache_tag(self.dataset.aligned)

    @property
    def crops_path(self) -> Path:
        return self.folder / f"{self.stem}.crops.npy"

    @property
    def state_path(self) -> Path:
        return self.folder / f"{self.stem}.state.npz"

    def _load(self, mode: str = "r") -> None:
        """(Re)read the cached state and open the crops in ``mode`` ("r" to read, "r+" to add
        crops, under the write lock), or start empty when either file is missing."""
        n = len(self.dataset)
        if self.state_path.is_file() and self.crops_path.is_file():
            with np.load(self.state_path) as state:
                self._status, self._size, self._mtime, self._sha = (
                    state["status"].copy(), state["size"].copy(), state["mtime_ns"].copy(), state["sha256"].copy())
            self._crops = np.load(self.crops_path, mmap_mode=mode)
            if len(self._status) != n or self._crops.shape[0] != n or self._sha.shape != (n, 32):
                raise DataError(f"{self.folder}: cached crops do not match the dataset's {n} images; delete the folder")
        else:
            self._crops = None
            self._status = np.zeros(n, dtype=np.uint8)
            self._size = np.full(n, -1, dtype=np.int64)
            self._mtime = np.full(n, -1, dtype=np.int64)
            self._sha = np.zeros((n, 32), dtype=np.uint8)

    def _save(self) -> None:
        """Flush the crops, then replace the state file: a saved status never points at an unwritten crop."""
        assert self._status is not None
        if self._crops is not None:
            self._crops.flush()
        with atomic_path(self.state_path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, status=self._status, size=self._size, mtime_ns=self._mtime, sha256=self._sha)

    def _store(self, index: int, crop: np.ndarray) -> None:
        if not self._writing:
            raise DataError(f"{self.folder}: cache folder not writable, and {self.dataset.image_path(index)} needs "
                            f"aligning ({self.domain}); use a writable --cache (or BENCH_CACHE)")
        if self._crops is None:
            self._crops = new_memmap(self.crops_path, np.uint8, (len(self.dataset), *crop.shape))
        if self._crops.shape[1:] != crop.shape:
            raise DataError(f"{self.dataset.image_path(index)}: crop shape {crop.shape} differs from the cached "
                            f"crops' {self._crops.shape[1:]} in {self.crops_path}")
        self._crops[index] = crop

    def _unchanged(self, indices: np.ndarray) -> np.ndarray:
        """Which of ``indices`` hold a crop whose source file still has its recorded size and mtime."""
        assert self._status is not None
        ok = np.isin(self._status[indices], (DETECTED, FALLBACK)) & (self._size[indices] >= 0)
        for k in np.flatnonzero(ok):
            path = self.dataset.source_path(int(indices[k]))
            try:
                st = os.stat(path) if path is not None else None
            except OSError:
                st = None
            ok[k] = st is not None and st.st_size == self._size[indices[k]] and st.st_mtime_ns == self._mtime[indices[k]]
        return ok

    def _source(self, index: int) -> tuple[bytes, int, int, Callable[[], np.ndarray]]:
        """Read image ``index`` once: (sha256 digest, size, mtime_ns, decoder of what was read).

        In-memory datasets have no file to stat: their digest is of the decoded pixels and
        size and mtime are -1, so they are hashed by every run.
        """
        path = self.dataset.source_path(index)
        if path is None:
            image = self.dataset.read_image(index)
            return hashlib.sha256(repr(image.shape).encode() + image.tobytes()).digest(), -1, -1, lambda: image
        data, mtime = read_source(path)
        return hashlib.sha256(data).digest(), len(data), mtime, lambda: decode_rgb(data, path)

    def _refresh(self, index: int) -> None:
        """Record the content key of image ``index`` and re-align it unless its sha256 is the cached one."""
        assert self._status is not None
        try:
            digest, size, mtime, decode = self._source(index)
        except DataError:
            if not self.skip_bad:
                raise
            self._status[index], self._sha[index] = UNREADABLE, np.frombuffer(NO_DIGEST, np.uint8)
            self._size[index] = self._mtime[index] = -1
            return
        keep = self._status[index] in (DETECTED, FALLBACK) and bytes(self._sha[index]) == digest
        self._size[index], self._mtime[index] = size, mtime
        self._sha[index] = np.frombuffer(digest, np.uint8)
        if keep:
            return
        self._status[index] = PENDING
        try:
            image = decode()
        except DataError:
            if not self.skip_bad:
                raise
            self._status[index] = UNREADABLE
            return
        marks = None if self.dataset.landmarks is None else self.dataset.landmarks[index]
        crop, detected = self.aligner.align(image, marks, self.dataset.aligned)
        self._store(index, crop)
        self._status[index] = DETECTED if detected else FALLBACK

    def ensure(self, indices: np.ndarray, progress: bool = True) -> None:
        """Check the content of every image of ``indices`` (once per store) and align those
        not cached or changed; unreadable ones are retried. Progress is saved per batch.

        Nothing is written when nothing is to do. In a folder this process may not write, images
        whose file changed but whose content is the cached one are still served (their new size
        and mtime are kept in memory only); one that needs aligning is a one-line error.
        """
        if self._status is None:
            self._load()
        indices = np.unique(np.asarray(indices, dtype=np.int64))
        check = indices[~self._verified[indices]]
        todo = check[~self._unchanged(check)]
        if len(todo) and writable(self.folder):
            with write_lock(self.folder, f"{self.stem}.crops", f"{len(todo)} image(s) are to check or align"):
                # Another process may have aligned some of them since this store read the state.
                self._load("r+")
                self._writing = True
                try:
                    self._refresh_all(check[~self._unchanged(check)], progress, save=True)
                finally:
                    self._writing = False
        elif len(todo):
            self._refresh_all(todo, progress, save=False)
        self._verified[check] = True
        if writable(self.folder):
            self._write_ids()

    def _refresh_all(self, todo: np.ndarray, progress: bool, save: bool) -> None:
        """:meth:`_refresh` every image of ``todo``, saving after each batch when ``save``."""
        try:
            for start in tqdm(range(0, len(todo), ALIGN_BATCH), desc=f"align {self.dataset.name} [{self.domain}]",
                              disable=not progress or len(todo) == 0, unit="batch"):
                for index in todo[start : start + ALIGN_BATCH]:
                    self._refresh(int(index))
                if save:
                    self._save()
        except BaseException:
            # Whatever was aligned before an error or interrupt is kept for the next run.
            if save:
                self._save()
            raise
        if save and len(todo):
            self._write_summary()

    def _write_ids(self) -> None:
        """Name the crop rows by image id (once per folder; caches made before the file existed get it too)."""
        path = self.folder / IMAGE_IDS_FILE
        if self.crops_path.is_file() and not path.is_file():
            atomic_write_text(path, "".join(image_id + "\n" for image_id in self.dataset.image_ids))

    def get(self, indices: np.ndarray) -> np.ndarray:
        """Crops of ``indices`` (uint8 [N, H, W, 3] RGB), checked and made by ``ensure`` when needed."""
        indices = np.asarray(indices, dtype=np.int64)
        if self._status is None or not self._verified[indices].all():
            self.ensure(indices, progress=False)
        if self._crops is None:
            raise DataError(f"{self.dataset.name}: no readable image among the {len(indices)} requested")
        return np.asarray(self._crops[indices])

    def digests(self, indices: np.ndarray) -> list[str]:
        """Hex sha256 of the source of each image of ``indices`` (its file's bytes; for in-memory
        datasets its decoded pixels), as checked by ``ensure``; "" for an image whose file could
        not be read (skipped with skip_bad). Scores and embeddings computed from an image are
        stale when its digest changes."""
        indices = np.asarray(indices, dtype=np.int64)
        if self._status is None or not self._verified[indices].all():
            self.ensure(indices, progress=False)
        return [bytes(row).hex() if bytes(row) != NO_DIGEST else "" for row in self._sha[indices]]

    def digest_bytes(self, indices: np.ndarray) -> np.ndarray:
        """The raw sha256 digests (uint8 [N, 32]) behind ``digests``; all zero where unreadable."""
        indices = np.asarray(indices, dtype=np.int64)
        if self._status is None or not self._verified[indices].all():
            self.ensure(indices, progress=False)
        return self._sha[indices]

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
        atomic_write_text(self.folder / f"{self.stem}.summary.json", json.dumps({"counts": counts, **self.flagged()}, indent=1))

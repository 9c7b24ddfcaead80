"""FR embeddings of a dataset, cached per (FR provenance, dataset manifest, domain, flip).

Embedding is the most expensive step after alignment; the cache is a memory-mapped .npy
plus a ``.state.npz`` holding, per row, the sha256 of the source image the row was computed
from (all zero: not yet embedded), saved after every batch so an interrupted run resumes
where it stopped. A row whose image's source digest (``CropStore.digest_bytes``) changed is
recomputed; the others are reused. The folder is named by a hash of ``fr.provenance()``
(canonical JSON: model, version, weights, domain and the model's options), so changing any of
them never reuses embeddings; a JSON file beside the cache records that provenance.

As for crops (:mod:`bench.datasets.crops`): a cache with nothing to add is only read (a
read-only cache serves reads); adding rows holds the cache file's write lock, so a shared
preparation and a concurrent run never embed into one file at once (the second waits, then
finds the rows made); a new file is made under a temporary name and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench.core.errors import DataError
from bench.core.io import atomic_path, atomic_write_text
from bench.core.paths import safe_name
from bench.core.provenance import base_metadata
from bench.datasets.crops import UNREADABLE, CropStore, manifest_hash, new_memmap, write_lock
from bench.fr.base import FRModel


def provenance_key(fr: FRModel) -> str:
    """A short hash of the FR model's provenance as canonical JSON."""
    canonical = json.dumps(fr.provenance(), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _cache_stem(fr: FRModel, crops: CropStore, flip: bool) -> Path:
    model = f"{safe_name(fr.name)}-{provenance_key(fr)}"
    tail = "-flip" if flip else ""
    return crops.folder.parent.parent / "embeddings" / model / f"{crops.dataset.name}-{manifest_hash(crops.dataset)}-{crops.stem}{tail}"


def cached_sources(fr: FRModel, crops: CropStore, flip: bool = False) -> np.ndarray | None:
    """Read-only: per dataset image, the source sha256 (uint8 [N, 32]) its cached embedding row
    was computed from (zeros for rows never computed); None when there is no cache yet.

    A row is current when it equals the crop store's digest of the image (what
    :func:`embed_dataset` checks); dry runs use this to estimate the work left.
    """
    stem = _cache_stem(fr, crops, flip)
    state_path = stem.with_suffix(".state.npz")
    if not (state_path.is_file() and stem.with_suffix(".npy").is_file()):
        return None
    with np.load(state_path) as state:
        sources = state["sha256"].copy()
    return sources if sources.shape == (len(crops.dataset), 32) else None


def _read_cache(stem: Path, n: int, mode: str) -> tuple[np.ndarray | None, np.ndarray]:
    """The cached embeddings opened in ``mode`` and the source digest of each row; (None, zeros)
    when there is no cache (or only half of one: a state without its file or the reverse)."""
    emb_path, state_path = stem.with_suffix(".npy"), stem.with_suffix(".state.npz")
    if not (emb_path.is_file() and state_path.is_file()):
        return None, np.zeros((n, 32), dtype=np.uint8)
    emb = np.load(emb_path, mmap_mode=mode)
    with np.load(state_path) as state:
        sources = state["sha256"].copy()
    if emb.shape[0] != n or sources.shape != (n, 32):
        raise DataError(f"{emb_path}: cached embeddings have {emb.shape[0]} rows, dataset has {n}; delete the file")
    return emb, sources


def embed_dataset(fr: FRModel, crops: CropStore, indices: np.ndarray, batch_size: int = 64,
                  flip: bool = False, progress: bool = True) -> np.ndarray:
    """Embeddings float32 [len(dataset), D] (read-only) with rows ``indices`` filled; rows of
    images not asked for, or skipped as unreadable, hold nothing meaningful (callers drop those
    images).

    ``flip`` embeds horizontally flipped crops (for methods that need them).
    """
    indices = np.unique(np.asarray(indices, dtype=np.int64))
    stem = _cache_stem(fr, crops, flip)
    n = len(crops.dataset)
    crops.ensure(indices, progress=progress)
    current = crops.digest_bytes(indices)
    usable = crops.status(indices) != UNREADABLE

    def missing(sources: np.ndarray) -> np.ndarray:
        return indices[usable & np.any(sources[indices] != current, axis=1)]

    emb, sources = _read_cache(stem, n, "r")
    if len(todo := missing(sources)):
        with write_lock(stem.parent, stem.name, f"{len(todo)} embedding(s) of {crops.dataset.name} [{fr.name}] are to compute"):
            # Read again under the lock: another process may have embedded them meanwhile.
            emb, sources = _read_cache(stem, n, "r+")
            _embed_rows(fr, crops, stem, missing(sources), sources, emb, batch_size, flip, progress)
        emb, _ = _read_cache(stem, n, "r")
    if emb is None:
        raise DataError("no images to embed")
    return np.asarray(emb)


def _embed_rows(fr: FRModel, crops: CropStore, stem: Path, todo: np.ndarray, sources: np.ndarray,
                emb: np.ndarray | None, batch_size: int, flip: bool, progress: bool) -> None:
    """Embed ``todo`` into the cache file of ``stem`` (made when ``emb`` is None), saving the
    per-row digests ``sources`` after every batch; the caller holds the file's write lock."""
    emb_path, state_path = stem.with_suffix(".npy"), stem.with_suffix(".state.npz")
    for start in tqdm(range(0, len(todo), batch_size), desc=f"embed {crops.dataset.name} [{fr.name}]",
                      unit="batch", disable=not progress or len(todo) == 0):
        idx = todo[start : start + batch_size]
        batch = crops.get(idx)
        if flip:
            batch = np.ascontiguousarray(batch[:, :, ::-1])
        out = np.asarray(fr.embed(batch), dtype=np.float32)
        if not np.all(np.isfinite(out)):
            raise DataError(f"{fr.name}: non-finite embedding for {crops.dataset.image_ids[int(idx[0])]} (batch of {len(idx)})")
        if emb is None:
            emb = new_memmap(emb_path, np.float32, (len(crops.dataset), out.shape[1]))
            atomic_write_text(stem.with_suffix(".json"), json.dumps(
                {**fr.provenance(), "dataset": crops.dataset.name, "manifest": manifest_hash(crops.dataset),
                 "flip": flip, **base_metadata(fr.device)}, indent=1))
        emb[idx] = out
        sources[idx] = crops.digest_bytes(idx)
        emb.flush()
        with atomic_path(state_path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, sha256=sources)

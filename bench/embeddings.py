"""FR embeddings of a dataset, cached per (FR model + weights, dataset manifest, flip).

Embedding is the most expensive step after alignment; the cache is a memory-mapped .npy
plus a done-mask saved after every batch, so an interrupted run resumes where it stopped.
A JSON file beside it records the provenance (FR model, weights sha256, domain, dataset).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench.crops import CropStore, manifest_hash
from bench.errors import DataError
from bench.fr.base import FRModel
from bench.paths import safe_name
from bench.io import atomic_write_text
from bench.provenance import base_metadata


def _cache_stem(fr: FRModel, crops: CropStore, flip: bool) -> Path:
    model = f"{safe_name(fr.name)}-{fr.weights_sha256[:12]}"
    tail = "-flip" if flip else ""
    return crops.folder.parent.parent / "embeddings" / model / f"{crops.dataset.name}-{manifest_hash(crops.dataset)}-{crops.domain}{tail}"


def embed_dataset(fr: FRModel, crops: CropStore, indices: np.ndarray, batch_size: int = 64,
                  flip: bool = False, progress: bool = True) -> np.ndarray:
    """Embeddings float32 [len(dataset), D] with rows ``indices`` filled (others zero).

    ``flip`` embeds horizontally flipped crops (for methods that need them).
    """
    indices = np.asarray(indices, dtype=np.int64)
    stem = _cache_stem(fr, crops, flip)
    stem.parent.mkdir(parents=True, exist_ok=True)
    emb_path, done_path = stem.with_suffix(".npy"), stem.with_suffix(".done.npy")
    n = len(crops.dataset)
    emb: np.ndarray | None = np.load(emb_path, mmap_mode="r+") if emb_path.exists() and done_path.exists() else None
    done = np.load(done_path) if emb is not None else np.zeros(n, dtype=bool)
    if emb is not None and emb.shape[0] != n:
        raise DataError(f"{emb_path}: cached embeddings have {emb.shape[0]} rows, dataset has {n}; delete the file")
    todo = indices[~done[indices]]
    if len(todo):
        crops.ensure(todo, progress=progress)
    for start in tqdm(range(0, len(todo), batch_size), desc=f"embed {crops.dataset.name} [{fr.name}]",
                      unit="batch", disable=not progress or len(todo) == 0):
        idx = todo[start : start + batch_size]
        batch = crops.get(idx)
        if flip:
            batch = np.ascontiguousarray(batch[:, :, ::-1])
        out = np.asarray(fr.embed(batch), dtype=np.float32)
        if emb is None:
            emb = np.lib.format.open_memmap(emb_path, mode="w+", dtype=np.float32, shape=(n, out.shape[1]))
            atomic_write_text(stem.with_suffix(".json"), json.dumps(
                {**fr.provenance(), "dataset": crops.dataset.name, "manifest": manifest_hash(crops.dataset),
                 "flip": flip, **base_metadata(fr.device)}, indent=1))
        if not np.all(np.isfinite(out)):
            raise DataError(f"{fr.name}: non-finite embedding for {crops.dataset.image_ids[int(idx[0])]} (batch of {len(idx)})")
        emb[idx] = out
        done[idx] = True
        emb.flush()
        tmp = done_path.with_suffix(".tmp.npy")
        np.save(tmp, done)
        tmp.replace(done_path)
    if emb is None:
        raise DataError("no images to embed")
    return np.asarray(emb)

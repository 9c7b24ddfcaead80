"""Folder listings and protocol-file checks, memoised per process while the folders are unchanged.

Listing an image folder (LFW: 13,233 files in 5,749 folders) and checking that every protocol
image exists are most of what resolving a cell costs, and a plan resolves each cell several
times (:func:`bench.pipeline.plan.validate`, the shared preparation, the run). Both are
reused only while every directory they looked at keeps the modification time it had then:
adding, removing or renaming a file changes its directory's mtime. A directory modified
within :data:`SETTLE_NS` of the look could change again within one timestamp tick unnoticed,
so such a result is not kept (it is recomputed next time).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.datasets.base import FaceDataset

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
# Coarser than any filesystem's mtime granularity in use (FAT: 2 s; ext4, XFS, APFS: 1 ns).
SETTLE_NS = 2_000_000_000

Mtimes = dict[str, int]
_LISTINGS: dict[str, tuple[Mtimes, list[str]]] = {}
_CHECKED: dict[tuple[str, str], Mtimes] = {}


def mtimes(folders: set[str] | list[str]) -> Mtimes | None:
    """mtime_ns of each folder, or None when one is gone."""
    out: Mtimes = {}
    for folder in folders:
        try:
            out[folder] = os.stat(folder).st_mtime_ns
        except OSError:
            return None
    return out


def unchanged(recorded: Mtimes) -> bool:
    """Whether every folder of ``recorded`` still has its recorded mtime."""
    return mtimes(list(recorded)) == recorded


def settled(recorded: Mtimes, started_ns: int) -> bool:
    """Whether no folder changed within :data:`SETTLE_NS` before the look began (see the module doc)."""
    return all(m < started_ns - SETTLE_NS for m in recorded.values())


def list_images(folder: Path) -> list[str]:
    """Sorted image paths (``/``-separated) under ``folder``, relative to it, any depth."""
    key = os.path.abspath(folder)
    kept = _LISTINGS.get(key)
    if kept is not None and unchanged(kept[0]):
        return list(kept[1])
    started = time.time_ns()
    seen: Mtimes = {}
    out: list[str] = []
    for dirpath, _dirs, files in os.walk(folder, followlinks=True):
        seen[os.path.abspath(dirpath)] = os.stat(dirpath).st_mtime_ns
        rel = os.path.relpath(dirpath, folder)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        out.extend(prefix + f for f in files if f.lower().endswith(IMAGE_SUFFIXES))
    out.sort()
    if settled(seen, started):
        _LISTINGS[key] = (seen, out)
    else:
        _LISTINGS.pop(key, None)
    return list(out)


def check_files(ds: FaceDataset) -> None:
    """``ds.check_files()``, skipped when it passed before in this process and no folder holding
    a protocol image has changed since."""
    if ds.reader is not None:
        return
    root = os.path.abspath(ds.root)
    key = (ds.name, root)
    folders = {os.path.dirname(os.path.join(root, ds.image_ids[i])) for i in ds.protocol.used_images().tolist()}
    kept = _CHECKED.get(key)
    if kept is not None and set(kept) == folders and unchanged(kept):
        return
    started = time.time_ns()
    before = mtimes(folders)
    ds.check_files()
    if before is not None and settled(before, started):
        _CHECKED[key] = before
    else:
        _CHECKED.pop(key, None)

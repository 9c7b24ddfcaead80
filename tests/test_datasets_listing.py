"""Folder listings and protocol-file checks are memoised per process, and a changed folder is noticed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from bench.core.errors import DataError
from bench.datasets import listing
from bench.datasets.base import FaceDataset
from bench.datasets.protocol import PairProtocol

OLD_NS = 1_600_000_000 * 10**9  # a settled mtime (2020), far from "now"


def _age(root: Path, offset: int = 0) -> None:
    """Every folder under ``root`` (and ``root``) gets an old mtime, so a look at them may be kept."""
    for dirpath, _dirs, _files in os.walk(root):
        os.utime(dirpath, ns=(OLD_NS + offset, OLD_NS + offset))


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    for person, n in (("Ann", 2), ("Bob", 1)):
        (root / person).mkdir(parents=True)
        for k in range(n):
            (root / person / f"{person}_{k:04d}.jpg").write_bytes(b"x")
    (root / "notes.txt").write_text("not an image")
    _age(root)
    return root


def _no_walk(*_args, **_kwargs):
    raise AssertionError("listed again although nothing changed")


def test_listing_is_reused_until_a_folder_changes(tmp_path: Path, monkeypatch) -> None:
    root = _tree(tmp_path)
    first = listing.list_images(root)
    assert first == ["Ann/Ann_0000.jpg", "Ann/Ann_0001.jpg", "Bob/Bob_0000.jpg"]
    with monkeypatch.context() as m:
        m.setattr(listing.os, "walk", _no_walk)
        assert listing.list_images(root) == first
    (root / "Bob" / "Bob_0001.jpg").write_bytes(b"x")
    _age(root / "Bob", offset=1)  # changed (another mtime), and settled
    assert listing.list_images(root)[-1] == "Bob/Bob_0001.jpg"
    (root / "Ann" / "Ann_0000.jpg").unlink()  # a fresh mtime: noticed, and not kept
    assert "Ann/Ann_0000.jpg" not in listing.list_images(root)
    assert os.path.abspath(root) not in listing._LISTINGS


def test_protocol_check_is_reused_until_a_folder_changes(tmp_path: Path, monkeypatch) -> None:
    root = _tree(tmp_path)
    ids = ["Ann/Ann_0000.jpg", "Ann/Ann_0001.jpg", "Bob/Bob_0000.jpg"]
    ds = FaceDataset(name="t", root=root, image_ids=ids,
                     protocol=PairProtocol(a=np.array([0, 0]), b=np.array([1, 2]), mated=np.array([True, False])))
    listing.check_files(ds)
    with monkeypatch.context() as m:
        m.setattr(FaceDataset, "check_files", _no_walk)
        listing.check_files(ds)
    (root / "Bob" / "Bob_0000.jpg").unlink()
    _age(root / "Bob", offset=1)
    with pytest.raises(DataError, match="1 image file"):
        listing.check_files(ds)

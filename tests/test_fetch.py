"""`bench fetch` from a mirror: a data-root-layout folder (symlinked) or the card's archives."""

from __future__ import annotations

import hashlib
import tarfile
import zipfile
from pathlib import Path

import pytest

from bench.core import paths, registry
from bench.core.errors import DataError
from bench.datasets import fixtures
from bench.datasets.fetch import _place, extract, fetch, mirror_path

SHARED = paths.REPO_ROOT.parent / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "lfw" / "pairs.txt").is_file(), reason="no shared data mirror")
def test_fetch_links_shared_mirror(tmp_path: Path) -> None:
    dest = tmp_path / "data"
    found = fetch("lfw", dest, mirror=f"file://{SHARED}")
    assert found == dest / "lfw" and (dest / "lfw").is_symlink()
    assert (dest / "lfw").resolve() == (SHARED / "lfw").resolve()
    assert fetch("lfw", dest, mirror=str(SHARED)) == found  # already there: left as it is
    assert fetch("cfp-fp", dest, mirror=str(SHARED)) == dest / "cfp"


def test_fetch_from_mirror_archives(tmp_path: Path) -> None:
    stage, mirror, dest = tmp_path / "stage", tmp_path / "mirror", tmp_path / "data"
    fixtures.write_lfw(stage)
    mirror.mkdir()
    with tarfile.open(mirror / "lfw-deepfunneled.tgz", "w:gz") as tf:
        tf.add(stage / "lfw" / "lfw-deepfunneled", arcname="lfw-deepfunneled")
    (mirror / "pairs.txt").write_bytes((stage / "lfw" / "pairs.txt").read_bytes())
    assert fetch("lfw", dest, mirror=str(mirror)) == dest / "lfw"
    assert not (dest / "lfw").is_symlink()
    ds = registry.create("dataset", "lfw").load(dest)
    assert (ds.protocol.n_mated, ds.n_images_total) == (6, 19)


def test_fetch_copy_mode(tmp_path: Path) -> None:
    mirror, dest = tmp_path / "mirror", tmp_path / "data"
    fixtures.write_cfp(mirror)
    fetch("cfp-fp", dest, mirror=str(mirror), copy=True)
    assert (dest / "cfp").is_dir() and not (dest / "cfp").is_symlink()


def test_fetch_without_direct_download(tmp_path: Path) -> None:
    (tmp_path / "mirror").mkdir()
    with pytest.raises(DataError, match=r"calfw: mirror .* has no calfw or faces_emore folder; no direct download; get it from http://whdeng.cn/CALFW/"):
        fetch("calfw", tmp_path / "data", mirror=str(tmp_path / "mirror"))
    with pytest.raises(DataError, match="neither lfw/ nor lfw-deepfunneled.tgz"):
        fetch("lfw", tmp_path / "data", mirror=str(tmp_path / "mirror"))
    with pytest.raises(DataError, match="only a directory or a file:// URL"):
        mirror_path("https://example.org/data")


def test_sha256_checked_and_unsafe_archives_refused(tmp_path: Path) -> None:
    file = tmp_path / "pairs.txt"
    file.write_text("10\t300\n")
    with pytest.raises(DataError, match="sha256 mismatch"):
        _place(file, "0" * 64, tmp_path / "out")
    _place(file, hashlib.sha256(file.read_bytes()).hexdigest().upper(), tmp_path / "out")
    assert (tmp_path / "out" / "pairs.txt").is_file()
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../escape.txt", "x")
    with pytest.raises(DataError, match="outside"):
        extract(evil, tmp_path / "dest")
    assert not (tmp_path / "escape.txt").exists()
    (tmp_path / "broken.tgz").write_bytes(b"not a tar")
    with pytest.raises(DataError, match="cannot extract"):
        extract(tmp_path / "broken.tgz", tmp_path / "dest")

"""Crop and embedding caches keyed by the content of each source image (issue 10).

A replaced image is re-aligned and re-embedded alone; moved data with identical files reuses
everything; alignment progress survives an interrupt; images skipped as unreadable are
retried; an empty image file is a one-line error; FR options key the embedding cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.align import NativeAligner
from bench.cli import main
from bench.core import registry
from bench.core.errors import DataError
from bench.datasets import fixtures
from bench.datasets.base import FaceDataset, read_rgb
from bench.datasets.crops import ALIGN_BATCH, DETECTED, UNREADABLE, CropStore
from bench.datasets.protocol import PairProtocol
from bench.fr.synthetic import SyntheticFR
from bench.pipeline.embeddings import embed_dataset

VICTIM = "lfw-deepfunneled/Person_00/Person_00_0002.jpg"


def texture(seed: int, size: int = 16) -> bytes:
    """A PNG of seeded noise: distinct pictures give distinct synthetic embeddings."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".png", pixels)
    assert ok
    return buf.tobytes()


def write_lfw(root: Path) -> Path:
    """The LFW fixture layout with every image a distinct texture; returns the image folder."""
    fixtures.write_lfw(root)
    images = root / "lfw" / "lfw-deepfunneled"
    for k, path in enumerate(sorted(images.rglob("*.jpg"))):
        path.write_bytes(texture(k))
    return images


def load_lfw(root: Path) -> FaceDataset:
    return registry.create("dataset", "lfw").load(root)


class Spy:
    """Counts images aligned, rows embedded and source files read, by wrapping the real calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.aligned = self.embedded = self.read = 0
        align, embed = NativeAligner.align, SyntheticFR.embed
        import bench.datasets.crops as crops_module

        read = crops_module.read_source

        def spy_align(aligner, image, marks, pre_aligned):
            self.aligned += 1
            return align(aligner, image, marks, pre_aligned)

        def spy_embed(fr, crops):
            self.embedded += len(crops)
            return embed(fr, crops)

        def spy_read(path):
            self.read += 1
            return read(path)

        monkeypatch.setattr(NativeAligner, "align", spy_align)
        monkeypatch.setattr(SyntheticFR, "embed", spy_embed)
        monkeypatch.setattr(crops_module, "read_source", spy_read)

    def reset(self) -> None:
        self.aligned = self.embedded = self.read = 0


def embed(ds: FaceDataset, cache: Path, flip: bool = False, fr: SyntheticFR | None = None) -> tuple[CropStore, np.ndarray]:
    store = CropStore(ds, "native", cache)
    used = ds.protocol.used_images()
    out = embed_dataset(fr or registry.create("fr", "synthetic"), store, used, flip=flip, progress=False)
    return store, np.array(out[used])


@pytest.mark.parametrize("flip", [False, True])
def test_replaced_image_is_realigned_and_reembedded_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flip: bool) -> None:
    images = write_lfw(tmp_path / "data")
    spy = Spy(monkeypatch)
    ds = load_lfw(tmp_path / "data")
    _, before = embed(ds, tmp_path / "cache", flip)
    n = len(ds.protocol.used_images())
    assert (spy.aligned, spy.embedded) == (n, n)

    (images.parent / VICTIM).write_bytes(texture(999))
    spy.reset()
    ds = load_lfw(tmp_path / "data")
    _, after = embed(ds, tmp_path / "cache", flip)
    assert (spy.aligned, spy.embedded) == (1, 1)
    row = list(ds.protocol.used_images()).index(ds.image_ids.index(VICTIM))
    crop = read_rgb(images.parent / VICTIM)[None]
    want = SyntheticFR.embed(registry.create("fr", "synthetic"), crop[:, :, ::-1] if flip else crop)
    np.testing.assert_allclose(after[row], want[0], rtol=1e-5)
    assert not np.allclose(after[row], before[row])
    others = np.arange(len(after)) != row
    np.testing.assert_array_equal(after[others], before[others])


def test_moved_data_reuses_every_crop_and_embedding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_lfw(tmp_path / "data")
    spy = Spy(monkeypatch)
    store, before = embed(load_lfw(tmp_path / "data"), tmp_path / "cache")
    digests = store.digests(store.dataset.protocol.used_images())
    # shutil.copy gives the copies new mtimes: the stat check fails and the sha256 decides.
    shutil.copytree(tmp_path / "data", tmp_path / "moved", copy_function=shutil.copy)
    shutil.rmtree(tmp_path / "data")
    spy.reset()
    store, after = embed(load_lfw(tmp_path / "moved"), tmp_path / "cache")
    n = len(store.dataset.protocol.used_images())
    assert (spy.aligned, spy.embedded, spy.read) == (0, 0, n)
    np.testing.assert_array_equal(after, before)
    assert store.digests(store.dataset.protocol.used_images()) == digests
    # The refreshed stats make the next run stat-only: no file is read at all.
    spy.reset()
    embed(load_lfw(tmp_path / "moved"), tmp_path / "cache")
    assert (spy.aligned, spy.embedded, spy.read) == (0, 0, 0)


def test_touched_file_is_hashed_once_then_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images = write_lfw(tmp_path / "data")
    spy = Spy(monkeypatch)
    embed(load_lfw(tmp_path / "data"), tmp_path / "cache")
    stat = os.stat(images.parent / VICTIM)
    os.utime(images.parent / VICTIM, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    spy.reset()
    embed(load_lfw(tmp_path / "data"), tmp_path / "cache")
    assert (spy.aligned, spy.embedded, spy.read) == (0, 0, 1)
    spy.reset()
    embed(load_lfw(tmp_path / "data"), tmp_path / "cache")
    assert (spy.aligned, spy.embedded, spy.read) == (0, 0, 0)


def test_digests_are_the_source_files_sha256(tmp_path: Path) -> None:
    images = write_lfw(tmp_path / "data")
    (images.parent / VICTIM).write_bytes(b"not an image")
    ds = load_lfw(tmp_path / "data")
    store = CropStore(ds, "native", tmp_path / "cache", skip_bad=True)
    used = ds.protocol.used_images()
    store.ensure(used, progress=False)
    want = [hashlib.sha256(ds.image_path(int(i)).read_bytes()).hexdigest() for i in used]
    assert store.digests(used) == want
    (images.parent / VICTIM).unlink()
    store = CropStore(ds, "native", tmp_path / "cache", skip_bad=True)
    got = store.digests(used)
    assert got[list(used).index(ds.image_ids.index(VICTIM))] == ""
    assert store.flagged(used)["unreadable_skipped"] == [VICTIM]


def toy_dataset(root: Path, n: int = 80) -> FaceDataset:
    root.mkdir(parents=True)
    ids = [f"{k:03d}.png" for k in range(n)]
    for k, name in enumerate(ids):
        (root / name).write_bytes(texture(k))
    half = np.arange(0, n, 2)
    return FaceDataset(name="toy", root=root, image_ids=ids,
                       protocol=PairProtocol(a=half, b=half + 1, mated=np.ones(len(half), dtype=bool)))


def test_interrupted_alignment_resumes_with_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = toy_dataset(tmp_path / "toy")
    cache, snapshot = tmp_path / "cache", tmp_path / "killed"
    align, calls = NativeAligner.align, []

    def interrupted(aligner, image, marks, pre_aligned):
        calls.append(1)
        if len(calls) == 41:
            # What a hard kill (no exception handler runs) would leave on disk at this point.
            shutil.copytree(cache, snapshot)
            raise KeyboardInterrupt
        return align(aligner, image, marks, pre_aligned)

    monkeypatch.setattr(NativeAligner, "align", interrupted)
    with pytest.raises(KeyboardInterrupt):
        CropStore(ds, "native", cache).ensure(np.arange(len(ds)), progress=False)
    monkeypatch.setattr(NativeAligner, "align", align)
    spy = Spy(monkeypatch)
    store = CropStore(ds, "native", cache)
    store.ensure(np.arange(len(ds)), progress=False)
    assert spy.aligned == len(ds) - 40
    assert np.all(store.status() == DETECTED)
    np.testing.assert_array_equal(store.get(np.array([3]))[0], read_rgb(ds.image_path(3)))
    spy.reset()
    CropStore(ds, "native", snapshot).ensure(np.arange(len(ds)), progress=False)
    assert spy.aligned == len(ds) - ALIGN_BATCH * (40 // ALIGN_BATCH)


def test_unreadable_marks_are_retried(tmp_path: Path) -> None:
    images = write_lfw(tmp_path / "data")
    good = (images.parent / VICTIM).read_bytes()
    (images.parent / VICTIM).write_bytes(b"garbage")
    ds = load_lfw(tmp_path / "data")
    used, victim = ds.protocol.used_images(), ds.image_ids.index(VICTIM)
    store = CropStore(ds, "native", tmp_path / "cache", skip_bad=True)
    store.ensure(used, progress=False)
    assert store.status()[victim] == UNREADABLE
    with pytest.raises(DataError, match="Person_00_0002.jpg: cannot decode image"):
        CropStore(ds, "native", tmp_path / "cache").ensure(used, progress=False)
    (images.parent / VICTIM).write_bytes(good)
    for skip_bad in (False, True):
        store = CropStore(ds, "native", tmp_path / "cache", skip_bad=skip_bad)
        store.ensure(used, progress=False)
        assert store.status()[victim] == DETECTED
        assert store.flagged(used)["unreadable_skipped"] == []


def test_empty_image_file_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.jpg: image file is empty \(0 bytes\)"):
        read_rgb(path)


def run_cli(root: Path, res: Path, *extra: str) -> int:
    return main(["run", "--method", "random", "--fr", "synthetic", "--dataset", "lfw", "--data-root", str(root),
                 "--results", str(res), "--no-progress", *extra])


def test_cli_empty_image_is_one_line_error_or_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = write_lfw(tmp_path / "data")
    (images.parent / VICTIM).write_bytes(b"")
    assert run_cli(tmp_path / "data", tmp_path / "res") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert err.endswith(f"{images.parent / VICTIM}: image file is empty (0 bytes)")
    assert run_cli(tmp_path / "data", tmp_path / "res", "--skip-bad") == 0
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "res" / "runs").glob("*.json")]
    assert record["flagged"]["unreadable_skipped"] == [VICTIM]


def test_cli_rerun_after_replacing_an_image_reembeds_it_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images = write_lfw(tmp_path / "data")
    spy = Spy(monkeypatch)
    assert run_cli(tmp_path / "data", tmp_path / "res") == 0
    first = spy.embedded
    (images.parent / VICTIM).write_bytes(texture(999))
    spy.reset()
    assert run_cli(tmp_path / "data", tmp_path / "res") == 0
    assert first > 1 and (spy.aligned, spy.embedded) == (1, 1)
    ds = load_lfw(tmp_path / "data")
    spy.reset()
    _, cached = embed(ds, Path(os.environ["BENCH_CACHE"]))
    assert spy.embedded == 0
    row = list(ds.protocol.used_images()).index(ds.image_ids.index(VICTIM))
    want = SyntheticFR.embed(registry.create("fr", "synthetic"), read_rgb(images.parent / VICTIM)[None])
    np.testing.assert_allclose(cached[row], want[0], rtol=1e-5)


class OptionFR(SyntheticFR):
    """The synthetic model with one option in its provenance (as --fr-option color=BGR adds)."""

    def __init__(self, color: str) -> None:
        super().__init__(registry.get_card("fr", "synthetic"))
        self.color = color

    def provenance(self) -> dict[str, str]:
        return {**super().provenance(), "fr_options": f"color={self.color}"}


def test_fr_options_key_the_embedding_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_lfw(tmp_path / "data")
    spy = Spy(monkeypatch)
    ds = load_lfw(tmp_path / "data")
    n = len(ds.protocol.used_images())
    embed(ds, tmp_path / "cache", fr=OptionFR("RGB"))
    embed(ds, tmp_path / "cache", fr=OptionFR("BGR"))
    assert spy.embedded == 2 * n
    embed(ds, tmp_path / "cache", fr=OptionFR("RGB"))
    assert spy.embedded == 2 * n


def test_skip_bad_first_image_is_skipped_not_fatal(tmp_path: Path) -> None:
    write_lfw(tmp_path / "data")
    ds = load_lfw(tmp_path / "data")
    used = ds.protocol.used_images()
    ds.image_path(int(used[0])).write_bytes(b"")
    store = CropStore(ds, "native", tmp_path / "cache", skip_bad=True)
    store.ensure(used, progress=False)
    assert store.flagged(used)["unreadable_skipped"] == [ds.image_ids[int(used[0])]]
    assert np.all(store.status(used[1:]) == DETECTED)

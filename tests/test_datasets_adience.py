"""Adience: the shipped pair list (protocols/adience/) is the one the real fold metadata
generates, and it is what a data root with images only is evaluated on."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest

from bench.core import paths, registry, resources
from bench.core.errors import DataError
from bench.datasets import adience, fixtures

REAL_META = paths.REPO_ROOT.parent / "shared" / "data" / "adience"
SHIPPED = resources.folder("protocols") / "adience"
# sha256 of adience_pairs.csv as recorded in ../shared/data/adience/SOURCE.txt.
RECORDED_SHA256 = "ab03618935b1f6c12dd6ac7dbadd0d7d077adfe938832bfea9b0383fd810c5ab"


def test_shipped_list_matches_its_checksum() -> None:
    data = gzip.decompress((SHIPPED / "adience_pairs.csv.gz").read_bytes())
    recorded = (SHIPPED / "adience_pairs.csv.sha256").read_text().split()
    assert recorded == [RECORDED_SHA256, "adience_pairs.csv"]
    assert hashlib.sha256(data).hexdigest() == RECORDED_SHA256
    pairs, note = adience.shipped_pairs()
    assert (int(pairs["mated"].sum()), int((pairs["mated"] == 0).sum())) == (20_000, 20_000)
    assert RECORDED_SHA256 in note


@pytest.mark.skipif(not (REAL_META / "fold_0_data.txt").is_file(), reason="no real Adience metadata here")
def test_real_metadata_counts_and_generated_hash() -> None:
    meta = adience.read_metadata(REAL_META)
    assert (len(meta), meta["identity"].nunique()) == (19_370, 2_284)  # Table 1
    pairs = adience.generate_protocol(REAL_META)
    assert (int(pairs["mated"].sum()), int((pairs["mated"] == 0).sum())) == (20_000, 20_000)
    assert hashlib.sha256(adience._csv_bytes(pairs)).hexdigest() == RECORDED_SHA256
    assert len(set(pairs["image_a"]) | set(pairs["image_b"])) == 18_332


def _images_only(root: Path, images: str = "faces") -> int:
    """Empty files at every face path the shipped pairs use; returns how many."""
    pairs, _ = adience.shipped_pairs()
    keys = sorted(set(pairs["image_a"]) | set(pairs["image_b"]))
    prefix = fixtures.ADIENCE_PREFIX[images]
    for key in keys:
        user, face, original = adience._split_key(key)
        path = root / "adience" / images / user / f"{prefix}.{face}.{original}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    return len(keys)


def test_images_only_uses_the_shipped_pairs(tmp_path: Path) -> None:
    n = _images_only(tmp_path)
    ds = registry.create("dataset", "adience").load(tmp_path)
    assert (ds.protocol.n_mated, ds.protocol.n_nonmated) == (20_000, 20_000)
    assert len(ds) == n == ds.n_images_total
    assert ds.n_identities_total == len(set(ds.identities.tolist()))
    assert (ds.identities[ds.protocol.a] == ds.identities[ds.protocol.b]).tolist() == ds.protocol.mated.tolist()
    assert "shipped adience_pairs.csv.gz" in ds.notes[0]
    assert not (tmp_path / "adience" / "adience_pairs.csv").exists()  # nothing written into the data


def test_images_only_with_a_missing_face_names_it(tmp_path: Path) -> None:
    fixtures.write_adience(tmp_path, metadata=False)
    with pytest.raises(DataError, match=r"adience: \d+ image file\(s\) named by the protocol are missing"):
        registry.create("dataset", "adience").load(tmp_path)


def test_some_fold_files_missing_is_an_error(tmp_path: Path) -> None:
    fixtures.write_adience(tmp_path)
    (tmp_path / "adience" / "fold_3_data.txt").unlink()
    with pytest.raises(DataError, match=r"fold_3_data\.txt: Adience fold metadata file not found"):
        registry.create("dataset", "adience").load(tmp_path)

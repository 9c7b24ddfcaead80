"""Every official download, extracted as its archive unpacks, is found under the data root.

Each card's ``layouts`` entry names an archive; for each one a tiny copy of that structure is
written into tmp_path and the loader must load it and ``bench datasets`` must name the archive.
Also: the layouts the loaders missed before (XQLFW unaligned, CALFW's doubled folder, IJB-C's
``IJB_release/IJBC``, IJB-C meta files with trailing spaces), CPLFW's identity count, and the
fold rule of InsightFace bins whose pairs are not in per-fold blocks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.core import registry
from bench.core.cards import load_cards
from bench.core.errors import DataError
from bench.datasets import fixtures
from bench.datasets.common import layouts
from bench.datasets.dataset_stats import describe

_PAIRS = {"lfw": "pairs.txt", "xqlfw": "xqlfw_pairs.txt", "calfw": "pairs_CALFW.txt", "cplfw": "pairs_CPLFW.txt"}


def _write(name: str, root: Path, folder: str, images: str) -> None:
    """The tiny copy of dataset ``name`` in layout (folder, images) under ``root``."""
    if images.endswith(".bin"):
        fixtures.write_bin(root / folder / images)
    elif name in ("lfw", "xqlfw"):
        fixtures.write_lfw(root, folder=folder, images=images, pairs_file=_PAIRS[name])
    elif name in ("calfw", "cplfw"):
        fixtures.write_paired_lines(root, folder, _PAIRS[name], images=images)
    elif name == "cfp-fp":
        assert images == "cfp-dataset"
        fixtures.write_cfp(root, folder=folder)
    elif name == "ijb-c":
        assert images == "loose_crop"
        fixtures.write_ijbc(root, folder=folder)
    elif name == "adience":
        fixtures.write_adience(root, folder=folder, images=images)
    else:
        raise AssertionError(f"no fixture writer for {name}")


def _all_layouts() -> list[tuple[str, int]]:
    out = []
    for name in load_cards("dataset"):
        out += [(name, k) for k in range(len(layouts(registry.create("dataset", name))))]
    return out


def test_every_file_dataset_card_lists_its_archives() -> None:
    for name, card in load_cards("dataset").items():
        entries = layouts(registry.create("dataset", name))
        assert "layout" not in card.data, name  # replaced by layouts
        if name != "synthetic":
            assert entries and all(e.archive for e in entries), name


@pytest.mark.parametrize(("name", "index"), _all_layouts())
def test_each_layout_is_found_and_named(tmp_path: Path, name: str, index: int) -> None:
    loader = registry.create("dataset", name)
    layout = layouts(loader)[index]
    _write(name, tmp_path, layout.folder, layout.images)
    found = loader.find(tmp_path)
    assert found.layout == layout
    if name == "adience":
        loader.n_mated, loader.n_nonmated = 12, 15
    ds = loader.load(tmp_path)
    assert ds.protocol.n_mated > 0 and ds.protocol.n_nonmated > 0
    ds.check_files()
    if name != "adience":  # the fixture is too small for Adience's 20,000 pairs
        text = describe(tmp_path)
        block = text.split(f"\n{name} (")[1].split("\n\n")[0]
        assert ": found" in block and f"archive:  {layout.archive} (<root>/{layout.path})" in block


def test_xqlfw_unaligned_release(tmp_path: Path) -> None:
    fixtures.write_lfw(tmp_path, folder="xqlfw", images="lfw_original_imgs_min_qual0.85variant11", pairs_file="xqlfw_pairs.txt")
    ds = registry.create("dataset", "xqlfw").load(tmp_path)
    assert not ds.aligned and ds.image_ids[0].startswith("lfw_original_imgs_min_qual0.85variant11/")


def test_calfw_doubled_folder(tmp_path: Path) -> None:
    fixtures.write_paired_lines(tmp_path, "calfw", "pairs_CALFW.txt", images="images&landmarks/images&landmarks/images")
    ds = registry.create("dataset", "calfw").load(tmp_path)
    assert ds.image_ids[0].startswith("images&landmarks/images&landmarks/images/") and ds.n_identities_total == 13


def test_ijbc_release_folder_and_loose_whitespace(tmp_path: Path) -> None:
    want = fixtures.write_ijbc(tmp_path, folder="IJB_release/IJBC")
    meta = tmp_path / "IJB_release/IJBC/meta"
    for path in meta.iterdir():  # trailing spaces, a tab and doubled spaces, as hand-edited copies have
        lines = path.read_text().splitlines()
        path.write_text("\n".join(line.replace(" ", "  ", 1) + " " for line in lines[:-1]) + "\n" + lines[-1].replace(" ", "\t", 1) + "\n")
    ds = registry.create("dataset", "ijb-c").load(tmp_path)
    assert ds.root == tmp_path / "IJB_release/IJBC"
    assert (ds.protocol.templates.n_templates, ds.protocol.n_mated, ds.protocol.n_nonmated) == (want["templates"], want["mated"], want["nonmated"])
    assert np.isfinite(ds.landmarks).all()


def test_ijbc_extra_field_on_first_line_is_refused(tmp_path: Path) -> None:
    fixtures.write_ijbc(tmp_path)
    path = tmp_path / "ijb-c/meta/ijbc_template_pair_label.txt"
    path.write_text("11 12 1 7\n" + path.read_text().split("\n", 1)[1])
    with pytest.raises(DataError, match=r"ijbc_template_pair_label\.txt:1: expected 3 whitespace-separated fields"):
        registry.create("dataset", "ijb-c").load(tmp_path)


def test_cplfw_malformed_file_names_are_not_extra_identities(tmp_path: Path) -> None:
    want = fixtures.write_paired_lines(tmp_path, "cplfw", "pairs_CPLFW.txt", number="{}")
    # The four malformed names of the real release, on identities of the fixture.
    for bad in ("Person_03_3jpg.jpg", "Person_04-2.jpg", "Person_04-3.jpg", "Person_05_3.jip.jpg"):
        (tmp_path / "cplfw/aligned images" / bad).write_bytes(fixtures.jpeg())
    ds = registry.create("dataset", "cplfw").load(tmp_path)
    assert ds.n_images_total == want["images"] + 4
    assert ds.n_identities_total == want["identities"]


def test_bin_with_mated_pairs_first_gets_mixed_folds(tmp_path: Path) -> None:
    fixtures.write_bin(tmp_path / "lfw.bin", n_pairs=40, mated_first=True)
    ds = registry.create("dataset", "lfw").load(tmp_path)
    p = ds.protocol
    assert p.mated[:20].all() and not p.mated[20:].any()
    for fold in range(1, 11):
        one = p.select_folds([fold])
        assert (one.n_mated, one.n_nonmated) == (2, 2), fold
    assert any("not in per-fold blocks" in n for n in ds.notes)


def test_bin_in_fold_blocks_keeps_insightface_folds(tmp_path: Path) -> None:
    fixtures.write_bin(tmp_path / "lfw.bin", n_pairs=40)
    ds = registry.create("dataset", "lfw").load(tmp_path)
    assert ds.protocol.fold.tolist() == [k // 4 + 1 for k in range(40)]
    assert any("consecutive blocks of pairs" in n for n in ds.notes)


def test_bin_with_too_few_pairs_of_a_kind_is_refused(tmp_path: Path) -> None:
    fixtures.write_bin(tmp_path / "cfp_fp.bin", n_pairs=15, mated_first=True)  # 8 mated, 7 non-mated
    with pytest.raises(DataError, match=r"cfp_fp\.bin: only 8 mated pair\(s\): cannot make 10 folds"):
        registry.create("dataset", "cfp-fp").load(tmp_path)

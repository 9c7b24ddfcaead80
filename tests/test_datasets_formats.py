"""Each dataset format parsed exactly, on tiny fixtures written into tmp_path."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from bench.core import registry
from bench.core.errors import DataError
from bench.datasets import fixtures
from bench.datasets.insightface_bin import read_bin


def load(name: str, root: Path, **attrs):
    loader = registry.create("dataset", name)
    for key, value in attrs.items():
        setattr(loader, key, value)
    return loader.load(root)


def test_lfw_pairs_parsed_exactly(tmp_path: Path) -> None:
    want = fixtures.write_lfw(tmp_path)
    ds = load("lfw", tmp_path)
    p = ds.protocol
    assert (p.n_mated, p.n_nonmated) == (want["mated"], want["nonmated"])
    assert (ds.n_images_total, ds.n_identities_total) == (want["images"], want["identities"])
    assert ds.image_ids == sorted(ds.image_ids)
    assert ds.root == tmp_path / "lfw" and not ds.aligned
    # line 2 of pairs.txt: first mated pair of fold 1; line 5: first non-mated pair of fold 1
    assert ds.image_ids[p.a[0]] == "lfw-deepfunneled/Person_00/Person_00_0001.jpg"
    assert ds.image_ids[p.b[0]] == "lfw-deepfunneled/Person_00/Person_00_0002.jpg"
    assert ds.image_ids[p.b[3]] == "lfw-deepfunneled/Person_01/Person_01_0003.jpg"
    assert p.mated.tolist() == [True] * 3 + [False] * 3 + [True] * 3 + [False] * 3
    assert p.fold.tolist() == [1] * 6 + [2] * 6
    same = ds.identities[p.a] == ds.identities[p.b]
    assert np.array_equal(same, p.mated)
    assert ds.read_image(0).shape == (16, 16, 3)


def test_lfw_alternative_layout(tmp_path: Path) -> None:
    fixtures.write_lfw(tmp_path, images="lfw_funneled")
    ds = load("lfw", tmp_path)
    assert ds.image_ids[0].startswith("lfw_funneled/")


def test_xqlfw_aligned_release(tmp_path: Path) -> None:
    fixtures.write_lfw(tmp_path, folder="xqlfw", images="xqlfw_aligned_112", pairs_file="xqlfw_pairs.txt")
    ds = load("xqlfw", tmp_path)
    assert ds.aligned and (ds.protocol.n_mated, ds.protocol.n_nonmated) == (6, 6)


@pytest.mark.parametrize(("name", "pairs_file", "number"), [("calfw", "pairs_CALFW.txt", "{:04d}"), ("cplfw", "pairs_CPLFW.txt", "{}")])
def test_calfw_cplfw_pairs(tmp_path: Path, name: str, pairs_file: str, number: str) -> None:
    want = fixtures.write_paired_lines(tmp_path, name, pairs_file, number)
    ds = load(name, tmp_path)
    p = ds.protocol
    assert (p.n_mated, p.n_nonmated) == (want["mated"], want["nonmated"])
    assert (ds.n_images_total, ds.n_identities_total) == (want["images"], want["identities"])
    assert p.fold[p.mated].tolist() == list(range(1, 11))
    assert p.fold[~p.mated].tolist() == list(range(1, 11))  # the documented block rule
    assert np.array_equal(ds.identities[p.a] == ds.identities[p.b], p.mated)
    assert ds.image_ids[p.a[0]] == f"aligned images/Person_00_{number.format(1)}.jpg"


def test_cfp_fp_protocol(tmp_path: Path) -> None:
    want = fixtures.write_cfp(tmp_path)
    ds = load("cfp-fp", tmp_path)
    p = ds.protocol
    assert (p.n_mated, p.n_nonmated) == (want["mated"], want["nonmated"])
    assert (ds.n_images_total, ds.n_identities_total) == (want["images"], want["identities"])
    assert p.fold.tolist() == [1, 1, 1, 1, 2, 2, 2, 2]
    assert ds.image_ids[p.a[0]] == "cfp-dataset/Data/Images/001/frontal/01.jpg"
    assert ds.image_ids[p.b[0]] == "cfp-dataset/Data/Images/001/profile/01.jpg"
    assert ds.image_ids[p.b[2]] == "cfp-dataset/Data/Images/002/profile/01.jpg"
    assert np.array_equal(ds.identities[p.a] == ds.identities[p.b], p.mated)


@pytest.mark.parametrize("as_arrays", [False, True])
def test_insightface_bin_fallback(tmp_path: Path, as_arrays: bool) -> None:
    want = fixtures.write_bin(tmp_path / "lfw" / "lfw.bin", as_arrays=as_arrays)
    ds = load("lfw", tmp_path)
    assert ds.aligned and len(ds) == want["images"] and ds.image_ids[5] == "lfw.bin#000005"
    assert (ds.protocol.n_mated, ds.protocol.n_nonmated) == (want["mated"], want["nonmated"])
    assert ds.protocol.a.tolist()[:2] == [0, 2] and ds.protocol.b.tolist()[:2] == [1, 3]
    assert ds.protocol.fold.tolist() == [k // 2 + 1 for k in range(20)]
    assert ds.read_image(3).shape == (16, 16, 3) and ds.n_identities_total is None


def test_folder_layout_wins_over_bin(tmp_path: Path) -> None:
    fixtures.write_lfw(tmp_path)
    fixtures.write_bin(tmp_path / "lfw.bin")
    assert not load("lfw", tmp_path).aligned


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_bin_refuses_foreign_globals(tmp_path: Path) -> None:
    path = tmp_path / "cfp_fp.bin"
    path.write_bytes(pickle.dumps(([b"x", _Evil()], [True]), protocol=2))
    with pytest.raises(DataError, match=r"refused.*(builtins|__builtin__)\.print"):
        read_bin(path)
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(DataError, match="not a readable InsightFace bin"):
        read_bin(path)
    path.write_bytes(pickle.dumps(([b"a", b"b", b"c"], [True]), protocol=2))
    with pytest.raises(DataError, match="3 images for 1 pairs"):
        read_bin(path)


def test_bin_corrupt_image_raises_on_read(tmp_path: Path) -> None:
    path = tmp_path / "cplfw.bin"
    # 10 mated + 10 non-mated pairs (a bin needs both kinds in each of its 10 folds).
    images = [fixtures.jpeg(), b"garbage"] + [fixtures.jpeg()] * 38
    path.write_bytes(pickle.dumps((images, [k % 2 == 0 for k in range(20)]), protocol=2))
    ds = load("cplfw", tmp_path)
    ds.read_image(0)
    with pytest.raises(DataError, match=r"cplfw\.bin#000001: cannot decode"):
        ds.read_image(1)


def test_adience_generates_then_verifies_pairs(tmp_path: Path) -> None:
    want = fixtures.write_adience(tmp_path)
    ds = load("adience", tmp_path, n_mated=12, n_nonmated=15)
    p = ds.protocol
    assert (p.n_mated, p.n_nonmated) == (12, 15)
    assert (ds.n_images_total, ds.n_identities_total) == (want["images"], want["identities"])
    assert np.array_equal(ds.identities[p.a] == ds.identities[p.b], p.mated)
    assert ds.image_ids[0].startswith("faces/10000@N00/coarse_tilt_aligned_face.1.")
    stored = tmp_path / "adience" / "adience_pairs.csv"
    assert stored.is_file() and (tmp_path / "adience" / "adience_pairs.csv.sha256").is_file()
    again = load("adience", tmp_path, n_mated=12, n_nonmated=15)
    assert np.array_equal(again.protocol.a, p.a) and "sha256 verified" in again.notes[0]
    stored.write_text(stored.read_text().replace(",1\n", ",0\n", 1))
    with pytest.raises(DataError, match="sha256 differs"):
        load("adience", tmp_path)


def test_adience_generator_is_deterministic(tmp_path: Path) -> None:
    from bench.datasets.adience import generate_protocol

    fixtures.write_adience(tmp_path)
    first = generate_protocol(tmp_path / "adience", 12, 15)
    assert first.equals(generate_protocol(tmp_path / "adience", 12, 15))
    assert not first.equals(generate_protocol(tmp_path / "adience", 12, 15, seed=7))
    assert len(first.drop_duplicates(["image_a", "image_b"])) == 27
    with pytest.raises(DataError, match="only 30 mated pairs possible"):
        generate_protocol(tmp_path / "adience", 31, 1)


def test_adience_bad_metadata_line(tmp_path: Path) -> None:
    fixtures.write_adience(tmp_path)
    path = tmp_path / "adience" / "fold_2_data.txt"
    lines = path.read_text().splitlines()
    lines[3] = "\t".join(["", *lines[3].split("\t")[1:]])
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"fold_2_data\.txt:4: empty or unsafe"):
        load("adience", tmp_path, n_mated=12, n_nonmated=15)


def test_ijbc_templates(tmp_path: Path) -> None:
    want = fixtures.write_ijbc(tmp_path)
    ds = load("ijb-c", tmp_path)
    p, t = ds.protocol, ds.protocol.templates
    assert t is not None and t.n_templates == want["templates"] and len(ds) == want["images"]
    assert t.template_ids.tolist() == [11, 12, 13, 14]
    assert (p.n_mated, p.n_nonmated) == (want["mated"], want["nonmated"])
    assert p.a.tolist() == [0, 0, 2] and p.b.tolist() == [1, 2, 3] and p.mated.tolist() == [True, False, False]
    assert t.media.tolist() == [101, 102, 103, 104, 104, 105]
    assert ds.image_ids[t.image[3]] == "loose_crop/4.jpg"
    assert ds.landmarks.shape == (6, 5, 2) and ds.landmarks[0, 1].tolist() == [11, 6]
    assert p.used_images().tolist() == list(range(6))


def test_ijbc_bad_pair_line(tmp_path: Path) -> None:
    fixtures.write_ijbc(tmp_path)
    (tmp_path / "ijb-c/meta/ijbc_template_pair_label.txt").write_text("11 12 1\n11 x 0\n")
    with pytest.raises(DataError, match=r"ijbc_template_pair_label\.txt:2: .*'11 x 0'"):
        load("ijb-c", tmp_path)
    (tmp_path / "ijb-c/meta/ijbc_template_pair_label.txt").write_text("11 12 1\n11 99 0\n")
    with pytest.raises(DataError, match=r":2: template 99 is not in"):
        load("ijb-c", tmp_path)


def test_missing_images_listed(tmp_path: Path) -> None:
    fixtures.write_lfw(tmp_path)
    for n in (1, 2):
        (tmp_path / f"lfw/lfw-deepfunneled/Person_03/Person_03_000{n}.jpg").unlink()
    with pytest.raises(DataError, match=r"lfw: 2 image file\(s\) named by the protocol are missing, first: .*Person_03_0001"):
        load("lfw", tmp_path)


def test_malformed_protocol_line(tmp_path: Path) -> None:
    fixtures.write_lfw(tmp_path)
    path = tmp_path / "lfw" / "pairs.txt"
    lines = path.read_text().splitlines()
    lines[4] = "Person_01\tone\t2"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"pairs\.txt:5: expected 'name n1 n2'.*'Person_01\\tone\\t2'"):
        load("lfw", tmp_path)


def test_cfp_unknown_index(tmp_path: Path) -> None:
    fixtures.write_cfp(tmp_path)
    (tmp_path / "cfp/cfp-dataset/Protocol/Split/FP/02/diff.txt").write_text("1,2\n1,99\n")
    with pytest.raises(DataError, match=r"FP/02/diff\.txt:2: profile index 99"):
        load("cfp-fp", tmp_path)


def test_missing_dataset_names_path_and_card(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"calfw: not found: expected .*calfw/aligned images.*see .*calfw\.toml"):
        load("calfw", tmp_path)
    (tmp_path / "lfw" / "lfw").mkdir(parents=True)
    with pytest.raises(DataError, match=r"lfw/pairs\.txt is missing"):
        load("lfw", tmp_path)
    with pytest.raises(DataError, match="no data root"):
        registry.create("dataset", "lfw").load(None)

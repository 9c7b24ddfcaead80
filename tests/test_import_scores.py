"""bench.pipeline.import_scores: formats, path matching, and one-line errors on bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.core.errors import DataError, RegistryError
from bench.core.score_store import read_scores, write_scores
from bench.datasets.base import FaceDataset
from bench.datasets.protocol import PairProtocol
from bench.pipeline.import_scores import import_scores

IDS = ["Aaron/Aaron_0001.jpg", "Aaron/Aaron_0002.jpg", "Bob/Bob_0001.jpg", "Bob/img 1.jpg"]


def _dataset(ids: list[str] = IDS, used: tuple[int, ...] = (0, 1, 2, 3)) -> FaceDataset:
    a, b = np.array(used[::2]), np.array(used[1::2])
    return FaceDataset(name="toy", root=Path("/data/toy"), image_ids=list(ids),
                       protocol=PairProtocol(a=a, b=b, mated=np.ones(len(a), bool)))


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_whitespace_file_with_absolute_and_windows_paths(tmp_path: Path) -> None:
    f = _write(tmp_path / "q.txt", "path score\n/abs/lfw/Bob/Bob_0001.jpg 0.3\n"
               "C:\\data\\Aaron\\Aaron_0002.jpg 0.2\n\n# comment\nAaron_0001.jpg\t0.1\nBob/img 1.jpg 0.4\n")
    ids, scores, meta = import_scores("cr-fiqa", _dataset(), f, None, None)
    assert ids == IDS and scores.tolist() == [0.1, 0.2, 0.3, 0.4]
    assert meta["higher_is_better"] is True and meta["orientation_source"] == "card"
    assert meta["imported_entries"] == 4 and len(meta["imported_sha256"]) == 64
    out = tmp_path / "s.parquet"
    write_scores(out, ids, scores, meta)  # the metadata satisfies the score store
    assert read_scores(out)[2]["method"] == "cr-fiqa"


def test_faceqnet_semicolon_format_and_override(tmp_path: Path) -> None:
    rows = "".join(f".\\Samples\\{i.split('/')[-1]};{k / 10}\n" for k, i in enumerate(IDS))
    f = _write(tmp_path / "scores_quality.txt", "img;score\n" + rows)
    ids, scores, meta = import_scores("faceqnet", _dataset(), f, None, lower_is_better=True)
    assert ids == IDS and np.allclose(scores, [0.0, 0.1, 0.2, 0.3])
    assert meta["higher_is_better"] is False and meta["orientation_source"] == "--lower-is-better"


def test_csv_and_npy_with_list(tmp_path: Path) -> None:
    f = _write(tmp_path / "q.csv", "".join(f"{i},{k}\n" for k, i in enumerate(IDS)))
    assert import_scores("magface", _dataset(), f, None, None)[1].tolist() == [0, 1, 2, 3]
    np.save(tmp_path / "scores.npy", np.array([[4.0], [3.0], [2.0], [1.0]]))
    lst = _write(tmp_path / "img.list", "".join(f"/x/{i}\n" for i in IDS))
    ids, scores, meta = import_scores("magface", _dataset(), tmp_path / "scores.npy", lst, None)
    assert scores.tolist() == [4.0, 3.0, 2.0, 1.0] and meta["imported_list"] == str(lst)


def test_unused_images_may_be_absent(tmp_path: Path) -> None:
    f = _write(tmp_path / "q.txt", "Aaron/Aaron_0001.jpg 1\nBob/Bob_0001.jpg 2\n")
    ids, scores, _ = import_scores("magface", _dataset(used=(0, 2)), f, None, None)
    assert ids == ["Aaron/Aaron_0001.jpg", "Bob/Bob_0001.jpg"]


@pytest.mark.parametrize(("text", "problem"), [
    ("Aaron/Aaron_0001.jpg 1\nAaron/Aaron_0002.jpg 2\nBob/Bob_0001.jpg 3\n", "protocol have no score, first: Bob/img 1.jpg"),
    ("Zed/Z.jpg 1\n", "match no image"),
    ("Aaron/Aaron_0001.jpg nan\n", "NaN or infinite"),
    ("Aaron/Aaron_0001.jpg 1\nx/Aaron/Aaron_0001.jpg 2\n", "several scores"),
    ("Aaron/Aaron_0001.jpg 1\nAaron/Aaron_0002.jpg oops\n", "not 'path score', first: line 2"),
    ("just-a-path\n", "not 'path score'"),
    ("", "no 'path score' entries"),
])
def test_bad_text_files(tmp_path: Path, text: str, problem: str) -> None:
    f = _write(tmp_path / "bad.txt", text)
    with pytest.raises(DataError, match=problem) as err:
        import_scores("magface", _dataset(), f, None, None)
    assert str(f) in str(err.value) and "\n" not in str(err.value)


def test_ambiguous_file_name(tmp_path: Path) -> None:
    ds = _dataset(ids=["a/x.jpg", "b/x.jpg"], used=(0, 1))
    f = _write(tmp_path / "q.txt", "x.jpg 1\n")
    with pytest.raises(DataError, match="match several images"):
        import_scores("magface", ds, f, None, None)


def test_bad_npy_inputs(tmp_path: Path) -> None:
    np.save(tmp_path / "s.npy", np.arange(3.0))
    with pytest.raises(DataError, match="needs the image list"):
        import_scores("magface", _dataset(), tmp_path / "s.npy", None, None)
    lst = _write(tmp_path / "l.txt", "\n".join(IDS))
    with pytest.raises(DataError, match="4 image paths but"):
        import_scores("magface", _dataset(), tmp_path / "s.npy", lst, None)
    np.save(tmp_path / "m.npy", np.zeros((4, 3)))
    with pytest.raises(DataError, match="shape"):
        import_scores("magface", _dataset(), tmp_path / "m.npy", lst, None)
    (tmp_path / "junk.npy").write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a readable .npy"):
        import_scores("magface", _dataset(), tmp_path / "junk.npy", lst, None)
    with pytest.raises(DataError, match="score file not found"):
        import_scores("magface", _dataset(), tmp_path / "none.txt", None, None)
    with pytest.raises(RegistryError):
        import_scores("no-such-method", _dataset(), lst, None, None)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_arbitrary_text_never_crashes_uncontrolled(tmp_path: Path, text: str) -> None:
    f = tmp_path / "fuzz.txt"
    f.write_text(text, encoding="utf-8")
    try:
        ids, scores, _ = import_scores("magface", _dataset(), f, None, None)
    except DataError as exc:
        assert str(f) in str(exc)
    else:
        assert ids == IDS and np.isfinite(scores).all()


def test_a_file_name_under_another_identity_folder_matches_nothing(tmp_path: Path) -> None:
    # Issue 22: only the file name agreed, so Bob's score was taken for Aaron's image.
    rows = "Aaron/Aaron_0001.jpg 0.1\nBob/Aaron_0002.jpg 0.2\nBob/Bob_0001.jpg 0.3\nBob/img 1.jpg 0.4\n"
    with pytest.raises(DataError, match=r"1 path\(s\) match no image of dataset toy, first: Bob/Aaron_0002.jpg; "
                                        r"a file name of the dataset under another folder: Bob/Aaron_0002.jpg "
                                        r"\(the dataset's is Aaron/Aaron_0002.jpg\)"):
        import_scores("cr-fiqa", _dataset(), _write(tmp_path / "q.txt", rows), None, None)
    # A folder the dataset does not have (FaceQnet's flat Samples, a mount point) is no identity: still a match.
    flat = "".join(f"/mnt/Samples/{i.split('/')[-1]} {k}\n" for k, i in enumerate(IDS))
    assert import_scores("cr-fiqa", _dataset(), _write(tmp_path / "flat.txt", flat), None, None)[0] == IDS

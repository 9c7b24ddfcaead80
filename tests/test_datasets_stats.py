"""`bench datasets` text and the Table 1 frame, on empty and scaled-down fixture roots."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.datasets import fixtures
from bench.datasets.dataset_stats import PAPER_DATASETS, describe, table1_frame


def test_describe_without_root() -> None:
    text = describe(None)
    assert "no data root" in text
    for name in PAPER_DATASETS:
        assert f"\n{name} (" in text
    assert "synthetic (Synthetic): found" in text


def test_describe_empty_root(tmp_path: Path) -> None:
    text = describe(tmp_path)
    assert "lfw (LFW): missing" in text and f"expected {tmp_path}/lfw/lfw-deepfunneled" in text
    assert "<root>/cfp/cfp-dataset" in text and "datasets/cfp-fp.toml" in text


@pytest.fixture()
def fixture_root(tmp_path: Path) -> tuple[Path, dict[str, dict[str, int]]]:
    counts = {
        "LFW": fixtures.write_lfw(tmp_path),
        "CFP-FP": fixtures.write_cfp(tmp_path),
        "CALFW": fixtures.write_paired_lines(tmp_path, "calfw", "pairs_CALFW.txt"),
        "CPLFW": fixtures.write_bin(tmp_path / "cplfw.bin"),
        "IJB-C": fixtures.write_ijbc(tmp_path),
    }
    return tmp_path, counts


def test_describe_fixture_root(fixture_root) -> None:
    root, _ = fixture_root
    text = describe(root)
    assert "lfw (LFW): found" in text
    assert "counts:   images 19 (paper 13,233), identities 7 (paper 5,749), mated 6 (paper 3,000)" in text
    assert "adience (Adience): missing" in text


def test_table1_frame_counts_exactly(fixture_root) -> None:
    root, counts = fixture_root
    frame = table1_frame(root).set_index("dataset")
    assert list(frame.index) == ["Adience", "CALFW", "CFP-FP", "CPLFW", "IJB-C", "LFW", "XQLFW"]
    for name in ("LFW", "CFP-FP", "CALFW"):
        row = frame.loc[name]
        assert row["status"] == "found"
        assert [row[c] for c in ("images", "identities", "mated", "nonmated")] == [counts[name][c] for c in ("images", "identities", "mated", "nonmated")]
    assert frame.loc["LFW", "published_images"] == 13233 and frame.loc["IJB-C", "published_nonmated"] == 15638932
    assert "found 2 of 10 folds" in frame.loc["LFW", "differs"]
    assert "found 2 of 10 folds" in frame.loc["CFP-FP", "differs"] and "mated 4 vs 3,500" in frame.loc["CFP-FP", "differs"]
    cplfw = frame.loc["CPLFW"]
    assert cplfw["images"] == 40 and cplfw["identities"] is __import__("pandas").NA
    assert "identities unknown" in cplfw["differs"] and "bin" in cplfw["differs"]
    ijbc = frame.loc["IJB-C"]
    assert (ijbc["images"], ijbc["mated"], ijbc["nonmated"]) == (4, 1, 2)  # images column counts templates
    assert frame.loc["Adience", "status"] == "missing" and "adience" in frame.loc["Adience", "differs"]
    assert str(frame["images"].dtype) == "Int64"


def test_table1_frame_names(fixture_root) -> None:
    root, _ = fixture_root
    frame = table1_frame(root, ["lfw"])
    assert frame["dataset"].tolist() == ["LFW"]

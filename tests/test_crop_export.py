"""`bench crops` (training arrays from the crop cache), distillation from such an array, and
`bench datasets` reading BENCH_DATA."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.cli import main
from bench.core.errors import DataError
from bench.datasets.fixtures import write_lfw
from bench.methods.distill import crops_by_id


def test_all_images_exports_every_file_not_only_the_protocol_ones(tmp_path: Path, capsys) -> None:
    write_lfw(tmp_path / "data")  # 19 image files, 15 of them in pairs.txt
    out = tmp_path / "crops.npy"
    args = ["crops", "lfw", str(out), "--domain", "native", "--data-root", str(tmp_path / "data"), "--no-progress"]
    assert main(args) == 0
    protocol = np.load(out)
    ids = out.with_suffix(".ids.txt").read_text().splitlines()
    assert protocol.shape[0] == len(ids) == 15
    assert main(args + ["--all-images"]) == 0
    everything = out.with_suffix(".ids.txt").read_text().splitlines()
    assert len(everything) == np.load(out).shape[0] == 19
    assert "lfw-deepfunneled/Solo_Person/Solo_Person_0001.jpg" in everything
    assert "19 of 19 crops" in capsys.readouterr().out


def test_crops_by_id_follows_the_label_order_and_names_a_missing_crop(tmp_path: Path) -> None:
    array = np.arange(3 * 2 * 2 * 3, dtype=np.uint8).reshape(3, 2, 2, 3)
    np.save(tmp_path / "c.npy", array)
    (tmp_path / "c.ids.txt").write_text("a\nb\nc\n")
    assert np.array_equal(crops_by_id(tmp_path / "c.npy", ["c", "a"]), array[[2, 0]])
    with pytest.raises(DataError, match="c.ids.txt: 1 labelled image.*e.g. zz"):
        crops_by_id(tmp_path / "c.npy", ["a", "zz"])
    (tmp_path / "c.ids.txt").unlink()
    with pytest.raises(DataError, match="no c.ids.txt beside it"):
        crops_by_id(tmp_path / "c.npy", ["a"])


def test_datasets_command_reads_bench_data(tmp_path: Path, monkeypatch, capsys) -> None:
    write_lfw(tmp_path / "data")
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "data"))
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "lfw (LFW): found" in out and "no data root given" not in out.split("lfw (LFW)")[1].split("\n\n")[0]

"""`bench train ddpm` through the CLI: a two-step run on a tiny array, then a resume."""

from __future__ import annotations

import numpy as np
import pytest

from bench.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_train_ddpm_cli_runs_and_resumes(tmp_path, capsys) -> None:
    data = tmp_path / "faces.npy"
    np.save(data, np.random.default_rng(0).integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8))
    ckpt = tmp_path / "ddpm.pt"
    args = ["train", "ddpm", str(data), str(ckpt), "--crop-size", "32", "--image-size", "32", "--width", "8",
            "--heads", "2", "--dim-head", "8", "--batch-size", "2", "--save-every", "1", "--no-progress"]
    assert main([*args, "--steps", "2"]) == 0
    assert "step 2 (2 this run" in capsys.readouterr().out and ckpt.is_file()
    assert main([*args, "--steps", "3"]) == 0
    assert "step 3 (1 this run" in capsys.readouterr().out


def test_train_distill_cli_reports_missing_labels(tmp_path, capsys) -> None:
    assert main(["train", "distill", str(tmp_path / "none.csv"), str(tmp_path), str(tmp_path / "o.pt")]) == 2
    assert "none.csv" in capsys.readouterr().err

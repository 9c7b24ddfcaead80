"""`bench train ddpm --preview`: what the DDPM learns from (cf. Fig. 3), byte-stable, nothing trained."""

from __future__ import annotations

import numpy as np
from PIL import Image

from bench.cli import main


def _crops(path):
    rng = np.random.default_rng(0)
    base = np.linspace(0, 255, 32, dtype=np.float64)
    arr = np.stack([np.clip(base[None, :, None] + rng.normal(0, 20, (32, 32, 3)), 0, 255) for _ in range(5)]).astype(np.uint8)
    np.save(path, arr)
    return arr


def test_preview_grid_is_byte_stable_and_has_the_training_columns(tmp_path, capsys) -> None:
    arr = _crops(tmp_path / "c.npy")
    args = ["train", "ddpm", str(tmp_path / "c.npy"), str(tmp_path / "out.pt"), "--crop-size", "32", "--degradation",
            "cheap", "--preview-count", "3", "--preview"]
    assert main(args + [str(tmp_path / "a.png")]) == 0
    assert main(args + [str(tmp_path / "b.png")]) == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert not (tmp_path / "out.pt").exists() and "nothing trained" in capsys.readouterr().out
    grid = np.asarray(Image.open(tmp_path / "a.png"))
    assert grid.shape == (3 * 32, 6 * 32, 3)
    cols = [grid[:32, 32 * k : 32 * (k + 1)].astype(int) for k in range(6)]
    assert any(np.array_equal(cols[0], a) or np.array_equal(cols[0], a[:, ::-1]) for a in arr)  # a clean crop (maybe flipped)
    assert all(np.abs(cols[0] - c).mean() > 0.5 for c in cols[1:])  # degradation and noise change it
    assert np.abs(cols[2] - cols[0]).mean() < np.abs(cols[5] - cols[0]).mean()  # t = 0 is mostly clean, T'-1 degraded

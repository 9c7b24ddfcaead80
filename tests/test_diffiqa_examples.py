"""DifFIQA's save_examples=K: the report's reconstruction rows, written beside the score file."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from test_diffiqa import SIZE, LinearFR, checkpoint, data  # noqa: F401  (fixtures)

from bench.core.registry import create


def test_examples_hold_the_first_k_images_and_their_eq7_cosines(checkpoint, data, tmp_path) -> None:  # noqa: F811
    crops, ctx = data
    ctx = dataclasses.replace(ctx, score_file=tmp_path / "lfw__x.parquet")
    plain = create("method", "diffiqa", weights=checkpoint, seed=4, repeats=2).score_batch(crops, np.arange(3), ctx)
    method = create("method", "diffiqa", weights=checkpoint, seed=4, repeats=2, save_examples=2)
    scores = method.score_batch(crops, np.arange(3), ctx)
    assert np.array_equal(scores, plain)  # keeping examples changes no score
    with np.load(tmp_path / "lfw__x.examples.npz") as f:
        assert list(f["image_id"]) == ["a.png", "b.png"]
        assert f["input"].shape == f["recon"].shape == f["flip_recon"].shape == (2, SIZE, SIZE, 3)
        assert np.array_equal(f["input"], crops[:2]) and np.array_equal(f["score"], scores[:2])
        names = list(f["cos_names"])
        assert names == ["x_t", "recon", "flip", "flip_x_t", "flip_recon"]
        meta = json.loads(str(f["meta"]))
        assert meta["repeats"] == 2 and meta["dataset"] == "tiny"
        # The cosine of x to its reconstruction, recomputed from the stored (uint8) crops.
        fr = LinearFR()
        e = fr.embed(np.concatenate([f["input"], f["recon"]]))
        cos = (e[:2] * e[2:]).sum(1) / np.linalg.norm(e[:2], axis=1) / np.linalg.norm(e[2:], axis=1)
        assert f["cos"][:, names.index("recon")] == pytest.approx(cos, abs=1e-5)
    # A later batch adds nothing once K images are kept.
    method.score_batch(crops, np.arange(3), ctx)
    with np.load(tmp_path / "lfw__x.examples.npz") as f:
        assert len(f["image_id"]) == 2


def test_examples_of_the_no_flip_ablation_leave_the_flip_members_out(checkpoint, data, tmp_path) -> None:  # noqa: F811
    crops, ctx = data
    ctx = dataclasses.replace(ctx, score_file=tmp_path / "s.parquet")
    torch.manual_seed(0)
    create("method", "diffiqa-noflip", weights=checkpoint, repeats=1, save_examples=1).score_batch(crops, np.arange(3), ctx)
    with np.load(tmp_path / "s.examples.npz") as f:
        assert list(f["cos_names"]) == ["x_t", "recon"] and "flip_recon" not in f.files

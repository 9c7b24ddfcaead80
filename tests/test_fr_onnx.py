"""The ``onnx:PATH`` FR model: a real MobileFaceNet on LFW faces, and tiny generated graphs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from bench.align import get_aligner
from bench.core import paths
from bench.core.cards import get_card
from bench.core.errors import DataError, MissingWeightsError
from bench.core.io import sha256_file
from bench.core.options import OptionError
from bench.core.registry import create
from bench.fr.onnx_model import OnnxFR

# Test-only model and data beside the repository (licence unknown: never copied into it).
SHARED = paths.REPO_ROOT.parent / "shared" / "data"
MOBILEFACENET = SHARED / "models" / "mobilefacenet-112.onnx"
LFW = SHARED / "lfw"
needs_model = pytest.mark.skipif(not MOBILEFACENET.is_file(), reason=f"{MOBILEFACENET} absent")


def mean_pool_model(path: Path, shape: list, opset: int = 13) -> Path:
    """A graph whose embedding is the per-channel mean of its NCHW input (exactly predictable)."""
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=0)],
        "mean_pool",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [shape[0], 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    onnx.save(model, path)
    return path


def crops(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 112, 112, 3), dtype=np.uint8)


@needs_model
def test_mobilefacenet_shapes_and_determinism() -> None:
    fr = create("fr", "onnx", weights=MOBILEFACENET)
    x = crops(3)
    emb = fr.embed(x)
    assert emb.shape == (3, 128) and emb.dtype == np.float32
    np.testing.assert_array_equal(emb, fr.embed(x))
    np.testing.assert_allclose(fr.embed(x[1:2])[0], emb[1], atol=1e-5)
    assert fr.embed(x[:0]).shape == (0, 128)
    assert fr.domain == "arcface112" and fr.size == 112
    prov = fr.provenance()
    assert prov["fr_weights_sha256"] == sha256_file(MOBILEFACENET)
    assert prov["fr_preprocess"] == "RGB (x - 127.5) / 128 at 112px"
    bgr = create("fr", "onnx", weights=MOBILEFACENET, color="BGR")
    assert not np.allclose(bgr.embed(x), emb, atol=1e-3)


@needs_model
@pytest.mark.skipif(not (LFW / "pairs.txt").is_file(), reason=f"{LFW} absent")
def test_mobilefacenet_separates_lfw_mates_from_non_mates() -> None:
    lines = (LFW / "pairs.txt").read_text().splitlines()
    mates = [line.split("\t") for line in lines[1:9]]  # first fold: 300 mated, then 300 non-mated pairs
    non_mates = [line.split("\t") for line in lines[301:309]]
    fr = create("fr", "onnx", weights=MOBILEFACENET)
    aligner = get_aligner(fr.domain)

    def crop(name: str, number: str) -> np.ndarray:
        image = cv2.imread(str(LFW / "lfw-deepfunneled" / name / f"{name}_{int(number):04d}.jpg"))
        aligned, detected = aligner.align(np.ascontiguousarray(image[:, :, ::-1]), None, False)
        assert detected, f"no face found in {name} {number}"
        return aligned

    def cosine(a: np.ndarray, b: np.ndarray) -> float:
        e = fr.embed(np.stack([a, b]))
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        return float(e[0] @ e[1])

    same = [cosine(crop(n, i), crop(n, j)) for n, i, j in mates]
    different = [cosine(crop(a, i), crop(b, j)) for a, i, b, j in non_mates]
    assert np.mean(same) > np.mean(different) + 0.3


def test_resize_fixed_batch_and_options(tmp_path: Path) -> None:
    path = mean_pool_model(tmp_path / "pool64.onnx", [1, 3, 64, 64])
    x = crops(3)
    fr = OnnxFR(get_card("fr", "onnx"), weights=path, color="BGR", mean=100, std=50)
    assert fr.size == 64 and fr.fixed_batch == 1
    resized = np.stack([cv2.resize(c, (64, 64), interpolation=cv2.INTER_LINEAR) for c in x.astype(np.float32)])
    expected = ((resized[..., ::-1] - 100) / 50).mean(axis=(1, 2))
    np.testing.assert_allclose(fr.embed(x), expected, atol=1e-5)
    assert fr.provenance()["fr_preprocess"] == "BGR (x - 100) / 50 at 64px"


def test_bad_models_and_options(tmp_path: Path) -> None:
    card = get_card("fr", "onnx")
    with pytest.raises(MissingWeightsError, match="onnx:PATH"):
        OnnxFR(card)
    with pytest.raises(MissingWeightsError, match="nowhere.onnx"):
        OnnxFR(card, weights=tmp_path / "nowhere.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(DataError, match="junk.onnx: not a loadable ONNX model"):
        OnnxFR(card, weights=junk)
    oblong = mean_pool_model(tmp_path / "oblong.onnx", ["n", 3, 112, 96])
    with pytest.raises(DataError, match="only square inputs"):
        OnnxFR(card, weights=oblong)
    square = mean_pool_model(tmp_path / "square.onnx", ["n", 3, 112, 112])
    with pytest.raises(OptionError, match="unknown option"):
        OnnxFR(card, weights=square, colour="BGR")
    with pytest.raises(OptionError, match="RGB or BGR"):
        OnnxFR(card, weights=square, color="YUV")

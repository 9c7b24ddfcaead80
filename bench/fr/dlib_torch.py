"""dlib's face-recognition ResNet as a differentiable PyTorch module, weights read from the .dat.

Same network and weights as :mod:`bench.fr.dlib_model` (``anet_type`` of dlib's
dnn_face_recognition_ex.cpp), loaded by :mod:`bench.fr.dlib_dat`; embeddings agree with
dlib's to ~5e-7 per element on LFW chips (tests/test_fr_dlib.py). The ``dlib`` FR model
embeds through it when torch is installed (:func:`embed_chips`). Gradient- and dropout-based
FIQA methods (FaceQAN, SER-FIQ) and distillation use it where they need a real FR model with
gradients.

Layer semantics, as dlib computes them:

* input: ``(rgb - (122.782, 117.001, 104.298)) / 256`` (``input_rgb_image_sized``);
* ``con``: cross-correlation with bias; padding as stored (stride 1 -> k//2, stride 2 -> 0);
* ``affine``: per-channel ``x * gamma + beta`` (batch norm folded in at training time);
* pooling: no padding, floor output size; ``avg_pool_everything`` = spatial mean;
* ``add_prev``: when the two tensors differ in size (channels double in a down block, and
  at 8x8 -> 3x3 vs 4x4 the strided conv and the 2x2 average pool disagree), the sum has the
  larger size in every dimension, the smaller tensor counting as zero outside its extent
  (aligned at channel 0 / row 0 / column 0);
* ``fc_no_bias``: ``x @ W`` with W stored [256, 128].

For SER-FIQ-style stochastic passes: ``module.embedding_input(x)`` returns the pooled 256-D
features and ``module.fc`` is the 256 -> 128 layer, so ``module.fc(dropout(module.
embedding_input(x)))`` inserts dropout right before the embedding layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.core.cards import Card
from bench.core.errors import DataError
from bench.core.registry import register_fr
from bench.fr.base import TorchFRModel, to_pixels
from bench.fr.dlib_chips import check_chips, dlib_weights
from bench.fr.dlib_dat import DlibNetwork, Layer, read_network

EMBED_BATCH = 64
_PLAIN = ("con_4", "affine_", "relu_", "con_4", "affine_", "add_prev_", "relu_")
_DOWN = ("con_4", "affine_", "relu_", "con_4", "affine_", "avg_pool_2", "add_prev_", "relu_")


def _conv(layer: Layer) -> nn.Conv2d:
    f = layer.fields
    n_out, n_in, kh, kw = f["filters"]
    conv = nn.Conv2d(n_in, n_out, (kh, kw), stride=(f["stride_y"], f["stride_x"]), padding=(f["padding_y"], f["padding_x"]))
    flat = f["params"].reshape(-1)
    n_w = n_out * n_in * kh * kw
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(flat[:n_w].reshape(n_out, n_in, kh, kw).copy()))
        conv.bias.copy_(torch.from_numpy(flat[n_w : n_w + n_out].copy()))
    return conv


class Affine(nn.Module):
    """dlib's ``affine`` layer in conv mode: per-channel scale and shift."""

    def __init__(self, layer: Layer) -> None:
        super().__init__()
        f = layer.fields
        if f["mode"] != 0:
            raise DataError(f"dlib affine layer in mode {f['mode']}; only conv mode (0) is supported")
        c = f["gamma"][1]
        flat = torch.from_numpy(f["params"].reshape(-1).copy())
        self.gamma = nn.Parameter(flat[:c].view(1, c, 1, 1).clone())
        self.beta = nn.Parameter(flat[c : 2 * c].view(1, c, 1, 1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma + self.beta


def add_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev`` on tensors of different sizes (see the module docstring)."""
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def grow(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return grow(a) + grow(b)


class ResBlock(nn.Module):
    """``ares`` / ``ares_down``: relu(add_prev(skip(x), affine(con(relu(affine(con(x))))))."""

    def __init__(self, layers: list[Layer], down: bool) -> None:
        super().__init__()
        self.conv1, self.aff1 = _conv(layers[0]), Affine(layers[1])
        self.conv2, self.aff2 = _conv(layers[3]), Affine(layers[4])
        self.down = down
        if down:
            p = layers[5].fields
            if (p["nr"], p["nc"], p["stride_y"], p["stride_x"], p["padding_y"], p["padding_x"]) != (2, 2, 2, 2, 0, 0):
                raise DataError(f"dlib residual_down: unexpected skip pooling {p}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.aff2(self.conv2(F.relu(self.aff1(self.conv1(x)))))
        skip = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(add_padded(y, skip))


class DlibResNet(nn.Module):
    """The 29-conv ResNet of dlib_face_recognition_resnet_model_v1, built from a parsed file."""

    def __init__(self, net: DlibNetwork) -> None:
        super().__init__()
        if net.input.kind != "input_rgb_image_sized" or (net.input.fields["nr"], net.input.fields["nc"]) != (150, 150):
            raise DataError(f"dlib network: expected a 150x150 input_rgb_image_sized input, got {net.input}")
        self.register_buffer("mean_rgb", torch.tensor(net.input.fields["avg_rgb"], dtype=torch.float32).view(1, 3, 1, 1))
        layers = net.layers
        kinds = [layer.kind for layer in layers]
        if kinds[:4] != ["con_4", "affine_", "relu_", "max_pool_2"] or kinds[-2:] != ["avg_pool_2", "fc_2"]:
            raise DataError(f"dlib network: layer sequence {kinds[:4]}...{kinds[-2:]} is not dlib's face ResNet")
        self.stem_conv, self.stem_aff = _conv(layers[0]), Affine(layers[1])
        mp = layers[3].fields
        self.pool_args = dict(kernel_size=(mp["nr"], mp["nc"]), stride=(mp["stride_y"], mp["stride_x"]), padding=(mp["padding_y"], mp["padding_x"]))
        blocks: list[ResBlock] = []
        i, end = 4, len(layers) - 2
        while i < end:
            down = tuple(kinds[i : i + len(_DOWN)]) == _DOWN
            pattern = _DOWN if down else _PLAIN
            if tuple(kinds[i : i + len(pattern)]) != pattern:
                raise DataError(f"dlib network: unexpected layers {kinds[i : i + len(pattern)]} at layer {i}")
            blocks.append(ResBlock(layers[i : i + len(pattern)], down))
            i += len(pattern)
        self.blocks = nn.ModuleList(blocks)
        pool, fc = layers[-2].fields, layers[-1].fields
        if (pool["nr"], pool["nc"]) != (0, 0) or fc["bias_mode"] != 1:
            raise DataError("dlib network: expected avg_pool_everything then fc_no_bias at the top")
        self.fc = nn.Linear(fc["num_inputs"], fc["num_outputs"], bias=False)
        with torch.no_grad():
            w = fc["params"].reshape(fc["num_inputs"], fc["num_outputs"])
            self.fc.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))

    def embedding_input(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled 256-D features (the input of ``fc``) of RGB images [N, 3, 150, 150] in [0, 255]."""
        x = (images - self.mean_rgb) / 256.0
        x = F.max_pool2d(F.relu(self.stem_aff(self.stem_conv(x))), **self.pool_args)
        for block in self.blocks:
            x = block(x)
        return x.mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Unnormalised 128-D embeddings, as dlib's ``compute_face_descriptor`` returns."""
        return self.fc(self.embedding_input(images))


@register_fr("dlib-torch")
class DlibTorchFR(TorchFRModel):
    """dlib's face ResNet in PyTorch; ``forward_images`` takes RGB float [N, 3, 150, 150] in [0, 255]."""

    domain = "dlib150"
    dim = 128

    def __init__(self, card: Card, *, weights: str | Path | None = None, device: str = "cpu", **options: Any) -> None:
        super().__init__(card, weights=weights, device=device, **options)
        self.weights_path, self.weights_sha256 = dlib_weights(card, weights)
        self.module = DlibResNet(read_network(self.weights_path)).to(device).eval()

    def forward_images(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, 150, 150):
            raise DataError(f"{self.name}: expected images [N, 3, 150, 150], got {tuple(images.shape)}")
        return self.module(images)

    def embed(self, crops: np.ndarray) -> np.ndarray:
        check_chips(crops, self.name)
        if len(crops) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return embed_chips(self.module, crops, self.device)


def embed_chips(module: DlibResNet, crops: np.ndarray, device: str) -> np.ndarray:
    """Unnormalised float32 embeddings [N, 128] of uint8 dlib150 chips [N, 150, 150, 3].

    ``dlib`` and ``dlib-torch`` both embed through this, so their embeddings of one batch are
    the same numbers.
    """
    out = []
    # Chunks bound activation memory (the stem alone is 0.66 MB per image).
    for start in range(0, len(crops), EMBED_BATCH):
        x = to_pixels(crops[start : start + EMBED_BATCH], device)
        with torch.inference_mode():
            out.append(module(x).float().cpu().numpy())
    return np.concatenate(out)

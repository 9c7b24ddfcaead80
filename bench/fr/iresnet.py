"""iResNet face-recognition backbones, their input convention and checkpoint loading.

Two layouts of the same idea (pre-activation residual blocks with PReLU, 112x112 input,
7x7x512 feature map, Linear to a 512-D embedding, BatchNorm1d) are in use, and each official
checkpoint only loads into its own parameter naming:

* :class:`IResNet` — the insightface ``arcface_torch`` layout (``conv1``, ``bn1``, ``prelu``,
  ``layer1..4.N.{bn1,conv1,bn2,prelu,conv2,bn3,downsample}``, ``bn2``, ``fc``, ``features``).
  Used by the insightface ArcFace/CosFace releases, MagFace (keys under
  ``features.module.``, ``bn_eps=2e-5``) and CR-FIQA (same backbone plus a ``qs`` head).
* :class:`IRBackbone` — the face.evoLVe/TFace/AdaFace layout (``input_layer``,
  ``body.N.{shortcut_layer,res_layer}``, ``output_layer``). Its residual branch exists in two
  variants: ``"tface"`` (BN, conv, BN, PReLU, conv, BN: TFace and AdaFace) and ``"evolve"``
  (BN, conv, PReLU, conv, BN: face.evoLVe and the official CurricularFace release).

Both networks expose the same three calls, so FIQA methods can tap the representation they
need without re-implementing the forward pass:

* ``forward_features(x)`` — the flattened, batch-normalised final feature map ``[N, 25088]``
  (the input of dropout and of the fully-connected layer);
* ``forward_head(f)`` — dropout, ``Linear(25088, num_features)`` and the final BatchNorm1d;
* ``forward(x) = forward_head(forward_features(x))`` — the unnormalised embedding.

``x`` is the *normalised* network input ``[N, 3, 112, 112]``; :class:`InputSpec` turns RGB
pixels in [0, 255] into it (colour order and ``(x - mean) / std``) differentiably.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from bench.core.cards import Card
from bench.core.errors import DataError

#: Spatial size of the last feature map for 112x112 input (four stride-2 stages).
FEATURE_MAP = 7
DEFAULT_PREFIXES: tuple[str, ...] = ("features.module.", "module.", "model.")


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """insightface residual unit: BN, conv3x3, BN, PReLU, conv3x3 (stride), BN, plus shortcut.

    The shortcut is the identity, or ``downsample`` (conv1x1 with stride, BN) when the shape
    changes; insightface strides in the second convolution.
    """

    def __init__(self, cin: int, cout: int, stride: int, bn_eps: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=bn_eps)
        self.conv1 = _conv3x3(cin, cout)
        self.bn2 = nn.BatchNorm2d(cout, eps=bn_eps)
        self.prelu = nn.PReLU(cout)
        self.conv2 = _conv3x3(cout, cout, stride)
        self.bn3 = nn.BatchNorm2d(cout, eps=bn_eps)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(cout, eps=bn_eps)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut


class IResNet(nn.Module):
    """The insightface ``arcface_torch`` iResNet (state-dict compatible with its ``backbone.pth``).

    ``layers`` counts the units of the four stages (64, 128, 256, 512 channels, each starting
    with stride 2). ``dropout`` acts on the flattened feature before ``fc`` (0 in the insightface
    releases; element-wise, unlike MagFace's Dropout2d, which is the same thing at eval time).
    ``fp16`` only enables CUDA autocast over the convolutional trunk, as insightface does;
    ``fc`` and ``features`` always run in float32. ``features`` is a BatchNorm1d whose scale
    is fixed to 1 and excluded from training, as in insightface (its weight still loads from
    checkpoints that carry a trained one, like MagFace's).
    """

    def __init__(
        self,
        layers: Sequence[int] = (3, 13, 30, 3),
        *,
        num_features: int = 512,
        dropout: float = 0.0,
        fp16: bool = False,
        bn_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"IResNet needs four stage lengths >= 1, got {list(layers)}")
        self.fp16 = fp16
        self.conv1 = _conv3x3(3, 64)
        self.bn1 = nn.BatchNorm2d(64, eps=bn_eps)
        self.prelu = nn.PReLU(64)
        cin = 64
        for index, (width, units) in enumerate(zip((64, 128, 256, 512), layers), start=1):
            blocks = [IBasicBlock(cin if u == 0 else width, width, 2 if u == 0 else 1, bn_eps) for u in range(units)]
            setattr(self, f"layer{index}", nn.Sequential(*blocks))
            cin = width
        self.bn2 = nn.BatchNorm2d(512, eps=bn_eps)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(512 * FEATURE_MAP * FEATURE_MAP, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=bn_eps)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False

    def forward_features(self, x: Tensor) -> Tensor:
        """Flattened output of ``bn2``, ``[N, 512 * 7 * 7]`` (float32)."""
        with torch.autocast(device_type=x.device.type, dtype=torch.float16, enabled=self.fp16 and x.is_cuda):
            x = self.prelu(self.bn1(self.conv1(x)))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            x = torch.flatten(self.bn2(x), 1)
        return x.float()

    def forward_head(self, features: Tensor) -> Tensor:
        """Embedding ``[N, num_features]`` from :meth:`forward_features`' output."""
        return self.features(self.fc(self.dropout(features)))

    def forward(self, x: Tensor) -> Tensor:
        """Unnormalised embedding of normalised input ``[N, 3, 112, 112]``."""
        return self.forward_head(self.forward_features(x))


def iresnet100(**kwargs: Any) -> IResNet:
    """insightface iResNet-100 (stages 3, 13, 30, 3); ``kwargs`` go to :class:`IResNet`."""
    return IResNet((3, 13, 30, 3), **kwargs)


def iresnet50(**kwargs: Any) -> IResNet:
    """insightface iResNet-50 (stages 3, 4, 14, 3); ``kwargs`` go to :class:`IResNet`."""
    return IResNet((3, 4, 14, 3), **kwargs)


IRVariant = Literal["tface", "evolve"]


class IRBlock(nn.Module):
    """face.evoLVe/TFace residual unit with ``shortcut_layer`` and ``res_layer``.

    Shortcut: ``MaxPool2d(1, stride)`` (subsampling) when the width is kept, else conv1x1 with
    stride and BN. Residual branch: BN, conv3x3, [BN,] PReLU, conv3x3 (stride), BN; the
    bracketed BN exists in the ``"tface"`` variant only, which shifts the ``res_layer`` indices.
    """

    def __init__(self, cin: int, cout: int, stride: int, variant: IRVariant) -> None:
        super().__init__()
        if cin == cout:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        mid = [nn.BatchNorm2d(cout)] if variant == "tface" else []
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(cin), _conv3x3(cin, cout), *mid, nn.PReLU(cout), _conv3x3(cout, cout, stride), nn.BatchNorm2d(cout)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IRBackbone(nn.Module):
    """The TFace/AdaFace/face.evoLVe "IR" backbone (state-dict compatible with their releases).

    ``units`` counts the blocks of the four stages (64, 128, 256, 512 channels, each starting
    with stride 2); ``variant`` picks the residual branch (see :class:`IRBlock`). The output
    layer is BN2d, Dropout(``dropout``), Flatten, Linear(25088, ``num_features``) and a
    BatchNorm1d without affine parameters, as in all three code bases.
    """

    def __init__(
        self,
        units: Sequence[int] = (3, 13, 30, 3),
        *,
        variant: IRVariant = "tface",
        num_features: int = 512,
        dropout: float = 0.4,
    ) -> None:
        super().__init__()
        if len(units) != 4 or min(units) < 1:
            raise ValueError(f"IRBackbone needs four stage lengths >= 1, got {list(units)}")
        if variant not in ("tface", "evolve"):
            raise ValueError(f"IRBackbone variant must be 'tface' or 'evolve', got {variant!r}")
        self.input_layer = nn.Sequential(_conv3x3(3, 64), nn.BatchNorm2d(64), nn.PReLU(64))
        blocks: list[nn.Module] = []
        cin = 64
        for width, count in zip((64, 128, 256, 512), units):
            blocks += [IRBlock(cin if u == 0 else width, width, 2 if u == 0 else 1, variant) for u in range(count)]
            cin = width
        self.body = nn.Sequential(*blocks)
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512),
            nn.Dropout(dropout),
            nn.Flatten(),
            nn.Linear(512 * FEATURE_MAP * FEATURE_MAP, num_features),
            nn.BatchNorm1d(num_features, affine=False),
        )

    def forward_features(self, x: Tensor) -> Tensor:
        """Flattened output of the output layer's BN2d, ``[N, 512 * 7 * 7]``."""
        return torch.flatten(self.output_layer[0](self.body(self.input_layer(x))), 1)

    def forward_head(self, features: Tensor) -> Tensor:
        """Embedding ``[N, num_features]`` from :meth:`forward_features`' output."""
        return self.output_layer[4](self.output_layer[3](self.output_layer[1](features)))

    def forward(self, x: Tensor) -> Tensor:
        """Unnormalised embedding of normalised input ``[N, 3, 112, 112]``."""
        return self.forward_head(self.forward_features(x))


def ir101(**kwargs: Any) -> IRBackbone:
    """IR-101 (stages 3, 13, 30, 3; TFace calls it ``IR_101``); ``kwargs`` go to :class:`IRBackbone`."""
    return IRBackbone((3, 13, 30, 3), **kwargs)


def ir50(**kwargs: Any) -> IRBackbone:
    """IR-50 (stages 3, 4, 14, 3); ``kwargs`` go to :class:`IRBackbone`."""
    return IRBackbone((3, 4, 14, 3), **kwargs)


@dataclass(frozen=True)
class InputSpec:
    """How a network wants its pixels: side length, colour order and ``(x - mean) / std``."""

    size: int = 112
    color: Literal["RGB", "BGR"] = "RGB"
    mean: float = 127.5
    std: float = 127.5

    @classmethod
    def from_card(cls, card: Card) -> InputSpec:
        """Read the card's ``[input]`` table (``size``, ``color``, ``mean``, ``std``; all required)."""
        table = card.get("input")
        if not isinstance(table, dict):
            raise DataError(f"{card.path}: card lacks the [input] table (size, color, mean, std)")
        missing = [k for k in ("size", "color", "mean", "std") if k not in table]
        if missing:
            raise DataError(f"{card.path}: [input] lacks {', '.join(missing)}")
        color = str(table["color"]).upper()
        if color not in ("RGB", "BGR"):
            raise DataError(f"{card.path}: [input] color must be RGB or BGR, got {table['color']!r}")
        return cls(size=int(table["size"]), color=color, mean=float(table["mean"]), std=float(table["std"]))  # type: ignore[arg-type]

    def apply(self, images: Tensor) -> Tensor:
        """Network input from RGB float pixels ``[N, 3, size, size]`` in [0, 255] (differentiable)."""
        if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != (self.size, self.size):
            raise DataError(f"expected images [N, 3, {self.size}, {self.size}], got {list(images.shape)}")
        if self.color == "BGR":
            images = images.flip(1)
        return (images - self.mean) / self.std


def _strip(key: str, prefixes: Iterable[str]) -> str:
    stripped = True
    while stripped:
        stripped = False
        for prefix in prefixes:
            if key.startswith(prefix):
                key, stripped = key[len(prefix) :], True
                break
    return key


def _listing(keys: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return f"{len(keys)} ({shown}{', …' if len(keys) > limit else ''})"


def load_state_dict_mapped(
    module: nn.Module,
    state_dict: Mapping[str, Any],
    prefix_strip: Sequence[str] = DEFAULT_PREFIXES,
    *,
    source: str | Path = "<state dict>",
    ignore_prefixes: Sequence[str] = (),
) -> None:
    """Load ``state_dict`` into ``module`` after dropping and renaming keys; all-or-nothing.

    Keys starting with any of ``ignore_prefixes`` (matched on the *original* key, e.g.
    ``"head."`` for AdaFace's classifier, or MagFace's top-level ``"fc."`` before its
    ``"features.module."`` backbone keys are stripped) are dropped. From the others, leading
    ``prefix_strip`` entries are removed repeatedly (``module.`` from DataParallel, ``model.``
    from Lightning, ``features.module.`` from MagFace). Every missing or unexpected key or
    shape mismatch is reported in one :class:`DataError` naming ``source``; only BatchNorm's
    ``num_batches_tracked`` counters may be absent (old checkpoints lack them; unused at eval).
    """
    mapped: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if any(key.startswith(p) for p in ignore_prefixes):
            continue
        if not isinstance(value, Tensor):
            raise DataError(f"{source}: state-dict entry {key!r} is a {type(value).__name__}, not a tensor")
        name = _strip(key, prefix_strip)
        if name in mapped:
            raise DataError(f"{source}: two state-dict keys map to {name!r} after stripping {list(prefix_strip)}")
        mapped[name] = value
    own = module.state_dict()
    missing = [k for k in own if k not in mapped and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in mapped if k not in own]
    wrong = [f"{k} {list(mapped[k].shape)}≠{list(own[k].shape)}" for k in own if k in mapped and mapped[k].shape != own[k].shape]
    problems = []
    if missing:
        problems.append(f"missing keys {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_listing(unexpected)}")
    if wrong:
        problems.append(f"shape mismatches {_listing(wrong)}")
    if problems:
        raise DataError(f"{source}: weights do not fit {type(module).__name__}: {'; '.join(problems)}")
    module.load_state_dict(mapped, strict=False)


__all__ = [
    "DEFAULT_PREFIXES",
    "IBasicBlock",
    "IRBackbone",
    "IRBlock",
    "IResNet",
    "InputSpec",
    "ir50",
    "ir101",
    "iresnet50",
    "iresnet100",
    "load_state_dict_mapped",
]

"""DifFIQA(R) and eDifFIQA: DifFIQA distilled into an FR backbone with a quality head.

Weights are either our checkpoints (``bench train distill``, any PyTorch FR backbone; the
file names the FR model and crop domain) or the official releases, recognised by their key
layout: DifFIQA(R) ``model.pth`` = ``Sequential(base=iResNet, linear=Linear(512, 1))`` and
eDifFIQA ``ediffiqa{L,M,S}.pth`` = ``eDifFIQA(base_model=iResNet, mlp=MLP(l1, l2))`` and
eDifFIQA(T) ``ediffiqaT.pth`` = ``eDifFIQA(base_model=MobileFaceNet, mlp=MLP)`` (its features
are L2-normalised by the network), all on ArcFace-aligned 112×112 RGB crops normalised to
(x − 127.5) / 127.5.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.core.device import autocast_dtype
from bench.core.errors import BenchError, DataError
from bench.core.io import sha256_file
from bench.core.registry import register_method
from bench.core.torch_load import load_checkpoint
from bench.core.weights import resolve_weights
from bench.fr.base import FRModel, to_pixels
from bench.fr.iresnet import InputSpec, IResNet, load_state_dict_mapped
from bench.fr.mobilefacenet import MobileFaceNet
from bench.methods.base import QualityMethod, ScoreContext
from bench.methods.distill import FORMAT, DistilledModel, Kind, PixelBackbone, fr_backbone, make_head

OFFICIAL = {"diffiqa-r": ("base.", "linear."), "ediffiqa": ("base_model.", "mlp.")}


def _stage_lengths(keys: list[str], prefix: str) -> tuple[int, ...]:
    """iResNet stage lengths from state-dict keys ``{prefix}layer{i}.{j}.…``."""
    lengths = []
    for stage in range(1, 5):
        units = {int(m.group(1)) for k in keys if (m := re.match(rf"{re.escape(prefix)}layer{stage}\.(\d+)\.", k))}
        if not units:
            raise DataError(f"no iResNet stage {stage} under {prefix!r}")
        lengths.append(max(units) + 1)
    return tuple(lengths)


def official_kind(state: dict[str, Any]) -> Kind | None:
    """Which official layout a state dict has (None: not an official one)."""
    for kind, (base, head) in OFFICIAL.items():
        if any(k.startswith(base) for k in state) and any(k.startswith(head) for k in state):
            return kind  # type: ignore[return-value]
    return None


def official_backbone(state: dict[str, Any], kind: Kind) -> str:
    """``mobilefacenet`` (eDifFIQA(T)) or ``iresnet``, from an official state dict's backbone keys."""
    return "mobilefacenet" if f"{OFFICIAL[kind][0]}conv_23.conv.conv.weight" in state else "iresnet"


def load_official(state: dict[str, Any], kind: Kind, source: str | Path) -> DistilledModel:
    """Rebuild an official DifFIQA(R)/eDifFIQA model (iResNet depth read from the keys, or MobileFaceNet)."""
    base, head_prefix = OFFICIAL[kind]
    keys = list(state)
    net: torch.nn.Module
    if official_backbone(state, kind) == "mobilefacenet":
        net = MobileFaceNet(int(state[f"{base}linear.weight"].shape[0]))
        width = int(net.linear.out_features)
    else:
        net = IResNet(_stage_lengths(keys, base))
        width = int(net.fc.out_features)
    load_state_dict_mapped(net, {k[len(base):]: v for k, v in state.items() if k.startswith(base)}, (), source=source)
    spec = InputSpec()
    head_state = {k[len(head_prefix):]: v for k, v in state.items() if k.startswith(head_prefix)}
    head = make_head(kind, width)
    head.load_state_dict(head_state)
    return DistilledModel(PixelBackbone(net, lambda pix: net(spec.apply(pix))), head)


class DistilledQuality(QualityMethod):
    """Scores = the regressor's output on crops of the checkpoint's domain (higher = better)."""

    kind: Kind
    #: The backbone an official file must have (None: any).
    backbone: str | None = None

    def __init__(self, card: Any, **kwargs: Any) -> None:
        super().__init__(card, **kwargs)
        self.model: DistilledModel | None = None
        self.crop_domain: str | None = None
        self.crop_size: int | None = None

    def load(self) -> DistilledModel:
        """Build the model from the weight file (once)."""
        if self.model is not None:
            return self.model
        path = resolve_weights(self.card, self.weights_arg)
        data = load_checkpoint(path, trust=self.trust_weights)
        if isinstance(data, dict) and data.get("format") == FORMAT:
            model = self._from_ours(data, path)
        elif isinstance(data, dict) and official_kind(data) == self.kind:
            if self.backbone is not None and official_backbone(data, self.kind) != self.backbone:
                raise DataError(f"{path}: an official {self.kind} file with a {official_backbone(data, self.kind)} "
                                f"backbone, not the {self.backbone} of {self.name}")
            model, self.crop_domain, self.crop_size = load_official(data, self.kind, path), "arcface112", 112
        else:
            raise DataError(f"{path}: not a {self.name} checkpoint (ours or the official {self.kind} layout)")
        self.weights_sha256 = sha256_file(path)
        self.model = model.to(self.device).eval()
        return self.model

    def _from_ours(self, data: dict[str, Any], path: Path) -> DistilledModel:
        from bench.core.registry import create

        if data["kind"] != self.kind:
            raise DataError(f"{path}: a {data['kind']} checkpoint, not {self.kind}")
        fr = create("fr", data["fr"], weights=self.options["fr_weights"] or None, device=self.device,
                    trust_weights=self.trust_weights)
        backbone = fr_backbone(fr)
        backbone.net.load_state_dict(data["backbone"])
        head = make_head(self.kind, int(data["feature_dim"]))
        head.load_state_dict(data["head"])
        self.crop_domain, self.crop_size = data["domain"], None
        return DistilledModel(backbone, head)

    def domain(self, fr: FRModel | None) -> str:
        """The crop domain the checkpoint was trained on (official releases: arcface112)."""
        self.load()
        assert self.crop_domain is not None
        return self.crop_domain

    def score_batch(self, crops: np.ndarray, indices: np.ndarray, ctx: ScoreContext) -> np.ndarray:
        model = self.load()
        if self.crop_size is not None and crops.shape[1:3] != (self.crop_size, self.crop_size):
            raise BenchError(f"{self.name}: expects {self.crop_size}x{self.crop_size} crops, got {crops.shape[1]}x{crops.shape[2]}")
        pix = to_pixels(crops, self.device)
        # fp32 is the official inference; bf16 / fp16 autocast are named options (card: precision).
        dtype = autocast_dtype(self.options["precision"])
        with torch.inference_mode(), torch.autocast(pix.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            return model(pix)[1].float().cpu().numpy().astype(np.float64)


@register_method("diffiqa-r")
class DifFIQAR(DistilledQuality):
    """DifFIQA(R): Linear(D → 1) on the backbone's features."""

    kind = "diffiqa-r"


@register_method("ediffiqa")
class EDifFIQA(DistilledQuality):
    """eDifFIQA: MLP(D → 1024 → GELU → 1) on the backbone's features (official files: ediffiqaL/M/S)."""

    kind = "ediffiqa"
    backbone = "iresnet"


@register_method("ediffiqa-t")
class EDifFIQAT(DistilledQuality):
    """eDifFIQA(T): the MLP head on MobileFaceNet (official ``ediffiqaT.pth``)."""

    kind = "ediffiqa"
    backbone = "mobilefacenet"

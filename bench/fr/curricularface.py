"""CurricularFace IR-101 (``CurricularFace_Backbone.pth``, the official release), RGB input.

The file is a plain state dict of the face.evoLVe-style IR backbone the CurricularFace
repository trains (``backbone.module.state_dict()``), whose residual branch has no BatchNorm
between its first convolution and the PReLU: the ``"evolve"`` variant of
:class:`bench.fr.iresnet.IRBackbone`. Its forward also returns the flattened feature map;
this model returns the embedding only.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from bench.core.registry import register_fr
from bench.fr.insightface import CheckpointFR
from bench.fr.iresnet import IRBackbone


@register_fr("curricularface")
class CurricularFace(CheckpointFR):
    """CurricularFace IR-101 as released by the authors (RGB, (x - 127.5) / 127.5)."""

    def build(self, arch: dict[str, Any]) -> nn.Module:
        return IRBackbone(arch["units"], variant=arch["variant"], num_features=int(arch.get("num_features", 512)))

"""SDD-FIQA (Ou et al., CVPR 2021): regression output of the released IR-50 quality network.

From the official code (Tencent/TFace, ``quality/eval.py`` and
``quality/generate_pseudo_labels/extract_embedding/model/model.py``): the face.evoLVe-style IR-50
trunk (``input_layer``, ``body``; residual branch BN, conv, PReLU, conv, BN — the ``"evolve"``
variant of :class:`bench.fr.iresnet.IRBackbone`) followed by the quality head
``quality = Sequential(Flatten, PReLU(25088), Dropout(0.5), Linear(25088, 1))`` on the raw
7x7x512 map (no BN before it). Checkpoint ``SDD_FIQA_checkpoints_r50.pth``: a plain state dict,
``module.`` prefixes stripped. Input: PIL RGB, ``Normalize(0.5, 0.5)`` on [0, 1], i.e.
``(x - 127.5) / 127.5``, 112x112. Higher = better.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.core.optional import require
from bench.core.registry import register_method
from bench.methods.checkpoint import CheckpointQuality, state_dict_of

FEATURES = 512 * 7 * 7


def sddfiqa_net() -> Any:
    """The SDD-FIQA network in the official state-dict layout (``input_layer``, ``body``, ``quality``)."""
    nn = require("torch", "SDD-FIQA").nn

    from bench.fr.iresnet import ir50

    trunk = ir50(variant="evolve")

    class SDDFIQANet(nn.Module):
        """IR-50 trunk + PReLU/Dropout/Linear quality head; returns [N, 1]."""

        def __init__(self) -> None:
            super().__init__()
            self.input_layer = trunk.input_layer
            self.body = trunk.body
            self.quality = nn.Sequential(nn.Flatten(), nn.PReLU(FEATURES), nn.Dropout(0.5), nn.Linear(FEATURES, 1))

        def forward(self, x: Any) -> Any:
            return self.quality(self.body(self.input_layer(x)))

    return SDDFIQANet()


@register_method("sdd-fiqa")
class SDDFIQA(CheckpointQuality):
    """SDD-FIQA quality regression (R50 checkpoint)."""

    def build(self) -> Any:
        return sddfiqa_net()

    def load(self, net: Any, checkpoint: Any, source: Path) -> None:
        from bench.fr.iresnet import load_state_dict_mapped

        load_state_dict_mapped(net, state_dict_of(checkpoint, source), prefix_strip=("module.",), source=source)

    def quality(self, output: Any) -> Any:
        return output[:, 0]

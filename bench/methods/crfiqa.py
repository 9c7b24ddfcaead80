"""CR-FIQA (Boutros et al., CVPR 2023): the ``qs`` regression head of the CR-FIQA network.

From the official code (fdbtrs/CR-FIQA, ``backbones/iresnet.py``, ``evaluation/QualityModel.py``):
an insightface iResNet (BatchNorm eps 1e-5) whose embedding feeds ``qs = Linear(512, 1)``; the
score is that output, higher = better. Variants: ``L`` (default; iResNet-100, MS1MV2,
``181952backbone.pth``) and ``S`` (iResNet-50, CASIA-WebFace, ``32572backbone.pth``), chosen
with the option ``variant``. Input ``(x / 255 - 0.5) / 0.5``. Colour: the official scripts
feed ``cv2.imread`` arrays of images that ``extract_bin.py``/``extract_xqlfw.py`` wrote from
mxnet-decoded RGB arrays with ``cv2.imwrite`` ("saved in BGR format"), so the channel swaps
cancel and the network sees RGB, as in its insightface-style training (card color RGB).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.core.optional import require
from bench.core.registry import register_method
from bench.methods.checkpoint import CheckpointQuality, state_dict_of

VARIANTS = {"L": (0, (3, 13, 30, 3)), "S": (1, (3, 4, 14, 3))}


def crfiqa_net(layers: tuple[int, ...]) -> Any:
    """iResNet with the ``qs`` head, in the official state-dict layout (``conv1.*`` … ``qs.*``)."""
    nn = require("torch", "CR-FIQA").nn

    from bench.fr.iresnet import IResNet

    class CRFIQANet(IResNet):
        """Returns the quality regression output [N, 1] (the embedding is not needed)."""

        def __init__(self) -> None:
            super().__init__(layers, bn_eps=1e-5)
            self.qs = nn.Linear(512, 1)

        def forward(self, x: Any) -> Any:
            return self.qs(super().forward(x))

    return CRFIQANet()


@register_method("cr-fiqa")
class CRFIQA(CheckpointQuality):
    """CR-FIQA(L) or CR-FIQA(S) quality regression (option ``variant``: L or S)."""

    def _variant(self) -> tuple[int, tuple[int, ...]]:
        return VARIANTS[self.options["variant"]]

    def weights_index(self) -> int:
        return self._variant()[0]

    def build(self) -> Any:
        return crfiqa_net(self._variant()[1])

    def load(self, net: Any, checkpoint: Any, source: Path) -> None:
        from bench.fr.iresnet import load_state_dict_mapped

        load_state_dict_mapped(net, state_dict_of(checkpoint, source), prefix_strip=("module.",), source=source)

    def quality(self, output: Any) -> Any:
        return output[:, 0]

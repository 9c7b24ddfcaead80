"""CR-FIQA (Boutros et al., CVPR 2023): the ``qs`` regression head of the CR-FIQA network.

From the official code (fdbtrs/CR-FIQA, ``backbones/iresnet.py``, ``evaluation/QualityModel.py``):
an insightface iResNet (BatchNorm eps 1e-5) whose embedding feeds ``qs = Linear(512, 1)``; the
score is that output, higher = better. Variants: ``L`` (default; iResNet-100, MS1MV2,
``181952backbone.pth``) and ``S`` (iResNet-50, CASIA-WebFace, ``32572backbone.pth``), chosen
with the option ``variant``. Input ``(x / 255 - 0.5) / 0.5``.

Colour: ``getQualityScore.py`` (default ``--color_channel BGR``: no conversion) feeds
``cv2.imread`` arrays of the crops its extraction scripts wrote, and every one of them writes
RGB-ordered arrays with ``cv2.imwrite``: ``extract_bin.py`` the mxnet-decoded RGB images of the
.bin sets (LFW, CFP-FP, CALFW, CPLFW), ``extract_xqlfw.py``, ``extract_IJB.py`` and
``extract_adience.py`` their cv2-read BGR crops after a ``cv2.COLOR_RGB2BGR`` swap. Reading
back gives the same arrays, so the network sees RGB on every dataset. The card's
``official_color`` table records this per dataset; the option ``color`` (``official``, the
default, or ``RGB``/``BGR``) overrides it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.core.optional import require
from bench.core.registry import register_method
from bench.methods.base import ScoreContext
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

    def channel_order(self, dataset: str | None) -> str:
        """``RGB`` or ``BGR``: the option ``color``, or for ``official`` the order the official
        scripts feed on ``dataset`` (the card's ``official_color``; RGB where it has no entry)."""
        color = self.options["color"]
        if color != "official":
            return color
        return str((self.card.get("official_color") or {}).get(dataset or "", "RGB"))

    def score_batch(self, crops: np.ndarray, indices: np.ndarray, ctx: ScoreContext) -> np.ndarray:
        """Crops arrive RGB; reversed to BGR first where :meth:`channel_order` says so."""
        if self.channel_order(ctx.dataset.name if ctx is not None else None) == "BGR":
            crops = np.ascontiguousarray(crops[..., ::-1])
        return super().score_batch(crops, indices, ctx)

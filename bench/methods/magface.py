"""MagFace (Meng et al., CVPR 2021): quality = L2 norm of the unnormalised MagFace embedding.

MagFace specifics, from the official code (IrvingMeng/MagFace, ``inference/network_inf.py``,
``inference/gen_feat.py``): iResNet-100 with BatchNorm eps 2e-5; the checkpoint
``magface_epoch_00025.pth`` keeps the backbone under ``state_dict`` with keys
``features.module.*`` (``module.features.*`` in non-distributed runs) next to the MagLinear
classifier ``fc.weight``, which inference drops. Images are read with ``cv2.imread`` and
``ToTensor`` is applied without normalisation, so the network sees BGR pixels in [0, 1]
(card ``[input]``: color BGR, mean 0, std 255) on 112x112 ArcFace-aligned crops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.core.errors import DataError
from bench.core.registry import register_method
from bench.methods.checkpoint import CheckpointQuality, state_dict_of


@register_method("magface")
class MagFace(CheckpointQuality):
    """Norm of the MagFace iResNet-100 embedding (higher = better)."""

    def build(self) -> Any:
        from bench.fr.iresnet import iresnet100

        return iresnet100(bn_eps=2e-5)

    def load(self, net: Any, checkpoint: Any, source: Path) -> None:
        from bench.fr.iresnet import load_state_dict_mapped

        backbone = {}
        for key, value in state_dict_of(checkpoint, source).items():
            for prefix in ("features.module.", "module.features."):
                if key.startswith(prefix):
                    backbone[key[len(prefix) :]] = value
        if not backbone:
            raise DataError(f"{source}: no MagFace backbone keys (features.module.* or module.features.*)")
        load_state_dict_mapped(net, backbone, prefix_strip=(), source=source)

    def quality(self, output: Any) -> Any:
        return output.norm(dim=1)

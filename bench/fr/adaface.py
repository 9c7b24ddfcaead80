"""AdaFace IR-101 trained on WebFace12M (``adaface_ir101_webface12m.ckpt``), BGR input.

The release is a PyTorch Lightning checkpoint: the backbone's weights sit under ``model.``
in ``checkpoint["state_dict"]`` next to the margin head's ``head.kernel``, which is dropped.
The file also pickles Lightning and training-script objects; it is read with
:func:`bench.fr.lightning_ckpt.load_lightning_checkpoint`, which needs neither Lightning nor
``--trust-weights`` because it creates none of those objects.
The network is the TFace-style IR backbone; AdaFace's own forward also returns the norm and
divides by it, whereas this model returns the unnormalised embedding (cosine scores agree).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from bench.core.errors import DataError
from bench.core.registry import register_fr
from bench.fr.insightface import CheckpointFR
from bench.fr.iresnet import IRBackbone
from bench.fr.lightning_ckpt import load_lightning_checkpoint


@register_fr("adaface")
class AdaFace(CheckpointFR):
    """AdaFace IR-101 (WebFace12M); the card's ``[input] color = "BGR"`` flips channels."""

    ignore_prefixes = ("head.",)

    def build(self, arch: dict[str, Any]) -> nn.Module:
        return IRBackbone(arch["units"], variant=arch["variant"], num_features=int(arch.get("num_features", 512)))

    def read(self, path: Path) -> Any:
        return load_lightning_checkpoint(path)

    def state_dict_of(self, checkpoint: Any, path: Path) -> Mapping[str, Any]:
        state = checkpoint.get("state_dict") if isinstance(checkpoint, Mapping) else None
        if not isinstance(state, Mapping):
            raise DataError(f"{path}: not an AdaFace Lightning checkpoint (no 'state_dict' mapping)")
        return state

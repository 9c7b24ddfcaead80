"""MagFace (Meng et al., CVPR 2021): quality = L2 norm of the unnormalised MagFace embedding.

Also home of :class:`CheckpointQuality`, the base of the methods that run one released PyTorch
checkpoint (MagFace, CR-FIQA, SDD-FIQA): weights are found and hashed when the method is
created, so a missing file fails before any alignment work.

MagFace specifics, from the official code (IrvingMeng/MagFace, ``inference/network_inf.py``,
``inference/gen_feat.py``): iResNet-100 with BatchNorm eps 2e-5; the checkpoint
``magface_epoch_00025.pth`` keeps the backbone under ``state_dict`` with keys
``features.module.*`` (``module.features.*`` in non-distributed runs) next to the MagLinear
classifier ``fc.weight``, which inference drops. Images are read with ``cv2.imread`` and
``ToTensor`` is applied without normalisation, so the network sees BGR pixels in [0, 1]
(card ``[input]``: color BGR, mean 0, std 255) on 112x112 ArcFace-aligned crops.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from bench.cards import Card
from bench.errors import DataError
from bench.methods.base import QualityMethod, ScoreContext
from bench.registry import register_method
from bench.weights import resolve_weights, verified_sha256


class CheckpointQuality(QualityMethod):
    """A method whose score is a function of one PyTorch network's output."""

    def __init__(self, card: Card, **kwargs: Any) -> None:
        super().__init__(card, **kwargs)
        from bench.fr.iresnet import InputSpec, read_checkpoint

        index = self.weights_index()
        path = resolve_weights(card, self.weights_arg, index)
        self.weights_sha256 = verified_sha256(card, path, index)
        self.net = self.build()
        self.load(self.net, read_checkpoint(path), path)
        self.net.eval().to(self.device)
        self.spec = InputSpec.from_card(card)

    def weights_index(self) -> int:
        """Which ``[[weights]]`` entry of the card to load (variants override this)."""
        return 0

    @abstractmethod
    def build(self) -> Any:
        """The network (torch.nn.Module) in the checkpoint's parameter layout, uninitialised."""

    @abstractmethod
    def load(self, net: Any, checkpoint: Any, source: Path) -> None:
        """Load the checkpoint object into ``net``; DataError naming ``source`` on any mismatch."""

    @abstractmethod
    def quality(self, output: Any) -> Any:
        """Native scores (torch [N]) from the network output."""

    def score_batch(self, crops: np.ndarray, indices: np.ndarray, ctx: ScoreContext) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device).permute(0, 3, 1, 2).float()
        if x.shape[-1] != self.spec.size or x.shape[-2] != self.spec.size:
            x = F.interpolate(x, size=(self.spec.size, self.spec.size), mode="bilinear", align_corners=False)
        with torch.inference_mode():
            return self.quality(self.net(self.spec.apply(x))).double().cpu().numpy().reshape(-1)


def state_dict_of(checkpoint: Any, source: Path) -> dict[str, Any]:
    """The state dict inside a checkpoint: the object itself or its ``state_dict`` entry."""
    sd = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(sd, dict):
        raise DataError(f"{source}: checkpoint holds a {type(checkpoint).__name__}, not a state dict")
    return sd


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

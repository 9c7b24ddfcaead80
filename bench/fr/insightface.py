"""insightface ArcFace and CosFace (iResNet-100), and the base of every checkpoint-backed iResNet FR model.

:class:`CheckpointFR` does what the four official-checkpoint models share: find the weight
file the card names (``--weights`` or ``BENCH_WEIGHTS``), record its sha256, build the network
the card's ``[arch]`` table describes, load the state dict under strict key checking, and apply
the card's ``[input]`` convention (colour order, ``(x - mean) / std``) inside
``forward_images``. Subclasses say which network and how the checkpoint file wraps its
state dict.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from bench.core.cards import Card
from bench.core.errors import DataError
from bench.core.registry import register_fr
from bench.core.torch_load import load_checkpoint
from bench.core.weights import resolve_weights, verified_sha256
from bench.fr.base import TorchFRModel
from bench.fr.iresnet import InputSpec, IResNet, load_state_dict_mapped


class CheckpointFR(TorchFRModel):
    """A PyTorch FR model built from its card and one official checkpoint file (eval mode)."""

    domain = "arcface112"
    #: State-dict keys dropped before loading (classifier heads stored with the backbone).
    ignore_prefixes: tuple[str, ...] = ()

    def __init__(self, card: Card, *, weights: str | Path | None = None, device: str = "cpu", **kwargs: Any) -> None:
        super().__init__(card, weights=weights, device=device, **kwargs)
        self.input_spec = InputSpec.from_card(card)
        path = resolve_weights(card, weights)
        self.weights_sha256 = verified_sha256(card, path)
        # Read the file before building the network: a bad file fails in milliseconds.
        state = self.state_dict_of(self.read(path), path)
        self.module = self.build(self._arch())
        load_state_dict_mapped(self.module, state, source=path, ignore_prefixes=self.ignore_prefixes)
        self.module.to(device).eval()

    def _arch(self) -> dict[str, Any]:
        arch = self.card.get("arch")
        if not isinstance(arch, dict):
            raise DataError(f"{self.card.path}: card lacks the [arch] table")
        return arch

    def read(self, path: Path) -> Any:
        """The object stored in the weight file (default: tensors-only unless ``--trust-weights``)."""
        return load_checkpoint(path, trust=self.trust_weights)

    @abstractmethod
    def build(self, arch: dict[str, Any]) -> nn.Module:
        """The randomly initialised network the card's ``[arch]`` table describes."""

    def state_dict_of(self, checkpoint: Any, path: Path) -> Mapping[str, Any]:
        """The backbone state dict inside the loaded file (default: the file is one)."""
        if not isinstance(checkpoint, Mapping):
            raise DataError(f"{path}: expected a state dict, found a {type(checkpoint).__name__}")
        return checkpoint

    def forward_images(self, images: Tensor) -> Tensor:
        """Unnormalised embeddings of RGB float images ``[N, 3, 112, 112]`` in [0, 255]."""
        return self.module(self.input_spec.apply(images))


class InsightFaceFR(CheckpointFR):
    """An insightface ``arcface_torch`` ``backbone.pth``: plain iResNet state dict, RGB input."""

    def build(self, arch: dict[str, Any]) -> nn.Module:
        return IResNet(arch["layers"], num_features=int(arch.get("num_features", 512)))


@register_fr("arcface")
class ArcFace(InsightFaceFR):
    """insightface ArcFace iResNet-100 trained on MS1MV3 (``ms1mv3_arcface_r100_fp16``)."""


@register_fr("cosface")
class CosFace(InsightFaceFR):
    """insightface CosFace iResNet-100 trained on Glint360K (``glint360k_cosface_r100_fp16_0.1``)."""

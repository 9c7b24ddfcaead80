"""Methods whose score is a function of one PyTorch network's output (MagFace, CR-FIQA, SDD-FIQA).

The checkpoint is found and hashed at construction, so a missing weight file fails with one
line before any alignment work starts.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.cards import Card
from bench.core.errors import DataError
from bench.core.optional import require
from bench.core.weights import resolve_weights, verified_sha256
from bench.fr.base import to_pixels
from bench.methods.base import QualityMethod, ScoreContext


class CheckpointQuality(QualityMethod):
    """A method whose score is a function of one PyTorch network's output."""

    def __init__(self, card: Card, **kwargs: Any) -> None:
        super().__init__(card, **kwargs)
        from bench.core.torch_load import load_checkpoint
        from bench.fr.iresnet import InputSpec

        index = self.weights_index()
        path = resolve_weights(card, self.weights_arg, index)
        self.weights_sha256 = verified_sha256(card, path, index)
        # Read the file before building the network: a bad file fails in milliseconds.
        checkpoint = load_checkpoint(path, trust=self.trust_weights)
        self.net = self.build()
        self.load(self.net, checkpoint, path)
        self.net.eval().to(self.device)
        self.spec = InputSpec.from_card(card)

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
        torch = require("torch", self.name)
        F = require("torch.nn.functional", self.name)

        x = to_pixels(crops, self.device)
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

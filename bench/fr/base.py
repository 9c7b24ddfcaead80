"""The FR model interface: aligned crops in, float32 embeddings out.

``embed`` takes RGB uint8 crops of the model's ``domain`` and returns unnormalised float32
embeddings. PyTorch models also expose ``forward_images`` (differentiable, RGB float pixels
in [0, 255], NCHW) for gradient- and dropout-based FIQA methods and for DifFIQA, which
embeds the very images its diffusion model perturbs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from bench.cards import Card


def to_pixels(crops: np.ndarray, device: Any) -> Any:
    """RGB crops [N, H, W, 3] (uint8, or float in [0, 255]) as a float torch tensor [N, 3, H, W]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(crops)).to(device).permute(0, 3, 1, 2).float()


class FRModel(ABC):
    """One face-recognition model with its preprocessing, as its card describes."""

    registered_name: str
    domain: str = "arcface112"
    weights_sha256: str = "none"

    def __init__(self, card: Card, *, weights: str | Path | None = None, device: str = "cpu", **options: Any) -> None:
        self.card = card
        self.device = device
        self.options = options
        self.weights_arg = weights

    @property
    def name(self) -> str:
        return self.card.name

    @abstractmethod
    def embed(self, crops: np.ndarray) -> np.ndarray:
        """Embeddings float32 [N, D] of RGB uint8 crops [N, H, W, 3] in this model's domain."""

    def provenance(self) -> dict[str, str]:
        """What identifies this model's outputs: name, version, weights hash, domain."""
        return {"fr": self.name, "fr_version": str(self.card.get("version")), "fr_weights_sha256": self.weights_sha256, "fr_domain": self.domain}


class TorchFRModel(FRModel):
    """An FR model that is a differentiable PyTorch module."""

    module: Any  # torch.nn.Module, set by subclasses

    @abstractmethod
    def forward_images(self, images: Any) -> Any:
        """Unnormalised embeddings (torch [N, D]) of RGB float images [N, 3, H, W] in [0, 255].

        Colour order and normalisation of the model happen inside, differentiably.
        """

    def embed(self, crops: np.ndarray) -> np.ndarray:
        import torch

        x = to_pixels(crops, self.device)
        with torch.inference_mode():
            return self.forward_images(x).float().cpu().numpy()

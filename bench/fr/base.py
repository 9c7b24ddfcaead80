"""The FR model interface: aligned crops in, float32 embeddings out.

``embed`` takes RGB uint8 crops of the model's ``domain`` and returns unnormalised float32
embeddings. With the FR option ``flip`` (declared on the cards of the insightface, AdaFace
and CurricularFace models; default false, the paper does not say) a PyTorch model's ``embed``
returns f(x) + f(hflip(x)): the official evaluation scripts of all three sum the unnormalised
embeddings of the image and its mirror image before L2-normalising (arcface_torch
``eval/verification.py`` and ``eval_ijbc.py``, AdaFace ``fuse_features_with_norm``,
CurricularFace ``perform_val(tta=True)``). PyTorch models also expose ``forward_images`` (differentiable, RGB float pixels
in [0, 255], NCHW) for gradient- and dropout-based FIQA methods and for DifFIQA, which
embeds the very images its diffusion model perturbs.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.cards import Card
from bench.core.optional import require
from bench.core.options import resolve


def to_pixels(crops: np.ndarray, device: Any) -> Any:
    """RGB crops [N, H, W, 3] (uint8, or float in [0, 255]) as a float torch tensor [N, 3, H, W]."""
    torch = require("torch", "a PyTorch FR model")

    return torch.from_numpy(np.ascontiguousarray(crops)).to(device).permute(0, 3, 1, 2).float()


class FRModel(ABC):
    """One face-recognition model with its preprocessing, as its card describes."""

    registered_name: str
    domain: str = "arcface112"
    weights_sha256: str = "none"

    def __init__(self, card: Card, *, weights: str | Path | None = None, device: str = "cpu", trust_weights: bool = False,
                 **options: Any) -> None:
        """``options``: values of the card's declared options (text or typed; see bench.core.options).

        ``trust_weights`` lets weight files that need full unpickling load (``--trust-weights``).
        """
        self.card = card
        self.device = device
        # Every declared option, typed, defaults filled: models read self.options[name].
        resolved = resolve(card, options)
        self.options = resolved.values
        self.non_default_options = resolved.non_default
        self.weights_arg = weights
        self.trust_weights = trust_weights

    @property
    def name(self) -> str:
        return self.card.name

    @abstractmethod
    def embed(self, crops: np.ndarray) -> np.ndarray:
        """Embeddings float32 [N, D] of RGB uint8 crops [N, H, W, 3] in this model's domain."""

    def provenance(self) -> dict[str, str]:
        """What identifies this model's outputs: name, version, weights hash, domain, and options.

        ``fr_options`` (canonical JSON of the options that differ from their defaults) is
        present only when some do, so runs on the defaults keep the identity they always had.
        """
        prov = {"fr": self.name, "fr_version": str(self.card.get("version")), "fr_weights_sha256": self.weights_sha256,
                "fr_domain": self.domain}
        if self.non_default_options:
            # The same text as a results row's fr_options column (bench.results.table.canonical_options).
            prov["fr_options"] = json.dumps(self.non_default_options, sort_keys=True, separators=(",", ":"))
        return prov


class TorchFRModel(FRModel):
    """An FR model that is a differentiable PyTorch module."""

    module: Any  # torch.nn.Module, set by subclasses

    @abstractmethod
    def forward_images(self, images: Any) -> Any:
        """Unnormalised embeddings (torch [N, D]) of RGB float images [N, 3, H, W] in [0, 255].

        Colour order and normalisation of the model happen inside, differentiably.
        """

    def embed(self, crops: np.ndarray) -> np.ndarray:
        torch = require("torch", "a PyTorch FR model")

        x = to_pixels(crops, self.device)
        with torch.inference_mode():
            emb = self.forward_images(x).float()
            if self.options.get("flip", False):
                emb = emb + self.forward_images(x.flip(3)).float()
            return emb.cpu().numpy()


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1)

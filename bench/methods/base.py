"""The FIQA method interface: crops (and optionally an FR model) in, one score per image out.

Scores are always oriented higher = better quality inside the harness. A method whose native
score is lower-is-better says so on its card (``higher_is_better = false``) and the runner
negates it; nothing is assumed by default.
"""

from __future__ import annotations

import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from bench.core.cards import Card
from bench.core.errors import BenchError
from bench.core.optional import require
from bench.core.options import resolve
from bench.datasets.base import FaceDataset
from bench.fr.base import FRModel, TorchFRModel


@dataclass
class ScoreContext:
    """What a method may use while scoring one dataset."""

    dataset: FaceDataset
    fr: FRModel | None
    crops: Any  # bench.datasets.crops.CropStore in the method's domain
    device: str = "cpu"
    seed: int = 0
    batch_size: int = 32
    cache_dir: Path = Path(".")
    embeddings: Callable[[], np.ndarray] | None = None  # all-dataset FR embeddings, lazily
    progress: bool = True
    score_file: Path | None = None  # where the cell's scores go; methods may write files beside it
    embeddings_fr: FRModel | None = None  # the FR model that made ``embeddings`` (the evaluation FR)

    def clean_embeddings(self, indices: np.ndarray) -> np.ndarray | None:
        """The cached embeddings float32 [N, D] of images ``indices`` when they are what the quality
        FR model ``fr`` computes from their crops (:func:`same_computation`), else None.

        Methods that embed the clean image with the quality FR model read these instead of a
        second forward pass of the same network.
        """
        if self.embeddings is None or self.fr is None or self.embeddings_fr is None:
            return None
        if not same_computation(self.embeddings_fr, self.fr):
            return None
        return np.ascontiguousarray(self.embeddings()[indices], dtype=np.float32)


def same_computation(made_by: FRModel, quality: FRModel) -> bool:
    """Whether embeddings ``made_by`` one FR model are what ``quality``'s ``forward_images`` gives
    on the same crops: one weight file (sha256, e.g. ``dlib`` and ``dlib-torch``), one crop
    domain, and no option on either (an option such as ``flip`` changes what ``embed`` returns).
    Two computations of one network differ by float rounding only.
    """
    return (made_by.weights_sha256 != "none" and made_by.weights_sha256 == quality.weights_sha256
            and made_by.domain == quality.domain and not made_by.non_default_options
            and not quality.non_default_options)


@dataclass
class ScoreResult:
    """Native scores (the method's own orientation) and per-image seconds per batch."""

    scores: np.ndarray
    seconds_per_image: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


class QualityMethod(ABC):
    """A registered FIQA method. Subclasses implement :meth:`score_batch`."""

    registered_name: str
    # The runner scores in batches of --batch-size images and checkpoints each; methods that
    # score a whole set at once and cheaply (the mocks) turn that off.
    checkpoint_batches: bool = True

    def __init__(self, card: Card, *, weights: str | Path | None = None, device: str = "cpu", seed: int = 0,
                 trust_weights: bool = False, **options: Any) -> None:
        """``options``: values of the card's declared options (text or typed; see bench.core.options).

        ``trust_weights`` lets weight files that need full unpickling load (``--trust-weights``).
        """
        self.card = card
        self.device = device
        self.seed = seed
        # Every declared option, typed, defaults filled: methods read self.options[name].
        self.options = resolve(card, options).values
        self.weights_arg = weights
        self.trust_weights = trust_weights
        self.weights_sha256 = "none"

    @property
    def name(self) -> str:
        return self.card.name

    def weights_index(self) -> int:
        """Which ``[[weights]]`` entry of the card this method loads (variants override this)."""
        return 0

    def weights_file(self) -> Path | None:
        """The weight file this method loads, or None when its card declares none.

        Resolved before any heavy work (a missing file fails at once, naming it), and hashed
        into the setup its scores are stored with, even by methods that load it lazily.
        """
        from bench.core.weights import expected_weights, resolve_weights

        if not expected_weights(self.card):
            return None
        return resolve_weights(self.card, self.weights_arg, self.weights_index())

    @property
    def needs_fr(self) -> bool:
        """Whether scores depend on the FR model (then score files are keyed by it too)."""
        return bool(self.card.get("needs_fr", False))

    def domain(self, fr: FRModel | None) -> str:
        """Crop domain this method scores: its card's ``input.domain``, or the FR model's."""
        wanted = self.card.get("input", {}).get("domain", "fr")
        if wanted == "fr":
            return fr.domain if fr is not None else "arcface112"
        return str(wanted)

    @abstractmethod
    def score_batch(self, crops: np.ndarray, indices: np.ndarray, ctx: ScoreContext) -> np.ndarray:
        """Native scores float64 [N] for RGB uint8 crops [N, H, W, 3] of images ``indices``."""

    def score_dataset(self, indices: np.ndarray, ctx: ScoreContext) -> ScoreResult:
        """Score the images ``indices`` in batches; the first batch is warm-up, not timed."""
        scores = np.empty(len(indices), dtype=np.float64)
        per_image: list[float] = []
        starts = range(0, len(indices), ctx.batch_size)
        for k, start in enumerate(tqdm(starts, desc=f"score {self.name}", unit="batch", disable=not ctx.progress)):
            idx = indices[start : start + ctx.batch_size]
            crops = ctx.crops.get(idx)
            t0 = time.perf_counter()
            scores[start : start + len(idx)] = self.score_batch(crops, idx, ctx)
            synchronise(ctx.device)
            if k > 0 or len(starts) == 1:
                per_image.append((time.perf_counter() - t0) / len(idx))
        return ScoreResult(scores=scores, seconds_per_image=per_image)


def synchronise(device: str) -> None:
    """Wait for queued GPU work so that timings measure it (no-op on CPU)."""
    if device.startswith("cuda"):
        torch = require("torch", "a CUDA device")

        torch.cuda.synchronize()


def image_seed(seed: int, image_id: str) -> int:
    """A 63-bit seed from (method seed, image id): per-image randomness independent of batching."""
    return int(np.random.SeedSequence([seed, zlib.crc32(image_id.encode())]).generate_state(1, np.uint64)[0] >> 1)


def require_torch_fr(fr: FRModel | None, method: str) -> TorchFRModel:
    """The FR model as a differentiable PyTorch model, or a one-line error saying why not."""
    if fr is None:
        raise BenchError(f"{method} needs an FR model (pass --fr)")
    if not isinstance(fr, TorchFRModel):
        raise BenchError(f"{method} needs a differentiable PyTorch FR model; {fr.name!r} is not one (try --quality-fr dlib-torch)")
    return fr


def require_split_fr(fr: FRModel | None, method: str) -> FRModel:
    """The FR model when its last layer can be split off for dropout (SER-FIQ): a PyTorch FR model
    (its last Linear is found) or any model stating the split with ``embedding_head()``, ONNX ones
    included; no gradient is needed. Otherwise a one-line error saying why not."""
    if fr is None:
        raise BenchError(f"{method} needs an FR model (pass --fr)")
    if not isinstance(fr, TorchFRModel) and not callable(getattr(fr, "embedding_head", None)):
        raise BenchError(f"{method} needs a differentiable PyTorch FR model or one with embedding_head() "
                         f"(its last layer split off); {fr.name!r} is neither "
                         "(try --quality-fr dlib-torch or --quality-fr sface)")
    return fr

"""Distilling DifFIQA into a quality regressor: DifFIQA(R) (IJCB 2023) and eDifFIQA (TBIOM 2024).

Both put a head on an FR backbone's features and fine-tune on DifFIQA scores min-max
normalised to [0, 1]; images sorted by label, every 10th held out for validation. Defaults
are the official configurations (DifFIQA ``diffiqa(r)/configs``, eDifFIQA ``configs``):
backbone CosFace iResNet-100, batch 128, 1 epoch for DifFIQA(R) and 3 for eDifFIQA, Adam with
the head at lr 1e-3 and the last ``backbone_tensors`` = 100 parameter tensors of the backbone
at 1e-4, gradient-norm clip 5 over all the model's parameters, AMP on CUDA; after each epoch
the checkpoint is kept when the validation loss (mean of the per-batch means) is the best yet.

Backbone tensors outside the optimiser: the official trainers leave them trainable
(``requires_grad``) but not optimised, so they receive gradients that ``optimizer.zero_grad()``
never clears (it clears only the optimiser's tensors) and that GradScaler never unscales;
these accumulated gradients count in the clip norm and shrink the clip factor of the trained
tensors as training goes on. We do the same by default (``freeze_rest=False``), since it
changes the updates; ``freeze_rest=True`` (``--freeze-rest``) freezes them instead, which
saves the backward pass through the frozen layers and clips over the trained tensors only.

* ``diffiqa-r``: Linear(D → 1), L1 loss.
* ``ediffiqa``: MLP D → 1024 → GELU → 1. Label optimisation: identity centres are the mean
  teacher embeddings of each identity's images within the top ``beta`` = 20 % of labels
  (identities with fewer than 10 such images are dropped from training, and the labels are
  min-max normalised over the images kept, as the official ``prepare_data.py`` then
  ``dataset.py`` do); the training label of an image becomes
  clamp(q − ε·(1 − cos(f, centre)), 0, 1), ε = 0.5, with f the student's current features.
  Loss θ·(1 − cos(f, f_teacher)) + (1 − θ)·L1, θ = 0.5, with f_teacher the frozen teacher's
  embedding of the same image (representation consistency). The validation loss that picks
  the kept checkpoint uses the unadjusted labels q (official ``validate``).

The model is :class:`DistilledModel` (pixels in [0, 255] → features, quality); the head's
input width follows the backbone's feature width (512 for iResNets, 128 for dlib).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from bench.core.errors import BenchError, DataError, MissingWeightsError
from bench.core.io import atomic_path
from bench.core.optional import require
from bench.fr.base import to_pixels

Kind = Literal["diffiqa-r", "ediffiqa"]
FORMAT = "fiqa-bench/distill-v1"
#: Training epochs of the official configurations.
OFFICIAL_EPOCHS: dict[str, int] = {"diffiqa-r": 1, "ediffiqa": 3}
#: The FR backbone of the official trainers (``load_cosface`` / ``backbone_model: "cosface"``).
OFFICIAL_FR = "cosface"


class MLPHead(nn.Module):
    """eDifFIQA's quality head (parameter names ``l1``, ``l2`` as in the official release)."""

    def __init__(self, in_dim: int, hidden: int = 1024) -> None:
        super().__init__()
        self.l1 = nn.Linear(in_dim, hidden)
        self.ac = nn.GELU()
        self.l2 = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l2(self.ac(self.l1(x)))


def make_head(kind: Kind, in_dim: int) -> nn.Module:
    """The quality head of ``kind`` for features of width ``in_dim``."""
    if kind == "diffiqa-r":
        return nn.Linear(in_dim, 1)
    if kind == "ediffiqa":
        return MLPHead(in_dim)
    raise BenchError(f"unknown distillation kind {kind!r} (diffiqa-r or ediffiqa)")


class PixelBackbone(nn.Module):
    """An FR network (``net``, the parameter owner) behind a pixels → features function."""

    def __init__(self, net: nn.Module, to_features: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.net = net
        self._to_features = to_features

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self._to_features(pixels)


class DistilledModel(nn.Module):
    """Backbone + quality head: RGB pixels [N, 3, H, W] in [0, 255] → (features [N, D], quality [N])."""

    def __init__(self, backbone: PixelBackbone, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.backbone(pixels).float()
        return feat, self.head(feat).squeeze(1)


def fr_backbone(fr: Any) -> PixelBackbone:
    """A trainable backbone from a TorchFRModel (its ``module`` and ``forward_images``)."""
    if not hasattr(fr, "forward_images") or not isinstance(getattr(fr, "module", None), nn.Module):
        raise BenchError(f"FR model {fr.name!r} is not a PyTorch model; distillation needs one (e.g. dlib-torch)")
    return PixelBackbone(fr.module, fr.forward_images)


def normalise_labels(q: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Min-max normalised labels in [0, 1] and the (min, max) used."""
    lo, hi = float(np.min(q)), float(np.max(q))
    if hi <= lo:
        raise DataError("all teacher quality scores are equal; nothing to distil")
    return (q - lo) / (hi - lo), lo, hi


def split_every_nth(q: np.ndarray, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices: items sorted by label, every ``n``-th (from the first) held out."""
    order = np.argsort(q, kind="stable")
    val = order[::n]
    return np.setdiff1d(order, val), np.sort(val)


def identity_centres(emb: np.ndarray, q: np.ndarray, identities: np.ndarray, beta: float = 0.2,
                     min_images: int = 10) -> tuple[dict[Any, np.ndarray], np.ndarray]:
    """eDifFIQA centres: mean embedding of each identity's top-``beta`` images; and the kept mask.

    The threshold is the label at rank int(beta·N) of the descending order (as the official
    data preparation); identities with fewer than ``min_images`` images at or above it are
    dropped (mask False for all their images).
    """
    threshold = np.sort(q)[::-1][min(int(beta * len(q)), len(q) - 1)]
    centres: dict[Any, np.ndarray] = {}
    for ident in np.unique(identities):
        chosen = (identities == ident) & (q >= threshold)
        if chosen.sum() >= min_images:
            centres[ident] = emb[chosen].mean(axis=0)
    keep = np.array([i in centres for i in identities], dtype=bool)
    return centres, keep


def adjusted_labels(q: torch.Tensor, feat: torch.Tensor, centre: torch.Tensor, epsilon: float = 0.5) -> torch.Tensor:
    """clamp(q − ε·(1 − cos(f, centre)), 0, 1)."""
    cos = nn.functional.cosine_similarity(feat.float(), centre.float(), dim=1)
    return (q - epsilon * (1 - cos)).clamp(0, 1)


def distill_loss(kind: Kind, model: DistilledModel, pixels: torch.Tensor, q: torch.Tensor,
                 teacher: torch.Tensor | None = None, centre: torch.Tensor | None = None,
                 epsilon: float = 0.5, theta: float = 0.5) -> torch.Tensor:
    """The loss of one batch (see the module doc); eDifFIQA without ``centre`` uses the labels unadjusted."""
    feat, pred = model(pixels)
    if kind == "diffiqa-r":
        return nn.functional.l1_loss(pred.float(), q)
    assert teacher is not None
    if centre is None:
        target = q
    else:
        with torch.no_grad():
            target = adjusted_labels(q, feat.detach(), centre, epsilon)
    consistency = (1 - nn.functional.cosine_similarity(feat, teacher.float(), dim=1)).mean()
    return theta * consistency + (1 - theta) * nn.functional.l1_loss(pred.float(), target)


def make_optimizer(model: DistilledModel, lr_head: float = 1e-3, lr_backbone: float = 1e-4,
                   backbone_tensors: int = 100, freeze_rest: bool = False) -> torch.optim.Adam:
    """Adam over the head and the last ``backbone_tensors`` backbone parameter tensors.

    The other backbone tensors are not optimised; ``freeze_rest`` also stops their gradients
    (not official: see the module doc).
    """
    params = [p for p in model.backbone.net.parameters()]
    tail = params[-backbone_tensors:] if backbone_tensors > 0 else []
    if freeze_rest:
        tail_ids = {id(p) for p in tail}
        for p in params:
            p.requires_grad_(id(p) in tail_ids and p.requires_grad)
    groups: list[dict[str, Any]] = [{"params": list(model.head.parameters()), "lr": lr_head}]
    trainable = [p for p in tail if p.requires_grad]
    if trainable:
        groups.append({"params": trainable, "lr": lr_backbone})
    return torch.optim.Adam(groups)


@dataclass
class DistillResult:
    """Where the best checkpoint went, its validation loss, and how the run went."""

    checkpoint: Path
    best_val_loss: float
    epochs: int
    n_train: int
    n_val: int
    seconds: float


@torch.no_grad()
def _embed(backbone: PixelBackbone, crops: np.ndarray, batch: int, device: str) -> np.ndarray:
    backbone.eval()
    return np.concatenate([backbone(to_pixels(crops[i : i + batch], device)).float().cpu().numpy()
                           for i in range(0, len(crops), batch)])


def save_distilled(path: Path, model: DistilledModel, meta: dict[str, Any]) -> None:
    """Our checkpoint: backbone and head states plus what is needed to rebuild them."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **meta, "backbone": model.backbone.net.state_dict(),
                    "head": model.head.state_dict()}, tmp)


def train_distill_arrays(
    crops: np.ndarray, quality: np.ndarray, identities: np.ndarray, fr: Any, out: str | Path, *,
    kind: Kind = "diffiqa-r", epochs: int | None = None, batch_size: int = 128, lr_head: float = 1e-3,
    lr_backbone: float = 1e-4, backbone_tensors: int = 100, freeze_rest: bool = False, val_every: int = 10,
    beta: float = 0.2, min_images: int = 10, epsilon: float = 0.5, theta: float = 0.5, device: str = "cpu",
    amp: bool = True, seed: int = 0, progress: bool = True,
) -> DistillResult:
    """Distil teacher scores ``quality`` [N] of crops [N, H, W, 3] (the FR model's domain) into ``fr``.

    ``identities`` [N] serve eDifFIQA's centres. See :func:`train_distill` for the arguments.
    """
    start = time.monotonic()
    epochs = OFFICIAL_EPOCHS[kind] if epochs is None else epochs
    torch.manual_seed(seed)
    out = Path(out)
    raw = np.asarray(quality, dtype=np.float64)
    backbone = fr_backbone(fr)
    teacher = _embed(backbone, crops, batch_size, device)
    model = DistilledModel(backbone, make_head(kind, teacher.shape[1])).to(device)
    keep = np.ones(len(raw), dtype=bool)
    centre_of = np.zeros_like(teacher)
    if kind == "ediffiqa":
        # The top-beta threshold is taken on the raw scores, before normalisation (official prepare_data).
        centres, keep = identity_centres(teacher, raw, np.asarray(identities), beta, min_images)
        if not keep.any():
            raise DataError(f"no identity has {min_images} images in the top {beta:.0%} of labels; eDifFIQA has no centres")
        for i in np.flatnonzero(keep):
            centre_of[i] = centres[identities[i]]
    items = np.flatnonzero(keep)
    q = np.zeros_like(raw)
    q[items], lo, hi = normalise_labels(raw[items])
    tr, va = split_every_nth(q[items], val_every)
    train_idx, val_idx = items[tr], items[va]
    opt = make_optimizer(model, lr_head, lr_backbone, backbone_tensors, freeze_rest)
    use_amp = amp and device.startswith("cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    rng = np.random.default_rng(seed)
    meta = {"kind": kind, "fr": fr.name, "domain": fr.domain, "feature_dim": int(teacher.shape[1]),
            "label_min": lo, "label_max": hi, "n_train": int(len(train_idx)), "n_val": int(len(val_idx))}

    def batch_loss(idx: np.ndarray, adjust: bool = True) -> torch.Tensor:
        t = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float32)).to(device)  # noqa: E731
        with torch.autocast("cuda", enabled=use_amp):
            return distill_loss(kind, model, to_pixels(crops[idx], device), t(q[idx]), t(teacher[idx]),
                                t(centre_of[idx]) if adjust else None, epsilon, theta)

    best = float("inf")
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(train_idx)
        bar = tqdm(range(0, len(order), batch_size), desc=f"distill {kind} epoch {epoch + 1}/{epochs}", disable=not progress)
        for s in bar:
            loss = batch_loss(order[s : s + batch_size])
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            scaler.step(opt)
            scaler.update()
            bar.set_postfix(loss=f"{loss.item():.4f}")
        model.eval()
        with torch.no_grad():
            losses = [batch_loss(val_idx[s : s + batch_size], adjust=False).item()
                      for s in range(0, len(val_idx), batch_size)]
        val = float(np.mean(losses)) if losses else float("inf")
        if val < best or not out.exists():
            best = val
            save_distilled(out, model, {**meta, "epoch": epoch + 1, "val_loss": val})
    return DistillResult(out, best, epochs, len(train_idx), len(val_idx), time.monotonic() - start)


def read_labels(path: Path) -> tuple[list[str], np.ndarray, list[str] | None]:
    """Teacher labels: a bench score file, or a CSV ``image_id,quality[,identity]``."""
    if not path.is_file():
        raise DataError(f"{path}: teacher label file not found")
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        if not rows or not {"image_id", "quality"} <= set(rows[0]):
            raise DataError(f"{path}: expected a CSV with columns image_id,quality[,identity]")
        ids = [r["image_id"] for r in rows]
        idents = [r["identity"] for r in rows] if "identity" in rows[0] else None
        try:
            quality = np.array([float(r["quality"]) for r in rows])
        except ValueError as exc:
            raise DataError(f"{path}: a quality value is not a number ({exc})") from None
        return ids, quality, idents
    from bench.core.score_store import read_scores

    ids, scores, _ = read_scores(path)
    return list(ids), np.asarray(scores, dtype=np.float64), None


def crops_by_id(array: Path, ids: list[str]) -> np.ndarray:
    """Rows of a ``bench crops`` array (``.npy`` with its ``.ids.txt``) for ``ids``, in that order."""
    id_file = array.with_suffix(".ids.txt")
    if not id_file.is_file():
        raise DataError(f"{array}: no {id_file.name} beside it naming its rows (write both with `bench crops`)")
    row = {image_id: k for k, image_id in enumerate(id_file.read_text(encoding="utf-8").splitlines())}
    missing = [i for i in ids if i not in row]
    if missing:
        raise DataError(f"{id_file}: {len(missing)} labelled image(s) have no crop, e.g. {missing[0]}")
    return np.asarray(np.load(array, mmap_mode="r")[[row[i] for i in ids]])


def train_distill(
    labels: str | Path, images: str | Path, out: str | Path, *, kind: Kind = "diffiqa-r", fr: str = OFFICIAL_FR,
    fr_weights: str | Path | None = None, **kwargs: Any,
) -> DistillResult:
    """Train DifFIQA(R) or eDifFIQA from teacher scores; returns the best checkpoint path.

    Args:
        labels: DifFIQA scores — a score file written by ``bench run --method diffiqa`` or a
            CSV ``image_id,quality[,identity]`` (identity defaults to the id's parent folder).
        images: folder holding each ``image_id`` as an aligned crop of the FR model's domain
            (resized to the crop size of the first image if sizes differ), or a ``.npy``
            crop array written by ``bench crops`` (rows named by its ``.ids.txt``).
        out: checkpoint to write (atomic; the best validation epoch).
        kind: ``diffiqa-r`` (Linear head, L1) or ``ediffiqa`` (MLP head, label optimisation
            and representation consistency).
        fr, fr_weights: registered PyTorch FR model used as backbone (and teacher); default
            CosFace, as the official trainers.
        **kwargs: epochs (None: 1 for diffiqa-r, 3 for ediffiqa), batch_size (128), lr_head (1e-3),
            lr_backbone (1e-4), backbone_tensors (100), freeze_rest (False), val_every (10),
            beta (0.2), min_images (10),
            epsilon (0.5), theta (0.5), device ("cpu"), amp (True: used on CUDA only),
            seed (0), progress (True).
    """
    cv2 = require("cv2", "distillation")

    from bench.core.registry import create
    from bench.datasets.base import read_rgb

    labels, images = Path(labels), Path(images)
    ids, quality, idents = read_labels(labels)
    try:
        model = create("fr", fr, weights=fr_weights, device=kwargs.get("device", "cpu"))
    except MissingWeightsError as exc:
        if fr != OFFICIAL_FR:
            raise
        raise MissingWeightsError(f"{exc} — CosFace is the official {kind} backbone; give its weights with "
                                  "--fr-weights, or pick another PyTorch backbone with --fr (e.g. --fr dlib-torch)") from None
    if images.suffix == ".npy":
        crops = crops_by_id(images, ids)
    else:
        first = read_rgb(images / ids[0])
        size = first.shape[0]
        crops = np.stack([c if c.shape[:2] == (size, size) else cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA)
                          for c in (read_rgb(images / i) for i in ids)])
    identities = np.array(idents if idents is not None else [str(Path(i).parent) for i in ids])
    return train_distill_arrays(crops, quality, identities, model, out, kind=kind, **kwargs)

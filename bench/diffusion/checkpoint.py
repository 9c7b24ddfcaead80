"""DDPM checkpoints: our own resumable format, and the official DifFIQA release layout.

Our file (``format = "fiqa-bench/ddpm-v1"``) records the UNet config, the crop domain and
crop size it was trained on, the schedule (``timesteps``, ``t_max``), the raw and EMA
weights, the optimiser state and the step, so training resumes and scoring can refuse a
checkpoint made for another FR model's crops. The official file (a ``Trainer.save`` dict with
``model`` = GaussianDiffusion state and ``ema`` = ema_pytorch state) is recognised by its
keys and read as the paper's configuration: width 128, mults (1, 2, 4, 8), 112×112
``arcface112`` crops, T = 1000, T′ = 100.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench.core import torch_load
from bench.core.errors import BenchError, DataError
from bench.core.io import atomic_path
from bench.diffusion.unet import UNet, UNetConfig

FORMAT = "fiqa-bench/ddpm-v1"
DOMAIN_SIZES = {"arcface112": 112, "dlib150": 150}
OFFICIAL_DOMAIN = "arcface112"


@dataclass
class DDPMCheckpoint:
    """Everything needed to resume training or to score with a trained denoiser."""

    config: UNetConfig
    domain: str
    crop_size: int
    timesteps: int = 1000
    t_max: int = 100
    step: int = 0
    model: dict[str, torch.Tensor] = field(default_factory=dict)
    ema: dict[str, torch.Tensor] = field(default_factory=dict)
    opt: dict[str, Any] | None = None
    ema_updates: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    def to_file_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "config": self.config.to_dict(), "domain": self.domain, "crop_size": self.crop_size,
            "timesteps": self.timesteps, "t_max": self.t_max, "schedule": "cosine", "objective": "pred_x0",
            "step": self.step, "model": self.model, "ema": self.ema, "opt": self.opt,
            "ema_updates": self.ema_updates, "info": self.info,
        }


def model_size(crop_size: int, levels: int) -> int:
    """UNet input side for crops of ``crop_size``: the next multiple of 2**(levels − 1).

    A crop that is a few pixels short (dlib's 150 → 152) is reflect-padded and cropped back,
    which changes no pixel of the crop; see :func:`to_model`.
    """
    factor = 2 ** (levels - 1)
    return -(-crop_size // factor) * factor


def to_model(x: torch.Tensor, size: int) -> torch.Tensor:
    """Crops [N, C, H, H] in [−1, 1] → UNet input [N, C, size, size].

    Reflect-pad when the crop is up to 15 px smaller (lossless round trip), else resize
    (bilinear, antialiased) — e.g. a small CPU model at 64 px scoring 112-px crops.
    """
    h = x.shape[-1]
    if h == size:
        return x
    if 0 < size - h < 16:
        lo = (size - h) // 2
        return torch.nn.functional.pad(x, (lo, size - h - lo, lo, size - h - lo), mode="reflect")
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def from_model(x: torch.Tensor, crop_size: int) -> torch.Tensor:
    """Inverse of :func:`to_model`: UNet-size images back to crop size."""
    s = x.shape[-1]
    if s == crop_size:
        return x
    if 0 < s - crop_size < 16:
        lo = (s - crop_size) // 2
        return x[..., lo : lo + crop_size, lo : lo + crop_size]
    return torch.nn.functional.interpolate(x, size=(crop_size, crop_size), mode="bilinear", antialias=True, align_corners=False)


def save_checkpoint(path: str | Path, ckpt: DDPMCheckpoint) -> None:
    """Write ``ckpt`` atomically (temporary file + rename)."""
    with atomic_path(path) as tmp:
        torch.save(ckpt.to_file_dict(), tmp)


def _strip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _from_official(data: dict[str, Any], path: Path) -> DDPMCheckpoint:
    raw = _strip(data["model"], "model.")
    ema = _strip(data.get("ema") or {}, "ema_model.model.")
    if not raw:
        raise DataError(f"{path}: official DifFIQA checkpoint without UNet weights under 'model.'")
    width = int(raw["init_conv.weight"].shape[0])
    levels = len({k.split(".")[1] for k in raw if k.startswith("downs.")})
    mults = tuple(int(raw[f"downs.{i}.3.weight"].shape[0]) // width for i in range(levels))
    config = UNetConfig(width=width, mults=mults, image_size=112)
    return DDPMCheckpoint(config=config, domain=OFFICIAL_DOMAIN, crop_size=112, step=int(data.get("step", 0)),
                          model=raw, ema=ema, info={"source": "official DifFIQA release layout"})


def load_checkpoint(path: str | Path, trust: bool = False) -> DDPMCheckpoint:
    """Read our checkpoint format or an official DifFIQA ``model.pt``."""
    path = Path(path)
    data = torch_load.load_checkpoint(path, trust=trust)
    if not isinstance(data, dict):
        raise DataError(f"{path}: checkpoint is not a dict")
    if data.get("format") == FORMAT:
        return DDPMCheckpoint(
            config=UNetConfig.from_dict(data["config"]), domain=data["domain"], crop_size=int(data["crop_size"]),
            timesteps=int(data["timesteps"]), t_max=int(data["t_max"]), step=int(data["step"]), model=data["model"],
            ema=data["ema"], opt=data.get("opt"), ema_updates=int(data.get("ema_updates", 0)), info=data.get("info", {}))
    if "model" in data and any(k.startswith("model.init_conv") for k in data["model"]):
        return _from_official(data, path)
    raise DataError(f"{path}: neither a fiqa-bench DDPM checkpoint nor an official DifFIQA model.pt")


WEIGHTS_KEYS = ("model", "ema")


def load_denoiser(path: str | Path, device: str = "cpu", weights_key: str = "model",
                  trust: bool = False) -> tuple[UNet, DDPMCheckpoint]:
    """The UNet of a checkpoint in eval mode on ``device``.

    ``weights_key`` picks the raw weights (``"model"``, what the official inference scores
    with: ``Trainer.load`` puts ``data['model']`` into ``trainer.model``) or their EMA copy
    (``"ema"``). ``trust`` lets a file that needs full unpickling load (``--trust-weights``).
    """
    if weights_key not in WEIGHTS_KEYS:
        raise BenchError(f"weights_key {weights_key!r} is not one of {', '.join(WEIGHTS_KEYS)}")
    ckpt = load_checkpoint(path, trust=trust)
    state = ckpt.ema if weights_key == "ema" else ckpt.model
    if not state:
        raise DataError(f"{path}: checkpoint holds no {weights_key!r} weights; use weights_key="
                        f"{'model' if weights_key == 'ema' else 'ema'}")
    net = UNet(ckpt.config)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise BenchError(f"{path}: weights do not fit the recorded UNet config ({str(exc).splitlines()[0]})") from None
    return net.to(device).eval(), ckpt

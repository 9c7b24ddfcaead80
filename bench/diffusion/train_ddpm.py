"""Extended DDPM training (DifFIQA Sec. 3.3): learn to restore clean faces from degraded, noisy ones.

For a clean crop x and a degraded copy d(x), a time t ~ U{0, …, T′−1} gives the input
x′_t = (1 − a)·x + a·d(x) with a = sin(t/T′·π/2), noised to x_t by the forward process;
the UNet predicts x (the clean crop) under an L2 loss; atomic resumable checkpoints.

Recipes (``recipe``): ``official`` is the official trainer's (DifFIQA c0bc008,
diffiqa/configs/train_config.yaml and diffusion_base/diff_main.py): micro-batches of 16 with
4-step gradient accumulation (effective batch 64), Adam lr 8e-5 with betas (0.9, 0.99), and
an ema_pytorch EMA (decay 0.995) updated every 10 optimiser steps — a plain copy of the
weights for the first 100 steps, then decay min(0.995, 1 − (1 + s − 100)^(−2/3)) at step s.
``cheap`` is our earlier recipe: no accumulation, betas (0.9, 0.999), an EMA updated every
step with decay min(0.995, (1 + n)/(10 + n)). Degradations (``degradation``): ``bsrgan``
(the official sequence, bench.diffusion.bsrgan) or ``cheap`` (bench.diffusion.degrade).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from bench.core.errors import BenchError, DataError
from bench.core.io import atomic_path
from bench.datasets.base import read_rgb
from bench.diffusion.checkpoint import (
    DOMAIN_SIZES,
    DDPMCheckpoint,
    load_checkpoint,
    model_size,
    save_checkpoint,
    to_model,
)
from bench.diffusion.degrade import degrader
from bench.diffusion.schedule import CosineSchedule
from bench.diffusion.unet import UNet, UNetConfig

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class Recipe:
    """Optimisation settings that differ between the official trainer and our cheap one."""

    grad_accum: int
    adam_betas: tuple[float, float]
    ema_every: int
    ema_copy_steps: int  # EMA updates up to this step copy the weights (official: 100)
    ema_ramp: str  # "power" (ema_pytorch, power 2/3) or "linear" ((1+n)/(10+n))


RECIPES = {
    "official": Recipe(grad_accum=4, adam_betas=(0.9, 0.99), ema_every=10, ema_copy_steps=100, ema_ramp="power"),
    "cheap": Recipe(grad_accum=1, adam_betas=(0.9, 0.999), ema_every=1, ema_copy_steps=-1, ema_ramp="linear"),
}


def find_images(folder: Path) -> list[Path]:
    """All image files under ``folder`` (recursive), sorted for reproducibility."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DataError(f"{folder}: no image files ({', '.join(IMAGE_EXTENSIONS)}) found")
    return files


class FaceCrops(Dataset):
    """Training pairs (degraded, clean) as uint8 HWC arrays of side ``crop_size``.

    ``source`` is a folder of aligned face images, or a ``.npy`` array [N, H, W, 3] uint8
    (e.g. a crop cache). ``centre_fraction`` < 1 first keeps the central square of that
    fraction of the shorter side (for unaligned but centred photos such as LFW).
    """

    def __init__(self, source: Path, crop_size: int, centre_fraction: float = 1.0, seed: int = 0,
                 degradation: str = "bsrgan") -> None:
        self.crop_size = crop_size
        self.degrade = degrader(degradation)
        self.centre_fraction = centre_fraction
        self.seed = seed
        self.array: np.ndarray | None = None
        self.files: list[Path] = []
        if source.suffix == ".npy":
            self.array = np.load(source, mmap_mode="r")
            if self.array.ndim != 4 or self.array.shape[-1] != 3 or self.array.dtype != np.uint8:
                raise DataError(f"{source}: expected uint8 [N, H, W, 3], got {self.array.dtype} {self.array.shape}")
        elif source.is_dir():
            self.files = find_images(source)
        else:
            raise DataError(f"{source}: training data must be a folder of images or a .npy crop array")

    def __len__(self) -> int:
        return len(self.array) if self.array is not None else len(self.files)

    def clean(self, index: int) -> np.ndarray:
        image = np.asarray(self.array[index]) if self.array is not None else read_rgb(self.files[index])
        if self.centre_fraction < 1.0:
            h, w = image.shape[:2]
            side = int(round(min(h, w) * self.centre_fraction))
            top, left = (h - side) // 2, (w - side) // 2
            image = image[top : top + side, left : left + side]
        if image.shape[0] != self.crop_size or image.shape[1] != self.crop_size:
            image = cv2.resize(image, (self.crop_size, self.crop_size), interpolation=cv2.INTER_AREA)
        return image

    def __getitem__(self, key: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """(degraded, clean) for key (epoch, index): the epoch reseeds flips and degradations."""
        epoch, index = key
        rng = np.random.default_rng([self.seed, epoch, index])
        image = self.clean(index)
        if rng.random() < 0.5:
            image = image[:, ::-1]
        image = np.ascontiguousarray(image)
        return self.degrade(image, rng), image


class StepBatches:
    """Batch keys for optimiser steps ``start`` … ``stop − 1``, a pure function of (seed, step).

    Each epoch is a seeded permutation; step s takes batch s mod (batches per epoch) of
    epoch s // (batches per epoch), so a resumed run sees exactly the data of an
    uninterrupted one.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start: int, stop: int) -> None:
        self.n, self.bs, self.seed, self.start, self.stop = n, min(batch_size, n), seed, start, stop
        self.per_epoch = max(1, n // self.bs)

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self):  # type: ignore[no-untyped-def]
        for step in range(self.start, self.stop):
            epoch, pos = divmod(step, self.per_epoch)
            perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            yield [(epoch, int(i)) for i in perm[pos * self.bs : (pos + 1) * self.bs]]


def _to_unit(batch: torch.Tensor, size: int, device: str) -> torch.Tensor:
    x = batch.to(device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return to_model(x, size)


def extended_loss(net: UNet, schedule: CosineSchedule, clean: torch.Tensor, degraded: torch.Tensor, t_max: int,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """The extended DDPM loss: ‖D(x_t, t) − x‖² with x_t noised from the time-blended degradation."""
    n = clean.shape[0]
    t = torch.randint(0, t_max, (n,), generator=generator).to(clean.device)
    noise = torch.randn(clean.shape, generator=generator).to(clean.device)
    x_t = training_input(schedule, clean, degraded, t, t_max, noise)
    return torch.nn.functional.mse_loss(net(x_t, t).float(), clean)


def training_input(schedule: CosineSchedule, clean: torch.Tensor, degraded: torch.Tensor, t: torch.Tensor, t_max: int,
                   noise: torch.Tensor) -> torch.Tensor:
    """x_t of the extended training: the blend (1 − a)·x + a·d(x), a = sin(t/T′·π/2), noised to t."""
    a = torch.sin(t.float() / t_max * (math.pi / 2)).view(-1, 1, 1, 1)
    return schedule.q_sample((1 - a) * clean + a * degraded, t, noise)


def write_preview(data: Path, out: Path, crop_size: int, *, count: int = 8, t_max: int = 100, timesteps: int = 1000,
                  degradation: str = "bsrgan", centre_fraction: float = 1.0, seed: int = 0) -> tuple[int, int]:
    """A PNG grid of what training sees (cf. the paper's Fig. 3): per image (row), the clean crop,
    its sampled degradation d(x), and the training inputs x_t at t = 0, T′/3, 2T′/3, T′ − 1.

    Deterministic in ``seed`` (images, degradations and noise), so the file is byte-stable.
    Returns the grid's (rows, columns).
    """
    from PIL import Image

    crops = FaceCrops(data, crop_size, centre_fraction, seed, degradation)
    chosen = np.sort(np.random.default_rng(seed).choice(len(crops), min(count, len(crops)), replace=False))
    schedule = CosineSchedule(timesteps)
    times = [0, t_max // 3, 2 * t_max // 3, t_max - 1]
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for index in chosen:
        degraded, clean = (torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 127.5 - 1
                           for a in crops[(0, int(index))])
        cells = [clean, degraded]
        for t in times:
            noise = torch.randn(clean.shape, generator=generator)
            cells.append(training_input(schedule, clean, degraded, torch.tensor([t]), t_max, noise))
        rows.append(torch.cat(cells, dim=3))
    grid = ((torch.cat(rows, dim=2)[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        Image.fromarray(grid).save(tmp, format="PNG")
    return len(rows), 2 + len(times)


def ema_decay_at(step: int, decay: float, recipe: Recipe) -> float | None:
    """The EMA decay applied after optimiser step number ``step`` (0-based); None = no update.

    Decay 0 copies the weights. The official ramp is ema_pytorch's (update_after_step 100,
    inv_gamma 1, power 2/3); it reaches 0.995 after about 2,900 steps.
    """
    if step % recipe.ema_every:
        return None
    if recipe.ema_ramp == "linear":
        return min(decay, (1 + step) / (10 + step))
    if step <= recipe.ema_copy_steps:
        return 0.0
    return min(decay, 1 - (1 + step - recipe.ema_copy_steps) ** (-2 / 3))


@torch.no_grad()
def ema_update(ema: UNet, net: UNet, decay: float) -> None:
    """ema ← decay·ema + (1 − decay)·net (buffers copied)."""
    for pe, p in zip(ema.parameters(), net.parameters(), strict=True):
        pe.lerp_(p.detach(), 1 - decay)
    for be, b in zip(ema.buffers(), net.buffers(), strict=True):
        be.copy_(b)


@dataclass
class TrainResult:
    """What a training call did: where the checkpoint is, the step reached, the last losses."""

    checkpoint: Path
    step: int
    steps_this_run: int
    mean_loss_last_100: float
    seconds: float


def train_ddpm(
    data: str | Path,
    out: str | Path,
    *,
    domain: str = "arcface112",
    crop_size: int | None = None,
    image_size: int | None = None,
    width: int = 128,
    mults: tuple[int, ...] = (1, 2, 4, 8),
    heads: int = 4,
    dim_head: int = 32,
    steps: int = 100_000,
    batch_size: int = 16,
    recipe: str = "official",
    degradation: str = "bsrgan",
    lr: float = 8e-5,
    ema_decay: float = 0.995,
    timesteps: int = 1000,
    t_max: int = 100,
    centre_fraction: float = 1.0,
    device: str = "cpu",
    amp: bool = False,
    workers: int = 0,
    save_every: int = 500,
    max_minutes: float | None = None,
    seed: int = 0,
    progress: bool = True,
    trust_weights: bool = False,
) -> TrainResult:
    """Train (or resume) the DifFIQA denoiser on aligned face crops; returns where it saved.

    Args:
        data: folder of aligned face images (any size, resized to ``crop_size``) or a
            ``.npy`` uint8 array [N, H, W, 3].
        out: checkpoint file; if it exists, training resumes from it (same config required).
        domain: crop domain of the FR model the DDPM will serve (``arcface112``, ``dlib150``);
            scoring refuses an FR model of another domain.
        crop_size: side of the domain's crops (default from the domain: 112 or 150).
        image_size: UNet input side (default: crop size rounded up to a multiple of
            2**(levels−1), reflect-padded; smaller values resize, for cheap CPU models).
        width, mults, heads, dim_head: UNet architecture (paper: 128, (1, 2, 4, 8), 4, 32).
        steps: total optimiser steps to reach (counting resumed ones).
        batch_size, lr, ema_decay: optimisation (paper: micro-batch 16, lr 8e-5, EMA 0.995).
        recipe: ``official`` (accumulation 4, Adam betas (0.9, 0.99), EMA every 10 steps) or
            ``cheap`` (see the module doc).
        degradation: ``bsrgan`` (official sequence) or ``cheap``.
        timesteps, t_max: schedule length T and training range T′ (t uniform in [0, T′)).
        centre_fraction: keep this central fraction of each image first (1 = whole image).
        device, amp: torch device; amp = bfloat16 autocast on CUDA.
        workers: DataLoader worker processes (degradation runs there).
        save_every: checkpoint period in steps (and always at the end).
        max_minutes: stop (and save) after this much wall time.
        seed: seeds initialisation, data order, degradations, times and noise.
        progress: show a tqdm bar with the running loss.
    """
    data, out = Path(data), Path(out)
    if recipe not in RECIPES:
        raise BenchError(f"recipe {recipe!r} is not one of {', '.join(RECIPES)}")
    rec = RECIPES[recipe]
    if crop_size is None:
        if domain not in DOMAIN_SIZES:
            raise BenchError(f"crop domain {domain!r} has no known size; pass crop_size")
        crop_size = DOMAIN_SIZES[domain]
    size = image_size or model_size(crop_size, len(mults))
    config = UNetConfig(width=width, mults=tuple(mults), heads=heads, dim_head=dim_head, image_size=size)
    torch.manual_seed(seed)
    net = UNet(config).to(device)
    ema = UNet(config).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr, betas=rec.adam_betas)
    ckpt = DDPMCheckpoint(config=config, domain=domain, crop_size=crop_size, timesteps=timesteps, t_max=t_max)
    if out.exists():
        ckpt = load_checkpoint(out, trust=trust_weights)
        if (ckpt.config, ckpt.domain, ckpt.crop_size, ckpt.timesteps, ckpt.t_max) != (config, domain, crop_size, timesteps, t_max):
            raise BenchError(f"{out}: existing checkpoint has another config/domain ({ckpt.config}, {ckpt.domain}); "
                             "choose another output file to start afresh")
        if ckpt.info.get("recipe", "cheap") != recipe:
            raise BenchError(f"{out}: existing checkpoint was trained with recipe {ckpt.info.get('recipe', 'cheap')!r}, "
                             f"not {recipe!r}; resume with that recipe or choose another output file")
        net.load_state_dict(ckpt.model)
        ema.load_state_dict(ckpt.ema)
        if ckpt.opt is not None:
            opt.load_state_dict(ckpt.opt)
    else:
        ema.load_state_dict(net.state_dict())
    ema.eval()
    schedule = CosineSchedule(timesteps)
    try:
        ds = FaceCrops(data, crop_size, centre_fraction, seed, degradation)
    except ValueError as exc:
        raise BenchError(f"--degradation: {exc}") from None
    losses: list[float] = []
    start, start_step = time.monotonic(), ckpt.step
    # The file name only: a shipped checkpoint must not carry the training machine's folders.
    ckpt.info.update({"data": Path(data).name, "n_images": len(ds), "centre_fraction": centre_fraction, "batch_size": batch_size, "lr": lr,
                      "recipe": recipe, "degradation": degradation})

    def save() -> None:
        ckpt.model, ckpt.ema, ckpt.opt = net.state_dict(), ema.state_dict(), opt.state_dict()
        save_checkpoint(out, ckpt)

    bar = tqdm(total=steps, initial=ckpt.step, desc="train ddpm", unit="step", disable=not progress)
    net.train()
    # Micro-batches are numbered step·accum + j, so a resumed run sees the data of an uninterrupted one.
    accum = rec.grad_accum
    loader = iter(DataLoader(ds, batch_sampler=StepBatches(len(ds), batch_size, seed, ckpt.step * accum, steps * accum),
                             num_workers=workers))
    opt.zero_grad(set_to_none=True)
    while ckpt.step < steps:
        total = 0.0
        for j in range(accum):
            degraded_u8, clean_u8 = next(loader)
            clean, degraded = _to_unit(clean_u8, size, device), _to_unit(degraded_u8, size, device)
            gen = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, ckpt.step, j]).generate_state(1)[0]))
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and device.startswith("cuda")):
                loss = extended_loss(net, schedule, clean, degraded, t_max, gen) / accum
            loss.backward()
            total += loss.item()
        opt.step()
        opt.zero_grad(set_to_none=True)
        decay = ema_decay_at(ckpt.step, ema_decay, rec)
        if decay is not None:
            ema_update(ema, net, decay)
            ckpt.ema_updates += 1
        ckpt.step += 1
        losses.append(total)
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        out_of_time = max_minutes is not None and time.monotonic() - start > 60 * max_minutes
        if ckpt.step % save_every == 0 or ckpt.step >= steps or out_of_time:
            save()
        if out_of_time:
            break
    bar.close()
    if ckpt.step == start_step or not out.exists():
        save()
    return TrainResult(checkpoint=out, step=ckpt.step, steps_this_run=ckpt.step - start_step,
                       mean_loss_last_100=float(np.mean(losses[-100:])) if losses else float("nan"),
                       seconds=time.monotonic() - start)

"""DifFIQA (Babnik et al., IJCB 2023): quality from the FR-embedding stability under diffusion.

For a crop x and its horizontal flip x_f, each of n repetitions noises both to t (forward
process, t = 5) and denoises them back with DDIM (η = 1, model evaluated at t−1, …, 0, 0 as
the official time list does, x0 clipped to [−1, 1]) to x̂, x̂_f. The score (Eq. 7) is the
mean over repetitions of the mean cosine similarity between the embedding of x and those of E = {x_t, x̂, x_f, x_t^f, x̂^f}.
The ablations of Table 4 are registered as their own methods: ``diffiqa-noflip`` (E =
{x_t, x̂}), ``diffiqa-noforward`` (noisy images left out: E = {x̂, x_f, x̂^f}) and
``diffiqa-t20`` (t = 20).

Defaults follow the official inference code (DifFIQA c0bc008, diffiqa/inference.py): the
raw ``model`` weights score (``weights_key = "ema"`` takes the EMA copy), the UNet runs in
fp32 (``precision = "bf16" | "fp16"`` autocasts it, on CPU too), and a PyTorch FR model gets
the noisy and reconstructed images as unclipped floats. FR models without a PyTorch forward
take uint8 crops, so their copies are clipped to [0, 255] and rounded (a documented
deviation). The official FR model inside the score is CosFace whatever model evaluates the
comparisons; the cards record that (``quality_fr``) for the runner.

The FR model embeds the very crops the DDPM perturbs, so a checkpoint serves only FR models
of the crop domain it was trained on; a mismatch is refused. Noise comes from a generator
per image seeded by (seed, image id), so a score does not depend on which images share its
batch (up to floating-point differences of batched kernels).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.core.device import autocast_dtype
from bench.core.errors import BenchError
from bench.core.io import atomic_path, sha256_file
from bench.core.options import OptionError
from bench.core.registry import register_method
from bench.core.weights import resolve_weights
from bench.diffusion.checkpoint import DDPMCheckpoint, from_model, load_denoiser, to_model
from bench.diffusion.schedule import CosineSchedule
from bench.diffusion.schedule import backward_times as backward_time_list
from bench.diffusion.unet import UNet
from bench.fr.base import FRModel, TorchFRModel, to_pixels
from bench.methods.base import QualityMethod, ScoreContext, ScoreResult, image_seed, synchronise

STEPS = ("initialization", "forward", "backward", "embedding", "quality")  # Table 8 step ids


@dataclass(frozen=True)
class DifFIQAParams:
    """One DifFIQA variant: forward time ``t``, ``repeats`` n, and which images enter E."""

    t: int = 5
    repeats: int = 10
    flip: bool = True
    use_noisy: bool = True
    eta: float = 1.0
    backward_times: str = "official"

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> DifFIQAParams:
        """The variant of a method's resolved options (bench.core.options: typed, defaults from its card)."""
        p = cls(**{k: options[k] for k in cls.__dataclass_fields__})
        if p.t < 1 or p.repeats < 1:
            raise OptionError(f"--method-option t={p.t} repeats={p.repeats}: DifFIQA needs t >= 1 and repeats >= 1")
        return p

    @property
    def times(self) -> list[int]:
        """Model evaluation times of the backward pass (see bench.diffusion.schedule.backward_times)."""
        return backward_time_list(self.t, self.backward_times)


def draw_noise(seeds: list[int], views: int, params: DifFIQAParams, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward noise [B, V, n, *shape] and DDIM step noise [steps, B, V, n, *shape], per-image seeded."""
    n_steps = len(params.times) - 1  # the last backward step returns x0 and draws nothing
    fwd, step = [], []
    for s in seeds:
        g = torch.Generator().manual_seed(s)
        fwd.append(torch.randn((views, params.repeats, *shape), generator=g))
        step.append(torch.randn((n_steps, views, params.repeats, *shape), generator=g))
    return torch.stack(fwd), torch.stack(step, dim=1)


@torch.no_grad()
def perturb(net: UNet, schedule: CosineSchedule, x: torch.Tensor, params: DifFIQAParams,
            fwd_noise: torch.Tensor, step_noise: torch.Tensor, autocast_dtype: torch.dtype | None = None,
            timings: dict[str, float] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy x_t and reconstructions x̂ of model-size images x [M, C, S, S] in [−1, 1].

    ``fwd_noise`` is [M, C, S, S] and ``step_noise`` [steps − 1, M, C, S, S] (steps = len(params.times)).
    Returns both [M, C, S, S].
    """
    dev = x.device
    t0 = time.perf_counter()
    tt = torch.full((x.shape[0],), params.t, dtype=torch.long, device=dev)
    x_t = schedule.q_sample(x, tt, fwd_noise)
    synchronise(str(dev))
    t1 = time.perf_counter()
    img = x_t
    times = params.times
    for k, time_now in enumerate(times):
        cond = torch.full((x.shape[0],), time_now, dtype=torch.long, device=dev)
        with torch.autocast(dev.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
            x0 = net(img, cond)
        x0 = x0.float().clamp(-1, 1)
        if k == len(times) - 1:
            img = x0
        else:
            img = schedule.ddim_step(img, x0, time_now, times[k + 1], params.eta, step_noise[k])
    synchronise(str(dev))
    if timings is not None:
        timings["forward"] += t1 - t0
        timings["backward"] += time.perf_counter() - t1
    return x_t, img


def embed_images(fr: FRModel, images: torch.Tensor, chunk: int = 0) -> torch.Tensor:
    """FR embeddings [N, D] (float32, on the images' device) of images nominally in [−1, 1].

    PyTorch FR models take the float pixels unclipped, as the official code feeds its noisy
    images (which leave [−1, 1]) to its FR model; the others take uint8 crops, so theirs are
    clipped to [0, 255] and rounded.
    """
    pix = (images.float() + 1) * 127.5
    chunk = chunk or len(pix)
    out = []
    for start in range(0, len(pix), chunk):
        part = pix[start : start + chunk]
        if isinstance(fr, TorchFRModel):
            with torch.inference_mode():
                out.append(fr.forward_images(part.to(fr.device)).float().to(images.device))
        else:
            u8 = part.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            out.append(torch.from_numpy(np.asarray(fr.embed(u8), dtype=np.float32)).to(images.device))
    return torch.cat(out)


def combine(c_noisy: torch.Tensor | None, c_recon: torch.Tensor, c_flip: torch.Tensor | None) -> torch.Tensor:
    """Eq. 7 from cosine similarities to x: c_noisy, c_recon [B, V, n] (view 0 = x, 1 = x_f), c_flip [B].

    Per repetition, the mean over the set E of the similarities present; then the mean over
    repetitions. ``None`` leaves that part out of E (ablations).
    """
    terms = [c_recon]
    if c_noisy is not None:
        terms.append(c_noisy)
    per_rep = torch.cat(terms, dim=1).sum(dim=1)  # [B, n]
    count = sum(t.shape[1] for t in terms)
    if c_flip is not None:
        per_rep = per_rep + c_flip[:, None]
        count += 1
    return (per_rep / count).mean(dim=1)


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """Images [N, C, H, W] in [−1, 1] → uint8 HWC crops."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


@register_method("diffiqa")
class DifFIQA(QualityMethod):
    """DifFIQA with the card's options (t, repeats, flip, use_noisy, ...); see the module doc."""

    def __init__(self, card: Any, **kwargs: Any) -> None:
        super().__init__(card, **kwargs)
        self.params = DifFIQAParams.from_options(self.options)
        self.precision = self.options["precision"]
        self.fr_chunk = self.options["fr_chunk"]
        # UNet images per forward pass; 0 = all copies of the batch at once (the default on
        # GPUs). On CPU one pass of hundreds of copies measured 2x slower than passes of one
        # image's 2n copies (benchmarks/bench_diffiqa.py), so the CPU default is 2n.
        auto = 0 if self.device.startswith("cuda") else 2 * self.params.repeats
        self.unet_batch = self.options["unet_batch"] or auto
        self.net: UNet | None = None
        self.ckpt: DDPMCheckpoint | None = None
        self.weights_path: Path | None = None
        self.schedule: CosineSchedule | None = None
        self.timings: list[dict[str, float]] = []
        self.save_examples = self.options["save_examples"]
        self.examples: dict[str, list] = {}
        self._last: dict[str, torch.Tensor | None] = {}

    def _autocast_dtype(self) -> torch.dtype | None:
        return autocast_dtype(self.precision)

    def load(self, fr: FRModel) -> None:
        """Load the DDPM checkpoint (once) and check it was trained for ``fr``'s crops."""
        if self.net is None:
            path = resolve_weights(self.card, self.weights_arg)
            self.net, self.ckpt = load_denoiser(path, self.device, self.options["weights_key"], trust=self.trust_weights)
            self.schedule = CosineSchedule(self.ckpt.timesteps)
            self.weights_sha256 = sha256_file(path)
            self.weights_path = path
        assert self.ckpt is not None
        if self.ckpt.domain != fr.domain:
            raise BenchError(f"{self.weights_path}: DDPM trained on {self.ckpt.domain!r} crops, but FR model "
                             f"{fr.name!r} uses {fr.domain!r} crops; train one with `bench train ddpm --domain {fr.domain}`")

    def score_batch(self, crops: np.ndarray, indices: np.ndarray, ctx: ScoreContext) -> np.ndarray:
        if ctx.fr is None:
            raise BenchError(f"{self.name} needs an FR model (--fr)")
        self.load(ctx.fr)
        assert self.net is not None and self.ckpt is not None and self.schedule is not None
        if crops.shape[1] != self.ckpt.crop_size or crops.shape[2] != self.ckpt.crop_size:
            raise BenchError(f"{self.weights_path}: DDPM expects {self.ckpt.crop_size}px crops, got {crops.shape[1]}x{crops.shape[2]}")
        ids = [ctx.dataset.image_ids[int(i)] for i in indices]
        scores, timing = self.score_crops(crops, ids, ctx.fr, ctx.clean_embeddings(indices))
        self.timings.append({k: v / len(ids) for k, v in timing.items()})
        if self.save_examples > self._examples_kept() and ctx.score_file is not None:
            self._keep_examples(ids, scores, ctx)
        return scores

    def _examples_kept(self) -> int:
        return sum(len(a) for a in self.examples.get("image_id", []))

    def _keep_examples(self, ids: list[str], scores: np.ndarray, ctx: ScoreContext) -> None:
        """Add this batch's first images to ``<score file>.examples.npz`` until K are kept.

        Each file holds x, x_t, x̂ (and x_t^f, x̂^f with flip) of the first repetition as uint8
        crops, the Eq. 7 cosines of x to each member of E, and the score (the report's
        reconstruction rows, cf. Fig. 1). Written for the images this run scores.
        """
        last, p, b = self._last, self.params, len(ids)
        take = min(self.save_examples - self._examples_kept(), b)
        v, n = (2 if p.flip else 1), p.repeats
        first = torch.arange(take) * v * n  # view 0, repetition 0 of each image
        arrays = {"input": _to_uint8(last["x"][:take]), "x_t": _to_uint8(last["x_t"][first]), "recon": _to_uint8(last["x_hat"][first])}
        cos = {"recon": last["c_recon"][:take, 0, 0]}
        if p.use_noisy:
            cos["x_t"] = last["c_noisy"][:take, 0, 0]
        if p.flip:
            arrays["flip_x_t"], arrays["flip_recon"] = _to_uint8(last["x_t"][first + n]), _to_uint8(last["x_hat"][first + n])
            cos["flip"] = last["c_flip"][:take]
            cos["flip_recon"] = last["c_recon"][:take, 1, 0]
            if p.use_noisy:
                cos["flip_x_t"] = last["c_noisy"][:take, 1, 0]
        names = [k for k in ("x_t", "recon", "flip", "flip_x_t", "flip_recon") if k in cos]
        batch = {**arrays, "image_id": np.array(ids[:take]), "score": np.asarray(scores[:take], dtype=np.float64),
                 "cos": torch.stack([cos[k] for k in names], dim=1).float().cpu().numpy()}
        for key, value in batch.items():
            self.examples.setdefault(key, []).append(value)
        meta = {"method": self.name, "t": p.t, "repeats": p.repeats, "seed": self.seed, "fr": ctx.fr.name if ctx.fr else None,
                "dataset": ctx.dataset.name, "weights_sha256": self.weights_sha256}
        out = {k: np.concatenate(vs) for k, vs in self.examples.items()}
        assert ctx.score_file is not None
        path = ctx.score_file.with_name(ctx.score_file.stem + ".examples.npz")
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **out, cos_names=np.array(names), meta=np.array(json.dumps(meta, sort_keys=True)))

    def score_crops(self, crops: np.ndarray, ids: list[str], fr: FRModel,
                    clean: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, float]]:
        """Scores of RGB uint8 crops named ``ids``, and the seconds each step took for the batch.

        ``clean``: the FR embeddings [B, D] of the crops themselves when already computed (the
        run's cached embeddings, made by the same network); then x is not embedded again.
        """
        assert self.net is not None and self.ckpt is not None and self.schedule is not None
        p, dev = self.params, torch.device(self.device)
        timing = dict.fromkeys(STEPS, 0.0)
        t0 = time.perf_counter()
        x = to_pixels(crops, dev) / 127.5 - 1.0
        views = torch.stack([x, x.flip(-1)], dim=1) if p.flip else x[:, None]  # [B, V, C, H, W]
        b, v = views.shape[:2]
        size = self.ckpt.config.image_size
        model_in = to_model(views.flatten(0, 1), size).view(b, v, 1, 3, size, size).expand(-1, -1, p.repeats, -1, -1, -1)
        fwd, steps = draw_noise([image_seed(self.seed, i) for i in ids], v, p, (3, size, size))
        fwd, steps = fwd.to(dev).flatten(0, 2), steps.to(dev).flatten(1, 3)
        synchronise(self.device)
        timing["initialization"] = time.perf_counter() - t0
        flat = model_in.flatten(0, 2)
        chunk = self.unet_batch or len(flat)
        parts = [perturb(self.net, self.schedule, flat[s : s + chunk], p, fwd[s : s + chunk], steps[:, s : s + chunk],
                         self._autocast_dtype(), timing) for s in range(0, len(flat), chunk)]
        x_t, x_hat = torch.cat([a for a, _ in parts]), torch.cat([b for _, b in parts])
        t1 = time.perf_counter()
        crop = self.ckpt.crop_size
        batch = ([] if clean is not None else [x]) + ([views[:, 1]] if p.flip else []) + \
            ([from_model(x_t, crop)] if p.use_noisy else []) + [from_model(x_hat, crop)]
        emb = embed_images(fr, torch.cat(batch), self.fr_chunk)
        if clean is not None:
            emb = torch.cat([torch.from_numpy(clean).to(emb.device), emb])
        emb = torch.nn.functional.normalize(emb, dim=1)
        synchronise(self.device)
        t2 = time.perf_counter()
        e_x, rest = emb[:b], emb[b:]
        c_flip = None
        if p.flip:
            c_flip, rest = (e_x * rest[:b]).sum(1), rest[b:]
        sims = (e_x[:, None, None] * rest.view(-1, b, v, p.repeats, emb.shape[1])).sum(-1)  # [sets, B, V, n]
        c_noisy = sims[0] if p.use_noisy else None
        scores = combine(c_noisy, sims[-1], c_flip).double().cpu().numpy()
        if self.save_examples:
            self._last = {"x": x, "x_t": from_model(x_t, crop), "x_hat": from_model(x_hat, crop), "c_noisy": c_noisy,
                          "c_recon": sims[-1], "c_flip": c_flip}
        timing["embedding"] = t2 - t1
        timing["quality"] = time.perf_counter() - t2
        return scores, timing

    def score_dataset(self, indices: np.ndarray, ctx: ScoreContext) -> ScoreResult:
        """Base batching, plus ``extra['runtime_breakdown']``: {step: [mean ms, std ms]} per image.

        Steps as in the paper's Table 8: initialization (tensors, flips, seeded noise), forward,
        backward (DDIM), embedding (all images through the FR model) and quality. The first of several batches
        is warm-up and left out, as in the base timing.
        """
        self.timings = []
        result = super().score_dataset(indices, ctx)
        rows = self.timings[1:] if len(self.timings) > 1 else self.timings
        if rows:
            table = {k: [r[k] for r in rows] for k in STEPS}
            table["total"] = [sum(r[k] for k in STEPS) for r in rows]
            result.extra["runtime_breakdown"] = {k: [1000 * float(np.mean(v)), 1000 * float(np.std(v))] for k, v in table.items()}
        result.extra["diffiqa_params"] = vars(self.params) | {"domain": self.ckpt.domain if self.ckpt else None}
        return result


@register_method("diffiqa-noflip")
class DifFIQANoFlip(DifFIQA):
    """Ablation A1: no flipped image (E = {x_t, x̂})."""


@register_method("diffiqa-noforward")
class DifFIQANoForward(DifFIQA):
    """Ablation A2: noisy images left out of E (E = {x̂, x_f, x̂^f})."""


@register_method("diffiqa-t20")
class DifFIQAT20(DifFIQA):
    """Ablation A3: forward process to t = 20."""

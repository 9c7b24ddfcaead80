"""The cosine noise schedule and the DDPM/DDIM steps DifFIQA uses (x0-predicting model).

Time indices are 0-based as in the official code: ``alphas_cumprod[t]`` is the signal
fraction after the forward process has run to step ``t`` (``t = 0`` already adds a little
noise). ``q_sample(x, t=5)`` is DifFIQA's forward pass; the backward pass then evaluates the
model at t = 4, 3, 2, 1, 0 and returns the final x0 prediction.
"""

from __future__ import annotations

import math

import torch


def cosine_alphas_cumprod(timesteps: int, s: float = 0.008) -> torch.Tensor:
    """ᾱ_t for t = 0..T-1 (float64) of Nichol & Dhariwal's cosine schedule, betas clipped at 0.999."""
    steps = torch.arange(timesteps + 1, dtype=torch.float64)
    f = torch.cos(((steps / timesteps) + s) / (1 + s) * math.pi / 2) ** 2
    f = f / f[0]
    betas = (1 - f[1:] / f[:-1]).clamp(0, 0.999)
    return torch.cumprod(1 - betas, dim=0)


class CosineSchedule:
    """Forward noising and DDIM steps on a cosine schedule with ``timesteps`` steps."""

    def __init__(self, timesteps: int = 1000) -> None:
        self.timesteps = timesteps
        self.alphas_cumprod = cosine_alphas_cumprod(timesteps)

    def _abar(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        a = self.alphas_cumprod.to(like.device)[t.to(like.device)]
        return a.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·noise, ``t`` a long tensor [N]."""
        a = self._abar(t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def noise_from_x0(self, x_t: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """The noise implied by an x0 prediction: (x_t − sqrt(ᾱ_t)·x0) / sqrt(1 − ᾱ_t)."""
        a = self._abar(t, x_t)
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    def ddim_step(self, x_t: torch.Tensor, x0: torch.Tensor, t: int, t_next: int, eta: float, noise: torch.Tensor) -> torch.Tensor:
        """One DDIM step t → t_next (t_next ≥ 0) from the model's x0 prediction."""
        a = self.alphas_cumprod[t].item()
        a_next = self.alphas_cumprod[t_next].item()
        tt = torch.full((x_t.shape[0],), t, dtype=torch.long)
        eps = self.noise_from_x0(x_t, tt, x0)
        sigma = eta * math.sqrt((1 - a / a_next) * (1 - a_next) / (1 - a))
        c = math.sqrt(max(1 - a_next - sigma**2, 0.0))
        return x0 * math.sqrt(a_next) + c * eps + sigma * noise


def backward_times(t: int) -> list[int]:
    """Model evaluation times of the backward pass from a forward pass to ``t``: t−1, …, 0.

    The official code builds this list with ``linspace(-1, t-1, t+2)`` truncated to ints,
    which repeats t = 0 once (an extra step at the same noise level); we take each step once.
    """
    if t < 1:
        raise ValueError(f"the forward pass must run to t >= 1 (got {t})")
    return list(range(t - 1, -1, -1))

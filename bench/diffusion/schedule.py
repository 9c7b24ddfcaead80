"""The cosine noise schedule and the DDPM/DDIM steps DifFIQA uses (x0-predicting model).

Time indices are 0-based as in the official code: ``alphas_cumprod[t]`` is the signal
fraction after the forward process has run to step ``t`` (``t = 0`` already adds a little
noise). ``q_sample(x, t=5)`` is DifFIQA's forward pass; the backward pass then evaluates the
model at t = 4, 3, 2, 1, 0, 0 (the official time list, see :func:`backward_times`) and returns
the final x0 prediction.
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
    """Forward noising and DDIM steps on a cosine schedule with ``timesteps`` steps.

    The coefficients are computed in float64 and cast to the input's dtype (float32) only
    when used: the official ``GaussianDiffusion`` likewise computes them in float64 and stores
    them as float32 buffers, so both apply the same float32 values. At DifFIQA's small t,
    1 − ᾱ_t is about 1e-4, and forming it from a float32 ᾱ_t would lose three of its digits.
    The DDIM step takes ᾱ in float32 as the official ``ddim_sample_at_t`` does, so the two
    agree to float rounding.
    """

    def __init__(self, timesteps: int = 1000) -> None:
        self.timesteps = timesteps
        self.alphas_cumprod = a = cosine_alphas_cumprod(timesteps)
        self._sqrt_a, self._sqrt_1m_a = a.sqrt(), (1 - a).sqrt()
        self._sqrt_recip_a, self._sqrt_recipm1_a = (1 / a).sqrt(), (1 / a - 1).sqrt()

    @staticmethod
    def _at(coef: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        c = coef.to(like.device)[t.to(like.device)]
        return c.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·noise, ``t`` a long tensor [N]."""
        return self._at(self._sqrt_a, t, x0) * x0 + self._at(self._sqrt_1m_a, t, x0) * noise

    def noise_from_x0(self, x_t: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """The noise implied by an x0 prediction: (x_t / sqrt(ᾱ_t) − x0) / sqrt(1/ᾱ_t − 1)."""
        return (self._at(self._sqrt_recip_a, t, x_t) * x_t - x0) / self._at(self._sqrt_recipm1_a, t, x_t)

    def ddim_step(self, x_t: torch.Tensor, x0: torch.Tensor, t: int, t_next: int, eta: float, noise: torch.Tensor) -> torch.Tensor:
        """One DDIM step t → t_next (t_next ≥ 0) from the model's x0 prediction."""
        a = self.alphas_cumprod[t].float()
        a_next = self.alphas_cumprod[t_next].float()
        tt = torch.full((x_t.shape[0],), t, dtype=torch.long)
        eps = self.noise_from_x0(x_t, tt, x0)
        sigma = eta * ((1 - a / a_next) * (1 - a_next) / (1 - a)).sqrt()
        c = (1 - a_next - sigma**2).clamp(min=0).sqrt()
        return x0 * a_next.sqrt().item() + c.item() * eps + sigma.item() * noise


BACKWARD_TIMES = ("official", "unique")


def backward_times(t: int, mode: str = "official") -> list[int]:
    """Model evaluation times of the backward pass from a forward pass to ``t``.

    ``"official"`` reproduces the official ``ddim_sample_at_t``: its times are
    ``linspace(-1, t-1, t+2)`` truncated to ints, [-1, 0, 0, 1, …, t−1], which lists 0 twice, so the model
    runs at t−1, …, 1, 0, 0 (t+1 evaluations; the 0 → 0 DDIM step has σ = 0 and re-noises the
    clipped x0 estimate to level 0 before the last evaluation). ``"unique"`` runs each time
    once: t−1, …, 0.
    """
    if t < 1:
        raise ValueError(f"the forward pass must run to t >= 1 (got {t})")
    if mode == "unique":
        return list(range(t - 1, -1, -1))
    if mode != "official":
        raise ValueError(f"backward times mode {mode!r} is not one of {', '.join(BACKWARD_TIMES)}")
    grid = torch.linspace(-1, t - 1, steps=t + 2).int().tolist()
    return [k for k in reversed(grid) if k >= 0]

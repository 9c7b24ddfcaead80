"""An unconditional UNet that predicts x0, in the layout of lucidrains' denoising-diffusion-pytorch.

The module tree (``init_conv``, ``time_mlp``, ``downs``/``ups`` of [block1, block2, attn,
resample], ``mid_block1``, ``mid_attn``, ``mid_block2``, ``final_res_block``, ``final_conv``)
follows the official DifFIQA UNet so that its released state dicts load without renaming.
With channel multipliers (1, 2, 4, 8) there are four levels but only three resolution
changes (the last level keeps its size), so the image side must divide by 2**(levels − 1):
112 → 56 → 28 → 14.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of the denoiser. ``width`` 128 and mults (1, 2, 4, 8) are the paper's."""

    width: int = 128
    mults: tuple[int, ...] = (1, 2, 4, 8)
    channels: int = 3
    groups: int = 8
    heads: int = 4
    dim_head: int = 32
    image_size: int = 112

    def __post_init__(self) -> None:
        factor = 2 ** (len(self.mults) - 1)
        if self.image_size % factor:
            raise ValueError(f"UNet image size {self.image_size} is not divisible by {factor} ({len(self.mults)} levels)")
        if self.width % self.groups:
            raise ValueError(f"UNet width {self.width} is not divisible by GroupNorm groups {self.groups}")

    @property
    def time_dim(self) -> int:
        return 4 * self.width

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mults"] = list(self.mults)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> UNetConfig:
        d = dict(d)
        d["mults"] = tuple(d["mults"])
        return cls(**d)


class WSConv2d(nn.Conv2d):
    """Weight-standardised convolution (pairs well with GroupNorm).

    Without gradients the standardised weight is kept until the weight changes (its
    version counter, storage or dtype): scoring evaluates the same weights thousands of
    times, and re-standardising them was 6 % of a 48-px UNet pass. Same operations, so
    the same bits.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._standardised: tuple[tuple, torch.Tensor] | None = None

    def _standardise(self, eps: float) -> torch.Tensor:
        w = self.weight
        mean = w.mean(dim=(1, 2, 3), keepdim=True)
        var = w.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
        return (w - mean) * (var + eps).rsqrt()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eps = 1e-5 if x.dtype == torch.float32 else 1e-3
        if torch.is_grad_enabled():
            return F.conv2d(x, self._standardise(eps), self.bias, self.stride, self.padding)
        w = self.weight
        key = (w._version, w.data_ptr(), w.dtype, w.device, eps)
        if self._standardised is None or self._standardised[0] != key:
            self._standardised = (key, self._standardise(eps))
        return F.conv2d(x, self._standardised[1], self.bias, self.stride, self.padding)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over channels of an NCHW map, gain only (parameter ``g``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.g = nn.Parameter(torch.ones(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eps = 1e-5 if x.dtype == torch.float32 else 1e-3
        var = x.var(dim=1, unbiased=False, keepdim=True)
        return (x - x.mean(dim=1, keepdim=True)) * (var + eps).rsqrt() * self.g


class PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn
        self.norm = ChannelLayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class Residual(nn.Module):
    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x) + x


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer-style sin/cos embedding [N, dim] of (float) times [N]."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32) * -(math.log(10000) / (half - 1)))
    args = t.float()[:, None] * freqs[None]
    return torch.cat((args.sin(), args.cos()), dim=-1)


class SinusoidalPosEmb(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return sinusoidal_embedding(t, self.dim)


class Block(nn.Module):
    def __init__(self, dim: int, dim_out: int, groups: int) -> None:
        super().__init__()
        self.proj = WSConv2d(dim, dim_out, 3, padding=1)
        self.norm = nn.GroupNorm(groups, dim_out)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, scale_shift: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        x = self.norm(self.proj(x))
        if scale_shift is not None:
            scale, shift = scale_shift
            x = x * (scale + 1) + shift
        return self.act(x)


class ResnetBlock(nn.Module):
    """Two conv blocks; the time embedding scales and shifts the first one."""

    def __init__(self, dim: int, dim_out: int, time_dim: int, groups: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(time_dim, dim_out * 2))
        self.block1 = Block(dim, dim_out, groups)
        self.block2 = Block(dim_out, dim_out, groups)
        self.res_conv = nn.Conv2d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.mlp(temb)[:, :, None, None].chunk(2, dim=1)
        h = self.block2(self.block1(x, (scale, shift)))
        return h + self.res_conv(x)


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.reshape(b, heads, c // heads, h * w)


class LinearAttention(nn.Module):
    """Attention linear in the number of pixels (softmax over features, then over positions)."""

    def __init__(self, dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        self.scale = dim_head**-0.5
        self.heads = heads
        hidden = heads * dim_head
        self.to_qkv = nn.Conv2d(dim, hidden * 3, 1, bias=False)
        self.to_out = nn.Sequential(nn.Conv2d(hidden, dim, 1), ChannelLayerNorm(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q, k, v = (_heads(z, self.heads) for z in self.to_qkv(x).chunk(3, dim=1))
        q = q.softmax(dim=-2) * self.scale
        k = k.softmax(dim=-1)
        v = v / (h * w)
        context = torch.einsum("bhdn,bhen->bhde", k, v)
        out = torch.einsum("bhde,bhdn->bhen", context, q)
        return self.to_out(out.reshape(b, -1, h, w))


class Attention(nn.Module):
    """Full attention with l2-normalised queries and keys (fixed temperature 10).

    As in the official UNet, q and k are normalised over the pixel positions (the last axis of
    ``b h c (x y)``), not over channels: each channel's response map is a unit vector.
    """

    def __init__(self, dim: int, heads: int, dim_head: int, scale: float = 10.0) -> None:
        super().__init__()
        self.scale = scale
        self.heads = heads
        hidden = heads * dim_head
        self.to_qkv = nn.Conv2d(dim, hidden * 3, 1, bias=False)
        self.to_out = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q, k, v = (_heads(z, self.heads) for z in self.to_qkv(x).chunk(3, dim=1))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = (torch.einsum("bhdi,bhdj->bhij", q, k) * self.scale).softmax(dim=-1)
        out = torch.einsum("bhij,bhdj->bhid", attn, v)
        return self.to_out(out.permute(0, 1, 3, 2).reshape(b, -1, h, w))


class UNet(nn.Module):
    """Denoiser D(x_t, t) → x0 estimate, same shape as x_t."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = c = config
        self.channels = c.channels
        dims = [c.width, *(c.width * m for m in c.mults)]
        in_out = list(zip(dims[:-1], dims[1:], strict=True))
        td = c.time_dim

        self.init_conv = nn.Conv2d(c.channels, c.width, 7, padding=3)
        self.time_mlp = nn.Sequential(SinusoidalPosEmb(c.width), nn.Linear(c.width, td), nn.GELU(), nn.Linear(td, td))

        def attn(d: int) -> nn.Module:
            return Residual(PreNorm(d, LinearAttention(d, c.heads, c.dim_head)))

        self.downs = nn.ModuleList()
        for i, (d_in, d_out) in enumerate(in_out):
            last = i == len(in_out) - 1
            self.downs.append(nn.ModuleList([
                ResnetBlock(d_in, d_in, td, c.groups),
                ResnetBlock(d_in, d_in, td, c.groups),
                attn(d_in),
                nn.Conv2d(d_in, d_out, 3, padding=1) if last else nn.Conv2d(d_in, d_out, 4, 2, 1),
            ]))
        mid = dims[-1]
        self.mid_block1 = ResnetBlock(mid, mid, td, c.groups)
        self.mid_attn = Residual(PreNorm(mid, Attention(mid, c.heads, c.dim_head)))
        self.mid_block2 = ResnetBlock(mid, mid, td, c.groups)
        self.ups = nn.ModuleList()
        for i, (d_in, d_out) in enumerate(reversed(in_out)):
            last = i == len(in_out) - 1
            up: nn.Module = nn.Conv2d(d_out, d_in, 3, padding=1) if last else nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(d_out, d_in, 3, padding=1))
            self.ups.append(nn.ModuleList([
                ResnetBlock(d_out + d_in, d_out, td, c.groups),
                ResnetBlock(d_out + d_in, d_out, td, c.groups),
                attn(d_out),
                up,
            ]))
        self.final_res_block = ResnetBlock(2 * c.width, c.width, td, c.groups)
        self.final_conv = nn.Conv2d(c.width, c.channels, 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x0 prediction for noisy images ``x`` [N, C, S, S] at integer times ``t`` [N]."""
        x = self.init_conv(x)
        r = x
        temb = self.time_mlp(t)
        skips = []
        for block1, block2, attn, down in self.downs:
            x = block1(x, temb)
            skips.append(x)
            x = attn(block2(x, temb))
            skips.append(x)
            x = down(x)
        x = self.mid_block2(self.mid_attn(self.mid_block1(x, temb)), temb)
        for block1, block2, attn, up in self.ups:
            x = block1(torch.cat((x, skips.pop()), dim=1), temb)
            x = attn(block2(torch.cat((x, skips.pop()), dim=1), temb))
            x = up(x)
        return self.final_conv(self.final_res_block(torch.cat((x, r), dim=1), temb))

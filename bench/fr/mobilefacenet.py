"""MobileFaceNet, the backbone of eDifFIQA(T), in the eDifFIQA repository's key layout.

Module and parameter names follow LSIbabnikz/eDifFIQA ``model/mobilenet.py`` (commit
b730ec5), so the official ``ediffiqaT.pth`` state dict loads under strict key checking:
``conv1``, ``conv2_dw``, ``conv_23``, ``conv_3`` … ``conv_6_dw``, ``linear``, ``bn``; every
convolution block is ``conv`` / ``bn`` / ``prelu``. Input: RGB normalised to
(x − 127.5) / 127.5 at 112 × 112; output: L2-normalised 512-D features (the official forward
ends with ``l2_norm``), which the eDifFIQA(T) quality head reads.
"""

from __future__ import annotations

import torch
from torch import nn


class ConvBlock(nn.Module):
    """Conv (no bias) → BatchNorm → PReLU (official ``Conv_block``)."""

    def __init__(self, in_c: int, out_c: int, kernel: int = 1, stride: int = 1, padding: int = 0, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_c, out_c, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_c)
        self.prelu = nn.PReLU(out_c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(self.bn(self.conv(x)))


class LinearBlock(nn.Module):
    """Conv (no bias) → BatchNorm, no activation (official ``Linear_block``)."""

    def __init__(self, in_c: int, out_c: int, kernel: int = 1, stride: int = 1, padding: int = 0, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_c, out_c, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class DepthWise(nn.Module):
    """1×1 expand to ``groups`` channels, depth-wise 3×3, 1×1 project; optional residual (official ``Depth_Wise``)."""

    def __init__(self, in_c: int, out_c: int, groups: int, stride: int = 2, residual: bool = False) -> None:
        super().__init__()
        self.conv = ConvBlock(in_c, groups)
        self.conv_dw = ConvBlock(groups, groups, kernel=3, stride=stride, padding=1, groups=groups)
        self.project = LinearBlock(groups, out_c)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.conv_dw(self.conv(x)))
        return x + out if self.residual else out


class Residual(nn.Module):
    """``num_block`` residual depth-wise blocks under ``model`` (official ``Residual``)."""

    def __init__(self, c: int, num_block: int, groups: int) -> None:
        super().__init__()
        self.model = nn.Sequential(*(DepthWise(c, c, groups, stride=1, residual=True) for _ in range(num_block)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class MobileFaceNet(nn.Module):
    """eDifFIQA's MobileFaceNet: normalised 112×112 RGB [N, 3, 112, 112] → L2-normalised [N, embedding_size]."""

    def __init__(self, embedding_size: int = 512) -> None:
        super().__init__()
        self.conv1 = ConvBlock(3, 64, kernel=3, stride=2, padding=1)
        self.conv2_dw = ConvBlock(64, 64, kernel=3, stride=1, padding=1, groups=64)
        self.conv_23 = DepthWise(64, 64, groups=128)
        self.conv_3 = Residual(64, num_block=4, groups=128)
        self.conv_34 = DepthWise(64, 128, groups=256)
        self.conv_4 = Residual(128, num_block=6, groups=256)
        self.conv_45 = DepthWise(128, 128, groups=512)
        self.conv_5 = Residual(128, num_block=2, groups=256)
        self.conv_6_sep = ConvBlock(128, 512)
        self.conv_6_dw = LinearBlock(512, 512, kernel=7, groups=512)
        self.linear = nn.Linear(512, embedding_size, bias=False)
        self.bn = nn.BatchNorm1d(embedding_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in (self.conv1, self.conv2_dw, self.conv_23, self.conv_3, self.conv_34, self.conv_4, self.conv_45,
                      self.conv_5, self.conv_6_sep, self.conv_6_dw):
            x = stage(x)
        out = self.bn(self.linear(x.flatten(1)))
        # Official l2_norm: out / ||out|| (no epsilon).
        return out / torch.norm(out, 2, 1, True)

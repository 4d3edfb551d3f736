#!/usr/bin/env python3
"""The classic 2D U-Net (Ronneberger et al. 2015), TorchScript-scriptable, any H x W.

Architecture (base = base_channels, default 64):
  encoder   5 levels with base x [1, 2, 4, 8, 16] channels (64-128-256-512-1024); each
            level is a DoubleConv (3x3 conv - BatchNorm - ReLU, twice, "same" padding);
            levels are joined by 2x2 max pooling (stride 2).
  decoder   4 levels: ConvTranspose2d 2x2 / stride 2 halves the channels and doubles
            the size, the result is concatenated with the encoder's output at that size
            ([skip, upsampled] in this order) and passed through a DoubleConv.
  head      1x1 conv to out_channels, no activation: the output is LOGITS.

Shapes: input [N, in_channels, H, W] float32, output [N, out_channels, H, W] float32,
for any H, W >= 1. Four poolings need H, W divisible by 16, so forward() pads the input
with zeros on the bottom/right up to the next multiple of 16 and crops the output back
to H x W (a no-op when H, W are already multiples of 16).

State-dict keys are plain module paths (e.g. `enc.0.block.0.weight`, `up.3.weight`,
`head.bias`), shared by the eager module and its torch.jit.script export, so weights
move between them with load_state_dict.
"""

from __future__ import annotations

from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F

DEPTH_MULTIPLIERS = (1, 2, 4, 8, 16)
SIZE_MULTIPLE = 16  # 2 ** (number of poolings)


class DoubleConv(nn.Module):
    """(3x3 conv -> BatchNorm -> ReLU) x 2, spatial size preserved."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class UNet2D(nn.Module):
    """Ronneberger-style 2D U-Net producing per-class logits (see module doc)."""

    def __init__(self, in_channels: int = 1, out_channels: int = 2, base_channels: int = 64) -> None:
        super().__init__()
        if in_channels < 1 or out_channels < 1 or base_channels < 1:
            raise ValueError("in_channels, out_channels and base_channels must be >= 1")
        self.in_channels: int = int(in_channels)
        self.out_channels: int = int(out_channels)
        self.base_channels: int = int(base_channels)
        self.size_multiple: int = SIZE_MULTIPLE
        widths = [base_channels * m for m in DEPTH_MULTIPLIERS]

        enc: List[nn.Module] = []
        prev = in_channels
        for w in widths:
            enc.append(DoubleConv(prev, w))
            prev = w
        self.enc = nn.ModuleList(enc)

        ups: List[nn.Module] = []
        dec: List[nn.Module] = []
        for w in reversed(widths[:-1]):  # 512, 256, 128, 64 for base 64
            ups.append(nn.ConvTranspose2d(prev, w, kernel_size=2, stride=2))
            dec.append(DoubleConv(2 * w, w))
            prev = w
        self.up = nn.ModuleList(ups)
        self.dec = nn.ModuleList(dec)
        self.head = nn.Conv2d(prev, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError("UNet2D expects a 4-D input [N, C, H, W]")
        if x.shape[1] != self.in_channels:
            raise ValueError("UNet2D: input channels do not match in_channels")
        h = x.shape[2]
        w = x.shape[3]
        m = self.size_multiple
        pad_h = (m - h % m) % m
        pad_w = (m - w % m) % m
        if pad_h > 0 or pad_w > 0:
            x = F.pad(x, [0, pad_w, 0, pad_h])  # [left, right, top, bottom], zeros

        skips: List[torch.Tensor] = []
        n_levels = len(self.enc)
        for i, level in enumerate(self.enc):
            x = level(x)
            if i < n_levels - 1:
                skips.append(x)
                x = F.max_pool2d(x, kernel_size=2, stride=2)

        for i, (up, level) in enumerate(zip(self.up, self.dec)):
            x = up(x)
            x = level(torch.cat([skips[n_levels - 2 - i], x], dim=1))

        return self.head(x)[:, :, :h, :w]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (BatchNorm running statistics excluded)."""
    return sum(p.numel() for p in model.parameters())

#!/usr/bin/env python3
"""Build segnode's default fetal-head ultrasound model: a weight-free phantom segmenter.

It segments the synthetic fetal-head phantom (tools/fetal_phantom_check.py renders it)
by grey-level bands on a smoothed image, restricted to what the skull encloses. It has no
trained weights and is NOT meant for real ultrasound: it lets the fetal_head_us pipeline
run end to end (and be scored against an analytic truth) until a trained U-Net exported
with tools/export_unet.py replaces it under the same contract.

CONTRACT (what the pipeline may rely on)
========================================
File      TorchScript (torch.jit.script) nn.Module, no parameters, CPU or CUDA.
Input     x: float [N, 1, H, W], any N >= 1, H, W >= 1: luminance scaled to [0, 1] (the
          pipeline divides 8-bit values by 255). Tuned for the pipeline's 256 x 256 input
          resized (bilinear, no antialiasing) from a ~959 x 661 frame; the smoothing and
          erosion sizes below are in input pixels. Non-finite values count as 0 and the
          input is clamped to [0, 1].
Output    float32 LOGITS [N, K, H, W]:
          --mode overlap   (default) K = 3: brain, CSP (cavum septi pellucidi), LV (lateral
                           ventricle). "Brain" is the whole intracranial content INCLUDING
                           CSP and LV, so segments overlap: per-class sigmoid, threshold 0.5.
          --mode exclusive K = 4: background, brain without CSP and LV, CSP, LV; the
                           classes partition the image: softmax + argmax.
          Logits are logit(clamp(p, 1e-4, 1 - 1e-4)) of the probabilities below (|logit|
          <= 9.2); in exclusive mode they are log-probabilities, so softmax returns them.
          `contract()` returns the constants, `class_names()` the channel names.

How it works (phantom grey levels: fluid 0.06, skull 0.95, brain 0.45, CSP 0.15, LV 0.70)
-----------------------------------------------------------------------------------------
1. s3, s5 = 3x3 and 5x5 means of the input (edges average the pixels that exist).
2. Skull wall = (x > 0.75) on the unsmoothed input (a thin ring keeps its full width),
   dilated by 1 px (closes speckle gaps). `outside` = flood fill (4-connected, scan-line
   sweeps until stable) from the image border through non-wall pixels; `shell` = outside
   plus every wall component touching it (the skull ring, burned-in text, colour bars);
   `interior` = not shell: what a closed skull ring encloses. Annotations enclose nothing,
   so nothing is segmented there; bright speckle inside the brain is not shell.
3. band(s, lo, hi) = sigmoid(k (s - lo)) * sigmoid(k (hi - s)), k = 60, with each
   threshold halfway between the grey levels it separates:
       CSP   = band(s5, 0.10, 0.30) * core         (CSP 0.15 vs brain 0.45)
       LV    = band(s5, 0.575, 0.82) * core        (LV 0.70 vs brain 0.45 / skull)
       base  = band(s3, 0.10, 0.70) * dilate(interior, 2 px)   (brain 0.45 vs skull 0.95)
       brain = max(base, 1 - (1 - CSP) (1 - LV))  (so brain >= CSP, LV everywhere)
   core = interior eroded by 3 px: the 0.45 -> 0.95 ramp at the inner skull edge crosses
   the LV band, so CSP/LV are only looked for >= 3 px from the skull.
4. exclusive mode: P(background) = 1 - brain, P(CSP) = CSP, P(LV) = LV (1 - CSP),
   P(brain only) = brain - P(CSP) - P(LV) (>= 0 by construction); log of each.

Limitations (by design): the skull must be a closed ring inside the frame, and the grey
levels must be the phantom's. A frame without a closed skull gives empty segments.

Usage:  python tools/build_fetal_head_model.py --out models/fetal_head_phantom.pt [--mode overlap]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Dict, List

import torch
import torch.nn as nn
import torch.nn.functional as F

MODES = ("overlap", "exclusive")
EPS = 1e-4


class FetalHeadPhantomSegmenter(nn.Module):
    """Intensity-band segmentation of the fetal-head phantom inside the skull (module doc)."""

    def __init__(self, exclusive: bool = False, steepness: float = 60.0) -> None:
        super().__init__()
        self.exclusive: bool = bool(exclusive)
        self.k: float = float(steepness)
        self.wall_threshold: float = 0.75
        # Flood-fill rounds at most (each round sweeps all four directions); the phantom
        # needs 2-3.
        self.max_flood_rounds: int = 64
        self.csp_band: List[float] = [0.10, 0.30]
        self.lv_band: List[float] = [0.575, 0.82]
        self.brain_band: List[float] = [0.10, 0.70]
        self.core_erosion: int = 3
        self.brain_dilation: int = 2
        self.eps: float = EPS

    @torch.jit.export
    def contract(self) -> Dict[str, float]:
        return {
            "exclusive": 1.0 if self.exclusive else 0.0,
            "out_channels": 4.0 if self.exclusive else 3.0,
            "in_channels": 1.0,
            "prob_threshold": 0.5,
            "input_low": 0.0,
            "input_high": 1.0,
            "steepness": self.k,
            "wall_threshold": self.wall_threshold,
            "csp_low": self.csp_band[0],
            "csp_high": self.csp_band[1],
            "lv_low": self.lv_band[0],
            "lv_high": self.lv_band[1],
            "brain_low": self.brain_band[0],
            "brain_high": self.brain_band[1],
        }

    @torch.jit.export
    def class_names(self) -> List[str]:
        if self.exclusive:
            return ["background", "brain_only", "csp", "lv"]
        return ["brain", "csp", "lv"]

    def _mean(self, x: torch.Tensor, size: int) -> torch.Tensor:
        return F.avg_pool2d(x, size, stride=1, padding=size // 2, count_include_pad=False)

    def _dilate(self, m: torch.Tensor, radius: int) -> torch.Tensor:
        if radius <= 0:
            return m
        return F.max_pool2d(m, 2 * radius + 1, stride=1, padding=radius)

    def _band(self, s: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        return torch.sigmoid(self.k * (s - lo)) * torch.sigmoid(self.k * (hi - s))

    def _sweep(self, region: torch.Tensor, blocked: torch.Tensor, dim: int, reverse: bool) -> torch.Tensor:
        """One scan-line pass of the flood fill along `dim`: a pixel joins `region` when an
        unblocked run of pixels links it to a region pixel before it (in scan order)."""
        if reverse:
            region = region.flip([dim])
            blocked = blocked.flip([dim])
        n = region.shape[dim]
        shape = [1, 1, 1, 1]
        shape[dim] = n
        idx = torch.arange(n, dtype=region.dtype, device=region.device).view(shape).expand_as(region)
        none = torch.full_like(idx, -1.0)
        last_block = torch.cummax(torch.where(blocked > 0.5, idx, none), dim)[0]
        last_seed = torch.cummax(torch.where(region > 0.5, idx, none), dim)[0]
        out = ((last_seed > last_block) & (blocked < 0.5)).to(region.dtype)
        if reverse:
            out = out.flip([dim])
        return out

    def _flood(self, seed: torch.Tensor, passable: torch.Tensor) -> torch.Tensor:
        """Pixels of `passable` (0/1) 4-connected to `seed` (0/1): scan-line sweeps left,
        right, down and up, repeated until nothing changes (a few rounds for the phantom).
        Bounded: at most `max_flood_rounds` rounds; a labyrinth that needs more is flooded
        only partly (its far corners count as enclosed)."""
        blocked = 1.0 - passable
        region = seed * passable
        for _ in range(self.max_flood_rounds):
            before = region
            for dim in [3, 2]:
                region = self._sweep(region, blocked, dim, False)
                region = self._sweep(region, blocked, dim, True)
            if torch.equal(region, before):
                break
        return region

    def _interior(self, x: torch.Tensor) -> torch.Tensor:
        """1 where a closed bright ring (the skull) encloses the pixel, else 0."""
        wall = self._dilate((x > self.wall_threshold).to(x.dtype), 1)
        border = torch.ones_like(wall)
        border[:, :, 1:-1, 1:-1] = 0.0
        outside = self._flood(border, 1.0 - wall)
        shell = self._flood(outside, torch.clamp(outside + wall, max=1.0))
        return 1.0 - shell

    def _logit(self, p: torch.Tensor) -> torch.Tensor:
        p = torch.clamp(p, self.eps, 1.0 - self.eps)
        return torch.log(p) - torch.log1p(-p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError("fetal head phantom model expects [N, 1, H, W] luminance in [0, 1]")
        x = torch.nan_to_num(x.to(torch.float32), nan=0.0, posinf=0.0, neginf=0.0).clamp(0.0, 1.0)
        s3 = self._mean(x, 3)
        s5 = self._mean(x, 5)

        interior = self._interior(x)
        core = 1.0 - self._dilate(1.0 - interior, self.core_erosion)
        csp = self._band(s5, self.csp_band[0], self.csp_band[1]) * core
        lv = self._band(s5, self.lv_band[0], self.lv_band[1]) * core
        base = self._band(s3, self.brain_band[0], self.brain_band[1]) * self._dilate(interior, self.brain_dilation)
        brain = torch.maximum(base, 1.0 - (1.0 - csp) * (1.0 - lv))

        if not self.exclusive:
            return self._logit(torch.cat([brain, csp, lv], dim=1))
        p_lv = lv * (1.0 - csp)
        p_brain = torch.clamp(brain - csp - p_lv, min=0.0)
        probs = torch.cat([1.0 - brain, p_brain, csp, p_lv], dim=1).clamp(min=self.eps)
        return torch.log(probs / probs.sum(dim=1, keepdim=True))


def build(mode: str) -> torch.jit.ScriptModule:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return torch.jit.script(FetalHeadPhantomSegmenter(exclusive=mode == "exclusive").eval())


def self_check(m: torch.jit.ScriptModule, mode: str) -> None:
    """Shapes and finiteness on degenerate inputs before the file is saved."""
    k = 4 if mode == "exclusive" else 3
    for shape in [(1, 1, 1, 1), (2, 1, 7, 5), (1, 1, 64, 48)]:
        for x in (torch.zeros(shape), torch.ones(shape), torch.rand(shape)):
            y = m(x)
            assert y.shape == (shape[0], k) + shape[2:], (shape, tuple(y.shape))
            assert torch.isfinite(y).all(), f"non-finite output for {shape}"


def main(argv: List[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output TorchScript file")
    ap.add_argument("--mode", choices=MODES, default="overlap",
                    help="overlap: 3 sigmoid channels (brain incl. CSP/LV, CSP, LV); "
                         "exclusive: 4 softmax classes (background, brain only, CSP, LV)")
    args = ap.parse_args(argv)

    torch.set_num_threads(2)
    t0 = time.time()
    m = build(args.mode)
    self_check(m, args.mode)
    meta = {
        "model": "fetal_head_phantom",
        "mode": args.mode,
        "classes": m.class_names(),
        "contract": m.contract(),
        "input": "[N,1,H,W] luminance in [0,1] (8-bit / 255); tuned for 256x256 from ~959x661",
        "output": ("[N,3,H,W] logits (brain incl. CSP+LV, CSP, LV); sigmoid, threshold 0.5"
                   if args.mode == "overlap" else
                   "[N,4,H,W] log-probabilities (background, brain only, CSP, LV); softmax, argmax"),
        "torch": torch.__version__,
    }
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    tmp = args.out + ".tmp"
    torch.jit.save(m, tmp, _extra_files={"segnode.json": json.dumps(meta)})
    os.replace(tmp, args.out)
    print(f"fetal_head_phantom ({args.mode}): classes {m.class_names()} -> {args.out} ({time.time() - t0:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

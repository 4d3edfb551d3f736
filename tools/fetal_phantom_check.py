#!/usr/bin/env python3
"""Render the synthetic fetal-head ultrasound phantom and score a 2D model on it.

The phantom is the one tools/build_fetal_head_model.py is designed for: an 8-bit
greyscale frame, 959 wide x 661 high, holding

  * a fan-shaped ultrasound sector (apex above the top centre); outside it 0.0;
  * amniotic fluid 0.06 filling the sector around the head;
  * the head: an ellipse centred near (480, 340), outer semi-axes ~260 x 200, rotated by
    up to +-15 degrees, with a ~14 px skull ring at 0.95; brain parenchyma 0.45 inside
    the skull's inner ellipse;
  * the cavum septi pellucidi (CSP, 0.15): an ellipse ~34 x 18 on the head's midline,
    one third of the head length from the front;
  * one lateral ventricle (LV, 0.70: echogenic, filled by the choroid plexus): an
    ellipse ~60 x 20 in the posterior half, off the midline, >= 30 px from the skull;
  * multiplicative speckle  v * (1 + 0.2 N(0, 1)), clipped to [0, 1], then 8-bit
    quantisation (the pipeline divides 8-bit values by 255);
  * burned-in annotations outside the sector, drawn after the speckle: white (1.0)
    text-like rectangles and a vertical colour bar whose luminance ramps 0 -> 1.

Scoring (`score`) mimics the pipeline: resize to 256 x 256 (bilinear, align_corners
False, no antialiasing), run the model, turn logits into probabilities (per-class
sigmoid for 3 outputs = overlap mode, softmax for 4 outputs = exclusive mode), resize
the probabilities back to 959 x 661 bilinearly, threshold at 0.5 / argmax, and compute
the Dice of every structure against the analytic truth (no post-processing).

  python tools/fetal_phantom_check.py --model models/fetal_head_phantom.pt [--seeds 0,1,2]
                                      [--min-dice 0.95] [--no-annotations] [--png DIR]

Prints one line per seed and structure; exits 1 when a Dice is below --min-dice or the
model marks CSP/LV outside the head.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np
import torch
import torch.nn.functional as F

WIDTH, HEIGHT = 959, 661
MODEL_SIZE = (256, 256)
LEVELS = {"outside": 0.0, "fluid": 0.06, "skull": 0.95, "brain": 0.45, "csp": 0.15, "lv": 0.70}
SPECKLE = 0.2
OVERLAP_NAMES = ("brain", "csp", "lv")
EXCLUSIVE_NAMES = ("background", "brain_only", "csp", "lv")

# The sector: apex above the top centre, fan between two radii and +-half angle.
APEX = (479.5, -40.0)
SECTOR_RADII = (70.0, 680.0)
SECTOR_HALF_ANGLE = math.radians(50.0)


@dataclass
class Phantom:
    image: np.ndarray  # [H, W] float32 in [0, 1], multiples of 1/255
    truth: Dict[str, np.ndarray]  # brain (incl. CSP, LV), csp, lv, brain_only, head, sector, annotation


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, a: float, b: float, angle: float) -> np.ndarray:
    """Pixels whose centre lies in the ellipse (semi-axes a along `angle`, b across)."""
    c, s = math.cos(angle), math.sin(angle)
    u = (x - cx) * c + (y - cy) * s
    v = -(x - cx) * s + (y - cy) * c
    return (u / a) ** 2 + (v / b) ** 2 <= 1.0


def _in_sector(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    dx, dy = x - APEX[0], y - APEX[1]
    r = np.hypot(dx, dy)
    return (r >= SECTOR_RADII[0]) & (r <= SECTOR_RADII[1]) & (np.abs(np.arctan2(dx, dy)) <= SECTOR_HALF_ANGLE)


def _annotations(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Burn white text-like rectangles and a luminance-ramp colour bar into the corners;
    returns their mask."""
    mask = np.zeros(image.shape, dtype=bool)
    # "text": lines of glyph-sized rectangles, top left and bottom left
    for x0, x1, y0, lines in ((18, 260, 16, 4), (18, 140, 598, 2)):
        for line in range(lines):
            x = x0
            y = y0 + line * 22
            while True:
                w = int(rng.integers(4, 13))
                h = int(rng.integers(9, 15))
                if x + w > x1:
                    break
                image[y:y + h, x:x + w] = 1.0
                mask[y:y + h, x:x + w] = True
                x += w + int(rng.integers(2, 7))
    # a colour bar on the right: luminance 1 at the top down to 0 at the bottom
    top, bottom, left, right = 30, 250, 915, 935
    ramp = np.linspace(1.0, 0.0, bottom - top, dtype=np.float32)[:, None]
    image[top:bottom, left:right] = ramp
    mask[top:bottom, left:right] = True
    # a depth scale: short white ticks along the right border
    for y in range(480, 650, 30):
        image[y:y + 3, 940:952] = 1.0
        mask[y:y + 3, 940:952] = True
    return mask


def render(seed: int, annotations: bool = True, head: bool = True) -> Phantom:
    """One phantom frame with randomised pose and anatomy (see module doc); head=False
    leaves the sector empty (fluid only) and every structure's truth empty."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)

    cx, cy = 480.0 + rng.uniform(-10, 10), 340.0 + rng.uniform(-8, 8)
    a, b = 260.0 + rng.uniform(-8, 8), 200.0 + rng.uniform(-6, 6)
    angle = math.radians(rng.uniform(-15, 15))
    t = 14.0 + rng.uniform(-2, 2)
    front = 1.0 if rng.random() < 0.5 else -1.0  # which end of the major axis is frontal
    c, s = math.cos(angle), math.sin(angle)

    def head_point(u: float, v: float) -> Tuple[float, float]:
        return cx + u * c - v * s, cy + u * s + v * c

    inside = _ellipse(x, y, cx, cy, a, b, angle)
    brain = _ellipse(x, y, cx, cy, a - t, b - t, angle)
    csp_c = head_point(front * a / 3.0 + rng.uniform(-8, 8), rng.uniform(-2, 2))
    csp = _ellipse(x, y, *csp_c, 34.0 + rng.uniform(-3, 3), 18.0 + rng.uniform(-2, 2), angle)
    side = 1.0 if rng.random() < 0.5 else -1.0
    lv_c = head_point(-front * (0.42 * a + rng.uniform(-10, 10)), side * (55.0 + rng.uniform(-8, 8)))
    lv_a, lv_b = 60.0 + rng.uniform(-5, 5), 20.0 + rng.uniform(-3, 3)
    lv_angle = angle + side * front * math.radians(rng.uniform(0, 12))
    lv = _ellipse(x, y, *lv_c, lv_a, lv_b, lv_angle)
    sector = _in_sector(x, y)
    if not head:
        inside, brain, csp, lv = (np.zeros_like(sector) for _ in range(4))

    if not (inside <= sector).all():
        raise AssertionError(f"seed {seed}: the head leaves the sector")
    far = ~_ellipse(x, y, cx, cy, a - t - 30.0, b - t - 30.0, angle)  # within 30 px of the skull (approx.)
    if (lv & far).any() or (csp & far).any():
        raise AssertionError(f"seed {seed}: CSP/LV closer than ~30 px to the skull")

    img = np.where(sector, LEVELS["fluid"], LEVELS["outside"])
    img = np.where(inside, LEVELS["skull"], img)
    img = np.where(brain, LEVELS["brain"], img)
    img = np.where(csp, LEVELS["csp"], img)
    img = np.where(lv, LEVELS["lv"], img)
    img = np.clip(img * (1.0 + SPECKLE * rng.standard_normal(img.shape)), 0.0, 1.0).astype(np.float32)
    notes = _annotations(img, rng) if annotations else np.zeros(img.shape, dtype=bool)
    if (notes & sector).any():
        raise AssertionError("annotations overlap the sector")
    img = np.round(img * 255.0) / 255.0

    truth = {"brain": brain, "csp": csp, "lv": lv, "brain_only": brain & ~csp & ~lv,
             "head": inside, "sector": sector, "annotation": notes}
    return Phantom(image=img.astype(np.float32), truth=truth)


def predict(model: torch.nn.Module, image: np.ndarray) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
    """Masks at the source size the way the pipeline derives them, and the [K, 256, 256]
    model-grid probabilities."""
    x = torch.from_numpy(image)[None, None]
    x = F.interpolate(x, size=MODEL_SIZE, mode="bilinear", align_corners=False)
    with torch.no_grad():
        logits = model(x)
    k = logits.shape[1]
    if k == 3:
        prob = torch.sigmoid(logits)
    elif k == 4:
        prob = torch.softmax(logits, dim=1)
    else:
        raise ValueError(f"expected 3 (overlap) or 4 (exclusive) output channels, got {k}")
    full = F.interpolate(prob, size=image.shape, mode="bilinear", align_corners=False)[0].numpy()
    if k == 3:
        masks = {name: full[i] >= 0.5 for i, name in enumerate(OVERLAP_NAMES)}
    else:
        label = full.argmax(axis=0)
        masks = {name: label == i for i, name in enumerate(EXCLUSIVE_NAMES) if i > 0}
        masks["brain"] = label > 0
    return masks, prob[0].numpy()


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def score(model: torch.nn.Module, seed: int, annotations: bool = True) -> Dict[str, float]:
    """Dice per structure, plus the count of CSP/LV pixels outside the head and of brain
    pixels outside the head (`*_outside_head`)."""
    ph = render(seed, annotations)
    masks, _ = predict(model, ph.image)
    result: Dict[str, float] = {}
    for name, mask in masks.items():
        result[name] = dice(mask, ph.truth[name])
        result[f"{name}_outside_head"] = float((mask & ~ph.truth["head"]).sum())
    return result


def _save_png(path: str, image: np.ndarray, masks: Dict[str, np.ndarray]) -> None:
    from PIL import Image

    rgb = np.repeat((image * 255).astype(np.uint8)[..., None], 3, axis=2)
    for name, colour in (("csp", (0, 160, 255)), ("lv", (255, 60, 60))):
        if name in masks:
            rgb[masks[name]] = (0.5 * rgb[masks[name]] + 0.5 * np.array(colour)).astype(np.uint8)
    edge = masks["brain"] ^ np.roll(masks["brain"], 1, axis=0)
    rgb[edge] = (0, 255, 0)
    Image.fromarray(rgb).save(path)


def main(argv: List[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Dice of a fetal-head model on the synthetic phantom.")
    ap.add_argument("--model", required=True, help="TorchScript model: 3 outputs (overlap) or 4 (exclusive)")
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated phantom seeds (default 0,1,2)")
    ap.add_argument("--min-dice", type=float, default=0.95, help="fail below this Dice (default 0.95)")
    ap.add_argument("--no-annotations", action="store_true", help="render without burned-in annotations")
    ap.add_argument("--png", default="", help="write <DIR>/phantom_<seed>.png overlays for inspection")
    args = ap.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--seeds: expected comma-separated integers, got {args.seeds!r}")
    if not os.path.isfile(args.model):
        ap.error(f"--model {args.model}: no such file")

    torch.set_num_threads(2)
    model = torch.jit.load(args.model, map_location="cpu").eval()
    ok = True
    for seed in seeds:
        ph = render(seed, not args.no_annotations)
        masks, _ = predict(model, ph.image)
        parts = []
        for name, mask in masks.items():
            d = dice(mask, ph.truth[name])
            stray = int((mask & ~ph.truth["head"]).sum())
            parts.append(f"{name} {d:.4f} (outside head {stray})")
            ok &= d >= args.min_dice and (name == "brain" or name == "brain_only" or stray == 0)
        print(f"seed {seed}: " + ", ".join(parts))
        if args.png:
            os.makedirs(args.png, exist_ok=True)
            _save_png(os.path.join(args.png, f"phantom_{seed}.png"), ph.image, masks)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

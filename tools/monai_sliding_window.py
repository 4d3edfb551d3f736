#!/usr/bin/env python3
"""Reference sliding-window runner: MONAI's sliding_window_inference on a TorchScript model.

Used by the Rust tests (numerical parity of segnode's own sliding window) and benchmarks.

  python tools/monai_sliding_window.py --model models/swinunetr.pt --input x.npy \
      --output y.npy --roi 96 96 96 --overlap 0.5 --mode gaussian --sw-batch-size 2 \
      [--sigmoid] [--threads 2] [--device cpu|cuda[:N]] [--time --repeat 5]

Input   .npy float32 [N, C, D, H, W] (a 4-D [C, D, H, W] array is run as N=1 and written
        back 4-D). Other float dtypes are converted to float32.
Output  .npy float32 [N, C_out, D, H, W]: the blended model output (logits, or
        probabilities with --sigmoid, applied after blending as segnode does).
Blending is exactly monai.inferers.sliding_window_inference(inputs, roi, sw_batch_size,
model, overlap, mode, sigma_scale=--sigma-scale (0.125), padding_mode=--padding-mode
(constant), cval=--cval (0.0)). MONAI 1.6.1's semantics, for parity:
  - an image dim smaller than roi is padded to roi (half before, the rest after:
    diff // 2 and diff - diff // 2) with padding_mode/cval, and cropped back at the end;
  - step per dim = roi if the (padded) image size equals roi, else
    max(1, int(roi * (1 - overlap))); windows start at 0, step, 2*step, ... up to the
    first start where start + roi >= size, and a start that would overrun the image is
    moved back to size - roi (so the last window ends exactly at the border);
  - windows are run sw_batch_size at a time; each output is multiplied by the importance
    map and accumulated, and the sum is divided by the accumulated importance map;
  - importance map: constant = 1; gaussian = prod over dims of exp(-t^2 / (2 s^2)) with
    t = i - (roi - 1) / 2 for i in 0..roi-1 and s = sigma_scale * roi (not normalised),
    then clamped below at max(min(map), 1e-3).

--time prints one JSON line on stdout after the output is written:
  {"model":..., "input_shape":[...], "roi":[...], "overlap":..., "mode":..., "sw_batch_size":...,
   "device":..., "threads":..., "warmup_s":..., "repeat":K, "times_s":[...], "median_s":...}
The first (warm-up) run is excluded from the median.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import List

import numpy as np
import torch


def run_once(model, x, args) -> torch.Tensor:
    from monai.inferers import sliding_window_inference

    with torch.inference_mode():
        y = sliding_window_inference(
            inputs=x,
            roi_size=args.roi,
            sw_batch_size=args.sw_batch_size,
            predictor=model,
            overlap=args.overlap,
            mode=args.mode,
            sigma_scale=args.sigma_scale,
            padding_mode=args.padding_mode,
            cval=args.cval,
        )
        if args.sigmoid:
            y = torch.sigmoid(y)
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
    return y


def main(argv: List[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="MONAI sliding-window reference runner for TorchScript models")
    ap.add_argument("--model", required=True, help="TorchScript file")
    ap.add_argument("--input", required=True, help=".npy float32 [N,C,D,H,W]")
    ap.add_argument("--output", required=True, help=".npy to write")
    ap.add_argument("--roi", type=int, nargs=3, required=True, metavar=("D", "H", "W"))
    ap.add_argument("--overlap", type=float, default=0.5)
    ap.add_argument("--mode", choices=["constant", "gaussian"], default="constant")
    ap.add_argument("--sigma-scale", type=float, default=0.125)
    ap.add_argument("--padding-mode", default="constant",
                    choices=["constant", "reflect", "replicate", "circular"])
    ap.add_argument("--cval", type=float, default=0.0)
    ap.add_argument("--sw-batch-size", type=int, default=1)
    ap.add_argument("--sigmoid", action="store_true", help="apply sigmoid after blending")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--time", action="store_true", help="print a JSON timing line")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs after the warm-up (with --time)")
    args = ap.parse_args(argv)

    if not 0.0 <= args.overlap < 1.0:
        ap.error("--overlap must be in [0, 1)")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    arr = np.load(args.input)
    squeeze = False
    if arr.ndim == 4:
        arr, squeeze = arr[None], True
    if arr.ndim != 5:
        ap.error(f"input must be [N,C,D,H,W] (or [C,D,H,W]); got shape {arr.shape}")
    x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).to(device)

    model = torch.jit.load(args.model, map_location=device).eval()

    t0 = time.perf_counter()
    y = run_once(model, x, args)
    warm = time.perf_counter() - t0

    out = y.detach().to("cpu", torch.float32).numpy()
    if out.shape[2:] != arr.shape[2:]:
        print(f"error: output spatial shape {out.shape[2:]} != input {arr.shape[2:]}", file=sys.stderr)
        return 1
    if squeeze:
        out = out[0]
    np.save(args.output, out)

    if args.time:
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            run_once(model, x, args)
            times.append(time.perf_counter() - t)
        print(json.dumps({
            "model": args.model,
            "input_shape": list(arr.shape),
            "roi": args.roi,
            "overlap": args.overlap,
            "mode": args.mode,
            "sw_batch_size": args.sw_batch_size,
            "device": str(device),
            "threads": args.threads,
            "warmup_s": round(warm, 4),
            "repeat": args.repeat,
            "times_s": [round(t, 4) for t in times],
            "median_s": round(statistics.median(times), 4) if times else None,
        }))
    return 0


if __name__ == "__main__":
    sys.exit(main())

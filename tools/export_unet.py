#!/usr/bin/env python3
"""Export the 2D U-Net of tools/unet2d.py to TorchScript for segnode.

Model     tools/unet2d.py UNet2D(in_channels, out_channels, base_channels): encoder widths
          base x [1, 2, 4, 8, 16], DoubleConv (conv-BN-ReLU x2) per level, max-pool down,
          ConvTranspose2d up, concatenation skips, 1x1 conv head.
Weights   --checkpoint PATH: a torch.save'd dict {'model_state_dict': state_dict} (also
          accepted: {'state_dict': ...} or a bare state dict; a DataParallel "module."
          prefix is stripped). Loaded strictly: missing/unexpected keys are an error that
          lists them. --random-init --seed N: PyTorch's default initialisation under
          torch.manual_seed(N) (same seed -> identical weights); BatchNorm running
          statistics keep their defaults (mean 0, var 1).
Output    TorchScript (torch.jit.script) file in eval mode. Input [N, C_in, H, W] float32,
          any H, W >= 1 (padded to a multiple of 16 inside, cropped back); output
          [N, C_out, H, W] float32 LOGITS.

Verification: the saved file is re-loaded and compared with the eager model on a random
input of --check-size (default 96x80, deliberately not a multiple of 16 in W); the export
fails when the max abs difference exceeds --tol (default 1e-5). The file is written to a
temporary name and renamed only after it passed.

Example:
  python tools/export_unet.py --random-init --seed 0 --base-channels 8 --out models/unet2d_b8_seed0.pt
  python tools/export_unet.py --checkpoint best.pth --out-channels 3 --out fetal_unet.pt
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Dict, List, Tuple

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from checkpoints import add_weight_source_args, eager_model, max_diff  # noqa: E402
from unet2d import UNet2D, count_parameters  # noqa: E402


def parse_hw(text: str) -> Tuple[int, int]:
    parts = [int(p) for p in text.lower().replace(",", "x").split("x") if p.strip()]
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected S or HxW with positive sizes, got {text!r}")
    return (parts[0], parts[1])


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def export(args: argparse.Namespace) -> Dict[str, object]:
    """Build, script, save to a temporary file, verify against eager, rename."""
    torch.set_num_threads(args.threads)
    t0 = time.time()
    model, source = eager_model(
        args,
        lambda: UNet2D(args.in_channels, args.out_channels, args.base_channels),
        f"UNet2D(in={args.in_channels}, out={args.out_channels}, base={args.base_channels})",
    )
    n_params = count_parameters(model)
    ts = torch.jit.script(model).eval()

    meta = {
        "model": "unet2d",
        "in_channels": args.in_channels,
        "out_channels": args.out_channels,
        "base_channels": args.base_channels,
        "spatial": "any H, W >= 1 (zero-padded to a multiple of 16 inside, output cropped back)",
        "output": "logits",
        "source": source,
        "params": n_params,
        "torch": torch.__version__,
    }
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    tmp = args.out + ".tmp"
    torch.jit.save(ts, tmp, _extra_files={"segnode.json": json.dumps(meta)})
    try:
        loaded = torch.jit.load(tmp, map_location="cpu").eval()
        diff = max_diff(model, loaded, (1, args.in_channels, *args.check_size))
        if not diff <= args.tol:
            raise SystemExit(f"verification failed at {args.check_size}: max abs diff {diff} > {args.tol}")
    except BaseException:
        os.remove(tmp)
        raise
    os.replace(tmp, args.out)
    summary = {"out": args.out, "params": n_params, "source": source, "max_abs_diff": diff,
               "check_size": list(args.check_size), "seconds": round(time.time() - t0, 1)}
    print(f"unet2d in={args.in_channels} out={args.out_channels} base={args.base_channels}: "
          f"params={n_params} max|eager - torchscript| at {args.check_size[0]}x{args.check_size[1]} "
          f"= {diff:.3e} source='{source}' -> {args.out} ({summary['seconds']}s)")
    return summary


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="Export tools/unet2d.py's U-Net to TorchScript (see module doc).")
    add_weight_source_args(ap)
    ap.add_argument("--in-channels", type=positive_int, default=1, help="input channels (default 1)")
    ap.add_argument("--out-channels", type=positive_int, default=3, help="output channels / classes (default 3)")
    ap.add_argument("--base-channels", type=positive_int, default=64,
                    help="first-level width; levels are base x 1,2,4,8,16 (default 64)")
    ap.add_argument("--check-size", type=parse_hw, default=(96, 80),
                    help="HxW of the eager-vs-TorchScript check (default 96x80)")
    ap.add_argument("--tol", type=float, default=1e-5, help="max abs diff allowed (default 1e-5)")
    ap.add_argument("--threads", type=positive_int, default=2)
    ap.add_argument("--out", required=True, help="output TorchScript file")
    return ap


def main(argv: List[str] | None = None) -> int:
    export(parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())

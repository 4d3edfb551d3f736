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
import hashlib
import json
import os
import sys
import time
from typing import Dict, List, Tuple

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

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


def load_state_dict(path: str, trust_pickle: bool) -> Dict[str, torch.Tensor]:
    """The model weights in a checkpoint file (see module doc for the accepted layouts)."""
    if not os.path.isfile(path):
        raise SystemExit(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickled extras (optimizer state, numpy scalars, ...)
        if not trust_pickle:
            raise SystemExit(
                f"{path}: not loadable with weights_only=True ({e}).\n"
                "If this checkpoint comes from a trusted source, re-run with --trust-checkpoint."
            )
        obj = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(obj, dict) and isinstance(obj.get("model_state_dict"), dict):
        sd = obj["model_state_dict"]
    elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        sd = obj["state_dict"]
    elif isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        sd = obj
    else:
        keys = list(obj.keys())[:10] if isinstance(obj, dict) else type(obj).__name__
        raise SystemExit(f"{path}: no 'model_state_dict' in checkpoint (top level: {keys})")
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _listing(keys: List[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return f"{len(keys)} [{shown}{', ...' if len(keys) > limit else ''}]"


def build_eager(args: argparse.Namespace) -> Tuple[UNet2D, str]:
    """The eager model with its weights, and a one-line description of their source."""
    if args.checkpoint:
        model = UNet2D(args.in_channels, args.out_channels, args.base_channels)
        sd = load_state_dict(args.checkpoint, args.trust_checkpoint)
        expected = model.state_dict()
        missing = [k for k in expected if k not in sd]
        unexpected = [k for k in sd if k not in expected]
        if missing or unexpected:
            raise SystemExit(
                f"{args.checkpoint}: state dict does not match UNet2D(in={args.in_channels}, "
                f"out={args.out_channels}, base={args.base_channels}); "
                f"missing {_listing(missing)}; unexpected {_listing(unexpected)}"
            )
        wrong = [f"{k} {tuple(sd[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
                 if tuple(sd[k].shape) != tuple(v.shape)]
        if wrong:
            raise SystemExit(f"{args.checkpoint}: tensor shapes do not match the architecture: "
                             f"{_listing(wrong)}")
        model.load_state_dict(sd, strict=True)
        with open(args.checkpoint, "rb") as f:
            source = "checkpoint sha256:" + hashlib.sha256(f.read()).hexdigest()
    else:
        torch.manual_seed(args.seed)
        model = UNet2D(args.in_channels, args.out_channels, args.base_channels)
        source = f"random-init seed {args.seed}"
    return model.eval(), source


def max_diff(eager: torch.nn.Module, ts: torch.jit.ScriptModule, in_channels: int, hw: Tuple[int, int],
             seed: int = 1234) -> float:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, in_channels, hw[0], hw[1], generator=g)
    with torch.no_grad():
        a = eager(x)
        b = ts(x)
    if a.shape != b.shape:
        raise RuntimeError(f"shape mismatch: eager {tuple(a.shape)} vs TorchScript {tuple(b.shape)}")
    return (a - b).abs().max().item()


def export(args: argparse.Namespace) -> Dict[str, object]:
    """Build, script, save to a temporary file, verify against eager, rename."""
    torch.set_num_threads(args.threads)
    t0 = time.time()
    model, source = build_eager(args)
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
        diff = max_diff(model, loaded, args.in_channels, args.check_size)
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
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="torch.save'd {'model_state_dict': ...} or bare state dict")
    src.add_argument("--random-init", action="store_true", help="random weights, seeded with --seed")
    ap.add_argument("--seed", type=int, default=0, help="seed for --random-init (default 0)")
    ap.add_argument("--trust-checkpoint", action="store_true",
                    help="allow full pickle loading when weights_only loading fails")
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

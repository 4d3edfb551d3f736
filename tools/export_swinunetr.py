#!/usr/bin/env python3
"""Export MONAI SwinUNETR (3D) to TorchScript for segnode.

Model     monai.networks.nets.SwinUNETR(in_channels=4, out_channels=1, feature_size=24)
          as the original DCE service built it (MONAI defaults otherwise: patch 2,
          window 7, depths (2,2,2,2), heads (3,6,12,24), instance norm, "merging").
Weights   --checkpoint PATH: a torch.save'd dict {'model_state_dict': state_dict} (also
          accepted: {'state_dict': ...} or a bare state dict; a DataParallel "module."
          prefix is stripped). Loaded strictly: any missing/unexpected key is an error.
          --random-init --seed N: MONAI's own initialisation under torch.manual_seed(N).
Output    TorchScript file; input  [N, 4, D, H, W] float32 (the pipeline's normalised
          channels), output [N, 1, D, H, W] float32 LOGITS (apply sigmoid for a probability).

Methods (--method)
  script  (default) torch.jit.script of tools/swinunetr_ts.py, a TorchScript-compatible
          re-statement of MONAI 1.6.1's Swin encoder that shares the eager model's modules
          (identical state_dict keys; bit-identical output in our checks). It computes
          window sizes, padding and shifted-window masks from the input shape at run time,
          so the file accepts ANY D, H, W that are multiples of 32 (except 32x32x32, where
          the bottleneck is 1 voxel and InstanceNorm refuses, exactly as in eager MONAI),
          on CPU or CUDA.
  trace   torch.jit.trace at --roi. Shape decisions are frozen: the file only accepts the
          traced spatial size, and the shifted-window masks are constants created on the
          tracing device. Kept as a fallback for architectures the port does not cover.

MONAI 1.6.1 signature notes: `img_size` is gone from SwinUNETR.__init__ (removed after
its deprecation); spatial size is only constrained at run time (multiple of 32 per dim,
checked by `_check_input_size`, which is skipped under tracing/scripting). MONAI's own
class does not script (torch.utils.checkpoint / einops / np.ceil in its forward).

Verification: the saved file is re-loaded and compared with the eager model on a random
input at --roi (max abs diff printed; fails above --tol, default 1e-4); with --method
script also at the extra --check-sizes (default 64x64x32,32x64x96).

Example:
  python tools/export_swinunetr.py --random-init --seed 0 --roi 96 --out models/swinunetr.pt
  python tools/export_swinunetr.py --checkpoint best_metric_model.pth --out dce_swinunetr.pt
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Dict, List, Sequence, Tuple

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from checkpoints import add_weight_source_args, eager_model, max_diff  # noqa: E402


def parse_size(text: str) -> Tuple[int, int, int]:
    parts = [int(p) for p in text.lower().replace(",", "x").split("x") if p.strip()]
    if len(parts) == 1:
        parts = parts * 3
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected S or DxHxW, got {text!r}")
    return (parts[0], parts[1], parts[2])


def make_model(in_channels: int, out_channels: int, feature_size: int) -> torch.nn.Module:
    from monai.networks.nets import SwinUNETR

    return SwinUNETR(in_channels=in_channels, out_channels=out_channels, feature_size=feature_size)


def to_torchscript(model: torch.nn.Module, method: str, roi: Sequence[int], in_channels: int):
    if method == "script":
        from swinunetr_ts import ScriptableSwinUNETR, check_same_keys

        port = ScriptableSwinUNETR(model).eval()
        check_same_keys(model, port)
        return torch.jit.script(port)
    import warnings

    example = torch.randn(1, in_channels, *roi)
    with torch.no_grad(), warnings.catch_warnings():
        # Every shape-dependent branch becomes a constant: that is the documented
        # limitation of the trace method (fixed spatial size), not news per line.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return torch.jit.trace(model, example, check_trace=False)


def time_forward(ts: torch.jit.ScriptModule, size: Sequence[int], in_channels: int, repeat: int) -> Dict[str, float]:
    x = torch.randn(1, in_channels, *size)
    times: List[float] = []
    with torch.inference_mode():
        t = time.perf_counter()
        ts(x)  # warm-up (TorchScript profiling run)
        warm = time.perf_counter() - t
        for _ in range(repeat):
            t = time.perf_counter()
            ts(x)
            times.append(time.perf_counter() - t)
    return {"size": "x".join(map(str, size)), "first_s": round(warm, 3),
            "median_s": round(statistics.median(times), 3) if times else None, "repeat": repeat}


def export(args: argparse.Namespace) -> Dict[str, object]:
    torch.set_num_threads(args.threads)
    t0 = time.time()
    roi = args.roi
    if any(s % 32 for s in roi):
        raise SystemExit(f"--roi {roi}: every dimension must be a multiple of 32")
    model, source = eager_model(
        args,
        lambda: make_model(args.in_channels, args.out_channels, args.feature_size),
        f"SwinUNETR(in={args.in_channels}, out={args.out_channels}, feature_size={args.feature_size})",
    )
    n_params = sum(p.numel() for p in model.parameters())

    method = args.method
    try:
        ts = to_torchscript(model, method, roi, args.in_channels)
    except NotImplementedError as e:
        print(f"scriptable port does not cover this model ({e}); falling back to trace", file=sys.stderr)
        method = "trace"
        ts = to_torchscript(model, method, roi, args.in_channels)

    meta = {
        "model": "swinunetr",
        "monai_class": "monai.networks.nets.SwinUNETR",
        "in_channels": args.in_channels,
        "out_channels": args.out_channels,
        "feature_size": args.feature_size,
        "roi": list(roi),
        "method": method,
        "spatial": "any multiple of 32 per dim" if method == "script" else f"exactly {list(roi)}",
        "output": "logits",
        "source": source,
        "params": n_params,
        "torch": torch.__version__,
    }
    try:
        import monai

        meta["monai"] = monai.__version__
    except Exception:
        pass
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    tmp = args.out + ".tmp"
    torch.jit.save(ts, tmp, _extra_files={"segnode.json": json.dumps(meta)})
    loaded = torch.jit.load(tmp, map_location="cpu").eval()

    diffs: Dict[str, float] = {}
    sizes = [tuple(roi)] + ([tuple(s) for s in args.check_sizes] if method == "script" else [])
    for size in sizes:
        d = max_diff(model, loaded, (1, args.in_channels, *size))
        diffs["x".join(map(str, size))] = d
        print(f"  verify {'x'.join(map(str, size))}: max |eager - torchscript| = {d:.3e}", file=sys.stderr)
        if not d <= args.tol:
            os.remove(tmp)
            raise SystemExit(f"verification failed at {size}: max abs diff {d} > {args.tol}")
    os.replace(tmp, args.out)

    timings = [time_forward(loaded, s, args.in_channels, args.repeat) for s in args.time_sizes]
    summary = {
        "out": args.out, "method": method, "params": n_params, "roi": list(roi),
        "source": source, "max_abs_diff": diffs, "seconds": round(time.time() - t0, 1),
    }
    if timings:
        summary["timings"] = timings
    print(
        f"swinunetr fs{args.feature_size}: params={n_params} roi={'x'.join(map(str, roi))} "
        f"method={method} max_abs_diff={max(diffs.values()):.2e} source='{source}' "
        f"-> {args.out} ({summary['seconds']}s)"
    )
    for t in timings:
        print(f"  forward {t['size']} on cpu x{args.threads} threads: first {t['first_s']}s, "
              f"median {t['median_s']}s over {t['repeat']}")
    return summary


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="Export MONAI SwinUNETR to TorchScript (see module doc).")
    add_weight_source_args(ap)
    ap.add_argument("--roi", type=parse_size, default=(96, 96, 96),
                    help="spatial size for tracing/verification: S or DxHxW (default 96)")
    ap.add_argument("--feature-size", type=int, default=24)
    ap.add_argument("--in-channels", type=int, default=4)
    ap.add_argument("--out-channels", type=int, default=1)
    ap.add_argument("--method", choices=["script", "trace"], default="script")
    ap.add_argument("--check-sizes", type=lambda s: [parse_size(p) for p in s.split(";") if p.strip()],
                    default=[(64, 64, 32), (32, 64, 96)],
                    help="extra sizes verified with --method script, ';'-separated (default '64x64x32;32x64x96')")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--time-sizes", type=lambda s: [parse_size(p) for p in s.split(";") if p.strip()],
                    default=[], help="time a forward at these sizes, e.g. '64;96'")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs after the warm-up (default 3)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True)
    return ap


def main(argv: List[str] | None = None) -> int:
    export(parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())

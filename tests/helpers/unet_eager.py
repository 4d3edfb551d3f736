#!/usr/bin/env python3
"""PyTorch-eager reference output of an exported 2D U-Net, for segnode's equivalence test.

The Rust integration test runs a TorchScript export of tools/unet2d.py through segnode
and compares the result with this script's output. Here the model is rebuilt EAGERLY from
tools/unet2d.py with the given architecture, its weights are taken from the TorchScript
file (`torch.jit.load(...).state_dict()`, loaded strictly), and it is run in eval mode
under torch.no_grad() on the CPU.

    unet_eager.py --model unet.pt --in-channels 1 --out-channels 3 --base-channels 8 \\
                  --input x.f32 --shape N,C,H,W --output y.f32

--input holds N*C*H*W raw little-endian float32 values in C order; --output receives the
eager output [N, out_channels, H, W] in the same format. Prints one JSON line on stdout
({"output_shape": [...], "params": ...}); exits 2 with a message on stderr on bad
arguments, a size mismatch or weights that do not fit the architecture.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Tuple

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tools"))

from unet2d import UNet2D, count_parameters  # noqa: E402


def fail(message: str) -> None:
    print(f"unet_eager.py: {message}", file=sys.stderr)
    sys.exit(2)


def parse_shape(text: str) -> Tuple[int, int, int, int]:
    try:
        dims = [int(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N,C,H,W integers, got {text!r}")
    if len(dims) != 4 or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"expected four positive sizes N,C,H,W, got {text!r}")
    return (dims[0], dims[1], dims[2], dims[3])


def read_f32(path: str, shape: Tuple[int, int, int, int]) -> torch.Tensor:
    data = np.fromfile(path, dtype="<f4")
    expected = int(np.prod(shape))
    if data.size != expected:
        fail(f"{path}: {data.size} float32 values, --shape {','.join(map(str, shape))} needs {expected}")
    return torch.from_numpy(data.astype(np.float32).reshape(shape))


def main(argv: List[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Eager PyTorch output of a TorchScript-exported tools/unet2d.py U-Net.")
    ap.add_argument("--model", required=True, help="TorchScript export of tools/unet2d.py (weights source)")
    ap.add_argument("--in-channels", type=int, required=True)
    ap.add_argument("--out-channels", type=int, required=True)
    ap.add_argument("--base-channels", type=int, required=True)
    ap.add_argument("--input", required=True, help="raw little-endian float32, C order")
    ap.add_argument("--shape", type=parse_shape, required=True, help="input shape N,C,H,W")
    ap.add_argument("--output", required=True, help="where to write the output, raw little-endian float32")
    args = ap.parse_args(argv)
    if args.shape[1] != args.in_channels:
        fail(f"--shape has {args.shape[1]} channels but --in-channels is {args.in_channels}")
    for path in (args.model, args.input):
        if not os.path.isfile(path):
            fail(f"{path}: no such file")

    torch.set_num_threads(2)
    model = UNet2D(args.in_channels, args.out_channels, args.base_channels)
    weights = torch.jit.load(args.model, map_location="cpu").state_dict()
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        fail(f"{args.model}: weights do not fit UNet2D(in={args.in_channels}, out={args.out_channels}, "
             f"base={args.base_channels}): {e}")
    model.eval()

    x = read_f32(args.input, args.shape)
    with torch.no_grad():
        y = model(x)
    y.numpy().astype("<f4").tofile(args.output)
    print(json.dumps({"output_shape": list(y.shape), "params": count_parameters(model)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

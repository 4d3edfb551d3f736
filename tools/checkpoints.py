"""Weights for the model exporters (tools/export_unet.py, tools/export_swinunetr.py): a
trained checkpoint or seeded random initialisation, and the eager-vs-TorchScript check.

Accepted checkpoint layouts: {'model_state_dict': ...}, {'state_dict': ...} or a bare state
dict; a DataParallel 'module.' prefix is stripped. Loading is weights_only unless the
operator vouches for the file (--trust-checkpoint).
"""

from __future__ import annotations

import argparse
import hashlib
import os
from typing import Callable, Dict, List, Sequence, Tuple

import torch


def add_weight_source_args(ap: argparse.ArgumentParser) -> None:
    """--checkpoint | --random-init, --seed, --trust-checkpoint."""
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="torch.save'd {'model_state_dict': ...} or bare state dict")
    src.add_argument("--random-init", action="store_true", help="random weights, seeded with --seed")
    ap.add_argument("--seed", type=int, default=0, help="seed for --random-init (default 0)")
    ap.add_argument("--trust-checkpoint", action="store_true",
                    help="allow full pickle loading when weights_only loading fails")


def load_state_dict(path: str, trust_pickle: bool) -> Dict[str, torch.Tensor]:
    """The model weights in a checkpoint file (see the module doc for the layouts)."""
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


def eager_model(args: argparse.Namespace, make: Callable[[], torch.nn.Module],
                describe: str) -> Tuple[torch.nn.Module, str]:
    """`make()` with the weights the arguments name, in eval mode, and a one-line
    description of their source. `describe` names the architecture in errors."""
    if not args.checkpoint:
        torch.manual_seed(args.seed)
        return make().eval(), f"random-init seed {args.seed}"
    model = make()
    sd = load_state_dict(args.checkpoint, args.trust_checkpoint)
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    if missing or unexpected:
        raise SystemExit(f"{args.checkpoint}: state dict does not match {describe}; "
                         f"missing {_listing(missing)}; unexpected {_listing(unexpected)}")
    wrong = [f"{k} {tuple(sd[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
             if tuple(sd[k].shape) != tuple(v.shape)]
    if wrong:
        raise SystemExit(f"{args.checkpoint}: tensor shapes do not match {describe}: {_listing(wrong)}")
    model.load_state_dict(sd, strict=True)
    with open(args.checkpoint, "rb") as f:
        source = "checkpoint sha256:" + hashlib.sha256(f.read()).hexdigest()
    return model.eval(), source


def max_diff(eager: torch.nn.Module, ts: torch.jit.ScriptModule, shape: Sequence[int], seed: int = 1234) -> float:
    """Largest |eager - TorchScript| on one seeded random input of `shape` ([N, C, ...])."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g)
    with torch.no_grad():
        a = eager(x)
        b = ts(x)
    if a.shape != b.shape:
        raise RuntimeError(f"shape mismatch at {tuple(shape)}: eager {tuple(a.shape)} vs TorchScript {tuple(b.shape)}")
    return (a - b).abs().max().item()

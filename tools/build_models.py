#!/usr/bin/env python3
"""Build every model file the tests, the demo and the benchmarks need.

  $HOME/.cache/segnode/venv/bin/python tools/build_models.py [--out-dir models] [--force]
                                                             [--only dce_kinetic,swinunetr,fetal_head,
                                                                     fetal_head_exclusive,unet2d]

Writes into --out-dir (default: <repo>/models, git-ignored):
  dce_kinetic.pt              default DCE model (tools/build_kinetic_model.py), no weights,
                              [N,4,D,H,W] raw intensities -> [N,1,D,H,W] logits.
  swinunetr_fs24_seed0.pt     MONAI SwinUNETR(in=4, out=1, feature_size=24), random init with
                              seed 0, scripted (any D,H,W multiple of 32), verified against
                              eager MONAI at 96^3 and 64x64x32 (tools/export_swinunetr.py),
                              [N,4,D,H,W] -> [N,1,D,H,W] logits.
  fetal_head_phantom.pt       default fetal-head ultrasound model (tools/build_fetal_head_model.py),
                              no weights, [N,1,H,W] luminance in [0,1] -> [N,3,H,W] logits
                              (brain incl. CSP+LV, CSP, LV; sigmoid, threshold 0.5), checked on
                              the synthetic phantom (tools/fetal_phantom_check.py, Dice >= 0.95).
  fetal_head_phantom_exclusive.pt  the same in exclusive mode: [N,4,H,W] log-probabilities
                              (background, brain without CSP/LV, CSP, LV; softmax + argmax).
  unet2d_b8_seed0.pt          tools/unet2d.py U-Net (in 1, out 3, base 8), random init with
                              seed 0, scripted and verified against eager (tools/export_unet.py),
                              [N,1,H,W] -> [N,3,H,W] logits, any H, W (random weights: tests only).
  manifest.json               what was built, with each file's contract.

Idempotent: a file is rebuilt only when it is missing or older than any of the tool files
it is built from (this script, its builder, helpers); --force rebuilds everything. Each
file is written to a temporary name and renamed, so an interrupted build leaves no
half-written model behind. Building SwinUNETR takes ~1-2 min on 2 CPU threads (most of it
the eager-vs-TorchScript verification at 96^3).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Callable, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)


def _dep(*names: str) -> List[str]:
    return [os.path.join(HERE, n) for n in ("build_models.py",) + names]


def build_kinetic(out: str) -> Dict[str, object]:
    import build_kinetic_model

    tmp = out + ".tmp"
    build_kinetic_model.main(["--out", tmp])
    os.replace(tmp, out)
    return {
        "input": "[N,4,D,H,W] float32 raw intensities: pre, post1, post2, post3 (normalisation none)",
        "output": "[N,1,D,H,W] logits; sigmoid >= 0.7 <=> early relative enhancement >= 0.70",
        "spatial": "any D,H,W >= 1",
    }


def build_swinunetr(out: str) -> Dict[str, object]:
    import export_swinunetr

    summary = export_swinunetr.export(export_swinunetr.parser().parse_args([
        "--random-init", "--seed", "0", "--feature-size", "24", "--roi", "96",
        "--check-sizes", "64x64x32", "--out", out,
    ]))
    return {
        "input": "[N,4,D,H,W] float32 (normalised channels)",
        "output": "[N,1,D,H,W] logits (random weights: architecture/shape/timing only)",
        "spatial": "D,H,W multiples of 32 (not 32x32x32)",
        "params": summary["params"],
        "max_abs_diff_vs_eager": summary["max_abs_diff"],
    }


def _fetal_head(mode: str) -> Callable[[str], Dict[str, object]]:
    def build(out: str) -> Dict[str, object]:
        import build_fetal_head_model
        import fetal_phantom_check
        import torch

        tmp = out + ".unverified"
        build_fetal_head_model.main(["--out", tmp, "--mode", mode])
        dice = fetal_phantom_check.score(torch.jit.load(tmp, map_location="cpu").eval(), seed=0)
        bad = {k: v for k, v in dice.items()
               if (k.endswith("_outside_head") and v > 0 and not k.startswith("brain"))
               or (not k.endswith("_outside_head") and v < 0.95)}
        if bad:
            os.remove(tmp)
            raise SystemExit(f"fetal_head_phantom ({mode}): fails the phantom check (Dice < 0.95 or "
                             f"CSP/LV outside the head): {bad}")
        os.replace(tmp, out)
        if mode == "overlap":
            output = ("[N,3,H,W] logits: 0 brain (whole intracranial content incl. CSP and LV), "
                      "1 CSP, 2 LV; per-class sigmoid, threshold 0.5 (segments overlap)")
        else:
            output = ("[N,4,H,W] log-probabilities: 0 background, 1 brain without CSP/LV, 2 CSP, "
                      "3 LV; softmax + argmax (classes exclusive)")
        return {
            "input": "[N,1,H,W] float32 luminance in [0,1] (8-bit values / 255; normalisation range 0..255)",
            "output": output,
            "spatial": "any H,W >= 1; tuned for 256x256 resized from a ~959x661 frame",
            "phantom_dice_seed0": {k: round(v, 4) for k, v in dice.items() if not k.endswith("_outside_head")},
        }

    return build


def build_unet2d(out: str) -> Dict[str, object]:
    import export_unet

    summary = export_unet.export(export_unet.parser().parse_args([
        "--random-init", "--seed", "0", "--in-channels", "1", "--out-channels", "3",
        "--base-channels", "8", "--out", out,
    ]))
    return {
        "input": "[N,1,H,W] float32",
        "output": "[N,3,H,W] logits (random weights: architecture/shape/equivalence tests only)",
        "spatial": "any H,W >= 1 (zero-padded to a multiple of 16 inside, cropped back)",
        "architecture": "tools/unet2d.py UNet2D(in_channels=1, out_channels=3, base_channels=8)",
        "params": summary["params"],
        "max_abs_diff_vs_eager": summary["max_abs_diff"],
    }


_FETAL_DEPS = _dep("build_fetal_head_model.py", "fetal_phantom_check.py")

TARGETS: Dict[str, tuple] = {
    "dce_kinetic": ("dce_kinetic.pt", _dep("build_kinetic_model.py"), build_kinetic),
    "swinunetr": ("swinunetr_fs24_seed0.pt", _dep("export_swinunetr.py", "swinunetr_ts.py", "checkpoints.py"), build_swinunetr),
    "fetal_head": ("fetal_head_phantom.pt", _FETAL_DEPS, _fetal_head("overlap")),
    "fetal_head_exclusive": ("fetal_head_phantom_exclusive.pt", _FETAL_DEPS, _fetal_head("exclusive")),
    "unet2d": ("unet2d_b8_seed0.pt", _dep("export_unet.py", "unet2d.py", "checkpoints.py"), build_unet2d),
}


def up_to_date(path: str, deps: List[str]) -> bool:
    if not os.path.isfile(path):
        return False
    newest = max(os.path.getmtime(d) for d in deps if os.path.exists(d))
    return os.path.getmtime(path) > newest


def main(argv: List[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build segnode's test/demo/benchmark models.")
    ap.add_argument("--out-dir", default=os.path.join(REPO, "models"))
    ap.add_argument("--force", action="store_true", help="rebuild even when up to date")
    ap.add_argument("--only", default=",".join(TARGETS), help=f"comma-separated subset of {list(TARGETS)}")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(2)
    os.makedirs(args.out_dir, exist_ok=True)
    manifest_path = os.path.join(args.out_dir, "manifest.json")
    manifest: Dict[str, object] = {}
    if os.path.isfile(manifest_path):
        try:
            with open(manifest_path) as f:
                manifest = json.load(f)
        except (OSError, ValueError):
            manifest = {}

    wanted = [t.strip() for t in args.only.split(",") if t.strip()]
    unknown = [t for t in wanted if t not in TARGETS]
    if unknown:
        ap.error(f"unknown target(s) {unknown}; known: {list(TARGETS)}")

    for name in wanted:
        filename, deps, builder = TARGETS[name]
        out = os.path.join(args.out_dir, filename)
        if not args.force and up_to_date(out, deps) and name in manifest:
            print(f"[build_models] {name}: up to date ({out})")
            continue
        print(f"[build_models] {name}: building {out}")
        t0 = time.time()
        info = builder(out)
        info.update({"file": filename, "built_s": round(time.time() - t0, 1), "torch": torch.__version__})
        manifest[name] = info
        with open(manifest_path + ".tmp", "w") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
        os.replace(manifest_path + ".tmp", manifest_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

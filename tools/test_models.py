#!/usr/bin/env python3
"""Plain-script tests for the model tooling (pytest is not installed).

  $HOME/.cache/segnode/venv/bin/python tools/test_models.py [-k NAME] [--keep DIR]

Runs every test_* function, prints PASS/FAIL per test, exits non-zero on any failure.
Everything is built fresh into a temporary directory; CPU only, 2 threads, ~2-3 minutes
(the fetal-head and U-Net tests take seconds: -k fetal, -k unet2d).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
torch.set_num_threads(2)

import build_fetal_head_model  # noqa: E402
import build_kinetic_model  # noqa: E402
import export_swinunetr  # noqa: E402
import export_unet  # noqa: E402
import fetal_phantom_check  # noqa: E402
from unet2d import UNet2D  # noqa: E402

WORK = ""  # set in main()
LOGIT_07 = math.log(0.7 / 0.3)


def _kinetic_path() -> str:
    path = os.path.join(WORK, "dce_kinetic.pt")
    if not os.path.exists(path):
        assert build_kinetic_model.main(["--out", path]) == 0
    return path


def _fetal_path(mode: str) -> str:
    path = os.path.join(WORK, f"fetal_head_{mode}.pt")
    if not os.path.exists(path):
        assert build_fetal_head_model.main(["--out", path, "--mode", mode]) == 0
    return path


def _rician(shape, sigma: float, gen: torch.Generator, signal=0.0) -> torch.Tensor:
    a = torch.randn(shape, generator=gen) * sigma + signal
    b = torch.randn(shape, generator=gen) * sigma
    return torch.sqrt(a * a + b * b)


def _phantom(noise: float = 0.0, seed: int = 0, size: int = 40):
    """Air around a tissue block (RE 10 %) holding a spherical lesion (RE 130 %)."""
    d = h = w = size
    z, y, x = torch.meshgrid(torch.arange(d), torch.arange(h), torch.arange(w), indexing="ij")
    c = size // 2
    r2 = (z - c) ** 2 + (y - c) ** 2 + (x - c) ** 2
    lesion = r2 <= 7 ** 2
    core = r2 <= 4 ** 2
    tissue = torch.zeros(d, h, w, dtype=torch.bool)
    tissue[4:-4, 6:-6, 6:-6] = True
    s0 = torch.where(tissue, torch.tensor(300.0), torch.tensor(0.0))
    s1 = s0 * 1.10
    s1 = torch.where(lesion, torch.tensor(300.0 * 2.30), s1)
    s2 = torch.where(lesion, torch.tensor(300.0 * 2.20), s0 * 1.15)  # washout in the lesion
    s3 = torch.where(lesion, torch.tensor(300.0 * 2.10), s0 * 1.20)  # persistent in tissue
    vol = torch.stack([s0, s1, s2, s3])[None]
    if noise > 0:
        g = torch.Generator().manual_seed(seed)
        vol = _rician(vol.shape, noise, g, vol)
    # tissue far enough from the lesion that the 3x3x3 mean cannot reach it
    tissue_far = tissue & (r2 > 9 ** 2)
    air = ~tissue
    return vol.float(), core, tissue_far, air


def test_kinetic_phantom_noise_free():
    m = torch.jit.load(_kinetic_path())
    x, core, tissue, air = _phantom()
    p = torch.sigmoid(m(x))[0, 0]
    assert p.shape == core.shape
    assert p[core].min() > 0.7, f"lesion core min p {p[core].min():.3f}"
    assert p[tissue].max() < 0.7, f"tissue max p {p[tissue].max():.3f}"
    assert p[air].max() < 0.7, f"air max p {p[air].max():.3f}"


def test_kinetic_phantom_rician_noise():
    m = torch.jit.load(_kinetic_path())
    for sigma in (5.0, 20.0):  # tissue SNR 60 and 15
        x, core, tissue, air = _phantom(noise=sigma, seed=int(sigma))
        p = torch.sigmoid(m(x))[0, 0]
        assert p[core].min() > 0.7, f"sigma {sigma}: lesion core min p {p[core].min():.3f}"
        assert p[tissue].max() < 0.7, f"sigma {sigma}: tissue max p {p[tissue].max():.3f}"
        assert (p[air] >= 0.7).sum() == 0, f"sigma {sigma}: {(p[air] >= 0.7).sum()} air voxels >= 0.7"


def test_kinetic_air_only_patch():
    """A patch holding nothing but Rician background noise must stay empty."""
    m = torch.jit.load(_kinetic_path())
    g = torch.Generator().manual_seed(7)
    x = _rician((1, 4, 64, 64, 64), 10.0, g)
    n = int((m(x) >= LOGIT_07).sum())
    assert n == 0, f"{n} voxels >= 0.7 in an air-only patch"


def test_kinetic_calibration_is_exact():
    """p >= 0.7 exactly where RE >= 0.70 (uniform volumes, no noise)."""
    m = torch.jit.load(_kinetic_path())
    c = m.contract()
    assert abs(c["re_threshold"] - 0.70) < 1e-12 and abs(c["prob_threshold"] - 0.7) < 1e-12
    for re, expect in ((0.69, False), (0.71, True), (0.0, False), (1.3, True), (0.1, False)):
        s0 = torch.full((1, 1, 6, 7, 8), 250.0)
        x = torch.cat([s0, s0 * (1 + re), s0, s0], 1)
        p = torch.sigmoid(m(x))
        got = bool((p >= 0.7).all())
        assert got == expect and bool((p >= 0.7).any()) == expect, f"RE {re}: p {p.flatten()[0]:.4f}"
        want_logit = (re - 0.70) / 0.10 + LOGIT_07
        assert torch.allclose(m(x), torch.full_like(p, want_logit), atol=1e-3), f"RE {re}: logit"


def test_kinetic_degenerate_inputs():
    m = torch.jit.load(_kinetic_path())
    for shape in [(1, 4, 1, 1, 1), (3, 4, 1, 5, 1), (2, 4, 2, 3, 4), (1, 4, 96, 96, 96)]:
        y = m(torch.zeros(shape))
        assert y.shape == (shape[0], 1) + shape[2:], f"{shape} -> {tuple(y.shape)}"
        assert torch.isfinite(y).all(), f"non-finite output on zeros {shape}"
        assert (torch.sigmoid(y) < 0.7).all(), f"zeros {shape} produced lesion"
    bad = torch.rand(2, 4, 5, 6, 7) * 100
    bad[0, 0, 0, 0, 0] = float("nan")
    bad[1, 1, 1, 1, 1] = float("inf")
    bad[1, 2, 2, 2, 2] = -float("inf")
    assert torch.isfinite(m(bad)).all(), "non-finite output for NaN/inf input"
    neg = torch.randn(1, 4, 5, 6, 7) * 100  # e.g. signed (subtracted) data
    assert torch.isfinite(m(neg)).all()
    assert m(torch.rand(1, 4, 4, 4, 4, dtype=torch.float64)).dtype == torch.float64
    assert m((torch.rand(1, 4, 4, 4, 4) * 100).to(torch.int16)).dtype == torch.float32
    try:
        m(torch.zeros(1, 1, 4, 4, 4))
    except Exception as e:  # too few channels must be a clear error, not garbage
        assert "channels" in str(e), str(e)
    else:
        raise AssertionError("1-channel input accepted")


def test_kinetic_batch_independent_and_large():
    """Per-sample statistics: a sample's output does not depend on its batch mates; the
    subsampled-statistics path (> 2 M voxels) works."""
    m = torch.jit.load(_kinetic_path())
    x, core, tissue, air = _phantom(noise=5.0)
    other = torch.rand_like(x) * 5000
    both = m(torch.cat([x, other]))
    assert torch.equal(both[:1], m(x)), "batch mates changed a sample's output"
    big = torch.zeros(1, 4, 64, 192, 192)
    big[:, :, 12:52, 76:116, 76:116] = x
    p = torch.sigmoid(m(big))[0, 0, 12:52, 76:116, 76:116]
    assert p[core].min() > 0.7 and p[tissue].max() < 0.7


def test_swinunetr_export_matches_eager():
    out = os.path.join(WORK, "swin_fs24_s0_r64.pt")
    export_swinunetr.main(["--random-init", "--seed", "0", "--roi", "64", "--check-sizes", "32x64x96",
                           "--out", out])
    ts = torch.jit.load(out)
    meta = json.loads(_extra(out)["segnode.json"])
    assert meta["method"] == "script" and meta["roi"] == [64, 64, 64], meta
    torch.manual_seed(0)
    eager = export_swinunetr.make_model(4, 1, 24).eval()
    for size in [(64, 64, 64), (64, 32, 96)]:
        x = torch.randn(1, 4, *size)
        with torch.no_grad():
            a, b = eager(x), ts(x)
        assert b.shape == (1, 1) + size, f"{size}: {tuple(b.shape)}"
        d = (a - b).abs().max().item()
        assert d <= 1e-4, f"{size}: max abs diff {d}"
    try:
        ts(torch.randn(1, 4, 48, 64, 64))
    except Exception as e:
        assert "multiple of 32" in str(e), str(e)
    else:
        raise AssertionError("48-voxel dimension accepted")


def test_swinunetr_checkpoint_roundtrip():
    """--checkpoint {'model_state_dict': ...} (with a DataParallel prefix) exports the same weights."""
    torch.manual_seed(123)
    src = export_swinunetr.make_model(4, 1, 24).eval()
    ckpt = os.path.join(WORK, "ckpt.pth")
    torch.save({"epoch": 7, "model_state_dict": {"module." + k: v for k, v in src.state_dict().items()}}, ckpt)
    out = os.path.join(WORK, "swin_ckpt_trace.pt")
    export_swinunetr.main(["--checkpoint", ckpt, "--roi", "64", "--method", "trace", "--out", out])
    ts = torch.jit.load(out)
    x = torch.randn(1, 4, 64, 64, 64)
    with torch.no_grad():
        d = (src(x) - ts(x)).abs().max().item()
    assert d <= 1e-4, f"max abs diff {d}"
    bad = os.path.join(WORK, "bad.pth")
    torch.save({"model_state_dict": {"nope": torch.zeros(1)}}, bad)
    r = subprocess.run([sys.executable, os.path.join(HERE, "export_swinunetr.py"), "--checkpoint", bad,
                        "--out", os.path.join(WORK, "bad.pt")], capture_output=True, text=True)
    assert r.returncode != 0 and "missing" in r.stderr, r.stderr[-500:]


def test_sliding_window_runner():
    runner = os.path.join(HERE, "monai_sliding_window.py")
    kin = _kinetic_path()
    x, core, _, _ = _phantom(noise=5.0)
    x = x[:, :, :33, :, :37].contiguous()  # odd sizes, not multiples of the roi
    inp, outp = os.path.join(WORK, "x.npy"), os.path.join(WORK, "y.npy")
    np.save(inp, x.numpy())
    for mode in ("constant", "gaussian"):
        r = subprocess.run([sys.executable, runner, "--model", kin, "--input", inp, "--output", outp,
                            "--roi", "16", "16", "16", "--overlap", "0.5", "--mode", mode,
                            "--sw-batch-size", "3", "--sigmoid", "--time", "--repeat", "2"],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        y = np.load(outp)
        assert y.shape == (1, 1) + tuple(x.shape[2:]), f"{mode}: {y.shape}"
        assert np.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
        timing = json.loads(r.stdout.strip().splitlines()[-1])
        assert timing["repeat"] == 2 and len(timing["times_s"]) == 2 and timing["median_s"] > 0
    # one window covering the whole image with constant blending == the plain model output
    x2 = torch.rand(2, 4, 8, 9, 10) * 300
    np.save(inp, x2.numpy())
    r = subprocess.run([sys.executable, runner, "--model", kin, "--input", inp, "--output", outp,
                        "--roi", "8", "9", "10", "--mode", "constant"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    direct = torch.jit.load(kin)(x2).numpy()
    assert np.load(outp).shape == direct.shape and np.allclose(np.load(outp), direct, atol=1e-5)


def test_sliding_window_runner_swinunetr():
    runner = os.path.join(HERE, "monai_sliding_window.py")
    model = os.path.join(WORK, "swin_fs24_s0_r64.pt")
    if not os.path.exists(model):
        export_swinunetr.main(["--random-init", "--seed", "0", "--roi", "64", "--check-sizes", "",
                               "--out", model])
    x = np.random.default_rng(0).standard_normal((1, 4, 40, 70, 64)).astype(np.float32)
    inp, outp = os.path.join(WORK, "xs.npy"), os.path.join(WORK, "ys.npy")
    np.save(inp, x)
    r = subprocess.run([sys.executable, runner, "--model", model, "--input", inp, "--output", outp,
                        "--roi", "32", "64", "64", "--overlap", "0.5", "--mode", "gaussian",
                        "--sw-batch-size", "2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    y = np.load(outp)
    assert y.shape == (1, 1, 40, 70, 64), y.shape
    assert np.isfinite(y).all()


def test_fetal_head_phantom_dice():
    """Phantom rendered at 959x661 with speckle and annotations, run at 256x256: Dice >= 0.95
    per structure in both modes, and no CSP/LV outside the head."""
    for mode, seed in (("overlap", 0), ("exclusive", 1)):
        m = torch.jit.load(_fetal_path(mode))
        result = fetal_phantom_check.score(m, seed)
        print(f"  {mode} seed {seed}: " + ", ".join(f"{k} {v:.4f}" for k, v in result.items()
                                                     if not k.endswith("_outside_head")))
        for name, value in result.items():
            if name.endswith("_outside_head"):
                if not name.startswith("brain"):
                    assert value == 0, f"{mode}: {value:.0f} {name} pixels"
            else:
                assert value >= 0.95, f"{mode} seed {seed}: Dice {name} {value:.4f}"


def test_fetal_head_contract():
    """Shapes at odd sizes, finite logits, overlap nesting, exclusive log-probabilities,
    empty output for frames without a head (blank, empty sector, annotations only)."""
    ov = torch.jit.load(_fetal_path("overlap"))
    ex = torch.jit.load(_fetal_path("exclusive"))
    assert ov.class_names() == ["brain", "csp", "lv"] and ov.contract()["out_channels"] == 3.0
    assert ex.class_names() == ["background", "brain_only", "csp", "lv"] and ex.contract()["exclusive"] == 1.0
    ph = fetal_phantom_check.render(2)
    x = torch.nn.functional.interpolate(torch.from_numpy(ph.image)[None, None], size=(256, 256),
                                        mode="bilinear", align_corners=False)
    p = torch.sigmoid(ov(x))
    assert (p[:, 0] + 1e-6 >= p[:, 1:].amax(dim=1)).all(), "brain must contain CSP and LV"
    lp = ex(x)
    assert torch.allclose(lp.exp().sum(1), torch.ones(1, 256, 256), atol=1e-5)
    assert torch.equal(lp.argmax(1) > 0, p[:, 0] >= 0.5), "exclusive brain != overlap brain"
    empty = fetal_phantom_check.render(3, head=False).image  # speckled sector and annotations
    notes = np.zeros((fetal_phantom_check.HEIGHT, fetal_phantom_check.WIDTH), dtype=np.float32)
    fetal_phantom_check._annotations(notes, np.random.default_rng(0))
    for img in (torch.zeros(1, 1, 256, 256), torch.from_numpy(empty)[None, None], torch.from_numpy(notes)[None, None]):
        img = torch.nn.functional.interpolate(img, size=(256, 256), mode="bilinear", align_corners=False)
        assert (torch.sigmoid(ov(img)) < 0.5).all(), "segmented a frame without a head"
        assert (ex(img).argmax(1) == 0).all(), "segmented a frame without a head (exclusive)"
    for shape in [(1, 1, 1, 1), (3, 1, 17, 5), (2, 1, 200, 333)]:
        for m, k in ((ov, 3), (ex, 4)):
            y = m(torch.rand(shape))
            assert y.shape == (shape[0], k) + shape[2:] and torch.isfinite(y).all(), (shape, tuple(y.shape))
    bad = torch.rand(1, 1, 32, 32)
    bad[0, 0, 3, 3] = float("nan")
    assert torch.isfinite(ov(bad)).all()
    try:
        ov(torch.zeros(1, 3, 16, 16))
    except Exception as e:
        assert "[N, 1, H, W]" in str(e), str(e)
    else:
        raise AssertionError("3-channel input accepted")


def test_unet2d_export_matches_eager():
    """Scripted == eager (<= 1e-5) at sizes that are and are not multiples of 16; same seed,
    same weights; output cropped back to the input size."""
    out = os.path.join(WORK, "unet_b8_s0.pt")
    export_unet.main(["--random-init", "--seed", "0", "--base-channels", "8", "--out", out])
    ts = torch.jit.load(out)
    meta = json.loads(_extra(out)["segnode.json"])
    assert meta["base_channels"] == 8 and meta["out_channels"] == 3, meta
    torch.manual_seed(0)
    eager = UNet2D(1, 3, 8).eval()
    sd = ts.state_dict()
    assert all(torch.equal(v, sd[k]) for k, v in eager.state_dict().items()), "seed 0 weights differ"
    for shape in [(1, 1, 96, 80), (2, 1, 64, 64), (1, 1, 37, 101), (1, 1, 1, 1)]:
        x = torch.randn(shape)
        with torch.no_grad():
            a, b = eager(x), ts(x)
        assert b.shape == (shape[0], 3) + shape[2:], f"{shape}: {tuple(b.shape)}"
        d = (a - b).abs().max().item()
        assert d <= 1e-5, f"{shape}: max abs diff {d}"
    full = UNet2D(1, 3, 64)
    n = sum(p.numel() for p in full.parameters())
    assert 31_000_000 < n < 31_100_000, f"base 64 U-Net has {n} parameters"


def test_unet2d_checkpoint_and_eager_helper():
    """--checkpoint round trip (DataParallel prefix), clear key-mismatch error, and the Rust
    test's helper tests/helpers/unet_eager.py reproducing the TorchScript output."""
    torch.manual_seed(5)
    src = UNet2D(2, 4, 4).eval()
    ckpt = os.path.join(WORK, "unet_ckpt.pth")
    torch.save({"epoch": 1, "model_state_dict": {"module." + k: v for k, v in src.state_dict().items()}}, ckpt)
    out = os.path.join(WORK, "unet_ckpt.pt")
    export_unet.main(["--checkpoint", ckpt, "--in-channels", "2", "--out-channels", "4", "--base-channels", "4",
                      "--out", out])
    ts = torch.jit.load(out)
    x = torch.randn(2, 2, 50, 70)
    with torch.no_grad():
        want = src(x)
    assert (ts(x) - want).abs().max().item() <= 1e-5
    r = subprocess.run([sys.executable, os.path.join(HERE, "export_unet.py"), "--checkpoint", ckpt,
                        "--base-channels", "4", "--out", os.path.join(WORK, "bad.pt")], capture_output=True, text=True)
    assert r.returncode != 0 and "shapes do not match" in r.stderr, r.stderr[-500:]
    bad = os.path.join(WORK, "unet_bad.pth")
    torch.save({"model_state_dict": {"nope": torch.zeros(1)}}, bad)
    r = subprocess.run([sys.executable, os.path.join(HERE, "export_unet.py"), "--checkpoint", bad,
                        "--out", os.path.join(WORK, "bad.pt")], capture_output=True, text=True)
    assert r.returncode != 0 and "missing" in r.stderr and "unexpected 1 [nope]" in r.stderr, r.stderr[-500:]
    assert not os.path.exists(os.path.join(WORK, "bad.pt"))

    helper = os.path.join(os.path.dirname(HERE), "tests", "helpers", "unet_eager.py")
    xin, yout = os.path.join(WORK, "x.f32"), os.path.join(WORK, "y.f32")
    x.numpy().astype("<f4").tofile(xin)
    r = subprocess.run([sys.executable, helper, "--model", out, "--in-channels", "2", "--out-channels", "4",
                        "--base-channels", "4", "--input", xin, "--shape", "2,2,50,70", "--output", yout],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["output_shape"] == [2, 4, 50, 70]
    got = np.fromfile(yout, dtype="<f4").reshape(2, 4, 50, 70)
    assert np.abs(got - want.numpy()).max() <= 1e-5
    r = subprocess.run([sys.executable, helper, "--model", out, "--in-channels", "2", "--out-channels", "4",
                        "--base-channels", "8", "--input", xin, "--shape", "2,2,50,70", "--output", yout],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "do not fit" in r.stderr, r.stderr[-500:]


def _extra(path: str) -> dict:
    files = {"segnode.json": ""}
    torch.jit.load(path, _extra_files=files)
    return files


def main() -> int:
    global WORK
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", default="", help="run only tests whose name contains this")
    ap.add_argument("--keep", default="", help="build into this directory and keep it")
    args = ap.parse_args()
    tmp = None
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        WORK = args.keep
    else:
        tmp = tempfile.TemporaryDirectory(prefix="segnode-models-")
        WORK = tmp.name
    tests = [(n, f) for n, f in list(globals().items()) if n.startswith("test_") and callable(f)]
    tests = [(n, f) for n, f in tests if args.k in n]
    failed = []
    for name, fn in tests:
        t0 = time.time()
        try:
            fn()
        except Exception:
            failed.append(name)
            print(f"FAIL {name} ({time.time() - t0:.1f}s)")
            traceback.print_exc()
        else:
            print(f"PASS {name} ({time.time() - t0:.1f}s)")
        sys.stdout.flush()
    print(f"{len(tests) - len(failed)}/{len(tests)} passed" + (f"; failed: {', '.join(failed)}" if failed else ""))
    if tmp is not None:
        tmp.cleanup()
    return 1 if failed or not tests else 0


if __name__ == "__main__":
    sys.exit(main())

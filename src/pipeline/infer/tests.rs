//! Sliding-window tests with tiny TorchScript models traced from Rust (no Python needed):
//! the blended output is checked against a direct f64 re-computation of MONAI's rule
//! `Σ_windows w·f(window) / Σ_windows w` over the zero-padded volume, then cropped.

use std::path::{Path, PathBuf};

use ndarray::Array4;
use tch::{CModule, Kind, Tensor};

use super::{Blending, DeviceChoice, InferError, InferSettings, Model, WindowPlan};

/// The position-dependent term the test model adds, so that blending weights matter.
fn ramp(z: usize, y: usize, x: usize) -> f64 {
    0.25 * z as f64 + 0.5 * y as f64 - 0.75 * x as f64
}

/// A model `[N, 2, roi] -> [N, 2, roi]`: channel 0 = `0.5·(x0 + x1) + ramp(window position)`,
/// channel 1 = `-x0`.
fn traced_model(dir: &Path, roi: [usize; 3]) -> PathBuf {
    let [d, h, w] = roi;
    let r: Vec<f32> = (0..d)
        .flat_map(|z| (0..h).flat_map(move |y| (0..w).map(move |x| ramp(z, y, x) as f32)))
        .collect();
    let r = Tensor::from_slice(&r).view([1, 1, d as i64, h as i64, w as i64]);
    let example = Tensor::zeros(
        [1, 2, d as i64, h as i64, w as i64],
        (Kind::Float, tch::Device::Cpu),
    );
    let mut f = |xs: &[Tensor]| {
        let x = &xs[0];
        let c0 = x.sum_dim_intlist([1i64].as_slice(), true, Kind::Float) * 0.5 + &r;
        let c1 = -x.narrow(1, 0, 1);
        vec![Tensor::cat(&[c0, c1], 1)]
    };
    let module = CModule::create_by_tracing("RampModel", "forward", &[example], &mut f).unwrap();
    let path = dir.join("ramp.pt");
    module.save(&path).unwrap();
    path
}

/// MONAI's importance map in f64 (see `blend`).
fn weight(roi: [usize; 3], blending: Blending, sigma_scale: f64, p: [usize; 3]) -> f64 {
    match blending {
        Blending::Constant => 1.0,
        Blending::Gaussian => {
            let g = |i: usize, n: usize| {
                let t = i as f64 - (n as f64 - 1.0) / 2.0;
                let s = sigma_scale * n as f64;
                (-(t * t) / (2.0 * s * s)).exp()
            };
            let v = g(p[0], roi[0]) * g(p[1], roi[1]) * g(p[2], roi[2]);
            // The minimum of the map is at a corner; MONAI clamps at max(min, 1e-3).
            let floor = (g(0, roi[0]) * g(0, roi[1]) * g(0, roi[2])).max(1e-3);
            v.max(floor)
        }
    }
}

/// The expected `[2, D, H, W]` output, by brute force in f64.
fn reference(input: &Array4<f32>, s: &InferSettings) -> Array4<f64> {
    let (_, d, h, w) = input.dim();
    let plan = WindowPlan::new([d, h, w], s.roi, s.overlap);
    let [pd, ph, pw] = plan.padded;
    let padded = |c: usize, z: usize, y: usize, x: usize| -> f64 {
        let (b, i) = (plan.pad_before, [z, y, x]);
        let inside = (0..3).all(|k| i[k] >= b[k] && i[k] - b[k] < plan.image[k]);
        if inside {
            input[[c, z - b[0], y - b[1], x - b[2]]] as f64
        } else {
            0.0
        }
    };
    let mut num = Array4::<f64>::zeros((2, pd, ph, pw));
    let mut den = Array4::<f64>::zeros((1, pd, ph, pw));
    for [z0, y0, x0] in plan.windows() {
        for (lz, ly, lx) in itertools3(s.roi) {
            let (z, y, x) = (z0 + lz, y0 + ly, x0 + lx);
            let wt = weight(s.roi, s.blending, s.sigma_scale, [lz, ly, lx]);
            let f0 = 0.5 * (padded(0, z, y, x) + padded(1, z, y, x)) + ramp(lz, ly, lx);
            let f1 = -padded(0, z, y, x);
            num[[0, z, y, x]] += wt * f0;
            num[[1, z, y, x]] += wt * f1;
            den[[0, z, y, x]] += wt;
        }
    }
    let b = plan.pad_before;
    Array4::from_shape_fn((2, d, h, w), |(c, z, y, x)| {
        let (z, y, x) = (z + b[0], y + b[1], x + b[2]);
        num[[c, z, y, x]] / den[[0, z, y, x]]
    })
}

fn itertools3(n: [usize; 3]) -> impl Iterator<Item = (usize, usize, usize)> {
    (0..n[0]).flat_map(move |z| (0..n[1]).flat_map(move |y| (0..n[2]).map(move |x| (z, y, x))))
}

fn random_input(shape: (usize, usize, usize, usize)) -> Array4<f32> {
    tch::manual_seed(7);
    let (c, d, h, w) = shape;
    let t = Tensor::randn(
        [c as i64, d as i64, h as i64, w as i64],
        (Kind::Float, tch::Device::Cpu),
    );
    let v = Vec::<f32>::try_from(t.flatten(0, -1)).unwrap();
    Array4::from_shape_vec(shape, v).unwrap()
}

fn max_abs_diff(a: &Array4<f32>, b: &Array4<f64>) -> f64 {
    a.iter()
        .zip(b.iter())
        .map(|(&x, &y)| (x as f64 - y).abs())
        .fold(0.0, f64::max)
}

fn settings(roi: [usize; 3], blending: Blending, sw_batch_size: usize) -> InferSettings {
    InferSettings {
        roi,
        overlap: 0.5,
        sw_batch_size,
        blending,
        device: DeviceChoice::Cpu,
        ..InferSettings::default()
    }
}

#[test]
fn blended_output_matches_monai_rule_with_padding_and_batches() {
    let dir = tempfile::tempdir().unwrap();
    let roi = [4, 12, 6];
    let path = traced_model(dir.path(), roi);
    // H = 9 < 12 → padded 1 before / 2 after; D starts [0, 1]; W starts [0, 3, 6, 7]:
    // 8 windows, so batches of 3 end with a partial batch of 2.
    let input = random_input((2, 5, 9, 13));
    for blending in [Blending::Constant, Blending::Gaussian] {
        for batch in [1, 3] {
            let s = settings(roi, blending, batch);
            let model = Model::load(&path, &s, 2).unwrap();
            assert_eq!(model.out_channels(), 2);
            let calls = std::cell::RefCell::new(Vec::new());
            let out = model
                .sliding_window(&input, &|done, total| {
                    calls.borrow_mut().push((done, total))
                })
                .unwrap();
            assert_eq!(out.dim(), (2, 5, 9, 13));
            let diff = max_abs_diff(&out, &reference(&input, &s));
            assert!(diff < 1e-4, "{blending} batch {batch}: max abs diff {diff}");
            let expected: Vec<_> = if batch == 1 {
                (1..=8).map(|i| (i, 8)).collect()
            } else {
                vec![(3, 8), (6, 8), (8, 8)]
            };
            assert_eq!(*calls.borrow(), expected);
        }
    }
}

#[test]
fn gaussian_and_constant_blending_differ_where_windows_overlap() {
    // Guards against a blend that ignores its weights: with a position-dependent model the
    // two modes must give different values in overlaps.
    let dir = tempfile::tempdir().unwrap();
    let roi = [4, 4, 4];
    let path = traced_model(dir.path(), roi);
    let input = random_input((2, 6, 4, 4));
    let run = |b| {
        let s = settings(roi, b, 2);
        Model::load(&path, &s, 2)
            .unwrap()
            .sliding_window(&input, &|_, _| {})
            .unwrap()
    };
    let (c, g) = (run(Blending::Constant), run(Blending::Gaussian));
    let diff = c
        .iter()
        .zip(g.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        diff > 1e-2,
        "constant and gaussian blends agree everywhere ({diff})"
    );
}

#[test]
fn wrong_input_channels_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let roi = [4, 4, 4];
    let path = traced_model(dir.path(), roi);
    let model = Model::load(&path, &settings(roi, Blending::Constant, 1), 2).unwrap();
    let err = model
        .sliding_window(&Array4::zeros((3, 4, 4, 4)), &|_, _| {})
        .unwrap_err();
    assert!(
        matches!(
            err,
            InferError::InputChannels {
                expected: 2,
                got: 3
            }
        ),
        "{err}"
    );
}

#[test]
fn output_not_at_roi_size_fails_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let example = Tensor::zeros([1, 1, 8, 8, 8], (Kind::Float, tch::Device::Cpu));
    let mut f =
        |xs: &[Tensor]| vec![xs[0].max_pool3d([2, 2, 2], [2, 2, 2], [0, 0, 0], [1, 1, 1], false)];
    let module = CModule::create_by_tracing("Down", "forward", &[example], &mut f).unwrap();
    let path = dir.path().join("down.pt");
    module.save(&path).unwrap();
    let err = Model::load(&path, &settings([8, 8, 8], Blending::Constant, 1), 1).unwrap_err();
    assert!(matches!(err, InferError::WrongOutputShape { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("[1, 1, 4, 4, 4]") && msg.contains("8, 8, 8"),
        "{msg}"
    );
}

#[test]
fn model_that_rejects_the_warm_up_input_fails_at_load() {
    // Traced for 2 channels; the pipeline claims 3 → the forward fails at load, not later.
    let dir = tempfile::tempdir().unwrap();
    let roi = [4, 4, 4];
    let example = Tensor::zeros([1, 2, 4, 4, 4], (Kind::Float, tch::Device::Cpu));
    let weight = Tensor::ones([1, 2, 1, 1, 1], (Kind::Float, tch::Device::Cpu));
    let mut f = |xs: &[Tensor]| {
        vec![xs[0].conv3d(&weight, None::<Tensor>, [1, 1, 1], [0, 0, 0], [1, 1, 1], 1)]
    };
    let conv = CModule::create_by_tracing("Conv", "forward", &[example], &mut f).unwrap();
    let conv_path = dir.path().join("conv.pt");
    conv.save(&conv_path).unwrap();
    assert!(Model::load(&conv_path, &settings(roi, Blending::Constant, 1), 2).is_ok());
    let err = Model::load(&conv_path, &settings(roi, Blending::Constant, 1), 3).unwrap_err();
    assert!(matches!(err, InferError::WarmUp { .. }), "{err}");
    assert!(err.to_string().contains("[1, 3, 4x4x4]"), "{err}");
}

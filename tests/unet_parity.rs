//! The fetal-head UNet architecture (tools/unet2d.py, exported to TorchScript with random
//! weights by tools/export_unet.py) run by segnode's 2D model path equals PyTorch eager on
//! the same input within 1e-4.
//!
//! segnode feeds a 2D model frame by frame (`roi = [1, H, W]`, the depth axis dropped for
//! the model and restored after), so the input here is three frames of 72x88: not a
//! multiple of the UNet's 16-pixel stride, which the model pads and crops itself. The eager
//! side (tests/helpers/unet_eager.py) rebuilds the architecture in Python and loads the
//! TorchScript file's weights, so the comparison is of the two executions, not of two
//! random initialisations. Small on purpose: base 8 channels (`make models` builds it).

mod common;

use std::process::Command;

use ndarray::{Array4, Axis};
use segnode::pipeline::infer::{DeviceChoice, InferSettings, Model};

const FRAMES: usize = 3;
const ROWS: usize = 72;
const COLUMNS: usize = 88;
const CLASSES: usize = 3;
const TOLERANCE: f32 = 1e-4;

#[test]
fn exported_unet_run_by_segnode_equals_pytorch_eager() {
    let model_path = common::dce::models_dir().join("unet2d_b8_seed0.pt");
    assert!(
        model_path.is_file(),
        "{} is missing: run `make models`",
        model_path.display()
    );
    // A deterministic, non-trivial input: a smooth pattern plus a hash, different per frame.
    let input = Array4::from_shape_fn((1, FRAMES, ROWS, COLUMNS), |(_, f, r, c)| {
        let hash = ((f * 7919 + r * 104_729 + c * 1_299_709) % 1000) as f32 / 1000.0;
        (0.3 * ((r as f32) / 9.0 + f as f32).sin() + 0.2 * ((c as f32) / 7.0).cos() + hash) / 1.5
    });
    let settings = InferSettings {
        roi: [1, ROWS, COLUMNS],
        overlap: 0.0,
        sw_batch_size: 2,
        device: DeviceChoice::Cpu,
        image_model: true,
        ..InferSettings::default()
    };
    let model = Model::load(&model_path, &settings, 1).expect("the UNet loads and warms up");
    assert_eq!(model.out_channels(), CLASSES);
    let ours = model.sliding_window(&input, &|_, _| {}).unwrap();
    assert_eq!(ours.shape(), &[CLASSES, FRAMES, ROWS, COLUMNS]);

    // Eager PyTorch gets the frames as a batch [N = frames, C = 1, H, W].
    let dir = tempfile::tempdir().unwrap();
    let (input_path, output_path) = (dir.path().join("in.f32"), dir.path().join("out.f32"));
    let bytes: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&input_path, bytes).unwrap();
    let out = Command::new(common::python::python())
        .arg(common::python::helper("unet_eager.py"))
        .args(["--model".as_ref(), model_path.as_os_str()])
        .args([
            "--in-channels",
            "1",
            "--out-channels",
            "3",
            "--base-channels",
            "8",
        ])
        .args(["--input".as_ref(), input_path.as_os_str()])
        .args(["--shape", &format!("{FRAMES},1,{ROWS},{COLUMNS}")])
        .args(["--output".as_ref(), output_path.as_os_str()])
        .output()
        .expect("run tests/helpers/unet_eager.py");
    assert!(
        out.status.success(),
        "unet_eager.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let raw = std::fs::read(&output_path).unwrap();
    let values: Vec<f32> = raw
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    // [N, K, H, W] -> [K, N, H, W], segnode's [K, D, H, W].
    let eager = Array4::from_shape_vec((FRAMES, CLASSES, ROWS, COLUMNS), values)
        .expect("eager output is [frames, 3, H, W]")
        .permuted_axes([1, 0, 2, 3]);

    let mut worst = 0f32;
    for (a, b) in ours.iter().zip(eager.iter()) {
        worst = worst.max((a - b).abs());
    }
    let spread = ours.iter().fold(0f32, |m, v| m.max(v.abs()));
    eprintln!("max |segnode - eager| = {worst:e} over logits up to {spread:.3}");
    assert!(spread > 1e-3, "the logits are not trivially zero");
    assert!(
        worst <= TOLERANCE,
        "segnode's UNet output differs from eager PyTorch by {worst:e} (> {TOLERANCE:e})"
    );
    // Frames stay frames: the batch did not mix them.
    for f in 0..FRAMES {
        let a = ours.index_axis(Axis(1), f);
        let b = eager.index_axis(Axis(1), f);
        assert!(
            a.iter()
                .zip(b.iter())
                .all(|(x, y)| (x - y).abs() <= TOLERANCE)
        );
    }
}

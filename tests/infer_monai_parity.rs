//! segnode's sliding-window inference against MONAI's own `sliding_window_inference`, on
//! the real DCE architecture: a SwinUNETR (4 → 1 channels, feature_size 24, random weights
//! with a fixed seed) exported to TorchScript by `tools/export_swinunetr.py`, run by
//! `segnode::pipeline::infer::Model` and by `tools/monai_sliding_window.py` on the same
//! input with the same settings, in both blending modes. The logits must agree to 1e-3.
//!
//! The input `[4, 70, 41, 90]` with roi 64³ and overlap 0.5 exercises all of MONAI's
//! window rules at once: H = 41 < 64 is zero-padded unevenly (11 before, 12 after, so a
//! swapped split shows) and cropped back; D = 70 and
//! W = 90 are not multiples of the 32-voxel step, so the last window is pulled back to the
//! border (D starts 0, 6; W starts 0, 26). Constant blending runs with sw_batch_size 3 (a
//! full batch of 3, then a partial one), Gaussian with 1.
//!
//! Needs the project venv (torch 2.11 + MONAI 1.6.1): `make setup`. The exported model is
//! cached under the target dir, so only the first run pays for the export.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ndarray::Array4;
use segnode::pipeline::infer::{Blending, DeviceChoice, InferSettings, Model};

const ROI: usize = 64;
const SHAPE: (usize, usize, usize, usize) = (4, 70, 41, 90);
const SEED: u64 = 0;
const TOLERANCE: f32 = 1e-3;

/// The venv's python, or a failure telling the operator how to get it.
fn python() -> PathBuf {
    let path = std::env::var_os("SEGNODE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            Path::new(&home).join(".cache/segnode/venv/bin/python")
        });
    assert!(
        path.is_file(),
        "python {} not found: run `make setup` (it creates the torch/MONAI venv and sets SEGNODE_PYTHON)",
        path.display()
    );
    path
}

fn tool(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tools")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `make setup` from a complete checkout",
        path.display()
    );
    path
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}; run `make setup`"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}); run `make setup` if torch/MONAI are missing\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The random-init SwinUNETR TorchScript, exported once and cached in the target dir.
fn swinunetr(py: &Path) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("infer_monai_parity");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("swinunetr_fs24_seed{SEED}_roi{ROI}.pt"));
    if !path.is_file() {
        // The tool writes `<out>.tmp` and renames, so an interrupted export leaves no cache.
        let started = Instant::now();
        run(Command::new(py)
            .arg(tool("export_swinunetr.py"))
            .args([
                "--random-init",
                "--seed",
                &SEED.to_string(),
                "--feature-size",
                "24",
            ])
            .args([
                "--roi",
                &ROI.to_string(),
                "--check-sizes",
                "",
                "--threads",
                "2",
                "--out",
            ])
            .arg(&path));
        eprintln!(
            "exported {} in {:.1}s",
            path.display(),
            started.elapsed().as_secs_f32()
        );
    }
    path
}

/// A reproducible standard-normal-ish input (xorshift + Box-Muller; no extra crates).
fn random_input() -> Array4<f32> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    Array4::from_shape_simple_fn(SHAPE, || {
        let (u, v) = (uniform(), uniform());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    })
}

/// Minimal `.npy` (v1.0, little-endian float32, C order) writer.
fn write_npy(path: &Path, a: &Array4<f32>) {
    let shape = a
        .shape()
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({shape}), }}");
    // Magic (6) + version (2) + length (2) + header + '\n' must be a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in a.as_standard_layout().iter() {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// Minimal `.npy` reader for what numpy writes for a C-order float32 4-D array.
fn read_npy(path: &Path) -> Array4<f32> {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..6],
        b"\x93NUMPY",
        "{}: not a .npy file",
        path.display()
    );
    let (len_at, len_size) = if bytes[6] == 1 { (8, 2) } else { (8, 4) };
    let mut len = [0u8; 4];
    len[..len_size].copy_from_slice(&bytes[len_at..len_at + len_size]);
    let start = len_at + len_size;
    let header =
        std::str::from_utf8(&bytes[start..start + u32::from_le_bytes(len) as usize]).unwrap();
    assert!(
        header.contains("'descr': '<f4'") && header.contains("'fortran_order': False"),
        "{header}"
    );
    let dims: Vec<usize> = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap()
        .split(',')
        .filter_map(|d| d.trim().parse().ok())
        .collect();
    assert_eq!(dims.len(), 4, "{header}");
    let data: Vec<f32> = bytes[start + u32::from_le_bytes(len) as usize..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Array4::from_shape_vec((dims[0], dims[1], dims[2], dims[3]), data).unwrap()
}

#[test]
fn swinunetr_sliding_window_matches_monai() {
    let py = python();
    let reference_tool = tool("monai_sliding_window.py");
    let model_path = swinunetr(&py);
    tch::set_num_threads(2); // as the reference runner's --threads 2

    let dir = tempfile::tempdir().unwrap();
    let input = random_input();
    let input_path = dir.path().join("input.npy");
    write_npy(&input_path, &input);

    let mut outputs: Vec<Array4<f32>> = Vec::new();
    for (blending, sw_batch_size) in [(Blending::Constant, 3), (Blending::Gaussian, 1)] {
        let settings = InferSettings {
            roi: [ROI; 3],
            overlap: 0.5,
            sw_batch_size,
            blending,
            device: DeviceChoice::Cpu,
            ..InferSettings::default()
        };
        let model =
            Model::load(&model_path, &settings, SHAPE.0).expect("SwinUNETR loads and warms up");
        assert_eq!(model.out_channels(), 1);
        let started = Instant::now();
        let ours = model
            .sliding_window(&input, &|_, _| {})
            .expect("sliding window runs");
        let ours_s = started.elapsed().as_secs_f32();

        let out_path = dir.path().join(format!("monai_{blending}.npy"));
        let started = Instant::now();
        run(Command::new(&py)
            .arg(&reference_tool)
            .arg("--model")
            .arg(&model_path)
            .arg("--input")
            .arg(&input_path)
            .arg("--output")
            .arg(&out_path)
            .args([
                "--roi",
                "64",
                "64",
                "64",
                "--overlap",
                "0.5",
                "--mode",
                &blending.to_string(),
            ])
            .args([
                "--sigma-scale",
                "0.125",
                "--sw-batch-size",
                &sw_batch_size.to_string(),
                "--threads",
                "2",
            ]));
        let monai_s = started.elapsed().as_secs_f32();
        let monai = read_npy(&out_path);

        assert_eq!(ours.dim(), (1, SHAPE.1, SHAPE.2, SHAPE.3));
        assert_eq!(monai.dim(), ours.dim(), "MONAI output shape");
        let diff = max_abs_diff(&ours, &monai);
        let scale = monai.iter().map(|v| v.abs()).fold(0f32, f32::max);
        eprintln!(
            "{blending} (sw_batch_size {sw_batch_size}): max |segnode - MONAI| = {diff:.3e} \
             (max |logit| {scale:.3}); segnode {ours_s:.2}s, MONAI process {monai_s:.2}s"
        );
        assert!(
            scale > 0.0,
            "{blending}: MONAI output is all zeros; the comparison would mean nothing"
        );
        assert!(
            diff <= TOLERANCE,
            "{blending}: max abs diff {diff} > {TOLERANCE}"
        );
        outputs.push(ours);
    }
    // Both sides could agree by both ignoring the weights: the two blending modes must give
    // different logits where windows overlap.
    let modes = max_abs_diff(&outputs[0], &outputs[1]);
    eprintln!("max |constant - gaussian| = {modes:.3e}");
    assert!(
        modes > 1e-2,
        "constant and gaussian blends agree everywhere ({modes:.3e})"
    );
}

fn max_abs_diff(a: &Array4<f32>, b: &Array4<f32>) -> f32 {
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

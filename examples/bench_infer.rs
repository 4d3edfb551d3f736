//! Benchmark of segnode's sliding-window inference, the Rust half of `make bench`'s
//! inference-parity part (the other half is `tools/monai_sliding_window.py --time`).
//!
//! ```sh
//! cargo run --release --example bench_infer -- --model models/swinunetr_fs24_seed0.pt \
//!     --input x.npy --roi 96 96 96 --overlap 0.5 --mode constant --threads 2 --repeat 3
//! ```
//!
//! Reads a float32 `.npy` of shape `[C, D, H, W]` (or `[1, C, D, H, W]`), loads the
//! TorchScript model with [`Model::load`] (which runs one forward on zeros), runs one
//! untimed warm-up sliding window and `--repeat` timed ones, and prints one JSON line with
//! the same keys as the Python runner: `warmup_s`, `times_s`, `median_s`, plus `min_s`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use clap::Parser;
use ndarray::Array4;
use segnode::pipeline::infer::{Blending, DeviceChoice, InferSettings, Model, Precision};

/// Command-line options; the names follow `tools/monai_sliding_window.py`.
#[derive(Parser)]
struct Args {
    /// TorchScript model file.
    #[arg(long)]
    model: PathBuf,
    /// Input volume: `.npy`, little-endian float32, C order.
    #[arg(long)]
    input: PathBuf,
    /// Window size D H W.
    #[arg(long, num_args = 3, value_names = ["D", "H", "W"])]
    roi: Vec<usize>,
    /// Fraction of a window shared with its neighbour.
    #[arg(long, default_value_t = 0.5)]
    overlap: f64,
    /// Blending: constant or gaussian.
    #[arg(long, default_value = "constant")]
    mode: Blending,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 1)]
    sw_batch_size: usize,
    /// libtorch intra-op threads.
    #[arg(long, default_value_t = 2)]
    threads: i32,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
    /// bf16 autocast (CUDA only).
    #[arg(long)]
    bf16: bool,
    /// Timed runs after the warm-up.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.roi.len() == 3, "--roi takes three sizes: D H W");
    ensure!(args.repeat >= 1, "--repeat must be at least 1");
    tch::set_num_threads(args.threads);

    let input = read_npy_f32(&args.input)?;
    let settings = InferSettings {
        roi: [args.roi[0], args.roi[1], args.roi[2]],
        overlap: args.overlap,
        sw_batch_size: args.sw_batch_size,
        blending: args.mode,
        device: args.device,
        precision: if args.bf16 {
            Precision::Bf16
        } else {
            Precision::Fp32
        },
        ..InferSettings::default()
    };

    let started = Instant::now();
    let model = Model::load(&args.model, &settings, input.dim().0)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let load_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    model.sliding_window(&input, &|_, _| {})?;
    let warmup_s = started.elapsed().as_secs_f64();

    let mut times = Vec::with_capacity(args.repeat);
    for _ in 0..args.repeat {
        let started = Instant::now();
        let out = model.sliding_window(&input, &|_, _| {})?;
        times.push(started.elapsed().as_secs_f64());
        std::hint::black_box(out);
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    let (c, d, h, w) = input.dim();
    let line = serde_json::json!({
        "model": args.model.display().to_string(),
        "input_shape": [c, d, h, w],
        "roi": args.roi,
        "overlap": args.overlap,
        "mode": args.mode.to_string(),
        "sw_batch_size": args.sw_batch_size,
        "device": format!("{:?}", model.device()),
        "bf16": args.bf16,
        "threads": args.threads,
        "windows": model.plan([d, h, w]).len(),
        "load_s": load_s,
        "warmup_s": warmup_s,
        "repeat": args.repeat,
        "times_s": times,
        "median_s": median,
        "min_s": sorted[0],
    });
    println!("{line}");
    Ok(())
}

/// Read a version 1–3 `.npy` holding little-endian float32 in C order, of shape
/// `[C, D, H, W]` or `[1, C, D, H, W]`.
fn read_npy_f32(path: &Path) -> anyhow::Result<Array4<f32>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    ensure!(
        bytes.len() >= 10 && &bytes[..6] == b"\x93NUMPY",
        "{}: not a .npy file",
        path.display()
    );
    let (header_len, header_start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            ensure!(bytes.len() >= 12, "{}: truncated header", path.display());
            let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (len as usize, 12)
        }
        v => bail!("{}: unsupported .npy version {v}", path.display()),
    };
    let data_start = header_start + header_len;
    ensure!(
        bytes.len() >= data_start,
        "{}: truncated header",
        path.display()
    );
    let header = std::str::from_utf8(&bytes[header_start..data_start])?;
    ensure!(
        header.contains("'descr': '<f4'"),
        "{}: dtype must be '<f4' (header {header})",
        path.display()
    );
    ensure!(
        header.contains("'fortran_order': False"),
        "{}: must be C order",
        path.display()
    );
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .with_context(|| format!("{}: no shape in header {header}", path.display()))?;
    let mut shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse::<usize>)
        .collect::<Result<Vec<_>, _>>()?;
    if shape.len() == 5 && shape[0] == 1 {
        shape.remove(0);
    }
    ensure!(
        shape.len() == 4,
        "{}: shape {shape:?} is not [C, D, H, W]",
        path.display()
    );
    let count: usize = shape.iter().product();
    let payload = &bytes[data_start..];
    ensure!(
        payload.len() == count * 4,
        "{}: {} data bytes for shape {shape:?}",
        path.display(),
        payload.len()
    );
    let values: Vec<f32> = payload
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(Array4::from_shape_vec(
        (shape[0], shape[1], shape[2], shape[3]),
        values,
    )?)
}

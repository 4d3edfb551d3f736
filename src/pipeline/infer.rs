//! Inference: a TorchScript model (loaded once, on CPU or CUDA) applied to a whole volume
//! by sliding-window inference with exactly MONAI 1.6.1's `sliding_window_inference`
//! semantics (padding, window positions, importance-map blending), so a model trained and
//! validated with MONAI gives the same logits here.
//!
//! All the work is blocking libtorch calls: call [`Model::load`] and
//! [`Model::sliding_window`] from `tokio::task::spawn_blocking` (or a dedicated thread),
//! never directly on an async runtime. The accumulation runs in tensors on the model's
//! device, so on a GPU only the input and the final output cross the bus.
//!
//! Submodules: [`windows`] (where windows go), [`blend`] (importance maps), [`device`]
//! (device choice, bf16 autocast), [`model`] (loading and the sliding window itself).

pub mod autocast;
pub mod blend;
pub mod device;
pub mod model;
pub mod windows;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

pub use device::DeviceChoice;
pub use model::Model;
pub use windows::WindowPlan;

/// The arithmetic of the forward passes (`model.precision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// float32 throughout.
    #[default]
    Fp32,
    /// bf16 autocast on CUDA (about 2x faster, slightly different logits); float32, with a
    /// warning, on the CPU.
    Bf16,
}

impl Precision {
    /// The name used in pipeline definitions and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How overlapping window outputs are weighted (MONAI `BlendMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum Blending {
    /// Every voxel of every window weighs the same.
    #[default]
    Constant,
    /// Voxels near a window's centre weigh more (σ = `sigma_scale` · roi per dimension).
    Gaussian,
}

impl FromStr for Blending {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "constant" => Ok(Blending::Constant),
            "gaussian" => Ok(Blending::Gaussian),
            _ => Err(format!(
                "blending {s:?}: expected \"constant\" or \"gaussian\""
            )),
        }
    }
}

impl TryFrom<String> for Blending {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for Blending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Blending::Constant => "constant",
            Blending::Gaussian => "gaussian",
        })
    }
}

/// How a model is run over a volume; one per pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct InferSettings {
    /// Window size `[D, H, W]` fed to the model (the size it was trained on).
    pub roi: [usize; 3],
    /// Fraction of a window shared with its neighbour, in `[0, 1)` (MONAI `overlap`).
    pub overlap: f64,
    /// Windows per forward pass; more is faster on a GPU until memory runs out.
    pub sw_batch_size: usize,
    /// How overlapping outputs are combined.
    pub blending: Blending,
    /// Gaussian σ as a fraction of the roi (MONAI default 0.125); unused for constant.
    pub sigma_scale: f64,
    /// Where the model runs.
    pub device: DeviceChoice,
    /// fp32, or bf16 autocast for the forward passes on CUDA; bf16 is ignored, with a
    /// warning, on the CPU.
    pub precision: Precision,
    /// Whether the model itself is 2D (`[N, C, H, W]` in and out) rather than 3D. A 2D
    /// model runs with `roi = [1, H, W]`: every window is one slice (one image frame),
    /// handed to the model without its depth axis.
    pub image_model: bool,
}

impl Default for InferSettings {
    /// The DCE SwinUNETR defaults: 96³ windows, half overlap, MONAI's blending defaults.
    fn default() -> Self {
        InferSettings {
            roi: [96, 96, 96],
            overlap: 0.5,
            sw_batch_size: 1,
            blending: Blending::Constant,
            sigma_scale: 0.125,
            device: DeviceChoice::Auto,
            precision: Precision::Fp32,
            image_model: false,
        }
    }
}

impl InferSettings {
    /// Why these settings cannot work, if they cannot.
    pub fn validate(&self) -> Result<(), InferError> {
        let bad = |reason: String| Err(InferError::InvalidSettings(reason));
        if self.roi.contains(&0) {
            return bad(format!(
                "roi {:?}: every dimension must be at least 1",
                self.roi
            ));
        }
        if !(0.0..1.0).contains(&self.overlap) {
            return bad(format!("overlap {}: must be in [0, 1)", self.overlap));
        }
        if self.sw_batch_size == 0 {
            return bad("sw_batch_size 0: must be at least 1".into());
        }
        if self.image_model && self.roi[0] != 1 {
            return bad(format!(
                "roi {:?}: a 2D model runs one slice at a time, so the roi must be [1, H, W]",
                self.roi
            ));
        }
        if self.blending == Blending::Gaussian
            && !(self.sigma_scale.is_finite() && self.sigma_scale > 0.0)
        {
            return bad(format!(
                "sigma_scale {}: must be a positive number",
                self.sigma_scale
            ));
        }
        Ok(())
    }
}

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// The configured model file is not there.
    #[error(
        "model file {path} does not exist; check the pipeline's model path (or run `make models`)"
    )]
    ModelMissing {
        /// The path that was looked up.
        path: PathBuf,
    },
    /// libtorch refused the file (not TorchScript, saved by a newer torch, corrupt…).
    #[error(
        "cannot load TorchScript model {path} on {device}: {source}; it must be a file written by \
         torch.jit.save with torch ≤ 2.11"
    )]
    ModelLoad {
        /// The model file.
        path: PathBuf,
        /// The device it was loaded for.
        device: String,
        /// libtorch's reason.
        source: tch::TchError,
    },
    /// The model's forward pass failed on a zero input at load time.
    #[error(
        "model {path} fails on a [1, {in_channels}, {roi}] input: {source}; does it take {in_channels} channels at this roi?"
    )]
    WarmUp {
        /// The model file.
        path: PathBuf,
        /// Channels the pipeline feeds.
        in_channels: usize,
        /// Window size, as `DxHxW`.
        roi: String,
        /// libtorch's reason.
        source: tch::TchError,
    },
    /// The model's output is not `[N, K, D, H, W]` with the input's N and window size.
    #[error("model output has shape {got:?}, expected {expected}")]
    WrongOutputShape {
        /// What was expected, in words (`[1, K≥1, 96, 96, 96]`).
        expected: String,
        /// What the model returned.
        got: Vec<i64>,
    },
    /// The volume handed to the model has the wrong number of channels.
    #[error("input volume has {got} channels, the model takes {expected}")]
    InputChannels {
        /// Channels the model was loaded for.
        expected: usize,
        /// Channels in the volume.
        got: usize,
    },
    /// The requested device does not exist here.
    #[error("device {requested} is not available: {reason}")]
    DeviceUnavailable {
        /// The configured device.
        requested: String,
        /// Why not.
        reason: String,
    },
    /// bf16 was asked for on CUDA, and the loaded libtorch's autocast cannot be trusted.
    #[error(
        "precision = \"bf16\" cannot run here: {reason}; set precision = \"fp32\" in the \
         pipeline's [model] table, or run on the torch=={} that scripts/setup.sh installs",
        autocast::CHECKED_LIBTORCH
    )]
    Bf16Unavailable {
        /// What the start-up check found.
        reason: String,
    },
    /// The settings are inconsistent.
    #[error("invalid inference settings: {0}")]
    InvalidSettings(String),
    /// libtorch failed during inference (out of memory, device error…).
    #[error("libtorch error during inference: {0}")]
    Torch(#[from] tch::TchError),
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod settings_tests {
    use super::*;

    #[test]
    fn blending_parses_monai_names() {
        assert_eq!("constant".parse::<Blending>(), Ok(Blending::Constant));
        assert_eq!("Gaussian".parse::<Blending>(), Ok(Blending::Gaussian));
        assert!("gauss".parse::<Blending>().is_err());
        assert_eq!(Blending::Gaussian.to_string(), "gaussian");
    }

    #[test]
    fn settings_validation_names_the_bad_value() {
        assert!(InferSettings::default().validate().is_ok());
        let cases = [
            (
                InferSettings {
                    overlap: 1.0,
                    ..Default::default()
                },
                "overlap 1",
            ),
            (
                InferSettings {
                    overlap: -0.1,
                    ..Default::default()
                },
                "overlap -0.1",
            ),
            (
                InferSettings {
                    roi: [96, 0, 96],
                    ..Default::default()
                },
                "roi [96, 0, 96]",
            ),
            (
                InferSettings {
                    sw_batch_size: 0,
                    ..Default::default()
                },
                "sw_batch_size 0",
            ),
            (
                InferSettings {
                    blending: Blending::Gaussian,
                    sigma_scale: 0.0,
                    ..Default::default()
                },
                "sigma_scale 0",
            ),
        ];
        for (settings, needle) in cases {
            let err = settings.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }
}

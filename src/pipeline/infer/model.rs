//! A TorchScript model loaded once on its device, and MONAI-equivalent sliding-window
//! inference with it.
//!
//! Blocking: every method here runs libtorch synchronously (seconds to minutes). Call them
//! from `tokio::task::spawn_blocking`; a `Model` is `Send + Sync`, so share it as
//! `Arc<Model>`. libtorch's CPU thread count is process-wide (`tch::set_num_threads`) and
//! is left to the caller.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::Array4;
use tch::{CModule, Device, Kind, Tensor};
use tracing::{debug, info, warn};

use super::autocast::Bf16Autocast;
use super::windows::WindowPlan;
use super::{InferError, InferSettings, blend};

/// A loaded, warmed-up TorchScript segmentation model and how to run it.
#[derive(Debug)]
pub struct Model {
    /// The TorchScript module, in eval mode, on `device`.
    module: CModule,
    /// Where it was loaded from, for logs and errors.
    path: PathBuf,
    /// The resolved libtorch device.
    device: Device,
    /// Window size, overlap, blending… (validated).
    settings: InferSettings,
    /// Channels the model takes.
    in_channels: usize,
    /// Channels the model returns (K), learnt from the warm-up forward.
    out_channels: usize,
    /// bf16 autocast for the forwards (half precision asked for, on CUDA), checked against
    /// the loaded libtorch at load.
    autocast: Option<&'static Bf16Autocast>,
}

impl Model {
    /// Load `path` on the configured device, in eval mode, and run one forward on zeros of
    /// `[1, in_channels, roi]` so that a wrong or broken model fails at start-up, not on
    /// the first study. The output must be `[1, K, roi]` with K ≥ 1.
    pub fn load(
        path: &Path,
        settings: &InferSettings,
        in_channels: usize,
    ) -> Result<Model, InferError> {
        settings.validate()?;
        if in_channels == 0 {
            return Err(InferError::InvalidSettings(
                "in_channels 0: the model needs at least one input".into(),
            ));
        }
        if !path.is_file() {
            return Err(InferError::ModelMissing {
                path: path.to_owned(),
            });
        }
        let device = settings.device.resolve()?;
        let bf16 = settings.precision == super::Precision::Bf16;
        let autocast = if bf16 && device.is_cuda() {
            let autocast = Bf16Autocast::checked()?;
            info!(libtorch = autocast.version(), library = %autocast.library().display(), "bf16 autocast checked against the loaded libtorch");
            Some(autocast)
        } else {
            if bf16 {
                warn!(model = %path.display(), ?device, "precision = \"bf16\" is CUDA-only; running float32 on the CPU");
            }
            None
        };
        let started = Instant::now();
        let mut module =
            CModule::load_on_device(path, device).map_err(|source| InferError::ModelLoad {
                path: path.to_owned(),
                device: format!("{device:?}"),
                source,
            })?;
        module.set_eval();
        let mut model = Model {
            module,
            path: path.to_owned(),
            device,
            settings: settings.clone(),
            in_channels,
            out_channels: 0,
            autocast,
        };
        model.out_channels = model.warm_up()?;
        info!(
            model = %path.display(),
            ?device,
            in_channels,
            out_channels = model.out_channels,
            roi = ?settings.roi,
            bf16 = autocast.is_some(),
            seconds = started.elapsed().as_secs_f32(),
            "model loaded"
        );
        Ok(model)
    }

    /// The libtorch device the model lives on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Channels the model takes.
    pub fn in_channels(&self) -> usize {
        self.in_channels
    }

    /// Channels the model returns (K).
    pub fn out_channels(&self) -> usize {
        self.out_channels
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &InferSettings {
        &self.settings
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The window layout this model would use for a volume of spatial size `[D, H, W]`.
    pub fn plan(&self, spatial: [usize; 3]) -> WindowPlan {
        WindowPlan::new(spatial, self.settings.roi, self.settings.overlap)
    }

    /// Run the model over a `[C, D, H, W]` volume with MONAI `sliding_window_inference`
    /// semantics and return its raw output (logits) as `[K, D, H, W]`.
    ///
    /// `progress(done, total)` is called after each batch of windows. Blocking.
    pub fn sliding_window(
        &self,
        input: &Array4<f32>,
        progress: &dyn Fn(usize, usize),
    ) -> Result<Array4<f32>, InferError> {
        let (c, d, h, w) = input.dim();
        if c != self.in_channels {
            return Err(InferError::InputChannels {
                expected: self.in_channels,
                got: c,
            });
        }
        if d == 0 || h == 0 || w == 0 {
            return Err(InferError::InvalidSettings(format!(
                "input volume [{c}, {d}, {h}, {w}] is empty"
            )));
        }
        let plan = self.plan([d, h, w]);
        let started = Instant::now();
        let out = tch::no_grad(|| self.run_windows(input, &plan, progress))?;
        debug!(
            model = %self.path.display(),
            shape = ?[c, d, h, w],
            windows = plan.len(),
            seconds = started.elapsed().as_secs_f32(),
            "sliding window done"
        );
        Ok(out)
    }

    /// The sliding window proper; all accumulation stays on `self.device`.
    fn run_windows(
        &self,
        input: &Array4<f32>,
        plan: &WindowPlan,
        progress: &dyn Fn(usize, usize),
    ) -> Result<Array4<f32>, InferError> {
        let s = &self.settings;
        let (c, d, h, w) = input.dim();
        let k = self.out_channels;
        let kind = (Kind::Float, self.device);

        let host = input.as_standard_layout();
        let data = host.as_slice().expect("standard layout is contiguous");
        let mut x = Tensor::f_from_slice(data)?
            .f_view([1, c as i64, d as i64, h as i64, w as i64])?
            .f_to_device(self.device)?;
        let (before, after) = (plan.pad_before, plan.pad_after);
        if before.iter().chain(&after).any(|&p| p > 0) {
            // F.pad order: last dimension first, (before, after) per dimension.
            let pad = [
                before[2], after[2], before[1], after[1], before[0], after[0],
            ]
            .map(|p| p as i64);
            x = x.f_constant_pad_nd(pad)?;
        }

        let weights = blend::importance_map(s.roi, s.blending, s.sigma_scale, self.device)?;
        let [pd, ph, pw] = plan.padded.map(|p| p as i64);
        let mut out = Tensor::f_zeros([1, k as i64, pd, ph, pw], kind)?;
        let count = Tensor::f_zeros([1, 1, pd, ph, pw], kind)?;
        let windows: Vec<[usize; 3]> = plan.windows().collect();
        for &start in &windows {
            let _ = window(&count, start, s.roi)?.f_add_(&weights)?;
        }

        let total = windows.len();
        let mut done = 0;
        for batch in windows.chunks(s.sw_batch_size) {
            let parts = batch
                .iter()
                .map(|&start| window(&x, start, s.roi))
                .collect::<Result<Vec<_>, _>>()?;
            let xb = if parts.len() == 1 {
                parts[0].shallow_clone()
            } else {
                Tensor::f_cat(&parts, 0)?
            };
            let y = self.forward(&xb)?;
            self.check_output(&y, batch.len())?;
            let y = y.f_mul(&weights)?;
            for (i, &start) in batch.iter().enumerate() {
                let _ = window(&out, start, s.roi)?.f_add_(&y.f_narrow(0, i as i64, 1)?)?;
            }
            done += batch.len();
            progress(done, total);
        }
        let _ = out.f_div_(&count)?;

        let cropped = out
            .f_narrow(2, before[0] as i64, d as i64)?
            .f_narrow(3, before[1] as i64, h as i64)?
            .f_narrow(4, before[2] as i64, w as i64)?
            .f_to_device(Device::Cpu)?
            .f_contiguous()?;
        let numel = k * d * h * w;
        let mut buf = vec![0f32; numel];
        cropped.f_copy_data(&mut buf, numel)?;
        Ok(Array4::from_shape_vec((k, d, h, w), buf).expect("buffer sized to [K, D, H, W]"))
    }

    /// One forward pass (under bf16 autocast when enabled) of `[N, C, D, H, W]` windows,
    /// returned as float32 `[N, K, D, H, W]`. A 2D model gets `[N, C, H, W]` (the windows
    /// are one slice deep) and its output gets the depth axis back.
    fn forward(&self, x: &Tensor) -> Result<Tensor, tch::TchError> {
        let run = |x: &Tensor| match self.autocast {
            Some(autocast) => autocast.run(|| self.module.forward_ts(&[x])),
            None => self.module.forward_ts(&[x]),
        };
        let y = if self.settings.image_model {
            run(&x.f_squeeze_dim(2)?)?.f_unsqueeze(2)?
        } else {
            run(x)?
        };
        y.f_to_kind(Kind::Float)
    }

    /// Forward zeros once; return K after checking the output is `[1, K ≥ 1, roi]`
    /// (`[1, K ≥ 1, H, W]` from a 2D model).
    fn warm_up(&self) -> Result<usize, InferError> {
        let roi = self.settings.roi.map(|r| r as i64);
        let y = tch::no_grad(|| {
            let x = Tensor::f_zeros(
                [1, self.in_channels as i64, roi[0], roi[1], roi[2]],
                (Kind::Float, self.device),
            )?;
            self.forward(&x)
        })
        .map_err(|source| InferError::WarmUp {
            path: self.path.clone(),
            in_channels: self.in_channels,
            roi: roi.map(|r| r.to_string()).join("x"),
            source,
        })?;
        let size = y.size();
        let k = size.get(1).copied().unwrap_or(0);
        if size.len() != 5 || size[0] != 1 || k < 1 || size[2..] != roi {
            let expected = if self.settings.image_model {
                format!(
                    "[1, K≥1, {}, {}] (2D logits at the input's size)",
                    roi[1], roi[2]
                )
            } else {
                format!(
                    "[1, K≥1, {}, {}, {}] (logits at the input's size)",
                    roi[0], roi[1], roi[2]
                )
            };
            let mut got = size;
            if self.settings.image_model && got.len() == 5 {
                got.remove(2);
            }
            return Err(InferError::WrongOutputShape { expected, got });
        }
        Ok(k as usize)
    }

    /// A batch output must be `[n, K, roi]` with the K seen at warm-up.
    fn check_output(&self, y: &Tensor, n: usize) -> Result<(), InferError> {
        let r = self.settings.roi.map(|r| r as i64);
        let expected = [n as i64, self.out_channels as i64, r[0], r[1], r[2]];
        let size = y.size();
        if size != expected {
            return Err(InferError::WrongOutputShape {
                expected: format!("{expected:?}"),
                got: size,
            });
        }
        Ok(())
    }
}

/// The view of a `[N, C, D, H, W]` tensor covering the window starting at `start`.
fn window(t: &Tensor, start: [usize; 3], roi: [usize; 3]) -> Result<Tensor, tch::TchError> {
    t.f_narrow(2, start[0] as i64, roi[0] as i64)?
        .f_narrow(3, start[1] as i64, roi[1] as i64)?
        .f_narrow(4, start[2] as i64, roi[2] as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Model>();
    }

    #[test]
    fn missing_file_says_so() {
        let err = Model::load(
            Path::new("/nonexistent/model.pt"),
            &InferSettings::default(),
            4,
        )
        .unwrap_err();
        assert!(matches!(err, InferError::ModelMissing { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/model.pt"));
    }

    #[test]
    fn garbage_file_is_a_load_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not-a-model.pt");
        std::fs::write(&path, b"this is not a zip archive").unwrap();
        let settings = InferSettings {
            device: super::super::DeviceChoice::Cpu,
            ..Default::default()
        };
        let err = Model::load(&path, &settings, 4).unwrap_err();
        assert!(matches!(err, InferError::ModelLoad { .. }), "{err}");
        assert!(err.to_string().contains("not-a-model.pt"), "{err}");
    }
}

//! One job, start to finish: the chosen series of a study → one volume → model →
//! mask on the source grid → DICOM SEG on disk. Blocking (decoding, libtorch): call it from
//! `spawn_blocking` in async code.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dicom_dictionary_std::tags;
use dicom_object::OpenFileOptions;
use tracing::{info, warn};

use crate::pipeline::activation;
use crate::pipeline::definition::{JobPer, PipelineDefinition};
use crate::pipeline::infer::{InferError, InferSettings, Model};
use crate::pipeline::output::{OutputInstance, sop_instance_uid, write_dicom_atomically};
use crate::pipeline::post::{self, Findings};
use crate::pipeline::preprocess::{from_model_grid, normalise, to_model_grid};
use crate::pipeline::seg::{SegError, SegOptions, SeriesReference, encode_seg};
use crate::pipeline::volume::{ChannelInfo, VolumeError, load_series, stack_channels};

/// Why a job failed. Each message says which study part and what to check.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("volume: {0}")]
    Volume(#[from] VolumeError),
    #[error("image: {0}")]
    Image(#[from] crate::pipeline::image::ImageError),
    #[error("inference: {0}")]
    Infer(#[from] InferError),
    #[error("SEG encoding: {0}")]
    Seg(#[from] SegError),
    #[error(
        "model output has {got} channels; pipeline {pipeline} expects {expected} ({activation} over {segments} segments)"
    )]
    OutputChannels {
        pipeline: String,
        got: usize,
        expected: usize,
        activation: String,
        segments: usize,
    },
    #[error("channel {channel} has no instances")]
    EmptyChannel { channel: String },
    #[error("cannot read the source header {path}: {reason}")]
    SourceHeader { path: PathBuf, reason: String },
    #[error("cannot write the SEG to {path}: {reason}")]
    Write { path: PathBuf, reason: String },
}

/// A pipeline ready to run jobs: its definition and its model, loaded and warmed once.
pub struct LoadedPipeline {
    /// The validated definition.
    pub definition: PipelineDefinition,
    /// The model, loaded on its device.
    pub model: Model,
}

impl LoadedPipeline {
    /// Load the model named by `definition` from `models_dir` (one warm-up forward, so a
    /// bad model fails here, not on the first study) and check its output against the
    /// configured segments.
    pub fn load(definition: PipelineDefinition, models_dir: &Path) -> Result<Self, JobError> {
        let m = &definition.model;
        let path = if m.file.is_absolute() {
            m.file.clone()
        } else {
            models_dir.join(&m.file)
        };
        let settings = InferSettings {
            roi: m.roi,
            overlap: m.overlap,
            sw_batch_size: m.sw_batch_size,
            blending: m.blending,
            device: m.device,
            half_precision: m.precision == "bf16",
            image_model: m.spatial_dims == 2,
            ..InferSettings::default()
        };
        let model = Model::load(&path, &settings, m.in_channels)?;
        let segments = definition.output.segments.len();
        let expected = if m.activation == "softmax" {
            segments + 1
        } else {
            segments
        };
        if model.out_channels() != expected {
            return Err(JobError::OutputChannels {
                pipeline: definition.name.clone(),
                got: model.out_channels(),
                expected,
                activation: m.activation.clone(),
                segments,
            });
        }
        info!(pipeline = %definition.name, model = %path.display(), device = ?model.device(), "pipeline ready");
        Ok(LoadedPipeline { definition, model })
    }
}

/// Wall time of each stage, in order.
#[derive(Debug, Clone, Default)]
pub struct StageTimings(pub Vec<(&'static str, Duration)>);

impl StageTimings {
    pub(crate) fn time<T>(&mut self, stage: &'static str, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        self.0.push((stage, t.elapsed()));
        out
    }

    /// Fold repeated entries of a stage (a job that runs a stage per chunk) into one, at
    /// the stage's first position.
    pub(crate) fn merge_repeated(&mut self) {
        let mut merged: Vec<(&'static str, Duration)> = Vec::new();
        for (stage, d) in self.0.drain(..) {
            match merged.iter_mut().find(|(s, _)| *s == stage) {
                Some((_, total)) => *total += d,
                None => merged.push((stage, d)),
            }
        }
        self.0 = merged;
    }

    /// Total of all stages.
    pub fn total(&self) -> Duration {
        self.0.iter().map(|(_, d)| *d).sum()
    }

    /// An aligned table, one stage a line.
    pub fn table(&self) -> String {
        let mut out = String::new();
        for (stage, d) in &self.0 {
            out += &format!("  {stage:<28} {:>9.3} s\n", d.as_secs_f64());
        }
        out += &format!("  {:<28} {:>9.3} s\n", "total", self.total().as_secs_f64());
        out
    }
}

/// What a job produced.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    /// The SEG file written.
    pub seg_path: PathBuf,
    /// Per segment: label and what the mask amounts to.
    pub findings: Vec<(String, Findings)>,
    /// The channels as stacked (series, resampled or not).
    pub channels: Vec<ChannelInfo>,
    /// Source slices (frames per segment).
    pub slices: usize,
    /// Source rows x columns.
    pub rows_cols: (usize, usize),
    /// SOP Instance UID of the SEG.
    pub seg_sop_instance_uid: String,
    /// Instances delivered with the SEG, to the same destinations (report, overlay).
    pub companions: Vec<OutputInstance>,
    /// Per-stage wall time.
    pub timings: StageTimings,
}

/// Run one job: `channels[i]` holds the files of channel i (any order). A pipeline that
/// runs per instance (2D images) gets its one file from channel 0 and runs as
/// [`run_image_job`](crate::pipeline::run_image::run_image_job).
pub fn run_job(
    pipeline: &LoadedPipeline,
    study_uid: &str,
    channels: &[(String, Vec<PathBuf>)],
    out_path: &Path,
    progress: &dyn Fn(&str),
) -> Result<JobOutcome, JobError> {
    let def = &pipeline.definition;
    let mut timings = StageTimings::default();
    for (name, files) in channels {
        if files.is_empty() {
            return Err(JobError::EmptyChannel {
                channel: name.clone(),
            });
        }
    }
    if def.inputs.job_per == JobPer::Instance {
        return crate::pipeline::run_image::run_image_job(
            pipeline,
            study_uid,
            &channels[0].1[0],
            out_path,
            progress,
        );
    }

    progress("decoding and ordering slices");
    let stack = timings.time("decode + volume", || -> Result<_, JobError> {
        let mut series = Vec::with_capacity(channels.len());
        for (_, files) in channels {
            series.push(load_series(files)?);
        }
        // Every channel is a source of the SEG; remember the other series before stacking
        // keeps only the reference series' geometry.
        let other_sources: Vec<SeriesReference> = series
            .iter()
            .skip(1)
            .map(|s| SeriesReference {
                series_instance_uid: s.series_uid.clone(),
            })
            .collect();
        Ok((
            stack_channels(series, def.preprocess.grid_tolerance_mm)?,
            other_sources,
        ))
    })?;
    let (stack, other_sources) = stack;
    for c in stack.channels.iter().filter(|c| c.resampled) {
        warn!(study = %study_uid, series = %c.series_uid, reason = c.resample_reason.as_deref().unwrap_or(""), "channel resampled onto the reference grid");
    }
    let grid = stack.reference.grid.clone();
    let geometry = stack.reference.geometry.clone();
    let channel_info = stack.channels.clone();
    let mut data = stack.data;

    progress("preprocessing");
    let (model_input, mapping) = timings.time("preprocess", || {
        normalise(&mut data, &def.preprocess.normalisation);
        to_model_grid(&data, &grid, &def.preprocess.target)
    });
    drop(data);

    progress("inference");
    let logits = timings.time("inference", || {
        pipeline.model.sliding_window(&model_input, &|done, total| {
            tracing::debug!(study = %study_uid, done, total, "windows inferred");
        })
    })?;
    drop(model_input);

    progress("post-processing");
    let (masks, findings) = timings.time("post-process", || {
        let masks = activation::masks_from_logits(
            logits,
            &def.model.activation,
            def.postprocess.threshold,
            |p| from_model_grid(p, &mapping),
            |mask| post::apply(mask, &def.postprocess.steps),
        );
        let findings = masks
            .iter()
            .zip(&def.output.segments)
            .map(|(mask, segment)| (segment.label.clone(), post::findings(mask, &grid)))
            .collect::<Vec<_>>();
        (masks, findings)
    });

    progress("encoding the SEG");
    let seg = timings.time("SEG encode", || -> Result<_, JobError> {
        let first = &geometry.slices[0];
        let header_path = channels[0]
            .1
            .iter()
            .find(|p| {
                p.file_stem().and_then(|s| s.to_str()) == Some(first.sop_instance_uid.as_str())
            })
            .unwrap_or(&channels[0].1[0]);
        let header = OpenFileOptions::new()
            .read_until(tags::PIXEL_DATA)
            .open_file(header_path)
            .map_err(|e| JobError::SourceHeader {
                path: header_path.clone(),
                reason: e.to_string(),
            })?;
        Ok(encode_seg(
            &header,
            &geometry,
            &def.segment_specs(),
            &masks,
            &seg_options(def, other_sources),
        )?)
    })?;

    progress("writing the SEG");
    let seg_sop_instance_uid = write_seg(&seg, out_path, &mut timings)?;
    log_findings(study_uid, &def.name, &findings);
    Ok(JobOutcome {
        seg_path: out_path.to_path_buf(),
        findings,
        channels: channel_info,
        slices: grid.shape[0],
        rows_cols: (grid.shape[1], grid.shape[2]),
        seg_sop_instance_uid,
        companions: Vec::new(),
        timings,
    })
}

/// Write the SEG atomically (timed as "SEG write"); its SOP Instance UID.
pub(crate) fn write_seg(
    seg: &dicom_object::FileDicomObject<dicom_object::InMemDicomObject>,
    out_path: &Path,
    timings: &mut StageTimings,
) -> Result<String, JobError> {
    timings.time("SEG write", || write_dicom_atomically(seg, out_path))?;
    Ok(sop_instance_uid(seg))
}

/// One log line per segment with what was found.
pub(crate) fn log_findings(study_uid: &str, pipeline: &str, findings: &[(String, Findings)]) {
    for (label, f) in findings {
        info!(study = %study_uid, pipeline = %pipeline, segment = %label, voxels = f.voxels, size = %f.size(), fraction_percent = format!("{:.4}", f.fraction_percent), "finding");
    }
}

/// How a pipeline's SEG describes itself. Segments may overlap unless the classes are
/// exclusive (`softmax`).
pub(crate) fn seg_options(
    def: &PipelineDefinition,
    other_sources: Vec<SeriesReference>,
) -> SegOptions {
    SegOptions {
        series_number: def.output.series_number,
        series_description: def.output.series_description.clone(),
        content_label: content_label(&def.name),
        content_description: def.description.chars().take(64).collect(),
        omit_empty_frames: def.output.omit_empty_frames,
        software_version: env!("CARGO_PKG_VERSION").into(),
        segments_overlap: def.model.activation != "softmax" && def.output.segments.len() > 1,
        other_sources,
        seg_type: def.output.seg_type,
        ..SegOptions::default()
    }
}

/// ContentLabel is CS: upper case, digits, space, underscore; at most 16 characters.
fn content_label(pipeline: &str) -> String {
    let label: String = pipeline
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .take(16)
        .collect();
    if label.is_empty() {
        "SEGMENTATION".into()
    } else {
        label
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_labels_are_cs() {
        assert_eq!(content_label("dce_breast"), "DCE_BREAST");
        assert_eq!(
            content_label("fetal-head-us-pipeline-long"),
            "FETAL_HEAD_US_PI"
        );
    }
}

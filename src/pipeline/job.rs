//! What every job shares, whatever its input: the loaded pipeline, why a job fails, what
//! it produced and how long each stage took, and the small steps both runners end with
//! (writing the SEG, logging findings, describing the SEG). `run` (volumes) and
//! `run_image` (2D images) both build on this file; it calls neither.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::info;

use crate::pipeline::activation::Activation;
use crate::pipeline::definition::PipelineDefinition;
use crate::pipeline::infer::{InferError, InferSettings, Model};
use crate::pipeline::output::{OutputInstance, sop_instance_uid, write_dicom_atomically};
use crate::pipeline::post::Findings;
use crate::pipeline::seg::{SegError, SegOptions, SeriesReference};
use crate::pipeline::volume::{ChannelInfo, VolumeError};

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
    #[error("overlay series: {0}")]
    Overlay(#[from] crate::pipeline::overlay::OverlayError),
    #[error(
        "model output has {got} channels; pipeline {pipeline} expects {expected} ({activation} over {segments} segments)"
    )]
    OutputChannels {
        pipeline: String,
        got: usize,
        expected: usize,
        activation: Activation,
        segments: usize,
    },
    #[error("channel {channel} has no instances")]
    EmptyChannel { channel: String },
    #[error("cannot read the source header {path}: {reason}")]
    SourceHeader { path: PathBuf, reason: String },
    #[error("cannot write the SEG to {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("measurement report: {0}")]
    Report(#[from] crate::pipeline::report::ReportError),
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
        let path = definition.model_path(models_dir);
        let settings = InferSettings {
            roi: m.roi,
            overlap: m.overlap,
            sw_batch_size: m.sw_batch_size,
            blending: m.blending,
            device: m.device,
            precision: m.precision,
            image_model: m.spatial_dims == 2,
            ..InferSettings::default()
        };
        let model = Model::load(&path, &settings, m.in_channels)?;
        let segments = definition.output.segments.len();
        let expected = m.activation.output_channels(segments);
        if model.out_channels() != expected {
            return Err(JobError::OutputChannels {
                pipeline: definition.name.clone(),
                got: model.out_channels(),
                expected,
                activation: m.activation,
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
    /// The measurement report's groups (empty when the pipeline makes no report).
    pub report: Vec<crate::pipeline::report::MeasurementGroup>,
    /// Per-stage wall time.
    pub timings: StageTimings,
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
        segments_overlap: !def.model.activation.exclusive() && def.output.segments.len() > 1,
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

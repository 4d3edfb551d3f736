//! A pipeline, in data rather than code (`conf/pipelines/*.toml`): which studies it takes,
//! how series become model channels, when a study is complete, how the model runs, what
//! post-processing and output it has. Loaded and validated at start-up; every error names
//! the file, the key and the reason.

use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;

use crate::config::ConfigError;
use crate::pipeline::activation::Activation;
use crate::pipeline::infer::{Blending, DeviceChoice, Precision};
use crate::pipeline::post::PostStep;
use crate::pipeline::preprocess::{Normalisation, TargetGrid};
use crate::pipeline::seg::{Code, SegType, SegmentSpec};
use crate::uids;

/// The DCE breast pipeline shipped in `conf/pipelines/dce_breast.toml`, compiled in.
pub const EMBEDDED_DCE_BREAST: &str = include_str!("../../conf/pipelines/dce_breast.toml");
/// The fetal head ultrasound pipeline shipped in `conf/pipelines/fetal_head_us.toml`.
pub const EMBEDDED_FETAL_HEAD_US: &str = include_str!("../../conf/pipelines/fetal_head_us.toml");

/// One pipeline definition.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineDefinition {
    /// Short name, used in logs, job records and `--pipeline`.
    pub name: String,
    /// What it does, for operators.
    #[serde(default)]
    pub description: String,
    /// Which studies it applies to.
    pub applies_to: AppliesTo,
    /// How series of a study become the model's channels.
    pub inputs: Inputs,
    /// When a study counts as complete.
    pub completion: Completion,
    /// Grid and intensity preparation.
    pub preprocess: Preprocess,
    /// The TorchScript model and how it runs.
    pub model: ModelSection,
    /// Threshold and mask clean-up.
    pub postprocess: Postprocess,
    /// The SEG written.
    pub output: Output,
}

/// Study filter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppliesTo {
    /// Modalities of the series considered (e.g. `["MR"]`).
    pub modalities: Vec<String>,
    /// SOP classes (keywords or UIDs) considered; empty means any.
    #[serde(default)]
    pub sop_classes: Vec<String>,
    /// Only instances sent to these called AE titles; empty means any.
    #[serde(default)]
    pub called_ae_titles: Vec<String>,
    /// Further conditions, all of which an instance must meet (e.g. BodyPartExamined
    /// matching `(?i)breast`). An instance without the attribute does not match.
    #[serde(default)]
    pub tags: Vec<TagRule>,
}

/// A condition on one attribute of the instances.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagRule {
    /// Attribute keyword, one of `ingest::RULE_ATTRIBUTES` (BodyPartExamined, ProtocolName,
    /// StudyDescription, ImageType, Manufacturer, StationName, ...).
    pub keyword: String,
    /// Regex the attribute's value must match (multi-valued attributes as `A\B`).
    pub regex: String,
}

/// How the model's channels are chosen among a study's series.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    /// What one job covers: a whole study (series grouped into channels, the default) or
    /// each matching instance on its own (ultrasound images and cines).
    #[serde(default)]
    pub job_per: JobPer,
    /// Minimum slices per channel (96 for the DCE model); 1 with `job_per = "instance"`.
    pub min_slices: usize,
    /// Series whose description matches this regex are never channels (localizers,
    /// subtractions, MIPs, calibration scans).
    #[serde(default)]
    pub exclude_description: Option<String>,
    /// How candidates are assigned to channels.
    pub assign_by: AssignBy,
    /// The channels, in model input order.
    pub channels: Vec<ChannelRule>,
}

/// What one job covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobPer {
    /// One job per study, once every channel has its series (volumes: DCE-MRI).
    #[default]
    Study,
    /// One job per matching instance, on its own (2D images: each image, or each frame of
    /// a cine, is a model input; one SEG per instance). Needs exactly one channel.
    Instance,
}

/// Channel assignment strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignBy {
    /// Each channel has its own SeriesDescription regex.
    Description,
    /// Candidates ordered by AcquisitionTime (then SeriesTime, SeriesNumber): channel i is
    /// the i-th. A single series holding several temporal positions is split by
    /// TemporalPositionIdentifier first.
    AcquisitionTime,
    /// Candidates ordered by SeriesNumber.
    SeriesNumber,
    /// Candidates ordered by TemporalPositionIdentifier.
    TemporalPosition,
}

/// One channel.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelRule {
    /// Channel name for logs and job records (e.g. `pre`, `post1`).
    pub name: String,
    /// SeriesDescription regex; required with `assign_by = "description"`, otherwise an
    /// optional extra condition on the candidate at this position.
    #[serde(default)]
    pub description: Option<String>,
}

/// Completion rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Completion {
    /// Complete once every channel is matched and no instance arrived for this long.
    pub stable_seconds: u64,
    /// Also complete at once when the association that brought the inputs is released.
    #[serde(default = "yes")]
    pub on_association_release: bool,
    /// After this long since the first instance, apply `force_policy`.
    pub force_after_seconds: u64,
    /// What to do when forced.
    pub force_policy: ForcePolicy,
}

/// What happens to a study that never completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForcePolicy {
    /// Run with what is there when every channel is matched (slices may be < min); else drop.
    Run,
    /// Give up, with a logged reason.
    Drop,
}

/// Preprocessing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    /// The grid the model runs on.
    pub target: TargetGrid,
    /// Intensity normalisation, per channel.
    pub normalisation: Normalisation,
    /// Tolerance (mm) for channels to count as sharing a grid; beyond it they are resampled.
    #[serde(default = "default_grid_tolerance")]
    pub grid_tolerance_mm: f64,
    /// Images only: set pixels outside the ultrasound regions (SequenceOfUltrasoundRegions)
    /// to 0 before the model and clear the masks there afterwards, so burned-in text,
    /// calipers and colour bars around the sector never reach the model or the SEG.
    #[serde(default)]
    pub mask_outside_regions: bool,
}

/// Model and sliding-window settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// TorchScript file; relative paths resolve against the node's models folder.
    pub file: PathBuf,
    /// Channels the model takes.
    pub in_channels: usize,
    /// 3 for a volume model (`[N, C, D, H, W]`), 2 for an image model (`[N, C, H, W]`,
    /// run frame by frame: `roi` is then `[1, H, W]`).
    #[serde(default = "three")]
    pub spatial_dims: usize,
    /// Window size `[D, H, W]`.
    pub roi: [usize; 3],
    /// Window overlap, `[0, 1)`.
    #[serde(default = "default_overlap")]
    pub overlap: f64,
    /// Windows per forward pass.
    #[serde(default = "one")]
    pub sw_batch_size: usize,
    /// Window blending.
    #[serde(default)]
    pub blending: Blending,
    /// `auto`, `cpu` or `cuda:N`.
    #[serde(default)]
    pub device: DeviceChoice,
    /// `fp32`, or `bf16` (autocast, CUDA only).
    #[serde(default)]
    pub precision: Precision,
    /// How logits become probabilities: `sigmoid` (independent classes), `softmax`
    /// (exclusive classes, background first) or `none` (the model outputs probabilities).
    #[serde(default)]
    pub activation: Activation,
}

/// Post-processing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Postprocess {
    /// Probability threshold (0.7 for the DCE model).
    pub threshold: f32,
    /// Clean-up steps, in order.
    #[serde(default)]
    pub steps: Vec<PostStep>,
}

/// The SEG and where it goes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    /// SeriesDescription of the SEG.
    pub series_description: String,
    /// SeriesNumber of the SEG.
    pub series_number: i32,
    /// Algorithm name written in every segment.
    pub algorithm_name: String,
    /// Algorithm version.
    pub algorithm_version: String,
    /// Omit frames with no segmented pixel (smaller, but some viewers misplace the volume).
    #[serde(default)]
    pub omit_empty_frames: bool,
    /// `"binary"` (the default: 1-bit frames per segment, read by every SEG viewer) or
    /// `"labelmap"` (Supplement 243: one 8/16-bit frame per source frame holding segment
    /// numbers; exclusive classes only).
    #[serde(default)]
    pub seg_type: SegType,
    /// Also write the AI overlay series (Secondary Capture RGB: each source frame with the
    /// segment outlines and a legend burned in) for viewers without SEG support; sent with
    /// the SEG to the same destinations. Off by default.
    #[serde(default)]
    pub overlay: bool,
    /// Named destinations from the node config; empty: the node's default destination.
    #[serde(default)]
    pub destinations: Vec<String>,
    /// One per model output channel, in order.
    pub segments: Vec<SegmentConfig>,
    /// `report = { measurements = [...] }`: write a measurement report (Comprehensive 3D
    /// SR, TID 1500) with each SEG; absent: no report.
    #[serde(default)]
    pub report: Option<crate::pipeline::report::ReportConfig>,
}

/// A segment as configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentConfig {
    /// SegmentLabel.
    pub label: String,
    /// SegmentedPropertyCategoryCodeSequence.
    pub category: CodeConfig,
    /// SegmentedPropertyTypeCodeSequence.
    #[serde(rename = "type")]
    pub property_type: CodeConfig,
    /// RecommendedDisplayCIELabValue (DICOM-scaled 0–65535).
    #[serde(default)]
    pub cielab: Option<[u16; 3]>,
}

/// A coded concept as configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeConfig {
    /// Code value.
    pub value: String,
    /// Coding scheme designator (`SCT`, `DCM`).
    pub scheme: String,
    /// Code meaning.
    pub meaning: String,
}

fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}
fn three() -> usize {
    3
}
fn default_overlap() -> f64 {
    0.5
}
fn default_grid_tolerance() -> f64 {
    0.01
}

impl PipelineDefinition {
    /// The embedded DCE breast pipeline.
    pub fn embedded_dce_breast() -> Result<Self, ConfigError> {
        Self::from_toml(
            EMBEDDED_DCE_BREAST,
            "<embedded conf/pipelines/dce_breast.toml>",
        )
    }

    /// Find pipeline `name`: `<dir>/<name>.toml` when it exists, else the embedded
    /// definition of that name.
    pub fn find(name: &str, dir: &Path) -> Result<Self, ConfigError> {
        let path = dir.join(format!("{name}.toml"));
        if path.is_file() {
            return Self::load(&path);
        }
        match name {
            "dce_breast" => Self::embedded_dce_breast(),
            "fetal_head_us" => Self::from_toml(
                EMBEDDED_FETAL_HEAD_US,
                "<embedded conf/pipelines/fetal_head_us.toml>",
            ),
            _ => Err(ConfigError::Read {
                path,
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such pipeline file (see pipelines.definitions_dir, or `segment --definitions-dir`)",
                ),
            }),
        }
    }

    /// Load and validate one pipeline file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parse and validate pipeline text.
    pub fn from_toml(text: &str, file: &str) -> Result<Self, ConfigError> {
        let def: PipelineDefinition = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        def.validate(file)?;
        Ok(def)
    }

    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            file: file.to_string(),
            key: key.to_string(),
            reason,
        };
        if self.name.trim().is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(invalid(
                "name",
                format!("{:?}: use letters, digits, '_' or '-'", self.name),
            ));
        }
        if self.applies_to.modalities.is_empty() {
            return Err(invalid(
                "applies_to.modalities",
                "list at least one modality".into(),
            ));
        }
        for (i, c) in self.applies_to.sop_classes.iter().enumerate() {
            if uids::storage_class_uid(c).is_none() {
                return Err(invalid(
                    &format!("applies_to.sop_classes[{i}]"),
                    format!("{c:?} is no known keyword or UID"),
                ));
            }
        }
        for (i, rule) in self.applies_to.tags.iter().enumerate() {
            if !crate::ingest::RULE_ATTRIBUTES
                .iter()
                .any(|(k, _)| *k == rule.keyword)
            {
                let known: Vec<&str> = crate::ingest::RULE_ATTRIBUTES
                    .iter()
                    .map(|(k, _)| *k)
                    .collect();
                return Err(invalid(
                    &format!("applies_to.tags[{i}].keyword"),
                    format!(
                        "{:?} cannot be tested; use one of {}",
                        rule.keyword,
                        known.join(", ")
                    ),
                ));
            }
            Regex::new(&rule.regex)
                .map_err(|e| invalid(&format!("applies_to.tags[{i}].regex"), e.to_string()))?;
        }
        if self.inputs.channels.is_empty() {
            return Err(invalid(
                "inputs.channels",
                "list at least one channel".into(),
            ));
        }
        if self.inputs.min_slices == 0 {
            return Err(invalid("inputs.min_slices", "must be at least 1".into()));
        }
        if let Some(re) = &self.inputs.exclude_description {
            Regex::new(re).map_err(|e| invalid("inputs.exclude_description", e.to_string()))?;
        }
        for (i, ch) in self.inputs.channels.iter().enumerate() {
            let key = format!("inputs.channels[{i}].description");
            match &ch.description {
                Some(re) => {
                    Regex::new(re).map_err(|e| invalid(&key, e.to_string()))?;
                }
                None if self.inputs.assign_by == AssignBy::Description => {
                    return Err(invalid(
                        &key,
                        "required when inputs.assign_by = \"description\"".into(),
                    ));
                }
                None => {}
            }
        }
        if self.model.in_channels != self.inputs.channels.len() {
            return Err(invalid(
                "model.in_channels",
                format!(
                    "{} but inputs.channels lists {}",
                    self.model.in_channels,
                    self.inputs.channels.len()
                ),
            ));
        }
        if self.inputs.job_per == JobPer::Instance && self.inputs.channels.len() != 1 {
            return Err(invalid(
                "inputs.channels",
                format!(
                    "job_per = \"instance\" takes exactly one channel (the image), not {}",
                    self.inputs.channels.len()
                ),
            ));
        }
        match self.model.spatial_dims {
            3 => {}
            2 if self.model.roi[0] == 1 => {}
            2 => {
                return Err(invalid(
                    "model.roi",
                    format!(
                        "{:?}: a 2D model (spatial_dims = 2) runs frame by frame, so roi must be [1, H, W]",
                        self.model.roi
                    ),
                ));
            }
            d => {
                return Err(invalid(
                    "model.spatial_dims",
                    format!("{d}: use 2 (image model) or 3 (volume model)"),
                ));
            }
        }
        if !(0.0..1.0).contains(&self.model.overlap) {
            return Err(invalid(
                "model.overlap",
                format!("{} is outside [0, 1)", self.model.overlap),
            ));
        }
        if self.model.roi.contains(&0) || self.model.sw_batch_size == 0 {
            return Err(invalid(
                "model.roi",
                "roi sizes and sw_batch_size must be positive".into(),
            ));
        }
        self.preprocess
            .target
            .validate()
            .map_err(|r| invalid("preprocess.target", r))?;
        self.preprocess
            .normalisation
            .validate()
            .map_err(|r| invalid("preprocess.normalisation", r))?;
        if !(0.0..=1.0).contains(&self.postprocess.threshold) {
            return Err(invalid(
                "postprocess.threshold",
                format!("{} is outside [0, 1]", self.postprocess.threshold),
            ));
        }
        if self.completion.force_after_seconds < self.completion.stable_seconds {
            return Err(invalid(
                "completion.force_after_seconds",
                "must not be shorter than stable_seconds".into(),
            ));
        }
        if self.output.segments.is_empty() {
            return Err(invalid(
                "output.segments",
                "list at least one segment".into(),
            ));
        }
        if self.output.seg_type == SegType::Labelmap
            && !self.model.activation.exclusive()
            && self.output.segments.len() > 1
        {
            return Err(invalid(
                "output.seg_type",
                format!(
                    "\"labelmap\" holds one segment number per pixel, but model.activation = \"{}\" \
                     decides each of the {} segments on its own, so they may overlap; use \
                     activation = \"softmax\" (exclusive classes) or seg_type = \"binary\"",
                    self.model.activation,
                    self.output.segments.len()
                ),
            ));
        }
        for (i, spec) in self.segment_specs().iter().enumerate() {
            spec.validate(i)
                .map_err(|e| invalid(&format!("output.segments[{i}]"), e.to_string()))?;
        }
        if let Some(report) = &self.output.report {
            report
                .validate(self.mask_kind(), &self.segment_specs())
                .map_err(|e| invalid("output.report", e.to_string()))?;
        }
        Ok(())
    }

    /// The model file: `model.file` as written when absolute, else under `models_dir`.
    pub fn model_path(&self, models_dir: &Path) -> PathBuf {
        if self.model.file.is_absolute() {
            self.model.file.clone()
        } else {
            models_dir.join(&self.model.file)
        }
    }

    /// What the pipeline's masks are: a volume, or frames of an image.
    pub fn mask_kind(&self) -> crate::pipeline::report::MaskKind {
        match self.inputs.job_per {
            JobPer::Instance => crate::pipeline::report::MaskKind::Image,
            JobPer::Study => crate::pipeline::report::MaskKind::Volume,
        }
    }

    /// The segments as the SEG encoder takes them.
    pub fn segment_specs(&self) -> Vec<SegmentSpec> {
        let code = |c: &CodeConfig| Code {
            value: c.value.clone(),
            scheme: c.scheme.clone(),
            meaning: c.meaning.clone(),
        };
        self.output
            .segments
            .iter()
            .map(|s| SegmentSpec {
                label: s.label.clone(),
                category: code(&s.category),
                property_type: code(&s.property_type),
                algorithm_name: self.output.algorithm_name.clone(),
                algorithm_version: self.output.algorithm_version.clone(),
                recommended_cielab: s.cielab,
            })
            .collect()
    }

    /// Compiled channel-selection regexes (validated at load, so compiling cannot fail).
    pub fn selection_rules(&self) -> SelectionRules {
        let compile = |re: &str| Regex::new(re).expect("validated at load");
        SelectionRules {
            exclude: self.inputs.exclude_description.as_deref().map(compile),
            channels: self
                .inputs
                .channels
                .iter()
                .map(|c| c.description.as_deref().map(compile))
                .collect(),
            modalities: self
                .applies_to
                .modalities
                .iter()
                .map(|m| m.to_ascii_uppercase())
                .collect(),
            sop_classes: self
                .applies_to
                .sop_classes
                .iter()
                .filter_map(|c| uids::storage_class_uid(c))
                .collect(),
            called_ae_titles: self.applies_to.called_ae_titles.clone(),
            tag_rules: self
                .applies_to
                .tags
                .iter()
                .map(|r| (r.keyword.clone(), compile(&r.regex)))
                .collect(),
        }
    }
}

/// The compiled filters of a pipeline, used by the assembler.
#[derive(Debug, Clone)]
pub struct SelectionRules {
    /// Never-a-channel description filter.
    pub exclude: Option<Regex>,
    /// Per channel, its description regex if any.
    pub channels: Vec<Option<Regex>>,
    /// Accepted modalities (upper case).
    pub modalities: Vec<String>,
    /// Accepted SOP Class UIDs; empty = any.
    pub sop_classes: Vec<String>,
    /// Accepted called AE titles; empty = any.
    pub called_ae_titles: Vec<String>,
    /// (attribute keyword, regex) conditions, all required.
    pub tag_rules: Vec<(String, Regex)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_dce_pipeline_is_valid() {
        let def = PipelineDefinition::embedded_dce_breast().unwrap();
        assert_eq!(def.name, "dce_breast");
        assert_eq!(def.inputs.channels.len(), 4);
        assert_eq!(def.inputs.min_slices, 96);
        assert_eq!(def.postprocess.threshold, 0.7);
        let specs = def.segment_specs();
        assert_eq!(specs[0].property_type.value, "108369006");
        assert_eq!(specs[0].category.value, "49755003");
    }

    #[test]
    fn the_shipped_swinunetr_pipeline_is_valid() {
        let text = include_str!("../../conf/pipelines/dce_breast_swinunetr.toml");
        let def = PipelineDefinition::from_toml(text, "dce_breast_swinunetr.toml").unwrap();
        assert_eq!(def.preprocess.target, TargetGrid::Shape([96, 96, 96]));
        assert_eq!(def.preprocess.normalisation, Normalisation::PerSliceMinMax);
        assert_eq!(
            def.postprocess.steps[0],
            PostStep::Erode {
                radius: 1,
                shape: crate::pipeline::post::Structure::Cube
            }
        );
    }

    #[test]
    fn the_shipped_fetal_head_pipeline_is_valid() {
        let def = PipelineDefinition::find("fetal_head_us", Path::new("/nonexistent")).unwrap();
        assert_eq!(def.inputs.job_per, JobPer::Instance);
        assert_eq!(def.model.spatial_dims, 2);
        assert_eq!(def.preprocess.target, TargetGrid::InPlane([256, 256]));
        assert!(def.preprocess.mask_outside_regions);
        let types: Vec<String> = def
            .segment_specs()
            .iter()
            .map(|s| s.property_type.value.clone())
            .collect();
        assert_eq!(types, ["12738006", "74968005", "66720007"]);
    }

    #[test]
    fn image_pipelines_need_one_channel_and_a_flat_roi() {
        let two = EMBEDDED_FETAL_HEAD_US.replace(
            "[[inputs.channels]]\nname = \"image\"",
            "[[inputs.channels]]\nname = \"a\"\n[[inputs.channels]]\nname = \"b\"",
        );
        let err = PipelineDefinition::from_toml(&two, "p.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("inputs.channels"), "{err}");
        let thick = EMBEDDED_FETAL_HEAD_US.replace("roi = [1, 256, 256]", "roi = [2, 256, 256]");
        let err = PipelineDefinition::from_toml(&thick, "p.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("model.roi"), "{err}");
    }

    #[test]
    fn errors_name_the_key() {
        let broken = EMBEDDED_DCE_BREAST.replace("in_channels = 4", "in_channels = 3");
        let err = PipelineDefinition::from_toml(&broken, "p.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("p.toml") && err.contains("model.in_channels"),
            "{err}"
        );

        let broken = EMBEDDED_DCE_BREAST.replace("threshold = 0.7", "threshold = 7.0");
        let err = PipelineDefinition::from_toml(&broken, "p.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("postprocess.threshold"), "{err}");

        let broken = EMBEDDED_DCE_BREAST.replace(
            "assign_by = \"acquisition_time\"",
            "assign_by = \"description\"",
        );
        let err = PipelineDefinition::from_toml(&broken, "p.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("inputs.channels[0].description"), "{err}");
    }

    #[test]
    fn labelmap_needs_exclusive_classes_and_unknown_types_are_refused() {
        let labelmap = |text: &str| {
            text.replace(
                "omit_empty_frames = false",
                "omit_empty_frames = false\nseg_type = \"labelmap\"",
            )
        };
        let err = PipelineDefinition::from_toml(&labelmap(EMBEDDED_FETAL_HEAD_US), "p.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("output.seg_type") && err.contains("softmax"),
            "{err}"
        );
        let exclusive = labelmap(EMBEDDED_FETAL_HEAD_US)
            .replace("activation = \"sigmoid\"", "activation = \"softmax\"");
        let def = PipelineDefinition::from_toml(&exclusive, "p.toml").unwrap();
        assert_eq!(def.output.seg_type, SegType::Labelmap);
        let one_segment = PipelineDefinition::from_toml(&labelmap(EMBEDDED_DCE_BREAST), "p.toml");
        assert!(one_segment.is_ok(), "one segment cannot overlap");
        let unknown = EMBEDDED_DCE_BREAST.replace(
            "omit_empty_frames = false",
            "omit_empty_frames = false\nseg_type = \"fractional\"",
        );
        let err = PipelineDefinition::from_toml(&unknown, "p.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("p.toml") && err.contains("seg_type") && err.contains("labelmap"),
            "{err}"
        );
    }

    #[test]
    fn activation_and_precision_are_typed_and_unknown_names_are_refused() {
        let def = PipelineDefinition::from_toml(EMBEDDED_FETAL_HEAD_US, "p.toml").unwrap();
        assert_eq!(def.model.activation, Activation::Sigmoid);
        assert_eq!(def.model.precision, Precision::Fp32);
        for (key, bad, valid) in [
            (
                "activation = \"sigmoid\"",
                "activation = \"softmx\"",
                "softmax",
            ),
            ("precision = \"fp32\"", "precision = \"fp16\"", "bf16"),
        ] {
            let text = EMBEDDED_FETAL_HEAD_US.replace(key, bad);
            let err = PipelineDefinition::from_toml(&text, "p.toml")
                .unwrap_err()
                .to_string();
            assert!(err.contains("p.toml") && err.contains(valid), "{err}");
        }
    }
}

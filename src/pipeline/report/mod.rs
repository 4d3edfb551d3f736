//! The measurement report: a DICOM Comprehensive 3D SR (TID 1500 Measurement Report) that
//! travels with each SEG and states, per segment, the numbers a radiologist reports.
//!
//! - A volume pipeline (DCE-MRI) gets one TID 1411 volumetric group per segment, measured
//!   in patient coordinates on the source grid ([`lesion`]): volume, components, longest
//!   3D diameter, share of the imaged volume.
//! - An image pipeline (fetal head ultrasound) gets one TID 1410 planar group per segment
//!   and frame ([`fetal`]): area, and for the brain HC, BPD and OFD from a fitted ellipse.
//!   Without pixel calibration these carry no value, and a comment names the missing
//!   measurements and says why.
//!
//! Which measurements are made is pipeline configuration (`output.report`, a
//! [`ReportConfig`]). [`codes`] holds every coded concept; `sr` encodes the document from
//! `content` items; [`read`] reads one back.

pub mod codes;
mod config;
mod content;
pub mod fetal;
pub mod lesion;
pub mod read;
mod sr;

use std::path::{Path, PathBuf};

use ndarray::Array3;

use crate::pipeline::job::JobError;
use crate::pipeline::output::{OutputInstance, OutputKind};
use crate::pipeline::seg::{Code, SegmentSpec};
use crate::pipeline::volume::Grid;
use config::is_brain;

pub use config::{MaskKind, Measurement, ReportConfig, ReportConfigError};
pub use sr::{ReportError, ReportInputs, encode_report};

/// One measured value; `None` when it could not be measured (see the group's comment).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeasuredValue {
    /// What was measured.
    pub measurement: Measurement,
    /// The value in [`Measurement::unit`].
    pub value: Option<f64>,
}

/// One measurement group: a segment (volume pipelines) or a segment on one frame (image
/// pipelines).
#[derive(Debug, Clone, PartialEq)]
pub struct MeasurementGroup {
    /// SegmentNumber in the SEG (1-based).
    pub segment_number: u16,
    /// SegmentLabel.
    pub label: String,
    /// The segment's property type: the group's Finding.
    pub finding: Code,
    /// Index into the source slices/frames the group is on (image pipelines).
    pub frame: Option<usize>,
    /// The values, in report order.
    pub values: Vec<MeasuredValue>,
    /// Why some values are missing, or a caveat on them.
    pub comment: Option<String>,
}

impl MeasurementGroup {
    /// The value of `measurement`, if measured.
    pub fn value(&self, measurement: Measurement) -> Option<f64> {
        self.values
            .iter()
            .find(|v| v.measurement == measurement)
            .and_then(|v| v.value)
    }
}

/// Measure every segment of a volume pipeline; `masks[i]` is segment i + 1 on `grid`.
pub fn measure_volume(
    config: &ReportConfig,
    segments: &[SegmentSpec],
    masks: &[Array3<bool>],
    grid: &Grid,
) -> Vec<MeasurementGroup> {
    let wanted = config.ordered();
    masks
        .iter()
        .zip(segments)
        .enumerate()
        .map(|(i, (mask, segment))| {
            let m = lesion::measure(mask, grid);
            let mut comment = None;
            let values = wanted
                .iter()
                .map(|&measurement| MeasuredValue {
                    measurement,
                    value: match measurement {
                        Measurement::Volume => Some(m.volume_ml),
                        Measurement::Components => Some(m.components as f64),
                        Measurement::LongestDiameter => {
                            if m.diameter.is_some_and(|d| !d.exact) {
                                comment = Some(format!(
                                    "longest diameter measured on a thinned set of surface \
                                     voxels (more than {} candidates); it may be slightly short",
                                    lesion::MAX_DIAMETER_POINTS
                                ));
                            }
                            m.diameter.map(|d| d.mm)
                        }
                        Measurement::VolumePercent => Some(m.volume_percent),
                        _ => None,
                    },
                })
                .collect();
            MeasurementGroup {
                segment_number: i as u16 + 1,
                label: segment.label.clone(),
                finding: segment.property_type.clone(),
                frame: None,
                values,
                comment,
            }
        })
        .collect()
}

/// Measure every segment on every frame of an image pipeline; `masks[i]` is segment i + 1
/// as `[frames, rows, columns]`, `spacing_mm` the `[row, column]` pixel size when known.
pub fn measure_image(
    config: &ReportConfig,
    segments: &[SegmentSpec],
    masks: &[Array3<bool>],
    spacing_mm: Option<[f64; 2]>,
) -> Vec<MeasurementGroup> {
    let wanted = config.ordered();
    let frames = masks.first().map_or(0, |m| m.shape()[0]);
    let mut groups = Vec::new();
    for frame in 0..frames {
        for (i, (mask, segment)) in masks.iter().zip(segments).enumerate() {
            let view = mask.index_axis(ndarray::Axis(0), frame);
            let brain = is_brain(segment);
            let mut comment = None;
            let biometry = (brain && wanted.iter().any(|m| m.is_biometry()))
                .then(|| fetal::head_biometry(view, spacing_mm));
            if let Some(Err(why)) = &biometry {
                comment = Some(why.to_string());
            }
            let biometry = biometry.and_then(Result::ok);
            let values: Vec<MeasuredValue> = wanted
                .iter()
                .filter(|m| brain || !m.is_biometry())
                .map(|&measurement| MeasuredValue {
                    measurement,
                    value: match measurement {
                        Measurement::Area => fetal::area_mm2(view, spacing_mm),
                        Measurement::HeadCircumference => biometry.map(|b| b.hc_mm),
                        Measurement::BiparietalDiameter => biometry.map(|b| b.bpd_mm),
                        Measurement::OccipitofrontalDiameter => biometry.map(|b| b.ofd_mm),
                        _ => None,
                    },
                })
                .collect();
            if values.is_empty() {
                continue;
            }
            if spacing_mm.is_none() {
                comment = Some(fetal::BiometryError::NoCalibration.to_string());
            }
            groups.push(MeasurementGroup {
                segment_number: i as u16 + 1,
                label: segment.label.clone(),
                finding: segment.property_type.clone(),
                frame: Some(frame),
                values,
                comment,
            });
        }
    }
    groups
}

/// Encode the report and write it beside the SEG at `seg_path` ([`report_path`]),
/// atomically; what the outbox delivers with the SEG.
pub fn write_beside(inputs: &ReportInputs, seg_path: &Path) -> Result<OutputInstance, JobError> {
    let sr = encode_report(inputs)?;
    OutputInstance::write(OutputKind::Report, &sr, &report_path(seg_path))
}

/// Where the report of the SEG at `seg_path` goes: beside it, `<stem>-report.dcm`.
pub fn report_path(seg_path: &Path) -> PathBuf {
    let stem = seg_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "seg".into());
    seg_path.with_file_name(format!("{stem}-report.dcm"))
}

/// The groups as an aligned table (one line per value), for `segnode segment`.
pub fn table(groups: &[MeasurementGroup]) -> String {
    let mut out = String::new();
    for g in groups {
        let place = match g.frame {
            Some(f) => format!("{} (frame {})", g.label, f + 1),
            None => g.label.clone(),
        };
        for v in &g.values {
            let value = v
                .value
                .map_or_else(|| "not measured".to_string(), |x| format!("{x:.3}"));
            out += &format!(
                "  {place:<32} {:<26} {value:>14} {}\n",
                v.measurement.name(),
                v.measurement.unit().value
            );
        }
        if let Some(c) = &g.comment {
            out += &format!("  {place:<32} note: {c}\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::seg::{KnownCode, codes};

    fn spec(label: &str, property: KnownCode) -> SegmentSpec {
        SegmentSpec {
            label: label.into(),
            category: codes::ANATOMICAL_STRUCTURE.code(),
            property_type: property.code(),
            algorithm_name: "a".into(),
            algorithm_version: "1".into(),
            recommended_cielab: None,
        }
    }

    #[test]
    fn uncalibrated_frames_say_why() {
        let config = ReportConfig {
            measurements: vec![Measurement::HeadCircumference, Measurement::Area],
            procedure: None,
            series_number: None,
        };
        let mask = Array3::from_shape_fn((2, 20, 20), |(_, r, c)| {
            (r as f64 - 10.0).powi(2) / 36.0 + (c as f64 - 10.0).powi(2) / 64.0 <= 1.0
        });
        let segments = [
            spec("Brain", codes::BRAIN),
            spec("CSP", codes::CAVUM_SEPTI_PELLUCIDI),
        ];
        let groups = measure_image(&config, &segments, &[mask.clone(), mask], None);
        assert_eq!(groups.len(), 4, "two segments on two frames");
        assert_eq!(groups[0].values.len(), 2);
        assert_eq!(groups[1].values.len(), 1, "no biometry for the CSP");
        assert!(
            groups
                .iter()
                .all(|g| g.values.iter().all(|v| v.value.is_none()))
        );
        assert!(
            groups[0]
                .comment
                .as_deref()
                .unwrap()
                .contains("calibration")
        );
        assert_eq!(
            report_path(Path::new("/x/seg.dcm")),
            PathBuf::from("/x/seg-report.dcm")
        );
    }
}

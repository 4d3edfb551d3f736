//! What a pipeline asks its report for (`output.report`): the measurements by name, each
//! with its concept code and UCUM unit, checked at load against the pipeline's kind of
//! mask and its segments.

use serde::{Deserialize, Serialize};

use super::codes;
use crate::pipeline::seg::{Code, KnownCode, SegmentSpec};

/// One measurement a pipeline can ask for, by its name in `output.report.measurements`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measurement {
    /// Segment volume, ml (volume pipelines).
    Volume,
    /// Number of 26-connected components (volume pipelines).
    Components,
    /// Longest distance between two voxel centres of the segment, mm (volume pipelines).
    LongestDiameter,
    /// Segment volume as a percentage of the imaged volume (volume pipelines).
    VolumePercent,
    /// Segment area per frame, mm² (image pipelines).
    Area,
    /// Head circumference of the brain segment per frame, mm (image pipelines).
    HeadCircumference,
    /// Biparietal diameter of the brain segment per frame, mm (image pipelines).
    BiparietalDiameter,
    /// Occipito-frontal diameter of the brain segment per frame, mm (image pipelines).
    OccipitofrontalDiameter,
}

/// What a pipeline's masks are, which decides the measurements that apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskKind {
    /// One volume on a patient grid (TID 1411 groups).
    Volume,
    /// Frames of one 2D image or cine (TID 1410 groups).
    Image,
}

impl Measurement {
    /// Every measurement, in the order the report lists them.
    pub const ALL: [Measurement; 8] = [
        Measurement::Volume,
        Measurement::Components,
        Measurement::LongestDiameter,
        Measurement::VolumePercent,
        Measurement::Area,
        Measurement::HeadCircumference,
        Measurement::BiparietalDiameter,
        Measurement::OccipitofrontalDiameter,
    ];

    /// The name used in pipeline files.
    pub fn name(self) -> &'static str {
        match self {
            Measurement::Volume => "volume",
            Measurement::Components => "components",
            Measurement::LongestDiameter => "longest_diameter",
            Measurement::VolumePercent => "volume_percent",
            Measurement::Area => "area",
            Measurement::HeadCircumference => "head_circumference",
            Measurement::BiparietalDiameter => "biparietal_diameter",
            Measurement::OccipitofrontalDiameter => "occipitofrontal_diameter",
        }
    }

    /// The kind of mask it is measured on.
    pub fn applies_to(self) -> MaskKind {
        match self {
            Measurement::Volume
            | Measurement::Components
            | Measurement::LongestDiameter
            | Measurement::VolumePercent => MaskKind::Volume,
            _ => MaskKind::Image,
        }
    }

    /// Whether it is fetal head biometry (made on the brain segment only).
    pub fn is_biometry(self) -> bool {
        matches!(
            self,
            Measurement::HeadCircumference
                | Measurement::BiparietalDiameter
                | Measurement::OccipitofrontalDiameter
        )
    }

    /// The concept name of its NUM content item.
    pub fn concept(self) -> KnownCode {
        match self {
            Measurement::Volume => codes::VOLUME,
            Measurement::Components => codes::NUMBER_OF_LESIONS,
            Measurement::LongestDiameter => codes::LONG_AXIS,
            Measurement::VolumePercent => codes::VOLUME_RATIO,
            Measurement::Area => codes::AREA,
            Measurement::HeadCircumference => codes::HEAD_CIRCUMFERENCE,
            Measurement::BiparietalDiameter => codes::BIPARIETAL_DIAMETER,
            Measurement::OccipitofrontalDiameter => codes::OCCIPITOFRONTAL_DIAMETER,
        }
    }

    /// Its UCUM unit.
    pub fn unit(self) -> KnownCode {
        match self {
            Measurement::Volume => codes::MILLILITER,
            Measurement::Components => codes::NO_UNITS,
            Measurement::VolumePercent => codes::PERCENT,
            Measurement::Area => codes::SQUARE_MILLIMETER,
            Measurement::LongestDiameter
            | Measurement::HeadCircumference
            | Measurement::BiparietalDiameter
            | Measurement::OccipitofrontalDiameter => codes::MILLIMETER,
        }
    }
}

/// `output.report` of a pipeline: make a measurement report, with these measurements.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    /// The measurements, by name; each applies to the pipeline's kind of mask.
    pub measurements: Vec<Measurement>,
    /// Procedure reported (TID 1500 row 3); default: breast MRI for volume pipelines,
    /// obstetric ultrasound for image pipelines.
    #[serde(default)]
    pub procedure: Option<Code>,
    /// SeriesNumber of the SR; default: the SEG's series number + 1.
    #[serde(default)]
    pub series_number: Option<i32>,
}

/// Why a report configuration cannot work for its pipeline.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReportConfigError {
    #[error("list at least one measurement (valid: {})", valid_names())]
    Empty,
    #[error("{0} is listed twice")]
    Duplicate(&'static str),
    #[error("{name} is measured on {wants}, but this pipeline segments {has}; valid here: {valid}")]
    WrongKind {
        name: &'static str,
        wants: &'static str,
        has: &'static str,
        valid: String,
    },
    #[error(
        "{0} is fetal head biometry, made on the segment whose type is SCT 12738006 \"Brain\"; \
         no segment of this pipeline has that type"
    )]
    NoBrainSegment(&'static str),
}

fn valid_names() -> String {
    Measurement::ALL.map(Measurement::name).join(", ")
}

fn kind_words(kind: MaskKind) -> &'static str {
    match kind {
        MaskKind::Volume => "volumes (job_per = \"study\")",
        MaskKind::Image => "images (job_per = \"instance\")",
    }
}

impl ReportConfig {
    /// Check the configuration against its pipeline: its kind of mask and its segments.
    pub fn validate(
        &self,
        kind: MaskKind,
        segments: &[SegmentSpec],
    ) -> Result<(), ReportConfigError> {
        if self.measurements.is_empty() {
            return Err(ReportConfigError::Empty);
        }
        for (i, m) in self.measurements.iter().enumerate() {
            if self.measurements[..i].contains(m) {
                return Err(ReportConfigError::Duplicate(m.name()));
            }
            if m.applies_to() != kind {
                return Err(ReportConfigError::WrongKind {
                    name: m.name(),
                    wants: kind_words(m.applies_to()),
                    has: kind_words(kind),
                    valid: Measurement::ALL
                        .iter()
                        .filter(|x| x.applies_to() == kind)
                        .map(|x| x.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            if m.is_biometry() && !segments.iter().any(is_brain) {
                return Err(ReportConfigError::NoBrainSegment(m.name()));
            }
        }
        Ok(())
    }

    /// Every measurement that applies to `kind` and `segments` (biometry only with a brain
    /// segment), with the default procedure and series number.
    pub fn all_for(kind: MaskKind, segments: &[SegmentSpec]) -> ReportConfig {
        ReportConfig {
            measurements: Measurement::ALL
                .into_iter()
                .filter(|m| m.applies_to() == kind)
                .filter(|m| !m.is_biometry() || segments.iter().any(is_brain))
                .collect(),
            procedure: None,
            series_number: None,
        }
    }

    /// The measurements in report order.
    pub(super) fn ordered(&self) -> Vec<Measurement> {
        Measurement::ALL
            .into_iter()
            .filter(|m| self.measurements.contains(m))
            .collect()
    }
}

pub(super) fn is_brain(segment: &SegmentSpec) -> bool {
    let brain = crate::pipeline::seg::codes::BRAIN;
    segment.property_type.value == brain.value && segment.property_type.scheme == brain.scheme
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::seg::codes;

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
    fn configs_are_checked_against_their_pipeline() {
        let parse = |s: &str| toml::from_str::<ReportConfig>(s);
        let err = parse("measurements = [\"volume\", \"girth\"]")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("girth") && err.contains("longest_diameter"),
            "{err}"
        );
        let lesion = [spec("Lesion", codes::NEOPLASM)];
        let c = parse("measurements = [\"volume\", \"longest_diameter\"]").unwrap();
        assert_eq!(c.validate(MaskKind::Volume, &lesion), Ok(()));
        let err = c
            .validate(MaskKind::Image, &lesion)
            .unwrap_err()
            .to_string();
        assert!(err.contains("area"), "{err}");
        let c = parse("measurements = [\"area\", \"head_circumference\"]").unwrap();
        assert!(matches!(
            c.validate(MaskKind::Image, &lesion),
            Err(ReportConfigError::NoBrainSegment(_))
        ));
        assert_eq!(
            c.validate(MaskKind::Image, &[spec("Brain", codes::BRAIN)]),
            Ok(())
        );
        let c = parse("measurements = [\"area\", \"area\"]").unwrap();
        assert!(c.validate(MaskKind::Image, &lesion).is_err());
        let c = parse("measurements = []").unwrap();
        assert!(c.validate(MaskKind::Image, &lesion).is_err());
    }
}

//! `segnode eval --report`: the measurement report's numbers against the synthetic truth.
//!
//! - DCE lesion: volume against the truth ellipsoid's 4/3·π·a·b·c, longest diameter
//!   against its longest axis 2·max(a, b, c);
//! - fetal head: per frame, HC against the perimeter (Ramanujan) of the truth brain
//!   ellipse, BPD and OFD against its axes, brain area against π·a·b — all in mm through
//!   the image's pixel spacing.

use std::path::Path;

use super::EvalError;
use crate::pipeline::report::codes;
use crate::pipeline::report::fetal::ramanujan_perimeter;
use crate::pipeline::report::read::{ReadGroup, read_report};
use crate::synth::{FetalHeadTruth, LesionTruth};

/// One measured value beside its truth.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MeasuredVsTruth {
    /// The group (segment, and frame for images).
    pub group: String,
    /// The measurement's code meaning.
    pub measurement: String,
    /// What the report says.
    pub measured: f64,
    /// What the phantom holds.
    pub truth: f64,
    /// UCUM unit of both.
    pub unit: String,
}

impl MeasuredVsTruth {
    /// (measured − truth) / truth, in percent.
    pub fn error_percent(&self) -> f64 {
        (self.measured - self.truth) / self.truth * 100.0
    }
}

/// Compare the report at `report` with the truth file `truth_file` (DCE or fetal).
pub fn compare_report(report: &Path, truth_file: &Path) -> Result<Vec<MeasuredVsTruth>, EvalError> {
    let groups = read_report(report).map_err(|e| EvalError::Mismatch(e.to_string()))?;
    let text =
        std::fs::read_to_string(truth_file).map_err(|source| crate::synth::SynthError::Io {
            path: truth_file.to_path_buf(),
            source,
        })?;
    let expected: Vec<(&str, f64)> = if text.contains("skull_inner") {
        let t = FetalHeadTruth::load(truth_file)?;
        let [row, col] = t.pixel_spacing_mm;
        let [sa, sb] = t.skull_inner.semi_axes;
        // Square pixels in the phantom: the mm ellipse is the pixel ellipse scaled.
        let (a, b) = (sa.max(sb) * col, sa.min(sb) * row);
        vec![
            (codes::HEAD_CIRCUMFERENCE.value, ramanujan_perimeter(a, b)),
            (codes::BIPARIETAL_DIAMETER.value, 2.0 * b),
            (codes::OCCIPITOFRONTAL_DIAMETER.value, 2.0 * a),
        ]
    } else {
        let t = LesionTruth::load(truth_file)?;
        let [a, b, c] = t.radii_mm;
        vec![
            (
                codes::VOLUME.value,
                4.0 / 3.0 * std::f64::consts::PI * a * b * c / 1000.0,
            ),
            (codes::LONG_AXIS.value, 2.0 * a.max(b).max(c)),
        ]
    };
    Ok(groups
        .iter()
        .flat_map(|g: &ReadGroup| {
            expected.iter().filter_map(move |&(code, truth)| {
                let v = g.values.iter().find(|v| v.0 == code)?;
                Some(MeasuredVsTruth {
                    group: g.tracking_identifier.clone(),
                    measurement: v.1.clone(),
                    measured: v.2,
                    truth,
                    unit: v.3.clone(),
                })
            })
        })
        .collect())
}

/// The comparison as an aligned table.
pub fn report_table(rows: &[MeasuredVsTruth]) -> String {
    let mut out = format!(
        "{:<28} {:<28} {:>12} {:>12} {:>5} {:>8}\n",
        "group", "measurement", "measured", "truth", "unit", "error %"
    );
    for r in rows {
        out += &format!(
            "{:<28} {:<28} {:>12.3} {:>12.3} {:>5} {:>8.2}\n",
            r.group,
            r.measurement,
            r.measured,
            r.truth,
            r.unit,
            r.error_percent()
        );
    }
    out
}

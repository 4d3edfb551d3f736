//! `segnode eval`: how well a SEG matches a synthetic image's known truth.
//!
//! The truth file says what it describes and so how the SEG is scored:
//! - a DCE lesion (`lesion`): every segmented pixel placed in patient coordinates from the
//!   SEG's own geometry, so a flipped, shifted or mis-ordered SEG scores badly;
//! - a fetal head (`fetal`): every SEG frame compared pixel for pixel with the structure's
//!   truth on the source image it references, segments matched to structures by their
//!   SNOMED CT property type.
//!
//! Per segment: Dice, IoU and pixel accuracy, as a table or JSON; with `--report`, the
//! measurement report's numbers against the truth ([`compare_report`]).

mod fetal;
mod lesion;
mod report;

use std::path::Path;

pub use fetal::evaluate_fetal;
pub use lesion::evaluate;
pub use report::{MeasuredVsTruth, compare_report, report_table};

use crate::pipeline::seg::{SegError, read_seg};
use crate::synth::{FetalHeadTruth, LesionTruth, SynthError};

/// Why an evaluation could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read the SEG: {0}")]
    Seg(#[from] SegError),
    #[error("cannot read the truth: {0}")]
    Truth(#[from] SynthError),
    #[error("the SEG has no usable geometry: {0}")]
    Geometry(String),
    #[error("the SEG has no segment {0}")]
    NoSuchSegment(u16),
    #[error("the SEG does not fit the truth: {0}")]
    Mismatch(String),
}

/// Agreement of one segment with the truth.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SegmentScore {
    /// SegmentNumber.
    pub segment: u16,
    /// SegmentLabel.
    pub label: String,
    /// Voxels (pixels) the SEG marks.
    pub seg_voxels: u64,
    /// Voxels (pixels) the truth holds.
    pub truth_voxels: u64,
    /// Voxels both mark.
    pub intersection: u64,
    /// 2|A∩B| / (|A| + |B|); 1 when both are empty.
    pub dice: f64,
    /// |A∩B| / |A∪B|; 1 when both are empty.
    pub iou: f64,
    /// Voxels where the SEG and the truth agree (both in or both out), over all voxels
    /// scored.
    pub pixel_accuracy: f64,
}

impl SegmentScore {
    /// The scores from the counts; `total` is every voxel scored.
    pub fn new(
        segment: u16,
        label: &str,
        seg_voxels: u64,
        truth_voxels: u64,
        intersection: u64,
        total: u64,
    ) -> Self {
        let union = seg_voxels + truth_voxels - intersection;
        let (dice, iou) = if union == 0 {
            (1.0, 1.0)
        } else {
            (
                2.0 * intersection as f64 / (seg_voxels + truth_voxels) as f64,
                intersection as f64 / union as f64,
            )
        };
        let disagree = union - intersection;
        let pixel_accuracy = if total == 0 {
            1.0
        } else {
            1.0 - disagree.min(total) as f64 / total as f64
        };
        SegmentScore {
            segment,
            label: label.to_string(),
            seg_voxels,
            truth_voxels,
            intersection,
            dice,
            iou,
            pixel_accuracy,
        }
    }
}

/// Score `segment` of the SEG at `seg_path` against a synthetic DCE study's lesion truth
/// (`truth.toml`, or the study folder holding it).
pub fn evaluate_file(
    seg_path: &Path,
    truth_path: &Path,
    segment: u16,
) -> Result<SegmentScore, EvalError> {
    let truth = LesionTruth::load(truth_file(truth_path))?;
    let seg = read_seg(seg_path)?;
    evaluate(&seg, &truth, segment)
}

/// Score the SEG at `seg_path` against any synthetic truth (`truth.toml`, or the folder
/// holding it): every segment, or only `segment`.
pub fn evaluate_files(
    seg_path: &Path,
    truth_path: &Path,
    segment: Option<u16>,
) -> Result<Vec<SegmentScore>, EvalError> {
    let file = truth_file(truth_path);
    let seg = read_seg(seg_path)?;
    let text = std::fs::read_to_string(&file).map_err(|source| SynthError::Io {
        path: file.clone(),
        source,
    })?;
    if text.contains("skull_inner") {
        let truth = FetalHeadTruth::load(&file)?;
        let scores = evaluate_fetal(&seg, &truth)?;
        return match segment {
            None => Ok(scores),
            Some(n) => scores
                .into_iter()
                .find(|s| s.segment == n)
                .map(|s| vec![s])
                .ok_or(EvalError::NoSuchSegment(n)),
        };
    }
    let truth = LesionTruth::load(&file)?;
    let numbers: Vec<u16> = match segment {
        Some(n) => vec![n],
        None => seg.segments.iter().map(|s| s.number).collect(),
    };
    numbers
        .into_iter()
        .map(|n| evaluate(&seg, &truth, n))
        .collect()
}

/// `truth.toml`, or the file in the folder `path`.
pub fn truth_file(path: &Path) -> std::path::PathBuf {
    if path.is_dir() {
        path.join("truth.toml")
    } else {
        path.to_path_buf()
    }
}

/// The scores as an aligned table.
pub fn table(scores: &[SegmentScore]) -> String {
    let mut out = format!(
        "{:>7}  {:<24} {:>10} {:>10} {:>10} {:>7} {:>7} {:>9}\n",
        "segment", "label", "seg", "truth", "overlap", "Dice", "IoU", "accuracy"
    );
    for s in scores {
        out += &format!(
            "{:>7}  {:<24} {:>10} {:>10} {:>10} {:>7.4} {:>7.4} {:>9.5}\n",
            s.segment,
            s.label,
            s.seg_voxels,
            s.truth_voxels,
            s.intersection,
            s.dice,
            s.iou,
            s.pixel_accuracy
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_from_counts() {
        let s = SegmentScore::new(1, "x", 30, 40, 20, 1000);
        assert!((s.dice - 40.0 / 70.0).abs() < 1e-12);
        assert!((s.iou - 20.0 / 50.0).abs() < 1e-12);
        // 10 + 20 voxels disagree out of 1000.
        assert!((s.pixel_accuracy - 0.97).abs() < 1e-12);
        let empty = SegmentScore::new(2, "y", 0, 0, 0, 10);
        assert_eq!(
            (empty.dice, empty.iou, empty.pixel_accuracy),
            (1.0, 1.0, 1.0)
        );
        assert!(table(&[s, empty]).contains("accuracy"));
    }
}

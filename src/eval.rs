//! `segnode eval`: how well a SEG matches a known truth, measured in patient coordinates.
//!
//! Every segmented pixel of every frame is placed in patient space from the frame's own
//! ImagePositionPatient and the SEG's ImageOrientationPatient and PixelSpacing, then tested
//! against the truth. Nothing relies on frame order, slice numbering or the source files,
//! so a flipped, shifted or mis-ordered SEG scores badly, as it should.

use std::path::Path;

use crate::pipeline::seg::{SegContents, SegError, read_seg};
use crate::synth::{LesionTruth, SynthError};

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
}

/// Agreement of one segment with the truth.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SegmentScore {
    /// SegmentNumber.
    pub segment: u16,
    /// SegmentLabel.
    pub label: String,
    /// Voxels the SEG marks.
    pub seg_voxels: u64,
    /// Voxels the truth holds on the source grid.
    pub truth_voxels: u64,
    /// Voxels both mark.
    pub intersection: u64,
    /// 2|A∩B| / (|A| + |B|); 1 when both are empty.
    pub dice: f64,
    /// |A∩B| / |A∪B|; 1 when both are empty.
    pub iou: f64,
}

/// Frame-to-patient mapping of a SEG (shared orientation and spacing).
struct FramePlane {
    row_dir: [f64; 3],
    col_dir: [f64; 3],
    row_spacing: f64,
    col_spacing: f64,
}

impl FramePlane {
    fn of(seg: &SegContents) -> Result<Self, EvalError> {
        let iop = parse_ds(&seg.image_orientation, 6, "ImageOrientationPatient")?;
        let ps = parse_ds(&seg.pixel_spacing, 2, "PixelSpacing")?;
        Ok(FramePlane {
            row_dir: [iop[0], iop[1], iop[2]],
            col_dir: [iop[3], iop[4], iop[5]],
            row_spacing: ps[0],
            col_spacing: ps[1],
        })
    }

    /// Centre of pixel (row r, column c) of a frame at `ipp` (PS3.3 C.7.6.2.1.1).
    fn patient(&self, ipp: &[f64], r: usize, c: usize) -> [f64; 3] {
        let (r, c) = (r as f64, c as f64);
        std::array::from_fn(|i| {
            ipp[i] + self.row_dir[i] * self.col_spacing * c + self.col_dir[i] * self.row_spacing * r
        })
    }
}

fn parse_ds(values: &[String], n: usize, what: &str) -> Result<Vec<f64>, EvalError> {
    let parsed: Vec<f64> = values
        .iter()
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    if parsed.len() != n {
        return Err(EvalError::Geometry(format!(
            "{what} has {} numbers, expected {n}",
            parsed.len()
        )));
    }
    Ok(parsed)
}

/// Score `segment` of the SEG at `seg_path` against a synthetic study's lesion truth
/// (`truth.toml`, or the study folder holding it).
pub fn evaluate_file(
    seg_path: &Path,
    truth_path: &Path,
    segment: u16,
) -> Result<SegmentScore, EvalError> {
    let truth_file = if truth_path.is_dir() {
        truth_path.join("truth.toml")
    } else {
        truth_path.to_path_buf()
    };
    let truth = LesionTruth::load(&truth_file)?;
    let seg = read_seg(seg_path)?;
    evaluate(&seg, &truth, segment)
}

/// Score one segment against the lesion truth. The truth's voxel count is taken on the
/// source grid; the SEG's frames are that grid (one frame per source slice and segment).
pub fn evaluate(
    seg: &SegContents,
    truth: &LesionTruth,
    segment: u16,
) -> Result<SegmentScore, EvalError> {
    let info = seg
        .segments
        .iter()
        .find(|s| s.number == segment)
        .ok_or(EvalError::NoSuchSegment(segment))?;
    let plane = FramePlane::of(seg)?;
    let (mut seg_voxels, mut intersection) = (0u64, 0u64);
    for frame in seg.frames.iter().filter(|f| f.segment_number == segment) {
        let ipp = parse_ds(&frame.image_position, 3, "ImagePositionPatient")?;
        for ((r, c), &on) in frame.pixels.indexed_iter() {
            if on {
                seg_voxels += 1;
                if truth.contains(plane.patient(&ipp, r, c)) {
                    intersection += 1;
                }
            }
        }
    }
    let truth_voxels = truth.voxel_count;
    let union = seg_voxels + truth_voxels - intersection;
    let (dice, iou) = if union == 0 {
        (1.0, 1.0)
    } else {
        (
            2.0 * intersection as f64 / (seg_voxels + truth_voxels) as f64,
            intersection as f64 / union as f64,
        )
    };
    Ok(SegmentScore {
        segment,
        label: info.label.clone(),
        seg_voxels,
        truth_voxels,
        intersection,
        dice,
        iou,
    })
}

/// The scores as an aligned table.
pub fn table(scores: &[SegmentScore]) -> String {
    let mut out = format!(
        "{:>7}  {:<24} {:>10} {:>10} {:>10} {:>7} {:>7}\n",
        "segment", "label", "seg", "truth", "overlap", "Dice", "IoU"
    );
    for s in scores {
        out += &format!(
            "{:>7}  {:<24} {:>10} {:>10} {:>10} {:>7.4} {:>7.4}\n",
            s.segment, s.label, s.seg_voxels, s.truth_voxels, s.intersection, s.dice, s.iou
        );
    }
    out
}

//! A SEG of a synthetic DCE study against its lesion truth, in patient coordinates.
//!
//! Every segmented pixel of every frame is placed in patient space from the frame's own
//! ImagePositionPatient and the SEG's ImageOrientationPatient and PixelSpacing, then tested
//! against the truth. Nothing relies on frame order, slice numbering or the source files,
//! so a flipped, shifted or mis-ordered SEG scores badly, as it should.

use super::{EvalError, SegmentScore};
use crate::pipeline::seg::SegContents;
use crate::synth::LesionTruth;

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
    // Pixel accuracy over the SEG's frames of this segment (the whole source grid unless
    // empty frames were omitted).
    let frames = seg
        .frames
        .iter()
        .filter(|f| f.segment_number == segment)
        .count() as u64;
    let total = frames * u64::from(seg.rows) * u64::from(seg.columns);
    Ok(SegmentScore::new(
        segment,
        &info.label,
        seg_voxels,
        truth.voxel_count,
        intersection,
        total,
    ))
}

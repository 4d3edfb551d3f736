//! The geometry of the reference series a SEG is drawn on, and its checks.
//!
//! Geometry strings (orientation, position, spacing) are kept exactly as the source wrote
//! them, because viewers such as OHIF compare the SEG's orientation with the source's
//! textually or with tight tolerances and reject a recomputed value that drifts.
//! Numbers are parsed only to check consistency and to order slices along the normal.
//!
//! Images without patient geometry (for example ultrasound without a frame of reference)
//! are described by `frame_of_reference_uid: None`, an empty `image_orientation` and empty
//! slice positions; the encoder then writes no plane position/orientation and indexes
//! frames by segment only (as highdicom does) for a single source image. For the frames of
//! one multi-frame source without patient geometry (an ultrasound cine), each slice names
//! its source frame, and frames are indexed by segment and by that frame number (Frame
//! Content TemporalPositionIndex), each SEG frame referencing its source frame
//! (ReferencedFrameNumber).

use super::error::SegError;
use crate::uids::is_valid_uid;

/// Geometry of the reference series, slices ordered along the slice normal.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceGeometry {
    /// Rows of every source slice (and of every SEG frame).
    pub rows: u16,
    /// Columns of every source slice (and of every SEG frame).
    pub columns: u16,
    /// The 6 ImageOrientationPatient DS values exactly as in the source (copied verbatim
    /// into the SEG); empty for images without patient geometry.
    pub image_orientation: Vec<String>,
    /// The 2 PixelSpacing DS values verbatim (row spacing, column spacing); may be empty
    /// only for images without patient geometry.
    pub pixel_spacing: Vec<String>,
    /// SliceThickness of the source, verbatim, if it has one.
    pub slice_thickness: Option<String>,
    /// SpacingBetweenSlices of the source, verbatim, if it has one.
    pub spacing_between_slices: Option<String>,
    /// FrameOfReferenceUID of the source; `None` for images without patient geometry.
    pub frame_of_reference_uid: Option<String>,
    /// PositionReferenceIndicator of the source, if any.
    pub position_reference_indicator: Option<String>,
    /// One entry per source slice, in the order of the masks' first axis.
    pub slices: Vec<SourceSlice>,
}

/// One source image (slice) of the reference series, or one frame of a multi-frame source.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceSlice {
    /// SOP Class UID of the source image (referenced from the SEG frame).
    pub sop_class_uid: String,
    /// SOP Instance UID of the source image.
    pub sop_instance_uid: String,
    /// Series the source image belongs to (listed in ReferencedSeriesSequence).
    pub series_instance_uid: String,
    /// The 3 ImagePositionPatient DS values verbatim; empty without patient geometry.
    pub image_position: Vec<String>,
    /// The 1-based frame of a multi-frame source this slice is; `None` for single-frame
    /// sources.
    pub frame_number: Option<u32>,
}

/// What the encoder needs to know once the geometry has been checked.
#[derive(Debug, Clone)]
pub(crate) struct CheckedGeometry {
    /// Slice indices (into `SourceGeometry::slices`) in increasing position along the normal.
    pub(crate) order: Vec<usize>,
    /// For each slice index, its 1-based rank along the normal (the position dimension index).
    pub(crate) position_index: Vec<u32>,
    /// Centre-to-centre slice spacing, when the slices are evenly spaced.
    pub(crate) spacing: Option<f64>,
    /// Whether the source has patient geometry (frame of reference, orientation, positions).
    pub(crate) patient: bool,
    /// Whether the slices are frames of one multi-frame source without patient geometry
    /// (frames are then indexed by source frame number; `position_index` holds it).
    pub(crate) source_frames: bool,
}

/// Slices closer than this along the normal (mm) count as the same position.
const SAME_POSITION_MM: f64 = 1e-3;
/// Largest tolerated deviation of a direction cosine vector from unit length / orthogonality.
const COSINE_TOLERANCE: f64 = 1e-3;

impl SourceGeometry {
    /// Whether the source lives in a patient frame of reference (and so the SEG carries
    /// plane positions and orientation).
    pub fn has_patient_geometry(&self) -> bool {
        self.frame_of_reference_uid.is_some()
    }

    /// Unit slice normal (row direction × column direction), when the orientation parses.
    pub fn slice_normal(&self) -> Option<[f64; 3]> {
        let iop = parse_all(&self.image_orientation).filter(|v| v.len() == 6)?;
        let n = cross(&iop[0..3], &iop[3..6]);
        let len = dot(&n, &n).sqrt();
        (len > 0.5).then(|| [n[0] / len, n[1] / len, n[2] / len])
    }

    /// Check the geometry and compute slice order, position indices and spacing.
    pub(crate) fn check(&self) -> Result<CheckedGeometry, SegError> {
        let bad = |msg: String| Err(SegError::InvalidGeometry(msg));
        if self.rows == 0 || self.columns == 0 {
            return bad(format!(
                "frame size {}x{} is empty",
                self.rows, self.columns
            ));
        }
        if self.slices.is_empty() {
            return bad("no source slices".into());
        }
        if let Some(uid) = &self.frame_of_reference_uid
            && !is_valid_uid(uid)
        {
            return bad(format!("FrameOfReferenceUID {uid:?} is not a valid UID"));
        }
        let mut seen_frames = std::collections::HashSet::new();
        for s in &self.slices {
            for (name, uid) in [
                ("SOPClassUID", &s.sop_class_uid),
                ("SOPInstanceUID", &s.sop_instance_uid),
                ("SeriesInstanceUID", &s.series_instance_uid),
            ] {
                if !is_valid_uid(uid) {
                    return bad(format!("slice {name} {uid:?} is not a valid UID"));
                }
            }
            if s.frame_number == Some(0) {
                return bad(format!(
                    "frame number 0 of {}: frames are numbered from 1",
                    s.sop_instance_uid
                ));
            }
            if !seen_frames.insert((s.sop_instance_uid.as_str(), s.frame_number)) {
                return bad(format!(
                    "instance {} frame {:?} appears more than once",
                    s.sop_instance_uid, s.frame_number
                ));
            }
        }
        if self.slices.iter().any(|s| s.frame_number.is_some()) && self.has_patient_geometry() {
            return Err(SegError::Unsupported(
                "frames of multi-frame sources with patient geometry (enhanced MR/CT): convert \
                 them to single-frame images first"
                    .into(),
            ));
        }
        if !self.has_patient_geometry() {
            return self.check_without_patient_geometry();
        }
        let iop = parse_all(&self.image_orientation).filter(|v| v.len() == 6);
        let Some(iop) = iop else {
            return bad(format!(
                "ImageOrientationPatient {:?} is not 6 numbers",
                self.image_orientation
            ));
        };
        let (row, col) = (&iop[0..3], &iop[3..6]);
        if (dot(row, row).sqrt() - 1.0).abs() > COSINE_TOLERANCE
            || (dot(col, col).sqrt() - 1.0).abs() > COSINE_TOLERANCE
            || dot(row, col).abs() > COSINE_TOLERANCE
        {
            return bad(format!(
                "ImageOrientationPatient {:?} is not two orthonormal vectors",
                self.image_orientation
            ));
        }
        match parse_all(&self.pixel_spacing) {
            Some(ps) if ps.len() == 2 && ps.iter().all(|v| *v > 0.0) => {}
            _ => {
                return bad(format!(
                    "PixelSpacing {:?} is not 2 positive numbers",
                    self.pixel_spacing
                ));
            }
        }
        let normal = self.slice_normal().expect("orientation checked above");
        let mut distances = Vec::with_capacity(self.slices.len());
        for s in &self.slices {
            match parse_all(&s.image_position) {
                Some(p) if p.len() == 3 => distances.push(dot(&p, &normal)),
                _ => {
                    return bad(format!(
                        "ImagePositionPatient {:?} of {} is not 3 numbers",
                        s.image_position, s.sop_instance_uid
                    ));
                }
            }
        }
        let mut order: Vec<usize> = (0..self.slices.len()).collect();
        order.sort_by(|&a, &b| distances[a].total_cmp(&distances[b]));
        let gaps: Vec<f64> = order
            .windows(2)
            .map(|w| distances[w[1]] - distances[w[0]])
            .collect();
        if let Some(i) = gaps.iter().position(|g| *g < SAME_POSITION_MM) {
            return bad(format!(
                "slices {} and {} lie at the same position along the slice normal",
                self.slices[order[i]].sop_instance_uid,
                self.slices[order[i + 1]].sop_instance_uid
            ));
        }
        let mut position_index = vec![0; self.slices.len()];
        for (rank, &i) in order.iter().enumerate() {
            position_index[i] = rank as u32 + 1;
        }
        let spacing = even_spacing(&gaps);
        Ok(CheckedGeometry {
            order,
            position_index,
            spacing,
            patient: true,
            source_frames: false,
        })
    }

    fn check_without_patient_geometry(&self) -> Result<CheckedGeometry, SegError> {
        if !self.image_orientation.is_empty()
            || self.slices.iter().any(|s| !s.image_position.is_empty())
        {
            return Err(SegError::InvalidGeometry(
                "orientation/positions given without a FrameOfReferenceUID; give both or neither"
                    .into(),
            ));
        }
        let first = &self.slices[0];
        if first.frame_number.is_some() {
            if let Some(other) = self
                .slices
                .iter()
                .find(|s| s.sop_instance_uid != first.sop_instance_uid || s.frame_number.is_none())
            {
                return Err(SegError::Unsupported(format!(
                    "source frames of {} mixed with {} frame {:?}; a SEG of images without a \
                     frame of reference covers the frames of one instance",
                    first.sop_instance_uid, other.sop_instance_uid, other.frame_number
                )));
            }
            let mut order: Vec<usize> = (0..self.slices.len()).collect();
            order.sort_by_key(|&i| self.slices[i].frame_number);
            return Ok(CheckedGeometry {
                order,
                position_index: self
                    .slices
                    .iter()
                    .map(|s| s.frame_number.unwrap_or(1))
                    .collect(),
                spacing: None,
                patient: false,
                source_frames: true,
            });
        }
        if self.slices.len() > 1 {
            return Err(SegError::Unsupported(format!(
                "{} source images without a frame of reference; a SEG of images without patient \
                 geometry references one source image, or the frames of one multi-frame image",
                self.slices.len()
            )));
        }
        Ok(CheckedGeometry {
            order: vec![0],
            position_index: vec![1],
            spacing: None,
            patient: false,
            source_frames: false,
        })
    }
}

/// The mean gap when all gaps agree within 1 % (or 0.01 mm), else `None`.
fn even_spacing(gaps: &[f64]) -> Option<f64> {
    let mean = gaps.iter().sum::<f64>() / gaps.len().max(1) as f64;
    let tolerance = (mean * 0.01).max(0.01);
    (!gaps.is_empty() && gaps.iter().all(|g| (g - mean).abs() <= tolerance)).then_some(mean)
}

/// Parse DS strings; `None` if any is not a finite number.
pub(crate) fn parse_all(values: &[String]) -> Option<Vec<f64>> {
    values
        .iter()
        .map(|v| v.trim().parse::<f64>().ok().filter(|x| x.is_finite()))
        .collect()
}

pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn cross(a: &[f64], b: &[f64]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// Format a number as a DS value (at most 16 characters), to micrometre precision.
pub fn format_ds(v: f64) -> String {
    let fixed = format!("{v:.6}");
    let fixed = fixed.trim_end_matches('0').trim_end_matches('.');
    let fixed = if fixed == "-0" { "0" } else { fixed };
    if fixed.len() <= 16 {
        fixed.to_string()
    } else {
        format!("{v:.6e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn geometry(positions: &[[&str; 3]]) -> SourceGeometry {
        SourceGeometry {
            rows: 4,
            columns: 3,
            image_orientation: strs(&["1", "0", "0", "0", "0", "-1"]),
            pixel_spacing: strs(&["0.5", "0.5"]),
            slice_thickness: None,
            spacing_between_slices: None,
            frame_of_reference_uid: Some("1.2.3".into()),
            position_reference_indicator: None,
            slices: positions
                .iter()
                .enumerate()
                .map(|(i, p)| SourceSlice {
                    sop_class_uid: "1.2.840.10008.5.1.4.1.1.4".into(),
                    sop_instance_uid: format!("1.2.3.{}", i + 1),
                    series_instance_uid: "1.2.4".into(),
                    image_position: strs(p),
                    frame_number: None,
                })
                .collect(),
        }
    }

    #[test]
    fn orders_along_the_normal_not_the_given_order() {
        // Row x = (1,0,0), column = (0,0,-1): normal = (0,1,0), so y orders the slices.
        let g = geometry(&[["0", "5", "0"], ["0", "-1", "0"], ["0", "2", "0"]]);
        let c = g.check().unwrap();
        assert_eq!(c.order, vec![1, 2, 0]);
        assert_eq!(c.position_index, vec![3, 1, 2]);
        assert_eq!(c.spacing, Some(3.0));
        let uneven = geometry(&[["0", "0", "0"], ["0", "1", "0"], ["0", "3", "0"]]);
        assert_eq!(uneven.check().unwrap().spacing, None);
    }

    #[test]
    fn rejects_duplicate_positions_and_bad_orientation() {
        let g = geometry(&[["0", "1", "0"], ["9", "1", "0"]]);
        assert!(
            matches!(g.check(), Err(SegError::InvalidGeometry(m)) if m.contains("same position"))
        );
        let mut g = geometry(&[["0", "1", "0"]]);
        g.image_orientation = strs(&["1", "0", "0", "1", "0", "0"]);
        assert!(g.check().is_err());
    }

    #[test]
    fn without_frame_of_reference_needs_no_positions_and_one_image() {
        let mut g = geometry(&[[""; 3]]);
        g.frame_of_reference_uid = None;
        g.image_orientation.clear();
        g.slices[0].image_position.clear();
        assert!(!g.check().unwrap().patient);
        g.slices.push(g.slices[0].clone());
        g.slices[1].sop_instance_uid = "1.2.3.9".into();
        assert!(matches!(g.check(), Err(SegError::Unsupported(_))));
    }

    #[test]
    fn ds_formatting_fits_16_chars() {
        assert_eq!(format_ds(1.5), "1.5");
        assert_eq!(format_ds(2.9999999999), "3");
        assert_eq!(format_ds(-0.0000001), "0");
        assert_eq!(format_ds(0.123456789), "0.123457");
        assert!(format_ds(1.0e20).len() <= 16);
    }
}

//! A SEG of a synthetic fetal head image against its truth, pixel for pixel.
//!
//! The image has no patient geometry, so pixels are compared on the image grid: each SEG
//! frame must reference the truth's instance (and, for a cine, a frame of it); every frame
//! of the instance shows the same anatomy. Segments are matched to structures by their
//! SNOMED CT property type (brain 12738006, cavum septi pellucidi 74968005, lateral
//! ventricle 66720007). A SEG whose segments do not overlap (SegmentsOverlap `NO`, from
//! exclusive classes) has its brain scored without the CSP and the ventricle, which the
//! other segments hold.

use ndarray::Array2;

use super::{EvalError, SegmentScore};
use crate::pipeline::seg::SegContents;
use crate::pipeline::seg::codes::{BRAIN, CAVUM_SEPTI_PELLUCIDI, LATERAL_VENTRICLE};
use crate::synth::{FetalHeadTruth, FetalStructure};

/// Score every segment of `seg` that names a fetal head structure.
pub fn evaluate_fetal(
    seg: &SegContents,
    truth: &FetalHeadTruth,
) -> Result<Vec<SegmentScore>, EvalError> {
    if (usize::from(seg.rows), usize::from(seg.columns)) != (truth.rows, truth.columns) {
        return Err(EvalError::Mismatch(format!(
            "SEG frames are {}x{}, the image {}x{}",
            seg.rows, seg.columns, truth.rows, truth.columns
        )));
    }
    if let Some(other) = seg
        .frames
        .iter()
        .find(|f| f.referenced_sop_instance_uid() != Some(truth.sop_instance_uid.as_str()))
    {
        return Err(EvalError::Mismatch(format!(
            "a frame references {:?}, the truth describes {}",
            other.referenced_sop_instance_uid(),
            truth.sop_instance_uid
        )));
    }
    let exclusive = seg.segments_overlap.as_deref() == Some("NO");
    let truth_masks: Vec<(FetalStructure, Array2<bool>)> = FetalStructure::ALL
        .iter()
        .map(|&s| (s, truth.mask(s)))
        .collect();
    let truth_of = |structure: FetalStructure| -> Array2<bool> {
        let mut mask = truth_masks
            .iter()
            .find(|(s, _)| *s == structure)
            .map(|(_, m)| m.clone())
            .expect("every structure has a mask");
        if exclusive && structure == FetalStructure::Brain {
            for (s, inner) in &truth_masks {
                if *s != FetalStructure::Brain {
                    mask.zip_mut_with(inner, |b, &i| *b &= !i);
                }
            }
        }
        mask
    };
    let frames = u64::from(truth.frames.max(1));
    let mut scores = Vec::new();
    for info in &seg.segments {
        let Some(structure) = structure_of(info.property_type.as_ref().map(|c| c.value.as_str()))
        else {
            continue;
        };
        let expected = truth_of(structure);
        let truth_pixels = expected.iter().filter(|&&v| v).count() as u64;
        let (mut seg_pixels, mut intersection) = (0u64, 0u64);
        for frame in seg
            .frames
            .iter()
            .filter(|f| f.segment_number == info.number)
        {
            if let Some(n) = frame.referenced_frame_number
                && (n == 0 || n > truth.frames.max(1))
            {
                return Err(EvalError::Mismatch(format!(
                    "a frame references source frame {n} of {} frame(s)",
                    truth.frames
                )));
            }
            for (&on, &want) in frame.pixels.iter().zip(expected.iter()) {
                seg_pixels += u64::from(on);
                intersection += u64::from(on && want);
            }
        }
        scores.push(SegmentScore::new(
            info.number,
            &info.label,
            seg_pixels,
            truth_pixels * frames,
            intersection,
            (truth.rows * truth.columns) as u64 * frames,
        ));
    }
    if scores.is_empty() {
        return Err(EvalError::Mismatch(
            "no segment names a fetal head structure (brain, cavum septi pellucidi, lateral ventricle)".into(),
        ));
    }
    Ok(scores)
}

fn structure_of(property_type: Option<&str>) -> Option<FetalStructure> {
    match property_type? {
        v if v == BRAIN.value => Some(FetalStructure::Brain),
        v if v == CAVUM_SEPTI_PELLUCIDI.value => Some(FetalStructure::Csp),
        v if v == LATERAL_VENTRICLE.value => Some(FetalStructure::Lv),
        _ => None,
    }
}

//! Which frames the SEG holds and how each is described: the frame plan (by segment, then
//! by position along the slice normal), the Shared and Per-frame Functional Groups, the
//! Multi-frame Dimension module and the Common Instance Reference module.

use dicom_core::VR;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_object::mem::InMemElement;
use ndarray::{Array3, Axis};

use super::codes::{DERIVATION_SEGMENTATION, SOURCE_IMAGE_FOR_PROCESSING};
use super::elements::{at, obj, seq, text, texts, ul, us};
use super::geometry::{CheckedGeometry, SourceGeometry, format_ds};

/// One frame of the SEG: the segment it belongs to and the source slice it lies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PlannedFrame {
    /// Segment number, 1-based; 0 for a LABELMAP frame, which holds every segment.
    pub(crate) segment: u16,
    /// Index into `SourceGeometry::slices` (and the masks' first axis).
    pub(crate) slice: usize,
}

/// The frames to encode: for each segment, each source slice in order along the normal;
/// with `omit_empty`, slices where the segment has no pixel are left out. An object needs
/// at least one frame, so if every frame would be left out the first one is kept.
pub(crate) fn plan_frames(
    masks: &[Array3<bool>],
    checked: &CheckedGeometry,
    omit_empty: bool,
) -> Vec<PlannedFrame> {
    let mut plan = Vec::with_capacity(masks.len() * checked.order.len());
    plan_binary(&mut plan, masks, checked, omit_empty);
    keep_one(plan, checked, 1)
}

/// The frames of a LABELMAP SEG: one per source slice in order along the normal (with
/// `omit_empty`, only slices where some segment has a pixel), each holding every segment.
pub(crate) fn plan_label_frames(
    masks: &[Array3<bool>],
    checked: &CheckedGeometry,
    omit_empty: bool,
) -> Vec<PlannedFrame> {
    let plan = checked
        .order
        .iter()
        .filter(|&&slice| {
            !omit_empty
                || masks
                    .iter()
                    .any(|m| m.index_axis(Axis(0), slice).iter().any(|&on| on))
        })
        .map(|&slice| PlannedFrame { segment: 0, slice })
        .collect();
    keep_one(plan, checked, 0)
}

fn plan_binary(
    plan: &mut Vec<PlannedFrame>,
    masks: &[Array3<bool>],
    checked: &CheckedGeometry,
    omit_empty: bool,
) {
    for (s, mask) in masks.iter().enumerate() {
        for &slice in &checked.order {
            if !omit_empty || mask.index_axis(Axis(0), slice).iter().any(|&on| on) {
                plan.push(PlannedFrame {
                    segment: s as u16 + 1,
                    slice,
                });
            }
        }
    }
}

/// An object needs at least one frame: when every frame was left out, the first slice's
/// frame (of `segment`: 1 for BINARY, 0 for LABELMAP) is kept.
fn keep_one(
    mut plan: Vec<PlannedFrame>,
    checked: &CheckedGeometry,
    segment: u16,
) -> Vec<PlannedFrame> {
    if plan.is_empty() {
        tracing::warn!(
            "every segment is empty; keeping one empty frame so that the SEG stays valid"
        );
        plan.push(PlannedFrame {
            segment,
            slice: checked.order[0],
        });
    }
    plan
}

/// The single Shared Functional Groups item: pixel measures and plane orientation.
///
/// SliceThickness is required by the Pixel Measures macro for 3D frames; when the source
/// has none, its SpacingBetweenSlices (or else the spacing computed from the positions)
/// stands in. SpacingBetweenSlices is copied, or computed when the slices are even.
pub(crate) fn shared_item(
    geometry: &SourceGeometry,
    checked: &CheckedGeometry,
) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    if !checked.patient {
        // Without patient geometry the frames have no plane in space: no Pixel Measures
        // (as highdicom writes, and reads back); the source images keep their calibration
        // (SpatialLocationsPreserved YES).
        return item;
    }
    let mut measures = InMemDicomObject::new_empty();
    if geometry.pixel_spacing.len() == 2 {
        measures.put(texts(tags::PIXEL_SPACING, VR::DS, &geometry.pixel_spacing));
    }
    let computed = checked.spacing.map(format_ds);
    let thickness = geometry
        .slice_thickness
        .clone()
        .or_else(|| geometry.spacing_between_slices.clone())
        .or_else(|| computed.clone());
    if let Some(t) = thickness {
        measures.put(text(tags::SLICE_THICKNESS, VR::DS, &t));
    }
    if let Some(s) = geometry.spacing_between_slices.clone().or(computed) {
        measures.put(text(tags::SPACING_BETWEEN_SLICES, VR::DS, &s));
    }
    if measures.iter().next().is_some() {
        item.put(seq(tags::PIXEL_MEASURES_SEQUENCE, vec![measures]));
    }
    item.put(seq(
        tags::PLANE_ORIENTATION_SEQUENCE,
        vec![obj([texts(
            tags::IMAGE_ORIENTATION_PATIENT,
            VR::DS,
            &geometry.image_orientation,
        )])],
    ));
    item
}

/// The Per-frame Functional Groups item of `frame`.
pub(crate) fn per_frame_item(
    frame: PlannedFrame,
    geometry: &SourceGeometry,
    checked: &CheckedGeometry,
) -> InMemDicomObject {
    let source = &geometry.slices[frame.slice];
    let source_image = obj([
        text(
            tags::REFERENCED_SOP_CLASS_UID,
            VR::UI,
            &source.sop_class_uid,
        ),
        text(
            tags::REFERENCED_SOP_INSTANCE_UID,
            VR::UI,
            &source.sop_instance_uid,
        ),
        seq(
            tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
            vec![SOURCE_IMAGE_FOR_PROCESSING.code().to_item()],
        ),
        text(tags::SPATIAL_LOCATIONS_PRESERVED, VR::CS, "YES"),
    ]);
    let mut source_image = source_image;
    if let Some(n) = source.frame_number {
        source_image.put(text(tags::REFERENCED_FRAME_NUMBER, VR::IS, &n.to_string()));
    }
    let derivation = obj([
        seq(
            tags::DERIVATION_CODE_SEQUENCE,
            vec![DERIVATION_SEGMENTATION.code().to_item()],
        ),
        seq(tags::SOURCE_IMAGE_SEQUENCE, vec![source_image]),
    ]);
    // A LABELMAP frame (segment 0) holds every segment: no segment index or identification.
    let labelmap = frame.segment == 0;
    let mut index_values: Vec<u32> = Vec::with_capacity(2);
    if !labelmap {
        index_values.push(u32::from(frame.segment));
    }
    if checked.patient || checked.source_frames {
        index_values.push(checked.position_index[frame.slice]);
    } else if labelmap {
        index_values.push(1);
    }
    let mut content = obj([ul(tags::DIMENSION_INDEX_VALUES, &index_values)]);
    if checked.source_frames {
        content.put(ul(
            tags::TEMPORAL_POSITION_INDEX,
            &[checked.position_index[frame.slice]],
        ));
    } else if labelmap && !checked.patient {
        content.put(text(tags::FRAME_LABEL, VR::LO, SINGLE_FRAME_LABEL));
    }
    let mut item = obj([
        seq(tags::DERIVATION_IMAGE_SEQUENCE, vec![derivation]),
        seq(tags::FRAME_CONTENT_SEQUENCE, vec![content]),
    ]);
    if !labelmap {
        item.put(seq(
            tags::SEGMENT_IDENTIFICATION_SEQUENCE,
            vec![obj([us(tags::REFERENCED_SEGMENT_NUMBER, &[frame.segment])])],
        ));
    }
    if checked.patient {
        item.put(seq(
            tags::PLANE_POSITION_SEQUENCE,
            vec![obj([texts(
                tags::IMAGE_POSITION_PATIENT,
                VR::DS,
                &source.image_position,
            )])],
        ));
    }
    item
}

/// Frame Label of the one frame of a LABELMAP SEG of a single image without patient
/// geometry, which has nothing else to be indexed by.
const SINGLE_FRAME_LABEL: &str = "Frame";

/// Multi-frame Dimension module: BINARY frames are indexed by segment number; then, with
/// patient geometry, by ImagePositionPatient; for the frames of a multi-frame source
/// without patient geometry, by the source frame number (TemporalPositionIndex). The one
/// LABELMAP frame of a single image without geometry is indexed by its Frame Label.
pub(crate) fn put_dimensions(
    out: &mut InMemDicomObject,
    checked: &CheckedGeometry,
    labelmap: bool,
) {
    let organization = crate::uids::new_uid();
    let index = |pointer, group, label: &str| {
        obj([
            text(tags::DIMENSION_ORGANIZATION_UID, VR::UI, &organization),
            at(tags::DIMENSION_INDEX_POINTER, &[pointer]),
            at(tags::FUNCTIONAL_GROUP_POINTER, &[group]),
            text(tags::DIMENSION_DESCRIPTION_LABEL, VR::LO, label),
        ])
    };
    let mut indices = Vec::with_capacity(2);
    if !labelmap {
        indices.push(index(
            tags::REFERENCED_SEGMENT_NUMBER,
            tags::SEGMENT_IDENTIFICATION_SEQUENCE,
            "Segment Number",
        ));
    }
    if checked.patient {
        indices.push(index(
            tags::IMAGE_POSITION_PATIENT,
            tags::PLANE_POSITION_SEQUENCE,
            "Image Position Patient",
        ));
        out.put(text(tags::DIMENSION_ORGANIZATION_TYPE, VR::CS, "3D"));
    } else if checked.source_frames {
        indices.push(index(
            tags::TEMPORAL_POSITION_INDEX,
            tags::FRAME_CONTENT_SEQUENCE,
            "Source Frame Number",
        ));
    } else if labelmap {
        indices.push(index(
            tags::FRAME_LABEL,
            tags::FRAME_CONTENT_SEQUENCE,
            "Frame Label",
        ));
    }
    out.put(seq(
        tags::DIMENSION_ORGANIZATION_SEQUENCE,
        vec![obj([text(
            tags::DIMENSION_ORGANIZATION_UID,
            VR::UI,
            &organization,
        )])],
    ));
    out.put(seq(tags::DIMENSION_INDEX_SEQUENCE, indices));
}

/// ReferencedSeriesSequence: every series that frames reference, each with the instances
/// the frames reference (in frame order, without repeats), and nothing else.
///
/// The Common Instance Reference module describes the instances the SEG references, and
/// OHIF attaches a SEG to the first loaded series this sequence names: a series the frames
/// do not lie on (another channel of the model) would let the SEG land on images none of
/// its frames match. Such inputs are recorded by [`super::related::related_series`].
pub(crate) fn referenced_series(plan: &[PlannedFrame], geometry: &SourceGeometry) -> InMemElement {
    let mut series: Vec<(&str, Vec<usize>)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for frame in plan {
        // Frames of one multi-frame source list their instance once.
        if !seen.insert(geometry.slices[frame.slice].sop_instance_uid.as_str()) {
            continue;
        }
        let uid = geometry.slices[frame.slice].series_instance_uid.as_str();
        match series.iter_mut().find(|(s, _)| *s == uid) {
            Some((_, slices)) => slices.push(frame.slice),
            None => series.push((uid, vec![frame.slice])),
        }
    }
    let items: Vec<InMemDicomObject> = series
        .into_iter()
        .map(|(uid, slices)| {
            let instances = slices
                .into_iter()
                .map(|i| {
                    let s = &geometry.slices[i];
                    obj([
                        text(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &s.sop_class_uid),
                        text(
                            tags::REFERENCED_SOP_INSTANCE_UID,
                            VR::UI,
                            &s.sop_instance_uid,
                        ),
                    ])
                })
                .collect();
            obj([
                text(tags::SERIES_INSTANCE_UID, VR::UI, uid),
                seq(tags::REFERENCED_INSTANCE_SEQUENCE, instances),
            ])
        })
        .collect();
    seq(tags::REFERENCED_SERIES_SEQUENCE, items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_by_segment_then_position_and_omits_only_on_request() {
        let checked = CheckedGeometry {
            order: vec![2, 0, 1],
            position_index: vec![2, 3, 1],
            spacing: None,
            patient: true,
            source_frames: false,
        };
        let mut a = Array3::from_elem((3, 2, 2), false);
        a[[0, 1, 1]] = true;
        let b = Array3::from_elem((3, 2, 2), false);
        let masks = [a, b];
        let all = plan_frames(&masks, &checked, false);
        let order: Vec<(u16, usize)> = all.iter().map(|f| (f.segment, f.slice)).collect();
        assert_eq!(order, vec![(1, 2), (1, 0), (1, 1), (2, 2), (2, 0), (2, 1)]);
        let kept = plan_frames(&masks, &checked, true);
        assert_eq!(
            kept,
            vec![PlannedFrame {
                segment: 1,
                slice: 0
            }]
        );
        let none = plan_frames(&masks[1..], &checked, true);
        assert_eq!(
            none,
            vec![PlannedFrame {
                segment: 1,
                slice: 2
            }]
        );
    }
}

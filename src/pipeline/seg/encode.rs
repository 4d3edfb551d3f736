//! Assembly of a complete Segmentation instance (PS3.3 A.51; BINARY, or LABELMAP after
//! Supplement 243) from the source header, the source geometry, the segment descriptions
//! and their masks.

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemElement;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::{FileDicomObject, InMemDicomObject};
use ndarray::{Array3, Axis};

use super::bits::BitPacker;
use super::elements::{empty, person_name, seq, text, texts, us};
use super::error::SegError;
use super::frames::{
    PlannedFrame, per_frame_item, plan_frames, plan_label_frames, put_dimensions,
    referenced_series, shared_item,
};
use super::geometry::SourceGeometry;
use super::header::{copy_patient_and_study, now_utc, put_character_set, put_equipment};
use super::labelmap::{bits_for, label_pixel_data};
use super::options::{SegOptions, SegType};
use super::related::related_series;
use super::segments::SegmentSpec;
use crate::uids::{EXPLICIT_VR_LE, IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, new_uid};

/// Encode a DICOM Segmentation of `geometry`'s series, of `options.seg_type`.
///
/// `masks[s]` is the mask of segment `s + 1` (described by `segments[s]`), shape
/// `[slices, rows, columns]` in the same slice order as `geometry.slices` and row-major as
/// the source pixels (no flips). `source_header` is any instance of the reference series;
/// its patient and study attributes are copied. The result has new Series and SOP
/// Instance UIDs and an Explicit VR Little Endian file meta group, ready to be written
/// or sent.
pub fn encode_seg(
    source_header: &InMemDicomObject,
    geometry: &SourceGeometry,
    segments: &[SegmentSpec],
    masks: &[Array3<bool>],
    options: &SegOptions,
) -> Result<FileDicomObject<InMemDicomObject>, SegError> {
    options.validate()?;
    check_segments(segments, masks)?;
    let checked = geometry.check()?;
    check_shapes(geometry, masks)?;
    // SegmentsOverlap says what the masks do, whatever the pipeline expected.
    let overlap = masks_overlap(masks);
    if overlap && !options.segments_overlap {
        tracing::warn!(
            "segments overlap although the pipeline says its classes are exclusive; writing SegmentsOverlap YES"
        );
    }
    let labelmap = options.seg_type == SegType::Labelmap;
    if labelmap && overlap {
        return Err(SegError::Unsupported(
            "segments overlap, but a LABELMAP SEG holds one segment per pixel; write it as BINARY"
                .into(),
        ));
    }
    let plan = if labelmap {
        plan_label_frames(masks, &checked, options.omit_empty_frames)
    } else {
        plan_frames(masks, &checked, options.omit_empty_frames)
    };

    let mut ds = InMemDicomObject::new_empty();
    copy_patient_and_study(source_header, &mut ds)?;
    put_identity(&mut ds, source_header, geometry, options);
    put_image(&mut ds, geometry, segments, overlap, options.seg_type);
    ds.put(text(
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        &plan.len().to_string(),
    ));
    ds.put(seq(
        tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
        vec![shared_item(geometry, &checked)],
    ));
    let per_frame = plan
        .iter()
        .map(|&f| per_frame_item(f, geometry, &checked))
        .collect();
    ds.put(seq(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, per_frame));
    put_dimensions(&mut ds, &checked, labelmap);
    ds.put(referenced_series(&plan, geometry));
    if let Some(related) = related_series(&study_uid(&ds), &options.other_sources) {
        ds.put(related);
    }
    ds.put(if labelmap {
        label_pixel_data(&plan, masks)?
    } else {
        pixel_data(&plan, masks, geometry)?
    });
    put_character_set(&mut ds);

    let sop_instance = ds
        .get(tags::SOP_INSTANCE_UID)
        .and_then(|e| e.to_str().ok())
        .unwrap_or_default()
        .to_string();
    tracing::debug!(%sop_instance, frames = plan.len(), segments = segments.len(), "encoded SEG");
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(EXPLICIT_VR_LE)
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(IMPLEMENTATION_VERSION_NAME);
    ds.with_meta(meta)
        .map_err(|e| SegError::Meta(e.to_string()))
}

/// StudyInstanceUID as copied from the source.
fn study_uid(ds: &InMemDicomObject) -> String {
    super::elements::get_str(ds, tags::STUDY_INSTANCE_UID).unwrap_or_default()
}

/// SOP Common, General/Segmentation Series, Frame of Reference, equipment, and the
/// General Image / Content Identification attributes: new UIDs, one shared timestamp.
fn put_identity(
    ds: &mut InMemDicomObject,
    source_header: &InMemDicomObject,
    geometry: &SourceGeometry,
    options: &SegOptions,
) {
    let (date, time) = now_utc();
    ds.put(text(
        tags::SOP_CLASS_UID,
        VR::UI,
        options.seg_type.sop_class_uid(),
    ));
    ds.put(text(tags::SOP_INSTANCE_UID, VR::UI, &new_uid()));
    ds.put(text(tags::INSTANCE_CREATION_DATE, VR::DA, &date));
    ds.put(text(tags::INSTANCE_CREATION_TIME, VR::TM, &time));
    ds.put(text(tags::TIMEZONE_OFFSET_FROM_UTC, VR::SH, "+0000"));
    ds.put(text(tags::MODALITY, VR::CS, "SEG"));
    ds.put(text(tags::SERIES_INSTANCE_UID, VR::UI, &new_uid()));
    ds.put(text(
        tags::SERIES_NUMBER,
        VR::IS,
        &options.series_number.to_string(),
    ));
    ds.put(text(tags::SERIES_DATE, VR::DA, &date));
    ds.put(text(tags::SERIES_TIME, VR::TM, &time));
    if !options.series_description.trim().is_empty() {
        ds.put(text(
            tags::SERIES_DESCRIPTION,
            VR::LO,
            &options.series_description,
        ));
    }
    if let Some(uid) = &geometry.frame_of_reference_uid {
        ds.put(text(tags::FRAME_OF_REFERENCE_UID, VR::UI, uid));
        ds.put(match &geometry.position_reference_indicator {
            Some(p) => text(tags::POSITION_REFERENCE_INDICATOR, VR::LO, p),
            None => empty(tags::POSITION_REFERENCE_INDICATOR, VR::LO),
        });
    } else {
        // Without patient geometry the frames' orientation is told by PatientOrientation
        // (General Image, Type 2C): the source's, since spatial locations are preserved.
        ds.put(match source_header.get(tags::PATIENT_ORIENTATION) {
            Some(e) => e.clone(),
            None => empty(tags::PATIENT_ORIENTATION, VR::CS),
        });
    }
    put_equipment(ds, options);
    ds.put(text(tags::INSTANCE_NUMBER, VR::IS, "1"));
    ds.put(text(tags::CONTENT_DATE, VR::DA, &date));
    ds.put(text(tags::CONTENT_TIME, VR::TM, &time));
    ds.put(text(tags::CONTENT_LABEL, VR::CS, &options.content_label));
    ds.put(text(
        tags::CONTENT_DESCRIPTION,
        VR::LO,
        options.content_description.trim(),
    ));
    ds.put(text(
        tags::CONTENT_CREATOR_NAME,
        VR::PN,
        &person_name(&options.content_creator),
    ));
}

/// Image Pixel and Segmentation Image modules (less the pixel data itself). A LABELMAP
/// holds 8- or 16-bit segment numbers, 0 being no segment (Pixel Padding Value, with an
/// identity Presentation LUT, as highdicom writes it).
fn put_image(
    ds: &mut InMemDicomObject,
    geometry: &SourceGeometry,
    segments: &[SegmentSpec],
    overlap: bool,
    seg_type: SegType,
) {
    ds.put(texts(tags::IMAGE_TYPE, VR::CS, &["DERIVED", "PRIMARY"]));
    ds.put(us(tags::SAMPLES_PER_PIXEL, &[1]));
    ds.put(text(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2",
    ));
    ds.put(us(tags::ROWS, &[geometry.rows]));
    ds.put(us(tags::COLUMNS, &[geometry.columns]));
    let bits = match seg_type {
        SegType::Binary => 1,
        SegType::Labelmap => bits_for(segments.len()),
    };
    ds.put(us(tags::BITS_ALLOCATED, &[bits]));
    ds.put(us(tags::BITS_STORED, &[bits]));
    ds.put(us(tags::HIGH_BIT, &[bits - 1]));
    ds.put(us(tags::PIXEL_REPRESENTATION, &[0]));
    if seg_type == SegType::Labelmap {
        ds.put(us(tags::PIXEL_PADDING_VALUE, &[0]));
        ds.put(text(tags::PRESENTATION_LUT_SHAPE, VR::CS, "IDENTITY"));
    }
    ds.put(text(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00"));
    ds.put(text(tags::SEGMENTATION_TYPE, VR::CS, seg_type.keyword()));
    ds.put(text(
        tags::SEGMENTS_OVERLAP,
        VR::CS,
        if overlap { "YES" } else { "NO" },
    ));
    let items = segments
        .iter()
        .enumerate()
        .map(|(i, s)| s.to_item(i as u16 + 1))
        .collect();
    ds.put(seq(tags::SEGMENT_SEQUENCE, items));
}

/// Pixel Data (OB): the planned frames as one continuous LSB-first bit stream.
fn pixel_data(
    plan: &[PlannedFrame],
    masks: &[Array3<bool>],
    geometry: &SourceGeometry,
) -> Result<InMemElement, SegError> {
    let per_frame = usize::from(geometry.rows) * usize::from(geometry.columns);
    let mut packer = BitPacker::with_capacity(plan.len() * per_frame);
    for frame in plan {
        let mask = &masks[usize::from(frame.segment) - 1];
        packer.extend(mask.index_axis(Axis(0), frame.slice).iter().copied());
    }
    let bytes = packer.finish();
    if u32::try_from(bytes.len()).is_err() {
        return Err(SegError::Unsupported(format!(
            "{} bytes of pixel data exceed one DICOM element",
            bytes.len()
        )));
    }
    Ok(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::U8(bytes.into()),
    ))
}

fn check_shapes(geometry: &SourceGeometry, masks: &[Array3<bool>]) -> Result<(), SegError> {
    let expected = [
        geometry.slices.len(),
        usize::from(geometry.rows),
        usize::from(geometry.columns),
    ];
    for (s, mask) in masks.iter().enumerate() {
        let found: [usize; 3] = mask.shape().try_into().expect("Array3 has 3 axes");
        if found != expected {
            return Err(SegError::MaskShape {
                segment: s + 1,
                expected,
                found,
            });
        }
    }
    Ok(())
}

fn check_segments(segments: &[SegmentSpec], masks: &[Array3<bool>]) -> Result<(), SegError> {
    if segments.is_empty() {
        return Err(SegError::setting(
            "segments",
            "a SEG needs at least one segment",
        ));
    }
    if segments.len() != masks.len() {
        return Err(SegError::SegmentCount {
            segments: segments.len(),
            masks: masks.len(),
        });
    }
    if segments.len() > usize::from(u16::MAX) {
        return Err(SegError::setting("segments", "more than 65535 segments"));
    }
    segments
        .iter()
        .enumerate()
        .try_for_each(|(i, s)| s.validate(i))
}

/// Whether any voxel is set in more than one mask (masks already have equal shapes).
fn masks_overlap(masks: &[Array3<bool>]) -> bool {
    masks.iter().enumerate().any(|(i, a)| {
        masks[i + 1..]
            .iter()
            .any(|b| a.iter().zip(b.iter()).any(|(x, y)| *x && *y))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::seg::codes::tumour;
    use crate::pipeline::seg::elements::obj;
    use crate::pipeline::seg::geometry::SourceSlice;
    use crate::pipeline::seg::reader::SegContents;

    /// 3 slices of 2x3 along +z, handed over in DEscending z (against the contract's
    /// order) so that the encoder's own ordering shows.
    fn geometry() -> SourceGeometry {
        let slice = |i: usize, z: &str| SourceSlice {
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.4".into(),
            sop_instance_uid: format!("1.2.3.{i}"),
            series_instance_uid: "1.2.4".into(),
            image_position: vec!["0".into(), "0".into(), z.into()],
            frame_number: None,
        };
        SourceGeometry {
            rows: 2,
            columns: 3,
            image_orientation: ["1", "0", "0", "0", "1", "0"].map(String::from).to_vec(),
            pixel_spacing: vec!["1".into(), "1".into()],
            slice_thickness: None,
            spacing_between_slices: None,
            frame_of_reference_uid: Some("1.2.5".into()),
            position_reference_indicator: None,
            slices: vec![slice(1, "4"), slice(2, "2"), slice(3, "0")],
        }
    }

    fn spec() -> SegmentSpec {
        let (category, property_type) = tumour();
        SegmentSpec {
            label: "Tumour".into(),
            category,
            property_type,
            algorithm_name: "test".into(),
            algorithm_version: "1".into(),
            recommended_cielab: None,
        }
    }

    fn header(name: &str) -> InMemDicomObject {
        obj([
            text(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.6"),
            text(tags::PATIENT_NAME, VR::PN, name),
        ])
    }

    fn mask(set: &[(usize, usize, usize)]) -> Array3<bool> {
        let mut m = Array3::from_elem((3, 2, 3), false);
        set.iter().for_each(|&i| m[[i.0, i.1, i.2]] = true);
        m
    }

    #[test]
    fn frames_follow_the_normal_and_keep_their_pixels() {
        let m = mask(&[(0, 0, 1), (2, 1, 2)]);
        let seg = encode_seg(
            &header("Doe^J"),
            &geometry(),
            &[spec()],
            std::slice::from_ref(&m),
            &SegOptions::default(),
        )
        .unwrap();
        let read = SegContents::from_object(&seg).unwrap();
        let uids: Vec<_> = read
            .frames
            .iter()
            .map(|f| f.referenced_sop_instance_uid().unwrap())
            .collect();
        assert_eq!(uids, ["1.2.3.3", "1.2.3.2", "1.2.3.1"], "ascending z");
        let positions: Vec<_> = read
            .frames
            .iter()
            .map(|f| f.dimension_index_values.clone())
            .collect();
        assert_eq!(positions, [[1, 1], [1, 2], [1, 3]]);
        assert_eq!(
            read.segment_volume(1, &["1.2.3.1", "1.2.3.2", "1.2.3.3"])
                .unwrap(),
            m
        );
        let pixel_measures = &read.pixel_spacing;
        assert_eq!(pixel_measures, &["1", "1"]);
        assert!(
            seg.get(tags::SPECIFIC_CHARACTER_SET).is_none(),
            "ASCII needs no character set"
        );
        let shared = &seg
            .get(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE)
            .unwrap()
            .items()
            .unwrap()[0];
        let measures = &shared
            .get(tags::PIXEL_MEASURES_SEQUENCE)
            .unwrap()
            .items()
            .unwrap()[0];
        let spacing = measures
            .get(tags::SPACING_BETWEEN_SLICES)
            .unwrap()
            .to_str()
            .unwrap();
        assert_eq!(
            spacing, "2",
            "computed from the positions when the source has none"
        );
    }

    #[test]
    fn rejects_wrong_shapes_and_counts() {
        let (g, o) = (geometry(), SegOptions::default());
        let wrong = Array3::from_elem((3, 3, 2), false);
        let err = encode_seg(&header("x"), &g, &[spec()], &[wrong], &o).unwrap_err();
        assert!(
            matches!(
                err,
                SegError::MaskShape {
                    segment: 1,
                    expected: [3, 2, 3],
                    found: [3, 3, 2]
                }
            ),
            "{err}"
        );
        let err = encode_seg(&header("x"), &g, &[spec(), spec()], &[mask(&[])], &o).unwrap_err();
        assert!(matches!(
            err,
            SegError::SegmentCount {
                segments: 2,
                masks: 1
            }
        ));
        assert!(encode_seg(&header("x"), &g, &[], &[], &o).is_err());
        let err = encode_seg(&obj([]), &g, &[spec()], &[mask(&[])], &o).unwrap_err();
        assert!(matches!(
            err,
            SegError::MissingSourceAttribute("StudyInstanceUID")
        ));
    }

    #[test]
    fn overlap_is_declared_truthfully_and_non_ascii_gets_utf8() {
        let a = mask(&[(1, 1, 1)]);
        let seg = encode_seg(
            &header("Müller^Jürgen"),
            &geometry(),
            &[spec(), spec()],
            &[a.clone(), a],
            &SegOptions::default(),
        )
        .unwrap();
        assert_eq!(
            seg.get(tags::SEGMENTS_OVERLAP).unwrap().to_str().unwrap(),
            "YES"
        );
        assert_eq!(
            seg.get(tags::SPECIFIC_CHARACTER_SET)
                .unwrap()
                .to_str()
                .unwrap(),
            "ISO_IR 192"
        );
        let mut bytes = Vec::new();
        seg.write_all(&mut bytes).unwrap();
        let back = dicom_object::from_reader(&bytes[128..]).unwrap();
        assert_eq!(
            back.get(tags::PATIENT_NAME).unwrap().to_str().unwrap(),
            "Müller^Jürgen"
        );
    }

    #[test]
    fn labelmap_has_one_frame_per_slice_and_refuses_overlap() {
        let o = SegOptions {
            seg_type: SegType::Labelmap,
            ..SegOptions::default()
        };
        let (a, b) = (mask(&[(0, 0, 1)]), mask(&[(2, 1, 2)]));
        let seg = encode_seg(&header("x"), &geometry(), &[spec(), spec()], &[a, b], &o).unwrap();
        let s = |tag| seg.get(tag).unwrap().to_str().unwrap().to_string();
        assert_eq!(s(tags::SOP_CLASS_UID), "1.2.840.10008.5.1.4.1.1.66.7");
        assert_eq!(s(tags::SEGMENTATION_TYPE), "LABELMAP");
        assert_eq!(s(tags::NUMBER_OF_FRAMES), "3");
        assert!(
            seg.get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
                .unwrap()
                .items()
                .unwrap()
                .iter()
                .all(|f| f.get(tags::SEGMENT_IDENTIFICATION_SEQUENCE).is_none())
        );
        let read = SegContents::from_object(&seg).unwrap();
        assert_eq!(read.frames.len(), 6, "3 frames read as one per segment");
        assert_eq!(
            read.segment_volume(2, &["1.2.3.1", "1.2.3.2", "1.2.3.3"])
                .unwrap(),
            mask(&[(2, 1, 2)])
        );
        let same = mask(&[(1, 1, 1)]);
        let err = encode_seg(
            &header("x"),
            &geometry(),
            &[spec(), spec()],
            &[same.clone(), same],
            &o,
        )
        .unwrap_err();
        assert!(err.to_string().contains("LABELMAP"), "{err}");
    }
}

//! The series in memory: shape checks, numbering in the source's order, and one rendered
//! image's pixels and attributes.

use dicom_core::VR;
use dicom_dictionary_std::tags;
use ndarray::Array3;

use super::*;
use crate::pipeline::seg::codes::tumour;
use crate::pipeline::seg::elements::{get_str, obj, text};
use crate::pipeline::seg::{SegmentSpec, SourceSlice};

fn geometry(frames: usize) -> SourceGeometry {
    SourceGeometry {
        rows: 12,
        columns: 10,
        image_orientation: ["1", "0", "0", "0", "1", "0"].map(String::from).to_vec(),
        pixel_spacing: vec!["0.5".into(), "0.5".into()],
        slice_thickness: None,
        spacing_between_slices: None,
        frame_of_reference_uid: Some("1.2.5".into()),
        position_reference_indicator: None,
        slices: (0..frames)
            .map(|i| SourceSlice {
                sop_class_uid: crate::uids::MR_IMAGE_STORAGE.into(),
                sop_instance_uid: format!("1.2.3.{i}"),
                series_instance_uid: "1.2.4".into(),
                image_position: vec!["0".into(), "0".into(), i.to_string()],
                frame_number: None,
            })
            .collect(),
    }
}

fn header(instance_number: usize) -> InMemDicomObject {
    obj([
        text(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.9"),
        text(tags::MODALITY, VR::CS, "MR"),
        text(tags::INSTANCE_NUMBER, VR::IS, &instance_number.to_string()),
        text(tags::WINDOW_CENTER, VR::DS, "50"),
        text(tags::WINDOW_WIDTH, VR::DS, "101"),
    ])
}

fn segment() -> SegmentSpec {
    let (category, property_type) = tumour();
    SegmentSpec {
        label: "Lesion".into(),
        category,
        property_type,
        algorithm_name: "test".into(),
        algorithm_version: "1".into(),
        recommended_cielab: Some([65535, 32896, 32896]),
    }
}

#[test]
fn renders_each_frame_in_the_source_order() {
    let geometry = geometry(3);
    let pixels = Array3::from_shape_fn((3, 12, 10), |(_, r, _)| r as f32 * 10.0);
    let masks = vec![Array3::from_shape_fn((3, 12, 10), |(k, r, c)| {
        k == 1 && (3..8).contains(&r) && (3..8).contains(&c)
    })];
    // The source numbers its slices against the normal.
    let headers: Vec<_> = (0..3).map(|k| header(30 - k)).collect();
    let segments = [segment()];
    let options = OverlayOptions::default();
    let series = OverlaySeries::new(
        OverlayInput {
            pixels: pixels.view(),
            values: SourceValues::Modality,
            masks: &masks,
            segments: &segments,
            geometry: &geometry,
            headers: &headers,
            calibrated_spacing_mm: None,
        },
        &options,
    )
    .unwrap();
    assert_eq!(series.len(), 3);
    let image = series.render(1).unwrap();
    assert_eq!(image.instance_number, 2);
    assert_eq!(series.render(0).unwrap().instance_number, 3);
    let ds: &InMemDicomObject = &image.object;
    assert_eq!(get_str(ds, tags::PATIENT_ORIENTATION).unwrap(), "L\\P");
    assert_eq!(get_str(ds, tags::PIXEL_SPACING).unwrap(), "0.5\\0.5");
    let rows = usize::from(ds.get(tags::ROWS).unwrap().to_int::<u16>().unwrap());
    assert!(rows > 12, "legend band below the 12 source rows");
    let rgb = ds.get(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
    let px = |r: usize, c: usize| rgb[(r * 10 + c) * 3..(r * 10 + c) * 3 + 3].to_vec();
    assert_eq!(
        px(3, 3),
        [255, 255, 255],
        "outline in the segment's colour (white)"
    );
    assert_eq!(
        px(5, 5),
        [129, 129, 129],
        "inside the outline: grey source (50 at the window centre → 129)"
    );
    // Row 9 holds 90: ((90 - 49.5) / 100 + 0.5) · 255 = 230.8.
    assert_eq!(px(9, 0), [231, 231, 231]);
    assert_eq!(
        get_str(ds, tags::STUDY_INSTANCE_UID).as_deref(),
        Some("1.2.9")
    );
}

#[test]
fn inputs_that_do_not_fit_are_refused() {
    let geometry = geometry(2);
    let pixels = Array3::<f32>::zeros((2, 12, 10));
    let masks = vec![Array3::from_elem((1, 12, 10), false)];
    let headers = [header(1)];
    let segments = [segment()];
    let options = OverlayOptions::default();
    let err = OverlaySeries::new(
        OverlayInput {
            pixels: pixels.view(),
            values: SourceValues::Modality,
            masks: &masks,
            segments: &segments,
            geometry: &geometry,
            headers: &headers,
            calibrated_spacing_mm: None,
        },
        &options,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("mask"), "{err}");
}

#[test]
fn the_overlay_folder_sits_beside_the_seg() {
    assert_eq!(
        overlay_dir(Path::new("/r/job-7.dcm")),
        Path::new("/r/job-7-overlay")
    );
}

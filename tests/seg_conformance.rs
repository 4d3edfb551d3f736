//! SEG conformance, checked from the outside: encode a synthetic oblique 13x11x5 series with
//! two segments, write it, and have three independent readers agree with the masks:
//! dicom3tools' `dciodvfy` (IOD conformance), segnode's own `read_seg`, and highdicom +
//! pydicom (`tests/helpers/read_seg.py`), down to patient coordinates.

use std::path::{Path, PathBuf};
use std::process::Command;

use dicom_core::DataElement;
use dicom_core::VR;
use dicom_core::value::PrimitiveValue;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use ndarray::Array3;
use segnode::pipeline::seg::{
    Code, SegOptions, SegmentSpec, SourceGeometry, SourceSlice, codes, encode_seg, read_seg,
};

const ROWS: usize = 13;
const COLS: usize = 11;
const SLICES: usize = 5;
/// 4/√17, 1/√17 and (1, −4, −17)/√306 written with as many digits as DS allows.
const IOP: [&str; 6] = [
    "0.97014250014533",
    "0.24253562503633",
    "0",
    "0.05716619504750",
    "-0.2286647801900",
    "-0.9718253158075",
];
const PIXEL_SPACING: [&str; 2] = ["0.8203125", "0.7421875"];
const SPACING: f64 = 2.5;
const MR: &str = "1.2.840.10008.5.1.4.1.1.4";
const SERIES: &str = "1.2.826.0.1.3680043.8.498.11";
const STUDY: &str = "1.2.826.0.1.3680043.8.498.10";

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn f64s(v: &[String]) -> Vec<f64> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}

fn normal() -> [f64; 3] {
    let v = f64s(&strs(&IOP));
    [
        v[1] * v[5] - v[2] * v[4],
        v[2] * v[3] - v[0] * v[5],
        v[0] * v[4] - v[1] * v[3],
    ]
}

/// The source series, slices along the normal; `uid_order` permutes the instance UIDs so
/// that UID order differs from position order.
fn geometry() -> SourceGeometry {
    let n = normal();
    let origin = [-101.234567891, 57.1234567891, 33.3333333333];
    let slices = (0..SLICES)
        .map(|k| {
            let d = k as f64 * SPACING;
            SourceSlice {
                sop_class_uid: MR.into(),
                sop_instance_uid: format!("{SERIES}.{}", [3, 1, 5, 2, 4][k]),
                series_instance_uid: SERIES.into(),
                image_position: (0..3)
                    .map(|i| format!("{:.10}", origin[i] + d * n[i]))
                    .collect(),
                frame_number: None,
            }
        })
        .collect();
    SourceGeometry {
        rows: ROWS as u16,
        columns: COLS as u16,
        image_orientation: strs(&IOP),
        pixel_spacing: strs(&PIXEL_SPACING),
        slice_thickness: Some("2.5".into()),
        spacing_between_slices: Some("2.5".into()),
        frame_of_reference_uid: Some("1.2.826.0.1.3680043.8.498.12".into()),
        position_reference_indicator: None,
        slices,
    }
}

/// Segment 1: an off-centre ellipsoid. Segment 2: an asymmetric corner blob on the middle
/// slices only (slices 0 and 4 stay empty), disjoint from segment 1; any flip shows.
fn masks() -> Vec<Array3<bool>> {
    let ellipsoid = Array3::from_shape_fn((SLICES, ROWS, COLS), |(k, r, c)| {
        let (z, y, x) = (
            (k as f64 - 2.0) / 1.6,
            (r as f64 - 7.0) / 4.5,
            (c as f64 - 4.0) / 3.2,
        );
        z * z + y * y + x * x <= 1.0
    });
    let blob = Array3::from_shape_fn((SLICES, ROWS, COLS), |(k, r, c)| {
        (1..=3).contains(&k) && r <= 2 && c >= 7 + r && !(k == 3 && c == 10)
    });
    assert!(ellipsoid.iter().zip(blob.iter()).all(|(a, b)| !(*a && *b)));
    vec![ellipsoid, blob]
}

fn segments() -> Vec<SegmentSpec> {
    let (category, property_type) = codes::tumour();
    let (anatomy_category, brain) = codes::anatomy(codes::BRAIN);
    vec![
        SegmentSpec {
            label: "Tumour".into(),
            category,
            property_type,
            algorithm_name: "Kinetic enhancement".into(),
            algorithm_version: "1.0".into(),
            recommended_cielab: Some([54_000, 52_000, 40_000]),
        },
        SegmentSpec {
            label: "Brain".into(),
            category: anatomy_category,
            property_type: brain,
            algorithm_name: "Kinetic enhancement".into(),
            algorithm_version: "1.0".into(),
            recommended_cielab: None,
        },
    ]
}

fn source_header() -> InMemDicomObject {
    let t = |tag, vr, v: &str| DataElement::new(tag, vr, PrimitiveValue::from(v));
    InMemDicomObject::from_element_iter([
        t(tags::PATIENT_NAME, VR::PN, "Doe^Jane"),
        t(tags::PATIENT_ID, VR::LO, "P-0001"),
        t(tags::PATIENT_BIRTH_DATE, VR::DA, "19700101"),
        t(tags::PATIENT_SEX, VR::CS, "F"),
        t(tags::STUDY_INSTANCE_UID, VR::UI, STUDY),
        t(tags::STUDY_DATE, VR::DA, "20240229"),
        t(tags::STUDY_TIME, VR::TM, "101500"),
        t(tags::ACCESSION_NUMBER, VR::SH, "ACC42"),
        t(tags::REFERRING_PHYSICIAN_NAME, VR::PN, "House^Gregory"),
        t(tags::STUDY_ID, VR::SH, "S1"),
        t(tags::STUDY_DESCRIPTION, VR::LO, "DCE MRI breast"),
        t(tags::MODALITY, VR::CS, "MR"),
        t(tags::SERIES_INSTANCE_UID, VR::UI, SERIES),
    ])
}

fn options(omit_empty_frames: bool) -> SegOptions {
    SegOptions {
        content_label: "TUMOUR_SEG".into(),
        omit_empty_frames,
        ..SegOptions::default()
    }
}

fn encode_to(dir: &Path, geometry: &SourceGeometry, masks: &[Array3<bool>], omit: bool) -> PathBuf {
    let seg = encode_seg(
        &source_header(),
        geometry,
        &segments(),
        masks,
        &options(omit),
    )
    .expect("encode");
    let path = dir.join("seg.dcm");
    seg.write_to_file(&path).expect("write SEG");
    path
}

fn tool_missing(tool: &str, err: impl std::fmt::Display) -> ! {
    panic!(
        "cannot run {tool}: {err}. Run `make setup` (scripts/setup.sh) to install the test tools"
    )
}

/// (a) dciodvfy reports no error, and no warning either (a bare ContentCreatorName, for
/// one, is only a warning); its whole output is printed either way.
fn assert_dciodvfy_clean(path: &Path) {
    let out = Command::new("dciodvfy")
        .arg(path)
        .output()
        .unwrap_or_else(|e| tool_missing("dciodvfy (dicom3tools)", e));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let text = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    eprintln!(
        "--- dciodvfy {} ---\n{text}\n--- end dciodvfy ---",
        path.display()
    );
    assert!(
        !text.lines().any(|l| l.contains("Error")),
        "dciodvfy found errors:\n{text}"
    );
    assert!(
        out.status.success(),
        "dciodvfy exited with {}:\n{text}",
        out.status
    );
    assert!(
        !text.lines().any(|l| l.contains("Warning")),
        "dciodvfy warns:\n{text}"
    );
}

/// (b) segnode's reader gives back the masks, positions and references.
fn assert_reader_round_trip(
    path: &Path,
    geometry: &SourceGeometry,
    masks: &[Array3<bool>],
    omit: bool,
) {
    let seg = read_seg(path).expect("read_seg");
    assert_eq!((seg.rows as usize, seg.columns as usize), (ROWS, COLS));
    assert_eq!(
        seg.image_orientation,
        strs(&IOP),
        "orientation must be copied verbatim"
    );
    assert_eq!(seg.pixel_spacing, strs(&PIXEL_SPACING));
    assert_eq!(seg.frame_of_reference_uid, geometry.frame_of_reference_uid);
    assert_eq!(seg.study_instance_uid, STUDY);
    assert_eq!(seg.segments_overlap.as_deref(), Some("NO"));
    let labels: Vec<&str> = seg.segments.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels, ["Tumour", "Brain"]);
    assert_eq!(
        seg.segments[0].property_type,
        Some(Code::sct("108369006", "Neoplasm"))
    );
    assert_eq!(seg.segments[0].algorithm_type, "AUTOMATIC");

    let uids: Vec<&str> = geometry
        .slices
        .iter()
        .map(|s| s.sop_instance_uid.as_str())
        .collect();
    let mut expected_frames = Vec::new();
    for (s, mask) in masks.iter().enumerate() {
        for k in 0..SLICES {
            if !omit || mask.index_axis(ndarray::Axis(0), k).iter().any(|&b| b) {
                expected_frames.push((s as u16 + 1, k));
            }
        }
    }
    assert_eq!(seg.frames.len(), expected_frames.len());
    for (frame, &(segment, k)) in seg.frames.iter().zip(&expected_frames) {
        assert_eq!(frame.segment_number, segment);
        assert_eq!(frame.referenced_sop_instance_uids, [uids[k]]);
        assert_eq!(
            frame.image_position, geometry.slices[k].image_position,
            "IPP verbatim"
        );
        assert_eq!(
            frame.dimension_index_values,
            [u32::from(segment), k as u32 + 1]
        );
        assert_eq!(
            frame.pixels,
            masks[usize::from(segment) - 1].index_axis(ndarray::Axis(0), k)
        );
    }
    for (s, mask) in masks.iter().enumerate() {
        assert_eq!(
            &seg.segment_volume(s as u16 + 1, &uids).unwrap(),
            mask,
            "segment {}",
            s + 1
        );
    }
    assert_eq!(seg.referenced_series.len(), 1);
    assert_eq!(seg.referenced_series[0].series_instance_uid, SERIES);
    let mut referenced: Vec<&str> = seg.referenced_series[0]
        .instances
        .iter()
        .map(|(_, i)| i.as_str())
        .collect();
    referenced.sort();
    let mut by_frames: Vec<&str> = expected_frames.iter().map(|&(_, k)| uids[k]).collect();
    by_frames.sort();
    by_frames.dedup();
    assert_eq!(
        referenced, by_frames,
        "exactly the source instances referenced by frames are listed"
    );
}

fn python() -> PathBuf {
    let configured = std::env::var("SEGNODE_PYTHON")
        .ok()
        .or(option_env!("SEGNODE_PYTHON").map(String::from));
    let path = configured.map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var("HOME").unwrap_or_default())
            .join(".cache/segnode/venv/bin/python")
    });
    if !path.exists() {
        tool_missing(
            "the project Python venv",
            format!("{} does not exist", path.display()),
        );
    }
    path
}

fn bits(mask: ndarray::ArrayView2<bool>) -> String {
    mask.iter().map(|&b| if b { '1' } else { '0' }).collect()
}

/// (c) highdicom and pydicom read the same masks, references and patient coordinates.
fn assert_highdicom_agrees(path: &Path, geometry: &SourceGeometry, masks: &[Array3<bool>]) {
    let helper = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/helpers/read_seg.py");
    let uids: Vec<&str> = geometry
        .slices
        .iter()
        .map(|s| s.sop_instance_uid.as_str())
        .collect();
    let out = Command::new(python())
        .arg(helper)
        .arg(path)
        .args(&uids)
        .output()
        .unwrap_or_else(|e| tool_missing("tests/helpers/read_seg.py", e));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "read_seg.py failed (is highdicom installed? run `make setup`):\n{stderr}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("read_seg.py prints JSON");

    assert_eq!(json["sop_class_uid"], "1.2.840.10008.5.1.4.1.1.66.4");
    assert_eq!(json["transfer_syntax"], "1.2.840.10008.1.2.1");
    let frames = json["frames"].as_array().unwrap();
    assert_eq!(json["raw_frames"].as_array().unwrap().len(), frames.len());
    for (i, frame) in frames.iter().enumerate() {
        let segment = frame["segment"].as_u64().unwrap() as usize;
        let source = frame["sources"][0].as_str().unwrap();
        let k = uids
            .iter()
            .position(|u| *u == source)
            .expect("frame references a source slice");
        let position: Vec<f64> = frame["position"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let expected = f64s(&geometry.slices[k].image_position);
        assert!(
            position
                .iter()
                .zip(&expected)
                .all(|(a, b)| (a - b).abs() < 1e-9),
            "frame {i}: {position:?}"
        );
        // pydicom's own bit unpacking of frame i is the mask of that segment on that slice.
        assert_eq!(
            json["raw_frames"][i],
            bits(masks[segment - 1].index_axis(ndarray::Axis(0), k)),
            "raw frame {i}"
        );
    }
    for (s, mask) in masks.iter().enumerate() {
        let seg = &json["segments"][s];
        assert_eq!(seg["number"], s + 1);
        for k in 0..SLICES {
            let want = bits(mask.index_axis(ndarray::Axis(0), k));
            assert_eq!(
                seg["by_source_instance"][k],
                want,
                "segment {} slice {k}",
                s + 1
            );
        }
        assert_eq!(seg["set_pixels"], mask.iter().filter(|&&b| b).count());
    }
    assert_eq!(json["segments"][0]["property_type"], "108369006");
    assert_eq!(json["segments"][1]["category"], "91723000");

    // Patient coordinates: highdicom's volume affine must put every voxel where the source
    // geometry says it is: IPP + column * Δcol * row_dir + row * Δrow * col_dir.
    let iop = f64s(&strs(&IOP));
    let ps = f64s(&strs(&PIXEL_SPACING));
    for (s, mask) in masks.iter().enumerate() {
        let mut want: Vec<[f64; 3]> = mask
            .indexed_iter()
            .filter(|(_, on)| **on)
            .map(|((k, r, c), _)| {
                let ipp = f64s(&geometry.slices[k].image_position);
                std::array::from_fn(|i| {
                    ipp[i] + c as f64 * ps[1] * iop[i] + r as f64 * ps[0] * iop[3 + i]
                })
            })
            .collect();
        let mut got: Vec<[f64; 3]> = json["volume"]["points"][(s + 1).to_string()]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| std::array::from_fn(|i| p[i].as_f64().unwrap()))
            .collect();
        let key = |p: &[f64; 3]| p.map(|v| (v * 100.0).round() as i64);
        want.sort_by_key(key);
        got.sort_by_key(key);
        assert_eq!(
            got.len(),
            want.len(),
            "segment {}: voxel count in highdicom's volume",
            s + 1
        );
        for (g, w) in got.iter().zip(&want) {
            assert!(
                g.iter().zip(w).all(|(a, b)| (a - b).abs() < 1e-3),
                "segment {}: {g:?} vs {w:?}",
                s + 1
            );
        }
    }
}

#[test]
fn oblique_two_segment_seg_is_conformant_and_reads_back_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let (geometry, masks) = (geometry(), masks());
    let path = encode_to(dir.path(), &geometry, &masks, false);
    assert_dciodvfy_clean(&path);
    assert_reader_round_trip(&path, &geometry, &masks, false);
    assert_highdicom_agrees(&path, &geometry, &masks);

    let obj = dicom_object::open_file(&path).unwrap();
    let get = |tag| obj.element(tag).unwrap().to_str().unwrap().to_string();
    assert_eq!(
        get(tags::NUMBER_OF_FRAMES),
        "10",
        "one frame per slice per segment by default"
    );
    assert_eq!(get(tags::PATIENT_NAME), "Doe^Jane");
    assert_eq!(get(tags::ACCESSION_NUMBER), "ACC42");
    assert_eq!(get(tags::CONTENT_CREATOR_NAME), "segnode^");
    assert_eq!(get(tags::IMAGE_TYPE), "DERIVED\\PRIMARY");
    assert_ne!(get(tags::SERIES_INSTANCE_UID), SERIES);
    assert_eq!(obj.element(tags::PIXEL_DATA).unwrap().vr(), VR::OB);
    // 10 frames * 143 bits = 1430 bits = 179 bytes → padded to 180.
    assert_eq!(
        obj.element(tags::PIXEL_DATA)
            .unwrap()
            .to_bytes()
            .unwrap()
            .len(),
        180
    );
}

#[test]
fn omitting_empty_frames_stays_conformant_and_readable() {
    let dir = tempfile::tempdir().unwrap();
    let (geometry, masks) = (geometry(), masks());
    let path = encode_to(dir.path(), &geometry, &masks, true);
    assert_dciodvfy_clean(&path);
    assert_reader_round_trip(&path, &geometry, &masks, true);
    assert_highdicom_agrees(&path, &geometry, &masks);
}

#[test]
fn image_without_patient_geometry_is_conformant() {
    let dir = tempfile::tempdir().unwrap();
    let mut geometry = geometry();
    geometry.slices.truncate(1);
    geometry.slices[0].sop_class_uid = "1.2.840.10008.5.1.4.1.1.6.1".into();
    geometry.slices[0].image_position.clear();
    geometry.image_orientation.clear();
    geometry.frame_of_reference_uid = None;
    geometry.slice_thickness = None;
    geometry.spacing_between_slices = None;
    let masks: Vec<Array3<bool>> = masks()
        .into_iter()
        .map(|m| m.slice(ndarray::s![2..3, .., ..]).to_owned())
        .collect();
    let path = encode_to(dir.path(), &geometry, &masks, false);
    assert_dciodvfy_clean(&path);
    let seg = read_seg(&path).unwrap();
    assert_eq!(seg.frames.len(), 2);
    assert!(seg.frames.iter().all(|f| f.image_position.is_empty()));
    let uid = geometry.slices[0].sop_instance_uid.as_str();
    for (s, mask) in masks.iter().enumerate() {
        assert_eq!(&seg.segment_volume(s as u16 + 1, &[uid]).unwrap(), mask);
    }
}

/// An ultrasound cine (one multi-frame instance, no frame of reference): one SEG frame per
/// source frame and segment, each referencing its source frame; the frame number is a
/// dimension, so readers tell the frames apart.
#[test]
fn frames_of_a_cine_without_patient_geometry_are_conformant() {
    const US_MULTIFRAME: &str = "1.2.840.10008.5.1.4.1.1.3.1";
    let dir = tempfile::tempdir().unwrap();
    let mut geometry = geometry();
    let cine = geometry.slices[0].sop_instance_uid.clone();
    for (k, slice) in geometry.slices.iter_mut().enumerate() {
        slice.sop_class_uid = US_MULTIFRAME.into();
        slice.sop_instance_uid = cine.clone();
        slice.image_position.clear();
        // Handed over out of order: the encoder orders frames by source frame number.
        slice.frame_number = Some([3, 1, 5, 2, 4][k]);
    }
    geometry.image_orientation.clear();
    geometry.frame_of_reference_uid = None;
    geometry.slice_thickness = None;
    geometry.spacing_between_slices = None;
    let masks = masks();
    let path = encode_to(dir.path(), &geometry, &masks, false);
    assert_dciodvfy_clean(&path);
    if let Ok(keep) = std::env::var("SEGNODE_KEEP_CINE_SEG") {
        std::fs::copy(&path, keep).unwrap();
    }

    let seg = read_seg(&path).unwrap();
    assert_eq!(seg.frames.len(), 2 * SLICES);
    assert_eq!(seg.referenced_series.len(), 1);
    assert_eq!(seg.referenced_series[0].instances.len(), 1, "the cine once");
    for (s, mask) in masks.iter().enumerate() {
        let frames: Vec<_> = seg
            .frames
            .iter()
            .filter(|f| f.segment_number == s as u16 + 1)
            .collect();
        let numbers: Vec<u32> = frames
            .iter()
            .map(|f| f.referenced_frame_number.unwrap())
            .collect();
        assert_eq!(numbers, [1, 2, 3, 4, 5], "segment {} in frame order", s + 1);
        for f in frames {
            let n = f.referenced_frame_number.unwrap();
            assert_eq!(f.dimension_index_values, [s as u32 + 1, n]);
            let k = geometry
                .slices
                .iter()
                .position(|sl| sl.frame_number == Some(n))
                .unwrap();
            assert_eq!(f.pixels, mask.index_axis(ndarray::Axis(0), k));
        }
    }
}

//! The fetal head ultrasound pipeline on synthetic images stored the way ultrasound
//! machines store them (`segnode synth --preset fetal-us`): RGB pixels, JPEG baseline
//! (YBR_FULL_422), US Image Storage, calibrated by ultrasound regions, no patient geometry.
//!
//! Each test runs the shipped pipeline (conf/pipelines/fetal_head_us.toml) with the default
//! weight-free phantom model and checks the SEG against the phantom's truth: three segments
//! with their SNOMED CT codes, Dice ≥ 0.9 each, `dciodvfy` clean, highdicom reads the same
//! masks; the colour model the image arrives in does not change the result; a cine gives
//! one frame set per source frame; exclusive classes give non-overlapping segments.

mod common;

use std::path::Path;
use std::process::Command;

use segnode::pipeline::definition::PipelineDefinition;
use segnode::pipeline::job::{JobOutcome, LoadedPipeline};
use segnode::pipeline::run::run_job;
use segnode::pipeline::seg::{SegContents, read_seg};
use segnode::synth::{FetalHeadTruth, FetalUsParams, SynthUsImage, UsEncoding, write_fetal_us};

/// The shipped pipeline with `edits`, loaded with the repository's models.
fn pipeline(edits: &[(&str, &str)]) -> LoadedPipeline {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/pipelines/fetal_head_us.toml");
    let mut text = std::fs::read_to_string(&shipped).unwrap();
    for (from, to) in edits {
        assert!(
            text.contains(from),
            "fetal_head_us.toml no longer has {from:?}"
        );
        text = text.replace(from, to);
    }
    let definition = PipelineDefinition::from_toml(&text, "fetal_head_us.toml").unwrap();
    LoadedPipeline::load(definition, &common::dce::models_dir()).expect("the fetal model loads")
}

use common::fetal::us_image as synth;

fn segment(pipeline: &LoadedPipeline, image: &SynthUsImage, out: &Path) -> JobOutcome {
    run_job(
        pipeline,
        &image.study_uid,
        &[("image".into(), vec![image.path.clone()])],
        out,
        &|_| {},
    )
    .expect("the job runs")
}

fn scores(seg: &Path, truth: &Path) -> Vec<segnode::eval::SegmentScore> {
    let scores = segnode::eval::evaluate_files(seg, truth, None).unwrap();
    eprint!("{}", segnode::eval::table(&scores));
    scores
}

fn assert_dciodvfy_clean(path: &Path) {
    let out = Command::new(common::require_tool("dciodvfy"))
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("Error")).collect();
    assert!(errors.is_empty(), "dciodvfy errors:\n{text}");
}

/// Per segment, the SEG's mask over all its frames, as one bit vector.
fn masks(seg: &SegContents) -> Vec<Vec<bool>> {
    seg.segments
        .iter()
        .map(|s| {
            seg.frames
                .iter()
                .filter(|f| f.segment_number == s.number)
                .flat_map(|f| f.pixels.iter().copied())
                .collect()
        })
        .collect()
}

fn dice(a: &[bool], b: &[bool]) -> f64 {
    let both = a.iter().zip(b).filter(|(x, y)| **x && **y).count();
    let total = a.iter().filter(|x| **x).count() + b.iter().filter(|x| **x).count();
    if total == 0 {
        1.0
    } else {
        2.0 * both as f64 / total as f64
    }
}

#[test]
fn a_jpeg_ultrasound_image_gives_a_three_segment_seg_matching_the_truth() {
    let tmp = tempfile::tempdir().unwrap();
    let image = synth(&tmp.path().join("us"), 3, UsEncoding::JpegBaseline, 1);
    let seg_path = tmp.path().join("seg.dcm");
    let outcome = segment(&pipeline(&[]), &image, &seg_path);

    let seg = read_seg(&seg_path).unwrap();
    let types: Vec<String> = seg
        .segments
        .iter()
        .map(|s| s.property_type.as_ref().unwrap().value.clone())
        .collect();
    assert_eq!(types, ["12738006", "74968005", "66720007"]);
    assert!(seg.segments.iter().all(|s| {
        s.category.as_ref().unwrap().value == "91723000" && s.algorithm_type == "AUTOMATIC"
    }));
    assert_eq!(
        seg.frame_of_reference_uid, None,
        "no patient geometry to refer to"
    );
    assert_eq!(seg.frames.len(), 3, "one frame per segment");
    assert_eq!(
        (usize::from(seg.rows), usize::from(seg.columns)),
        (image.rows, image.columns)
    );
    assert_eq!(
        seg.segments_overlap.as_deref(),
        Some("YES"),
        "CSP and LV lie inside the brain"
    );
    assert_eq!(seg.study_instance_uid, image.study_uid);
    assert_eq!(
        seg.referenced_series[0].series_instance_uid,
        image.series_uid
    );

    for s in scores(&seg_path, &image.truth_path) {
        assert!(s.dice >= 0.9, "{}: Dice {:.4}", s.label, s.dice);
        assert!(
            s.pixel_accuracy >= 0.99,
            "{}: accuracy {:.5}",
            s.label,
            s.pixel_accuracy
        );
    }
    assert_dciodvfy_clean(&seg_path);
    assert_highdicom_reads(&seg_path, &image, &seg);

    // Findings in mm² from the ultrasound region calibration.
    let truth = FetalHeadTruth::load(&image.truth_path).unwrap();
    let pixel_mm2 = truth.pixel_spacing_mm[0] * truth.pixel_spacing_mm[1];
    let brain = &outcome.findings[0].1;
    let expected = truth.pixels.brain as f64 * pixel_mm2;
    let area = brain.area_mm2.expect("calibrated image: area in mm²");
    assert!(
        (area - expected).abs() / expected < 0.03,
        "brain {area:.0} mm², truth {expected:.0} mm²"
    );
    assert_eq!(brain.volume_ml, None);
}

/// highdicom's reader gives, per segment, the same pixels as ours for the source image.
fn assert_highdicom_reads(seg_path: &Path, image: &SynthUsImage, seg: &SegContents) {
    let out = Command::new(common::python::python())
        .arg(common::python::helper("read_image_seg.py"))
        .arg(seg_path)
        .arg(&image.sop_instance_uid)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "read_image_seg.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ours = masks(seg);
    let theirs = json["segments"].as_array().unwrap();
    assert_eq!(theirs.len(), ours.len());
    for (k, segment) in theirs.iter().enumerate() {
        let count = segment["pixels"].as_u64().unwrap() as usize;
        assert_eq!(
            count,
            ours[k].iter().filter(|v| **v).count(),
            "segment {}",
            k + 1
        );
        assert_eq!(segment["checksum"].as_u64().unwrap(), checksum(&ours[k]));
    }
}

/// Sum of (index + 1) over set pixels, mod 2^61: the same in read_image_seg.py.
fn checksum(mask: &[bool]) -> u64 {
    mask.iter()
        .enumerate()
        .filter(|(_, v)| **v)
        .fold(0u64, |acc, (i, _)| (acc + i as u64 + 1) % (1 << 61))
}

#[test]
fn rgb_ybr_and_monochrome_inputs_give_the_same_mask() {
    let tmp = tempfile::tempdir().unwrap();
    let pipeline = pipeline(&[]);
    let mut results: Vec<(UsEncoding, Vec<Vec<bool>>)> = Vec::new();
    for encoding in [
        UsEncoding::Rgb,
        UsEncoding::Monochrome2,
        UsEncoding::JpegBaseline,
    ] {
        let image = synth(&tmp.path().join(encoding.to_string()), 5, encoding, 1);
        let seg_path = tmp.path().join(format!("{encoding}.dcm"));
        segment(&pipeline, &image, &seg_path);
        results.push((encoding, masks(&read_seg(&seg_path).unwrap())));
    }
    let (_, rgb) = &results[0];
    let (_, mono) = &results[1];
    assert_eq!(
        rgb, mono,
        "MONOCHROME2 is the luminance of the RGB image: the same mask"
    );
    // JPEG baseline is lossy: the same mask up to a few boundary pixels.
    let (_, jpeg) = &results[2];
    for k in 0..3 {
        let d = dice(&rgb[k], &jpeg[k]);
        let differ = rgb[k].iter().zip(&jpeg[k]).filter(|(a, b)| a != b).count();
        eprintln!(
            "segment {}: RGB vs JPEG Dice {d:.5}, {differ} pixels differ",
            k + 1
        );
        assert!(d >= 0.99, "segment {}: RGB vs JPEG Dice {d:.5}", k + 1);
    }
}

/// More frames than the job puts through the model at once (16), so the chunks join up.
const CINE_FRAMES: u32 = 18;

#[test]
fn a_cine_gives_one_frame_set_per_source_frame() {
    let tmp = tempfile::tempdir().unwrap();
    let image = synth(
        &tmp.path().join("cine"),
        7,
        UsEncoding::JpegBaseline,
        CINE_FRAMES,
    );
    assert_eq!(
        image.sop_class_uid,
        segnode::uids::US_MULTIFRAME_IMAGE_STORAGE
    );
    let seg_path = tmp.path().join("seg.dcm");
    let outcome = segment(&pipeline(&[]), &image, &seg_path);
    assert_eq!(outcome.slices, CINE_FRAMES as usize);
    let stages: Vec<&str> = outcome.timings.0.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        stages,
        [
            "decode",
            "preprocess",
            "inference",
            "post-process",
            "SEG encode",
            "SEG write",
            "report"
        ],
        "one entry per stage, chunks summed (the shipped pipeline writes a report)"
    );

    let seg = read_seg(&seg_path).unwrap();
    assert_eq!(
        seg.frames.len(),
        3 * CINE_FRAMES as usize,
        "3 segments x every source frame"
    );
    for s in 1..=3u16 {
        let frames: Vec<_> = seg
            .frames
            .iter()
            .filter(|f| f.segment_number == s)
            .collect();
        let numbers: Vec<u32> = frames
            .iter()
            .map(|f| {
                f.referenced_frame_number
                    .expect("each frame names its source frame")
            })
            .collect();
        assert_eq!(
            numbers,
            (1..=CINE_FRAMES).collect::<Vec<_>>(),
            "segment {s}"
        );
        // Every frame shows the anatomy: none was dropped or left empty at a chunk seam.
        assert!(
            frames.iter().all(|f| f.pixels.iter().any(|&v| v)),
            "segment {s} has an empty frame"
        );
    }
    assert_eq!(
        seg.referenced_series[0].instances.len(),
        1,
        "the cine, once"
    );
    for s in scores(&seg_path, &image.truth_path) {
        assert!(s.dice >= 0.9, "{}: Dice {:.4}", s.label, s.dice);
    }
    assert_dciodvfy_clean(&seg_path);
}

#[test]
fn exclusive_classes_give_segments_that_do_not_overlap() {
    let tmp = tempfile::tempdir().unwrap();
    let image = synth(&tmp.path().join("us"), 9, UsEncoding::JpegBaseline, 1);
    let seg_path = tmp.path().join("seg.dcm");
    let pipeline = pipeline(&[
        (
            "file = \"fetal_head_phantom.pt\"",
            "file = \"fetal_head_phantom_exclusive.pt\"",
        ),
        ("activation = \"sigmoid\"", "activation = \"softmax\""),
    ]);
    segment(&pipeline, &image, &seg_path);
    let seg = read_seg(&seg_path).unwrap();
    assert_eq!(seg.segments_overlap.as_deref(), Some("NO"));
    let m = masks(&seg);
    assert!(
        m[0].iter()
            .zip(&m[1])
            .zip(&m[2])
            .all(|((a, b), c)| u8::from(*a) + u8::from(*b) + u8::from(*c) <= 1),
        "argmax: every pixel in at most one segment"
    );
    // The brain segment is the brain without the CSP and the ventricle here.
    for s in scores(&seg_path, &image.truth_path) {
        assert!(s.dice >= 0.9, "{}: Dice {:.4}", s.label, s.dice);
    }
}

#[test]
fn a_model_with_the_wrong_number_of_classes_is_refused_at_load() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/pipelines/fetal_head_us.toml"),
    )
    .unwrap()
    // The overlap model (3 outputs) under softmax, which needs background + 3.
    .replace("activation = \"sigmoid\"", "activation = \"softmax\"");
    let definition = PipelineDefinition::from_toml(&text, "p.toml").unwrap();
    let err = LoadedPipeline::load(definition, &common::dce::models_dir())
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("3 channels") && err.contains("softmax"),
        "{err}"
    );
}

/// A screenshot of the same image as Secondary Capture (modality OT, no ultrasound regions,
/// PixelSpacing instead): the pipeline takes it, segments the whole frame (annotations
/// included, which the model ignores) and measures with PixelSpacing.
#[test]
fn a_secondary_capture_without_regions_is_segmented_and_measured_by_pixel_spacing() {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;

    let tmp = tempfile::tempdir().unwrap();
    let image = synth(&tmp.path().join("us"), 11, UsEncoding::Rgb, 1);
    let mut obj = dicom_object::open_file(&image.path).unwrap();
    obj.remove_element(tags::SEQUENCE_OF_ULTRASOUND_REGIONS);
    obj.put(DataElement::new(
        tags::SOP_CLASS_UID,
        VR::UI,
        PrimitiveValue::from(segnode::uids::SECONDARY_CAPTURE_IMAGE_STORAGE),
    ));
    obj.meta_mut().media_storage_sop_class_uid =
        segnode::uids::SECONDARY_CAPTURE_IMAGE_STORAGE.to_string();
    obj.put(DataElement::new(
        tags::MODALITY,
        VR::CS,
        PrimitiveValue::from("OT"),
    ));
    obj.put(DataElement::new(
        tags::PIXEL_SPACING,
        VR::DS,
        PrimitiveValue::Strs(["0.25".to_string(), "0.25".to_string()].into()),
    ));
    let sc = tmp.path().join("sc.dcm");
    obj.write_to_file(&sc).unwrap();
    let sc_image = SynthUsImage {
        path: sc,
        sop_class_uid: segnode::uids::SECONDARY_CAPTURE_IMAGE_STORAGE.into(),
        ..image.clone()
    };

    let seg_path = tmp.path().join("seg.dcm");
    let outcome = segment(&pipeline(&[]), &sc_image, &seg_path);
    for s in scores(&seg_path, &image.truth_path) {
        assert!(s.dice >= 0.9, "{}: Dice {:.4}", s.label, s.dice);
    }
    let truth = FetalHeadTruth::load(&image.truth_path).unwrap();
    let brain = &outcome.findings[0].1;
    let expected = truth.pixels.brain as f64 * 0.25 * 0.25;
    let area = brain.area_mm2.expect("PixelSpacing gives mm²");
    assert!(
        (area - expected).abs() / expected < 0.03,
        "{area} vs {expected}"
    );
    let seg = read_seg(&seg_path).unwrap();
    assert_eq!(
        seg.referenced_series[0].instances[0].0,
        segnode::uids::SECONDARY_CAPTURE_IMAGE_STORAGE
    );
    assert_dciodvfy_clean(&seg_path);
}

/// An image without a head (a blank frame) is no error: the SEG says so with three empty
/// segments, and the findings are zero.
#[test]
fn a_frame_without_a_head_gives_empty_segments() {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;

    let tmp = tempfile::tempdir().unwrap();
    let image = synth(&tmp.path().join("us"), 13, UsEncoding::Monochrome2, 1);
    let mut obj = dicom_object::open_file(&image.path).unwrap();
    let blank = vec![0u8; image.rows * image.columns];
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::U8(blank.into()),
    ));
    obj.write_to_file(&image.path).unwrap();

    let seg_path = tmp.path().join("seg.dcm");
    let outcome = segment(&pipeline(&[]), &image, &seg_path);
    assert!(
        outcome.findings.iter().all(|(_, f)| f.voxels == 0),
        "{:?}",
        outcome.findings
    );
    let seg = read_seg(&seg_path).unwrap();
    assert_eq!(seg.frames.len(), 3, "one (empty) frame per segment");
    assert!(seg.frames.iter().all(|f| f.pixels.iter().all(|&v| !v)));
    assert_eq!(
        seg.segments_overlap.as_deref(),
        Some("NO"),
        "nothing overlaps"
    );
    assert_dciodvfy_clean(&seg_path);
}

/// The colour model itself, without compression loss: the same image as native RGB and as
/// native YBR_FULL_422 (each pixel pair stored as Y1 Y2 Cb Cr, BT.601 full range) gives
/// exactly the same mask. 960 columns: 4:2:2 pairs columns.
#[test]
fn native_ybr_full_422_gives_exactly_the_rgb_mask() {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;

    let tmp = tempfile::tempdir().unwrap();
    let params = FetalUsParams {
        seed: 17,
        encoding: UsEncoding::Rgb,
        width: 960,
        ..FetalUsParams::default()
    };
    let rgb = write_fetal_us(&tmp.path().join("rgb"), &params).unwrap();
    let mut obj = dicom_object::open_file(&rgb.path).unwrap();
    let pixels = obj
        .element(tags::PIXEL_DATA)
        .unwrap()
        .to_bytes()
        .unwrap()
        .into_owned();
    let ybr: Vec<u8> = pixels[..rgb.rows * rgb.columns * 3]
        .chunks_exact(6)
        .flat_map(|pair| {
            let (a, b) = (&pair[..3], &pair[3..]);
            let f = |p: &[u8], w: [f64; 3], offset: f64| {
                w[0] * f64::from(p[0]) + w[1] * f64::from(p[1]) + w[2] * f64::from(p[2]) + offset
            };
            let y = |p: &[u8]| f(p, [0.299, 0.587, 0.114], 0.0).round().clamp(0.0, 255.0) as u8;
            let cb = |p: &[u8]| f(p, [-0.168_736, -0.331_264, 0.5], 128.0);
            let cr = |p: &[u8]| f(p, [0.5, -0.418_688, -0.081_312], 128.0);
            let mean =
                |g: &dyn Fn(&[u8]) -> f64| ((g(a) + g(b)) / 2.0).round().clamp(0.0, 255.0) as u8;
            [y(a), y(b), mean(&cb), mean(&cr)]
        })
        .collect();
    obj.put(DataElement::new(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        PrimitiveValue::from("YBR_FULL_422"),
    ));
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::U8(ybr.into()),
    ));
    let ybr_path = tmp.path().join("ybr.dcm");
    obj.write_to_file(&ybr_path).unwrap();
    let ybr_image = SynthUsImage {
        path: ybr_path,
        ..rgb.clone()
    };

    let pipeline = pipeline(&[]);
    let (rgb_seg, ybr_seg) = (tmp.path().join("rgb.dcm"), tmp.path().join("ybr-seg.dcm"));
    segment(&pipeline, &rgb, &rgb_seg);
    segment(&pipeline, &ybr_image, &ybr_seg);
    let (a, b) = (
        masks(&read_seg(&rgb_seg).unwrap()),
        masks(&read_seg(&ybr_seg).unwrap()),
    );
    assert!(
        a.iter().all(|m| m.iter().any(|&v| v)),
        "every segment found"
    );
    assert_eq!(
        a, b,
        "YBR_FULL_422 and RGB of the same image: the same mask"
    );
}

//! The AI overlay series (`output.overlay = true`): Secondary Capture RGB images of the
//! source frames with the segment outlines and a legend burned in, for PACS without SEG
//! support.
//!
//! Each test runs a shipped pipeline on a synthetic study, then reads every overlay image
//! back and checks it against the source and the SEG the same job wrote: one image per
//! source frame, same study, own series, `DERIVED\SECONDARY`, each referencing its source
//! instance (and frame); on the SEG mask's boundary the pixel has the segment's colour,
//! away from every mask it is the grey source (for MR exactly the source through its
//! window); the legend band holds each segment's colour and white text; `dciodvfy` finds
//! no error. With the option off no overlay is written.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject, open_file};
use dicom_pixeldata::PixelDecoder;
use ndarray::Array2;
use segnode::pipeline::definition::{
    EMBEDDED_DCE_BREAST, EMBEDDED_FETAL_HEAD_US, PipelineDefinition,
};
use segnode::pipeline::job::{JobOutcome, LoadedPipeline};
use segnode::pipeline::offline::plan_folder;
use segnode::pipeline::output::OutputKind;
use segnode::pipeline::overlay::{VoiFunction, VoiWindow, overlay_options, segment_rgb};
use segnode::pipeline::run::run_job;
use segnode::pipeline::seg::read_seg;
use segnode::synth::{FetalUsParams, Orientation, UsEncoding, write_fetal_us};
use segnode::uids::SECONDARY_CAPTURE_IMAGE_STORAGE;

const OVERLAY_ON: (&str, &str) = (
    "omit_empty_frames = false",
    "omit_empty_frames = false\noverlay = true",
);

/// The shipped pipeline with `edits`, without its measurement report: this suite looks at
/// the overlay alone (the report and the overlay together: `tests/orthanc_roundtrip.rs`).
fn load(embedded: &str, edits: &[(&str, &str)]) -> LoadedPipeline {
    let mut text = common::dce::without_report(embedded);
    for (from, to) in edits {
        assert!(
            text.contains(from),
            "the shipped pipeline no longer has {from:?}"
        );
        text = text.replacen(from, to, 1);
    }
    let def = PipelineDefinition::from_toml(&text, "<test pipeline>").unwrap();
    LoadedPipeline::load(def, &common::dce::models_dir()).expect("the pipeline loads")
}

fn dce_pipeline(overlay: bool) -> LoadedPipeline {
    let slices = format!("min_slices = {}", common::dce::SLICES);
    let mut edits = vec![("min_slices = 96", slices.as_str())];
    if overlay {
        edits.push(OVERLAY_ON);
    }
    load(EMBEDDED_DCE_BREAST, &edits)
}

fn run_dce(pipeline: &LoadedPipeline, dir: &Path) -> (segnode::synth::SynthStudy, JobOutcome) {
    let study = common::dce::small_study(&dir.join("in"), Orientation::Axial, 7, false);
    let job = plan_folder(&pipeline.definition, &dir.join("in")).unwrap();
    let outcome = run_job(
        pipeline,
        &job.spec.study_uid,
        &job.channels,
        &dir.join("out/seg.dcm"),
        &|_| {},
    )
    .expect("the DCE job runs");
    (study, outcome)
}

/// A text attribute, trimmed.
fn text(ds: &InMemDicomObject, tag: dicom_core::Tag) -> String {
    ds.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' ').to_string())
        .unwrap_or_default()
}

fn number(ds: &InMemDicomObject, tag: dicom_core::Tag) -> usize {
    ds.get(tag).unwrap().to_int::<usize>().unwrap()
}

fn assert_dciodvfy_clean(path: &Path) {
    let out = Command::new(common::require_tool("dciodvfy"))
        .arg(path)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = report.lines().filter(|l| l.contains("Error")).collect();
    assert!(
        errors.is_empty(),
        "dciodvfy errors in {}:\n{report}",
        path.display()
    );
}

/// What each overlay image is checked against.
struct Expect<'a> {
    /// Study of the source.
    study_uid: &'a str,
    /// Series the overlay must not reuse (source, SEG).
    other_series: Vec<String>,
    /// Source (instance, frame) every image must reference, exactly once each.
    sources: HashSet<(String, Option<u32>)>,
    /// Per source (instance, frame): the expected grey of every pixel, when known exactly.
    grey: HashMap<(String, Option<u32>), Array2<u8>>,
}

/// Check every overlay image of `outcome` against the SEG it wrote and `expect`.
fn check_overlay(pipeline: &LoadedPipeline, outcome: &JobOutcome, expect: &Expect) {
    let def = &pipeline.definition;
    let seg = read_seg(&outcome.seg_path).unwrap();
    let specs = def.segment_specs();
    let colours: Vec<[u8; 3]> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| segment_rgb(i, s.recommended_cielab))
        .collect();
    // SEG masks per (source instance, frame), one per segment.
    let mut masks: HashMap<(String, Option<u32>), Vec<Array2<bool>>> = HashMap::new();
    for f in &seg.frames {
        let key = (
            f.referenced_sop_instance_uid().unwrap().to_string(),
            f.referenced_frame_number,
        );
        let entry = masks
            .entry(key)
            .or_insert_with(|| vec![Array2::from_elem(f.pixels.dim(), false); specs.len()]);
        entry[usize::from(f.segment_number) - 1] = f.pixels.clone();
    }

    assert_eq!(
        outcome.companions.len(),
        expect.sources.len(),
        "one image per source frame"
    );
    let options = overlay_options(def);
    let mut series = HashSet::new();
    let mut numbers = Vec::new();
    let mut referenced = HashSet::new();
    let (mut boundary_checked, mut grey_checked) = (0usize, 0usize);
    for companion in &outcome.companions {
        assert_eq!(companion.kind, OutputKind::Overlay);
        assert!(
            companion
                .path
                .starts_with(outcome.seg_path.with_file_name("seg-overlay"))
        );
        let obj: DefaultDicomObject = open_file(&companion.path).unwrap();
        let ds: &InMemDicomObject = &obj;
        assert_eq!(
            text(ds, tags::SOP_CLASS_UID),
            SECONDARY_CAPTURE_IMAGE_STORAGE
        );
        assert_eq!(text(ds, tags::SOP_INSTANCE_UID), companion.sop_instance_uid);
        assert_eq!(text(ds, tags::STUDY_INSTANCE_UID), expect.study_uid);
        let series_uid = text(ds, tags::SERIES_INSTANCE_UID);
        assert!(!expect.other_series.contains(&series_uid), "its own series");
        series.insert(series_uid);
        assert_eq!(text(ds, tags::IMAGE_TYPE), "DERIVED\\SECONDARY");
        assert_eq!(text(ds, tags::CONVERSION_TYPE), "WSD");
        assert_eq!(text(ds, tags::BURNED_IN_ANNOTATION), "YES");
        assert_eq!(text(ds, tags::PHOTOMETRIC_INTERPRETATION), "RGB");
        assert_eq!(number(ds, tags::PLANAR_CONFIGURATION), 0);
        assert_eq!(
            number(ds, tags::SERIES_NUMBER),
            options.series_number as usize
        );
        assert!(text(ds, tags::SERIES_DESCRIPTION).starts_with("AI overlay: "));
        numbers.push(number(ds, tags::INSTANCE_NUMBER));
        let source = &ds
            .get(tags::SOURCE_IMAGE_SEQUENCE)
            .unwrap()
            .items()
            .unwrap()[0];
        let key = (
            text(source, tags::REFERENCED_SOP_INSTANCE_UID),
            source
                .get(tags::REFERENCED_FRAME_NUMBER)
                .map(|e| e.to_int::<u32>().unwrap()),
        );
        assert!(referenced.insert(key.clone()), "{key:?} referenced twice");

        let (rows, columns) = (number(ds, tags::ROWS), number(ds, tags::COLUMNS));
        let rgb = ds.get(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
        let px = |r: usize, c: usize| {
            let i = (r * columns + c) * 3;
            [rgb[i], rgb[i + 1], rgb[i + 2]]
        };
        let frame_masks = &masks[&key];
        let (source_rows, source_columns) = frame_masks[0].dim();
        assert_eq!(columns, source_columns);
        assert!(rows > source_rows, "the legend band lies below the image");
        // Outline: a mask pixel with a 4-neighbour outside it has the segment's colour
        // (unless a later segment, drawn over it, covers it).
        for (s, mask) in frame_masks.iter().enumerate() {
            for ((r, c), &on) in mask.indexed_iter() {
                let edge = on
                    && [(0i64, 1i64), (0, -1), (1, 0), (-1, 0)]
                        .iter()
                        .any(|(dr, dc)| {
                            let (rr, cc) = (r as i64 + dr, c as i64 + dc);
                            rr < 0
                                || cc < 0
                                || rr >= source_rows as i64
                                || cc >= source_columns as i64
                                || !mask[(rr as usize, cc as usize)]
                        });
                let covered = frame_masks[s + 1..].iter().any(|m| m[(r, c)]);
                if edge && !covered {
                    assert_eq!(px(r, c), colours[s], "segment {s} boundary at ({r}, {c})");
                    boundary_checked += 1;
                }
            }
        }
        // Away from every mask: the grey source.
        let near = |r: usize, c: usize| {
            frame_masks.iter().any(|m| {
                (r.saturating_sub(3)..(r + 4).min(source_rows)).any(|rr| {
                    (c.saturating_sub(3)..(c + 4).min(source_columns)).any(|cc| m[(rr, cc)])
                })
            })
        };
        for r in (0..source_rows).step_by(3) {
            for c in (0..source_columns).step_by(3) {
                if near(r, c) {
                    continue;
                }
                let [red, green, blue] = px(r, c);
                assert!(
                    red == green && green == blue,
                    "grey at ({r}, {c}): {:?}",
                    px(r, c)
                );
                if let Some(grey) = expect.grey.get(&key) {
                    assert!(
                        red.abs_diff(grey[(r, c)]) <= 1,
                        "({r}, {c}): {red} vs {}",
                        grey[(r, c)]
                    );
                }
                grey_checked += 1;
            }
        }
        // Legend: every segment's swatch and white text in the band.
        let band: HashSet<[u8; 3]> = (source_rows..rows)
            .flat_map(|r| (0..columns).map(move |c| (r, c)))
            .map(|(r, c)| px(r, c))
            .collect();
        for colour in &colours {
            assert!(band.contains(colour), "legend swatch {colour:?}");
        }
        assert!(band.contains(&[255, 255, 255]), "legend text");
        assert_dciodvfy_clean(&companion.path);
    }
    assert!(boundary_checked > 0, "the masks have boundaries to check");
    assert!(grey_checked > 0);
    assert_eq!(series.len(), 1, "one overlay series");
    assert_eq!(
        referenced, expect.sources,
        "each source frame referenced once"
    );
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=expect.sources.len()).collect::<Vec<_>>());
}

/// The grey a viewer shows for an MR slice: its values through its own LINEAR window.
fn windowed(path: &Path) -> ((String, Option<u32>), Array2<u8>) {
    let obj = open_file(path).unwrap();
    let values = obj
        .decode_pixel_data()
        .unwrap()
        .to_ndarray::<f32>()
        .unwrap();
    let window = VoiWindow::from_header(&obj).expect("the synthetic MR has a window");
    assert_eq!(window.function, VoiFunction::Linear);
    let (c, w) = (window.centre, window.width);
    // PS3.3 C.11.2.1.2.1, written out here rather than calling the code under test.
    let grey = |x: f64| -> u8 {
        let y = ((x - (c - 0.5)) / (w - 1.0) + 0.5).clamp(0.0, 1.0);
        (y * 255.0).round() as u8
    };
    let shape = (values.shape()[1], values.shape()[2]);
    let frame = Array2::from_shape_fn(shape, |(r, col)| grey(f64::from(values[[0, r, col, 0]])));
    ((text(&obj, tags::SOP_INSTANCE_UID), None), frame)
}

#[test]
fn dce_overlay_has_one_image_per_reference_slice() {
    common::init_logging();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dce_pipeline(true);
    let (study, outcome) = run_dce(&pipeline, dir.path());
    let reference = &study.dce_phases()[0];
    let lesion = outcome.findings[0].1.voxels;
    assert!(lesion > 0, "the phantom's lesion is found");
    let seg_series = text(
        &open_file(&outcome.seg_path).unwrap(),
        tags::SERIES_INSTANCE_UID,
    );
    let grey: HashMap<_, _> = reference.files.iter().map(|p| windowed(p)).collect();
    let expect = Expect {
        study_uid: &study.study_uid,
        other_series: vec![reference.series_uid.clone(), seg_series],
        sources: grey.keys().cloned().collect(),
        grey,
    };
    check_overlay(&pipeline, &outcome, &expect);
    // Instance numbers follow the source's own numbering.
    let by_source: HashMap<String, usize> = outcome
        .companions
        .iter()
        .map(|c| {
            let obj = open_file(&c.path).unwrap();
            let source = &obj
                .get(tags::SOURCE_IMAGE_SEQUENCE)
                .unwrap()
                .items()
                .unwrap()[0];
            (
                text(source, tags::REFERENCED_SOP_INSTANCE_UID),
                number(&obj, tags::INSTANCE_NUMBER),
            )
        })
        .collect();
    let mut source_order: Vec<(usize, String)> = reference
        .files
        .iter()
        .map(|p| {
            let obj = open_file(p).unwrap();
            (
                number(&obj, tags::INSTANCE_NUMBER),
                text(&obj, tags::SOP_INSTANCE_UID),
            )
        })
        .collect();
    source_order.sort();
    for (rank, (_, uid)) in source_order.iter().enumerate() {
        assert_eq!(
            by_source[uid],
            rank + 1,
            "InstanceNumber follows the source order"
        );
    }
}

#[test]
fn without_the_option_no_overlay_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dce_pipeline(false);
    assert!(!pipeline.definition.output.overlay, "off by default");
    let (_, outcome) = run_dce(&pipeline, dir.path());
    assert!(outcome.companions.is_empty());
    let entries: Vec<PathBuf> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        entries,
        std::slice::from_ref(&outcome.seg_path),
        "only the SEG in the results folder"
    );
}

fn run_fetal(width: usize, height: usize, frames: u32) {
    common::init_logging();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = load(EMBEDDED_FETAL_HEAD_US, &[OVERLAY_ON]);
    let image = write_fetal_us(
        &dir.path().join("in"),
        &FetalUsParams {
            seed: 3,
            encoding: UsEncoding::JpegBaseline,
            frames,
            width,
            height,
        },
    )
    .unwrap();
    let outcome = run_job(
        &pipeline,
        &image.study_uid,
        &[("image".into(), vec![image.path.clone()])],
        &dir.path().join("out/seg.dcm"),
        &|_| {},
    )
    .expect("the fetal job runs");
    let seg_series = text(
        &open_file(&outcome.seg_path).unwrap(),
        tags::SERIES_INSTANCE_UID,
    );
    let sources = (1..=frames)
        .map(|f| (image.sop_instance_uid.clone(), (frames > 1).then_some(f)))
        .collect();
    let expect = Expect {
        study_uid: &image.study_uid,
        other_series: vec![image.series_uid.clone(), seg_series],
        sources,
        grey: HashMap::new(),
    };
    check_overlay(&pipeline, &outcome, &expect);
    let first = open_file(&outcome.companions[0].path).unwrap();
    assert_eq!(number(&first, tags::COLUMNS), width);
    assert!(
        first.get(tags::PIXEL_SPACING).is_some(),
        "the calibration carries over"
    );
}

#[test]
fn ultrasound_still_of_an_odd_size_gets_one_overlay_image() {
    run_fetal(959, 661, 1);
}

#[test]
fn ultrasound_cine_gets_one_overlay_image_per_frame() {
    run_fetal(481, 333, 3);
}

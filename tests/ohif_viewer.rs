//! What the radiologist sees in OHIF: every kind of SEG the pipelines write is loaded onto
//! its source series by OHIF 3.13's own SEG code (`tests/common/ohif.rs`), and OHIF's
//! labelmap of every source image must equal the SEG frames that reference that image and
//! highdicom's reading. DCE SEGs are loaded with the four phases offered in every order.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::ohif::{self, Options, Report};
use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, OpenFileOptions, open_file};
use segnode::pipeline::definition::PipelineDefinition;
use segnode::pipeline::job::LoadedPipeline;
use segnode::pipeline::offline::plan_folder;
use segnode::pipeline::run::run_job;
use segnode::synth::{DceParams, Orientation, SynthStudy, UsEncoding, write_dce_study};

/// The shipped pipeline `name` with each `(from, to)` edit, loaded with the models.
fn pipeline(name: &str, edits: &[(&str, &str)]) -> LoadedPipeline {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("conf/pipelines/{name}.toml"));
    let mut text = std::fs::read_to_string(&shipped).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "{name}.toml no longer has {from:?}");
        text = text.replace(from, to);
    }
    let definition = PipelineDefinition::from_toml(&text, &format!("{name}.toml")).unwrap();
    LoadedPipeline::load(definition, &common::dce::models_dir()).expect("the model loads")
}

const LABELMAP: (&str, &str) = (
    "omit_empty_frames = false",
    "omit_empty_frames = false\nseg_type = \"labelmap\"",
);

/// The DCE pipeline for the small test studies, BINARY or LABELMAP.
fn dce_pipeline(labelmap: bool) -> LoadedPipeline {
    let mut edits = vec![("min_slices = 96", "min_slices = 16")];
    if labelmap {
        edits.push(LABELMAP);
    }
    pipeline("dce_breast", &edits)
}

fn dce_study(dir: &Path, orientation: Orientation, reverse: bool, size: usize) -> SynthStudy {
    let params = DceParams {
        orientation,
        reverse,
        slices: 24,
        size,
        seed: 21,
        ..DceParams::default()
    };
    write_dce_study(dir, &params).unwrap()
}

/// The four phases' files, in temporal order (the localizer left out).
fn phases(study: &SynthStudy) -> Vec<(String, Vec<PathBuf>)> {
    study
        .dce_phases()
        .iter()
        .map(|s| (s.series_uid.clone(), s.files.clone()))
        .collect()
}

/// Segment the study in `dir` into `out`.
fn segment_study(pipeline: &LoadedPipeline, dir: &Path, study: &SynthStudy, out: &Path) {
    let job = plan_folder(&pipeline.definition, dir).expect("the study is complete");
    run_job(pipeline, &study.study_uid, &job.channels, out, &|_| {}).expect("the job runs");
}

fn dciodvfy_errors(path: &Path) -> Vec<String> {
    let out = std::process::Command::new(common::require_tool("dciodvfy"))
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("Error"))
        .map(str::to_string)
        .collect()
}

/// Load `seg` with the four phases in every order: OHIF must attach it to the reference
/// phase each time and show exactly its frames.
fn assert_every_order_shows_the_seg(case: &str, seg: &Path, phases: &[(String, Vec<PathBuf>)]) {
    let files: Vec<Vec<PathBuf>> = phases.iter().map(|(_, f)| f.clone()).collect();
    let options = Options {
        orders: ohif::permutations(4),
        ..Options::default()
    };
    let report = ohif::load(seg, &files, &options);
    assert_eq!(report.loads.len(), 24, "{case}");
    for load in &report.loads {
        assert_eq!(load.referenced_display_sets, 1, "{case}: {load:?}");
        assert!(
            load.shows_exactly(&phases[0].0, report.frames),
            "{case}: order {:?} shows {load:?} (frames {})",
            load.order,
            report.frames
        );
        assert_eq!(load.set_pixels, report.frame_set_pixels, "{case}");
    }
    eprintln!(
        "{case}: 24/24 load orders on the reference phase, {f}/{f} frames placed, {} set pixels, 0 differing",
        report.frame_set_pixels,
        f = report.frames
    );
}

#[test]
fn dce_segs_land_on_their_phase_in_every_load_order_in_four_orientations() {
    let binary = dce_pipeline(false);
    for (orientation, reverse) in [
        (Orientation::Axial, false),
        (Orientation::Sagittal, true),
        (Orientation::Coronal, false),
        (Orientation::Oblique, false),
        (Orientation::Axial, true),
    ] {
        let case = format!("{orientation}{}", if reverse { " reversed" } else { "" });
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("study");
        let study = dce_study(&dir, orientation, reverse, 96);
        let seg = tmp.path().join("seg.dcm");
        segment_study(&binary, &dir, &study, &seg);
        assert_eq!(dciodvfy_errors(&seg), Vec::<String>::new(), "{case}");
        let phases = phases(&study);
        let report = ohif::load(&seg, &[phases[0].1.clone()], &Options::default());
        assert!(report.frame_set_pixels > 0, "{case}: the lesion is found");
        assert_every_order_shows_the_seg(&case, &seg, &phases);
    }
}

/// Add the post-contrast phases to ReferencedSeriesSequence, as segnode did before: the
/// harness must then see OHIF attach the SEG to a phase its frames do not reference.
fn reference_every_phase(seg: &Path, phases: &[(String, Vec<PathBuf>)]) {
    let mut obj = open_file(seg).unwrap();
    let mut items: Vec<InMemDicomObject> = obj
        .element(tags::REFERENCED_SERIES_SEQUENCE)
        .unwrap()
        .items()
        .unwrap()
        .to_vec();
    let ui = |tag, v: &str| DataElement::new(tag, VR::UI, PrimitiveValue::from(v));
    for (uid, files) in &phases[1..] {
        let instances: Vec<InMemDicomObject> = files
            .iter()
            .map(|f| {
                let src = OpenFileOptions::new()
                    .read_until(tags::PIXEL_DATA)
                    .open_file(f)
                    .unwrap();
                let sop = src
                    .element(tags::SOP_INSTANCE_UID)
                    .unwrap()
                    .to_str()
                    .unwrap();
                InMemDicomObject::from_element_iter([
                    ui(tags::REFERENCED_SOP_CLASS_UID, "1.2.840.10008.5.1.4.1.1.4"),
                    ui(tags::REFERENCED_SOP_INSTANCE_UID, &sop),
                ])
            })
            .collect();
        items.push(InMemDicomObject::from_element_iter([
            ui(tags::SERIES_INSTANCE_UID, uid),
            DataElement::new(
                tags::REFERENCED_INSTANCE_SEQUENCE,
                VR::SQ,
                DataSetSequence::from(instances),
            ),
        ]));
    }
    obj.put(DataElement::new(
        tags::REFERENCED_SERIES_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(items),
    ));
    obj.write_to_file(seg).unwrap();
}

#[test]
fn referencing_every_phase_would_attach_the_seg_to_the_wrong_phase() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("study");
    let study = dce_study(&dir, Orientation::Axial, false, 96);
    let seg = tmp.path().join("seg.dcm");
    segment_study(&dce_pipeline(false), &dir, &study, &seg);
    let phases = phases(&study);
    reference_every_phase(&seg, &phases);
    let files: Vec<Vec<PathBuf>> = phases.iter().map(|(_, f)| f.clone()).collect();
    let report = ohif::load(
        &seg,
        &files,
        &Options {
            orders: ohif::permutations(4),
            ..Options::default()
        },
    );
    let wrong: Vec<_> = report
        .loads
        .iter()
        .filter(|l| l.attached_series.as_deref() != Some(phases[0].0.as_str()))
        .collect();
    eprintln!(
        "all four phases referenced: {}/24 load orders attach the SEG to a post-contrast phase",
        wrong.len()
    );
    assert_eq!(
        wrong.len(),
        18,
        "every order not starting with the pre phase"
    );
    assert!(
        wrong
            .iter()
            .all(|l| l.frames_placed == 0 && l.set_pixels == 0),
        "on another phase no frame matches and the SEG shows empty: {wrong:?}"
    );
}

/// Give every post-contrast slice the pre-contrast pixels of its position: no enhancement.
fn remove_enhancement(phases: &[(String, Vec<PathBuf>)]) {
    let position = |obj: &InMemDicomObject| {
        obj.element(tags::IMAGE_POSITION_PATIENT)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string()
    };
    let pre: HashMap<String, PathBuf> = phases[0]
        .1
        .iter()
        .map(|f| (position(&open_file(f).unwrap()), f.clone()))
        .collect();
    for (_, files) in &phases[1..] {
        for f in files {
            let mut obj = open_file(f).unwrap();
            let source = open_file(&pre[&position(&obj)]).unwrap();
            obj.put(source.element(tags::PIXEL_DATA).unwrap().clone());
            obj.write_to_file(f).unwrap();
        }
    }
}

#[test]
fn a_lesion_free_study_shows_an_empty_seg_on_every_slice() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("study");
    let study = dce_study(&dir, Orientation::Axial, false, 96);
    let phases = phases(&study);
    remove_enhancement(&phases);
    let seg = tmp.path().join("seg.dcm");
    segment_study(&dce_pipeline(false), &dir, &study, &seg);
    let report = ohif::load(&seg, &[phases[0].1.clone()], &Options::default());
    assert_eq!(report.frame_set_pixels, 0, "no lesion");
    assert_eq!(report.frames, 24, "empty frames are kept");
    let load = &report.loads[0];
    assert!(load.shows_exactly(&phases[0].0, 24), "{load:?}");
    assert_eq!((load.images, load.set_pixels), (24, 0));
}

#[test]
fn labelmap_and_odd_sized_dce_segs_show_exactly() {
    // 98 x 98 = 9604 pixels a frame: BINARY frames start mid-byte.
    for (labelmap, size) in [(false, 98), (true, 98), (true, 96)] {
        let case = format!(
            "{} {size}x{size}",
            if labelmap { "LABELMAP" } else { "BINARY" }
        );
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("study");
        let study = dce_study(&dir, Orientation::Oblique, false, size);
        let seg = tmp.path().join("seg.dcm");
        segment_study(&dce_pipeline(labelmap), &dir, &study, &seg);
        assert_every_order_shows_the_seg(&case, &seg, &phases(&study));
        let errors = dciodvfy_errors(&seg);
        if labelmap {
            // dicom3tools 1.00~20220618 predates Supplement 243 (2024): it has no IOD for
            // Label Map Segmentation Storage and checks nothing beyond generic encoding.
            assert_eq!(errors, ["Error - Information Object Not found"], "{case}");
            let read = segnode::pipeline::seg::read_seg(&seg).unwrap();
            assert_eq!(
                read.frames.len(),
                24,
                "{case}: one frame per slice, one segment"
            );
        } else {
            assert_eq!(errors, Vec::<String>::new(), "{case}");
        }
    }
}

/// The fetal head pipeline: sigmoid (overlapping) or softmax classes, BINARY or LABELMAP.
fn fetal_pipeline(exclusive: bool, labelmap: bool) -> LoadedPipeline {
    let mut edits = Vec::new();
    if exclusive {
        edits.push((
            "file = \"fetal_head_phantom.pt\"",
            "file = \"fetal_head_phantom_exclusive.pt\"",
        ));
        edits.push(("activation = \"sigmoid\"", "activation = \"softmax\""));
    }
    if labelmap {
        edits.push(LABELMAP);
    }
    pipeline("fetal_head_us", &edits)
}

/// An ultrasound image (`frames` > 1: a cine) and its SEG from `pipeline`; OHIF's report,
/// as the SEG is and with the plane orientation OHIF assumes for such images.
fn us_case(pipeline: &LoadedPipeline, frames: u32, dir: &Path) -> (Report, Report) {
    let image = common::fetal::us_image(&dir.join("us"), 4, UsEncoding::JpegBaseline, frames);
    let seg = dir.join("seg.dcm");
    run_job(
        pipeline,
        &image.study_uid,
        &[("image".into(), vec![image.path.clone()])],
        &seg,
        &|_| {},
    )
    .expect("the job runs");
    let series = [vec![image.path.clone()]];
    let as_written = ohif::load(&seg, &series, &Options::default());
    let oriented = ohif::load(
        &seg,
        &series,
        &Options {
            plane_orientation: Some([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
            ..Options::default()
        },
    );
    (as_written, oriented)
}

#[test]
fn ultrasound_segs_need_a_plane_orientation_the_standard_does_not_allow() {
    let tmp = tempfile::tempdir().unwrap();
    for (frames, exclusive, labelmap) in [
        (1, false, false),
        (1, true, true),
        (8, false, false),
        (8, true, true),
    ] {
        let case = format!(
            "{} {} {}",
            if frames > 1 { "cine" } else { "still" },
            if exclusive { "softmax" } else { "sigmoid" },
            if labelmap { "LABELMAP" } else { "BINARY" }
        );
        let dir = tmp.path().join(case.replace(' ', "-"));
        let (as_written, oriented) = us_case(&fetal_pipeline(exclusive, labelmap), frames, &dir);
        let load = &as_written.loads[0];
        // No frame of reference, so no Plane Orientation (PS3.3 Table A.51-2); the adapter's
        // checkOrientation reads it anyway and throws.
        assert!(
            load.error
                .as_deref()
                .is_some_and(|e| e.contains("ImageOrientationPatient")
                    || e.contains("Unexpected 1-bit SEG PixelData length")),
            "{case}: {load:?}"
        );
        let load = &oriented.loads[0];
        let series = &oriented.series_uids[0];
        eprintln!(
            "{case}: as written: {:?}; oriented: {load:?}",
            as_written.loads[0].error
        );
        if labelmap {
            assert!(
                load.shows_exactly(series, oriented.frames),
                "{case}: {load:?}"
            );
            assert_eq!(load.images, frames as usize, "{case}");
        } else if frames == 1 {
            // 959 x 661 is no multiple of 8: the three frames, packed as one bit stream and
            // padded to even length, have the length of three byte-aligned frames, so
            // Cornerstone unpacks them frame by frame and frames 2 and 3 are misplaced.
            assert!(
                load.error.is_none() && load.frames_placed == 3 && load.mismatch_vs_frames > 0,
                "{case}: {load:?}"
            );
        } else {
            // 24 frames: the padded length matches none of Cornerstone's layouts.
            assert!(
                load.error
                    .as_deref()
                    .is_some_and(|e| e.contains("Unexpected 1-bit SEG PixelData length")),
                "{case}: {load:?}"
            );
        }
    }
}

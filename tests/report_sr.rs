//! The measurement report (Comprehensive 3D SR, TID 1500) that each job writes beside its
//! SEG, checked against the synthetic phantoms' truth and read back by independent tools:
//!
//! - every coded concept is in the code tables pydicom ships (DICOM, SNOMED CT, LOINC,
//!   UCUM) with the same meaning;
//! - DCE (axial, sagittal, coronal, oblique): the lesion's volume within 5 % of the truth
//!   ellipsoid's, its longest diameter within one voxel of the longest truth axis;
//! - fetal head (stills with heads at several angles, and a cine): HC within 2 % of the
//!   truth ellipse's perimeter, BPD and OFD within 2 % of its axes, on every frame;
//! - an image without calibration gets no mm values, and the report says why;
//! - `dciodvfy` finds no error, and highdicom (`highdicom.sr.srread`, then the measurement
//!   groups) reads back the values, units and SEG references that segnode wrote.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use dicom_dictionary_std::tags;
use segnode::pipeline::definition::{EMBEDDED_DCE_BREAST, PipelineDefinition};
use segnode::pipeline::job::{JobOutcome, LoadedPipeline};
use segnode::pipeline::offline::plan_folder;
use segnode::pipeline::output::OutputKind;
use segnode::pipeline::report::codes;
use segnode::pipeline::report::fetal::ramanujan_perimeter;
use segnode::pipeline::run::run_job;
use segnode::synth::{
    DceParams, FetalHeadTruth, LesionTruth, Orientation, UsEncoding, write_dce_study,
};
use serde_json::Value;

use common::python::{helper, python};

fn load(text: &str, name: &str) -> LoadedPipeline {
    let def = PipelineDefinition::from_toml(text, name).expect("the shipped pipeline is valid");
    assert!(def.output.report.is_some(), "{name} ships with a report");
    LoadedPipeline::load(def, &common::dce::models_dir()).expect("the pipeline loads")
}

fn dce_pipeline() -> LoadedPipeline {
    let text = EMBEDDED_DCE_BREAST.replace(
        "min_slices = 96",
        &format!("min_slices = {}", common::dce::SLICES),
    );
    load(&text, "dce_breast.toml (min_slices lowered)")
}

fn fetal_pipeline() -> LoadedPipeline {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/pipelines/fetal_head_us.toml");
    load(
        &std::fs::read_to_string(path).unwrap(),
        "fetal_head_us.toml",
    )
}

/// The report the job handed to the outbox: one companion of kind Report, on disk.
fn report_of(outcome: &JobOutcome) -> &Path {
    let reports: Vec<_> = outcome
        .companions
        .iter()
        .filter(|c| c.kind == OutputKind::Report)
        .collect();
    assert_eq!(reports.len(), 1, "one report per job");
    assert!(reports[0].path.is_file());
    assert_eq!(
        common::fixtures::sop_instance_uid(&reports[0].path),
        reports[0].sop_instance_uid
    );
    &reports[0].path
}

fn read_back(sr: &Path) -> Value {
    let out = Command::new(python())
        .arg(helper("read_sr.py"))
        .arg(sr)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "read_sr.py {} failed (highdicom in the venv? `make setup`):\n{}",
        sr.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn assert_dciodvfy_clean(path: &Path) {
    let out = Command::new(common::require_tool("dciodvfy"))
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("Error")).collect();
    assert!(errors.is_empty(), "dciodvfy {}:\n{text}", path.display());
}

/// The value of measurement `code` in `group`, with its unit.
fn value(group: &Value, code: &str) -> (f64, String) {
    let m = group["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["code"] == code)
        .unwrap_or_else(|| panic!("no measurement {code} in {group}"));
    (
        m["value"]
            .as_f64()
            .unwrap_or_else(|| panic!("{code} has no value: {m}")),
        m["unit"].as_str().unwrap().to_string(),
    )
}

#[test]
fn every_code_is_in_the_standard_tables() {
    let list: Vec<Value> = codes::ALL
        .iter()
        .map(|c| serde_json::json!({"value": c.value, "scheme": c.scheme, "meaning": c.meaning}))
        .collect();
    let mut child = Command::new(python())
        .arg(helper("check_sr_codes.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), &list).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let problems: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        problems,
        serde_json::json!([]),
        "codes not in pydicom's tables"
    );
    // The codes the issue names.
    assert_eq!(codes::VOLUME.value, "118565006");
    assert_eq!(codes::HEAD_CIRCUMFERENCE.value, "11984-2");
    assert_eq!(codes::BIPARIETAL_DIAMETER.value, "11820-8");
    assert_eq!(codes::OCCIPITOFRONTAL_DIAMETER.value, "11851-3");
}

#[test]
fn dce_reports_volume_and_diameter_in_every_orientation() {
    let pipeline = dce_pipeline();
    let tmp = tempfile::tempdir().unwrap();
    for (i, orientation) in [
        Orientation::Axial,
        Orientation::Sagittal,
        Orientation::Coronal,
        Orientation::Oblique,
    ]
    .into_iter()
    .enumerate()
    {
        let dir = tmp.path().join(format!("{orientation:?}"));
        // Large enough that the phantom's lesion keeps its drawn size (8–15 mm radii).
        let study = write_dce_study(
            &dir,
            &DceParams {
                orientation,
                slices: 64,
                size: 128,
                seed: 40 + i as u64,
                ..DceParams::default()
            },
        )
        .unwrap();
        let job = plan_folder(&pipeline.definition, &dir).unwrap();
        let out = tmp.path().join(format!("{orientation:?}-seg.dcm"));
        let outcome = run_job(&pipeline, &job.spec.study_uid, &job.channels, &out, &|_| {})
            .expect("the job runs");
        let sr = report_of(&outcome);
        assert_eq!(
            sr,
            tmp.path().join(format!("{orientation:?}-seg-report.dcm"))
        );
        assert_dciodvfy_clean(sr);
        let truth = LesionTruth::load(dir.join("truth.toml")).unwrap();
        let doc = read_back(sr);
        assert_eq!(doc["sop_class_uid"], "1.2.840.10008.5.1.4.1.1.88.34");
        assert_eq!(doc["modality"], "SR");
        assert_eq!(doc["study_uid"], study.study_uid.as_str());
        let groups = doc["groups"].as_array().unwrap();
        assert_eq!(groups.len(), 1, "one TID 1411 group per segment: {doc}");
        let g = &groups[0];
        assert_eq!(g["template"], "1411");
        assert_eq!(g["finding"]["value"], "108369006");
        assert_eq!(
            g["reference"]["sop_instance_uid"],
            outcome.seg_sop_instance_uid.as_str()
        );
        assert_eq!(g["reference"]["segment"], 1);
        assert_eq!(
            g["reference"]["source_series_uid"],
            outcome.channels[0].series_uid.as_str()
        );

        let [a, b, c] = truth.radii_mm;
        let truth_ml = 4.0 / 3.0 * std::f64::consts::PI * a * b * c / 1000.0;
        let truth_diameter = 2.0 * a.max(b).max(c);
        let (ml, unit) = value(g, "118565006");
        assert_eq!(unit, "ml");
        let (diameter, unit) = value(g, "103339001");
        assert_eq!(unit, "mm");
        let (components, _) = value(g, "246206008");
        let (percent, unit) = value(g, "113288");
        assert_eq!(unit, "%");
        // One voxel: the largest voxel dimension of the grid.
        let voxel = common::fixtures::attribute(&study.series[0].files[0], tags::PIXEL_SPACING)
            .split('\\')
            .map(|v| v.trim().parse::<f64>().unwrap())
            .chain(std::iter::once(
                common::fixtures::attribute(&study.series[0].files[0], tags::SLICE_THICKNESS)
                    .trim()
                    .parse::<f64>()
                    .unwrap(),
            ))
            .fold(0.0, f64::max);
        eprintln!(
            "{orientation:?}: volume {ml:.3} ml (truth {truth_ml:.3}), diameter {diameter:.2} mm \
             (truth {truth_diameter:.2}, voxel {voxel}), {components} component(s), {percent:.4} %"
        );
        assert!(
            (ml / truth_ml - 1.0).abs() <= 0.05,
            "{orientation:?}: volume {ml} ml vs truth {truth_ml} ml"
        );
        assert!(
            (diameter - truth_diameter).abs() <= voxel,
            "{orientation:?}: diameter {diameter} mm vs truth {truth_diameter} mm (voxel {voxel} mm)"
        );
        assert_eq!(components, 1.0);
        assert!(percent > 0.0 && percent < 100.0);
        // What the job returned is what the document says.
        let mine = &outcome.report[0];
        assert!(
            (mine
                .value(segnode::pipeline::report::Measurement::Volume)
                .unwrap()
                - ml)
                .abs()
                < 1e-4
        );
    }
}

/// Strip the image's calibration: no PixelSpacing, no ultrasound regions.
fn uncalibrated_copy(src: &Path, dst: &Path) {
    let mut obj = dicom_object::open_file(src).unwrap();
    obj.remove_element(tags::SEQUENCE_OF_ULTRASOUND_REGIONS);
    obj.remove_element(tags::PIXEL_SPACING);
    obj.write_to_file(dst).unwrap();
}

#[test]
fn fetal_reports_biometry_on_rotated_heads_and_cines() {
    let pipeline = fetal_pipeline();
    let tmp = tempfile::tempdir().unwrap();
    let mut angles = Vec::new();
    for (seed, frames) in [(3_u64, 1_u32), (11, 1), (29, 1), (7, 3)] {
        let dir = tmp.path().join(format!("seed{seed}"));
        let image = common::fetal::us_image(&dir, seed, UsEncoding::JpegBaseline, frames);
        let truth = FetalHeadTruth::load(dir.join("truth.toml")).unwrap();
        let out = tmp.path().join(format!("seed{seed}-seg.dcm"));
        let outcome = run_job(
            &pipeline,
            &image.study_uid,
            &[("image".into(), vec![image.path.clone()])],
            &out,
            &|_| {},
        )
        .expect("the job runs");
        let sr = report_of(&outcome);
        assert_dciodvfy_clean(sr);
        let doc = read_back(sr);
        assert_eq!(doc["study_uid"], image.study_uid.as_str());

        let [row_mm, col_mm] = truth.pixel_spacing_mm;
        assert!(
            (row_mm - col_mm).abs() < 1e-9,
            "the phantom has square pixels"
        );
        let brain = &truth.skull_inner;
        angles.push(brain.angle_deg);
        let (sa, sb) = (
            brain.semi_axes[0].max(brain.semi_axes[1]) * col_mm,
            brain.semi_axes[0].min(brain.semi_axes[1]) * col_mm,
        );
        let hc_truth = ramanujan_perimeter(sa, sb);
        let brains: Vec<&Value> = doc["groups"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["finding"]["value"] == "12738006")
            .collect();
        assert_eq!(
            brains.len(),
            frames as usize,
            "one brain group per frame: {doc}"
        );
        for (f, g) in brains.iter().enumerate() {
            assert_eq!(g["template"], "1410");
            let reference = &g["reference"];
            assert_eq!(
                reference["sop_instance_uid"],
                outcome.seg_sop_instance_uid.as_str()
            );
            assert_eq!(
                reference["source_sop_instance_uid"],
                truth.sop_instance_uid.as_str()
            );
            if frames > 1 {
                assert_eq!(reference["source_frame"], f as u64 + 1);
            }
            let (hc, unit) = value(g, "11984-2");
            assert_eq!(unit, "mm");
            let (bpd, _) = value(g, "11820-8");
            let (ofd, _) = value(g, "11851-3");
            let (area, unit) = value(g, "42798000");
            assert_eq!(unit, "mm2");
            eprintln!(
                "seed {seed} frame {}: angle {:.1}°, HC {hc:.2} (truth {hc_truth:.2}), BPD {bpd:.2} \
                 (truth {:.2}), OFD {ofd:.2} (truth {:.2}), area {area:.1} mm²",
                f + 1,
                brain.angle_deg,
                2.0 * sb,
                2.0 * sa
            );
            assert!(
                (hc / hc_truth - 1.0).abs() <= 0.02,
                "seed {seed}: HC {hc} vs {hc_truth}"
            );
            assert!(
                (bpd / (2.0 * sb) - 1.0).abs() <= 0.02,
                "seed {seed}: BPD {bpd} vs {}",
                2.0 * sb
            );
            assert!(
                (ofd / (2.0 * sa) - 1.0).abs() <= 0.02,
                "seed {seed}: OFD {ofd} vs {}",
                2.0 * sa
            );
        }
    }
    assert!(
        angles.iter().any(|a| a.abs() >= 5.0),
        "at least one head is rotated: {angles:?}"
    );

    // The same image without calibration: the groups are there, without mm values, and
    // say why.
    let dir = tmp.path().join("uncalibrated");
    let image = common::fetal::us_still(&dir.join("src"), 3);
    let bare = dir.join("bare.dcm");
    uncalibrated_copy(&image.path, &bare);
    let outcome = run_job(
        &pipeline,
        &image.study_uid,
        &[("image".into(), vec![bare])],
        &dir.join("seg.dcm"),
        &|_| {},
    )
    .expect("the job runs without calibration");
    let sr = report_of(&outcome);
    assert_dciodvfy_clean(sr);
    let doc = read_back(sr);
    let groups = doc["groups"].as_array().unwrap();
    assert!(!groups.is_empty());
    for g in groups {
        assert_eq!(g["measurements"], serde_json::json!([]), "no mm value: {g}");
        let comment = g["comment"].as_str().unwrap_or_default();
        assert!(comment.contains("calibration"), "the group says why: {g}");
        assert!(comment.contains("Area"), "and what is missing: {g}");
        if g["finding"]["value"] == "12738006" {
            assert!(comment.contains("Head Circumference"), "{g}");
        }
    }
}

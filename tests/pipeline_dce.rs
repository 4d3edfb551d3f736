//! The DCE breast pipeline end to end on synthetic studies with known truth: folder →
//! `plan_folder` (channel selection) → `run_job` (volume, kinetic model, post-processing,
//! SEG) → SEG on disk, scored in patient coordinates twice, by segnode's own
//! `eval::evaluate_file` and by an independent highdicom reader
//! (`tests/helpers/seg_dice.py`), and checked by dicom3tools' `dciodvfy`.
//!
//! What each test pins (each fails if that feature breaks):
//! - every slice orientation (axial, sagittal, coronal, double oblique) overlays the
//!   truth: Dice ≥ 0.9 by both readers, the two Dice values equal, dciodvfy clean;
//! - reversed InstanceNumbers and a shuffled folder (random file names, random order)
//!   change nothing: same Dice, one frame per source slice, each frame at the patient
//!   position of the source image it references, frames ordered along the normal;
//! - the SEG references the four DCE phases (not the localizer) with all their instances,
//!   has one frame per slice, the source's rows/columns and its ImageOrientationPatient
//!   byte for byte (98 x 98 frames also exercise frames that straddle bytes);
//! - channels in different frames of reference, or a phase with a missing slice, make the
//!   job fail with an error that names the series and the reason;
//! - a study without enhancement gives a SEG with every frame empty and 0 voxels, no NaN.
//!
//! The shipped pipeline wants ≥ 96 slices per phase; these studies are small (24–32
//! slices of 96–128 pixels) so the embedded definition is used with only `min_slices`
//! lowered. Everything else is as shipped, including `roi = [96, 128, 128]`: a small study
//! is zero-padded to one window (MONAI semantics) and cropped back, which for the local,
//! weight-free kinetic model (3-voxel receptive field) is the recommended whole-volume
//! setting. The model is loaded once per test binary.
//!
//! Needs `make models` (models/dce_kinetic.pt), and for the cross-checks `make setup`
//! (dciodvfy; the venv with highdicom, pointed at by SEGNODE_PYTHON).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{OpenFileOptions, open_file};
use segnode::eval::evaluate_file;
use segnode::pipeline::definition::{EMBEDDED_DCE_BREAST, PipelineDefinition};
use segnode::pipeline::job::{JobOutcome, LoadedPipeline};
use segnode::pipeline::offline::{PlannedJob, plan_folder};
use segnode::pipeline::run::run_job;
use segnode::pipeline::seg::{SegContents, read_seg};
use segnode::synth::{DceParams, LesionTruth, Orientation, SynthStudy, write_dce_study};

/// `inputs.min_slices` for the test studies (the shipped 96 would refuse them); below
/// every test study's slice count minus one, so a phase with one slice missing still
/// reaches volume assembly.
const TEST_MIN_SLICES: usize = 16;
/// Dice every orientation must reach (the kinetic model gives ~0.95 on these studies).
const MIN_DICE: f64 = 0.9;
/// segnode's Dice and highdicom's measure the same thing: they must agree to this.
const DICE_AGREEMENT: f64 = 1e-6;

// ---------------------------------------------------------------------------------------
// Pipeline, studies, jobs
// ---------------------------------------------------------------------------------------

/// The embedded DCE definition with `min_slices` set to `min_slices`.
fn definition(min_slices: usize) -> PipelineDefinition {
    let shipped = "min_slices = 96";
    assert!(
        EMBEDDED_DCE_BREAST.contains(shipped),
        "the embedded dce_breast.toml no longer says `{shipped}`; update this test"
    );
    let text = EMBEDDED_DCE_BREAST.replace(shipped, &format!("min_slices = {min_slices}"));
    PipelineDefinition::from_toml(&text, "<dce_breast.toml, min_slices lowered for tests>")
        .expect("the lowered DCE definition is valid")
}

/// The DCE pipeline with its model, loaded (and warmed up) once for the whole binary.
fn pipeline() -> &'static LoadedPipeline {
    static PIPELINE: OnceLock<LoadedPipeline> = OnceLock::new();
    PIPELINE.get_or_init(|| {
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
        let def = definition(TEST_MIN_SLICES);
        let model = models.join(&def.model.file);
        assert!(
            model.is_file(),
            "{} is missing: run `make models`",
            model.display()
        );
        let started = Instant::now();
        let loaded = LoadedPipeline::load(def, &models).expect("the DCE pipeline loads");
        eprintln!("model loaded in {:.2} s", started.elapsed().as_secs_f64());
        loaded
    })
}

/// Write a synthetic DCE study (with a localizer the pipeline must ignore) under `dir`.
fn study(
    dir: &Path,
    orientation: Orientation,
    slices: usize,
    size: usize,
    seed: u64,
) -> SynthStudy {
    study_with(
        dir,
        DceParams {
            orientation,
            slices,
            size,
            seed,
            ..DceParams::default()
        },
    )
}

fn study_with(dir: &Path, params: DceParams) -> SynthStudy {
    write_dce_study(dir, &params)
        .unwrap_or_else(|e| panic!("cannot write the synthetic study {params:?}: {e}"))
}

/// The DCE phases of a study, in temporal order (the localizer left out).
fn phases(study: &SynthStudy) -> Vec<&segnode::synth::SynthSeries> {
    let phases = study.dce_phases();
    assert_eq!(phases.len(), 4, "a synthetic DCE study has four phases");
    phases
}

/// Plan the job for the folder `input` with `def` (the node's channel selection).
fn plan(def: &PipelineDefinition, input: &Path) -> Result<PlannedJob, String> {
    plan_folder(def, input).map_err(|e| e.to_string())
}

/// Plan and run the job for the study folder `input`, writing the SEG to `out`. Planning
/// and job errors come back as their messages.
fn segment(input: &Path, out: &Path) -> Result<(PlannedJob, JobOutcome), String> {
    let loaded = pipeline();
    let job = plan(&loaded.definition, input)?;
    let outcome = run_job(loaded, &job.spec.study_uid, &job.channels, out, &|_| {})
        .map_err(|e| e.to_string())?;
    Ok((job, outcome))
}

/// [`segment`] that must succeed.
fn segment_ok(input: &Path, out: &Path) -> (PlannedJob, JobOutcome) {
    segment(input, out).unwrap_or_else(|e| panic!("segmenting {} failed: {e}", input.display()))
}

// ---------------------------------------------------------------------------------------
// External tools
// ---------------------------------------------------------------------------------------

fn tool_missing(tool: &str, err: impl std::fmt::Display) -> ! {
    panic!("cannot run {tool}: {err}; run `make setup`")
}

/// `dciodvfy` prints no line containing "Error"; its output is printed on failure.
fn assert_dciodvfy_clean(seg: &Path) {
    let out = Command::new("dciodvfy")
        .arg(seg)
        .output()
        .unwrap_or_else(|e| tool_missing("dciodvfy (dicom3tools)", e));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.lines().any(|l| l.contains("Error")),
        "dciodvfy {} reports errors:\n{text}",
        seg.display()
    );
}

/// The project venv's python (SEGNODE_PYTHON at run time, then at build time, then the
/// default venv location).
fn python() -> PathBuf {
    let path = std::env::var("SEGNODE_PYTHON")
        .ok()
        .or(option_env!("SEGNODE_PYTHON").map(String::from))
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/segnode/venv/bin/python")
        });
    if !path.is_file() {
        tool_missing(
            "the project Python venv",
            format!("{} does not exist", path.display()),
        );
    }
    path
}

/// Run `tests/helpers/seg_dice.py` (highdicom, no segnode code) on a SEG and a truth.
fn highdicom_scores(seg: &Path, truth: &Path) -> serde_json::Value {
    let helper = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/helpers/seg_dice.py");
    let out = Command::new(python())
        .arg(helper)
        .arg(seg)
        .arg(truth)
        .output()
        .unwrap_or_else(|e| tool_missing("tests/helpers/seg_dice.py", e));
    assert!(
        out.status.success(),
        "seg_dice.py {} failed (is highdicom in the venv? `make setup`):\n{}",
        seg.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "seg_dice.py printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn f64_of(json: &serde_json::Value, key: &str) -> f64 {
    json[key]
        .as_f64()
        .unwrap_or_else(|| panic!("seg_dice.py: no number {key:?} in {json}"))
}

fn u64_of(json: &serde_json::Value, key: &str) -> u64 {
    json[key]
        .as_u64()
        .unwrap_or_else(|| panic!("seg_dice.py: no integer {key:?} in {json}"))
}

// ---------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------

/// Score the SEG with segnode's `eval` and with highdicom; both must agree exactly (the
/// same voxels) and reach `min_dice`. Returns (ours, highdicom's) Dice.
fn assert_scores(case: &str, seg: &Path, truth_path: &Path, min_dice: f64) -> (f64, f64) {
    let ours = evaluate_file(seg, truth_path, 1)
        .unwrap_or_else(|e| panic!("{case}: segnode eval failed: {e}"));
    let hd = highdicom_scores(seg, truth_path);
    let theirs = f64_of(&hd, "dice");
    eprintln!(
        "DICE {case}: segnode {:.6} (seg {}, truth {}, overlap {}), highdicom {theirs:.6} (seg {}, overlap {})",
        ours.dice,
        ours.seg_voxels,
        ours.truth_voxels,
        ours.intersection,
        u64_of(&hd, "seg_voxels"),
        u64_of(&hd, "intersection"),
    );
    assert!(
        ours.dice.is_finite() && ours.iou.is_finite(),
        "{case}: {ours:?}"
    );
    assert!(
        (ours.dice - theirs).abs() <= DICE_AGREEMENT,
        "{case}: segnode Dice {} but highdicom Dice {theirs}: {ours:?} vs {hd}",
        ours.dice
    );
    assert!(
        (ours.iou - f64_of(&hd, "iou")).abs() <= DICE_AGREEMENT,
        "{case}: IoU {ours:?} vs {hd}"
    );
    assert_eq!(ours.seg_voxels, u64_of(&hd, "seg_voxels"), "{case}: {hd}");
    assert_eq!(
        ours.intersection,
        u64_of(&hd, "intersection"),
        "{case}: {hd}"
    );
    assert_eq!(
        ours.truth_voxels,
        u64_of(&hd, "truth_voxels"),
        "{case}: {hd}"
    );
    // The frames are the source grid: the truth counted on them is the truth file's count.
    assert_eq!(
        u64_of(&hd, "truth_voxels_on_frames"),
        ours.truth_voxels,
        "{case}: the SEG frames do not lie on the source grid: {hd}"
    );
    // highdicom's own geometry (the get_volume() affine) puts every frame's pixel (0, 0)
    // at its ImagePositionPatient, on distinct slices of one regular volume.
    let frames = u64_of(&hd, "frames") as usize;
    assert!(f64_of(&hd, "affine_max_error_mm") < 1e-3, "{case}: {hd}");
    assert!(
        f64_of(&hd, "affine_max_index_offset") < 1e-3,
        "{case}: {hd}"
    );
    let mut slices: Vec<i64> = hd["affine_slice_indices"]
        .as_array()
        .expect("affine_slice_indices")
        .iter()
        .map(|v| v.as_i64().expect("integer index"))
        .collect();
    slices.sort_unstable();
    assert_eq!(
        slices,
        (0..frames as i64).collect::<Vec<_>>(),
        "{case}: the frames are not the slices 0..{frames} of highdicom's volume: {hd}"
    );
    assert_eq!(
        u64_of(&hd, "volume_seg_voxels"),
        ours.seg_voxels,
        "{case}: {hd}"
    );
    // Voxels placed by the affine (not the exact per-frame IPP) may differ by rounding
    // only, i.e. at most a voxel exactly on the ellipsoid surface.
    assert!(
        (f64_of(&hd, "volume_dice") - theirs).abs() < 1e-3,
        "{case}: Dice through highdicom's volume affine differs: {hd}"
    );
    assert!(
        ours.dice >= min_dice,
        "{case}: segnode Dice {} < {min_dice}",
        ours.dice
    );
    assert!(
        theirs >= min_dice,
        "{case}: highdicom Dice {theirs} < {min_dice}"
    );
    (ours.dice, theirs)
}

/// Trimmed DS/UI string values of an element, empty when absent.
fn strs(obj: &dicom_object::InMemDicomObject, tag: dicom_core::Tag) -> Vec<String> {
    obj.element(tag)
        .ok()
        .and_then(|e| e.to_multi_str().ok())
        .map(|v| {
            v.iter()
                .map(|s| s.trim_end_matches('\0').trim().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn str1(obj: &dicom_object::InMemDicomObject, tag: dicom_core::Tag) -> String {
    strs(obj, tag).into_iter().next().unwrap_or_default()
}

/// What the test needs of one source instance.
#[derive(Debug, Clone)]
struct SourceInfo {
    path: PathBuf,
    series_uid: String,
    position: Vec<String>,
}

/// Every DICOM file under `dir` by SOP Instance UID (headers only).
fn index_sources(dir: &Path) -> HashMap<String, SourceInfo> {
    let mut out = HashMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("list study folder") {
            let path = entry.expect("folder entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let Ok(obj) = OpenFileOptions::new()
                .read_until(tags::PIXEL_DATA)
                .open_file(&path)
            else {
                continue; // truth.toml
            };
            let info = SourceInfo {
                path: path.clone(),
                series_uid: str1(&obj, tags::SERIES_INSTANCE_UID),
                position: strs(&obj, tags::IMAGE_POSITION_PATIENT),
            };
            out.insert(str1(&obj, tags::SOP_INSTANCE_UID), info);
        }
    }
    out
}

fn parse3(v: &[String]) -> [f64; 3] {
    assert_eq!(v.len(), 3, "{v:?}");
    std::array::from_fn(|i| v[i].parse().unwrap_or_else(|_| panic!("DS {:?}", v[i])))
}

/// One frame per source slice of the reference (pre-contrast) series; frame k references
/// a source instance at exactly the frame's patient position; frames run along the slice
/// normal with DimensionIndexValues [1, k + 1].
fn assert_frames_on_sources(
    case: &str,
    seg: &SegContents,
    sources_dir: &Path,
    reference_series: &str,
    slices: usize,
) {
    let sources = index_sources(sources_dir);
    assert_eq!(
        seg.frames.len(),
        slices,
        "{case}: one frame per source slice"
    );
    let iop: Vec<f64> = seg
        .image_orientation
        .iter()
        .map(|v| v.parse().expect("IOP DS"))
        .collect();
    assert_eq!(iop.len(), 6, "{case}: shared ImageOrientationPatient");
    let normal = [
        iop[1] * iop[5] - iop[2] * iop[4],
        iop[2] * iop[3] - iop[0] * iop[5],
        iop[0] * iop[4] - iop[1] * iop[3],
    ];
    let mut referenced = HashSet::new();
    let mut last_along_normal = f64::NEG_INFINITY;
    for (k, frame) in seg.frames.iter().enumerate() {
        assert_eq!(frame.segment_number, 1, "{case}: frame {k}");
        assert_eq!(
            frame.referenced_sop_instance_uids.len(),
            1,
            "{case}: frame {k} references one source image"
        );
        let uid = &frame.referenced_sop_instance_uids[0];
        let source = sources.get(uid).unwrap_or_else(|| {
            panic!("{case}: frame {k} references {uid}, which is not in the study")
        });
        assert_eq!(
            source.series_uid,
            reference_series,
            "{case}: frame {k} references {} of another series than the reference (pre) phase",
            source.path.display()
        );
        assert_eq!(
            frame.image_position,
            source.position,
            "{case}: frame {k} is not at the position of the source it references ({})",
            source.path.display()
        );
        assert_eq!(parse3(&frame.image_position), parse3(&source.position));
        let p = parse3(&frame.image_position);
        let along = p[0] * normal[0] + p[1] * normal[1] + p[2] * normal[2];
        assert!(
            along > last_along_normal,
            "{case}: frame {k} is not after frame {} along the slice normal",
            k.saturating_sub(1)
        );
        last_along_normal = along;
        assert_eq!(
            frame.dimension_index_values,
            [1, k as u32 + 1],
            "{case}: frame {k}"
        );
        referenced.insert(uid.clone());
    }
    let reference_instances = sources
        .values()
        .filter(|s| s.series_uid == reference_series)
        .count();
    assert_eq!(
        referenced.len(),
        slices,
        "{case}: every frame references its own slice"
    );
    assert_eq!(
        reference_instances, slices,
        "{case}: reference series in the folder"
    );
}

/// The raw value bytes of the first (0020,0037) ImageOrientationPatient element of an
/// Explicit VR Little Endian file: the test of "copied verbatim" that no parser can blur.
fn raw_iop_bytes(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).expect("read file");
    let pattern = [0x20, 0x00, 0x37, 0x00, b'D', b'S'];
    let at = bytes
        .windows(pattern.len())
        .position(|w| w == pattern)
        .unwrap_or_else(|| panic!("{}: no explicit-VR ImageOrientationPatient", path.display()));
    let len = u16::from_le_bytes([bytes[at + 6], bytes[at + 7]]) as usize;
    bytes[at + 8..at + 8 + len].to_vec()
}

/// The SEG references the reference phase (all its instances) and names the other three
/// as related series (never the localizer), has
/// NumberOfFrames = slices, the source's rows/columns, FrameOfReference and study, and
/// the source's ImageOrientationPatient byte for byte.
fn assert_header_and_references(
    case: &str,
    seg_path: &Path,
    study: &SynthStudy,
    job: &PlannedJob,
    slices: usize,
    size: usize,
) {
    let phases = phases(study);
    // Channel selection: the four phases in temporal order, never the localizer.
    let chosen: Vec<&str> = job
        .spec
        .channels
        .iter()
        .map(|c| c.series_uid.as_str())
        .collect();
    let expected: Vec<&str> = phases.iter().map(|s| s.series_uid.as_str()).collect();
    assert_eq!(
        chosen, expected,
        "{case}: channels are the four phases in temporal order"
    );

    let seg = read_seg(seg_path).unwrap_or_else(|e| panic!("{case}: read_seg: {e}"));
    let obj = open_file(seg_path).expect("open SEG");
    let frames: u32 = obj
        .element(tags::NUMBER_OF_FRAMES)
        .expect("NumberOfFrames")
        .to_int()
        .expect("NumberOfFrames is a number");
    assert_eq!(frames as usize, slices, "{case}: NumberOfFrames");
    assert_eq!(
        (usize::from(seg.rows), usize::from(seg.columns)),
        (size, size),
        "{case}: rows/columns of the source"
    );

    let first_pre = &phases[0].files[0];
    let source = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(first_pre)
        .expect("open source");
    assert_eq!(seg.study_instance_uid, study.study_uid, "{case}: study");
    assert_eq!(
        seg.frame_of_reference_uid.as_deref(),
        Some(str1(&source, tags::FRAME_OF_REFERENCE_UID).as_str()),
        "{case}: FrameOfReferenceUID copied from the source"
    );
    assert_eq!(
        raw_iop_bytes(seg_path),
        raw_iop_bytes(first_pre),
        "{case}: ImageOrientationPatient must be the source's bytes"
    );
    assert_eq!(
        seg.image_orientation,
        strs(&source, tags::IMAGE_ORIENTATION_PATIENT)
    );
    assert_eq!(
        seg.pixel_spacing,
        strs(&source, tags::PIXEL_SPACING),
        "{case}"
    );

    // ReferencedSeriesSequence: the reference phase (the one the frames lie on) only,
    // with all its instances; the other three phases as related series, so that a viewer
    // cannot attach the SEG to a phase its frames do not reference.
    let listed: Vec<&str> = seg
        .referenced_series
        .iter()
        .map(|r| r.series_instance_uid.as_str())
        .collect();
    assert_eq!(
        listed,
        [expected[0]],
        "{case}: ReferencedSeriesSequence lists the reference phase only"
    );
    assert_eq!(
        seg.related_series,
        expected[1..],
        "{case}: the other phases are related series, in channel order"
    );
    let sources = index_sources(study.truth_path.parent().expect("study folder"));
    for r in &seg.referenced_series {
        let mut instances: Vec<&str> = r.instances.iter().map(|(_, i)| i.as_str()).collect();
        instances.sort_unstable();
        instances.dedup();
        let mut of_series: Vec<&str> = sources
            .iter()
            .filter(|(_, s)| s.series_uid == r.series_instance_uid)
            .map(|(uid, _)| uid.as_str())
            .collect();
        of_series.sort_unstable();
        assert_eq!(
            instances, of_series,
            "{case}: series {} must be referenced with each of its {slices} instances",
            r.series_instance_uid
        );
        assert!(
            r.instances
                .iter()
                .all(|(class, _)| class == "1.2.840.10008.5.1.4.1.1.4"),
            "{case}: MR Image Storage instances: {:?}",
            r.instances.first()
        );
    }
}

/// Generate, segment and check one study of `orientation`: Dice by both readers, dciodvfy,
/// header, references and frame positions.
fn orientation_case(orientation: Orientation, slices: usize, size: usize, seed: u64) {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("study");
    let s = study(&dir, orientation, slices, size, seed);
    let seg_path = tmp.path().join("seg.dcm");
    let (job, outcome) = segment_ok(&dir, &seg_path);
    let case = format!("{orientation} {slices}x{size}x{size} seed {seed}");
    assert_eq!(outcome.slices, slices);
    assert_eq!(outcome.rows_cols, (size, size));
    assert!(
        outcome.channels.iter().all(|c| !c.resampled),
        "{case}: the phases share one grid and must not be resampled: {:?}",
        outcome.channels
    );
    assert_scores(&case, &seg_path, &s.truth_path, MIN_DICE);
    assert_dciodvfy_clean(&seg_path);
    assert_header_and_references(&case, &seg_path, &s, &job, slices, size);
    let seg = read_seg(&seg_path).unwrap();
    assert_frames_on_sources(&case, &seg, &dir, &phases(&s)[0].series_uid, slices);
    eprintln!("{case}: {:.2} s", started.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------------------
// 1. Orientations
// ---------------------------------------------------------------------------------------

#[test]
fn axial_study_overlays_the_truth() {
    orientation_case(Orientation::Axial, 24, 96, 7);
}

#[test]
fn sagittal_study_overlays_the_truth() {
    orientation_case(Orientation::Sagittal, 32, 128, 7);
}

#[test]
fn coronal_study_overlays_the_truth() {
    orientation_case(Orientation::Coronal, 24, 96, 7);
}

#[test]
fn oblique_study_overlays_the_truth() {
    orientation_case(Orientation::Oblique, 32, 128, 7);
}

// ---------------------------------------------------------------------------------------
// 2. Slice and file order
// ---------------------------------------------------------------------------------------

#[test]
fn reversed_instance_numbers_change_nothing() {
    let (slices, size) = (24, 96);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("study");
    let s = study_with(
        &dir,
        DceParams {
            orientation: Orientation::Coronal,
            reverse: true,
            slices,
            size,
            seed: 11,
            ..DceParams::default()
        },
    );
    let seg_path = tmp.path().join("seg.dcm");
    let (_, outcome) = segment_ok(&dir, &seg_path);
    assert_eq!(outcome.slices, slices);
    let case = "coronal, InstanceNumber reversed";
    assert_scores(case, &seg_path, &s.truth_path, MIN_DICE);
    let seg = read_seg(&seg_path).unwrap();
    assert_frames_on_sources(case, &seg, &dir, &phases(&s)[0].series_uid, slices);
}

/// A tiny deterministic generator (SplitMix64) for file names and order.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

#[test]
fn shuffled_files_with_random_names_change_nothing() {
    let (slices, size) = (24, 96);
    let tmp = tempfile::tempdir().unwrap();
    let original = tmp.path().join("study");
    let s = study_with(
        &original,
        DceParams {
            orientation: Orientation::Oblique,
            reverse: true,
            slices,
            size,
            seed: 23,
            ..DceParams::default()
        },
    );
    // Every file of every series, flat in one folder, in random order under random names
    // (the folder walk sorts by name, so the names decide the order the planner sees).
    let shuffled = tmp.path().join("shuffled");
    std::fs::create_dir(&shuffled).unwrap();
    let mut files = s.files.clone();
    let mut rng = Rng(0x5EED_F11E);
    rng.shuffle(&mut files);
    for file in &files {
        let name = format!("{:016x}", rng.next());
        std::fs::copy(file, shuffled.join(name)).unwrap();
    }
    let seg_path = tmp.path().join("seg.dcm");
    let (_, outcome) = segment_ok(&shuffled, &seg_path);
    assert_eq!(outcome.slices, slices);
    let case = "oblique, reversed, shuffled random file names";
    assert_scores(case, &seg_path, &s.truth_path, MIN_DICE);
    let seg = read_seg(&seg_path).unwrap();
    assert_frames_on_sources(case, &seg, &shuffled, &phases(&s)[0].series_uid, slices);
}

// ---------------------------------------------------------------------------------------
// 3. Header and references
// ---------------------------------------------------------------------------------------

#[test]
fn seg_references_the_reference_phase_names_the_others_and_copies_source_geometry() {
    // 98 x 98 = 9604 pixels a frame, not a multiple of 8: frames straddle bytes, so a
    // packing error would also misplace every later frame for highdicom.
    let (slices, size) = (27, 98);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("study");
    let s = study(&dir, Orientation::Oblique, slices, size, 5);
    assert!(
        s.series.iter().any(|x| x.temporal_position.is_none()),
        "the study has a localizer to ignore"
    );
    let seg_path = tmp.path().join("seg.dcm");
    let (job, _) = segment_ok(&dir, &seg_path);
    let case = "oblique 27x98x98";
    assert_header_and_references(case, &seg_path, &s, &job, slices, size);
    let hd = highdicom_scores(&seg_path, &s.truth_path);
    let hd_series: Vec<&str> = hd["referenced_series"]
        .as_array()
        .expect("referenced_series")
        .iter()
        .map(|r| r["series_instance_uid"].as_str().expect("uid"))
        .collect();
    assert_eq!(
        hd_series,
        [phases(&s)[0].series_uid.as_str()],
        "highdicom sees the same ReferencedSeriesSequence: the reference phase"
    );
    assert_eq!(u64_of(&hd, "frames") as usize, slices);
    assert_eq!(
        (
            u64_of(&hd, "rows") as usize,
            u64_of(&hd, "columns") as usize
        ),
        (size, size)
    );
    assert_scores(case, &seg_path, &s.truth_path, MIN_DICE);
    assert_dciodvfy_clean(&seg_path);
}

// ---------------------------------------------------------------------------------------
// 4. Geometry mismatches fail the job, naming the series
// ---------------------------------------------------------------------------------------

fn set_element(path: &Path, tag: dicom_core::Tag, vr: VR, value: PrimitiveValue) {
    let mut obj = open_file(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    obj.put(DataElement::new(tag, vr, value));
    obj.write_to_file(path)
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

#[test]
fn phase_in_another_frame_of_reference_fails_naming_the_series() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("study");
    let s = study(&dir, Orientation::Axial, 24, 96, 3);
    let post2 = phases(&s)[2].clone();
    let other_frame = segnode::uids::new_uid();

    // The whole phase moved to another frame of reference: no geometry relates it to
    // the reference phase, so the job must refuse rather than stack it.
    for file in &post2.files {
        set_element(
            file,
            tags::FRAME_OF_REFERENCE_UID,
            VR::UI,
            PrimitiveValue::from(other_frame.as_str()),
        );
    }
    let seg_path = tmp.path().join("seg.dcm");
    let err = segment(&dir, &seg_path)
        .map(|_| ())
        .expect_err("a phase in another frame of reference must fail the job");
    eprintln!("frame of reference (whole phase): {err}");
    assert!(
        err.contains(&post2.series_uid),
        "the error must name series {}: {err}",
        post2.series_uid
    );
    assert!(
        err.contains("frame of reference"),
        "the error must say why: {err}"
    );
    assert!(
        err.contains(&other_frame),
        "the error must give the offending frame: {err}"
    );
    assert!(!seg_path.exists(), "no SEG after a failed job");

    // One slice of the phase in another frame of reference: the series itself is mixed.
    for file in &post2.files {
        set_element(
            file,
            tags::FRAME_OF_REFERENCE_UID,
            VR::UI,
            PrimitiveValue::from(s_frame(&s).as_str()),
        );
    }
    set_element(
        &post2.files[10],
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        PrimitiveValue::from(other_frame.as_str()),
    );
    let err = segment(&dir, &seg_path)
        .map(|_| ())
        .expect_err("a series mixing frames of reference must fail the job");
    eprintln!("frame of reference (one slice): {err}");
    assert!(
        err.contains(&post2.series_uid),
        "the error must name series {}: {err}",
        post2.series_uid
    );
    assert!(
        err.contains("FrameOfReferenceUID"),
        "the error must say why: {err}"
    );
    assert!(!seg_path.exists(), "no SEG after a failed job");
}

/// The study's frame of reference, from its truth.
fn s_frame(s: &SynthStudy) -> String {
    LesionTruth::load(&s.truth_path)
        .expect("truth")
        .frame_of_reference_uid
}

#[test]
fn phase_with_a_missing_slice_fails_naming_the_series() {
    let slices = 24;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("study");
    let s = study(&dir, Orientation::Sagittal, slices, 96, 4);
    let post1 = phases(&s)[1].clone();
    // Not reversed: IM0013 is the 13th slice along the normal, a middle one.
    let middle = &post1.files[12];
    std::fs::remove_file(middle).unwrap();

    // Enough slices for the planner (min_slices 16): volume assembly must find the gap.
    let seg_path = tmp.path().join("seg.dcm");
    let err = segment(&dir, &seg_path)
        .map(|_| ())
        .expect_err("a phase with a gap must fail the job");
    eprintln!("missing slice, past the planner: {err}");
    assert!(
        err.contains(&post1.series_uid),
        "the error must name series {}: {err}",
        post1.series_uid
    );
    assert!(
        err.contains("missing"),
        "the error must say a slice is missing: {err}"
    );
    assert!(
        err.contains(&format!("of {}", slices - 1)),
        "the error must count the slices received: {err}"
    );
    assert!(!seg_path.exists(), "no SEG after a failed job");

    // With min_slices = the full count, the planner refuses first (the node would wait
    // for the rest of the series); its reason names the phase and the count.
    let err = plan(&definition(slices), &dir)
        .map(|_| ())
        .expect_err("23 of 24 slices is not complete");
    eprintln!("missing slice, at the planner: {err}");
    assert!(
        err.contains(&post1.description),
        "the planner must name the series {:?}: {err}",
        post1.description
    );
    assert!(
        err.contains(&format!("{} of {slices} slices", slices - 1)),
        "the planner must say what is missing: {err}"
    );
}

// ---------------------------------------------------------------------------------------
// 5. No lesion
// ---------------------------------------------------------------------------------------

#[test]
fn study_without_enhancement_gives_an_empty_seg() {
    let (slices, size) = (24, 96);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("study");
    let s = study(&dir, Orientation::Axial, slices, size, 9);
    // The synthetic study always has a lesion; take its enhancement away by giving every
    // post-contrast slice the pre-contrast pixels of the same position.
    let phases = phases(&s);
    let pre_by_position: HashMap<Vec<String>, PathBuf> = phases[0]
        .files
        .iter()
        .map(|f| {
            let obj = OpenFileOptions::new()
                .read_until(tags::PIXEL_DATA)
                .open_file(f)
                .unwrap();
            (strs(&obj, tags::IMAGE_POSITION_PATIENT), f.clone())
        })
        .collect();
    for phase in &phases[1..] {
        for file in &phase.files {
            let mut obj = open_file(file).unwrap();
            let pre =
                open_file(&pre_by_position[&strs(&obj, tags::IMAGE_POSITION_PATIENT)]).unwrap();
            obj.put(pre.element(tags::PIXEL_DATA).unwrap().clone());
            obj.write_to_file(file).unwrap();
        }
    }
    let seg_path = tmp.path().join("seg.dcm");
    let (_, outcome) = segment_ok(&dir, &seg_path);
    eprintln!("no enhancement: findings {:?}", outcome.findings);
    assert_eq!(outcome.findings.len(), 1);
    let f = &outcome.findings[0].1;
    assert_eq!(f.voxels, 0, "no enhancement, no lesion: {f:?}");
    assert!(
        f.volume_ml == Some(0.0) && f.fraction_percent == 0.0,
        "{f:?}"
    );

    let seg = read_seg(&seg_path).unwrap();
    assert_eq!(
        seg.frames.len(),
        slices,
        "empty frames are kept: one per source slice"
    );
    assert!(
        seg.frames.iter().all(|fr| fr.pixels.iter().all(|&p| !p)),
        "every frame is empty"
    );
    assert_frames_on_sources("no enhancement", &seg, &dir, &phases[0].series_uid, slices);
    assert_dciodvfy_clean(&seg_path);

    let ours = evaluate_file(&seg_path, &s.truth_path, 1).unwrap();
    let hd = highdicom_scores(&seg_path, &s.truth_path);
    eprintln!(
        "DICE no enhancement: segnode {:.6}, highdicom {:.6}",
        ours.dice,
        f64_of(&hd, "dice")
    );
    assert_eq!((ours.seg_voxels, u64_of(&hd, "seg_voxels")), (0, 0));
    assert!(
        ours.dice == 0.0 && f64_of(&hd, "dice") == 0.0,
        "{ours:?} / {hd}"
    );
    assert_eq!(u64_of(&hd, "truth_voxels_on_frames"), ours.truth_voxels);
}

//! Black-box tests of the generator: everything is checked on the files as a DICOM
//! reader sees them, not on internal state.

use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_object::open_file;

use super::test_attrs::{floats, int, text};
use super::*;
use crate::uids;

fn small(orientation: Orientation, reverse: bool, seed: u64) -> DceParams {
    DceParams {
        orientation,
        reverse,
        slices: 16,
        size: 64,
        seed,
        with_localizer: true,
        ..DceParams::default()
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn cross(a: &[f64], b: &[f64]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// One image as a reader sees it.
struct Slice {
    ipp: Vec<f64>,
    iop: Vec<f64>,
    spacing: Vec<f64>,
    rows: usize,
    cols: usize,
    instance: i64,
    pixels: Vec<u16>,
}

impl Slice {
    fn read(path: &Path) -> Self {
        let obj = open_file(path).unwrap();
        let bytes = obj
            .element(tags::PIXEL_DATA)
            .unwrap()
            .to_bytes()
            .unwrap()
            .into_owned();
        Slice {
            ipp: floats(&obj, tags::IMAGE_POSITION_PATIENT),
            iop: floats(&obj, tags::IMAGE_ORIENTATION_PATIENT),
            spacing: floats(&obj, tags::PIXEL_SPACING),
            rows: int(&obj, tags::ROWS) as usize,
            cols: int(&obj, tags::COLUMNS) as usize,
            instance: int(&obj, tags::INSTANCE_NUMBER),
            pixels: bytes
                .chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
                .collect(),
        }
    }

    fn normal(&self) -> [f64; 3] {
        cross(&self.iop[0..3], &self.iop[3..6])
    }

    /// Voxel centre as a reader computes it: IPP + c·Δc·row + r·Δr·col.
    fn centre(&self, r: usize, c: usize) -> [f64; 3] {
        let (dc, dr) = (c as f64 * self.spacing[1], r as f64 * self.spacing[0]);
        [0, 1, 2].map(|a| self.ipp[a] + dc * self.iop[a] + dr * self.iop[3 + a])
    }
}

/// The slices of one series sorted by position along the normal.
fn read_sorted(files: &[PathBuf]) -> Vec<Slice> {
    let mut slices: Vec<Slice> = files.iter().map(|f| Slice::read(f)).collect();
    let n = slices[0].normal();
    slices.sort_by(|a, b| dot(&a.ipp, &n).total_cmp(&dot(&b.ipp, &n)));
    slices
}

fn dce(study: &SynthStudy, phase: u32) -> &SynthSeries {
    study
        .series
        .iter()
        .find(|s| s.temporal_position == Some(phase))
        .unwrap()
}

fn seconds(tm: &str) -> i64 {
    let n: i64 = tm[..6].parse().unwrap();
    n / 10000 * 3600 + n / 100 % 100 * 60 + n % 100
}

#[test]
fn dce_study_has_scanner_tags_and_layout() {
    let dir = tempfile::tempdir().unwrap();
    let study = write_dce_study(dir.path(), &small(Orientation::Axial, false, 1)).unwrap();
    assert_eq!(study.series.len(), 5);
    assert_eq!(study.files.len(), 3 + 4 * 16);
    assert_eq!(study.truth_path, dir.path().join("truth.toml"));
    let numbers: Vec<i32> = study.series.iter().map(|s| s.series_number).collect();
    assert_eq!(numbers, [1, 5, 6, 7, 8]);
    assert_eq!(
        dce(&study, 1).files[0],
        dir.path().join("5_dce_pre/IM0001.dcm")
    );
    assert_eq!(
        dce(&study, 4).files[15],
        dir.path().join("8_dce_post3/IM0016.dcm")
    );

    let mut frame_uid = None;
    let mut last_time = None;
    for (phase, desc) in (1..=4).zip([
        "Ax Vibrant DCE pre",
        "Ax Vibrant DCE post 1",
        "Ax Vibrant DCE post 2",
        "Ax Vibrant DCE post 3",
    ]) {
        let series = dce(&study, phase);
        assert_eq!(series.description, desc);
        assert_eq!(series.files.len(), 16);
        for file in &series.files {
            let obj = open_file(file).unwrap();
            assert_eq!(
                obj.meta().transfer_syntax().trim_end_matches('\0'),
                uids::EXPLICIT_VR_LE
            );
            assert_eq!(
                obj.meta().implementation_class_uid().trim_end_matches('\0'),
                uids::IMPLEMENTATION_CLASS_UID
            );
            assert_eq!(text(&obj, tags::SOP_CLASS_UID), uids::MR_IMAGE_STORAGE);
            assert_eq!(
                obj.meta()
                    .media_storage_sop_instance_uid()
                    .trim_end_matches('\0'),
                text(&obj, tags::SOP_INSTANCE_UID)
            );
            assert_eq!(text(&obj, tags::STUDY_INSTANCE_UID), study.study_uid);
            assert_eq!(text(&obj, tags::SERIES_INSTANCE_UID), series.series_uid);
            assert_eq!(text(&obj, tags::SERIES_DESCRIPTION), desc);
            assert_eq!(text(&obj, tags::MODALITY), "MR");
            assert_eq!(text(&obj, tags::PATIENT_NAME), "Synthetic^Breast");
            assert_eq!(text(&obj, tags::PATIENT_ID), study.patient_id);
            assert_eq!(text(&obj, tags::PATIENT_SEX), "F");
            assert_eq!(text(&obj, tags::STUDY_DESCRIPTION), "MR BREAST DCE");
            assert_eq!(text(&obj, tags::MANUFACTURER), "segnode synth");
            assert_eq!(text(&obj, tags::IMAGE_TYPE), "ORIGINAL\\PRIMARY\\OTHER");
            assert_eq!(text(&obj, tags::SCANNING_SEQUENCE), "GR");
            assert_eq!(text(&obj, tags::MR_ACQUISITION_TYPE), "3D");
            assert_eq!(text(&obj, tags::PHOTOMETRIC_INTERPRETATION), "MONOCHROME2");
            assert!(!text(&obj, tags::ACCESSION_NUMBER).is_empty());
            assert!(obj.element(tags::POSITION_REFERENCE_INDICATOR).is_ok());
            assert!([1.5, 3.0].contains(&floats(&obj, tags::MAGNETIC_FIELD_STRENGTH)[0]));
            for (tag, value) in [
                (tags::BITS_ALLOCATED, 16),
                (tags::BITS_STORED, 12),
                (tags::HIGH_BIT, 11),
                (tags::PIXEL_REPRESENTATION, 0),
                (tags::SAMPLES_PER_PIXEL, 1),
                (tags::ROWS, 64),
                (tags::COLUMNS, 64),
            ] {
                assert_eq!(int(&obj, tag), value, "{tag}");
            }
            assert_eq!(
                int(&obj, tags::SERIES_NUMBER),
                i64::from(series.series_number)
            );
            assert_eq!(
                int(&obj, tags::TEMPORAL_POSITION_IDENTIFIER),
                i64::from(phase)
            );
            assert_eq!(int(&obj, tags::NUMBER_OF_TEMPORAL_POSITIONS), 4);
            assert_eq!(floats(&obj, tags::SLICE_THICKNESS), [1.5]);
            assert_eq!(floats(&obj, tags::SPACING_BETWEEN_SLICES), [1.5]);
            assert_eq!(obj.element(tags::CONTRAST_BOLUS_AGENT).is_ok(), phase > 1);
            let for_uid = text(&obj, tags::FRAME_OF_REFERENCE_UID);
            assert_eq!(frame_uid.get_or_insert(for_uid.clone()), &for_uid);
            assert_eq!(
                obj.element(tags::PIXEL_DATA)
                    .unwrap()
                    .to_bytes()
                    .unwrap()
                    .len(),
                64 * 64 * 2
            );
        }
        let obj = open_file(&series.files[0]).unwrap();
        let t = seconds(&text(&obj, tags::ACQUISITION_TIME));
        assert_eq!(t, seconds(&text(&obj, tags::SERIES_TIME)));
        if let Some(prev) = last_time {
            assert!(
                (60..=90).contains(&(t - prev)),
                "phases {} s apart",
                t - prev
            );
        }
        last_time = Some(t);
    }
}

#[test]
fn pixels_decode_with_dicom_pixeldata() {
    use dicom_pixeldata::PixelDecoder;
    let dir = tempfile::tempdir().unwrap();
    let files = write_mr_series(dir.path(), 1, 32, 32, 4).unwrap();
    let obj = open_file(&files[0]).unwrap();
    let values: Vec<u16> = obj.decode_pixel_data().unwrap().to_vec().unwrap();
    assert_eq!(values, Slice::read(&files[0]).pixels);
    assert!(values.iter().all(|&v| v <= 4095));
    assert!(
        values.iter().any(|&v| v > 150),
        "the image has tissue, not only noise"
    );
}

#[test]
fn localizer_is_three_planes_in_the_same_frame() {
    let dir = tempfile::tempdir().unwrap();
    let study = write_dce_study(dir.path(), &small(Orientation::Sagittal, false, 2)).unwrap();
    let loc = &study.series[0];
    assert_eq!(
        (
            loc.description.as_str(),
            loc.series_number,
            loc.temporal_position
        ),
        ("3-plane loc", 1, None)
    );
    assert_eq!(loc.files.len(), 3);
    let for_dce = text(
        &open_file(&dce(&study, 1).files[0]).unwrap(),
        tags::FRAME_OF_REFERENCE_UID,
    );
    let mut iops = Vec::new();
    for f in &loc.files {
        let obj = open_file(f).unwrap();
        assert_eq!(text(&obj, tags::SERIES_DESCRIPTION), "3-plane loc");
        assert!(obj.element(tags::TEMPORAL_POSITION_IDENTIFIER).is_err());
        assert_eq!(text(&obj, tags::FRAME_OF_REFERENCE_UID), for_dce);
        iops.push(text(&obj, tags::IMAGE_ORIENTATION_PATIENT));
    }
    iops.dedup();
    assert_eq!(iops.len(), 3, "{iops:?}");

    let none = write_dce_study(
        &dir.path().join("noloc"),
        &DceParams {
            with_localizer: false,
            ..small(Orientation::Axial, false, 2)
        },
    )
    .unwrap();
    assert_eq!(none.series.len(), 4);
    assert!(none.series.iter().all(|s| s.temporal_position.is_some()));
}

#[test]
fn slices_step_by_spacing_along_the_normal_in_every_orientation() {
    let expected_iop: [(Orientation, Option<[f64; 6]>); 4] = [
        (Orientation::Axial, Some([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])),
        (Orientation::Sagittal, Some([0.0, 1.0, 0.0, 0.0, 0.0, -1.0])),
        (Orientation::Coronal, Some([1.0, 0.0, 0.0, 0.0, 0.0, -1.0])),
        (Orientation::Oblique, None),
    ];
    for (orientation, iop) in expected_iop {
        let dir = tempfile::tempdir().unwrap();
        let study = write_dce_study(dir.path(), &small(orientation, false, 3)).unwrap();
        let phases: Vec<Vec<Slice>> = (1..=4)
            .map(|p| read_sorted(&dce(&study, p).files))
            .collect();
        let first = &phases[0][0];
        if let Some(iop) = iop {
            assert_eq!(first.iop, iop, "{orientation}");
        }
        let n = first.normal();
        for w in phases[0].windows(2) {
            let d: Vec<f64> = (0..3).map(|a| w[1].ipp[a] - w[0].ipp[a]).collect();
            for a in 0..3 {
                assert!(
                    (d[a] - 1.5 * n[a]).abs() < 1e-5,
                    "{orientation}: step {d:?} vs normal {n:?}"
                );
            }
        }
        // Same geometry in every phase; the volume centred near the patient origin.
        for phase in &phases[1..] {
            for (a, b) in phase.iter().zip(&phases[0]) {
                assert_eq!((&a.ipp, &a.iop, &a.spacing), (&b.ipp, &b.iop, &b.spacing));
            }
        }
        let mid = phases[0][8].centre(32, 32);
        assert!(
            mid.iter().all(|v| v.abs() < 30.0),
            "{orientation}: centre {mid:?}"
        );
    }
}

#[test]
fn oblique_orientation_is_orthonormal_and_oblique() {
    let dir = tempfile::tempdir().unwrap();
    let study = write_dce_study(dir.path(), &small(Orientation::Oblique, false, 4)).unwrap();
    let s = Slice::read(&dce(&study, 1).files[0]);
    let (row, col) = (&s.iop[0..3], &s.iop[3..6]);
    assert!((dot(row, row) - 1.0).abs() < 1e-9);
    assert!((dot(col, col) - 1.0).abs() < 1e-9);
    assert!(dot(row, col).abs() < 1e-9);
    let n = s.normal();
    let tilt = n[2].acos().to_degrees();
    assert!(
        (15.0..30.0).contains(&tilt),
        "normal {n:?} tilted {tilt}° from the axial normal"
    );
    assert!(
        s.iop
            .iter()
            .filter(|v| v.abs() > 1e-3 && (v.abs() - 1.0).abs() > 1e-3)
            .count()
            >= 3,
        "double oblique: {:?}",
        s.iop
    );
}

#[test]
fn reverse_numbers_instances_against_position() {
    for reverse in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let study = write_dce_study(dir.path(), &small(Orientation::Coronal, reverse, 5)).unwrap();
        for phase in 1..=4 {
            let sorted = read_sorted(&dce(&study, phase).files);
            let numbers: Vec<i64> = sorted.iter().map(|s| s.instance).collect();
            let ascending: Vec<i64> = (1..=16).collect();
            let descending: Vec<i64> = (1..=16).rev().collect();
            assert_eq!(
                numbers,
                if reverse { descending } else { ascending },
                "reverse = {reverse}"
            );
            // File names follow InstanceNumber.
            assert_eq!(Slice::read(&dce(&study, phase).files[0]).instance, 1);
        }
    }
}

/// The heart of the generator: the rendered lesion is exactly the truth ellipsoid, it
/// enhances > 100 % while the background enhances < 20 %, with washout at the end.
#[test]
fn lesion_matches_truth_and_has_type_three_kinetics() {
    for orientation in Orientation::ALL {
        let dir = tempfile::tempdir().unwrap();
        let study = write_dce_study(
            dir.path(),
            &small(orientation, orientation == Orientation::Sagittal, 6),
        )
        .unwrap();
        let truth = LesionTruth::load(&study.truth_path).unwrap();
        let phases: Vec<Vec<Slice>> = (1..=4)
            .map(|p| read_sorted(&dce(&study, p).files))
            .collect();
        let mut sum = [[0.0f64; 4]; 2]; // [lesion, tissue][phase]
        let mut count = [0u64; 2];
        let mut mismatches = 0;
        for k in 0..phases[0].len() {
            let pre = &phases[0][k];
            for r in 0..pre.rows {
                for c in 0..pre.cols {
                    let i = r * pre.cols + c;
                    let inside = truth.contains(pre.centre(r, c));
                    // A perfect kinetic segmentation: subtraction post 1 − pre.
                    let subtraction = f64::from(phases[1][k].pixels[i]) - f64::from(pre.pixels[i]);
                    mismatches += usize::from(inside != (subtraction > 250.0));
                    let class = if inside {
                        0
                    } else if pre.pixels[i] > 150 {
                        1
                    } else {
                        continue;
                    };
                    count[class] += 1;
                    for (p, phase) in phases.iter().enumerate() {
                        sum[class][p] += f64::from(phase[k].pixels[i]);
                    }
                }
            }
        }
        assert_eq!(
            mismatches, 0,
            "{orientation}: subtraction mask differs from truth"
        );
        assert_eq!(count[0], truth.voxel_count, "{orientation}");
        assert!(
            count[0] >= 200,
            "{orientation}: lesion only {} voxels",
            count[0]
        );
        assert!(count[1] > 10 * count[0], "{orientation}: too little tissue");
        let mean = |class: usize, p: usize| sum[class][p] / count[class] as f64;
        let lesion_enh = mean(0, 1) / mean(0, 0) - 1.0;
        let tissue_enh = mean(1, 1) / mean(1, 0) - 1.0;
        assert!(
            lesion_enh > 1.0,
            "{orientation}: lesion enhances {lesion_enh}"
        );
        assert!(
            tissue_enh < 0.2,
            "{orientation}: background enhances {tissue_enh}"
        );
        let (shell_sum, shell_n) = shell_pre_contrast(&truth, &phases[0]);
        let surrounding = shell_sum / shell_n as f64;
        eprintln!(
            "{orientation}: lesion {} voxels, pre {:.0} vs surrounding {surrounding:.0}, enhancement {lesion_enh:.2} vs {tissue_enh:.3}",
            count[0],
            mean(0, 0)
        );
        let similarity = mean(0, 0) / surrounding;
        assert!(
            (0.67..1.5).contains(&similarity),
            "{orientation}: pre-contrast lesion / surrounding tissue = {similarity}"
        );
        assert!(
            mean(0, 2) <= mean(0, 1) && mean(0, 3) < 0.9 * mean(0, 1),
            "{orientation}: no washout"
        );
    }
}

/// Sum and count of pre-contrast tissue pixels in a shell around the lesion (inside the
/// ellipsoid scaled by 1.6, outside the lesion).
fn shell_pre_contrast(truth: &LesionTruth, pre: &[Slice]) -> (f64, u64) {
    let grown = LesionTruth {
        radii_mm: truth.radii_mm.map(|r| r * 1.6),
        ..truth.clone()
    };
    let (mut sum, mut n) = (0.0, 0);
    for s in pre {
        for r in 0..s.rows {
            for c in 0..s.cols {
                let p = s.centre(r, c);
                let v = s.pixels[r * s.cols + c];
                if grown.contains(p) && !truth.contains(p) && v > 150 {
                    sum += f64::from(v);
                    n += 1;
                }
            }
        }
    }
    (sum, n)
}

#[test]
fn truth_round_trips_and_is_a_function_of_the_seed() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_dce_study(
        &dir.path().join("a"),
        &small(Orientation::Oblique, false, 7),
    )
    .unwrap();
    let b = write_dce_study(
        &dir.path().join("b"),
        &small(Orientation::Oblique, false, 7),
    )
    .unwrap();
    let ta = LesionTruth::load(&a.truth_path).unwrap();
    let tb = LesionTruth::load(&b.truth_path).unwrap();
    assert_eq!(ta.study_uid, a.study_uid);
    assert_ne!(a.study_uid, b.study_uid, "UIDs are fresh on every run");
    assert_eq!(
        (ta.centre_mm, ta.radii_mm, ta.axes, ta.voxel_count),
        (tb.centre_mm, tb.radii_mm, tb.axes, tb.voxel_count)
    );
    assert_eq!(
        Slice::read(&a.files[10]).pixels,
        Slice::read(&b.files[10]).pixels,
        "same seed, same pixels"
    );
    for axis in &ta.axes {
        assert!((dot(axis, axis) - 1.0).abs() < 1e-9);
    }
    assert!(ta.enhancement[1] > 1.0 && ta.enhancement[0] == 0.0);

    let copy = dir.path().join("copy.toml");
    ta.save(&copy).unwrap();
    assert_eq!(LesionTruth::load(&copy).unwrap(), ta);
    assert!(ta.contains(ta.centre_mm));
    let outside = [0, 1, 2].map(|i| ta.centre_mm[i] + 1.01 * ta.radii_mm[0] * ta.axes[0][i]);
    assert!(!ta.contains(outside));

    let other = write_dce_study(
        &dir.path().join("c"),
        &small(Orientation::Oblique, false, 8),
    )
    .unwrap();
    assert_ne!(
        LesionTruth::load(&other.truth_path).unwrap().centre_mm,
        ta.centre_mm
    );
    std::fs::write(&copy, "centre_mm = 3").unwrap();
    assert!(matches!(
        LesionTruth::load(&copy),
        Err(SynthError::TruthParse { .. })
    ));
}

#[test]
fn plain_series_supports_non_square_images() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_mr_series(dir.path(), 3, 48, 80, 9).unwrap();
    assert_eq!(
        files,
        (1..=3)
            .map(|n| dir.path().join(format!("IM{n:04}.dcm")))
            .collect::<Vec<_>>()
    );
    let mut series_uid = None;
    for f in &files {
        let obj = open_file(f).unwrap();
        assert_eq!((int(&obj, tags::ROWS), int(&obj, tags::COLUMNS)), (48, 80));
        assert_eq!(text(&obj, tags::SOP_CLASS_UID), uids::MR_IMAGE_STORAGE);
        let uid = text(&obj, tags::SERIES_INSTANCE_UID);
        assert_eq!(series_uid.get_or_insert(uid.clone()), &uid);
        assert_eq!(Slice::read(f).pixels.len(), 48 * 80);
    }
    assert!(write_mr_series(dir.path(), 0, 8, 8, 1).is_err());
}

#[test]
fn errors_can_cross_threads_and_reach_clap() {
    fn assert_error<E: std::error::Error + Send + Sync + 'static>() {}
    assert_error::<SynthError>();
}

#[test]
fn orientation_parses_and_prints() {
    for o in Orientation::ALL {
        assert_eq!(o.to_string().parse::<Orientation>().unwrap(), o);
    }
    assert_eq!("SAG".parse::<Orientation>().unwrap(), Orientation::Sagittal);
    assert!(matches!(
        "diagonal".parse::<Orientation>(),
        Err(SynthError::UnknownOrientation(_))
    ));
}

#[test]
fn bad_parameters_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let err = write_dce_study(
        dir.path(),
        &DceParams {
            slices: 4,
            ..DceParams::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("slices"), "{err}");
    assert!(
        write_dce_study(
            dir.path(),
            &DceParams {
                pixel_spacing_mm: 0.0,
                ..DceParams::default()
            }
        )
        .is_err()
    );
    let d = DceParams::default();
    assert_eq!(
        (
            d.orientation,
            d.reverse,
            d.slices,
            d.size,
            d.seed,
            d.with_localizer
        ),
        (Orientation::Axial, false, 128, 256, 1, true)
    );
}

/// Generation speed of the benchmark-sized study; run with
/// `cargo test --release --lib synth::tests::benchmark_study -- --ignored --nocapture`.
#[test]
#[ignore]
fn benchmark_study() {
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let study = write_dce_study(dir.path(), &DceParams::default()).unwrap();
    let elapsed = started.elapsed();
    println!("{} files in {:.2?}", study.files.len(), elapsed);
    let truth = LesionTruth::load(&study.truth_path).unwrap();
    println!(
        "lesion {} voxels, radii {:?} mm",
        truth.voxel_count, truth.radii_mm
    );
}

//! Black-box geometry tests of volume assembly: real DICOM files on disk (from the
//! synthetic study generator, or written here when a test needs a particular grid or
//! intensity), loaded with `load_series` and stacked with `stack_channels`.
//!
//! The timing benchmark at the end is `#[ignore]`d; run it with
//! `cargo test --release --test volume_geometry -- --ignored --nocapture`.

use std::path::{Path, PathBuf};

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use dicom_pixeldata::PixelDecoder;
use ndarray::{Array4, Axis, s};
use segnode::pipeline::volume::{SeriesVolume, VolumeError, load_series, stack_channels};
use segnode::synth::{DceParams, Orientation, write_dce_study};
use segnode::uids;

fn small_study(dir: &Path, orientation: Orientation, reverse: bool) -> segnode::synth::SynthStudy {
    let params = DceParams {
        orientation,
        reverse,
        slices: 12,
        size: 32,
        seed: 7,
        with_localizer: false,
        ..DceParams::default()
    };
    write_dce_study(dir, &params).expect("synthetic study")
}

/// A fixed pseudo-random permutation (Fisher–Yates with an LCG), so "arrival order" is
/// neither InstanceNumber nor position order.
fn shuffled(files: &[PathBuf], seed: u64) -> Vec<PathBuf> {
    let mut out = files.to_vec();
    let mut state = seed;
    for i in (1..out.len()).rev() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.swap(i, (state >> 33) as usize % (i + 1));
    }
    out
}

fn numbers(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Vec<f64> {
    obj.element(tag)
        .unwrap()
        .to_multi_str()
        .unwrap()
        .iter()
        .map(|v| v.trim().parse().unwrap())
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// IPP, SOP Instance UID and decoded (rescaled) pixels of one file, read independently of
/// the code under test.
fn read_file(path: &Path) -> (Vec<f64>, String, Vec<f32>) {
    let obj = dicom_object::open_file(path).unwrap();
    let pixels = obj.decode_pixel_data().unwrap().to_vec::<f32>().unwrap();
    let ipp = numbers(&obj, tags::IMAGE_POSITION_PATIENT);
    let sop = obj
        .element(tags::SOP_INSTANCE_UID)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches('\0')
        .to_string();
    (ipp, sop, pixels)
}

#[test]
fn slices_are_ordered_by_position_along_the_normal() {
    for orientation in [
        Orientation::Axial,
        Orientation::Sagittal,
        Orientation::Oblique,
    ] {
        for reverse in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let study = small_study(dir.path(), orientation, reverse);
            let series = &study.series[0];
            let files = shuffled(&series.files, 42);
            let volume = load_series(&files).unwrap();
            let case = format!("{orientation} reverse={reverse}");
            assert_eq!(volume.voxels.shape(), &[12, 32, 32], "{case}");
            assert_eq!(volume.grid.shape, [12, 32, 32], "{case}");
            assert_eq!(volume.series_uid, series.series_uid, "{case}");
            assert_eq!(volume.geometry.slices.len(), 12, "{case}");

            let first = dicom_object::open_file(&files[0]).unwrap();
            let iop = numbers(&first, tags::IMAGE_ORIENTATION_PATIENT);
            assert!(
                dot(&iop[0..3], &volume.grid.row_dir) > 0.999_999,
                "{case}: row direction"
            );
            assert!(
                dot(&iop[3..6], &volume.grid.col_dir) > 0.999_999,
                "{case}: column direction"
            );
            let normal = volume.grid.normal;

            let read: Vec<_> = files.iter().map(|f| read_file(f)).collect();
            let min_along_normal = read
                .iter()
                .map(|(ipp, ..)| dot(ipp, &normal))
                .fold(f64::INFINITY, f64::min);
            assert!(
                (dot(&volume.grid.origin, &normal) - min_along_normal).abs() < 1e-9,
                "{case}: first slice is the minimum"
            );

            for (ipp, sop, pixels) in &read {
                let k = ((dot(ipp, &normal) - min_along_normal) / volume.grid.spacing[0]).round()
                    as usize;
                let at = volume.grid.voxel_to_patient([k as f64, 0.0, 0.0]);
                assert!(
                    (0..3).all(|a| (at[a] - ipp[a]).abs() < 1e-4),
                    "{case}: slice {k} at {at:?}, file at {ipp:?}"
                );
                assert_eq!(
                    &volume.geometry.slices[k].sop_instance_uid, sop,
                    "{case}: geometry slice {k}"
                );
                let slice = volume.voxels.index_axis(Axis(0), k);
                assert_eq!(
                    slice.iter().copied().collect::<Vec<f32>>(),
                    *pixels,
                    "{case}: voxels of slice {k}"
                );
            }
            // InstanceNumber runs against the normal when reversed: the volume must not care.
            let positions: Vec<f64> = series
                .files
                .iter()
                .map(|f| dot(&read_file(f).0, &normal))
                .collect();
            assert_eq!(
                positions[0] > positions[11],
                reverse,
                "{case}: synth wrote InstanceNumber as asked"
            );
        }
    }
}

#[test]
fn a_missing_middle_slice_is_an_error_naming_the_series() {
    let dir = tempfile::tempdir().unwrap();
    let study = small_study(dir.path(), Orientation::Oblique, true);
    let series = &study.series[1];
    let normal = load_series(&series.files).unwrap().grid.normal;
    let mut by_position = series.files.clone();
    by_position
        .sort_by(|a, b| dot(&read_file(a).0, &normal).total_cmp(&dot(&read_file(b).0, &normal)));
    let mut files: Vec<PathBuf> = by_position.clone();
    files.remove(5);
    let err = load_series(&shuffled(&files, 3)).unwrap_err();
    match &err {
        VolumeError::SliceGap {
            series: uid,
            expected_mm,
            found_mm,
            after,
            slices,
            ..
        } => {
            assert_eq!(uid, &series.series_uid);
            assert!((expected_mm - 1.5).abs() < 1e-3, "{expected_mm}");
            assert!((found_mm - 3.0).abs() < 1e-3, "{found_mm}");
            assert_eq!((*after, *slices), (5, 11));
        }
        other => panic!("expected a slice gap, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains(&series.series_uid) && message.contains("missing"),
        "{message}"
    );

    // The first or last slice missing is a shorter, still regular volume.
    assert_eq!(load_series(&by_position[1..]).unwrap().grid.shape[0], 11);
}

#[test]
fn duplicate_positions_and_mixed_series_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let study = small_study(dir.path(), Orientation::Axial, false);
    let series = &study.series[0];
    // Same position, another SOP instance: a repeated acquisition of one slice.
    let copy = dir.path().join("dup.dcm");
    rewrite(&series.files[3], &copy, |obj| {
        obj.put(DataElement::new(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(uids::new_uid()),
        ));
    });
    let mut files = series.files.clone();
    files.push(copy);
    let err = load_series(&files).unwrap_err();
    assert!(
        matches!(&err, VolumeError::Geometry { series: s, .. } if *s == series.series_uid),
        "{err:?}"
    );
    assert!(err.to_string().contains("same position"), "{err}");

    let mut mixed = series.files.clone();
    mixed.push(study.series[1].files[0].clone());
    assert!(matches!(
        load_series(&mixed),
        Err(VolumeError::MixedSeries { .. })
    ));
    assert!(matches!(load_series(&[]), Err(VolumeError::NoFiles)));
}

#[test]
fn channels_in_another_frame_of_reference_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let study = small_study(dir.path(), Orientation::Axial, false);
    let other_frame = uids::new_uid();
    let moved = dir.path().join("moved");
    std::fs::create_dir(&moved).unwrap();
    let files: Vec<PathBuf> = study.series[1]
        .files
        .iter()
        .map(|f| {
            let to = moved.join(f.file_name().unwrap());
            rewrite(f, &to, |obj| {
                obj.put(DataElement::new(
                    tags::FRAME_OF_REFERENCE_UID,
                    VR::UI,
                    PrimitiveValue::from(other_frame.as_str()),
                ));
            });
            to
        })
        .collect();
    let reference = load_series(&study.series[0].files).unwrap();
    let other = load_series(&files).unwrap();
    let err = stack_channels(vec![reference.clone(), other], 0.01).unwrap_err();
    match &err {
        VolumeError::FrameOfReference {
            reference: r,
            series: s,
            series_frame,
            ..
        } => {
            assert_eq!(r, &study.series[0].series_uid);
            assert_eq!(s, &study.series[1].series_uid);
            assert_eq!(series_frame, &other_frame);
        }
        other => panic!("expected a frame-of-reference error, got {other:?}"),
    }
    assert!(err.to_string().contains(&study.series[1].series_uid));

    // The four phases of one study share the grid: stacked as they are.
    let phases: Vec<SeriesVolume> = study
        .series
        .iter()
        .map(|s| load_series(&s.files).unwrap())
        .collect();
    let expected: Vec<_> = phases.iter().map(|p| p.voxels.clone()).collect();
    let stack = stack_channels(phases, 0.01).unwrap();
    assert_eq!(stack.data.shape(), &[4, 12, 32, 32]);
    assert!(stack.channels.iter().all(|c| !c.resampled));
    for (c, voxels) in expected.iter().enumerate() {
        assert_eq!(stack.data.index_axis(Axis(0), c), voxels);
    }
}

/// Every transfer syntax DCMTK can write losslessly decodes to the same voxels as the
/// Explicit VR Little Endian original (JPEG 2000 is decoded too, but DCMTK cannot encode it).
#[test]
fn every_lossless_transfer_syntax_gives_the_same_volume() {
    let dir = tempfile::tempdir().unwrap();
    let study = small_study(dir.path(), Orientation::Sagittal, true);
    let series = &study.series[2];
    let original = load_series(&series.files).unwrap();
    let conversions: [(&str, &str, &[&str]); 6] = [
        ("implicit VR LE", "dcmconv", &["+ti"]),
        ("explicit VR BE", "dcmconv", &["+tb"]),
        ("deflated explicit VR LE", "dcmconv", &["+td"]),
        ("RLE lossless", "dcmcrle", &[]),
        ("JPEG lossless SV1", "dcmcjpeg", &["+e1"]),
        ("JPEG-LS lossless", "dcmcjpls", &["+el"]),
    ];
    for (name, tool, args) in conversions {
        let out = dir.path().join(tool).join(args.join(""));
        std::fs::create_dir_all(&out).unwrap();
        let files: Vec<PathBuf> = series
            .files
            .iter()
            .map(|f| {
                let to = out.join(f.file_name().unwrap());
                let status = std::process::Command::new(tool)
                    .args(args)
                    .arg(f)
                    .arg(&to)
                    .status()
                    .unwrap_or_else(|e| panic!("cannot run DCMTK's {tool} (install dcmtk): {e}"));
                assert!(status.success(), "{tool} failed on {}", f.display());
                to
            })
            .collect();
        let volume = load_series(&shuffled(&files, 5)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(volume.grid, original.grid, "{name}");
        assert_eq!(volume.voxels, original.voxels, "{name}");
        assert_eq!(volume.geometry, original.geometry, "{name}");
    }
}

/// A linear intensity ramp in patient coordinates.
fn ramp(p: [f64; 3]) -> f64 {
    1000.0 + 10.0 * p[0] + 6.0 * p[1] - 4.0 * p[2]
}

#[test]
fn a_half_resolution_channel_is_resampled_onto_the_reference_grid() {
    let dir = tempfile::tempdir().unwrap();
    let frame = uids::new_uid();
    let (c, s) = (0.4_f64.cos(), 0.4_f64.sin());
    // Oblique plane: rotated 0.4 rad about z, then the normal is z.
    let iop = [c, s, 0.0, -s, c, 0.0];
    let fine = SeriesSpec {
        iop,
        origin: [-20.0, 5.0, 30.0],
        slices: 10,
        size: 32,
        pixel_mm: 1.0,
        slice_mm: 2.0,
        frame: &frame,
    };
    // Half the in-plane resolution over the same field of view: the first pixel centre
    // sits half a fine pixel further along the row and column.
    let shift = [0.5 * (c - s), 0.5 * (s + c), 0.0];
    let coarse = SeriesSpec {
        origin: [
            fine.origin[0] + shift[0],
            fine.origin[1] + shift[1],
            fine.origin[2],
        ],
        size: 16,
        pixel_mm: 2.0,
        ..fine
    };
    let fine_files = write_series(&dir.path().join("fine"), &fine);
    let coarse_files = write_series(&dir.path().join("coarse"), &coarse);
    let reference = load_series(&shuffled(&fine_files, 9)).unwrap();
    let half = load_series(&coarse_files).unwrap();
    assert_eq!(half.grid.shape, [10, 16, 16]);
    let half_grid = half.grid.clone();
    let grid = reference.grid.clone();

    let stack = stack_channels(vec![reference, half], 0.01).unwrap();
    assert_eq!(stack.data.shape(), &[2, 10, 32, 32]);
    assert!(!stack.channels[0].resampled);
    assert!(stack.channels[1].resampled);
    assert!(
        stack.channels[1]
            .resample_reason
            .as_deref()
            .unwrap()
            .contains("shape")
    );
    let data: &Array4<f32> = &stack.data;
    let mut interior = 0;
    for ((k, r, col), &v) in data.index_axis(Axis(0), 1).indexed_iter() {
        let p = grid.voxel_to_patient([k as f64, r as f64, col as f64]);
        // Channel 0 is the reference as stored (ramp quantised to 0.1).
        assert!((f64::from(data[[0, k, r, col]]) - ramp(p)).abs() < 0.06);
        let q = half_grid.patient_to_voxel(p);
        if q.iter()
            .zip(half_grid.shape)
            .all(|(x, n)| (-1e-9..=n as f64 - 1.0 + 1e-9).contains(x))
        {
            interior += 1;
            assert!(
                (f64::from(v) - ramp(p)).abs() < 0.1,
                "resampled {v} vs ramp {} at {k},{r},{col}",
                ramp(p)
            );
        } else {
            // The outer half coarse pixel: inside the field of view, edge value.
            assert!(v > 0.0, "edge voxel {k},{r},{col} left empty");
        }
    }
    assert_eq!(interior, 10 * 30 * 30);
    assert_eq!(stack.reference.grid, grid);
    assert_eq!(stack.data.slice(s![1, .., 0, 0]).len(), 10);
}

/// The grid and frame of reference of a series written by [`write_series`].
#[derive(Clone, Copy)]
struct SeriesSpec<'a> {
    iop: [f64; 6],
    origin: [f64; 3],
    slices: usize,
    size: usize,
    pixel_mm: f64,
    slice_mm: f64,
    frame: &'a str,
}

/// Write a single-frame MR series whose pixel values are [`ramp`] at each pixel centre,
/// stored with RescaleSlope 0.1 and RescaleIntercept -500; files in reverse position order.
fn write_series(dir: &Path, spec: &SeriesSpec) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let (row, col) = (&spec.iop[0..3], &spec.iop[3..6]);
    let normal = [
        row[1] * col[2] - row[2] * col[1],
        row[2] * col[0] - row[0] * col[2],
        row[0] * col[1] - row[1] * col[0],
    ];
    let series_uid = uids::new_uid();
    let study_uid = uids::new_uid();
    let ds = |v: f64| format!("{v:.6}");
    (0..spec.slices)
        .rev()
        .map(|k| {
            let ipp: [f64; 3] =
                std::array::from_fn(|a| spec.origin[a] + k as f64 * spec.slice_mm * normal[a]);
            let mut pixels = Vec::with_capacity(spec.size * spec.size * 2);
            for r in 0..spec.size {
                for c in 0..spec.size {
                    let p: [f64; 3] = std::array::from_fn(|a| {
                        ipp[a]
                            + r as f64 * spec.pixel_mm * col[a]
                            + c as f64 * spec.pixel_mm * row[a]
                    });
                    let stored = ((ramp(p) + 500.0) / 0.1).round() as u16;
                    pixels.extend_from_slice(&stored.to_le_bytes());
                }
            }
            let mut o = InMemDicomObject::new_empty();
            let mut put = |tag, vr, value: PrimitiveValue| o.put(DataElement::new(tag, vr, value));
            let strs = |v: Vec<String>| PrimitiveValue::Strs(v.into());
            put(tags::SOP_CLASS_UID, VR::UI, uids::MR_IMAGE_STORAGE.into());
            put(tags::SOP_INSTANCE_UID, VR::UI, uids::new_uid().into());
            put(tags::STUDY_INSTANCE_UID, VR::UI, study_uid.as_str().into());
            put(
                tags::SERIES_INSTANCE_UID,
                VR::UI,
                series_uid.as_str().into(),
            );
            put(tags::MODALITY, VR::CS, "MR".into());
            put(
                tags::SERIES_DESCRIPTION,
                VR::LO,
                format!("ramp {} mm", spec.pixel_mm).into(),
            );
            put(tags::INSTANCE_NUMBER, VR::IS, (k + 1).to_string().into());
            put(tags::FRAME_OF_REFERENCE_UID, VR::UI, spec.frame.into());
            put(
                tags::IMAGE_POSITION_PATIENT,
                VR::DS,
                strs(ipp.iter().map(|v| ds(*v)).collect()),
            );
            put(
                tags::IMAGE_ORIENTATION_PATIENT,
                VR::DS,
                strs(spec.iop.iter().map(|v| ds(*v)).collect()),
            );
            put(
                tags::PIXEL_SPACING,
                VR::DS,
                strs(vec![ds(spec.pixel_mm), ds(spec.pixel_mm)]),
            );
            put(tags::SLICE_THICKNESS, VR::DS, ds(spec.slice_mm).into());
            put(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1_u16));
            put(
                tags::PHOTOMETRIC_INTERPRETATION,
                VR::CS,
                "MONOCHROME2".into(),
            );
            put(tags::ROWS, VR::US, PrimitiveValue::from(spec.size as u16));
            put(
                tags::COLUMNS,
                VR::US,
                PrimitiveValue::from(spec.size as u16),
            );
            put(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16_u16));
            put(tags::BITS_STORED, VR::US, PrimitiveValue::from(16_u16));
            put(tags::HIGH_BIT, VR::US, PrimitiveValue::from(15_u16));
            put(
                tags::PIXEL_REPRESENTATION,
                VR::US,
                PrimitiveValue::from(0_u16),
            );
            put(tags::RESCALE_INTERCEPT, VR::DS, "-500".into());
            put(tags::RESCALE_SLOPE, VR::DS, "0.1".into());
            put(tags::RESCALE_TYPE, VR::LO, "US".into());
            put(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U8(pixels.into()));
            let path = dir.join(format!("IM{:04}.dcm", k + 1));
            o.with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LE))
                .unwrap()
                .write_to_file(&path)
                .unwrap();
            path
        })
        .collect()
}

/// Copy a DICOM file with some attributes changed.
fn rewrite(from: &Path, to: &Path, change: impl FnOnce(&mut InMemDicomObject)) {
    let file = dicom_object::open_file(from).unwrap();
    let mut obj = file.into_inner();
    change(&mut obj);
    obj.with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LE))
        .unwrap()
        .write_to_file(to)
        .unwrap();
}

/// Full-size timings (4 x 128 x 256 x 256): load, stack, preprocess, resample, post.
#[test]
#[ignore = "benchmark; run in release with --ignored --nocapture"]
fn bench_full_size_pipeline_stages() {
    use segnode::pipeline::post::{PostStep, apply, findings, threshold};
    use segnode::pipeline::preprocess::{
        Normalisation, TargetGrid, from_model_grid, normalise, to_model_grid,
    };
    use std::time::Instant;

    let dir = tempfile::tempdir().unwrap();
    let params = DceParams {
        with_localizer: false,
        ..DceParams::default()
    };
    let study = write_dce_study(dir.path(), &params).unwrap();
    let steps = [
        PostStep::Erode {
            radius: 1,
            shape: segnode::pipeline::post::Structure::Cross,
        },
        PostStep::FillHoles,
        PostStep::KeepLargest,
        PostStep::MinComponentVoxels(50),
    ];
    // Wall and CPU time (all threads): the CPU figure is what matters on a busy machine.
    let cpu = || {
        // SAFETY: getrusage only writes into the struct it is given.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
        tv(u.ru_utime) + tv(u.ru_stime)
    };
    let start = || (Instant::now(), cpu());
    let report = |label: &str, (t, c): (Instant, f64)| {
        let wall = t.elapsed().as_secs_f64() * 1e3;
        println!(
            "{label:<44} {wall:>7.1} ms wall {:>7.1} ms cpu",
            (cpu() - c) * 1e3
        );
    };

    let t = start();
    let series: Vec<SeriesVolume> = study
        .series
        .iter()
        .map(|s| load_series(&s.files).unwrap())
        .collect();
    report("load_series x4 (Explicit VR LE, 512 files)", t);
    let t = start();
    let stack = stack_channels(series, 0.01).unwrap();
    report("stack_channels (same grid)", t);

    let mut data = stack.data.clone();
    let t = start();
    normalise(
        &mut data,
        &Normalisation::Percentile {
            low: 0.5,
            high: 99.5,
        },
    );
    report("normalise percentile (full grid)", t);
    let mut other = stack.data.clone();
    let t = start();
    normalise(&mut other, &Normalisation::ZScore);
    report("normalise zscore (full grid)", t);
    let t = start();
    normalise(&mut other, &Normalisation::VolumeMinMax);
    report("normalise volume_minmax (full grid)", t);
    drop(other);

    let t = start();
    let grid = &stack.reference.grid;
    let (model, mapping) = to_model_grid(&data, grid, &TargetGrid::Shape([96, 96, 96]));
    report("to_model_grid 4 x 96^3", t);
    let prob = model.slice(s![0..1, .., .., ..]).to_owned();
    let t = start();
    let back = from_model_grid(&prob, &mapping);
    report("from_model_grid 1 x 128x256x256", t);
    let prob = back.index_axis(Axis(0), 0).to_owned();

    let t = start();
    let mut mask = threshold(&prob, 0.7);
    report("threshold", t);
    let t = start();
    apply(&mut mask, &steps);
    report("post steps (erode 1, fill, largest, min 50)", t);
    let t = start();
    let f = findings(&mask, grid);
    report("findings", t);
    println!("{f:?}");
    // Worst case for the post steps: a mask covering half the volume.
    let mut half = threshold(&prob, 0.0);
    half.slice_mut(s![.., .., 128..]).fill(false);
    let t = start();
    apply(&mut half, &steps);
    report("the same steps on a half-volume mask", t);
}

//! Writing whole studies: the four-phase DCE study with its localizer and truth, and the
//! plain single MR series the network tests use.
//!
//! Slices are rendered and written in parallel (one slice of every phase per work item,
//! so the phase-independent anatomy is computed once per voxel); noise is seeded per
//! slice and phase, so the output does not depend on the thread count.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use super::geometry::{Grid, orientation_iop};
use super::instance::{Image, SeriesAttrs, StudyAttrs, write_instance};
use super::phantom::{PHASES, Phantom};
use super::rng::{SplitMix64, stream};
use super::{DceParams, LesionTruth, Orientation, SynthError, SynthSeries, SynthStudy};
use crate::uids;

/// Noise keys, one per kind of series, so no two series share noise.
const NOISE_DCE: u64 = 100;
const NOISE_LOCALIZER: u64 = 200;
const NOISE_PLAIN: u64 = 300;

/// Write a four-phase DCE-MRI breast study (plus an optional localizer) under `outdir`
/// as `outdir/<SeriesNumber>_<name>/IM<NNNN>.dcm`, and its ground truth as
/// `outdir/truth.toml`. Files of the same name are overwritten, so give it a new or empty
/// directory. Blocking (it uses every core for a few seconds): call it from
/// `spawn_blocking` in async code.
pub fn write_dce_study(outdir: &Path, params: &DceParams) -> Result<SynthStudy, SynthError> {
    params.validate()?;
    let mut rng = SplitMix64::new(stream(params.seed, &[0x57_0D_1E]));
    // The scanner centres the slab on the breasts, wherever the table put the patient.
    let centre = [
        rng.range(-5.0, 5.0),
        rng.range(-10.0, 10.0),
        rng.range(-20.0, 20.0),
    ];
    let grid = Grid::centred(
        orientation_iop(params.orientation),
        params.size,
        params.size,
        params.slices,
        params.pixel_spacing_mm,
        params.slice_thickness_mm,
        centre,
    );
    let phantom = Phantom::new(&grid, params.seed, true)?;
    let study = study_attrs(params.seed, &mut rng, phantom.laterality());
    create_dir(outdir)?;

    let mut series = Vec::new();
    if params.with_localizer {
        series.push(write_localizer(outdir, &study, &phantom, &grid, params)?);
    }

    // Phases 90, 75 and 75 s apart; contrast injected 45 s after the pre-contrast start.
    let start = study.study_time_s + 600;
    let offsets = [0, 90, 165, 240];
    let names = ["pre", "post 1", "post 2", "post 3"];
    let prefix = params.orientation.description_prefix();
    let mut dce: Vec<(SeriesAttrs, PathBuf)> = Vec::new();
    for ph in 0..PHASES {
        let attrs = SeriesAttrs {
            series_uid: uids::new_uid(),
            description: format!("{prefix} Vibrant DCE {}", names[ph]),
            protocol: "BREAST DCE".into(),
            series_number: 5 + ph as i32,
            series_time_s: start + offsets[ph],
            temporal: Some((ph as u32 + 1, PHASES as u32)),
            contrast_injected_s: (ph > 0).then_some(start + 45),
            acquisition_type: "3D",
            sequence_name: "vibrant3d",
            repetition_time_ms: 4.9,
            echo_time_ms: 2.1,
            flip_angle_deg: 10.0,
            scan_options: "FS",
            window: if ph == 0 {
                (600.0, 1200.0)
            } else {
                (900.0, 1800.0)
            },
        };
        let dir = outdir.join(format!(
            "{}_dce_{}",
            attrs.series_number,
            names[ph].replace(' ', "")
        ));
        create_dir(&dir)?;
        dce.push((attrs, dir));
    }
    let instance_number = |k: usize| if params.reverse { params.slices - k } else { k + 1 } as i32;
    let lesion_voxels = write_slices(
        &grid,
        &phantom,
        &study,
        &dce,
        params.slice_thickness_mm,
        NOISE_DCE,
        &instance_number,
    )?;
    for (attrs, dir) in dce {
        series.push(SynthSeries {
            files: (1..=params.slices)
                .map(|n| file_name(&dir, n as i32))
                .collect(),
            series_uid: attrs.series_uid,
            description: attrs.description,
            series_number: attrs.series_number,
            temporal_position: attrs.temporal.map(|t| t.0),
        });
    }

    let lesion = phantom.lesion.as_ref().expect("a DCE phantom has a lesion");
    let truth = LesionTruth {
        study_uid: study.study_uid.clone(),
        frame_of_reference_uid: study.frame_of_reference_uid.clone(),
        seed: params.seed,
        centre_mm: lesion.centre,
        radii_mm: lesion.radii,
        axes: lesion.axes,
        voxel_count: lesion_voxels,
        enhancement: lesion.curve.iter().map(|c| c - 1.0).collect(),
        note: format!(
            "Synthetic {} DCE breast study, {} x {}x{} per phase, seed {}. One enhancing lesion \
             (type III: strong early enhancement, washout): a voxel is lesion iff its centre \
             (patient coordinates, mm) lies inside this ellipsoid.",
            params.orientation, params.slices, params.size, params.size, params.seed
        ),
    };
    let truth_path = outdir.join("truth.toml");
    truth.save(&truth_path)?;
    Ok(SynthStudy {
        study_uid: study.study_uid,
        patient_id: study.patient_id,
        files: series
            .iter()
            .flat_map(|s| s.files.iter().cloned())
            .collect(),
        series,
        truth_path,
    })
}

/// Write one plain MR series (`slices` axial images of `rows` x `cols`, textured breast
/// anatomy, no lesion) directly into `outdir` as `IM<NNNN>.dcm`, in a new study.
pub fn write_mr_series(
    outdir: &Path,
    slices: usize,
    rows: usize,
    cols: usize,
    seed: u64,
) -> Result<Vec<PathBuf>, SynthError> {
    if slices == 0 || rows == 0 || cols == 0 || rows > u16::MAX as usize || cols > u16::MAX as usize
    {
        return Err(SynthError::InvalidParams(format!(
            "a series of {slices} slices of {rows} x {cols} cannot be written: all must be 1..=65535"
        )));
    }
    let mut rng = SplitMix64::new(stream(seed, &[0x91A1]));
    let spacing = 180.0 / rows.max(cols) as f64;
    let thickness = 3.0;
    let grid = Grid::centred(
        orientation_iop(Orientation::Axial),
        rows,
        cols,
        slices,
        spacing,
        thickness,
        [0.0; 3],
    );
    let phantom = Phantom::new(&grid, seed, false)?;
    let study = study_attrs(seed, &mut rng, phantom.laterality());
    let attrs = SeriesAttrs {
        series_uid: uids::new_uid(),
        description: "Ax T1 FSPGR".into(),
        protocol: "BREAST T1".into(),
        series_number: 3,
        series_time_s: study.study_time_s + 240,
        temporal: None,
        contrast_injected_s: None,
        acquisition_type: "2D",
        sequence_name: "efgre2d",
        repetition_time_ms: 150.0,
        echo_time_ms: 2.3,
        flip_angle_deg: 70.0,
        scan_options: "",
        window: (400.0, 800.0),
    };
    create_dir(outdir)?;
    let series = [(attrs, outdir.to_path_buf())];
    write_slices(
        &grid,
        &phantom,
        &study,
        &series,
        thickness,
        NOISE_PLAIN,
        &|k| k as i32 + 1,
    )?;
    Ok((1..=slices).map(|n| file_name(outdir, n as i32)).collect())
}

/// The 3-plane localizer: one axial, one sagittal and one coronal image through the
/// middle of the DCE volume, coarser, same frame of reference, series number 1.
fn write_localizer(
    outdir: &Path,
    study: &StudyAttrs,
    phantom: &Phantom,
    grid: &Grid,
    params: &DceParams,
) -> Result<SynthSeries, SynthError> {
    let n = (params.size / 2).max(32).min(params.size);
    let fov = params.size as f64 * params.pixel_spacing_mm;
    let (centre, _) = grid.patient_bounds();
    let attrs = SeriesAttrs {
        series_uid: uids::new_uid(),
        description: "3-plane loc".into(),
        protocol: "BREAST DCE".into(),
        series_number: 1,
        series_time_s: study.study_time_s + 60,
        temporal: None,
        contrast_injected_s: None,
        acquisition_type: "2D",
        sequence_name: "fgre",
        repetition_time_ms: 5.6,
        echo_time_ms: 1.6,
        flip_angle_deg: 30.0,
        scan_options: "",
        window: (300.0, 600.0),
    };
    let dir = outdir.join("1_localizer");
    create_dir(&dir)?;
    let mut files = Vec::new();
    for (i, o) in [
        Orientation::Axial,
        Orientation::Sagittal,
        Orientation::Coronal,
    ]
    .into_iter()
    .enumerate()
    {
        let plane = Grid::centred(orientation_iop(o), n, n, 1, fov / n as f64, 8.0, centre);
        let (mut pixels, _) = phantom.render_slice(&plane, 0, &[0], NOISE_LOCALIZER + i as u64);
        let path = file_name(&dir, i as i32 + 1);
        let image = Image {
            grid: &plane,
            k: 0,
            instance_number: i as i32 + 1,
            slice_thickness_mm: 8.0,
            pixels: pixels.remove(0),
        };
        write_instance(&path, study, &attrs, image)?;
        files.push(path);
    }
    Ok(SynthSeries {
        series_uid: attrs.series_uid,
        description: attrs.description,
        series_number: 1,
        temporal_position: None,
        files,
    })
}

/// Render every slice of `grid` for each series (series i shows phase i) and write the
/// files, in parallel. Returns the number of lesion voxels on the grid.
fn write_slices(
    grid: &Grid,
    phantom: &Phantom,
    study: &StudyAttrs,
    series: &[(SeriesAttrs, PathBuf)],
    thickness: f64,
    noise_key: u64,
    instance_number: &(dyn Fn(usize) -> i32 + Sync),
) -> Result<u64, SynthError> {
    let phases: Vec<usize> = (0..series.len()).collect();
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let lesion_voxels = AtomicU64::new(0);
    let first_error = Mutex::new(None);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(grid.slices);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= grid.slices {
                        break;
                    }
                    let (buffers, count) = phantom.render_slice(grid, k, &phases, noise_key);
                    lesion_voxels.fetch_add(count, Ordering::Relaxed);
                    for ((attrs, dir), pixels) in series.iter().zip(buffers) {
                        let number = instance_number(k);
                        let image = Image {
                            grid,
                            k,
                            instance_number: number,
                            slice_thickness_mm: thickness,
                            pixels,
                        };
                        if let Err(e) = write_instance(&file_name(dir, number), study, attrs, image)
                        {
                            failed.store(true, Ordering::Relaxed);
                            first_error
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .get_or_insert(e);
                            return;
                        }
                    }
                }
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(lesion_voxels.into_inner()),
    }
}

/// Study-level identity: fresh UIDs, seed-derived patient and scanner details.
fn study_attrs(seed: u64, rng: &mut SplitMix64, laterality: &'static str) -> StudyAttrs {
    let study_uid = uids::new_uid();
    let tail = super::instance::uid_tail(&study_uid, 10);
    StudyAttrs {
        frame_of_reference_uid: uids::new_uid(),
        patient_id: format!("SYN{:06}", seed % 1_000_000),
        accession_number: format!("A{tail}"),
        study_id: format!("{}", 1000 + seed % 9000),
        study_date: "20240315".into(),
        study_time_s: 8 * 3600 + 60 * (rng.next_u64() % 540) as u32,
        description: "MR BREAST DCE".into(),
        field_strength: if rng.next_u64().is_multiple_of(2) {
            1.5
        } else {
            3.0
        },
        laterality,
        study_uid,
    }
}

fn file_name(dir: &Path, instance_number: i32) -> PathBuf {
    dir.join(format!("IM{instance_number:04}.dcm"))
}

fn create_dir(dir: &Path) -> Result<(), SynthError> {
    std::fs::create_dir_all(dir).map_err(|source| SynthError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

//! One image job, start to finish: one instance (a single image or a cine) → luminance
//! frames → resized to the model's input → 2D model, frame by frame → masks resized back
//! onto the image's own pixels → a SEG with one frame set per source frame. Blocking.
//!
//! With `preprocess.mask_outside_regions`, pixels outside the ultrasound regions are set
//! to 0 before the model and cleared in the masks, so annotations around the sector never
//! become findings. Post-processing works on each frame as a 2D image.

use std::path::Path;

use ndarray::{Array2, Array3, ArrayView3, Axis, Zip, s};
use tracing::{info, warn};

use crate::pipeline::activation;
use crate::pipeline::image::load_image;
use crate::pipeline::job::{
    JobError, JobOutcome, LoadedPipeline, StageTimings, log_findings, seg_options, write_seg,
};
use crate::pipeline::overlay;
use crate::pipeline::post;
use crate::pipeline::preprocess::{from_model_grid, normalise, to_model_grid};
use crate::pipeline::report;
use crate::pipeline::seg::encode_seg;
use crate::pipeline::volume::{ChannelInfo, Grid};

/// Run `pipeline` (an image pipeline) on the instance at `file`; write the SEG to
/// `out_path`.
pub fn run_image_job(
    pipeline: &LoadedPipeline,
    study_uid: &str,
    file: &Path,
    out_path: &Path,
    progress: &dyn Fn(&str),
) -> Result<JobOutcome, JobError> {
    let def = &pipeline.definition;
    let mut timings = StageTimings::default();

    progress("decoding the image");
    let image = timings.time("decode", || load_image(file))?;
    let region_mask = if def.preprocess.mask_outside_regions {
        let mask = image.region_mask();
        if mask.is_none() {
            warn!(study = %study_uid, file = %file.display(), "no ultrasound regions in the image; the whole frame goes to the model");
        }
        mask
    } else {
        None
    };
    let grid = image.grid();
    let (frames, rows, columns) = image.frames.dim();
    info!(
        study = %study_uid,
        sop_instance = %image.geometry.slices[0].sop_instance_uid,
        frames, rows, columns,
        photometric = %image.photometric,
        spacing_mm = ?image.calibration.spacing_mm,
        calibration = image.calibration.source,
        regions = image.regions.len(),
        "image decoded"
    );

    // Frames go through the model a chunk at a time, so a long cine never holds more than
    // a chunk of float probabilities; the masks (1 byte a pixel) are kept whole.
    let mut masks: Vec<Array3<bool>> = Vec::new();
    let mut first = 0;
    while first < frames {
        let count = FRAMES_PER_CHUNK.min(frames - first);
        progress(&format!(
            "frames {}-{} of {frames}",
            first + 1,
            first + count
        ));
        let chunk = segment_frames(
            pipeline,
            image.frames.slice(s![first..first + count, .., ..]),
            &grid,
            region_mask.as_ref(),
            &mut timings,
        )?;
        if masks.is_empty() {
            masks = vec![Array3::from_elem((frames, rows, columns), false); chunk.len()];
        }
        for (mask, part) in masks.iter_mut().zip(chunk) {
            mask.slice_mut(s![first..first + count, .., ..])
                .assign(&part);
        }
        first += count;
    }
    let findings: Vec<_> = masks
        .iter()
        .zip(&def.output.segments)
        .map(|(mask, segment)| {
            (
                segment.label.clone(),
                post::image_findings(mask, image.pixel_area_mm2()),
            )
        })
        .collect();

    progress("encoding the SEG");
    let seg = timings.time("SEG encode", || {
        encode_seg(
            &image.header,
            &image.geometry,
            &def.segment_specs(),
            &masks,
            &seg_options(def, Vec::new()),
        )
    })?;

    progress("writing the SEG");
    let seg_sop_instance_uid = write_seg(&seg, out_path, &mut timings)?;
    log_findings(study_uid, &def.name, &findings);
    let (report, report_instances) = match &def.output.report {
        Some(config) => {
            progress("writing the measurement report");
            timings.time("report", || {
                let groups = report::measure_image(
                    config,
                    &def.segment_specs(),
                    &masks,
                    image.calibration.spacing_mm,
                );
                let inputs = report::ReportInputs::new(
                    def,
                    &image.header,
                    &image.geometry,
                    &seg,
                    config,
                    &groups,
                );
                let written = report::write_beside(&inputs, out_path)?;
                Ok::<_, JobError>((groups, vec![written]))
            })?
        }
        None => (Vec::new(), Vec::new()),
    };
    drop(seg);
    let overlay_images = if def.output.overlay {
        progress("writing the overlay series");
        timings.time("overlay", || {
            overlay::write_for_image(def, &image, &masks, out_path)
        })?
    } else {
        Vec::new()
    };
    let companions = [report_instances, overlay_images].concat();
    let series_uid = image.geometry.slices[0].series_instance_uid.clone();
    timings.merge_repeated();
    Ok(JobOutcome {
        seg_path: out_path.to_path_buf(),
        findings,
        channels: vec![ChannelInfo {
            series_uid,
            description: String::new(),
            resampled: false,
            resample_reason: None,
        }],
        slices: frames,
        rows_cols: (rows, columns),
        seg_sop_instance_uid,
        companions,
        report,
        timings,
    })
}

/// Frames of one cine the model and post-processing take at a time.
const FRAMES_PER_CHUNK: usize = 16;

/// One chunk of frames (`[frames, rows, columns]` luminance) → one mask per segment on the
/// frames' own pixels: region masking, normalisation, resizing to the model and back,
/// activation and decision, in-plane post-processing.
fn segment_frames(
    pipeline: &LoadedPipeline,
    frames: ArrayView3<f32>,
    image_grid: &Grid,
    region_mask: Option<&Array2<bool>>,
    timings: &mut StageTimings,
) -> Result<Vec<Array3<bool>>, JobError> {
    let def = &pipeline.definition;
    let grid = Grid {
        shape: [frames.shape()[0], frames.shape()[1], frames.shape()[2]],
        ..image_grid.clone()
    };
    let (model_input, mapping) = timings.time("preprocess", || {
        let mut data = frames.to_owned().insert_axis(Axis(0));
        if let Some(inside) = region_mask {
            for mut frame in data.index_axis_mut(Axis(0), 0).outer_iter_mut() {
                Zip::from(&mut frame)
                    .and(inside)
                    .for_each(|v, &keep| *v = if keep { *v } else { 0.0 });
            }
        }
        normalise(&mut data, &def.preprocess.normalisation);
        to_model_grid(&data, &grid, &def.preprocess.target)
    });
    let logits = timings.time("inference", || {
        pipeline.model.sliding_window(&model_input, &|done, total| {
            tracing::debug!(done, total, "frames inferred");
        })
    })?;
    drop(model_input);
    Ok(timings.time("post-process", || {
        activation::masks_from_logits(
            logits,
            def.model.activation,
            def.postprocess.threshold,
            |p| from_model_grid(p, &mapping),
            |mask| {
                if let Some(inside) = region_mask {
                    for mut frame in mask.outer_iter_mut() {
                        Zip::from(&mut frame)
                            .and(inside)
                            .for_each(|m, &keep| *m &= keep);
                    }
                }
                post::apply_in_plane(mask, &def.postprocess.steps);
            },
        )
    }))
}

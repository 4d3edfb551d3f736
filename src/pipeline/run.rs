//! One volume job, start to finish: the chosen series of a study → one volume → model →
//! mask on the source grid → DICOM SEG on disk (and its report and overlay when the
//! pipeline asks). Blocking (decoding, libtorch): call it from `spawn_blocking` in async
//! code. A pipeline that runs per instance goes to [`run_image`](crate::pipeline::run_image).

use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_object::OpenFileOptions;
use tracing::warn;

use crate::pipeline::activation;
use crate::pipeline::definition::JobPer;
use crate::pipeline::job::{
    JobError, JobOutcome, LoadedPipeline, StageTimings, log_findings, seg_options, write_seg,
};
use crate::pipeline::overlay;
use crate::pipeline::post;
use crate::pipeline::preprocess::{from_model_grid, normalise, to_model_grid};
use crate::pipeline::report;
use crate::pipeline::seg::{SeriesReference, encode_seg};
use crate::pipeline::volume::{load_series, stack_channels};

/// Run one job: `channels[i]` holds the files of channel i (any order). A pipeline that
/// runs per instance (2D images) gets its one file from channel 0 and runs as
/// [`run_image_job`](crate::pipeline::run_image::run_image_job).
pub fn run_job(
    pipeline: &LoadedPipeline,
    study_uid: &str,
    channels: &[(String, Vec<PathBuf>)],
    out_path: &Path,
    progress: &dyn Fn(&str),
) -> Result<JobOutcome, JobError> {
    let def = &pipeline.definition;
    let mut timings = StageTimings::default();
    for (name, files) in channels {
        if files.is_empty() {
            return Err(JobError::EmptyChannel {
                channel: name.clone(),
            });
        }
    }
    if def.inputs.job_per == JobPer::Instance {
        return crate::pipeline::run_image::run_image_job(
            pipeline,
            study_uid,
            &channels[0].1[0],
            out_path,
            progress,
        );
    }

    progress("decoding and ordering slices");
    let stack = timings.time("decode + volume", || -> Result<_, JobError> {
        let mut series = Vec::with_capacity(channels.len());
        for (_, files) in channels {
            series.push(load_series(files)?);
        }
        // Every channel is a source of the SEG; remember the other series before stacking
        // keeps only the reference series' geometry.
        let other_sources: Vec<SeriesReference> = series
            .iter()
            .skip(1)
            .map(|s| SeriesReference {
                series_instance_uid: s.series_uid.clone(),
            })
            .collect();
        Ok((
            stack_channels(series, def.preprocess.grid_tolerance_mm)?,
            other_sources,
        ))
    })?;
    let (stack, other_sources) = stack;
    for c in stack.channels.iter().filter(|c| c.resampled) {
        warn!(study = %study_uid, series = %c.series_uid, reason = c.resample_reason.as_deref().unwrap_or(""), "channel resampled onto the reference grid");
    }
    let grid = stack.reference.grid.clone();
    let geometry = stack.reference.geometry.clone();
    let channel_info = stack.channels.clone();
    let mut data = stack.data;
    // The overlay draws on the reference series' own values, which normalising rewrites.
    let overlay_pixels = def
        .output
        .overlay
        .then(|| data.index_axis(ndarray::Axis(0), 0).to_owned());

    progress("preprocessing");
    let (model_input, mapping) = timings.time("preprocess", || {
        normalise(&mut data, &def.preprocess.normalisation);
        to_model_grid(&data, &grid, &def.preprocess.target)
    });
    drop(data);

    progress("inference");
    let logits = timings.time("inference", || {
        pipeline.model.sliding_window(&model_input, &|done, total| {
            tracing::debug!(study = %study_uid, done, total, "windows inferred");
        })
    })?;
    drop(model_input);

    progress("post-processing");
    let (masks, findings) = timings.time("post-process", || {
        let masks = activation::masks_from_logits(
            logits,
            def.model.activation,
            def.postprocess.threshold,
            |p| from_model_grid(p, &mapping),
            |mask| post::apply(mask, &def.postprocess.steps),
        );
        let findings = masks
            .iter()
            .zip(&def.output.segments)
            .map(|(mask, segment)| (segment.label.clone(), post::findings(mask, &grid)))
            .collect::<Vec<_>>();
        (masks, findings)
    });

    progress("encoding the SEG");
    let seg = timings.time("SEG encode", || -> Result<_, JobError> {
        let first = &geometry.slices[0];
        let header_path = channels[0]
            .1
            .iter()
            .find(|p| {
                p.file_stem().and_then(|s| s.to_str()) == Some(first.sop_instance_uid.as_str())
            })
            .unwrap_or(&channels[0].1[0]);
        let header = OpenFileOptions::new()
            .read_until(tags::PIXEL_DATA)
            .open_file(header_path)
            .map_err(|e| JobError::SourceHeader {
                path: header_path.clone(),
                reason: e.to_string(),
            })?
            .into_inner();
        let seg = encode_seg(
            &header,
            &geometry,
            &def.segment_specs(),
            &masks,
            &seg_options(def, other_sources),
        )?;
        Ok((seg, header))
    })?;
    let (seg, header) = seg;

    progress("writing the SEG");
    let seg_sop_instance_uid = write_seg(&seg, out_path, &mut timings)?;
    log_findings(study_uid, &def.name, &findings);
    let (report, report_instances) = match &def.output.report {
        Some(config) => {
            progress("writing the measurement report");
            timings.time("report", || {
                let groups = report::measure_volume(config, &def.segment_specs(), &masks, &grid);
                let written = report::write_beside(
                    &report::ReportInputs::new(def, &header, &geometry, &seg, config, &groups),
                    out_path,
                )?;
                Ok::<_, JobError>((groups, vec![written]))
            })?
        }
        None => (Vec::new(), Vec::new()),
    };
    drop(seg);
    let overlay_images = match overlay_pixels {
        Some(pixels) => {
            progress("writing the overlay series");
            timings.time("overlay", || {
                overlay::write_for_volume(
                    def,
                    pixels.view(),
                    &masks,
                    &geometry,
                    &channels[0].1,
                    out_path,
                )
            })?
        }
        None => Vec::new(),
    };
    let companions = [report_instances, overlay_images].concat();
    Ok(JobOutcome {
        seg_path: out_path.to_path_buf(),
        findings,
        channels: channel_info,
        slices: grid.shape[0],
        rows_cols: (grid.shape[1], grid.shape[2]),
        seg_sop_instance_uid,
        companions,
        report,
        timings,
    })
}

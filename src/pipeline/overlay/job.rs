//! The overlay step of a job: what the pipeline asks for ([`overlay_options`]), and the
//! series written beside the SEG (`<seg stem>-overlay/NNNN.dcm`), each image atomically,
//! described for the outbox as a companion of the SEG.

use std::path::{Path, PathBuf};

use ndarray::{Array3, ArrayView3};

use super::{
    OverlayInput, OverlayOptions, OverlaySeries, SourceValues, overlay_dir, read_slice_headers,
};
use crate::pipeline::definition::PipelineDefinition;
use crate::pipeline::image::SourceImage;
use crate::pipeline::job::JobError;
use crate::pipeline::output::{OutputInstance, OutputKind};
use crate::pipeline::seg::SourceGeometry;

/// How a pipeline's overlay series describes itself: SeriesNumber the SEG's + 2 (the
/// SEG's + 1 is left to the measurement report), a description that says it is an AI
/// overlay, the algorithm as the SEG names it.
pub fn overlay_options(def: &PipelineDefinition) -> OverlayOptions {
    let described = if def.description.trim().is_empty() {
        &def.output.series_description
    } else {
        &def.description
    };
    let mut description = format!("AI overlay: {described}");
    if description.chars().count() > 64 {
        description = format!("AI overlay: {}", def.output.series_description);
    }
    OverlayOptions {
        series_number: def.output.series_number.saturating_add(2),
        series_description: description.chars().take(64).collect(),
        algorithm: format!(
            "{} {}",
            def.output.algorithm_name, def.output.algorithm_version
        ),
        manufacturer_model: def.name.chars().take(64).collect(),
        ..OverlayOptions::default()
    }
}

/// The overlay of a volume job: `pixels` are the reference series' values (after the
/// Modality LUT) on `geometry`, `files` that series' files.
pub fn write_for_volume(
    def: &PipelineDefinition,
    pixels: ArrayView3<f32>,
    masks: &[Array3<bool>],
    geometry: &SourceGeometry,
    files: &[PathBuf],
    seg_path: &Path,
) -> Result<Vec<OutputInstance>, JobError> {
    let headers = read_slice_headers(files, geometry)?;
    let segments = def.segment_specs();
    let input = OverlayInput {
        pixels,
        values: SourceValues::Modality,
        masks,
        segments: &segments,
        geometry,
        headers: &headers,
        calibrated_spacing_mm: None,
    };
    write(def, input, seg_path)
}

/// The overlay of an image job (a still or a cine): one image per frame.
pub fn write_for_image(
    def: &PipelineDefinition,
    image: &SourceImage,
    masks: &[Array3<bool>],
    seg_path: &Path,
) -> Result<Vec<OutputInstance>, JobError> {
    let segments = def.segment_specs();
    let input = OverlayInput {
        pixels: image.frames.view(),
        values: SourceValues::Luminance,
        masks,
        segments: &segments,
        geometry: &image.geometry,
        headers: std::slice::from_ref(&image.header),
        calibrated_spacing_mm: image.calibration.spacing_mm,
    };
    write(def, input, seg_path)
}

fn write(
    def: &PipelineDefinition,
    input: OverlayInput,
    seg_path: &Path,
) -> Result<Vec<OutputInstance>, JobError> {
    let options = overlay_options(def);
    let series = OverlaySeries::new(input, &options)?;
    let dir = overlay_dir(seg_path);
    let mut written = Vec::with_capacity(series.len());
    series.write_all(|name, image| -> Result<(), JobError> {
        written.push(OutputInstance::write(
            OutputKind::Overlay,
            &image.object,
            &dir.join(name),
        )?);
        Ok(())
    })?;
    Ok(written)
}

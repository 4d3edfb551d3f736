//! The AI overlay series, for viewers and PACS that cannot show a DICOM SEG: each source
//! frame rendered in grey (through its own window), each segment's outline burned in in
//! the segment's colour, and a legend in a band below the image, one Secondary Capture
//! image per source frame. It is a display aid next to the SEG, which is always sent.
//!
//! - [`OverlaySeries::new`] checks the input and lays out the series; [`OverlaySeries::render`]
//!   renders and encodes one image at a time, so a long study never holds more than one
//!   RGB frame;
//! - `window` turns source values into grey, `outline` draws the segment outlines,
//!   `legend` (with its own bitmap `font`) the legend, `colour` the segment colours
//!   (CIELab → sRGB), `encode` the DICOM instance;
//! - `job` is the step a job runs: [`write_for_volume`] and [`write_for_image`] write the
//!   series beside the SEG and describe each image for the outbox.
//!
//! Why single-frame Secondary Capture (1.2.840.10008.5.1.4.1.1.7), one image per source
//! frame, rather than one Multi-frame True Color SC: it is the SOP class every PACS stores
//! and displays, and each image can reference exactly the source instance and frame it was
//! drawn from (Multi-frame SC has no per-frame references), numbered so that it scrolls
//! like its source.

mod colour;
mod encode;
mod font;
mod job;
mod legend;
mod outline;
mod window;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_object::{FileDicomObject, InMemDicomObject, OpenFileOptions};
use ndarray::{ArrayView3, Axis};

pub use colour::{dicom_lab_to_srgb, lab_to_srgb, segment_rgb};
pub use job::{overlay_options, write_for_image, write_for_volume};
pub use window::{VoiFunction, VoiWindow};

use crate::pipeline::seg::{SegError, SegmentSpec, SourceGeometry};
use encode::SeriesIdentity;
use legend::Legend;

/// The warning every overlay image carries in its legend.
pub const WARNING: &str = "AI segmentation - not for diagnosis alone";

/// Why the overlay series could not be made. Each message says what to check.
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("overlay input does not fit together: {0}")]
    Shape(String),
    #[error("the source header lacks what the overlay copies: {0}")]
    Source(SegError),
    #[error("cannot read the source header {path}: {reason}")]
    Header { path: PathBuf, reason: String },
    #[error(
        "the overlay image would be {rows}x{columns} pixels, more than DICOM's 65535; \
         the source frame is too large to overlay"
    )]
    TooLarge { rows: usize, columns: usize },
    #[error("cannot build the file meta group: {0}")]
    Meta(String),
    #[error("cannot write the overlay image {path}: {reason}")]
    Write { path: PathBuf, reason: String },
}

/// How the overlay series describes itself.
#[derive(Debug, Clone, PartialEq)]
pub struct OverlayOptions {
    /// SeriesNumber of the overlay series.
    pub series_number: i32,
    /// SeriesDescription (LO, at most 64 characters), e.g. `AI overlay: ...`.
    pub series_description: String,
    /// The line naming the algorithm in the legend, e.g. its name and version.
    pub algorithm: String,
    /// ManufacturerModelName (and SC device model), e.g. the pipeline's name.
    pub manufacturer_model: String,
    /// SoftwareVersions (and SC device software version).
    pub software_version: String,
    /// DeviceSerialNumber, as in the SEG.
    pub device_serial: String,
}

impl Default for OverlayOptions {
    fn default() -> Self {
        OverlayOptions {
            series_number: 302,
            series_description: "AI overlay".into(),
            algorithm: "segnode".into(),
            manufacturer_model: "segnode".into(),
            software_version: env!("CARGO_PKG_VERSION").into(),
            device_serial: "segnode".into(),
        }
    }
}

/// What the source values are, which decides how they become grey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceValues {
    /// Stored values after the Modality LUT (volumes): the header's VOI window applies,
    /// and MONOCHROME1 is inverted after it.
    Modality,
    /// Luminance with bright high, already converted from the stored colour model
    /// (images): the header's window applies only to a MONOCHROME2 source.
    Luminance,
}

/// Everything one overlay series is made from, as the pipeline has it.
pub struct OverlayInput<'a> {
    /// `[frames, rows, columns]` source values, frame `k` being `geometry.slices[k]`.
    pub pixels: ArrayView3<'a, f32>,
    /// What `pixels` hold.
    pub values: SourceValues,
    /// Final masks on the source grid, one per segment, each shaped like `pixels`.
    pub masks: &'a [ndarray::Array3<bool>],
    /// The segments, in mask order (labels and colours).
    pub segments: &'a [SegmentSpec],
    /// The source grid: one slice per frame, orientation and pixel spacing.
    pub geometry: &'a SourceGeometry,
    /// Source headers without pixel data: one per slice (in slice order), or one shared
    /// by every frame (the frames of one multi-frame instance).
    pub headers: &'a [InMemDicomObject],
    /// Pixel size (row, column) in mm when the geometry has none (calibrated ultrasound).
    pub calibrated_spacing_mm: Option<[f64; 2]>,
}

/// One rendered, encoded overlay image.
pub struct OverlayImage {
    /// Its InstanceNumber (the source's order, from 1).
    pub instance_number: u32,
    /// Its SOP Instance UID.
    pub sop_instance_uid: String,
    /// The instance.
    pub object: FileDicomObject<InMemDicomObject>,
}

/// An overlay series, checked and laid out; images are rendered on demand.
pub struct OverlaySeries<'a> {
    input: OverlayInput<'a>,
    identity: SeriesIdentity,
    legend: Legend,
    colours: Vec<[u8; 3]>,
    /// InstanceNumber of frame `k`.
    instance_numbers: Vec<u32>,
    thickness: usize,
}

impl<'a> OverlaySeries<'a> {
    /// Check that `input` fits together and lay out the series.
    pub fn new(
        input: OverlayInput<'a>,
        options: &OverlayOptions,
    ) -> Result<OverlaySeries<'a>, OverlayError> {
        let (frames, rows, columns) = input.pixels.dim();
        let shape = |m: String| Err(OverlayError::Shape(m));
        if frames == 0 || rows == 0 || columns == 0 {
            return shape(format!(
                "the source is {frames}x{rows}x{columns}: nothing to draw"
            ));
        }
        if input.geometry.slices.len() != frames {
            return shape(format!(
                "{frames} source frames but {} source slices",
                input.geometry.slices.len()
            ));
        }
        if input.masks.len() != input.segments.len() {
            return shape(format!(
                "{} masks for {} segments",
                input.masks.len(),
                input.segments.len()
            ));
        }
        if let Some(m) = input
            .masks
            .iter()
            .find(|m| m.dim() != (frames, rows, columns))
        {
            return shape(format!(
                "a mask is {:?} but the source is {:?}",
                m.dim(),
                (frames, rows, columns)
            ));
        }
        if input.headers.len() != 1 && input.headers.len() != frames {
            return shape(format!(
                "{} source headers for {frames} frames (give one, or one per frame)",
                input.headers.len()
            ));
        }
        let colours: Vec<[u8; 3]> = input
            .segments
            .iter()
            .enumerate()
            .map(|(i, s)| segment_rgb(i, s.recommended_cielab))
            .collect();
        let labelled: Vec<(String, [u8; 3])> = input
            .segments
            .iter()
            .zip(&colours)
            .map(|(s, c)| (s.label.clone(), *c))
            .collect();
        let legend = Legend::layout(
            columns,
            &labelled,
            &[options.algorithm.clone(), WARNING.to_string()],
        );
        if rows + legend.height() > usize::from(u16::MAX) || columns > usize::from(u16::MAX) {
            return Err(OverlayError::TooLarge {
                rows: rows + legend.height(),
                columns,
            });
        }
        let instance_numbers = instance_numbers(&input);
        let labels: Vec<&str> = input.segments.iter().map(|s| s.label.as_str()).collect();
        let (date, time) = crate::pipeline::seg::header::now_utc();
        let pixel_spacing = match (
            input.geometry.pixel_spacing.as_slice(),
            input.calibrated_spacing_mm,
        ) {
            ([r, c], _) => Some([r.clone(), c.clone()]),
            (_, Some([r, c])) => Some([ds_mm(r), ds_mm(c)]),
            _ => None,
        };
        let identity = SeriesIdentity {
            series_uid: crate::uids::new_uid(),
            date,
            time: time.split('.').next().unwrap_or_default().to_string(),
            pixel_spacing,
            patient_orientation: encode::patient_orientation(&input.geometry.image_orientation),
            derivation: truncate(
                &format!(
                    "Source image with the outlines of the AI segmentation ({}) burned in, \
                     and a legend below it; {WARNING}. The segmentation itself is the DICOM \
                     SEG of this study.",
                    labels.join(", ")
                ),
                1024,
            ),
            options: options.clone(),
        };
        Ok(OverlaySeries {
            thickness: outline::thickness_for(rows, columns),
            input,
            identity,
            legend,
            colours,
            instance_numbers,
        })
    }

    /// Number of images (one per source frame).
    pub fn len(&self) -> usize {
        self.input.pixels.dim().0
    }

    /// Whether the series has no image (never, once built).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Series Instance UID of the overlay series.
    pub fn series_instance_uid(&self) -> &str {
        &self.identity.series_uid
    }

    /// Render and encode the image of source frame `k`.
    pub fn render(&self, k: usize) -> Result<OverlayImage, OverlayError> {
        let input = &self.input;
        let (frames, rows, columns) = input.pixels.dim();
        if k >= frames {
            return Err(OverlayError::Shape(format!("frame {k} of {frames}")));
        }
        let header = &input.headers[if input.headers.len() == 1 { 0 } else { k }];
        let frame = input.pixels.index_axis(Axis(0), k);
        let grey = window::grey_frame(frame, grey_window(header, input.values).as_ref());
        let invert = input.values == SourceValues::Modality && is_monochrome1(header);
        let grey: Vec<u8> = if invert {
            grey.into_iter().map(|g| 255 - g).collect()
        } else {
            grey
        };
        let mut canvas = Canvas::grey(rows + self.legend.height(), columns, &grey);
        for (mask, rgb) in input.masks.iter().zip(&self.colours) {
            outline::burn(
                &mut canvas,
                mask.index_axis(Axis(0), k),
                self.thickness,
                *rgb,
            );
        }
        self.legend.draw(&mut canvas, rows);
        let instance_number = self.instance_numbers[k];
        let object = encode::encode_instance(
            &self.identity,
            header,
            &input.geometry.slices[k],
            instance_number,
            &canvas,
        )?;
        let sop_instance_uid = object
            .meta()
            .media_storage_sop_instance_uid()
            .trim_end_matches('\0')
            .to_string();
        Ok(OverlayImage {
            instance_number,
            sop_instance_uid,
            object,
        })
    }

    /// Render every image and hand each to `write` with its file name (`NNNN.dcm`, the
    /// InstanceNumber), in source order; one image is held at a time.
    pub fn write_all<E>(
        &self,
        mut write: impl FnMut(&str, OverlayImage) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<OverlayError>,
    {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_by_key(|&k| self.instance_numbers[k]);
        for k in order {
            let image = self.render(k)?;
            let name = format!("{:04}.dcm", image.instance_number);
            write(&name, image)?;
        }
        Ok(())
    }
}

/// Read the headers (without pixel data) of the source slices in `geometry` from `files`,
/// in slice order, matching them by SOP Instance UID.
pub fn read_slice_headers(
    files: &[PathBuf],
    geometry: &SourceGeometry,
) -> Result<Vec<InMemDicomObject>, OverlayError> {
    let mut by_uid: HashMap<String, InMemDicomObject> = HashMap::with_capacity(files.len());
    for path in files {
        let header = OpenFileOptions::new()
            .read_until(tags::PIXEL_DATA)
            .open_file(path)
            .map_err(|e| OverlayError::Header {
                path: path.clone(),
                reason: e.to_string(),
            })?
            .into_inner();
        if let Some(uid) = crate::pipeline::seg::elements::get_str(&header, tags::SOP_INSTANCE_UID)
        {
            by_uid.insert(uid, header);
        }
    }
    geometry
        .slices
        .iter()
        .map(|s| {
            by_uid.remove(&s.sop_instance_uid).ok_or_else(|| {
                OverlayError::Shape(format!(
                    "no file among the {} given holds source instance {}",
                    files.len(),
                    s.sop_instance_uid
                ))
            })
        })
        .collect()
}

/// Where the overlay images of the SEG at `seg_path` go: `<seg stem>-overlay/` beside it.
pub fn overlay_dir(seg_path: &Path) -> PathBuf {
    let stem = seg_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "seg".into());
    seg_path.with_file_name(format!("{stem}-overlay"))
}

/// An 8-bit RGB image, pixel-interleaved (PlanarConfiguration 0), row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Canvas {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub columns: usize,
    /// `rows * columns * 3` bytes.
    pub pixels: Vec<u8>,
}

impl Canvas {
    /// A canvas whose first `grey.len() / columns` rows are `grey` (R = G = B) and whose
    /// remaining rows are black.
    pub fn grey(rows: usize, columns: usize, grey: &[u8]) -> Canvas {
        let mut pixels = vec![0u8; rows * columns * 3];
        for (px, &g) in pixels.chunks_exact_mut(3).zip(grey) {
            px.fill(g);
        }
        Canvas {
            rows,
            columns,
            pixels,
        }
    }

    /// Set pixel (`r`, `c`); outside the canvas nothing happens.
    pub fn set(&mut self, r: usize, c: usize, rgb: [u8; 3]) {
        if r < self.rows && c < self.columns {
            let i = (r * self.columns + c) * 3;
            self.pixels[i..i + 3].copy_from_slice(&rgb);
        }
    }

    /// Pixel (`r`, `c`).
    pub fn get(&self, r: usize, c: usize) -> [u8; 3] {
        let i = (r * self.columns + c) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    /// Fill the `height` x `width` rectangle at (`top`, `left`), clipped to the canvas.
    pub fn fill(&mut self, top: usize, left: usize, height: usize, width: usize, rgb: [u8; 3]) {
        for r in top..(top + height).min(self.rows) {
            for c in left..(left + width).min(self.columns) {
                self.set(r, c, rgb);
            }
        }
    }
}

/// The window to render a frame with, if its header's applies to these values.
fn grey_window(header: &InMemDicomObject, values: SourceValues) -> Option<VoiWindow> {
    let photometric =
        crate::pipeline::seg::elements::get_str(header, tags::PHOTOMETRIC_INTERPRETATION);
    let applies = match values {
        SourceValues::Modality => true,
        SourceValues::Luminance => photometric.as_deref() == Some("MONOCHROME2"),
    };
    applies.then(|| VoiWindow::from_header(header)).flatten()
}

fn is_monochrome1(header: &InMemDicomObject) -> bool {
    crate::pipeline::seg::elements::get_str(header, tags::PHOTOMETRIC_INTERPRETATION).as_deref()
        == Some("MONOCHROME1")
}

/// InstanceNumbers 1..N in the source's order: by the source InstanceNumber of each
/// slice's header (then slice order) when every slice has its own header; by frame order
/// for the frames of one instance.
fn instance_numbers(input: &OverlayInput) -> Vec<u32> {
    let frames = input.geometry.slices.len();
    let mut order: Vec<usize> = (0..frames).collect();
    if input.headers.len() == frames && frames > 1 {
        let source_number = |k: usize| {
            crate::pipeline::seg::elements::get_str(&input.headers[k], tags::INSTANCE_NUMBER)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(i64::MAX)
        };
        order.sort_by_key(|&k| (source_number(k), k));
    } else {
        order.sort_by_key(|&k| (input.geometry.slices[k].frame_number.unwrap_or(0), k));
    }
    let mut numbers = vec![0u32; frames];
    for (rank, k) in order.into_iter().enumerate() {
        numbers[k] = rank as u32 + 1;
    }
    numbers
}

/// A length in mm as a DS value (at most 16 characters).
fn ds_mm(v: f64) -> String {
    let text = format!("{v:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.chars().take(16).collect()
}

/// `text` cut to at most `max` characters.
fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

#[cfg(test)]
mod tests;

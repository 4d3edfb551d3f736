//! Pixel data → one grey value per pixel, whatever colour model the image was sent in.
//!
//! Ultrasound arrives as RGB (often JPEG baseline, which is YBR_FULL_422 on the wire),
//! YBR_FULL, or MONOCHROME2. A 1-channel model wants luminance: for RGB the ITU-R BT.601
//! weights `Y = 0.299 R + 0.587 G + 0.114 B`, which is exactly the Y of YBR_FULL, so an
//! image gives the same grey values whichever of these it was encoded in (up to the loss
//! of lossy compression). MONOCHROME1 is inverted so that bright is always high.

use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_object::{FileDicomObject, InMemDicomObject};
use dicom_pixeldata::{ConvertOptions, ModalityLutOption, PhotometricInterpretation, PixelDecoder};
use ndarray::{Array3, Axis};

use super::error::ImageError;

/// BT.601 luma weights for R, G, B.
const LUMA: [f32; 3] = [0.299, 0.587, 0.114];

/// The decoded frames as luminance `[frames, rows, columns]`, and the photometric
/// interpretation the image was stored in.
pub(crate) fn luminance_frames(
    obj: &FileDicomObject<InMemDicomObject>,
    path: &Path,
) -> Result<(Array3<f32>, String), ImageError> {
    let stored = obj
        .element(tags::PHOTOMETRIC_INTERPRETATION)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let encapsulated = obj
        .element(tags::PIXEL_DATA)
        .map(|e| e.value().fragments().is_some())
        .unwrap_or(false);
    if stored == "YBR_FULL_422" && !encapsulated {
        return native_ybr_422(obj, path).map(|frames| (frames, stored));
    }
    let decoded = obj.decode_pixel_data().map_err(|e| ImageError::Decode {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let samples = decoded.samples_per_pixel();
    let photometric = decoded.photometric_interpretation().clone();
    let options = ConvertOptions::new().with_modality_lut(if samples == 1 {
        ModalityLutOption::Default
    } else {
        ModalityLutOption::None
    });
    let pixels = decoded
        .to_ndarray_with_options::<f32>(&options)
        .map_err(|e| ImageError::Decode {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let unsupported = || ImageError::Photometric {
        path: path.to_path_buf(),
        photometric: photometric.to_string(),
        samples,
    };
    let frames = match (&photometric, samples) {
        (PhotometricInterpretation::Monochrome2, 1) => pixels.index_axis_move(Axis(3), 0),
        (PhotometricInterpretation::Monochrome1, 1) => {
            let top = ((1u32 << decoded.bits_stored().min(31)) - 1) as f32;
            pixels.index_axis_move(Axis(3), 0).mapv_into(|v| top - v)
        }
        // Encapsulated colour comes out of the decoder as RGB whatever it was stored as.
        (PhotometricInterpretation::Rgb, 3) => {
            let mut y = Array3::<f32>::zeros(pixels.index_axis(Axis(3), 0).raw_dim());
            for (c, w) in LUMA.iter().enumerate() {
                y.scaled_add(*w, &pixels.index_axis(Axis(3), c));
            }
            y
        }
        (PhotometricInterpretation::YbrFull, 3) => pixels.index_axis_move(Axis(3), 0),
        _ => return Err(unsupported()),
    };
    Ok((frames, stored))
}

/// Native (uncompressed) YBR_FULL_422: each pair of pixels is stored as `Y1 Y2 Cb Cr`, so
/// the luminance is the Y bytes.
fn native_ybr_422(
    obj: &FileDicomObject<InMemDicomObject>,
    path: &Path,
) -> Result<Array3<f32>, ImageError> {
    let int = |tag, attribute| {
        obj.element(tag)
            .ok()
            .and_then(|e| e.to_int::<u32>().ok())
            .ok_or(ImageError::Missing {
                path: path.to_path_buf(),
                attribute,
            })
    };
    let rows = int(tags::ROWS, "Rows")? as usize;
    let columns = int(tags::COLUMNS, "Columns")? as usize;
    let frames = obj
        .element(tags::NUMBER_OF_FRAMES)
        .ok()
        .and_then(|e| e.to_int::<u32>().ok())
        .unwrap_or(1)
        .max(1) as usize;
    if int(tags::BITS_ALLOCATED, "BitsAllocated")? != 8 || !columns.is_multiple_of(2) {
        return Err(ImageError::Photometric {
            path: path.to_path_buf(),
            photometric: "YBR_FULL_422 (native, not 8-bit or odd width)".into(),
            samples: 3,
        });
    }
    let bytes = obj
        .element(tags::PIXEL_DATA)
        .ok()
        .and_then(|e| e.to_bytes().ok())
        .ok_or(ImageError::Missing {
            path: path.to_path_buf(),
            attribute: "PixelData",
        })?;
    let expected = frames * rows * columns * 2;
    if bytes.len() < expected {
        return Err(ImageError::Size {
            path: path.to_path_buf(),
            got: bytes.len(),
            expected,
            frames,
            rows,
            columns,
        });
    }
    let luma: Vec<f32> = bytes[..expected]
        .chunks_exact(4)
        .flat_map(|quad| [f32::from(quad[0]), f32::from(quad[1])])
        .collect();
    Ok(Array3::from_shape_vec((frames, rows, columns), luma).expect("sized above"))
}

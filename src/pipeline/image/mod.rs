//! 2D images for image pipelines (fetal head ultrasound): one instance, single-frame or a
//! cine, decoded to luminance frames with its calibration and its ultrasound regions.
//!
//! - [`load_image`] decodes any transfer syntax dicom-rs decodes, in any of the colour
//!   models ultrasound arrives in (`luminance`), and reads the pixel size and the 2D
//!   ultrasound regions (`calibration`).
//! - [`SourceImage::geometry`] is the SEG encoder's view of the image: one slice per frame,
//!   each naming its source frame for a multi-frame instance; without patient geometry
//!   (the usual ultrasound case) the SEG carries none either.
//! - [`SourceImage::grid`] is a plain pixel grid for the resampling to and from the
//!   model's input size.

mod calibration;
mod error;
mod luminance;

use std::path::Path;

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, OpenFileOptions};
use ndarray::{Array2, Array3};

pub use calibration::{Calibration, UsRegion, calibration, us_regions};
pub use error::ImageError;

use crate::pipeline::seg::{SourceGeometry, SourceSlice};
use crate::pipeline::volume::Grid;

/// One decoded image instance.
#[derive(Debug, Clone)]
pub struct SourceImage {
    /// `[frames, rows, columns]` luminance (grey levels of the stored bit depth).
    pub frames: Array3<f32>,
    /// The SEG encoder's view: one slice per frame, in frame order.
    pub geometry: SourceGeometry,
    /// Pixel size, and where it came from.
    pub calibration: Calibration,
    /// The 2D ultrasound regions (empty when the image has none).
    pub regions: Vec<UsRegion>,
    /// PhotometricInterpretation as stored, for logs.
    pub photometric: String,
    /// The data set without its pixel data (patient, study and equipment for the SEG).
    pub header: InMemDicomObject,
}

/// Decode the image at `path`.
pub fn load_image(path: &Path) -> Result<SourceImage, ImageError> {
    let obj = OpenFileOptions::new()
        .open_file(path)
        .map_err(|e| ImageError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let (frames, photometric) = luminance::luminance_frames(&obj, path)?;
    let mut header = obj.into_inner();
    header.remove_element(tags::PIXEL_DATA);
    let regions = us_regions(&header);
    let calibration = calibration(&header, &regions);
    let geometry = image_geometry(&header, frames.shape()[0], path)?;
    let (rows, columns) = (usize::from(geometry.rows), usize::from(geometry.columns));
    if frames.shape()[1..] != [rows, columns] {
        return Err(ImageError::Size {
            path: path.to_path_buf(),
            got: frames.len(),
            expected: frames.shape()[0] * rows * columns,
            frames: frames.shape()[0],
            rows,
            columns,
        });
    }
    Ok(SourceImage {
        frames,
        geometry,
        calibration,
        regions,
        photometric,
        header,
    })
}

impl SourceImage {
    /// A pixel grid for resampling: `[frames, rows, columns]` with the pixel size when
    /// known (1 mm otherwise); the frame axis is never resampled.
    pub fn grid(&self) -> Grid {
        let [row, column] = self.calibration.spacing_mm.unwrap_or([1.0, 1.0]);
        let s = self.frames.shape();
        Grid {
            origin: [0.0; 3],
            row_dir: [1.0, 0.0, 0.0],
            col_dir: [0.0, 1.0, 0.0],
            normal: [0.0, 0.0, 1.0],
            spacing: [1.0, row, column],
            shape: [s[0], s[1], s[2]],
            frame_of_reference_uid: String::new(),
        }
    }

    /// Pixels inside any 2D ultrasound region, `[rows, columns]`; `None` when the image
    /// has no regions (then every pixel counts).
    pub fn region_mask(&self) -> Option<Array2<bool>> {
        if self.regions.is_empty() {
            return None;
        }
        let (rows, columns) = (self.frames.shape()[1], self.frames.shape()[2]);
        Some(Array2::from_shape_fn((rows, columns), |(r, c)| {
            self.regions.iter().any(|region| region.contains(r, c))
        }))
    }

    /// Area of one pixel in mm², when the image is calibrated.
    pub fn pixel_area_mm2(&self) -> Option<f64> {
        self.calibration.spacing_mm.map(|[r, c]| r * c)
    }
}

/// The SEG encoder's geometry of an image: patient geometry only for a single-frame image
/// that carries a complete Image Plane module and frame of reference; otherwise none, with
/// one slice per frame (naming the frame for multi-frame instances).
fn image_geometry(
    ds: &InMemDicomObject,
    frames: usize,
    path: &Path,
) -> Result<SourceGeometry, ImageError> {
    let text = |tag: Tag| {
        ds.get(tag)
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
            .filter(|s| !s.is_empty())
    };
    let texts = |tag: Tag| {
        ds.get(tag)
            .and_then(|e| e.to_multi_str().ok())
            .map(|v| v.iter().map(|s| s.trim().to_string()).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let required = |tag: Tag, attribute: &'static str| {
        text(tag).ok_or(ImageError::Missing {
            path: path.to_path_buf(),
            attribute,
        })
    };
    let dim = |tag: Tag, attribute: &'static str| {
        ds.get(tag)
            .and_then(|e| e.to_int::<u16>().ok())
            .ok_or(ImageError::Missing {
                path: path.to_path_buf(),
                attribute,
            })
    };
    let sop_class_uid = required(tags::SOP_CLASS_UID, "SOPClassUID")?;
    let sop_instance_uid = required(tags::SOP_INSTANCE_UID, "SOPInstanceUID")?;
    let series_instance_uid = required(tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")?;
    let multi_frame = ds.get(tags::NUMBER_OF_FRAMES).is_some();
    let orientation = texts(tags::IMAGE_ORIENTATION_PATIENT);
    let position = texts(tags::IMAGE_POSITION_PATIENT);
    let spacing = texts(tags::PIXEL_SPACING);
    let frame_of_reference_uid = text(tags::FRAME_OF_REFERENCE_UID);
    let patient = !multi_frame
        && frame_of_reference_uid.is_some()
        && orientation.len() == 6
        && position.len() == 3
        && spacing.len() == 2;
    let slices = (0..frames)
        .map(|k| SourceSlice {
            sop_class_uid: sop_class_uid.clone(),
            sop_instance_uid: sop_instance_uid.clone(),
            series_instance_uid: series_instance_uid.clone(),
            image_position: if patient {
                position.clone()
            } else {
                Vec::new()
            },
            frame_number: multi_frame.then_some(k as u32 + 1),
        })
        .collect();
    Ok(SourceGeometry {
        rows: dim(tags::ROWS, "Rows")?,
        columns: dim(tags::COLUMNS, "Columns")?,
        image_orientation: if patient { orientation } else { Vec::new() },
        pixel_spacing: if patient { spacing } else { Vec::new() },
        slice_thickness: if patient {
            text(tags::SLICE_THICKNESS)
        } else {
            None
        },
        spacing_between_slices: None,
        frame_of_reference_uid: if patient {
            frame_of_reference_uid
        } else {
            None
        },
        position_reference_indicator: if patient {
            text(tags::POSITION_REFERENCE_INDICATOR)
        } else {
            None
        },
        slices,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_object::meta::FileMetaTableBuilder;

    /// A 2x4 single-frame image with `photometric`, `samples` per pixel and raw `pixels`.
    fn write_image(dir: &Path, photometric: &str, samples: u16, pixels: Vec<u8>) -> PathBuf {
        let mut ds = InMemDicomObject::new_empty();
        let mut put = |tag, vr, value: PrimitiveValue| ds.put(DataElement::new(tag, vr, value));
        put(
            tags::SOP_CLASS_UID,
            VR::UI,
            crate::uids::US_IMAGE_STORAGE.into(),
        );
        put(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4".into());
        put(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3".into());
        put(tags::SAMPLES_PER_PIXEL, VR::US, samples.into());
        put(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, photometric.into());
        if samples == 3 {
            put(tags::PLANAR_CONFIGURATION, VR::US, 0u16.into());
        }
        put(tags::ROWS, VR::US, 2u16.into());
        put(tags::COLUMNS, VR::US, 4u16.into());
        put(tags::BITS_ALLOCATED, VR::US, 8u16.into());
        put(tags::BITS_STORED, VR::US, 8u16.into());
        put(tags::HIGH_BIT, VR::US, 7u16.into());
        put(tags::PIXEL_REPRESENTATION, VR::US, 0u16.into());
        put(tags::PIXEL_DATA, VR::OB, PrimitiveValue::U8(pixels.into()));
        let obj = ds
            .with_meta(
                FileMetaTableBuilder::new()
                    .transfer_syntax(crate::uids::EXPLICIT_VR_LE)
                    .media_storage_sop_class_uid(crate::uids::US_IMAGE_STORAGE)
                    .media_storage_sop_instance_uid("1.2.3.4"),
            )
            .unwrap();
        let path = dir.join(format!("{photometric}.dcm"));
        obj.write_to_file(&path).unwrap();
        path
    }

    use std::path::PathBuf;

    #[test]
    fn every_colour_model_gives_the_same_luminance() {
        let dir = tempfile::tempdir().unwrap();
        let grey: Vec<u8> = (0..8).map(|i| i * 30).collect();
        let mono = load_image(&write_image(dir.path(), "MONOCHROME2", 1, grey.clone())).unwrap();
        let rgb_pixels: Vec<u8> = grey.iter().flat_map(|&g| [g, g, g]).collect();
        let rgb = load_image(&write_image(dir.path(), "RGB", 3, rgb_pixels)).unwrap();
        // Native YBR_FULL_422 of a grey image: Y1 Y2 Cb Cr per pixel pair, chroma 128.
        let ybr: Vec<u8> = grey
            .chunks(2)
            .flat_map(|p| [p[0], p[1], 128, 128])
            .collect();
        let ybr = load_image(&write_image(dir.path(), "YBR_FULL_422", 3, ybr)).unwrap();
        let expected: Vec<f32> = grey.iter().map(|&g| f32::from(g)).collect();
        for image in [&mono, &rgb, &ybr] {
            assert_eq!(image.frames.shape(), &[1, 2, 4]);
            let got: Vec<f32> = image.frames.iter().copied().collect();
            for (g, e) in got.iter().zip(&expected) {
                assert!((g - e).abs() < 1e-3, "{} gives {got:?}", image.photometric);
            }
        }
        assert_eq!(ybr.photometric, "YBR_FULL_422");
        // No frame of reference: the SEG geometry has none, one slice, no frame number.
        assert!(!rgb.geometry.has_patient_geometry());
        assert_eq!(rgb.geometry.slices.len(), 1);
        assert_eq!(rgb.geometry.slices[0].frame_number, None);
        assert_eq!(rgb.calibration.spacing_mm, None);
        assert!(rgb.region_mask().is_none());
    }

    #[test]
    fn monochrome1_is_inverted_and_palette_colour_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let m1 = load_image(&write_image(
            dir.path(),
            "MONOCHROME1",
            1,
            vec![0, 255, 10, 20, 0, 0, 0, 0],
        ))
        .unwrap();
        assert_eq!(m1.frames[[0, 0, 0]], 255.0);
        assert_eq!(m1.frames[[0, 0, 1]], 0.0);
        let err = load_image(&write_image(dir.path(), "PALETTE COLOR", 1, vec![0; 8]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("PALETTE COLOR") && err.contains("not supported"),
            "{err}"
        );
    }
}

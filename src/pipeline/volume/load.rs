//! Loading one series: decode every instance, order the slices along the normal, check that
//! they form one regular volume, and build its [`Grid`].

use crate::pipeline::seg::elements::{get_str, get_strs, get_u32};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_pixeldata::PixelDecoder;
use ndarray::Array3;

use super::checks::{check_spacing, check_stacked};
use super::grid::Grid;
use super::{SeriesVolume, VolumeError, parallel};
use crate::pipeline::seg::SourceGeometry;
use crate::pipeline::seg::geometry::parse_all;

/// Orientation cosines of two instances that differ by more than this are different
/// orientations (the same tolerance the SEG geometry uses).
const ORIENTATION_TOLERANCE: f64 = 1e-4;
/// Pixel spacings that differ by more than this (mm) are different.
const PIXEL_SPACING_TOLERANCE_MM: f64 = 1e-3;

/// One decoded instance, pixel data already converted (the element itself is dropped).
struct Decoded {
    path: PathBuf,
    header: InMemDicomObject,
    /// Rows x columns values after the Modality LUT (rescale), row-major.
    pixels: Vec<f32>,
}

/// Decode every file of one series (any transfer syntax dicom-rs decodes) and assemble
/// the slices, ordered by position along the slice normal (never by InstanceNumber or
/// file order), into a [`SeriesVolume`]. Checks that all instances share series, frame of
/// reference, rows/columns, orientation and pixel spacing, that no position repeats, that
/// the slices are regularly spaced (a missing slice is an error) and stacked along the
/// normal.
pub fn load_series(files: &[PathBuf]) -> Result<SeriesVolume, VolumeError> {
    if files.is_empty() {
        return Err(VolumeError::NoFiles);
    }
    let decoded: Vec<Decoded> = parallel::map(files, |p| decode(p))
        .into_iter()
        .collect::<Result<_, _>>()?;
    let header = check_instances(&decoded)?;
    let series = header.series.clone();

    let geometry =
        SourceGeometry::from_datasets(decoded.iter().map(|d| &d.header)).map_err(|source| {
            VolumeError::Geometry {
                series: series.clone(),
                source,
            }
        })?;
    let by_uid: HashMap<String, usize> = decoded
        .iter()
        .enumerate()
        .map(|(i, d)| (sop_instance_uid(&d.header), i))
        .collect();
    let order: Vec<usize> = geometry
        .slices
        .iter()
        .map(|s| by_uid[&s.sop_instance_uid])
        .collect();

    let normal = geometry
        .slice_normal()
        .ok_or_else(|| missing(&series, &decoded[0].path, "ImageOrientationPatient"))?;
    let positions: Vec<[f64; 3]> = order.iter().map(|&i| header.positions[i]).collect();
    let single_slice_mm = declared_spacing(&decoded[order[0]].header);
    let slice_spacing = check_spacing(&series, &positions, normal, single_slice_mm)?;
    check_stacked(&series, &positions, normal, header.pixel_spacing)?;

    let grid = Grid {
        origin: positions[0],
        row_dir: [
            header.orientation[0],
            header.orientation[1],
            header.orientation[2],
        ],
        col_dir: [
            header.orientation[3],
            header.orientation[4],
            header.orientation[5],
        ],
        normal,
        spacing: [
            slice_spacing,
            header.pixel_spacing[0],
            header.pixel_spacing[1],
        ],
        shape: [order.len(), header.rows, header.cols],
        frame_of_reference_uid: header.frame_of_reference.clone(),
    };
    let mut voxels = Vec::with_capacity(grid.len());
    for &i in &order {
        voxels.extend_from_slice(&decoded[i].pixels);
    }
    let voxels =
        Array3::from_shape_vec(grid.shape, voxels).expect("every slice has rows x cols pixels");
    Ok(SeriesVolume {
        geometry,
        grid,
        voxels,
        series_uid: series,
        description: header.description,
    })
}

/// Open and decode one file.
fn decode(path: &Path) -> Result<Decoded, VolumeError> {
    let obj = dicom_object::open_file(path).map_err(|e| VolumeError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let series = get_str(&obj, tags::SERIES_INSTANCE_UID)
        .ok_or_else(|| missing("", path, "SeriesInstanceUID"))?;
    let frames = obj
        .get(tags::NUMBER_OF_FRAMES)
        .and_then(|e| e.to_int::<u32>().ok())
        .unwrap_or(1);
    if frames > 1 {
        return Err(VolumeError::Unsupported {
            series,
            reason: format!(
                "{} is a multi-frame image ({frames} frames); only single-frame series can be \
                 assembled — have the scanner send classic single-frame images",
                path.display()
            ),
        });
    }
    let transfer_syntax = obj
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_string();
    let decode_error = |reason: String| VolumeError::Decode {
        series: series.clone(),
        path: path.to_path_buf(),
        transfer_syntax: transfer_syntax.clone(),
        reason,
    };
    let pixels = {
        let data = obj
            .decode_pixel_data()
            .map_err(|e| decode_error(e.to_string()))?;
        if data.samples_per_pixel() != 1 {
            return Err(VolumeError::Unsupported {
                series: series.clone(),
                reason: format!(
                    "{} has {} samples per pixel; only greyscale images can be segmented",
                    path.display(),
                    data.samples_per_pixel()
                ),
            });
        }
        // `to_ndarray` applies the Modality LUT (rescale) like `to_vec`, and is several
        // times faster for native pixel data.
        let array = data
            .to_ndarray::<f32>()
            .map_err(|e| decode_error(e.to_string()))?;
        if array.is_standard_layout() {
            array.into_raw_vec_and_offset().0
        } else {
            array.iter().copied().collect()
        }
    };
    let mut header = obj.into_inner();
    header.remove_element(tags::PIXEL_DATA);
    Ok(Decoded {
        path: path.to_path_buf(),
        header,
        pixels,
    })
}

/// What every instance of the series shares, and each instance's position.
struct SeriesHeader {
    series: String,
    description: String,
    frame_of_reference: String,
    rows: usize,
    cols: usize,
    orientation: Vec<f64>,
    pixel_spacing: [f64; 2],
    /// ImagePositionPatient per decoded instance (in input order).
    positions: Vec<[f64; 3]>,
}

/// Check that the instances share series, frame of reference, size, orientation and pixel
/// spacing, and that no SOP instance repeats.
fn check_instances(decoded: &[Decoded]) -> Result<SeriesHeader, VolumeError> {
    let first = &decoded[0];
    let series = get_str(&first.header, tags::SERIES_INSTANCE_UID).unwrap_or_default();
    let numbers = |d: &Decoded, tag: Tag, name: &'static str, count: usize| {
        parse_all(&get_strs(&d.header, tag))
            .filter(|v| v.len() == count)
            .ok_or_else(|| missing(&series, &d.path, name))
    };
    let size = |d: &Decoded| -> Result<(usize, usize), VolumeError> {
        let rows =
            get_u32(&d.header, tags::ROWS).ok_or_else(|| missing(&series, &d.path, "Rows"))?;
        let cols = get_u32(&d.header, tags::COLUMNS)
            .ok_or_else(|| missing(&series, &d.path, "Columns"))?;
        Ok((rows as usize, cols as usize))
    };
    let frame = |d: &Decoded| {
        get_str(&d.header, tags::FRAME_OF_REFERENCE_UID)
            .ok_or_else(|| missing(&series, &d.path, "FrameOfReferenceUID"))
    };
    let (rows, cols) = size(first)?;
    let orientation = numbers(
        first,
        tags::IMAGE_ORIENTATION_PATIENT,
        "ImageOrientationPatient",
        6,
    )?;
    let spacing = numbers(first, tags::PIXEL_SPACING, "PixelSpacing", 2)?;
    if spacing.iter().any(|s| *s <= 0.0) {
        return Err(missing(&series, &first.path, "PixelSpacing"));
    }
    let frame_of_reference = frame(first)?;

    let mut seen: HashMap<String, &Path> = HashMap::new();
    let mut positions = Vec::with_capacity(decoded.len());
    for d in decoded {
        let inconsistent = |what, expected: String, found: String| VolumeError::Inconsistent {
            series: series.clone(),
            what,
            expected,
            found,
            path: d.path.clone(),
        };
        let this_series = get_str(&d.header, tags::SERIES_INSTANCE_UID).unwrap_or_default();
        if this_series != series {
            return Err(VolumeError::MixedSeries {
                expected: series.clone(),
                found: this_series,
                path: d.path.clone(),
            });
        }
        let sop = sop_instance_uid(&d.header);
        if let Some(previous) = seen.insert(sop.clone(), &d.path) {
            return Err(VolumeError::DuplicateInstance {
                series: series.clone(),
                instance: sop,
                first: previous.to_path_buf(),
                second: d.path.clone(),
            });
        }
        let this_size = size(d)?;
        if this_size != (rows, cols) || d.pixels.len() != rows * cols {
            return Err(inconsistent(
                "Rows x Columns",
                format!("{rows} x {cols}"),
                format!("{} x {}", this_size.0, this_size.1),
            ));
        }
        let o = numbers(
            d,
            tags::IMAGE_ORIENTATION_PATIENT,
            "ImageOrientationPatient",
            6,
        )?;
        if o.iter()
            .zip(&orientation)
            .any(|(a, b)| (a - b).abs() > ORIENTATION_TOLERANCE)
        {
            return Err(inconsistent(
                "ImageOrientationPatient",
                format!("{orientation:?}"),
                format!("{o:?}"),
            ));
        }
        let s = numbers(d, tags::PIXEL_SPACING, "PixelSpacing", 2)?;
        if s.iter()
            .zip(&spacing)
            .any(|(a, b)| (a - b).abs() > PIXEL_SPACING_TOLERANCE_MM)
        {
            return Err(inconsistent(
                "PixelSpacing",
                format!("{spacing:?}"),
                format!("{s:?}"),
            ));
        }
        let f = frame(d)?;
        if f != frame_of_reference {
            return Err(inconsistent(
                "FrameOfReferenceUID",
                frame_of_reference.clone(),
                f,
            ));
        }
        let p = numbers(d, tags::IMAGE_POSITION_PATIENT, "ImagePositionPatient", 3)?;
        positions.push([p[0], p[1], p[2]]);
    }
    Ok(SeriesHeader {
        description: get_str(&first.header, tags::SERIES_DESCRIPTION).unwrap_or_default(),
        series,
        frame_of_reference,
        rows,
        cols,
        orientation,
        pixel_spacing: [spacing[0], spacing[1]],
        positions,
    })
}

/// The slice spacing a header declares: SpacingBetweenSlices, else SliceThickness, else
/// 1 mm (used only for a single-slice series, which has no gap to measure).
fn declared_spacing(header: &InMemDicomObject) -> f64 {
    let from = |tag| {
        get_str(header, tag)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| *v > 0.0)
    };
    from(tags::SPACING_BETWEEN_SLICES)
        .or_else(|| from(tags::SLICE_THICKNESS))
        .unwrap_or(1.0)
}

fn missing(series: &str, path: &Path, attribute: &'static str) -> VolumeError {
    VolumeError::MissingAttribute {
        series: series.to_string(),
        path: path.to_path_buf(),
        attribute,
    }
}

fn sop_instance_uid(ds: &InMemDicomObject) -> String {
    get_str(ds, tags::SOP_INSTANCE_UID).unwrap_or_default()
}

//! Where an image's pixels are in millimetres, and which part of it is ultrasound.
//!
//! Projection and secondary-capture images carry PixelSpacing; ultrasound machines usually
//! do not, and calibrate regions of the image instead (SequenceOfUltrasoundRegions, PS3.3
//! C.8.5.5): each region is a rectangle of the image with its own physical units per pixel.
//! The spatial regions (RegionSpatialFormat 1, 2D) are where the ultrasound sector lies;
//! the rest of the frame holds text, calipers and colour bars.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

/// PhysicalUnits value meaning centimetres.
const UNITS_CM: u16 = 3;
/// RegionSpatialFormat value of a 2D (tissue or flow) image region.
const SPATIAL_2D: u16 = 1;

/// The pixel size of an image and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    /// (row spacing, column spacing) in mm: the distance between row centres, then
    /// between column centres; `None` when the image does not say.
    pub spacing_mm: Option<[f64; 2]>,
    /// The attribute it came from (`PixelSpacing`, `SequenceOfUltrasoundRegions`), or
    /// `none`.
    pub source: &'static str,
}

/// One 2D ultrasound region: an inclusive pixel rectangle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UsRegion {
    /// First column (RegionLocationMinX0).
    pub min_x: u32,
    /// First row (RegionLocationMinY0).
    pub min_y: u32,
    /// Last column (RegionLocationMaxX1).
    pub max_x: u32,
    /// Last row (RegionLocationMaxY1).
    pub max_y: u32,
    /// (row, column) spacing in mm, when the region is calibrated in cm.
    pub spacing_mm: Option<[f64; 2]>,
}

impl UsRegion {
    /// Pixels it covers.
    pub fn area(&self) -> u64 {
        u64::from(self.max_x.saturating_sub(self.min_x) + 1)
            * u64::from(self.max_y.saturating_sub(self.min_y) + 1)
    }

    /// Whether pixel (row, column) lies in it.
    pub fn contains(&self, row: usize, column: usize) -> bool {
        (self.min_y as usize..=self.max_y as usize).contains(&row)
            && (self.min_x as usize..=self.max_x as usize).contains(&column)
    }
}

/// The 2D regions of SequenceOfUltrasoundRegions, in file order (empty when absent).
pub fn us_regions(ds: &InMemDicomObject) -> Vec<UsRegion> {
    let Some(items) = ds
        .get(tags::SEQUENCE_OF_ULTRASOUND_REGIONS)
        .and_then(|e| e.items())
    else {
        return Vec::new();
    };
    items
        .iter()
        .filter(|item| int(item, tags::REGION_SPATIAL_FORMAT) == Some(u32::from(SPATIAL_2D)))
        .filter_map(|item| {
            let region = UsRegion {
                min_x: int(item, tags::REGION_LOCATION_MIN_X0)?,
                min_y: int(item, tags::REGION_LOCATION_MIN_Y0)?,
                max_x: int(item, tags::REGION_LOCATION_MAX_X1)?,
                max_y: int(item, tags::REGION_LOCATION_MAX_Y1)?,
                spacing_mm: region_spacing(item),
            };
            (region.max_x >= region.min_x && region.max_y >= region.min_y).then_some(region)
        })
        .collect()
}

/// The image's pixel size: PixelSpacing if present, else that of the largest calibrated
/// 2D ultrasound region.
pub fn calibration(ds: &InMemDicomObject, regions: &[UsRegion]) -> Calibration {
    let pixel_spacing: Vec<f64> = ds
        .get(tags::PIXEL_SPACING)
        .and_then(|e| e.to_str().ok())
        .map(|v| {
            v.split('\\')
                .filter_map(|x| x.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    if let [row, column] = pixel_spacing[..]
        && row > 0.0
        && column > 0.0
    {
        return Calibration {
            spacing_mm: Some([row, column]),
            source: "PixelSpacing",
        };
    }
    match regions
        .iter()
        .filter(|r| r.spacing_mm.is_some())
        .max_by_key(|r| r.area())
    {
        Some(r) => Calibration {
            spacing_mm: r.spacing_mm,
            source: "SequenceOfUltrasoundRegions",
        },
        None => Calibration {
            spacing_mm: None,
            source: "none",
        },
    }
}

fn region_spacing(item: &InMemDicomObject) -> Option<[f64; 2]> {
    let units_x = int(item, tags::PHYSICAL_UNITS_X_DIRECTION)?;
    let units_y = int(item, tags::PHYSICAL_UNITS_Y_DIRECTION)?;
    if units_x != u32::from(UNITS_CM) || units_y != u32::from(UNITS_CM) {
        return None;
    }
    let dx = float(item, tags::PHYSICAL_DELTA_X)?.abs() * 10.0;
    let dy = float(item, tags::PHYSICAL_DELTA_Y)?.abs() * 10.0;
    (dx > 0.0 && dy > 0.0 && dx.is_finite() && dy.is_finite()).then_some([dy, dx])
}

fn int(ds: &InMemDicomObject, tag: Tag) -> Option<u32> {
    ds.get(tag)?.to_int::<u32>().ok()
}

fn float(ds: &InMemDicomObject, tag: Tag) -> Option<f64> {
    ds.get(tag)?.to_float64().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::value::DataSetSequence;
    use dicom_core::{DataElement, PrimitiveValue, VR};

    fn region(format: u16, box_: [u32; 4], units: u16, delta_cm: [f64; 2]) -> InMemDicomObject {
        let mut item = InMemDicomObject::new_empty();
        item.put(DataElement::new(
            tags::REGION_SPATIAL_FORMAT,
            VR::US,
            PrimitiveValue::from(format),
        ));
        for (tag, v) in [
            (tags::REGION_LOCATION_MIN_X0, box_[0]),
            (tags::REGION_LOCATION_MIN_Y0, box_[1]),
            (tags::REGION_LOCATION_MAX_X1, box_[2]),
            (tags::REGION_LOCATION_MAX_Y1, box_[3]),
        ] {
            item.put(DataElement::new(tag, VR::UL, PrimitiveValue::from(v)));
        }
        for tag in [
            tags::PHYSICAL_UNITS_X_DIRECTION,
            tags::PHYSICAL_UNITS_Y_DIRECTION,
        ] {
            item.put(DataElement::new(tag, VR::US, PrimitiveValue::from(units)));
        }
        item.put(DataElement::new(
            tags::PHYSICAL_DELTA_X,
            VR::FD,
            PrimitiveValue::from(delta_cm[0]),
        ));
        item.put(DataElement::new(
            tags::PHYSICAL_DELTA_Y,
            VR::FD,
            PrimitiveValue::from(delta_cm[1]),
        ));
        item
    }

    fn with_regions(items: Vec<InMemDicomObject>) -> InMemDicomObject {
        let mut ds = InMemDicomObject::new_empty();
        ds.put(DataElement::new(
            tags::SEQUENCE_OF_ULTRASOUND_REGIONS,
            VR::SQ,
            DataSetSequence::from(items),
        ));
        ds
    }

    #[test]
    fn largest_calibrated_2d_region_gives_the_spacing() {
        let ds = with_regions(vec![
            // A small 2D region in cm, a large spectral (not 2D) one, the main 2D sector.
            region(1, [0, 0, 9, 9], 3, [0.05, 0.05]),
            region(3, [0, 0, 900, 600], 3, [0.5, 0.5]),
            region(1, [100, 20, 860, 640], 3, [0.02, 0.025]),
        ]);
        let regions = us_regions(&ds);
        assert_eq!(regions.len(), 2, "the spectral region is not a 2D region");
        let c = calibration(&ds, &regions);
        assert_eq!(c.source, "SequenceOfUltrasoundRegions");
        let [row, col] = c.spacing_mm.unwrap();
        assert!(
            (row - 0.25).abs() < 1e-12 && (col - 0.2).abs() < 1e-12,
            "{row} {col}"
        );
        assert!(regions[1].contains(20, 100) && regions[1].contains(640, 860));
        assert!(!regions[1].contains(19, 100) && !regions[1].contains(20, 861));
    }

    #[test]
    fn pixel_spacing_wins_and_uncalibrated_regions_give_none() {
        let mut ds = with_regions(vec![region(1, [0, 0, 99, 99], 0, [1.0, 1.0])]);
        let regions = us_regions(&ds);
        assert_eq!(regions.len(), 1);
        assert_eq!(
            regions[0].spacing_mm, None,
            "units 0 (none) are not a length"
        );
        assert_eq!(calibration(&ds, &regions).spacing_mm, None);
        ds.put(DataElement::new(
            tags::PIXEL_SPACING,
            VR::DS,
            PrimitiveValue::from("0.3\\0.4"),
        ));
        let c = calibration(&ds, &regions);
        assert_eq!((c.spacing_mm, c.source), (Some([0.3, 0.4]), "PixelSpacing"));
    }
}

//! Every coded concept the measurement report writes, in one table: the TID 1500 / 1410 /
//! 1411 structure (DCM), the measurements (SNOMED CT, LOINC, DCM), and the UCUM units.
//! `tests/report_sr.rs` checks each of them against the code
//! tables pydicom ships, so a typo or a retired code fails a test instead of a PACS.

use crate::pipeline::seg::KnownCode;

const fn code(scheme: &'static str, value: &'static str, meaning: &'static str) -> KnownCode {
    KnownCode {
        value,
        scheme,
        meaning,
    }
}

// --- Document structure (TID 1500, TID 1001, TID 1410/1411) --------------------------------

/// Document title of TID 1500.
pub const IMAGING_MEASUREMENT_REPORT: KnownCode =
    code("DCM", "126000", "Imaging Measurement Report");
/// Observer Type (TID 1002).
pub const OBSERVER_TYPE: KnownCode = code("DCM", "121005", "Observer Type");
/// Observer Type value: the observer is a device (segnode), not a person.
pub const DEVICE: KnownCode = code("DCM", "121007", "Device");
/// Device Observer UID (TID 1004).
pub const DEVICE_OBSERVER_UID: KnownCode = code("DCM", "121012", "Device Observer UID");
/// Device Observer Name.
pub const DEVICE_OBSERVER_NAME: KnownCode = code("DCM", "121013", "Device Observer Name");
/// Device Observer Manufacturer.
pub const DEVICE_OBSERVER_MANUFACTURER: KnownCode =
    code("DCM", "121014", "Device Observer Manufacturer");
/// Device Observer Model Name.
pub const DEVICE_OBSERVER_MODEL_NAME: KnownCode =
    code("DCM", "121015", "Device Observer Model Name");
/// Procedure reported (TID 1500 row 3).
pub const PROCEDURE_REPORTED: KnownCode = code("DCM", "121058", "Procedure reported");
/// The Imaging Measurements container.
pub const IMAGING_MEASUREMENTS: KnownCode = code("DCM", "126010", "Imaging Measurements");
/// One measurement group (TID 1410 / 1411).
pub const MEASUREMENT_GROUP: KnownCode = code("DCM", "125007", "Measurement Group");
/// Tracking Identifier (human-readable).
pub const TRACKING_IDENTIFIER: KnownCode = code("DCM", "112039", "Tracking Identifier");
/// Tracking Unique Identifier.
pub const TRACKING_UNIQUE_IDENTIFIER: KnownCode =
    code("DCM", "112040", "Tracking Unique Identifier");
/// Finding (what the group measures).
pub const FINDING: KnownCode = code("DCM", "121071", "Finding");
/// A whole segment of the SEG (TID 1411).
pub const REFERENCED_SEGMENT: KnownCode = code("DCM", "121191", "Referenced Segment");
/// One frame of the SEG (TID 1410).
pub const REFERENCED_SEGMENTATION_FRAME: KnownCode =
    code("DCM", "121214", "Referenced Segmentation Frame");
/// The series the segment was made on (TID 1411).
pub const SOURCE_SERIES_FOR_SEGMENTATION: KnownCode =
    code("DCM", "121232", "Source series for segmentation");
/// The image (frame) the segmentation frame was made on (TID 1410).
pub const SOURCE_IMAGE_FOR_SEGMENTATION: KnownCode =
    code("DCM", "121233", "Source image for segmentation");
/// Free text naming the measurements a group lacks, and why.
pub const COMMENT: KnownCode = code("DCM", "121106", "Comment");

// --- Procedures reported (CID 100) ---------------------------------------------------------

/// DCE breast MRI: the default procedure of a volume pipeline's report.
pub const MR_BREAST: KnownCode = code("SCT", "241615005", "Magnetic resonance imaging of breast");
/// Obstetric ultrasound: the default procedure of an image pipeline's report.
pub const US_OBSTETRIC: KnownCode = code("SCT", "268445003", "Obstetric US scan");

// --- Measurements --------------------------------------------------------------------------

/// Segment volume.
pub const VOLUME: KnownCode = code("SCT", "118565006", "Volume");
/// Longest 3D diameter of a segment (the RECIST-style long axis, in 3D).
pub const LONG_AXIS: KnownCode = code("SCT", "103339001", "Long axis");
/// Number of 26-connected components of a segment.
pub const NUMBER_OF_LESIONS: KnownCode = code("SCT", "246206008", "Number of lesions");
/// Segment volume as a percentage of the imaged volume.
pub const VOLUME_RATIO: KnownCode = code("DCM", "113288", "Volume Ratio");
/// Area of a segment in one frame.
pub const AREA: KnownCode = code("SCT", "42798000", "Area");
/// Fetal biometry (CID 12005): head circumference.
pub const HEAD_CIRCUMFERENCE: KnownCode = code("LN", "11984-2", "Head Circumference");
/// Fetal biometry: biparietal diameter.
pub const BIPARIETAL_DIAMETER: KnownCode = code("LN", "11820-8", "Biparietal Diameter");
/// Fetal biometry: occipito-frontal diameter.
pub const OCCIPITOFRONTAL_DIAMETER: KnownCode = code("LN", "11851-3", "Occipital-Frontal Diameter");

// --- Units (UCUM) --------------------------------------------------------------------------

/// Millilitre (UCUM `ml`; pydicom's table holds it only inside compound units such as
/// `ml/min`, which is how the test checks it).
pub const MILLILITER: KnownCode = code("UCUM", "ml", "milliliter");
/// Millimetre.
pub const MILLIMETER: KnownCode = code("UCUM", "mm", "mm");
/// Square millimetre.
pub const SQUARE_MILLIMETER: KnownCode = code("UCUM", "mm2", "square millimeter");
/// Percent.
pub const PERCENT: KnownCode = code("UCUM", "%", "Percent");
/// A count.
pub const NO_UNITS: KnownCode = code("UCUM", "1", "no units");

/// Every code above, for the conformance test.
pub const ALL: &[KnownCode] = &[
    IMAGING_MEASUREMENT_REPORT,
    OBSERVER_TYPE,
    DEVICE,
    DEVICE_OBSERVER_UID,
    DEVICE_OBSERVER_NAME,
    DEVICE_OBSERVER_MANUFACTURER,
    DEVICE_OBSERVER_MODEL_NAME,
    PROCEDURE_REPORTED,
    IMAGING_MEASUREMENTS,
    MEASUREMENT_GROUP,
    TRACKING_IDENTIFIER,
    TRACKING_UNIQUE_IDENTIFIER,
    FINDING,
    REFERENCED_SEGMENT,
    REFERENCED_SEGMENTATION_FRAME,
    SOURCE_SERIES_FOR_SEGMENTATION,
    SOURCE_IMAGE_FOR_SEGMENTATION,
    COMMENT,
    MR_BREAST,
    US_OBSTETRIC,
    VOLUME,
    LONG_AXIS,
    NUMBER_OF_LESIONS,
    VOLUME_RATIO,
    AREA,
    HEAD_CIRCUMFERENCE,
    BIPARIETAL_DIAMETER,
    OCCIPITOFRONTAL_DIAMETER,
    MILLILITER,
    MILLIMETER,
    SQUARE_MILLIMETER,
    PERCENT,
    NO_UNITS,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_fit_their_vrs_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for k in ALL {
            k.code().validate(k.meaning).unwrap();
            assert!(seen.insert((k.scheme, k.value)), "{} twice", k.value);
        }
    }
}

//! Per-pipeline settings of the SEG series (numbering, descriptive text, equipment identity,
//! empty-frame policy), validated so that a bad value fails when the pipeline is loaded.

use super::elements::{check_lo, person_name};
use super::error::SegError;

/// How the SEG series describes itself and which frames it keeps.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SegOptions {
    /// SeriesNumber of the new SEG series.
    pub series_number: i32,
    /// SeriesDescription shown in the archive's series list (LO; may be empty).
    pub series_description: String,
    /// ContentLabel (CS: at most 16 of `A-Z`, `0-9`, `_`, space), e.g. `TUMOUR_SEG`.
    pub content_label: String,
    /// ContentDescription (LO; may be empty).
    pub content_description: String,
    /// ContentCreatorName; a bare name is written as `Name^` (current PN form).
    pub content_creator: String,
    /// Leave out frames with no set pixel. Smaller, but several viewers crop or misplace
    /// volumes with missing frames, so the default is `false`.
    pub omit_empty_frames: bool,
    /// ManufacturerModelName of the equipment modules (LO, required).
    pub manufacturer_model: String,
    /// SoftwareVersions of the equipment modules (LO, required).
    pub software_version: String,
    /// DeviceSerialNumber of the equipment modules (LO, required), e.g. the node's AE title.
    pub device_serial: String,
    /// Whether the segments may overlap (independent classes, e.g. structures inside an
    /// organ). SegmentsOverlap always states what the masks do (`YES` only when a pixel is in
    /// two segments); with `false`, overlapping masks also log a warning.
    pub segments_overlap: bool,
    /// Series the segmentation was also derived from besides the reference series (the
    /// other channels of a multi-channel model). They are named in the General Series
    /// Related Series Sequence; frames and ReferencedSeriesSequence reference the
    /// reference series only, whose slices the frames lie on, so that a viewer attaches
    /// the SEG to that series whatever order it loads the study's series in.
    #[serde(default)]
    pub other_sources: Vec<SeriesReference>,
    /// BINARY (one 1-bit frame per segment per source frame) or LABELMAP (one 8/16-bit
    /// frame per source frame, segment numbers as values; segments must not overlap).
    #[serde(default)]
    pub seg_type: SegType,
}

/// Which Segmentation Type the SEG is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SegType {
    /// Segmentation Storage, SegmentationType BINARY: every SEG viewer reads it.
    #[default]
    Binary,
    /// Label Map Segmentation Storage (Supplement 243), SegmentationType LABELMAP: no bit
    /// packing (so no frame straddles a byte), one frame per source frame, much smaller;
    /// only for exclusive classes, and newer readers only.
    Labelmap,
}

impl SegType {
    /// The SOP Class UID of a SEG of this type.
    pub fn sop_class_uid(self) -> &'static str {
        match self {
            SegType::Binary => crate::uids::SEGMENTATION_STORAGE,
            SegType::Labelmap => crate::uids::LABEL_MAP_SEGMENTATION_STORAGE,
        }
    }

    /// The SegmentationType value.
    pub fn keyword(self) -> &'static str {
        match self {
            SegType::Binary => "BINARY",
            SegType::Labelmap => "LABELMAP",
        }
    }
}

/// A series of the same study the segmentation was also derived from.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct SeriesReference {
    /// Series Instance UID.
    pub series_instance_uid: String,
}

impl SegOptions {
    /// Check that every value can be written as valid DICOM.
    pub fn validate(&self) -> Result<(), SegError> {
        let label = &self.content_label;
        if label.trim().is_empty() || label.len() > 16 {
            return Err(SegError::setting(
                "content_label",
                format!("{label:?} must be 1 to 16 characters"),
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b' ')
        {
            return Err(SegError::setting(
                "content_label",
                format!(
                    "{label:?} may only hold upper-case letters, digits, '_' and spaces (DICOM CS)"
                ),
            ));
        }
        check_lo("series_description", &self.series_description, false)?;
        check_lo("content_description", &self.content_description, false)?;
        check_lo("manufacturer_model", &self.manufacturer_model, true)?;
        check_lo("software_version", &self.software_version, true)?;
        check_lo("device_serial", &self.device_serial, true)?;
        let creator = person_name(&self.content_creator);
        if creator.split('=').any(|group| group.chars().count() > 64) || creator.contains('\\') {
            return Err(SegError::setting(
                "content_creator",
                format!("{creator:?} is not a person name of at most 64 characters"),
            ));
        }
        Ok(())
    }
}

impl Default for SegOptions {
    fn default() -> Self {
        SegOptions {
            series_number: 300,
            series_description: "segnode segmentation".into(),
            content_label: "SEGMENTATION".into(),
            content_description: String::new(),
            content_creator: "segnode".into(),
            omit_empty_frames: false,
            manufacturer_model: "segnode".into(),
            software_version: env!("CARGO_PKG_VERSION").into(),
            device_serial: "segnode".into(),
            segments_overlap: false,
            other_sources: Vec::new(),
            seg_type: SegType::Binary,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_bad_labels_are_named() {
        SegOptions::default().validate().unwrap();
        let o = SegOptions {
            content_label: "tumour-seg".into(),
            ..SegOptions::default()
        };
        assert!(
            o.validate()
                .unwrap_err()
                .to_string()
                .contains("content_label")
        );
        let o = SegOptions {
            software_version: String::new(),
            ..SegOptions::default()
        };
        assert!(o.validate().is_err());
    }
}

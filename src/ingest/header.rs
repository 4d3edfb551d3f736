//! The identifying and routing attributes of a received instance, read once from its
//! data set: what the spool indexes and files it by, and what the pipelines route on.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use crate::uids::trim_uid;
use crate::untrusted::Checked;

/// Why a data set's header could not be read. Each is the sender's fault, answered with a
/// C-STORE failure status by the spool (`SpoolError::dimse_status`).
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("data set cannot be parsed in transfer syntax {transfer_syntax}: {reason}")]
    Unparseable {
        transfer_syntax: String,
        reason: String,
    },
    #[error("data set lacks {0}")]
    MissingAttribute(&'static str),
    #[error("{attribute} {value:?} is not a valid UID")]
    InvalidUid {
        attribute: &'static str,
        value: String,
    },
    #[error("data set {attribute} {in_dataset} differs from the C-STORE command's {in_command}")]
    CommandMismatch {
        attribute: &'static str,
        in_command: String,
        in_dataset: String,
    },
}

impl HeaderError {
    /// A short reason for the peer's operator (fits a C-STORE ErrorComment, LO).
    pub fn comment(&self) -> String {
        match self {
            HeaderError::Unparseable { .. } => {
                "data set cannot be parsed in the negotiated syntax".into()
            }
            HeaderError::MissingAttribute(attribute) => format!("data set lacks {attribute}"),
            HeaderError::InvalidUid { attribute, .. } => {
                format!("{attribute} in data set is not a valid UID")
            }
            HeaderError::CommandMismatch { attribute, .. } => {
                format!("{attribute} in data set differs from the command")
            }
        }
    }
}

/// What the spool indexes about one instance, and what the pipelines route it by.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InstanceHeader {
    /// SOP Class UID (0008,0016).
    pub sop_class_uid: String,
    /// SOP Instance UID (0008,0018).
    pub sop_instance_uid: String,
    /// Study Instance UID (0020,000D).
    pub study_uid: String,
    /// Series Instance UID (0020,000E).
    pub series_uid: String,
    /// Patient ID, for logs and listings.
    pub patient_id: String,
    /// Patient's name as stored.
    pub patient_name: String,
    /// Study date (DA).
    pub study_date: String,
    /// Accession number.
    pub accession_number: String,
    /// Modality of the series.
    pub modality: String,
    /// Series number, when present and numeric.
    pub series_number: Option<i32>,
    /// Series description.
    pub series_description: String,
    /// Instance number, when present and numeric.
    pub instance_number: Option<i32>,
    /// Series time (TM), for ordering series of a study.
    pub series_time: String,
    /// Acquisition time (TM), for ordering dynamic phases.
    pub acquisition_time: String,
    /// Temporal Position Identifier (0020,0100): the phase of a dynamic series.
    pub temporal_position: Option<u32>,
    /// The attributes pipeline tag rules may test ([`RULE_ATTRIBUTES`]), by keyword; only
    /// those present and non-empty.
    pub attributes: std::collections::BTreeMap<String, String>,
}

/// Attributes a pipeline's `[[applies_to.tags]]` rules can test, by keyword. A short,
/// fixed list: the attributes routing rules in practice look at.
pub const RULE_ATTRIBUTES: &[(&str, Tag)] = &[
    ("BodyPartExamined", tags::BODY_PART_EXAMINED),
    ("ProtocolName", tags::PROTOCOL_NAME),
    ("StudyDescription", tags::STUDY_DESCRIPTION),
    ("SeriesDescription", tags::SERIES_DESCRIPTION),
    ("ImageType", tags::IMAGE_TYPE),
    ("Manufacturer", tags::MANUFACTURER),
    ("ManufacturerModelName", tags::MANUFACTURER_MODEL_NAME),
    ("StationName", tags::STATION_NAME),
    ("InstitutionName", tags::INSTITUTION_NAME),
    ("ScanningSequence", tags::SCANNING_SEQUENCE),
    ("SequenceName", tags::SEQUENCE_NAME),
    ("Laterality", tags::LATERALITY),
    ("ImageLaterality", tags::IMAGE_LATERALITY),
    ("MagneticFieldStrength", tags::MAGNETIC_FIELD_STRENGTH),
];

impl InstanceHeader {
    /// Read the identity from a data set that passed the checks of [`crate::untrusted`],
    /// from the prefix that holds it: the pixel data is never parsed or copied here.
    pub fn from_checked(checked: &Checked) -> Result<Self, HeaderError> {
        let unparseable = |reason: String| HeaderError::Unparseable {
            transfer_syntax: checked.header_transfer_syntax.to_string(),
            reason,
        };
        let ts = TransferSyntaxRegistry
            .get(checked.header_transfer_syntax)
            .ok_or_else(|| unparseable("unknown transfer syntax".into()))?;
        let obj = InMemDicomObject::read_dataset_with_ts(checked.header.as_slice(), ts)
            .map_err(|e| unparseable(e.to_string()))?;
        Self::from_object(&obj)
    }

    /// Read the identity from a parsed data set.
    pub fn from_object(obj: &InMemDicomObject) -> Result<Self, HeaderError> {
        let uid = |tag: Tag, attribute: &'static str| -> Result<String, HeaderError> {
            let value = text(obj, tag);
            if value.is_empty() {
                return Err(HeaderError::MissingAttribute(attribute));
            }
            if !is_path_safe_uid(&value) {
                return Err(HeaderError::InvalidUid { attribute, value });
            }
            Ok(value)
        };
        Ok(InstanceHeader {
            sop_class_uid: uid(tags::SOP_CLASS_UID, "SOPClassUID")?,
            sop_instance_uid: uid(tags::SOP_INSTANCE_UID, "SOPInstanceUID")?,
            study_uid: uid(tags::STUDY_INSTANCE_UID, "StudyInstanceUID")?,
            series_uid: uid(tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")?,
            patient_id: text(obj, tags::PATIENT_ID),
            patient_name: text(obj, tags::PATIENT_NAME),
            study_date: text(obj, tags::STUDY_DATE),
            accession_number: text(obj, tags::ACCESSION_NUMBER),
            modality: text(obj, tags::MODALITY),
            series_number: text(obj, tags::SERIES_NUMBER).parse().ok(),
            series_description: text(obj, tags::SERIES_DESCRIPTION),
            instance_number: text(obj, tags::INSTANCE_NUMBER).parse().ok(),
            series_time: text(obj, tags::SERIES_TIME),
            acquisition_time: text(obj, tags::ACQUISITION_TIME),
            temporal_position: text(obj, tags::TEMPORAL_POSITION_IDENTIFIER).parse().ok(),
            attributes: RULE_ATTRIBUTES
                .iter()
                .map(|(keyword, tag)| (keyword.to_string(), text(obj, *tag)))
                .filter(|(_, v)| !v.is_empty())
                .collect(),
        })
    }

    /// The C-STORE command and its data set must name the same SOP class and instance.
    pub fn check_against_command(
        &self,
        sop_class_uid: &str,
        sop_instance_uid: &str,
    ) -> Result<(), HeaderError> {
        if trim_uid(sop_class_uid) != self.sop_class_uid {
            return Err(HeaderError::CommandMismatch {
                attribute: "SOPClassUID",
                in_command: sop_class_uid.to_string(),
                in_dataset: self.sop_class_uid.clone(),
            });
        }
        if trim_uid(sop_instance_uid) != self.sop_instance_uid {
            return Err(HeaderError::CommandMismatch {
                attribute: "SOPInstanceUID",
                in_command: sop_instance_uid.to_string(),
                in_dataset: self.sop_instance_uid.clone(),
            });
        }
        Ok(())
    }
}

/// A trimmed string value, empty when absent or not text.
fn text(obj: &InMemDicomObject, tag: Tag) -> String {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).trim_start().to_string())
        .unwrap_or_default()
}

/// UIDs become path components, so only digits and dots are allowed (which every valid UID
/// satisfies); real-world UIDs with leading zeros in a component are tolerated.
fn is_path_safe_uid(uid: &str) -> bool {
    uid.len() <= 64
        && uid.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && uid.split('.').all(|c| !c.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_safety() {
        assert!(is_path_safe_uid("1.2.840.113619.2.55"));
        assert!(!is_path_safe_uid("../../etc"));
        assert!(!is_path_safe_uid("1..2"));
        assert!(!is_path_safe_uid("1.2/3"));
    }
}

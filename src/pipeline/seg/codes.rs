//! Coded concepts used in SEG objects, in one place: the SNOMED CT (`SCT`) segment
//! categories and types the pipelines describe their segments with, and the DICOM (`DCM`)
//! codes the encoder itself writes. Also the Code Sequence Macro item (PS3.3 8.8) for a code.

use dicom_core::VR;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::elements::{obj, text};
use super::error::SegError;

/// A coded concept: Code Value, Coding Scheme Designator, Code Meaning.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Code {
    /// Code Value (0008,0100), e.g. `108369006`; at most 16 characters.
    pub value: String,
    /// Coding Scheme Designator (0008,0102), e.g. `SCT` or `DCM`.
    pub scheme: String,
    /// Code Meaning (0008,0104), the human-readable text; at most 64 characters.
    pub meaning: String,
}

impl Code {
    /// A code from any scheme.
    pub fn new(
        value: impl Into<String>,
        scheme: impl Into<String>,
        meaning: impl Into<String>,
    ) -> Self {
        Code {
            value: value.into(),
            scheme: scheme.into(),
            meaning: meaning.into(),
        }
    }

    /// A SNOMED CT code (scheme designator `SCT`).
    pub fn sct(value: impl Into<String>, meaning: impl Into<String>) -> Self {
        Code::new(value, "SCT", meaning)
    }

    /// Check that the code fits the VRs it is written with (SH, SH, LO), naming `field`
    /// in the error.
    pub fn validate(&self, field: &str) -> Result<(), SegError> {
        let check = |what: &str, v: &str, max: usize| {
            if v.trim().is_empty() {
                Err(SegError::setting(field, format!("{what} is empty")))
            } else if v.chars().count() > max {
                Err(SegError::setting(
                    field,
                    format!("{what} {v:?} is longer than {max} characters"),
                ))
            } else if v.contains('\\') || v.chars().any(char::is_control) {
                Err(SegError::setting(
                    field,
                    format!("{what} {v:?} contains a backslash or control character"),
                ))
            } else {
                Ok(())
            }
        };
        check("code value", &self.value, 16)?;
        check("coding scheme designator", &self.scheme, 16)?;
        check("code meaning", &self.meaning, 64)
    }

    /// The Code Sequence Macro item for this code.
    pub fn to_item(&self) -> InMemDicomObject {
        obj([
            text(tags::CODE_VALUE, VR::SH, &self.value),
            text(tags::CODING_SCHEME_DESIGNATOR, VR::SH, &self.scheme),
            text(tags::CODE_MEANING, VR::LO, &self.meaning),
        ])
    }
}

/// A coded concept known at compile time; [`KnownCode::code`] gives the owned [`Code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownCode {
    /// Code Value.
    pub value: &'static str,
    /// Coding Scheme Designator.
    pub scheme: &'static str,
    /// Code Meaning.
    pub meaning: &'static str,
}

impl KnownCode {
    /// The owned [`Code`] for this concept.
    pub fn code(&self) -> Code {
        Code::new(self.value, self.scheme, self.meaning)
    }
}

impl From<KnownCode> for Code {
    fn from(k: KnownCode) -> Code {
        k.code()
    }
}

const fn sct(value: &'static str, meaning: &'static str) -> KnownCode {
    KnownCode {
        value,
        scheme: "SCT",
        meaning,
    }
}

const fn dcm(value: &'static str, meaning: &'static str) -> KnownCode {
    KnownCode {
        value,
        scheme: "DCM",
        meaning,
    }
}

// --- Segmented property categories (CID 7150) -------------------------------------------

/// Category of lesions and tumours.
pub const MORPHOLOGICALLY_ABNORMAL_STRUCTURE: KnownCode =
    sct("49755003", "Morphologically abnormal structure");
/// Category of normal anatomy.
pub const ANATOMICAL_STRUCTURE: KnownCode = sct("91723000", "Anatomical structure");

// --- Segmented property types -------------------------------------------------------------

/// Tumour (CID 7151 / 7194).
pub const NEOPLASM: KnownCode = sct("108369006", "Neoplasm");
/// Fetal head: brain.
pub const BRAIN: KnownCode = sct("12738006", "Brain");
/// Fetal head: cavum septi pellucidi.
pub const CAVUM_SEPTI_PELLUCIDI: KnownCode = sct("74968005", "Cavum of septum pellucidum");
/// Fetal head: lateral ventricle.
pub const LATERAL_VENTRICLE: KnownCode = sct("66720007", "Lateral ventricle");

// --- Codes the encoder writes -------------------------------------------------------------

/// Derivation Code Sequence of every frame: the frame is a segmentation of its source.
pub const DERIVATION_SEGMENTATION: KnownCode = dcm("113076", "Segmentation");
/// Purpose of Reference of a Source Image Sequence item.
pub const SOURCE_IMAGE_FOR_PROCESSING: KnownCode =
    dcm("121322", "Source image for image processing operation");
/// Algorithm Family of a trained model.
pub const ARTIFICIAL_INTELLIGENCE: KnownCode = dcm("123110", "Artificial Intelligence");

/// The category/type pair for a tumour segment (DCE-MRI pipeline).
pub fn tumour() -> (Code, Code) {
    (MORPHOLOGICALLY_ABNORMAL_STRUCTURE.code(), NEOPLASM.code())
}

/// The category/type pair for an anatomical structure of the given type.
pub fn anatomy(structure: KnownCode) -> (Code, Code) {
    (ANATOMICAL_STRUCTURE.code(), structure.code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_fit_their_vrs() {
        for k in [
            MORPHOLOGICALLY_ABNORMAL_STRUCTURE,
            ANATOMICAL_STRUCTURE,
            NEOPLASM,
            BRAIN,
            CAVUM_SEPTI_PELLUCIDI,
            LATERAL_VENTRICLE,
            DERIVATION_SEGMENTATION,
            SOURCE_IMAGE_FOR_PROCESSING,
            ARTIFICIAL_INTELLIGENCE,
        ] {
            k.code().validate(k.meaning).unwrap();
        }
        assert_eq!(tumour().1.value, "108369006");
    }

    #[test]
    fn rejects_overlong_or_empty_parts() {
        assert!(Code::sct("", "x").validate("c").is_err());
        assert!(Code::sct("12345678901234567", "x").validate("c").is_err());
        assert!(Code::sct("1", "a\\b").validate("c").is_err());
    }
}

//! What each segment is (label, SNOMED CT category and type, producing algorithm) and its
//! Segment Sequence item (PS3.3 C.8.20.2, Segment Description Macro).

use dicom_core::VR;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::codes::{ARTIFICIAL_INTELLIGENCE, Code};
use super::elements::{check_lo, obj, seq, text, us};
use super::error::SegError;

/// Description of one segment; segment `s + 1` of the SEG is `segments[s]`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SegmentSpec {
    /// SegmentLabel shown by viewers, e.g. `Tumour` (LO, at most 64 characters).
    pub label: String,
    /// Segmented Property Category, e.g. SCT 49755003 "Morphologically abnormal structure".
    pub category: Code,
    /// Segmented Property Type, e.g. SCT 108369006 "Neoplasm".
    pub property_type: Code,
    /// Name of the algorithm (model) that produced the segment (SegmentAlgorithmName and
    /// AlgorithmName).
    pub algorithm_name: String,
    /// Version of that algorithm (AlgorithmVersion), e.g. the model file's version or hash.
    pub algorithm_version: String,
    /// Display colour as CIELab scaled to 0..65535 (RecommendedDisplayCIELabValue), if any.
    pub recommended_cielab: Option<[u16; 3]>,
}

impl SegmentSpec {
    /// Check that every value fits its VR; `index` is the 0-based position in the list.
    pub fn validate(&self, index: usize) -> Result<(), SegError> {
        let field = |name: &str| format!("segments[{index}].{name}");
        check_lo(&field("label"), &self.label, true)?;
        check_lo(&field("algorithm_name"), &self.algorithm_name, true)?;
        check_lo(&field("algorithm_version"), &self.algorithm_version, true)?;
        self.category.validate(&field("category"))?;
        self.property_type.validate(&field("property_type"))
    }

    /// The Segment Sequence item for segment number `number` (1-based).
    pub(crate) fn to_item(&self, number: u16) -> InMemDicomObject {
        let mut item = obj([
            us(tags::SEGMENT_NUMBER, &[number]),
            text(tags::SEGMENT_LABEL, VR::LO, &self.label),
            text(tags::SEGMENT_ALGORITHM_TYPE, VR::CS, "AUTOMATIC"),
            text(tags::SEGMENT_ALGORITHM_NAME, VR::LO, &self.algorithm_name),
            seq(
                tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE,
                vec![self.category.to_item()],
            ),
            seq(
                tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE,
                vec![self.property_type.to_item()],
            ),
            seq(
                tags::SEGMENTATION_ALGORITHM_IDENTIFICATION_SEQUENCE,
                vec![obj([
                    seq(
                        tags::ALGORITHM_FAMILY_CODE_SEQUENCE,
                        vec![ARTIFICIAL_INTELLIGENCE.code().to_item()],
                    ),
                    text(tags::ALGORITHM_NAME, VR::LO, &self.algorithm_name),
                    text(tags::ALGORITHM_VERSION, VR::LO, &self.algorithm_version),
                ])],
            ),
        ]);
        if let Some(lab) = self.recommended_cielab {
            item.put(us(tags::RECOMMENDED_DISPLAY_CIE_LAB_VALUE, &lab));
        }
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::seg::codes::tumour;

    fn spec() -> SegmentSpec {
        let (category, property_type) = tumour();
        SegmentSpec {
            label: "Tumour".into(),
            category,
            property_type,
            algorithm_name: "SwinUNETR".into(),
            algorithm_version: "1.0".into(),
            recommended_cielab: Some([1, 2, 3]),
        }
    }

    #[test]
    fn item_has_automatic_algorithm_and_codes() {
        let item = spec().to_item(2);
        assert_eq!(
            item.get(tags::SEGMENT_NUMBER)
                .unwrap()
                .to_int::<u16>()
                .unwrap(),
            2
        );
        assert_eq!(
            item.get(tags::SEGMENT_ALGORITHM_TYPE)
                .unwrap()
                .to_str()
                .unwrap(),
            "AUTOMATIC"
        );
        assert_eq!(
            item.get(tags::SEGMENT_ALGORITHM_NAME)
                .unwrap()
                .to_str()
                .unwrap(),
            "SwinUNETR"
        );
        let ty = &item
            .get(tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE)
            .unwrap()
            .items()
            .unwrap()[0];
        assert_eq!(
            ty.get(tags::CODE_VALUE).unwrap().to_str().unwrap(),
            "108369006"
        );
        assert!(item.get(tags::RECOMMENDED_DISPLAY_CIE_LAB_VALUE).is_some());
    }

    #[test]
    fn validation_names_the_field() {
        let mut s = spec();
        s.label = String::new();
        let err = s.validate(1).unwrap_err().to_string();
        assert!(err.contains("segments[1].label"), "{err}");
        let mut s = spec();
        s.algorithm_name = "x".repeat(65);
        assert!(s.validate(0).is_err());
    }
}

//! The other inputs of a multi-channel model, recorded without attaching the SEG to them.
//!
//! A DCE model reads four phases, but the SEG's frames lie on the reference phase only.
//! Every SOP Instance the SEG references must also appear in the Common Instance Reference
//! module (PS3.3 C.12.2), and OHIF attaches a SEG to the first loaded series that module
//! names, so instance-level references to the other phases (per-frame Source Image
//! Sequence, General Reference module) would make the display depend on load order. The
//! General Series module's Related Series Sequence (0008,1250) names series, not
//! instances: each other input is listed there with the purpose of reference
//! (121322, DCM, "Source image for image processing operation").

use dicom_core::VR;
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemElement;

use super::codes::SOURCE_IMAGE_FOR_PROCESSING;
use super::elements::{obj, seq, text};
use super::options::SeriesReference;

/// Related Series Sequence naming `others` (series of study `study_uid`), or `None` when
/// there are none.
pub(crate) fn related_series(study_uid: &str, others: &[SeriesReference]) -> Option<InMemElement> {
    if others.is_empty() {
        return None;
    }
    let items = others
        .iter()
        .map(|other| {
            obj([
                text(tags::STUDY_INSTANCE_UID, VR::UI, study_uid),
                text(
                    tags::SERIES_INSTANCE_UID,
                    VR::UI,
                    &other.series_instance_uid,
                ),
                seq(
                    tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
                    vec![SOURCE_IMAGE_FOR_PROCESSING.code().to_item()],
                ),
            ])
        })
        .collect();
    Some(seq(tags::RELATED_SERIES_SEQUENCE, items))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::seg::elements::get_str;

    #[test]
    fn names_each_other_series_with_its_study_and_purpose() {
        assert!(related_series("1.2", &[]).is_none());
        let others = ["1.2.3", "1.2.4"].map(|uid| SeriesReference {
            series_instance_uid: uid.into(),
        });
        let element = related_series("1.2", &others).unwrap();
        let items = element.items().unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(
            get_str(&items[1], tags::SERIES_INSTANCE_UID).as_deref(),
            Some("1.2.4")
        );
        assert_eq!(
            get_str(&items[0], tags::STUDY_INSTANCE_UID).as_deref(),
            Some("1.2")
        );
        let purpose = &items[0]
            .get(tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE)
            .unwrap()
            .items()
            .unwrap()[0];
        assert_eq!(
            get_str(purpose, tags::CODE_VALUE).as_deref(),
            Some("121322")
        );
    }
}

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

//! Attribute reads for the synth tests: the value of an element as a test expects it, or
//! a panic naming the missing tag.

use dicom_object::InMemDicomObject;

pub(super) fn text(obj: &InMemDicomObject, tag: dicom_core::Tag) -> String {
    obj.element(tag)
        .unwrap_or_else(|_| panic!("{tag} missing"))
        .to_str()
        .unwrap()
        .trim_end_matches(['\0', ' '])
        .to_string()
}

pub(super) fn float(obj: &InMemDicomObject, tag: dicom_core::Tag) -> f64 {
    obj.element(tag)
        .unwrap_or_else(|_| panic!("{tag} missing"))
        .to_float64()
        .unwrap()
}

pub(super) fn floats(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Vec<f64> {
    obj.element(tag)
        .unwrap_or_else(|_| panic!("{tag} missing"))
        .to_multi_float64()
        .unwrap()
}

pub(super) fn int(obj: &InMemDicomObject, tag: dicom_core::Tag) -> i64 {
    obj.element(tag)
        .unwrap_or_else(|_| panic!("{tag} missing"))
        .to_int::<i64>()
        .unwrap()
}

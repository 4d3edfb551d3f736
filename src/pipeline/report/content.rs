//! SR content items (PS3.3 C.17.3): one constructor per value type segnode writes
//! (CONTAINER, CODE, TEXT, UIDREF, IMAGE, NUM), so that `sr` reads as the template tree.

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_object::mem::InMemElement;

use crate::pipeline::seg::elements::{obj, seq, text, us};
use crate::pipeline::seg::{Code, KnownCode};

pub(super) fn concept_name(name: KnownCode) -> InMemElement {
    seq(
        tags::CONCEPT_NAME_CODE_SEQUENCE,
        vec![name.code().to_item()],
    )
}

pub(super) fn template(id: &str) -> InMemElement {
    seq(
        tags::CONTENT_TEMPLATE_SEQUENCE,
        vec![obj([
            text(tags::MAPPING_RESOURCE, VR::CS, "DCMR"),
            text(tags::TEMPLATE_IDENTIFIER, VR::CS, id),
        ])],
    )
}

pub(super) fn item(relationship: &str, value_type: &str, name: KnownCode) -> InMemDicomObject {
    obj([
        text(tags::RELATIONSHIP_TYPE, VR::CS, relationship),
        text(tags::VALUE_TYPE, VR::CS, value_type),
        concept_name(name),
    ])
}

pub(super) fn container(
    relationship: &str,
    name: KnownCode,
    template_id: Option<&str>,
    content: Vec<InMemDicomObject>,
) -> InMemDicomObject {
    let mut c = item(relationship, "CONTAINER", name);
    c.put(text(tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE"));
    if let Some(id) = template_id {
        c.put(template(id));
    }
    c.put(seq(tags::CONTENT_SEQUENCE, content));
    c
}

pub(super) fn code_item(relationship: &str, name: KnownCode, value: &Code) -> InMemDicomObject {
    let mut c = item(relationship, "CODE", name);
    c.put(seq(tags::CONCEPT_CODE_SEQUENCE, vec![value.to_item()]));
    c
}

pub(super) fn text_item(relationship: &str, name: KnownCode, value: &str) -> InMemDicomObject {
    let mut c = item(relationship, "TEXT", name);
    c.put(text(tags::TEXT_VALUE, VR::UT, value));
    c
}

pub(super) fn uid_item(relationship: &str, name: KnownCode, uid: &str) -> InMemDicomObject {
    let mut c = item(relationship, "UIDREF", name);
    c.put(text(tags::UID, VR::UI, uid));
    c
}

pub(super) fn image_item(
    name: KnownCode,
    class: &str,
    instance: &str,
    frame: Option<u32>,
    segment: Option<u16>,
) -> InMemDicomObject {
    let mut reference = obj([
        text(tags::REFERENCED_SOP_CLASS_UID, VR::UI, class),
        text(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, instance),
    ]);
    if let Some(f) = frame {
        reference.put(text(tags::REFERENCED_FRAME_NUMBER, VR::IS, &f.to_string()));
    }
    if let Some(s) = segment {
        reference.put(us(tags::REFERENCED_SEGMENT_NUMBER, &[s]));
    }
    let mut c = item("CONTAINS", "IMAGE", name);
    c.put(seq(tags::REFERENCED_SOP_SEQUENCE, vec![reference]));
    c
}

/// A NUM item (TID 300): the value as DS and as exact FD, with its UCUM unit.
pub(super) fn num_item(name: KnownCode, value: f64, unit: KnownCode) -> InMemDicomObject {
    let mut c = item("CONTAINS", "NUM", name);
    c.put(seq(
        tags::MEASURED_VALUE_SEQUENCE,
        vec![obj([
            seq(
                tags::MEASUREMENT_UNITS_CODE_SEQUENCE,
                vec![unit.code().to_item()],
            ),
            DataElement::new(
                tags::FLOATING_POINT_VALUE,
                VR::FD,
                PrimitiveValue::from(value),
            ),
            text(tags::NUMERIC_VALUE, VR::DS, &decimal_string(value)),
        ])],
    ));
    c
}

/// `v` as a DS (at most 16 characters), with as many decimals as fit, up to 6.
pub(crate) fn decimal_string(v: f64) -> String {
    for decimals in (0..=6).rev() {
        let mut s = format!("{v:.decimals$}");
        if s.contains('.') {
            s = s.trim_end_matches('0').trim_end_matches('.').to_string();
        }
        if s == "-0" {
            s = "0".into();
        }
        if s.len() <= 16 {
            return s;
        }
    }
    format!("{v:.6e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_strings_fit_ds() {
        assert_eq!(decimal_string(12.5), "12.5");
        assert_eq!(decimal_string(3.0), "3");
        assert_eq!(decimal_string(0.123456789), "0.123457");
        assert_eq!(decimal_string(-0.0000001), "0");
        assert!(decimal_string(123_456_789_012.345).len() <= 16);
    }
}

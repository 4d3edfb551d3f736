//! Small constructors and accessors for DICOM elements, so that the SEG modules read as
//! lists of attributes rather than as dicom-rs plumbing, and the value rules (LO, PN) that
//! the header, the options and the segments share.

use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_object::InMemDicomObject;
use dicom_object::mem::InMemElement;

use super::error::SegError;

/// A single-valued text element (CS, LO, SH, UI, DA, TM, PN, DS, IS, ...).
pub(crate) fn text(tag: Tag, vr: VR, value: &str) -> InMemElement {
    DataElement::new(tag, vr, PrimitiveValue::from(value))
}

/// A multi-valued text element; the values are written as given, separated by `\`.
pub(crate) fn texts<S: AsRef<str>>(tag: Tag, vr: VR, values: &[S]) -> InMemElement {
    let values = values.iter().map(|v| v.as_ref().to_string()).collect();
    DataElement::new(tag, vr, PrimitiveValue::Strs(values))
}

/// A zero-length element (a Type 2 attribute whose value is unknown).
pub(crate) fn empty(tag: Tag, vr: VR) -> InMemElement {
    DataElement::new(tag, vr, PrimitiveValue::Empty)
}

/// An US element with one or more values.
pub(crate) fn us(tag: Tag, values: &[u16]) -> InMemElement {
    DataElement::new(
        tag,
        VR::US,
        PrimitiveValue::U16(values.iter().copied().collect()),
    )
}

/// An UL element with one or more values.
pub(crate) fn ul(tag: Tag, values: &[u32]) -> InMemElement {
    DataElement::new(
        tag,
        VR::UL,
        PrimitiveValue::U32(values.iter().copied().collect()),
    )
}

/// An AT element (attribute tags) with one or more values.
pub(crate) fn at(tag: Tag, values: &[Tag]) -> InMemElement {
    DataElement::new(
        tag,
        VR::AT,
        PrimitiveValue::Tags(values.iter().copied().collect()),
    )
}

/// A sequence element with the given items, of undefined length.
pub(crate) fn seq(tag: Tag, items: Vec<InMemDicomObject>) -> InMemElement {
    DataElement::new(tag, VR::SQ, DataSetSequence::new(items, Length::UNDEFINED))
}

/// A data set (sequence item) made of the given elements.
pub(crate) fn obj(elements: impl IntoIterator<Item = InMemElement>) -> InMemDicomObject {
    InMemDicomObject::from_element_iter(elements)
}

/// The value of a text element, trimmed of padding; `None` when absent or empty.
pub(crate) fn get_str(ds: &InMemDicomObject, tag: Tag) -> Option<String> {
    let v = ds.get(tag)?.to_str().ok()?;
    // UI values are NUL-padded, text values space-padded.
    let v = v.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!v.is_empty()).then(|| v.to_string())
}

/// The values of a multi-valued text element, each trimmed; empty when absent.
pub(crate) fn get_strs(ds: &InMemDicomObject, tag: Tag) -> Vec<String> {
    ds.get(tag)
        .and_then(|e| e.to_multi_str().ok())
        .map(|vs| {
            vs.iter()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// The items of a sequence element; empty when absent or not a sequence.
pub(crate) fn get_items(ds: &InMemDicomObject, tag: Tag) -> &[InMemDicomObject] {
    ds.get(tag).and_then(|e| e.items()).unwrap_or(&[])
}

/// The first item of a sequence element.
pub(crate) fn first_item(ds: &InMemDicomObject, tag: Tag) -> Option<&InMemDicomObject> {
    get_items(ds, tag).first()
}

/// An integer element's first value as `u32` (US, UL, IS ...).
pub(crate) fn get_u32(ds: &InMemDicomObject, tag: Tag) -> Option<u32> {
    ds.get(tag)?.to_int::<u32>().ok()
}

/// All values of an integer element as `u32`; empty when absent.
pub(crate) fn get_u32s(ds: &InMemDicomObject, tag: Tag) -> Vec<u32> {
    ds.get(tag)
        .and_then(|e| e.to_multi_int::<u32>().ok())
        .unwrap_or_default()
}

/// Check a LO value: at most 64 characters, no backslash or control characters; non-empty
/// when `required`.
pub(crate) fn check_lo(field: &str, value: &str, required: bool) -> Result<(), SegError> {
    if required && value.trim().is_empty() {
        return Err(SegError::setting(
            field,
            "is empty but DICOM requires a value",
        ));
    }
    if value.chars().count() > 64 {
        return Err(SegError::setting(
            field,
            format!("{value:?} is longer than 64 characters"),
        ));
    }
    if value.contains('\\') || value.chars().any(char::is_control) {
        return Err(SegError::setting(
            field,
            format!("{value:?} contains a backslash or control character"),
        ));
    }
    Ok(())
}

/// A person name in the current PN form: a bare name gets a trailing `^` (family name
/// with an empty given name), which is what `dciodvfy` expects instead of the retired form.
pub(crate) fn person_name(name: &str) -> String {
    let name = name.trim();
    if name.is_empty() || name.contains('^') || name.contains('=') {
        name.to_string()
    } else {
        format!("{name}^")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_names_get_a_component_separator() {
        assert_eq!(person_name("segnode"), "segnode^");
        assert_eq!(person_name("Doe^John"), "Doe^John");
        assert_eq!(person_name(""), "");
    }

    #[test]
    fn lo_values_are_checked_for_length_backslash_and_presence() {
        assert!(check_lo("label", "Tumour", true).is_ok());
        assert!(check_lo("series_description", "", false).is_ok());
        let empty = check_lo("label", " ", true).unwrap_err().to_string();
        assert!(
            empty.contains("label") && empty.contains("empty"),
            "{empty}"
        );
        let long = check_lo("label", &"x".repeat(65), true)
            .unwrap_err()
            .to_string();
        assert!(long.contains("64"), "{long}");
        let multi = check_lo("label", "a\\b", true).unwrap_err().to_string();
        assert!(multi.contains("backslash"), "{multi}");
    }
}

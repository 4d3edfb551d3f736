//! The SEG's non-image modules: Patient, Study and Clinical Trial attributes copied from a
//! source instance, General and Enhanced General Equipment, dates, and the character set.

use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::elements::{empty, text};
use super::error::SegError;
use super::options::SegOptions;

/// Manufacturer written into the equipment modules.
pub const MANUFACTURER: &str = "segnode";

/// Patient, Patient Study, General Study and Clinical Trial attributes copied verbatim from
/// the source when present (PS3.3 C.7.1.1, C.7.1.3, C.7.2.1, C.7.2.2, C.7.2.3).
const COPIED: &[Tag] = &[
    // Patient
    tags::PATIENT_NAME,
    tags::PATIENT_ID,
    tags::ISSUER_OF_PATIENT_ID,
    tags::ISSUER_OF_PATIENT_ID_QUALIFIERS_SEQUENCE,
    tags::TYPE_OF_PATIENT_ID,
    tags::PATIENT_BIRTH_DATE,
    tags::PATIENT_BIRTH_TIME,
    tags::PATIENT_SEX,
    tags::OTHER_PATIENT_I_DS_SEQUENCE,
    tags::PATIENT_COMMENTS,
    tags::PATIENT_SPECIES_DESCRIPTION,
    tags::PATIENT_SPECIES_CODE_SEQUENCE,
    tags::PATIENT_BREED_DESCRIPTION,
    tags::PATIENT_BREED_CODE_SEQUENCE,
    tags::BREED_REGISTRATION_SEQUENCE,
    tags::RESPONSIBLE_PERSON,
    tags::RESPONSIBLE_PERSON_ROLE,
    tags::RESPONSIBLE_ORGANIZATION,
    tags::PATIENT_IDENTITY_REMOVED,
    tags::DEIDENTIFICATION_METHOD,
    tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE,
    // Clinical Trial Subject
    tags::CLINICAL_TRIAL_SPONSOR_NAME,
    tags::CLINICAL_TRIAL_PROTOCOL_ID,
    tags::CLINICAL_TRIAL_PROTOCOL_NAME,
    tags::CLINICAL_TRIAL_SITE_ID,
    tags::CLINICAL_TRIAL_SITE_NAME,
    tags::CLINICAL_TRIAL_SUBJECT_ID,
    tags::CLINICAL_TRIAL_SUBJECT_READING_ID,
    // General Study
    tags::STUDY_INSTANCE_UID,
    tags::STUDY_DATE,
    tags::STUDY_TIME,
    tags::REFERRING_PHYSICIAN_NAME,
    tags::STUDY_ID,
    tags::ACCESSION_NUMBER,
    tags::ISSUER_OF_ACCESSION_NUMBER_SEQUENCE,
    tags::STUDY_DESCRIPTION,
    tags::PROCEDURE_CODE_SEQUENCE,
    // Patient Study
    tags::PATIENT_AGE,
    tags::PATIENT_SIZE,
    tags::PATIENT_WEIGHT,
    tags::PATIENT_SEX_NEUTERED,
    tags::ADDITIONAL_PATIENT_HISTORY,
    tags::PREGNANCY_STATUS,
    // Clinical Trial Study
    tags::CLINICAL_TRIAL_TIME_POINT_ID,
    tags::CLINICAL_TRIAL_TIME_POINT_DESCRIPTION,
];

/// Type 2 attributes among [`COPIED`]: written empty when the source lacks them.
const REQUIRED_EMPTY: &[(Tag, VR)] = &[
    (tags::PATIENT_NAME, VR::PN),
    (tags::PATIENT_ID, VR::LO),
    (tags::PATIENT_BIRTH_DATE, VR::DA),
    (tags::PATIENT_SEX, VR::CS),
    (tags::STUDY_DATE, VR::DA),
    (tags::STUDY_TIME, VR::TM),
    (tags::REFERRING_PHYSICIAN_NAME, VR::PN),
    (tags::STUDY_ID, VR::SH),
    (tags::ACCESSION_NUMBER, VR::SH),
];

/// Copy the patient and study attributes of `source` into `out`.
pub(crate) fn copy_patient_and_study(
    source: &InMemDicomObject,
    out: &mut InMemDicomObject,
) -> Result<(), SegError> {
    for &tag in COPIED {
        if let Some(e) = source.get(tag) {
            out.put(e.clone());
        }
    }
    for &(tag, vr) in REQUIRED_EMPTY {
        if out.get(tag).is_none() {
            out.put(empty(tag, vr));
        }
    }
    let study_uid = out
        .get(tags::STUDY_INSTANCE_UID)
        .and_then(|e| e.to_str().ok());
    if study_uid.is_none_or(|u| u.trim().is_empty()) {
        return Err(SegError::MissingSourceAttribute("StudyInstanceUID"));
    }
    Ok(())
}

/// General Equipment and Enhanced General Equipment (PS3.3 C.7.5.1, C.7.5.2).
pub(crate) fn put_equipment(out: &mut InMemDicomObject, options: &SegOptions) {
    out.put(text(tags::MANUFACTURER, VR::LO, MANUFACTURER));
    out.put(text(
        tags::MANUFACTURER_MODEL_NAME,
        VR::LO,
        &options.manufacturer_model,
    ));
    out.put(text(
        tags::DEVICE_SERIAL_NUMBER,
        VR::LO,
        &options.device_serial,
    ));
    out.put(text(
        tags::SOFTWARE_VERSIONS,
        VR::LO,
        &options.software_version,
    ));
}

/// Set SpecificCharacterSet to UTF-8 (`ISO_IR 192`) when any text in `out` is not ASCII;
/// otherwise leave it out (the default repertoire).
pub(crate) fn put_character_set(out: &mut InMemDicomObject) {
    out.remove_element(tags::SPECIFIC_CHARACTER_SET);
    if !is_ascii(out) {
        out.put(text(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192"));
    }
}

fn is_ascii(ds: &InMemDicomObject) -> bool {
    ds.iter().all(|e| match e.value() {
        Value::Primitive(PrimitiveValue::Str(s)) => s.is_ascii(),
        Value::Primitive(PrimitiveValue::Strs(ss)) => ss.iter().all(|s| s.is_ascii()),
        Value::Sequence(items) => items.items().iter().all(is_ascii),
        _ => true,
    })
}

/// The current UTC date and time as DICOM DA (`YYYYMMDD`) and TM (`HHMMSS.FFFFFF`).
pub(crate) fn now_utc() -> (String, String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    let date = format!("{y:04}{m:02}{d:02}");
    let time = format!(
        "{:02}{:02}{:02}.{:06}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        now.subsec_micros()
    );
    (date, time)
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::seg::elements::obj;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        let (date, time) = now_utc();
        assert_eq!(date.len(), 8);
        assert_eq!(time.len(), 13);
    }

    #[test]
    fn copies_study_and_fills_type_2() {
        let source = obj([
            text(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3"),
            text(tags::PATIENT_NAME, VR::PN, "Müller^Jürgen"),
            text(tags::MODALITY, VR::CS, "MR"),
        ]);
        let mut out = InMemDicomObject::new_empty();
        copy_patient_and_study(&source, &mut out).unwrap();
        assert!(
            out.get(tags::MODALITY).is_none(),
            "series attributes are not copied"
        );
        assert!(out.get(tags::ACCESSION_NUMBER).is_some());
        put_character_set(&mut out);
        assert_eq!(
            out.get(tags::SPECIFIC_CHARACTER_SET)
                .unwrap()
                .to_str()
                .unwrap(),
            "ISO_IR 192"
        );
        let mut out = InMemDicomObject::new_empty();
        assert!(copy_patient_and_study(&obj([]), &mut out).is_err());
    }
}

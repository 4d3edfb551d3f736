//! One overlay frame as a DICOM instance: Secondary Capture Image Storage
//! (1.2.840.10008.5.1.4.1.1.7, PS3.3 A.8.1), 8-bit RGB, pixel-interleaved, with the
//! patient and study of its source, its own series, and references to the source
//! instance (and frame) it was rendered from.

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileDicomObject, FileMetaTableBuilder, InMemDicomObject};

use super::{Canvas, OverlayError, OverlayOptions};
use crate::pipeline::seg::MANUFACTURER;
use crate::pipeline::seg::SourceSlice;
use crate::pipeline::seg::codes::SOURCE_IMAGE_FOR_PROCESSING;
use crate::pipeline::seg::elements::{empty, obj, seq, text, texts, us};
use crate::pipeline::seg::header::{copy_patient_and_study, put_character_set};
use crate::uids::{
    EXPLICIT_VR_LE, IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME,
    SECONDARY_CAPTURE_IMAGE_STORAGE, new_uid,
};

/// What is shared by every instance of one overlay series.
pub(super) struct SeriesIdentity {
    /// Series Instance UID of the overlay series.
    pub series_uid: String,
    /// Creation date (DA) and time (TM), one for the whole series.
    pub date: String,
    pub time: String,
    /// PixelSpacing of the source (row, column), verbatim, when known.
    pub pixel_spacing: Option<[String; 2]>,
    /// PatientOrientation (row direction, column direction) from the source orientation.
    pub patient_orientation: Option<[String; 2]>,
    /// DerivationDescription of every image.
    pub derivation: String,
    pub options: OverlayOptions,
}

/// Encode one rendered frame.
pub(super) fn encode_instance(
    identity: &SeriesIdentity,
    header: &InMemDicomObject,
    slice: &SourceSlice,
    instance_number: u32,
    canvas: &Canvas,
) -> Result<FileDicomObject<InMemDicomObject>, OverlayError> {
    let options = &identity.options;
    let mut ds = InMemDicomObject::new_empty();
    copy_patient_and_study(header, &mut ds).map_err(OverlayError::Source)?;

    // SOP Common
    let sop_instance_uid = new_uid();
    ds.put(text(
        tags::SOP_CLASS_UID,
        VR::UI,
        SECONDARY_CAPTURE_IMAGE_STORAGE,
    ));
    ds.put(text(tags::SOP_INSTANCE_UID, VR::UI, &sop_instance_uid));
    ds.put(text(tags::INSTANCE_CREATION_DATE, VR::DA, &identity.date));
    ds.put(text(tags::INSTANCE_CREATION_TIME, VR::TM, &identity.time));

    // General Series: OT, not the source's modality. Routing rules key on modality (our
    // own Orthanc Lua sends a study's MR series to segnode when they change): an overlay
    // labelled MR would be routed back and segmented again, a loop; and nothing derived
    // by AI should pass for an acquisition in a modality filter.
    ds.put(text(tags::MODALITY, VR::CS, "OT"));
    ds.put(text(
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        &identity.series_uid,
    ));
    ds.put(text(
        tags::SERIES_NUMBER,
        VR::IS,
        &options.series_number.to_string(),
    ));
    ds.put(text(tags::SERIES_DATE, VR::DA, &identity.date));
    ds.put(text(tags::SERIES_TIME, VR::TM, &identity.time));
    ds.put(text(
        tags::SERIES_DESCRIPTION,
        VR::LO,
        &options.series_description,
    ));
    for tag in [
        tags::LATERALITY,
        tags::IMAGE_LATERALITY,
        tags::BODY_PART_EXAMINED,
    ] {
        if let Some(e) = header.get(tag) {
            ds.put(e.clone());
        }
    }
    // Laterality is Type 2C: required (empty when the source does not say which side, a
    // bilateral acquisition) for a paired body part without ImageLaterality, and not
    // allowed empty otherwise (an ultrasound of the fetal head).
    let body_part = crate::pipeline::seg::elements::get_str(header, tags::BODY_PART_EXAMINED);
    if ds.get(tags::LATERALITY).is_none()
        && ds.get(tags::IMAGE_LATERALITY).is_none()
        && body_part.is_some_and(|b| is_paired_body_part(&b))
    {
        ds.put(empty(tags::LATERALITY, VR::CS));
    }

    // General Equipment and SC Equipment
    ds.put(text(tags::MANUFACTURER, VR::LO, MANUFACTURER));
    ds.put(text(
        tags::MANUFACTURER_MODEL_NAME,
        VR::LO,
        &options.manufacturer_model,
    ));
    ds.put(text(
        tags::DEVICE_SERIAL_NUMBER,
        VR::LO,
        &options.device_serial,
    ));
    ds.put(text(
        tags::SOFTWARE_VERSIONS,
        VR::LO,
        &options.software_version,
    ));
    ds.put(text(tags::CONVERSION_TYPE, VR::CS, "WSD"));
    ds.put(text(
        tags::SECONDARY_CAPTURE_DEVICE_MANUFACTURER,
        VR::LO,
        MANUFACTURER,
    ));
    ds.put(text(
        tags::SECONDARY_CAPTURE_DEVICE_MANUFACTURER_MODEL_NAME,
        VR::LO,
        &options.manufacturer_model,
    ));
    ds.put(text(
        tags::SECONDARY_CAPTURE_DEVICE_SOFTWARE_VERSIONS,
        VR::LO,
        &options.software_version,
    ));

    // General Image
    ds.put(text(
        tags::INSTANCE_NUMBER,
        VR::IS,
        &instance_number.to_string(),
    ));
    ds.put(match &identity.patient_orientation {
        Some(o) => texts(tags::PATIENT_ORIENTATION, VR::CS, o),
        None => empty(tags::PATIENT_ORIENTATION, VR::CS),
    });
    ds.put(text(tags::CONTENT_DATE, VR::DA, &identity.date));
    ds.put(text(tags::CONTENT_TIME, VR::TM, &identity.time));
    ds.put(texts(tags::IMAGE_TYPE, VR::CS, &["DERIVED", "SECONDARY"]));
    ds.put(text(
        tags::DERIVATION_DESCRIPTION,
        VR::ST,
        &identity.derivation,
    ));
    ds.put(seq(
        tags::SOURCE_IMAGE_SEQUENCE,
        vec![reference_item(slice, true)],
    ));
    ds.put(seq(
        tags::REFERENCED_IMAGE_SEQUENCE,
        vec![reference_item(slice, false)],
    ));
    ds.put(text(tags::BURNED_IN_ANNOTATION, VR::CS, "YES"));
    // Once lossy, always lossy (PS3.3 C.7.6.1.1.5): the source's history carries over.
    for tag in [
        tags::LOSSY_IMAGE_COMPRESSION,
        tags::LOSSY_IMAGE_COMPRESSION_RATIO,
        tags::LOSSY_IMAGE_COMPRESSION_METHOD,
    ] {
        if let Some(e) = header.get(tag) {
            ds.put(e.clone());
        }
    }

    // SC Image, with the source's pixel size where it is known.
    ds.put(text(
        tags::DATE_OF_SECONDARY_CAPTURE,
        VR::DA,
        &identity.date,
    ));
    ds.put(text(
        tags::TIME_OF_SECONDARY_CAPTURE,
        VR::TM,
        &identity.time,
    ));
    if let Some(spacing) = &identity.pixel_spacing {
        ds.put(texts(tags::PIXEL_SPACING, VR::DS, spacing));
    }

    // Image Pixel
    let rows = u16::try_from(canvas.rows).map_err(|_| OverlayError::TooLarge {
        rows: canvas.rows,
        columns: canvas.columns,
    })?;
    let columns = u16::try_from(canvas.columns).map_err(|_| OverlayError::TooLarge {
        rows: canvas.rows,
        columns: canvas.columns,
    })?;
    ds.put(us(tags::SAMPLES_PER_PIXEL, &[3]));
    ds.put(text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "RGB"));
    ds.put(us(tags::PLANAR_CONFIGURATION, &[0]));
    ds.put(us(tags::ROWS, &[rows]));
    ds.put(us(tags::COLUMNS, &[columns]));
    ds.put(us(tags::BITS_ALLOCATED, &[8]));
    ds.put(us(tags::BITS_STORED, &[8]));
    ds.put(us(tags::HIGH_BIT, &[7]));
    ds.put(us(tags::PIXEL_REPRESENTATION, &[0]));
    let mut pixels = canvas.pixels.clone();
    if pixels.len() % 2 == 1 {
        pixels.push(0);
    }
    ds.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::from(pixels),
    ));

    // Common Instance Reference: the series of the referenced source image.
    ds.put(seq(
        tags::REFERENCED_SERIES_SEQUENCE,
        vec![obj([
            text(
                tags::SERIES_INSTANCE_UID,
                VR::UI,
                &slice.series_instance_uid,
            ),
            seq(
                tags::REFERENCED_INSTANCE_SEQUENCE,
                vec![obj([
                    text(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &slice.sop_class_uid),
                    text(
                        tags::REFERENCED_SOP_INSTANCE_UID,
                        VR::UI,
                        &slice.sop_instance_uid,
                    ),
                ])],
            ),
        ])],
    ));
    put_character_set(&mut ds);

    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(EXPLICIT_VR_LE)
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(IMPLEMENTATION_VERSION_NAME);
    ds.with_meta(meta)
        .map_err(|e| OverlayError::Meta(e.to_string()))
}

/// An Image SOP Instance Reference item for the source image (and frame); a Source Image
/// Sequence item also says why it is referenced.
fn reference_item(slice: &SourceSlice, with_purpose: bool) -> InMemDicomObject {
    let mut item = obj([
        text(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &slice.sop_class_uid),
        text(
            tags::REFERENCED_SOP_INSTANCE_UID,
            VR::UI,
            &slice.sop_instance_uid,
        ),
    ]);
    if let Some(frame) = slice.frame_number {
        item.put(text(
            tags::REFERENCED_FRAME_NUMBER,
            VR::IS,
            &frame.to_string(),
        ));
    }
    if with_purpose {
        item.put(seq(
            tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
            vec![SOURCE_IMAGE_FOR_PROCESSING.code().to_item()],
        ));
    }
    item
}

/// PatientOrientation (PS3.3 C.7.6.1.1.1) from ImageOrientationPatient: for the row and
/// the column direction, the patient axes it runs along, strongest first (L/R, P/A, H/F).
pub(super) fn patient_orientation(iop: &[String]) -> Option<[String; 2]> {
    let v: Vec<f64> = iop.iter().filter_map(|s| s.trim().parse().ok()).collect();
    if v.len() != 6 {
        return None;
    }
    let letters = |d: &[f64]| -> String {
        let mut axes: Vec<(f64, char)> = [
            (d[0], if d[0] > 0.0 { 'L' } else { 'R' }),
            (d[1], if d[1] > 0.0 { 'P' } else { 'A' }),
            (d[2], if d[2] > 0.0 { 'H' } else { 'F' }),
        ]
        .into_iter()
        .filter(|(c, _)| c.abs() > 0.25)
        .collect();
        axes.sort_by(|a, b| b.0.abs().total_cmp(&a.0.abs()));
        axes.into_iter().map(|(_, l)| l).collect()
    };
    let (row, column) = (letters(&v[0..3]), letters(&v[3..6]));
    (!row.is_empty() && !column.is_empty()).then_some([row, column])
}

/// Body parts that come in pairs (the BodyPartExamined terms for which DICOM conditions
/// Laterality), so a side must be stated or left explicitly unknown.
fn is_paired_body_part(body_part: &str) -> bool {
    const PAIRED: &[&str] = &[
        "BREAST",
        "EYE",
        "EAR",
        "KIDNEY",
        "LUNG",
        "OVARY",
        "TESTIS",
        "ADRENAL",
        "CLAVICLE",
        "SHOULDER",
        "ARM",
        "ELBOW",
        "FOREARM",
        "WRIST",
        "HAND",
        "FINGER",
        "HIP",
        "THIGH",
        "FEMUR",
        "KNEE",
        "LEG",
        "ANKLE",
        "FOOT",
        "TOE",
        "SCAPULA",
        "HUMERUS",
        "TIBIA",
        "FIBULA",
        "CALCANEUS",
        "PATELLA",
        "EXTREMITY",
        "UPRLIMB",
        "LOWRLIMB",
    ];
    PAIRED.contains(&body_part.trim().to_ascii_uppercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patient_orientation_names_the_axes() {
        let s = |v: [&str; 6]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            patient_orientation(&s(["1", "0", "0", "0", "1", "0"])),
            Some(["L".into(), "P".into()])
        );
        assert_eq!(
            patient_orientation(&s(["0", "1", "0", "0", "0", "-1"])),
            Some(["P".into(), "F".into()])
        );
        assert_eq!(
            patient_orientation(&s(["0.8", "0.6", "0", "0", "0", "-1"])),
            Some(["LP".into(), "F".into()])
        );
        assert_eq!(patient_orientation(&[]), None);
    }
}

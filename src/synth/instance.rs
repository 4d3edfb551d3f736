//! One MR Image Storage instance as a scanner writes it: the patient, study, series,
//! equipment, frame of reference, image plane, MR image and pixel modules, written as an
//! Explicit VR Little Endian Part 10 file.

use std::path::Path;

use dicom_core::value::{C, PrimitiveValue};
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_object::meta::FileMetaTableBuilder;

use super::SynthError;
use super::geometry::{Grid, dot, ds};
use crate::uids;

/// Attributes shared by every series of a synthetic study.
#[derive(Debug, Clone)]
pub(crate) struct StudyAttrs {
    pub study_uid: String,
    pub frame_of_reference_uid: String,
    pub patient_id: String,
    pub accession_number: String,
    pub study_id: String,
    pub study_date: String,
    /// Study start, seconds since midnight.
    pub study_time_s: u32,
    pub description: String,
    /// Main field in tesla (1.5 or 3).
    pub field_strength: f64,
    /// ImageLaterality: "B" for both breasts, "L" or "R" for one.
    pub laterality: &'static str,
}

/// Attributes of one series.
#[derive(Debug, Clone)]
pub(crate) struct SeriesAttrs {
    pub series_uid: String,
    pub description: String,
    pub protocol: String,
    pub series_number: i32,
    /// Series start (and acquisition time), seconds since midnight.
    pub series_time_s: u32,
    /// (TemporalPositionIdentifier, NumberOfTemporalPositions) for dynamic series.
    pub temporal: Option<(u32, u32)>,
    /// Time of day the contrast was injected (seconds since midnight), for
    /// post-contrast series: ContrastBolusStartTime.
    pub contrast_injected_s: Option<u32>,
    /// "3D" or "2D".
    pub acquisition_type: &'static str,
    pub sequence_name: &'static str,
    pub repetition_time_ms: f64,
    pub echo_time_ms: f64,
    pub flip_angle_deg: f64,
    pub scan_options: &'static str,
    /// (WindowCenter, WindowWidth).
    pub window: (f64, f64),
}

/// One image: its plane (slice `k` of `grid`), number and pixels.
pub(crate) struct Image<'a> {
    pub grid: &'a Grid,
    pub k: usize,
    pub instance_number: i32,
    pub slice_thickness_mm: f64,
    /// Little-endian 16-bit pixels, rows x columns.
    pub pixels: Vec<u8>,
}

/// Write one MR image to `path`.
pub(crate) fn write_instance(
    path: &Path,
    study: &StudyAttrs,
    series: &SeriesAttrs,
    image: Image<'_>,
) -> Result<(), SynthError> {
    let file = with_part10_meta(build(study, series, image), path)?;
    file.write_to_file(path)
        .map_err(|source| SynthError::WriteDicom {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
}

fn build(study: &StudyAttrs, series: &SeriesAttrs, image: Image<'_>) -> InMemDicomObject {
    let mut o = InMemDicomObject::new_empty();
    let mut put = |tag, vr, value: PrimitiveValue| {
        o.put(DataElement::new(tag, vr, value));
    };
    let grid = image.grid;
    let ipp = grid.positions[image.k];
    let time = tm(series.series_time_s);
    let content_time = tm(series.series_time_s + 45);

    // SOP Common
    put(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 100".into());
    put(
        tags::IMAGE_TYPE,
        VR::CS,
        strs(&["ORIGINAL", "PRIMARY", "OTHER"]),
    );
    put(
        tags::INSTANCE_CREATION_DATE,
        VR::DA,
        study.study_date.as_str().into(),
    );
    put(
        tags::INSTANCE_CREATION_TIME,
        VR::TM,
        content_time.as_str().into(),
    );
    put(tags::SOP_CLASS_UID, VR::UI, uids::MR_IMAGE_STORAGE.into());
    put(tags::SOP_INSTANCE_UID, VR::UI, uids::new_uid().into());
    // General Study / Series / Image dates and times
    put(tags::STUDY_DATE, VR::DA, study.study_date.as_str().into());
    put(tags::SERIES_DATE, VR::DA, study.study_date.as_str().into());
    put(
        tags::ACQUISITION_DATE,
        VR::DA,
        study.study_date.as_str().into(),
    );
    put(tags::CONTENT_DATE, VR::DA, study.study_date.as_str().into());
    put(tags::STUDY_TIME, VR::TM, tm(study.study_time_s).into());
    put(tags::SERIES_TIME, VR::TM, time.as_str().into());
    put(tags::ACQUISITION_TIME, VR::TM, time.as_str().into());
    put(tags::CONTENT_TIME, VR::TM, content_time.as_str().into());
    put(
        tags::ACCESSION_NUMBER,
        VR::SH,
        study.accession_number.as_str().into(),
    );
    put(tags::MODALITY, VR::CS, "MR".into());
    // General Equipment
    put(tags::MANUFACTURER, VR::LO, "segnode synth".into());
    put(
        tags::INSTITUTION_NAME,
        VR::LO,
        "Synthetic Imaging Centre".into(),
    );
    put(
        tags::REFERRING_PHYSICIAN_NAME,
        VR::PN,
        "Referrer^Synthetic".into(),
    );
    put(tags::STATION_NAME, VR::SH, "SYNTHMR1".into());
    put(
        tags::STUDY_DESCRIPTION,
        VR::LO,
        study.description.as_str().into(),
    );
    put(
        tags::SERIES_DESCRIPTION,
        VR::LO,
        series.description.as_str().into(),
    );
    put(tags::MANUFACTURER_MODEL_NAME, VR::LO, "Phantom MR".into());
    // Patient
    put(tags::PATIENT_NAME, VR::PN, "Synthetic^Breast".into());
    put(tags::PATIENT_ID, VR::LO, study.patient_id.as_str().into());
    put(tags::PATIENT_BIRTH_DATE, VR::DA, "19720514".into());
    put(tags::PATIENT_SEX, VR::CS, "F".into());
    put(tags::PATIENT_AGE, VR::AS, "051Y".into());
    put(tags::PATIENT_WEIGHT, VR::DS, "68".into());
    // Contrast/Bolus, present on post-contrast phases only
    if let Some(injected) = series.contrast_injected_s {
        put(
            tags::CONTRAST_BOLUS_AGENT,
            VR::LO,
            "Gadobutrol 0.1 mmol/kg".into(),
        );
        put(tags::CONTRAST_BOLUS_ROUTE, VR::LO, "IV".into());
        put(tags::CONTRAST_BOLUS_START_TIME, VR::TM, tm(injected).into());
    }
    put(tags::BODY_PART_EXAMINED, VR::CS, "BREAST".into());
    // Breast is a paired part: the image says which (B = both), so series Laterality,
    // which cannot say "both", is left out.
    put(tags::IMAGE_LATERALITY, VR::CS, study.laterality.into());
    // MR Image
    put(tags::SCANNING_SEQUENCE, VR::CS, "GR".into());
    put(tags::SEQUENCE_VARIANT, VR::CS, "SP".into());
    put(tags::SCAN_OPTIONS, VR::CS, series.scan_options.into());
    put(
        tags::MR_ACQUISITION_TYPE,
        VR::CS,
        series.acquisition_type.into(),
    );
    put(tags::SEQUENCE_NAME, VR::SH, series.sequence_name.into());
    put(
        tags::SLICE_THICKNESS,
        VR::DS,
        ds(image.slice_thickness_mm).into(),
    );
    put(
        tags::REPETITION_TIME,
        VR::DS,
        ds(series.repetition_time_ms).into(),
    );
    put(tags::ECHO_TIME, VR::DS, ds(series.echo_time_ms).into());
    put(tags::NUMBER_OF_AVERAGES, VR::DS, "1".into());
    put(
        tags::IMAGING_FREQUENCY,
        VR::DS,
        ds(42.577478 * study.field_strength).into(),
    );
    put(tags::IMAGED_NUCLEUS, VR::SH, "1H".into());
    put(tags::ECHO_NUMBERS, VR::IS, "1".into());
    put(
        tags::MAGNETIC_FIELD_STRENGTH,
        VR::DS,
        ds(study.field_strength).into(),
    );
    put(
        tags::SPACING_BETWEEN_SLICES,
        VR::DS,
        ds(grid.slice_spacing).into(),
    );
    put(tags::ECHO_TRAIN_LENGTH, VR::IS, "1".into());
    put(
        tags::SOFTWARE_VERSIONS,
        VR::LO,
        concat!("segnode ", env!("CARGO_PKG_VERSION")).into(),
    );
    put(tags::PROTOCOL_NAME, VR::LO, series.protocol.as_str().into());
    put(tags::RECEIVE_COIL_NAME, VR::SH, "BREAST 16CH".into());
    let matrix = [0, clamp_u16(grid.cols), clamp_u16(grid.rows), 0];
    put(
        tags::ACQUISITION_MATRIX,
        VR::US,
        PrimitiveValue::U16(matrix.into_iter().collect()),
    );
    put(
        tags::IN_PLANE_PHASE_ENCODING_DIRECTION,
        VR::CS,
        "ROW".into(),
    );
    put(tags::FLIP_ANGLE, VR::DS, ds(series.flip_angle_deg).into());
    put(tags::PATIENT_POSITION, VR::CS, "FFP".into());
    // Identifiers and numbers
    put(
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        study.study_uid.as_str().into(),
    );
    put(
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        series.series_uid.as_str().into(),
    );
    put(tags::STUDY_ID, VR::SH, study.study_id.as_str().into());
    put(
        tags::SERIES_NUMBER,
        VR::IS,
        series.series_number.to_string().into(),
    );
    put(tags::ACQUISITION_NUMBER, VR::IS, "1".into());
    put(
        tags::INSTANCE_NUMBER,
        VR::IS,
        image.instance_number.to_string().into(),
    );
    // Image Plane and Frame of Reference
    put(tags::IMAGE_POSITION_PATIENT, VR::DS, strs(&ipp.map(ds)));
    put(
        tags::IMAGE_ORIENTATION_PATIENT,
        VR::DS,
        strs(&grid.iop().map(ds)),
    );
    put(
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        study.frame_of_reference_uid.as_str().into(),
    );
    if let Some((position, count)) = series.temporal {
        put(
            tags::TEMPORAL_POSITION_IDENTIFIER,
            VR::IS,
            position.to_string().into(),
        );
        put(
            tags::NUMBER_OF_TEMPORAL_POSITIONS,
            VR::IS,
            count.to_string().into(),
        );
    }
    put(
        tags::POSITION_REFERENCE_INDICATOR,
        VR::LO,
        PrimitiveValue::Empty,
    );
    put(
        tags::SLICE_LOCATION,
        VR::DS,
        ds(dot(ipp, grid.normal)).into(),
    );
    // Image Pixel
    put(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1_u16));
    put(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2".into(),
    );
    put(
        tags::ROWS,
        VR::US,
        PrimitiveValue::from(clamp_u16(grid.rows)),
    );
    put(
        tags::COLUMNS,
        VR::US,
        PrimitiveValue::from(clamp_u16(grid.cols)),
    );
    put(
        tags::PIXEL_SPACING,
        VR::DS,
        strs(&grid.pixel_spacing.map(ds)),
    );
    put(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16_u16));
    put(tags::BITS_STORED, VR::US, PrimitiveValue::from(12_u16));
    put(tags::HIGH_BIT, VR::US, PrimitiveValue::from(11_u16));
    put(
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(0_u16),
    );
    put(tags::WINDOW_CENTER, VR::DS, ds(series.window.0).into());
    put(tags::WINDOW_WIDTH, VR::DS, ds(series.window.1).into());
    put(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U8(C::from_vec(image.pixels)),
    );
    o
}

/// A multi-valued string attribute.
fn strs<S: AsRef<str>>(values: &[S]) -> PrimitiveValue {
    PrimitiveValue::Strs(values.iter().map(|s| s.as_ref().to_string()).collect())
}

/// DICOM TM (HHMMSS) from seconds since midnight.
/// `obj` with an Explicit VR Little Endian file meta group, ready to be written to `path`.
pub(crate) fn with_part10_meta(
    obj: InMemDicomObject,
    path: &Path,
) -> Result<dicom_object::FileDicomObject<InMemDicomObject>, SynthError> {
    obj.with_meta(
        FileMetaTableBuilder::new()
            .transfer_syntax(uids::EXPLICIT_VR_LE)
            .implementation_class_uid(uids::IMPLEMENTATION_CLASS_UID)
            .implementation_version_name(uids::IMPLEMENTATION_VERSION_NAME),
    )
    .map_err(|source| SynthError::Meta {
        path: path.to_path_buf(),
        source: Box::new(source),
    })
}

/// The last `n` characters of a UID (for short, unique-looking IDs and names).
pub(crate) fn uid_tail(uid: &str, n: usize) -> String {
    let skip = uid.chars().count().saturating_sub(n);
    uid.chars().skip(skip).collect()
}

pub(crate) fn tm(seconds: u32) -> String {
    let s = seconds % 86_400;
    format!("{:02}{:02}{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn clamp_u16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

//! One ultrasound instance as a scanner stores it: the patient, study, series, equipment,
//! general image, US region calibration, US image (and, for cine loops, multi-frame and
//! cine) modules, with the pixels in one of the three [`UsEncoding`]s.
//!
//! There is no Image Plane module, no PixelSpacing and no frame of reference: ultrasound
//! carries no patient geometry, only the region calibration (the pixel size in cm inside
//! the sector), as real machines write it. JPEG Baseline is made the way a converter would:
//! the native RGB object is transcoded with dicom-pixeldata.

use std::path::Path;

use dicom_core::value::{PixelFragmentSequence, PrimitiveValue};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_encoding::adapters::EncodeOptions;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use dicom_pixeldata::Transcode;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use super::instance::{tm, uid_tail, with_part10_meta};
use super::rng::{SplitMix64, stream};
use super::{SynthError, UsEncoding};
use crate::error_chain::error_chain;
use crate::pipeline::seg::elements::{empty, obj, seq, text, texts, ul, us};
use crate::uids;

/// JPEG quality: below 90 the encoder subsamples chroma, which YBR_FULL_422 states.
const JPEG_QUALITY: u8 = 85;
/// Time between cine frames, ms (30 frames per second).
const FRAME_TIME_MS: &str = "33.3";

/// What the instance holds, besides the fixed scanner details.
pub(crate) struct UsImageData<'a> {
    /// Study Instance UID.
    pub study_uid: &'a str,
    /// Series Instance UID.
    pub series_uid: &'a str,
    /// SOP Instance UID.
    pub sop_instance_uid: &'a str,
    /// Seed the patient and study details derive from.
    pub seed: u64,
    /// Rows of each frame.
    pub rows: usize,
    /// Columns of each frame.
    pub columns: usize,
    /// Frames; more than one makes a multi-frame cine loop.
    pub frames: u32,
    /// How the pixels are stored.
    pub encoding: UsEncoding,
    /// The sector's pixel bounding box `[min x, min y, max x, max y]`.
    pub region: [u32; 4],
    /// The sector's apex `[x, y]` in pixels (the region's reference point).
    pub apex: [f64; 2],
    /// Square pixel size, mm.
    pub spacing_mm: f64,
    /// Frames one after the other: interleaved RGB, or grey for MONOCHROME2.
    pub pixels: Vec<u8>,
}

/// What ended up in the file.
pub(crate) struct Written {
    /// SOP Class UID (single- or multi-frame ultrasound).
    pub sop_class_uid: &'static str,
    /// Transfer syntax of the file.
    pub transfer_syntax: String,
    /// PhotometricInterpretation as written.
    pub photometric_interpretation: String,
}

/// Write `data` as a Part 10 file at `path`.
pub(crate) fn write_us_instance(
    path: &Path,
    data: &UsImageData<'_>,
) -> Result<Written, SynthError> {
    let sop_class_uid = if data.frames > 1 {
        uids::US_MULTIFRAME_IMAGE_STORAGE
    } else {
        uids::US_IMAGE_STORAGE
    };
    let mut file = with_part10_meta(build(data, sop_class_uid), path)?;
    if data.encoding == UsEncoding::JpegBaseline {
        to_jpeg_baseline(&mut file, data.rows, data.columns, data.frames).map_err(|why| {
            SynthError::Encode {
                path: path.to_path_buf(),
                why,
            }
        })?;
    }
    file.write_to_file(path)
        .map_err(|source| SynthError::WriteDicom {
            path: path.to_path_buf(),
            source: Box::new(source),
        })?;
    let photometric_interpretation = file
        .element(tags::PHOTOMETRIC_INTERPRETATION)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    Ok(Written {
        sop_class_uid,
        transfer_syntax: file
            .meta()
            .transfer_syntax()
            .trim_end_matches('\0')
            .to_string(),
        photometric_interpretation,
    })
}

/// Transcode the native RGB object to JPEG Baseline and make its attributes say so.
fn to_jpeg_baseline(
    file: &mut DefaultDicomObject,
    rows: usize,
    columns: usize,
    frames: u32,
) -> Result<(), String> {
    let ts = TransferSyntaxRegistry
        .get(uids::JPEG_BASELINE)
        .ok_or("this build has no JPEG Baseline transfer syntax")?;
    let mut options = EncodeOptions::default();
    options.quality = Some(JPEG_QUALITY);
    file.transcode_with_options(ts, options)
        .map_err(|e| format!("JPEG Baseline encoding failed: {}", error_chain(&e)))?;

    // JPEG Baseline colour is YCbCr in the stream, chroma subsampled: YBR_FULL_422 (PS3.5
    // 8.2.1). dicom-pixeldata 0.10 already says so; state it whatever the encoder did.
    file.put(text(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "YBR_FULL_422",
    ));
    file.put(us(tags::PLANAR_CONFIGURATION, &[0]));
    if frames == 1 {
        // The transcoder always states the frame count; single-frame US has no Multi-frame module.
        file.remove_element(tags::NUMBER_OF_FRAMES);
    }
    // Pad every fragment to even length here, so the basic offset table the transcoder made
    // from the unpadded lengths matches what is written.
    let mut fragments = file
        .element(tags::PIXEL_DATA)
        .map_err(|e| format!("no pixel data after encoding: {e}"))?
        .value()
        .fragments()
        .ok_or("pixel data not encapsulated after encoding")?
        .to_vec();
    let mut offsets = Vec::with_capacity(fragments.len());
    let mut offset = 0u32;
    for f in &mut fragments {
        if f.len() % 2 == 1 {
            f.push(0);
        }
        offsets.push(offset);
        offset += 8 + f.len() as u32;
    }
    let fragments_len: usize = fragments.iter().map(Vec::len).sum();
    file.remove_element(tags::ENCAPSULATED_PIXEL_DATA_VALUE_TOTAL_LENGTH);
    file.put(DataElement::new_with_len(
        tags::PIXEL_DATA,
        VR::OB,
        Length::UNDEFINED,
        PixelFragmentSequence::new(offsets, fragments),
    ));
    // The transcoder states the ratio of the last frame only: state the whole instance's.
    let native = (rows * columns * 3 * frames as usize) as f64;
    let ratio = native / fragments_len as f64;
    file.put(text(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "01"));
    file.put(text(
        tags::LOSSY_IMAGE_COMPRESSION_RATIO,
        VR::DS,
        &format!("{ratio:.2}"),
    ));
    file.put(text(
        tags::LOSSY_IMAGE_COMPRESSION_METHOD,
        VR::CS,
        "ISO_10918_1",
    ));
    Ok(())
}

/// The data set with native pixels (RGB for both colour encodings).
fn build(data: &UsImageData<'_>, sop_class_uid: &str) -> InMemDicomObject {
    let mut rng = SplitMix64::new(stream(data.seed, &[0x05_57D1]));
    let study_time = tm(8 * 3600 + 60 * (rng.next_u64() % 540) as u32);
    let content_time = tm(8 * 3600 + 60 * (rng.next_u64() % 540) as u32 + 9 * 60);
    let date = "20240611";
    let tail = uid_tail(data.study_uid, 10);
    let mono = data.encoding == UsEncoding::Monochrome2;

    let mut o = InMemDicomObject::new_empty();
    let mut put = |e| {
        o.put(e);
    };
    // SOP Common
    put(text(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 100"));
    put(texts(
        tags::IMAGE_TYPE,
        VR::CS,
        &["ORIGINAL", "PRIMARY", "OBSTETRICAL", "0001"],
    ));
    put(text(tags::INSTANCE_CREATION_DATE, VR::DA, date));
    put(text(tags::INSTANCE_CREATION_TIME, VR::TM, &content_time));
    put(text(tags::SOP_CLASS_UID, VR::UI, sop_class_uid));
    put(text(tags::SOP_INSTANCE_UID, VR::UI, data.sop_instance_uid));
    // Dates and times
    put(text(tags::STUDY_DATE, VR::DA, date));
    put(text(tags::SERIES_DATE, VR::DA, date));
    put(text(tags::CONTENT_DATE, VR::DA, date));
    put(text(tags::STUDY_TIME, VR::TM, &study_time));
    put(text(tags::SERIES_TIME, VR::TM, &study_time));
    put(text(tags::CONTENT_TIME, VR::TM, &content_time));
    put(text(tags::ACCESSION_NUMBER, VR::SH, &format!("U{tail}")));
    put(text(tags::MODALITY, VR::CS, "US"));
    // General Equipment
    put(text(tags::MANUFACTURER, VR::LO, "segnode synthetic"));
    put(text(
        tags::INSTITUTION_NAME,
        VR::LO,
        "Synthetic Imaging Centre",
    ));
    put(text(
        tags::REFERRING_PHYSICIAN_NAME,
        VR::PN,
        "Referrer^Synthetic",
    ));
    put(text(tags::STATION_NAME, VR::SH, "SYNTHUS1"));
    put(text(
        tags::STUDY_DESCRIPTION,
        VR::LO,
        "US OB FETAL BIOMETRY",
    ));
    put(text(
        tags::SERIES_DESCRIPTION,
        VR::LO,
        "Fetal head biometry",
    ));
    put(text(tags::MANUFACTURER_MODEL_NAME, VR::LO, "Phantom US"));
    // Patient: the mother
    put(text(tags::PATIENT_NAME, VR::PN, "SYNTH^FETALHEAD"));
    put(text(
        tags::PATIENT_ID,
        VR::LO,
        &format!("SYNFH{:06}", data.seed % 1_000_000),
    ));
    put(text(tags::PATIENT_BIRTH_DATE, VR::DA, "19930702"));
    put(text(tags::PATIENT_SEX, VR::CS, "F"));
    put(text(tags::PATIENT_AGE, VR::AS, "030Y"));
    // The gravid uterus: a recognised, unpaired part (so no Laterality is due). "FETUS" is
    // not a defined term.
    put(text(tags::BODY_PART_EXAMINED, VR::CS, "UTERUS"));
    if data.frames > 1 {
        // Cine
        put(text(tags::FRAME_TIME, VR::DS, FRAME_TIME_MS));
    }
    put(text(
        tags::SOFTWARE_VERSIONS,
        VR::LO,
        concat!("segnode ", env!("CARGO_PKG_VERSION")),
    ));
    put(text(tags::TRANSDUCER_TYPE, VR::CS, "CURVED LINEAR"));
    put(text(tags::PROCESSING_FUNCTION, VR::LO, "OB 2nd/3rd"));
    put(region_calibration(data));
    // Identifiers and numbers
    put(text(tags::STUDY_INSTANCE_UID, VR::UI, data.study_uid));
    put(text(tags::SERIES_INSTANCE_UID, VR::UI, data.series_uid));
    put(text(
        tags::STUDY_ID,
        VR::SH,
        &format!("{}", 1000 + data.seed % 9000),
    ));
    put(text(tags::SERIES_NUMBER, VR::IS, "1"));
    put(text(tags::INSTANCE_NUMBER, VR::IS, "1"));
    put(empty(tags::PATIENT_ORIENTATION, VR::CS));
    // Image Pixel, US Image, Multi-frame
    put(us(tags::SAMPLES_PER_PIXEL, &[if mono { 1 } else { 3 }]));
    put(text(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        if mono { "MONOCHROME2" } else { "RGB" },
    ));
    if !mono {
        put(us(tags::PLANAR_CONFIGURATION, &[0]));
    }
    if data.frames > 1 {
        put(text(
            tags::NUMBER_OF_FRAMES,
            VR::IS,
            &data.frames.to_string(),
        ));
        put(DataElement::new(
            tags::FRAME_INCREMENT_POINTER,
            VR::AT,
            PrimitiveValue::Tags([tags::FRAME_TIME].into_iter().collect()),
        ));
    }
    put(us(tags::ROWS, &[data.rows as u16]));
    put(us(tags::COLUMNS, &[data.columns as u16]));
    put(us(tags::BITS_ALLOCATED, &[8]));
    put(us(tags::BITS_STORED, &[8]));
    put(us(tags::HIGH_BIT, &[7]));
    put(us(tags::PIXEL_REPRESENTATION, &[0]));
    put(text(tags::BURNED_IN_ANNOTATION, VR::CS, "YES"));
    put(text(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00"));
    let mut pixels = data.pixels.clone();
    if pixels.len() % 2 == 1 {
        pixels.push(0);
    }
    put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::from(pixels),
    ));
    o
}

/// SequenceOfUltrasoundRegions with the one 2D tissue region: the sector's bounding box,
/// the pixel size in cm, and the apex as reference point (physical origin).
fn region_calibration(data: &UsImageData<'_>) -> dicom_object::mem::InMemElement {
    let [x0, y0, x1, y1] = data.region;
    let spacing_cm = data.spacing_mm / 10.0;
    let fd = |tag: Tag, v: f64| DataElement::new(tag, VR::FD, PrimitiveValue::from(v));
    let sl = |tag: Tag, v: i32| DataElement::new(tag, VR::SL, PrimitiveValue::from(v));
    let item = obj([
        us(tags::REGION_SPATIAL_FORMAT, &[1]),
        us(tags::REGION_DATA_TYPE, &[1]),
        ul(tags::REGION_FLAGS, &[0]),
        ul(tags::REGION_LOCATION_MIN_X0, &[x0]),
        ul(tags::REGION_LOCATION_MIN_Y0, &[y0]),
        ul(tags::REGION_LOCATION_MAX_X1, &[x1]),
        ul(tags::REGION_LOCATION_MAX_Y1, &[y1]),
        sl(
            tags::REFERENCE_PIXEL_X0,
            data.apex[0].round() as i32 - x0 as i32,
        ),
        sl(
            tags::REFERENCE_PIXEL_Y0,
            data.apex[1].round() as i32 - y0 as i32,
        ),
        us(tags::PHYSICAL_UNITS_X_DIRECTION, &[3]),
        us(tags::PHYSICAL_UNITS_Y_DIRECTION, &[3]),
        fd(tags::REFERENCE_PIXEL_PHYSICAL_VALUE_X, 0.0),
        fd(tags::REFERENCE_PIXEL_PHYSICAL_VALUE_Y, 0.0),
        fd(tags::PHYSICAL_DELTA_X, spacing_cm),
        fd(tags::PHYSICAL_DELTA_Y, spacing_cm),
        ul(tags::TRANSDUCER_FREQUENCY, &[3500]),
    ]);
    seq(tags::SEQUENCE_OF_ULTRASOUND_REGIONS, vec![item])
}

//! The measurement report as a DICOM Comprehensive 3D SR (SOP Class
//! 1.2.840.10008.5.1.4.1.1.88.34), content TID 1500 "Measurement Report":
//!
//! ```text
//! CONTAINER Imaging Measurement Report (TID 1500)
//!   HAS CONCEPT MOD / HAS OBS CONTEXT   TID 1001: device observer (segnode, the algorithm)
//!   HAS CONCEPT MOD  Procedure reported
//!   CONTAINS CONTAINER Imaging Measurements
//!     CONTAINS CONTAINER Measurement Group (TID 1411 per segment | TID 1410 per segment+frame)
//!       HAS OBS CONTEXT Tracking Identifier, Tracking Unique Identifier
//!       CONTAINS CODE   Finding (the segment's property type)
//!       CONTAINS IMAGE  Referenced Segment (SEG + ReferencedSegmentNumber)       TID 1411
//!       CONTAINS UIDREF Source series for segmentation                          TID 1411
//!       CONTAINS IMAGE  Referenced Segmentation Frame (SEG + frame number)      TID 1410
//!       CONTAINS IMAGE  Source image for segmentation (source image + frame)    TID 1410
//!       CONTAINS NUM    one per measurement made, UCUM units
//!       CONTAINS TEXT   Comment: which measurements were not made and why, when any
//! ```
//!
//! A planar group references its SEG frame by ReferencedFrameNumber alone: PS3.3 makes the
//! frame and segment numbers of an image reference alternatives, and `dciodvfy` rejects
//! both together. The frame number is read from the encoded SEG's per-frame functional
//! groups, so it is right whatever the SEG's frame layout (empty frames omitted or not).
//! The SR joins the study of its source, in a series of its own.

use dicom_core::VR;
use dicom_dictionary_std::tags;
use dicom_object::{FileDicomObject, FileMetaTableBuilder, InMemDicomObject};

use super::content::{
    code_item, concept_name, container, image_item, num_item, template, text_item, uid_item,
};
use super::{MaskKind, MeasurementGroup, ReportConfig, codes};
use crate::pipeline::seg::elements::{first_item, get_items, get_str, get_u32, obj, seq, text};
use crate::pipeline::seg::header::{
    MANUFACTURER, copy_patient_and_study, now_utc, put_character_set,
};
use crate::pipeline::seg::{SegError, SourceGeometry};
use crate::uids::{EXPLICIT_VR_LE, IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, new_uid};

/// Comprehensive 3D SR Storage.
pub const COMPREHENSIVE_3D_SR: &str = "1.2.840.10008.5.1.4.1.1.88.34";

/// Why a report could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("the source header lacks what the report copies: {0}")]
    Source(#[from] SegError),
    #[error("the SEG lacks {0}, which the report references")]
    Seg(&'static str),
    #[error("cannot build the file meta group: {0}")]
    Meta(String),
}

/// What the report is about and where its numbers came from.
pub struct ReportInputs<'a> {
    /// A source instance's header: patient and study are copied from it.
    pub source_header: &'a InMemDicomObject,
    /// The source slices or frames, in mask order (`MeasurementGroup::frame` indexes them).
    pub geometry: &'a SourceGeometry,
    /// The SEG the groups reference (as encoded, before or after writing).
    pub seg: &'a FileDicomObject<InMemDicomObject>,
    /// Volume (TID 1411 groups) or image (TID 1410 groups).
    pub kind: MaskKind,
    /// The pipeline's report settings.
    pub config: &'a ReportConfig,
    /// SeriesDescription of the SR.
    pub series_description: String,
    /// Algorithm name and version: the device observer's model name.
    pub algorithm: String,
    /// The measurements.
    pub groups: &'a [MeasurementGroup],
}

impl<'a> ReportInputs<'a> {
    /// The inputs for a job of pipeline `def`: series description and algorithm from its
    /// output section.
    pub fn new(
        def: &'a crate::pipeline::definition::PipelineDefinition,
        source_header: &'a InMemDicomObject,
        geometry: &'a SourceGeometry,
        seg: &'a FileDicomObject<InMemDicomObject>,
        config: &'a ReportConfig,
        groups: &'a [MeasurementGroup],
    ) -> Self {
        ReportInputs {
            source_header,
            geometry,
            seg,
            kind: def.mask_kind(),
            config,
            series_description: format!("{} measurements", def.output.series_description),
            algorithm: format!(
                "{} {}",
                def.output.algorithm_name, def.output.algorithm_version
            ),
            groups,
        }
    }
}

/// The SEG facts the report needs.
struct SegFacts {
    sop_class_uid: String,
    sop_instance_uid: String,
    series_instance_uid: String,
    series_number: i32,
    /// Per SEG frame (index = frame number - 1): its segment number (absent in a
    /// LABELMAP), source SOP Instance UID and source frame number.
    frames: Vec<(Option<u16>, Option<String>, Option<u32>)>,
}

impl SegFacts {
    fn of(seg: &InMemDicomObject) -> Result<SegFacts, ReportError> {
        let need = |tag, what| get_str(seg, tag).ok_or(ReportError::Seg(what));
        let frames = get_items(seg, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
            .iter()
            .map(|item| {
                let segment = first_item(item, tags::SEGMENT_IDENTIFICATION_SEQUENCE)
                    .and_then(|s| get_u32(s, tags::REFERENCED_SEGMENT_NUMBER))
                    .map(|n| n as u16);
                let source = first_item(item, tags::DERIVATION_IMAGE_SEQUENCE)
                    .and_then(|d| first_item(d, tags::SOURCE_IMAGE_SEQUENCE));
                (
                    segment,
                    source.and_then(|s| get_str(s, tags::REFERENCED_SOP_INSTANCE_UID)),
                    source.and_then(|s| get_u32(s, tags::REFERENCED_FRAME_NUMBER)),
                )
            })
            .collect();
        Ok(SegFacts {
            sop_class_uid: need(tags::SOP_CLASS_UID, "SOPClassUID")?,
            sop_instance_uid: need(tags::SOP_INSTANCE_UID, "SOPInstanceUID")?,
            series_instance_uid: need(tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")?,
            series_number: get_str(seg, tags::SERIES_NUMBER)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            frames,
        })
    }

    /// The SEG frame number holding `segment` on the source (`sop`, `frame`).
    fn frame_of(&self, segment: u16, sop: &str, frame: Option<u32>) -> Option<u32> {
        self.frames
            .iter()
            .position(|(s, src, f)| {
                s.is_none_or(|s| s == segment)
                    && src.as_deref() == Some(sop)
                    && f.unwrap_or(1) == frame.unwrap_or(1)
            })
            .map(|i| i as u32 + 1)
    }
}

/// Encode the measurement report.
pub fn encode_report(
    inputs: &ReportInputs,
) -> Result<FileDicomObject<InMemDicomObject>, ReportError> {
    let seg = SegFacts::of(inputs.seg)?;
    let mut ds = InMemDicomObject::new_empty();
    copy_patient_and_study(inputs.source_header, &mut ds)?;
    let (date, time) = now_utc();
    let sop_instance_uid = new_uid();
    ds.put(text(tags::SOP_CLASS_UID, VR::UI, COMPREHENSIVE_3D_SR));
    ds.put(text(tags::SOP_INSTANCE_UID, VR::UI, &sop_instance_uid));
    ds.put(text(tags::INSTANCE_CREATION_DATE, VR::DA, &date));
    ds.put(text(tags::INSTANCE_CREATION_TIME, VR::TM, &time));
    ds.put(text(tags::TIMEZONE_OFFSET_FROM_UTC, VR::SH, "+0000"));
    // SR Document Series.
    ds.put(text(tags::MODALITY, VR::CS, "SR"));
    ds.put(text(tags::SERIES_INSTANCE_UID, VR::UI, &new_uid()));
    let series_number = inputs
        .config
        .series_number
        .unwrap_or(seg.series_number.saturating_add(1));
    ds.put(text(
        tags::SERIES_NUMBER,
        VR::IS,
        &series_number.to_string(),
    ));
    ds.put(text(tags::SERIES_DATE, VR::DA, &date));
    ds.put(text(tags::SERIES_TIME, VR::TM, &time));
    ds.put(text(
        tags::SERIES_DESCRIPTION,
        VR::LO,
        &inputs
            .series_description
            .chars()
            .take(64)
            .collect::<String>(),
    ));
    ds.put(seq(
        tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE,
        vec![],
    ));
    // General and Enhanced General Equipment.
    ds.put(text(tags::MANUFACTURER, VR::LO, MANUFACTURER));
    ds.put(text(
        tags::MANUFACTURER_MODEL_NAME,
        VR::LO,
        &lo(&inputs.algorithm),
    ));
    ds.put(text(tags::DEVICE_SERIAL_NUMBER, VR::LO, "1"));
    ds.put(text(
        tags::SOFTWARE_VERSIONS,
        VR::LO,
        env!("CARGO_PKG_VERSION"),
    ));
    // SR Document General.
    ds.put(text(tags::INSTANCE_NUMBER, VR::IS, "1"));
    ds.put(text(tags::CONTENT_DATE, VR::DA, &date));
    ds.put(text(tags::CONTENT_TIME, VR::TM, &time));
    // An algorithm's output nobody has signed: partial (more may be said) and unverified.
    ds.put(text(tags::COMPLETION_FLAG, VR::CS, "PARTIAL"));
    ds.put(text(tags::VERIFICATION_FLAG, VR::CS, "UNVERIFIED"));
    ds.put(text(tags::PRELIMINARY_FLAG, VR::CS, "PRELIMINARY"));
    ds.put(seq(tags::PERFORMED_PROCEDURE_CODE_SEQUENCE, vec![]));
    ds.put(seq(
        tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE,
        vec![evidence(&ds_study_uid(&ds), inputs.geometry, &seg)],
    ));
    // SR Document Content: the root container.
    ds.put(text(tags::VALUE_TYPE, VR::CS, "CONTAINER"));
    ds.put(concept_name(codes::IMAGING_MEASUREMENT_REPORT));
    ds.put(text(tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE"));
    ds.put(template("1500"));
    ds.put(seq(tags::CONTENT_SEQUENCE, root_content(inputs, &seg)));
    put_character_set(&mut ds);

    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(EXPLICIT_VR_LE)
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(IMPLEMENTATION_VERSION_NAME);
    ds.with_meta(meta)
        .map_err(|e| ReportError::Meta(e.to_string()))
}

fn ds_study_uid(ds: &InMemDicomObject) -> String {
    get_str(ds, tags::STUDY_INSTANCE_UID).unwrap_or_default()
}

/// At most 64 characters (LO).
fn lo(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Current Requested Procedure Evidence: the SEG and every source instance, by series.
fn evidence(study_uid: &str, geometry: &SourceGeometry, seg: &SegFacts) -> InMemDicomObject {
    let mut series: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let mut add = |series_uid: &str, class: &str, instance: &str| {
        let pos = match series.iter().position(|(s, _)| s == series_uid) {
            Some(p) => p,
            None => {
                series.push((series_uid.to_string(), Vec::new()));
                series.len() - 1
            }
        };
        let list = &mut series[pos].1;
        if !list.iter().any(|(_, i)| i == instance) {
            list.push((class.to_string(), instance.to_string()));
        }
    };
    for s in &geometry.slices {
        add(
            &s.series_instance_uid,
            &s.sop_class_uid,
            &s.sop_instance_uid,
        );
    }
    add(
        &seg.series_instance_uid,
        &seg.sop_class_uid,
        &seg.sop_instance_uid,
    );
    let series_items = series
        .into_iter()
        .map(|(uid, instances)| {
            obj([
                seq(
                    tags::REFERENCED_SOP_SEQUENCE,
                    instances
                        .into_iter()
                        .map(|(class, instance)| {
                            obj([
                                text(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &class),
                                text(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &instance),
                            ])
                        })
                        .collect(),
                ),
                text(tags::SERIES_INSTANCE_UID, VR::UI, &uid),
            ])
        })
        .collect();
    obj([
        seq(tags::REFERENCED_SERIES_SEQUENCE, series_items),
        text(tags::STUDY_INSTANCE_UID, VR::UI, study_uid),
    ])
}

/// TID 1001 observation context, procedure reported, and the Imaging Measurements.
fn root_content(inputs: &ReportInputs, seg: &SegFacts) -> Vec<InMemDicomObject> {
    let procedure = inputs.config.procedure.clone().unwrap_or_else(|| {
        match inputs.kind {
            MaskKind::Volume => codes::MR_BREAST,
            MaskKind::Image => codes::US_OBSTETRIC,
        }
        .code()
    });
    let groups = inputs
        .groups
        .iter()
        .filter_map(|g| group(inputs, seg, g))
        .collect();
    vec![
        code_item(
            "HAS OBS CONTEXT",
            codes::OBSERVER_TYPE,
            &codes::DEVICE.code(),
        ),
        uid_item(
            "HAS OBS CONTEXT",
            codes::DEVICE_OBSERVER_UID,
            IMPLEMENTATION_CLASS_UID,
        ),
        text_item("HAS OBS CONTEXT", codes::DEVICE_OBSERVER_NAME, "segnode"),
        text_item(
            "HAS OBS CONTEXT",
            codes::DEVICE_OBSERVER_MANUFACTURER,
            MANUFACTURER,
        ),
        text_item(
            "HAS OBS CONTEXT",
            codes::DEVICE_OBSERVER_MODEL_NAME,
            &lo(&inputs.algorithm),
        ),
        code_item("HAS CONCEPT MOD", codes::PROCEDURE_REPORTED, &procedure),
        container("CONTAINS", codes::IMAGING_MEASUREMENTS, None, groups),
    ]
}

/// One TID 1410/1411 measurement group; `None` when a planar group's SEG frame is absent
/// (an empty frame the SEG omits: there is nothing on it to measure).
fn group(inputs: &ReportInputs, seg: &SegFacts, g: &MeasurementGroup) -> Option<InMemDicomObject> {
    let tracking = match g.frame {
        Some(f) => format!("{} frame {}", g.label, f + 1),
        None => g.label.clone(),
    };
    let mut items = vec![
        text_item(
            "HAS OBS CONTEXT",
            codes::TRACKING_IDENTIFIER,
            &lo(&tracking),
        ),
        uid_item(
            "HAS OBS CONTEXT",
            codes::TRACKING_UNIQUE_IDENTIFIER,
            &new_uid(),
        ),
        code_item("CONTAINS", codes::FINDING, &g.finding),
    ];
    let template_id = match (inputs.kind, g.frame) {
        (MaskKind::Image, Some(f)) => {
            let source = inputs.geometry.slices.get(f)?;
            let seg_frame = seg.frame_of(
                g.segment_number,
                &source.sop_instance_uid,
                source.frame_number,
            )?;
            items.push(image_item(
                codes::REFERENCED_SEGMENTATION_FRAME,
                &seg.sop_class_uid,
                &seg.sop_instance_uid,
                Some(seg_frame),
                None,
            ));
            items.push(image_item(
                codes::SOURCE_IMAGE_FOR_SEGMENTATION,
                &source.sop_class_uid,
                &source.sop_instance_uid,
                source.frame_number,
                None,
            ));
            "1410"
        }
        _ => {
            items.push(image_item(
                codes::REFERENCED_SEGMENT,
                &seg.sop_class_uid,
                &seg.sop_instance_uid,
                None,
                Some(g.segment_number),
            ));
            if let Some(first) = inputs.geometry.slices.first() {
                items.push(uid_item(
                    "CONTAINS",
                    codes::SOURCE_SERIES_FOR_SEGMENTATION,
                    &first.series_instance_uid,
                ));
            }
            "1411"
        }
    };
    for v in &g.values {
        if let Some(value) = v.value.filter(|x| x.is_finite()) {
            items.push(num_item(
                v.measurement.concept(),
                value,
                v.measurement.unit(),
            ));
        }
    }
    // A measurement without a value is left out (highdicom cannot read a NUM item with an
    // empty Measured Value Sequence), and the comment names it with the reason.
    let missing: Vec<&str> = g
        .values
        .iter()
        .filter(|v| !v.value.is_some_and(f64::is_finite))
        .map(|v| v.measurement.concept().meaning)
        .collect();
    let comment = match (&g.comment, missing.is_empty()) {
        (Some(c), true) => Some(c.clone()),
        (Some(c), false) => Some(format!("not measured: {}; {c}", missing.join(", "))),
        (None, false) => Some(format!("not measured: {}", missing.join(", "))),
        (None, true) => None,
    };
    if let Some(comment) = comment {
        items.push(text_item("CONTAINS", codes::COMMENT, &comment));
    }
    Some(container(
        "CONTAINS",
        codes::MEASUREMENT_GROUP,
        Some(template_id),
        items,
    ))
}

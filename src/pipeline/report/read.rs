//! Reading a measurement report back: the groups and their numeric values, for
//! `segnode eval --report` and tests. Only what segnode writes is understood: TID 1410 /
//! 1411 groups under Imaging Measurements, NUM items with a Measured Value.

use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use crate::pipeline::seg::elements::{first_item, get_items, get_str};

/// A measurement group as read from a report.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadGroup {
    /// Tracking Identifier (segment label, and the frame for planar groups).
    pub tracking_identifier: String,
    /// Finding code value (the segment's property type).
    pub finding: Option<String>,
    /// (concept code value, concept meaning, value, unit code value), in document order.
    pub values: Vec<(String, String, f64, String)>,
    /// The group's comment (what was not measured, and why).
    pub comment: Option<String>,
}

impl ReadGroup {
    /// The value whose concept has code value `code`.
    pub fn value(&self, code: &str) -> Option<f64> {
        self.values.iter().find(|v| v.0 == code).map(|v| v.2)
    }
}

/// Why a report could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadReportError {
    #[error("cannot read {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("{0} is not a measurement report (no Imaging Measurements container)")]
    NotAReport(String),
}

fn concept(item: &InMemDicomObject) -> Option<(String, String)> {
    let c = first_item(item, tags::CONCEPT_NAME_CODE_SEQUENCE)?;
    Some((
        get_str(c, tags::CODE_VALUE)?,
        get_str(c, tags::CODE_MEANING).unwrap_or_default(),
    ))
}

/// The measurement groups of the report at `path`.
pub fn read_report(path: &Path) -> Result<Vec<ReadGroup>, ReadReportError> {
    let obj = dicom_object::open_file(path).map_err(|e| ReadReportError::Open {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let container = get_items(&obj, tags::CONTENT_SEQUENCE)
        .iter()
        .find(|i| concept(i).is_some_and(|c| c.0 == super::codes::IMAGING_MEASUREMENTS.value))
        .ok_or_else(|| ReadReportError::NotAReport(path.display().to_string()))?;
    Ok(get_items(container, tags::CONTENT_SEQUENCE)
        .iter()
        .map(|group| {
            let mut g = ReadGroup {
                tracking_identifier: String::new(),
                finding: None,
                values: Vec::new(),
                comment: None,
            };
            for item in get_items(group, tags::CONTENT_SEQUENCE) {
                let Some((code, meaning)) = concept(item) else {
                    continue;
                };
                let value_type = get_str(item, tags::VALUE_TYPE).unwrap_or_default();
                match value_type.as_str() {
                    "TEXT" if code == super::codes::TRACKING_IDENTIFIER.value => {
                        g.tracking_identifier = get_str(item, tags::TEXT_VALUE).unwrap_or_default()
                    }
                    "TEXT" if code == super::codes::COMMENT.value => {
                        g.comment = get_str(item, tags::TEXT_VALUE)
                    }
                    "CODE" if code == super::codes::FINDING.value => {
                        g.finding = first_item(item, tags::CONCEPT_CODE_SEQUENCE)
                            .and_then(|c| get_str(c, tags::CODE_VALUE))
                    }
                    "NUM" => {
                        let Some(mv) = first_item(item, tags::MEASURED_VALUE_SEQUENCE) else {
                            continue;
                        };
                        let value =
                            get_str(mv, tags::NUMERIC_VALUE).and_then(|v| v.parse::<f64>().ok());
                        let unit = first_item(mv, tags::MEASUREMENT_UNITS_CODE_SEQUENCE)
                            .and_then(|u| get_str(u, tags::CODE_VALUE))
                            .unwrap_or_default();
                        if let Some(value) = value {
                            g.values.push((code, meaning, value, unit));
                        }
                    }
                    _ => {}
                }
            }
            g
        })
        .collect())
}

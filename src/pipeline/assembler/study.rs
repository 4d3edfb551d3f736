//! What the assembler remembers about one study: its series parts, their instances, when
//! things arrived, which associations brought them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// A series, or one temporal position of a series that holds several (a single dynamic
/// series is split by TemporalPositionIdentifier).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartKey {
    /// Series Instance UID.
    pub series_uid: String,
    /// TemporalPositionIdentifier, when the instances carry one.
    pub temporal_position: Option<u32>,
}

/// Bookkeeping for one series part.
#[derive(Debug, Clone, Default)]
pub struct SeriesPart {
    /// SeriesDescription.
    pub description: String,
    /// SeriesNumber.
    pub series_number: Option<i32>,
    /// Earliest AcquisitionTime seen (TM, as text: HHMMSS.frac sorts correctly).
    pub acquisition_time: Option<String>,
    /// SeriesTime.
    pub series_time: String,
    /// Distinct SOP Instance UIDs (a re-sent instance counts once).
    pub instances: BTreeSet<String>,
}

impl SeriesPart {
    /// Distinct instances.
    pub fn slices(&self) -> usize {
        self.instances.len()
    }

    /// Ordering key for acquisition order: AcquisitionTime, else SeriesTime.
    pub fn time_key(&self) -> (String, String) {
        (
            self.acquisition_time.clone().unwrap_or_default(),
            self.series_time.clone(),
        )
    }
}

/// Where a study is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Instances are arriving; no decision yet.
    Collecting,
    /// A job was issued (or the study given up) for these inputs; kept to recognise a
    /// re-send of the same instances.
    Decided { fingerprint: Option<u64> },
}

/// One study under assembly (or one instance, for pipelines that run per instance).
#[derive(Debug, Clone)]
pub struct StudyState {
    /// Study Instance UID.
    pub study_uid: String,
    /// When its first instance arrived (since the last decision).
    pub first_seen: Instant,
    /// When its latest instance arrived.
    pub last_instance: Instant,
    /// Series parts by key.
    pub parts: BTreeMap<PartKey, SeriesPart>,
    /// Associations that delivered instances since the last decision.
    pub associations: BTreeSet<u64>,
    /// Collecting or decided.
    pub phase: Phase,
    /// Fingerprint of the inputs of the last job issued, if any.
    pub last_job_fingerprint: Option<u64>,
}

impl StudyState {
    /// A new study seen at `now`.
    pub fn new(study_uid: &str, now: Instant) -> Self {
        StudyState {
            study_uid: study_uid.to_string(),
            first_seen: now,
            last_instance: now,
            parts: BTreeMap::new(),
            associations: BTreeSet::new(),
            phase: Phase::Collecting,
            last_job_fingerprint: None,
        }
    }
}

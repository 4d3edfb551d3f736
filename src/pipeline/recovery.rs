//! Start-up recovery: what the node was doing when it last stopped (or crashed) is read
//! back from the spool, so that studies still collecting complete, jobs cut short run
//! again, and studies already segmented do not get a second SEG.
//!
//! Headers are re-read from the stored files (the index does not hold every attribute a
//! pipeline's tag rules may test). Only studies that received an instance within the
//! longest `force_after_seconds` of the enabled pipelines, or that have a job cut short,
//! are re-read, which bounds the work at start-up.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dicom_dictionary_std::tags;
use dicom_object::OpenFileOptions;
use tracing::warn;

use crate::error_chain::error_chain;
use crate::ingest::{HeaderError, InstanceHeader, Origin};
use crate::pipeline::assembler::InstanceSeen;
use crate::spool::{InstanceRecord, JobState, Spool, SpoolError};

/// What start-up recovery found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Instances of the studies to re-assemble, as if just received (no association).
    pub instances: Vec<InstanceSeen>,
    /// (pipeline, study, fingerprint) of jobs that produced a SEG.
    pub done_jobs: Vec<(String, String, u64)>,
    /// Studies re-read.
    pub studies: usize,
    /// Jobs that were running when the node stopped (now recorded as interrupted).
    pub interrupted_jobs: usize,
}

/// The job record's reason for a job the node did not finish.
pub const INTERRUPTED: &str =
    "interrupted: the node stopped while the job ran; the study is assembled again";

/// Read back recent studies and job outcomes. Blocking (index and file reads).
pub fn recover(spool: &Spool, window: Duration) -> Result<Recovered, SpoolError> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let cutoff_ms = now_ms - window.as_millis() as i64;
    let mut out = Recovered::default();
    let mut seen_instances = HashSet::new();
    for study in spool.studies()? {
        let jobs = spool.jobs().of_study(&study.study_uid)?;
        let mut interrupted = false;
        for job in &jobs {
            match job.state {
                JobState::Running => {
                    spool.jobs().failed(job.id, INTERRUPTED)?;
                    out.interrupted_jobs += 1;
                    interrupted = true;
                }
                JobState::Done => {
                    if let Ok(fp) = u64::from_str_radix(&job.fingerprint, 16) {
                        out.done_jobs
                            .push((job.pipeline.clone(), job.study_uid.clone(), fp));
                    }
                }
                JobState::Failed => {}
            }
        }
        if study.last_received_ms < cutoff_ms && !interrupted {
            continue;
        }
        out.studies += 1;
        for series in spool.series_of_study(&study.study_uid)? {
            for instance in spool.instances_of_series(&series.series_uid)? {
                if !seen_instances.insert(instance.sop_instance_uid.clone()) {
                    continue;
                }
                match read_back(&instance) {
                    Ok(seen) => out.instances.push(seen),
                    Err(reason) => warn!(
                        study = %study.study_uid,
                        path = %instance.path.display(),
                        reason = %error_chain(&reason),
                        "stored instance unreadable at start-up; left out of its study"
                    ),
                }
            }
        }
    }
    Ok(out)
}

/// Stored instances the pipelines missed (their ingest events were dropped while the
/// assembler stalled): those received at or after `since_ms` that are not in `known`, with
/// their headers read back from the files, at most [`MAX_MISSED`]. Blocking.
pub fn missed_instances(
    spool: &Spool,
    since_ms: i64,
    known: &HashSet<String>,
) -> Result<Vec<InstanceSeen>, SpoolError> {
    let mut out = Vec::new();
    for instance in spool.instances_received_since(since_ms, MAX_MISSED)? {
        if known.contains(&instance.sop_instance_uid) {
            continue;
        }
        match read_back(&instance) {
            Ok(seen) => out.push(seen),
            Err(reason) => warn!(
                path = %instance.path.display(),
                reason = %error_chain(&reason),
                "stored instance unreadable; left out of its study"
            ),
        }
    }
    Ok(out)
}

/// Why a stored instance could not be read back (it is logged and left out of its study;
/// the file stays in the spool for the operator).
#[derive(Debug, thiserror::Error)]
enum ReadBackError {
    #[error("cannot read the stored file: {0}")]
    Open(#[from] dicom_object::ReadError),
    #[error("its header lacks what the assembler needs: {0}")]
    Header(#[from] HeaderError),
}

/// Instances read back at most per reconciliation.
pub const MAX_MISSED: usize = 100_000;

/// A stored instance as the assembler sees it: its header read back from the file, its
/// AE titles from the index (no association: it completes by its pipeline's stable time).
fn read_back(instance: &InstanceRecord) -> Result<InstanceSeen, ReadBackError> {
    let obj = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(&instance.path)?;
    Ok(InstanceSeen {
        header: InstanceHeader::from_object(&obj)?,
        origin: Origin {
            association_id: None,
            calling_ae: instance.calling_ae.clone(),
            called_ae: instance.called_ae.clone(),
        },
    })
}

//! The jobs table: one row per segmentation job, `running` from before it runs, then `done`
//! (its SEG, findings and stage timings, recorded in the same transaction that queues its
//! deliveries in the outbox) or `failed` (why). Start-up recovery reads it to run again what
//! a stop cut short and not to segment a study twice; `segnode status` and the admin API
//! list it.

use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, params};

use super::index::Index;
use super::{JobState, Spool, SpoolError, lock, now_ms, outbox};
use crate::pipeline::assembler::Trigger;
use crate::pipeline::output::OutputInstance;

/// A job as recorded in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    /// Row id.
    pub id: i64,
    /// Pipeline name.
    pub pipeline: String,
    /// Study Instance UID.
    pub study_uid: String,
    /// Hex fingerprint of the chosen inputs.
    pub fingerprint: String,
    /// What started it.
    pub trigger: Trigger,
    /// Where it is.
    pub state: JobState,
    /// The SEG written, when done.
    pub seg_path: Option<String>,
    /// SOP Instance UID of the SEG, when done.
    pub seg_sop_instance_uid: Option<String>,
    /// JSON array of per-segment findings (label, voxels, volume_ml or area_mm2 when
    /// known, fraction_percent).
    pub findings: Option<String>,
    /// JSON object of stage timings in seconds.
    pub timings: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A job as the admin API lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobRow {
    /// Row id.
    pub id: i64,
    /// Pipeline name.
    pub pipeline: String,
    /// Study Instance UID.
    pub study_uid: String,
    /// What started it.
    pub trigger: Trigger,
    /// Where it is.
    pub state: JobState,
    /// When it started (ms since the Unix epoch).
    pub started_ms: i64,
    /// When it finished.
    pub finished_ms: Option<i64>,
    /// The SEG written, when done.
    pub seg_path: Option<String>,
    /// Per-segment findings (JSON array), when done.
    pub findings: Option<serde_json::Value>,
    /// Stage timings in seconds (JSON object), when done.
    pub timings: Option<serde_json::Value>,
    /// Why it failed.
    pub error: Option<String>,
}

/// The jobs table of a spool's index ([`Spool::jobs`]). Its calls are blocking (SQLite),
/// like the spool's.
pub struct JobStore<'a> {
    index: &'a Mutex<Index>,
}

impl Spool {
    /// The jobs table.
    pub fn jobs(&self) -> JobStore<'_> {
        JobStore { index: &self.index }
    }
}

impl JobStore<'_> {
    fn index(&self) -> MutexGuard<'_, Index> {
        lock(self.index)
    }

    /// Record that a job starts (before it runs); returns the job id.
    pub fn started(
        &self,
        pipeline: &str,
        study_uid: &str,
        fingerprint: &str,
        trigger: Trigger,
    ) -> Result<i64, SpoolError> {
        let index = self.index();
        index.conn().execute(
            "INSERT INTO jobs (pipeline, study_uid, fingerprint, trigger, state, started_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                pipeline,
                study_uid,
                fingerprint,
                trigger,
                JobState::Running,
                now_ms()
            ],
        )?;
        Ok(index.conn().last_insert_rowid())
    }

    /// Record a job done (its SEG, findings and stage timings, JSON) and queue its SEG and
    /// the SEG's companions (report, overlay) for every destination, in one transaction.
    #[allow(clippy::too_many_arguments)]
    pub fn done_with_deliveries(
        &self,
        id: i64,
        study_uid: &str,
        seg: &OutputInstance,
        companions: &[OutputInstance],
        findings_json: &str,
        timings_json: &str,
        destinations: &[String],
    ) -> Result<(), SpoolError> {
        let index = self.index();
        let now = now_ms();
        let tx = index.conn().unchecked_transaction()?;
        record_done(
            index.conn(),
            id,
            &seg.path.to_string_lossy(),
            &seg.sop_instance_uid,
            findings_json,
            timings_json,
            now,
        )?;
        let instances: Vec<&OutputInstance> =
            std::iter::once(seg).chain(companions.iter()).collect();
        outbox::insert(index.conn(), id, study_uid, &instances, destinations, now)?;
        tx.commit()?;
        Ok(())
    }

    /// Record why a job failed.
    pub fn failed(&self, id: i64, error: &str) -> Result<(), SpoolError> {
        self.index().conn().execute(
            "UPDATE jobs SET state = ?4, finished_ms = ?2, error = ?3 WHERE id = ?1",
            params![id, now_ms(), error, JobState::Failed],
        )?;
        Ok(())
    }

    /// The jobs of one study, oldest first.
    pub fn of_study(&self, study_uid: &str) -> Result<Vec<JobRecord>, SpoolError> {
        let index = self.index();
        let mut stmt = index.conn().prepare(
            "SELECT id, pipeline, study_uid, fingerprint, trigger, state, seg_path, seg_sop_instance_uid,
                    findings, timings, error FROM jobs WHERE study_uid = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map(params![study_uid], |r| {
            Ok(JobRecord {
                id: r.get(0)?,
                pipeline: r.get(1)?,
                study_uid: r.get(2)?,
                fingerprint: r.get(3)?,
                trigger: r.get(4)?,
                state: r.get(5)?,
                seg_path: r.get(6)?,
                seg_sop_instance_uid: r.get(7)?,
                findings: r.get(8)?,
                timings: r.get(9)?,
                error: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The most recent jobs, newest first.
    pub fn recent(&self, limit: usize) -> Result<Vec<JobRow>, SpoolError> {
        self.rows_where("1 = 1", params![limit as i64])
    }

    /// One job by id.
    pub fn row(&self, id: i64) -> Result<Option<JobRow>, SpoolError> {
        Ok(self
            .rows_where("id = ?2", params![1, id])?
            .into_iter()
            .next())
    }

    fn rows_where(
        &self,
        condition: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<JobRow>, SpoolError> {
        let index = self.index();
        let mut stmt = index.conn().prepare(&format!(
            "SELECT id, pipeline, study_uid, trigger, state, started_ms, finished_ms, seg_path,
                    findings, timings, error FROM jobs WHERE {condition} ORDER BY id DESC LIMIT ?1"
        ))?;
        let rows = stmt.query_map(args, |r| {
            Ok(JobRow {
                id: r.get(0)?,
                pipeline: r.get(1)?,
                study_uid: r.get(2)?,
                trigger: r.get(3)?,
                state: r.get(4)?,
                started_ms: r.get(5)?,
                finished_ms: r.get(6)?,
                seg_path: r.get(7)?,
                findings: json_column(r.get(8)?),
                timings: json_column(r.get(9)?),
                error: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Record a job's SEG, findings and timings (inside the caller's transaction).
fn record_done(
    conn: &Connection,
    id: i64,
    seg_path: &str,
    seg_uid: &str,
    findings: &str,
    timings: &str,
    now_ms: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE jobs SET state = ?7, finished_ms = ?2, seg_path = ?3, seg_sop_instance_uid = ?4,
                         findings = ?5, timings = ?6 WHERE id = ?1",
        params![
            id,
            now_ms,
            seg_path,
            seg_uid,
            findings,
            timings,
            JobState::Done
        ],
    )?;
    Ok(())
}

fn json_column(text: Option<String>) -> Option<serde_json::Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

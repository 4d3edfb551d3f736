//! What the admin API reads from and changes in the index: recent jobs with their times,
//! outbox rows by state, counts per destination, and the operator's re-send of a
//! dead-lettered delivery. Also the spool's own health (filer backlog, free disk).

use std::time::Duration;

use rusqlite::{OptionalExtension, params};

use super::{DeliveryState, OutboxRecord, Spool, SpoolError, disk, now_ms, outbox};

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
    pub trigger: crate::pipeline::assembler::Trigger,
    /// Where it is.
    pub state: super::JobState,
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

/// Deliveries of one destination in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxCount {
    /// Destination name.
    pub destination: String,
    /// The rows' state.
    pub state: super::DeliveryState,
    /// Rows.
    pub count: u64,
}

/// Activity over a recent window, for the dashboard.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Activity {
    /// Instances received in the window.
    pub instances: u64,
    /// Distinct studies they belong to.
    pub studies: u64,
    /// Jobs finished in the window.
    pub jobs: u64,
}

fn json_column(text: Option<String>) -> Option<serde_json::Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

impl Spool {
    /// Acknowledged instances not yet filed, and how long the oldest has waited (zero
    /// without a journal).
    pub fn filer_backlog(&self) -> (u64, Duration) {
        self.journal
            .as_ref()
            .map_or((0, Duration::ZERO), |j| j.backlog())
    }

    /// Bytes free on the spool's file system.
    pub fn free_bytes(&self) -> std::io::Result<u64> {
        disk::free_bytes(&self.root)
    }

    /// The most recent jobs, newest first.
    pub fn recent_jobs(&self, limit: usize) -> Result<Vec<JobRow>, SpoolError> {
        self.jobs_where("1 = 1", params![limit as i64])
    }

    /// One job by id.
    pub fn job_row(&self, id: i64) -> Result<Option<JobRow>, SpoolError> {
        Ok(self
            .jobs_where("id = ?2", params![1, id])?
            .into_iter()
            .next())
    }

    fn jobs_where(
        &self,
        condition: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<JobRow>, SpoolError> {
        let index = self.lock_index();
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

    /// Outbox rows per destination and state.
    pub fn outbox_counts(&self) -> Result<Vec<OutboxCount>, SpoolError> {
        let index = self.lock_index();
        let mut stmt = index.conn().prepare(
            "SELECT destination, state, COUNT(*) FROM outbox GROUP BY destination, state
             ORDER BY destination, state",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(OutboxCount {
                destination: r.get(0)?,
                state: r.get(1)?,
                count: r.get::<_, i64>(2)?.max(0) as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest outbox rows, newest first.
    pub fn outbox_recent(&self, limit: usize) -> Result<Vec<OutboxRecord>, SpoolError> {
        let mut rows = Vec::new();
        // Dead and pending rows first: they are what an operator acts on.
        for state in [
            DeliveryState::Dead,
            DeliveryState::Pending,
            DeliveryState::Delivered,
        ] {
            if rows.len() >= limit {
                break;
            }
            let found = self.outbox_in_state(state, limit - rows.len())?;
            rows.extend(found);
        }
        Ok(rows)
    }

    /// One outbox row by id.
    pub fn outbox_row(&self, id: i64) -> Result<Option<OutboxRecord>, SpoolError> {
        let index = self.lock_index();
        Ok(index
            .conn()
            .query_row(
                &format!("{} WHERE id = ?1", outbox::SELECT),
                [id],
                outbox::row,
            )
            .optional()?)
    }

    /// Send a dead-lettered delivery again: pending, attempts reset, due now. False when
    /// the row is not dead (already pending or delivered).
    pub fn outbox_requeue_dead(&self, id: i64) -> Result<bool, SpoolError> {
        let changed = self.lock_index().conn().execute(
            "UPDATE outbox SET state = ?3, attempts = 0, next_attempt_ms = ?2
             WHERE id = ?1 AND state = ?4",
            params![id, now_ms(), DeliveryState::Pending, DeliveryState::Dead],
        )?;
        Ok(changed == 1)
    }

    /// Instances, studies and finished jobs since `since_ms`.
    pub fn activity_since(&self, since_ms: i64) -> Result<Activity, SpoolError> {
        let index = self.lock_index();
        let (instances, studies) = index.conn().query_row(
            "SELECT COUNT(*), COUNT(DISTINCT study_uid) FROM instances WHERE received_ms >= ?1",
            [since_ms],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
        )?;
        let jobs: i64 = index.conn().query_row(
            "SELECT COUNT(*) FROM jobs WHERE finished_ms >= ?1",
            [since_ms],
            |r| r.get(0),
        )?;
        Ok(Activity {
            instances: instances.max(0) as u64,
            studies: studies.max(0) as u64,
            jobs: jobs.max(0) as u64,
        })
    }

    fn outbox_in_state(
        &self,
        state: DeliveryState,
        limit: usize,
    ) -> Result<Vec<OutboxRecord>, SpoolError> {
        let index = self.lock_index();
        let mut stmt = index.conn().prepare(&format!(
            "{} WHERE state = ?1 ORDER BY id DESC LIMIT ?2",
            outbox::SELECT
        ))?;
        let rows = stmt.query_map(params![state, limit as i64], outbox::row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

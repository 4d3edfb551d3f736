//! The outbox table: one row per (instance, destination), written in the same transaction
//! that records the job done ([`JobStore::done_with_deliveries`](super::JobStore::done_with_deliveries)),
//! so a SEG and the instances that travel with it (report, overlay) are in the outbox before
//! anything is sent and a crash can never leave a finished job without its deliveries. The
//! sender (`crate::outbox`) reads due rows and records each attempt's outcome here; the
//! admin API lists rows and counts, and re-sends a dead-lettered one.
//!
//! States: `pending` (due at `next_attempt_ms`), `delivered`, `dead` (attempts spent, or a
//! permanent refusal). A row is unique per SOP Instance UID and destination, so enqueueing
//! twice is harmless.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};

use super::index::Index;
use super::{DeliveryState, Spool, SpoolError, lock, now_ms};
use crate::pipeline::output::{OutputInstance, OutputKind};

/// One delivery of one instance (a SEG, its report or an overlay image) to one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRecord {
    /// Row id.
    pub id: i64,
    /// The job that made the SEG.
    pub job_id: i64,
    /// Study Instance UID of the SEG.
    pub study_uid: String,
    /// Destination name (a `[[destinations]]` entry).
    pub destination: String,
    /// What the instance is.
    pub kind: OutputKind,
    /// The instance's file (in the results folder; it is the outbox copy). Named for the
    /// column, which predates reports and overlays.
    pub seg_path: PathBuf,
    /// SOP Instance UID of the instance: the same on every attempt.
    pub sop_instance_uid: String,
    /// Where the delivery is.
    pub state: DeliveryState,
    /// Attempts made so far (a C-ECHO probe that failed counts as one).
    pub attempts: u32,
    /// When a pending row is due (ms since the Unix epoch).
    pub next_attempt_ms: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the destination acknowledged it.
    pub delivered_ms: Option<i64>,
}

/// Deliveries of one destination in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxCount {
    /// Destination name.
    pub destination: String,
    /// The rows' state.
    pub state: DeliveryState,
    /// Rows.
    pub count: u64,
}

/// The outbox table of a spool's index ([`Spool::outbox`]). Its calls are blocking
/// (SQLite), like the spool's.
pub struct OutboxStore<'a> {
    index: &'a Mutex<Index>,
}

impl Spool {
    /// The outbox table.
    pub fn outbox(&self) -> OutboxStore<'_> {
        OutboxStore { index: &self.index }
    }
}

const SELECT: &str = "SELECT id, job_id, study_uid, destination, seg_path, sop_instance_uid, state,
        attempts, next_attempt_ms, last_error, delivered_ms, kind FROM outbox";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRecord> {
    let kind: String = r.get(11)?;
    let kind = kind.parse::<OutputKind>().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(11, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(OutboxRecord {
        kind,
        id: r.get(0)?,
        job_id: r.get(1)?,
        study_uid: r.get(2)?,
        destination: r.get(3)?,
        seg_path: PathBuf::from(r.get::<_, String>(4)?),
        sop_instance_uid: r.get(5)?,
        state: r.get(6)?,
        attempts: r.get::<_, i64>(7)?.max(0) as u32,
        next_attempt_ms: r.get(8)?,
        last_error: r.get(9)?,
        delivered_ms: r.get(10)?,
    })
}

/// Queue `instances` for each destination, due at `now` (inside the caller's transaction).
pub(super) fn insert(
    conn: &Connection,
    job_id: i64,
    study_uid: &str,
    instances: &[&OutputInstance],
    destinations: &[String],
    now: i64,
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare(
        "INSERT OR IGNORE INTO outbox (job_id, study_uid, destination, seg_path, sop_instance_uid,
                                       kind, state, attempts, next_attempt_ms, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?8, 0, ?7, ?7)",
    )?;
    // Destination by destination, the SEG first: a peer gets the SEG before what refers to it.
    for destination in destinations {
        for instance in instances {
            stmt.execute(params![
                job_id,
                study_uid,
                destination,
                instance.path.to_string_lossy(),
                instance.sop_instance_uid,
                instance.kind,
                now,
                DeliveryState::Pending
            ])?;
        }
    }
    Ok(())
}

impl OutboxStore<'_> {
    fn index(&self) -> MutexGuard<'_, Index> {
        lock(self.index)
    }

    /// Queue one instance for delivery to each destination, due now. An (instance,
    /// destination) pair already queued is left as it is.
    pub fn enqueue(
        &self,
        job_id: i64,
        study_uid: &str,
        instance: &OutputInstance,
        destinations: &[String],
    ) -> Result<(), SpoolError> {
        let index = self.index();
        let tx = index.conn().unchecked_transaction()?;
        insert(
            index.conn(),
            job_id,
            study_uid,
            &[instance],
            destinations,
            now_ms(),
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Pending rows due at `now_ms`, earliest first, at most `limit`.
    pub fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxRecord>, SpoolError> {
        let index = self.index();
        let mut stmt = index.conn().prepare(&format!(
            "{SELECT} WHERE state = ?3 AND next_attempt_ms <= ?1
             ORDER BY next_attempt_ms, id LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![now_ms, limit as i64, DeliveryState::Pending], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// When the next pending row is due, if any is pending.
    pub fn next_due(&self) -> Result<Option<i64>, SpoolError> {
        let index = self.index();
        Ok(index
            .conn()
            .query_row(
                "SELECT MIN(next_attempt_ms) FROM outbox WHERE state = ?1",
                [DeliveryState::Pending],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()?
            .flatten())
    }

    /// The destination acknowledged the SEG: one more attempt, delivered now.
    pub fn delivered(&self, id: i64) -> Result<(), SpoolError> {
        self.index().conn().execute(
            "UPDATE outbox SET state = ?3, attempts = attempts + 1, delivered_ms = ?2
             WHERE id = ?1",
            params![id, now_ms(), DeliveryState::Delivered],
        )?;
        Ok(())
    }

    /// An attempt failed: one more attempt, due again at `next_attempt_ms`.
    pub fn retry(&self, id: i64, next_attempt_ms: i64, error: &str) -> Result<(), SpoolError> {
        self.index().conn().execute(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_ms = ?2, last_error = ?3
             WHERE id = ?1",
            params![id, next_attempt_ms, error],
        )?;
        Ok(())
    }

    /// The last attempt failed: dead-lettered with its error; never tried again.
    pub fn dead(&self, id: i64, error: &str) -> Result<(), SpoolError> {
        self.index().conn().execute(
            "UPDATE outbox SET state = ?3, attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
            params![id, error, DeliveryState::Dead],
        )?;
        Ok(())
    }

    /// A destination is down: its other pending rows wait until `until_ms` too (no attempt
    /// is counted for them), so a down peer is probed once per backoff, not once per SEG.
    pub fn defer_destination(&self, destination: &str, until_ms: i64) -> Result<(), SpoolError> {
        self.index().conn().execute(
            "UPDATE outbox SET next_attempt_ms = ?2
             WHERE destination = ?1 AND state = ?3 AND next_attempt_ms < ?2",
            params![destination, until_ms, DeliveryState::Pending],
        )?;
        Ok(())
    }

    /// The deliveries of one study, oldest first.
    pub fn of_study(&self, study_uid: &str) -> Result<Vec<OutboxRecord>, SpoolError> {
        let index = self.index();
        let mut stmt = index
            .conn()
            .prepare(&format!("{SELECT} WHERE study_uid = ?1 ORDER BY id"))?;
        let rows = stmt.query_map(params![study_uid], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The deliveries of one job, oldest first.
    pub fn of_job(&self, job_id: i64) -> Result<Vec<OutboxRecord>, SpoolError> {
        let index = self.index();
        let mut stmt = index
            .conn()
            .prepare(&format!("{SELECT} WHERE job_id = ?1 ORDER BY id"))?;
        let rows = stmt.query_map(params![job_id], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Rows per destination and state.
    pub fn counts(&self) -> Result<Vec<OutboxCount>, SpoolError> {
        let index = self.index();
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

    /// The newest rows, newest first.
    pub fn recent(&self, limit: usize) -> Result<Vec<OutboxRecord>, SpoolError> {
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
            let found = self.in_state(state, limit - rows.len())?;
            rows.extend(found);
        }
        Ok(rows)
    }

    /// One row by id.
    pub fn row(&self, id: i64) -> Result<Option<OutboxRecord>, SpoolError> {
        let index = self.index();
        Ok(index
            .conn()
            .query_row(&format!("{SELECT} WHERE id = ?1"), [id], row)
            .optional()?)
    }

    /// Send a dead-lettered delivery again: pending, attempts reset, due now. False when
    /// the row is not dead (already pending or delivered).
    pub fn requeue_dead(&self, id: i64) -> Result<bool, SpoolError> {
        let changed = self.index().conn().execute(
            "UPDATE outbox SET state = ?3, attempts = 0, next_attempt_ms = ?2
             WHERE id = ?1 AND state = ?4",
            params![id, now_ms(), DeliveryState::Pending, DeliveryState::Dead],
        )?;
        Ok(changed == 1)
    }

    fn in_state(
        &self,
        state: DeliveryState,
        limit: usize,
    ) -> Result<Vec<OutboxRecord>, SpoolError> {
        let index = self.index();
        let mut stmt = index.conn().prepare(&format!(
            "{SELECT} WHERE state = ?1 ORDER BY id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![state, limit as i64], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::assembler::Trigger;
    use crate::spool::JobState;

    #[test]
    fn a_row_goes_pending_retry_delivered_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(
            dir.path(),
            &crate::config::StorageConfig {
                min_free_disk_mb: 0,
                ..Default::default()
            },
        )
        .unwrap();
        let job = spool
            .jobs()
            .started("p", "1.2.3", "ff", Trigger::Stable)
            .unwrap();
        let dests = vec!["a".to_string(), "b".to_string()];
        let seg = OutputInstance {
            kind: OutputKind::Seg,
            path: dir.path().join("seg.dcm"),
            sop_instance_uid: "1.2.3.4".into(),
        };
        spool
            .jobs()
            .done_with_deliveries(job, "1.2.3", &seg, &[], "[]", "{}", &dests)
            .unwrap();
        // Enqueueing again is a no-op.
        spool.outbox().enqueue(job, "1.2.3", &seg, &dests).unwrap();
        let rows = spool.outbox().of_study("1.2.3").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            spool.jobs().of_study("1.2.3").unwrap()[0].state,
            JobState::Done
        );
        let due = spool.outbox().due(now_ms(), 10).unwrap();
        assert_eq!(due.len(), 2);
        assert_eq!(
            (due[0].kind, &due[0].seg_path),
            (OutputKind::Seg, &seg.path)
        );

        let later = now_ms() + 60_000;
        spool.outbox().retry(due[0].id, later, "refused").unwrap();
        spool.outbox().defer_destination("b", later).unwrap();
        assert!(spool.outbox().due(now_ms(), 10).unwrap().is_empty());
        assert_eq!(spool.outbox().next_due().unwrap(), Some(later));
        spool.outbox().delivered(due[0].id).unwrap();
        spool.outbox().dead(due[1].id, "gone").unwrap();
        drop(spool);

        let spool = Spool::open_existing(dir.path()).unwrap();
        let rows = spool.outbox().of_job(job).unwrap();
        assert_eq!(
            (rows[0].state, rows[0].attempts),
            (DeliveryState::Delivered, 2)
        );
        assert!(rows[0].delivered_ms.is_some());
        assert_eq!(
            (
                rows[1].state,
                rows[1].attempts,
                rows[1].last_error.as_deref()
            ),
            (DeliveryState::Dead, 1, Some("gone"))
        );
        assert_eq!(spool.outbox().next_due().unwrap(), None);
    }

    #[test]
    fn companions_are_queued_with_the_seg_and_seg_first_per_destination() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(
            dir.path(),
            &crate::config::StorageConfig {
                min_free_disk_mb: 0,
                ..Default::default()
            },
        )
        .unwrap();
        let job = spool
            .jobs()
            .started("p", "1.2.3", "ff", Trigger::Stable)
            .unwrap();
        let instance = |kind, n: u32| OutputInstance {
            kind,
            path: dir.path().join(format!("{n}.dcm")),
            sop_instance_uid: format!("1.2.3.{n}"),
        };
        let seg = instance(OutputKind::Seg, 1);
        let companions = [
            instance(OutputKind::Report, 2),
            instance(OutputKind::Overlay, 3),
        ];
        let dests = vec!["a".to_string(), "b".to_string()];
        spool
            .jobs()
            .done_with_deliveries(job, "1.2.3", &seg, &companions, "[]", "{}", &dests)
            .unwrap();
        let rows: Vec<(String, OutputKind, String)> = spool
            .outbox()
            .due(now_ms(), 10)
            .unwrap()
            .into_iter()
            .map(|r| (r.destination, r.kind, r.sop_instance_uid))
            .collect();
        let expected: Vec<(String, OutputKind, String)> = ["a", "b"]
            .iter()
            .flat_map(|d| {
                [
                    (OutputKind::Seg, 1),
                    (OutputKind::Report, 2),
                    (OutputKind::Overlay, 3),
                ]
                .map(|(k, n)| (d.to_string(), k, format!("1.2.3.{n}")))
            })
            .collect();
        assert_eq!(rows, expected);
        assert_eq!(
            spool.jobs().of_study("1.2.3").unwrap()[0]
                .seg_sop_instance_uid
                .as_deref(),
            Some("1.2.3.1")
        );
    }
}

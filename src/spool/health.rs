//! How the spool itself is doing, for the admin API's health, metrics and dashboard: the
//! filer's backlog, free disk, and what arrived and finished over a recent window.

use std::time::Duration;

use super::{Spool, SpoolError, disk};

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
}

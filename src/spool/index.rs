//! The spool index in SQLite: its schema (every table, versioned with `PRAGMA
//! user_version`), the studies, series and instances tables, and the journal's retired
//! segments. WAL journal with `synchronous=FULL`, so a committed row survives power loss.
//! The jobs and outbox tables have modules of their own (`jobs.rs`, `outbox.rs`) that use
//! [`Index::conn`].

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use crate::ingest::InstanceHeader;

/// Each entry migrates the schema from version i to i+1.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE studies (
    study_uid         TEXT PRIMARY KEY,
    patient_id        TEXT NOT NULL,
    patient_name      TEXT NOT NULL,
    study_date        TEXT NOT NULL,
    accession_number  TEXT NOT NULL,
    first_received_ms INTEGER NOT NULL,
    last_received_ms  INTEGER NOT NULL
);
CREATE TABLE series (
    series_uid         TEXT PRIMARY KEY,
    study_uid          TEXT NOT NULL REFERENCES studies(study_uid),
    modality           TEXT NOT NULL,
    series_number      INTEGER,
    series_description TEXT NOT NULL,
    series_time        TEXT NOT NULL,
    last_received_ms   INTEGER NOT NULL
);
CREATE INDEX series_by_study ON series(study_uid);
CREATE TABLE instances (
    sop_instance_uid    TEXT PRIMARY KEY,
    sop_class_uid       TEXT NOT NULL,
    study_uid           TEXT NOT NULL,
    series_uid          TEXT NOT NULL REFERENCES series(series_uid),
    instance_number     INTEGER,
    acquisition_time    TEXT NOT NULL,
    temporal_position   INTEGER,
    transfer_syntax_uid TEXT NOT NULL,
    path                TEXT NOT NULL,
    size_bytes          INTEGER NOT NULL,
    calling_ae          TEXT NOT NULL,
    received_ms         INTEGER NOT NULL,
    times_received      INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX instances_by_series ON instances(series_uid);
CREATE INDEX instances_by_study ON instances(study_uid);
"#,
    r#"
CREATE TABLE jobs (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline             TEXT NOT NULL,
    study_uid            TEXT NOT NULL,
    fingerprint          TEXT NOT NULL,
    trigger              TEXT NOT NULL,
    state                TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    started_ms           INTEGER NOT NULL,
    finished_ms          INTEGER,
    seg_path             TEXT,
    seg_sop_instance_uid TEXT,
    findings             TEXT,
    timings              TEXT,
    error                TEXT
);
CREATE INDEX jobs_by_study ON jobs(study_uid);
"#,
    r#"
CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id           INTEGER NOT NULL REFERENCES jobs(id),
    study_uid        TEXT NOT NULL,
    destination      TEXT NOT NULL,
    seg_path         TEXT NOT NULL,
    sop_instance_uid TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms  INTEGER NOT NULL,
    last_error       TEXT,
    created_ms       INTEGER NOT NULL,
    delivered_ms     INTEGER,
    UNIQUE (sop_instance_uid, destination)
);
CREATE INDEX outbox_due ON outbox(state, next_attempt_ms);
CREATE INDEX outbox_by_study ON outbox(study_uid);
"#,
    r#"
CREATE TABLE journal_retired (
    generation INTEGER PRIMARY KEY,
    retired_ms INTEGER NOT NULL
);
"#,
    // Reports and overlay images travel through the outbox beside the SEG.
    r#"
ALTER TABLE outbox ADD COLUMN kind TEXT NOT NULL DEFAULT 'seg'
    CHECK (kind IN ('seg', 'report', 'overlay'));
"#,
    // The called AE routes an instance to its pipelines (`applies_to.called_ae_titles`),
    // also when it is read back at start-up; rows from before are '' (unknown).
    r#"
ALTER TABLE instances ADD COLUMN called_ae TEXT NOT NULL DEFAULT '';
"#,
];

/// Rows kept in `journal_retired` (the most recent retirements, for diagnosis).
const RETIRED_KEPT: i64 = 1000;

/// Totals over the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpoolCounts {
    /// Distinct studies.
    pub studies: u64,
    /// Distinct series.
    pub series: u64,
    /// Distinct SOP instances (a re-sent instance counts once).
    pub instances: u64,
}

/// A study in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudyRecord {
    /// Study Instance UID.
    pub study_uid: String,
    /// Patient ID.
    pub patient_id: String,
    /// Number of instances stored.
    pub instances: u64,
    /// When the last instance arrived (ms since the Unix epoch).
    pub last_received_ms: i64,
}

/// A series in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesRecord {
    /// Series Instance UID.
    pub series_uid: String,
    /// Study it belongs to.
    pub study_uid: String,
    /// Modality.
    pub modality: String,
    /// Series number.
    pub series_number: Option<i32>,
    /// Series description.
    pub series_description: String,
    /// Number of instances stored.
    pub instances: u64,
}

/// An instance in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRecord {
    /// SOP Instance UID.
    pub sop_instance_uid: String,
    /// SOP Class UID.
    pub sop_class_uid: String,
    /// Series Instance UID.
    pub series_uid: String,
    /// Transfer syntax the file is stored in.
    pub transfer_syntax_uid: String,
    /// File path (relative inside the index; absolute from [`super::Spool`]).
    pub path: PathBuf,
    /// File size.
    pub size_bytes: u64,
    /// Calling AE that sent it (last time).
    pub calling_ae: String,
    /// Called AE it was sent to (last time); empty for instances stored before it was
    /// recorded.
    pub called_ae: String,
    /// How often this SOP instance was received.
    pub times_received: u64,
}

/// The open index.
pub struct Index {
    conn: Connection,
}

impl Index {
    /// The connection, for the other tables' modules (`jobs`, `outbox`, `health`).
    pub(super) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Open or create the index file and bring its schema up to date.
    pub fn open(path: &Path) -> rusqlite::Result<Index> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(Index { conn })
    }

    /// Record instances (and their studies and series) in one transaction. Returns, per
    /// instance, the previous relative path when its SOP Instance UID was already stored.
    pub fn upsert_instances(
        &mut self,
        rows: &[NewInstance<'_>],
    ) -> rusqlite::Result<Vec<Option<PathBuf>>> {
        let tx = self.conn.transaction()?;
        let mut previous = Vec::with_capacity(rows.len());
        for row in rows {
            previous.push(upsert_in(&tx, row)?);
        }
        tx.commit()?;
        Ok(previous)
    }

    /// This connection's commits are not flushed (WAL, `synchronous=NORMAL`): for the
    /// filer, whose rows the journal holds until [`Index::record_retired`] flushes them.
    pub fn commit_lazily(&self) -> rusqlite::Result<()> {
        self.conn.pragma_update(None, "synchronous", "NORMAL")
    }

    /// Record retired journal segments in a commit flushed with `synchronous=FULL`: its WAL
    /// sync makes every earlier commit of this connection durable too.
    pub fn record_retired(&mut self, generations: &[u64], now_ms: i64) -> rusqlite::Result<()> {
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        let result = (|| {
            let tx = self.conn.transaction()?;
            for generation in generations {
                tx.execute(
                    "INSERT OR REPLACE INTO journal_retired (generation, retired_ms) VALUES (?1, ?2)",
                    params![*generation as i64, now_ms],
                )?;
            }
            tx.execute(
                "DELETE FROM journal_retired WHERE generation <= (SELECT MAX(generation) FROM journal_retired) - ?1",
                params![RETIRED_KEPT],
            )?;
            tx.commit()
        })();
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        result
    }

    /// The latest received time in the index (Unix ms), 0 when empty.
    pub fn max_received_ms(&self) -> rusqlite::Result<i64> {
        self.conn.query_row(
            "SELECT COALESCE(MAX(received_ms), 0) FROM instances",
            [],
            |r| r.get(0),
        )
    }

    /// When the stored copy of an instance was received (Unix ms), if there is one.
    pub fn received_ms_of(&self, sop_instance_uid: &str) -> rusqlite::Result<Option<i64>> {
        // Asked once per received instance: the statement is prepared once.
        self.conn
            .prepare_cached("SELECT received_ms FROM instances WHERE sop_instance_uid = ?1")?
            .query_row(params![sop_instance_uid], |r| r.get(0))
            .optional()
    }

    /// Totals.
    pub fn counts(&self) -> rusqlite::Result<SpoolCounts> {
        self.conn.query_row(
            "SELECT (SELECT COUNT(*) FROM studies), (SELECT COUNT(*) FROM series), (SELECT COUNT(*) FROM instances)",
            [],
            |r| Ok(SpoolCounts { studies: r.get::<_, i64>(0)? as u64, series: r.get::<_, i64>(1)? as u64, instances: r.get::<_, i64>(2)? as u64 }),
        )
    }

    /// All studies, most recent first.
    pub fn studies(&self) -> rusqlite::Result<Vec<StudyRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT s.study_uid, s.patient_id, s.last_received_ms,
                    (SELECT COUNT(*) FROM instances i WHERE i.study_uid = s.study_uid)
             FROM studies s ORDER BY s.last_received_ms DESC",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(StudyRecord {
                study_uid: r.get(0)?,
                patient_id: r.get(1)?,
                last_received_ms: r.get(2)?,
                instances: r.get::<_, i64>(3)? as u64,
            })
        })?;
        rows.collect()
    }

    /// Series of one study, by series number.
    pub fn series_of_study(&self, study_uid: &str) -> rusqlite::Result<Vec<SeriesRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT s.series_uid, s.study_uid, s.modality, s.series_number, s.series_description,
                    (SELECT COUNT(*) FROM instances i WHERE i.series_uid = s.series_uid)
             FROM series s WHERE s.study_uid = ?1 ORDER BY s.series_number, s.series_uid",
        )?;
        let rows = stmt.query_map(params![study_uid], |r| {
            Ok(SeriesRecord {
                series_uid: r.get(0)?,
                study_uid: r.get(1)?,
                modality: r.get(2)?,
                series_number: r.get(3)?,
                series_description: r.get(4)?,
                instances: r.get::<_, i64>(5)? as u64,
            })
        })?;
        rows.collect()
    }

    /// Instances of one series, by instance number (arrival order is meaningless).
    pub fn instances_of_series(&self, series_uid: &str) -> rusqlite::Result<Vec<InstanceRecord>> {
        let mut stmt = self.conn.prepare(&format!(
            "{SELECT_INSTANCE} WHERE series_uid = ?1 ORDER BY instance_number, sop_instance_uid"
        ))?;
        let rows = stmt.query_map(params![series_uid], instance_row)?;
        rows.collect()
    }

    /// Instances received at or after `since_ms` (Unix ms), oldest first, at most `limit`.
    pub fn instances_received_since(
        &self,
        since_ms: i64,
        limit: usize,
    ) -> rusqlite::Result<Vec<InstanceRecord>> {
        let mut stmt = self.conn.prepare(&format!(
            "{SELECT_INSTANCE} WHERE received_ms >= ?1 ORDER BY received_ms LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![since_ms, limit as i64], instance_row)?;
        rows.collect()
    }

    /// One instance.
    pub fn instance(&self, sop_instance_uid: &str) -> rusqlite::Result<Option<InstanceRecord>> {
        self.conn
            .query_row(
                &format!("{SELECT_INSTANCE} WHERE sop_instance_uid = ?1"),
                params![sop_instance_uid],
                instance_row,
            )
            .optional()
    }
}

/// One instance to record.
#[derive(Debug, Clone, Copy)]
pub struct NewInstance<'a> {
    /// Its identity.
    pub header: &'a InstanceHeader,
    /// Its file, relative to the data folder.
    pub relative_path: &'a Path,
    /// File size.
    pub size_bytes: u64,
    /// Transfer syntax the file is stored in.
    pub transfer_syntax_uid: &'a str,
    /// Calling AE that sent it.
    pub calling_ae: &'a str,
    /// Called AE it was sent to.
    pub called_ae: &'a str,
    /// When it was received (Unix ms).
    pub received_ms: i64,
}

/// Upsert one instance and its study and series; the previous relative path, if any.
fn upsert_in(
    tx: &rusqlite::Transaction<'_>,
    row: &NewInstance<'_>,
) -> rusqlite::Result<Option<PathBuf>> {
    tx.execute(
        "INSERT INTO studies (study_uid, patient_id, patient_name, study_date, accession_number,
                              first_received_ms, last_received_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
         ON CONFLICT(study_uid) DO UPDATE SET last_received_ms = excluded.last_received_ms",
        params![
            row.header.study_uid,
            row.header.patient_id,
            row.header.patient_name,
            row.header.study_date,
            row.header.accession_number,
            row.received_ms
        ],
    )?;
    tx.execute(
        "INSERT INTO series (series_uid, study_uid, modality, series_number, series_description, series_time,
                             last_received_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(series_uid) DO UPDATE SET last_received_ms = excluded.last_received_ms",
        params![
            row.header.series_uid,
            row.header.study_uid,
            row.header.modality,
            row.header.series_number,
            row.header.series_description,
            row.header.series_time,
            row.received_ms
        ],
    )?;
    let previous: Option<String> = tx
        .query_row(
            "SELECT path FROM instances WHERE sop_instance_uid = ?1",
            params![row.header.sop_instance_uid],
            |r| r.get(0),
        )
        .optional()?;
    let path = row.relative_path.to_string_lossy();
    tx.execute(
        "INSERT INTO instances (sop_instance_uid, sop_class_uid, study_uid, series_uid, instance_number,
                                transfer_syntax_uid, path, size_bytes, calling_ae, received_ms,
                                acquisition_time, temporal_position, called_ae)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT(sop_instance_uid) DO UPDATE SET
            sop_class_uid = excluded.sop_class_uid, study_uid = excluded.study_uid,
            series_uid = excluded.series_uid, instance_number = excluded.instance_number,
            acquisition_time = excluded.acquisition_time, temporal_position = excluded.temporal_position,
            transfer_syntax_uid = excluded.transfer_syntax_uid, path = excluded.path,
            size_bytes = excluded.size_bytes, calling_ae = excluded.calling_ae,
            called_ae = excluded.called_ae, received_ms = excluded.received_ms, times_received = times_received + 1",
        params![
            row.header.sop_instance_uid,
            row.header.sop_class_uid,
            row.header.study_uid,
            row.header.series_uid,
            row.header.instance_number,
            row.transfer_syntax_uid,
            path,
            row.size_bytes as i64,
            row.calling_ae,
            row.received_ms,
            row.header.acquisition_time,
            row.header.temporal_position,
            row.called_ae
        ],
    )?;
    Ok(previous.map(PathBuf::from))
}

const SELECT_INSTANCE: &str =
    "SELECT sop_instance_uid, sop_class_uid, series_uid, transfer_syntax_uid, path,
        size_bytes, calling_ae, times_received, called_ae FROM instances";

fn instance_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<InstanceRecord> {
    Ok(InstanceRecord {
        sop_instance_uid: r.get(0)?,
        sop_class_uid: r.get(1)?,
        series_uid: r.get(2)?,
        transfer_syntax_uid: r.get(3)?,
        path: PathBuf::from(r.get::<_, String>(4)?),
        size_bytes: r.get::<_, i64>(5)? as u64,
        calling_ae: r.get(6)?,
        times_received: r.get::<_, i64>(7)? as u64,
        called_ae: r.get(8)?,
    })
}

//! The durable instance store. Before the SCP answers success, every instance is on stable
//! storage: appended to the instance journal and flushed (`journal/`), or, without a
//! journal, written as its Part 10 file and index row, both fsynced. The filer thread turns
//! journal records into the same files and rows milliseconds later; reads through the spool
//! wait for it, and a restart replays whatever it had not finished.
//!
//! [`Spool`] itself is deliberately narrow (open, store, settle, look up, count) so the
//! backend can become an object store and a real database without touching the SCP or the
//! pipeline. The index's other tables are views of their own: [`Spool::jobs`] (the jobs
//! table) and [`Spool::outbox`] (the deliveries).
//!
//! Layout under the data folder:
//! ```text
//! index.sqlite                     studies, series, instances, jobs, outbox (WAL, synchronous=FULL)
//! instances/<study>/<series>/<sop>.dcm
//! journal/segment-<n>.wal          acknowledged instances not yet filed (fixed-size segments)
//! journal/lock                     flock: one node per data folder
//! tmp/                             partial writes and spilled data sets; cleared at open
//! ```
//!
//! The code:
//! ```text
//! mod.rs       Spool: open, store, settle, look up, count; SpoolError
//! dataset.rs   a received data set, in memory or spilled to tmp/
//! files.rs     Part 10 files: written to tmp/, renamed into place, made durable
//! disk.rs      the free-space floor
//! index.rs     the SQLite index: schema and migrations, studies, series, instances
//! journal/     the instance journal: record format, segments, writer, filer thread, replay
//! jobs.rs      JobStore: the jobs table (started, done with its deliveries, failed)
//! outbox.rs    OutboxStore: the deliveries (due, attempts, dead letters, re-send)
//! states.rs    the stored states of jobs and deliveries
//! health.rs    filer backlog, free disk, recent activity (admin API)
//! report.rs    the plain-text listing of `segnode status`
//! ```

mod dataset;
mod disk;
mod files;
mod health;
mod index;
mod jobs;
mod journal;
mod outbox;
mod report;
mod states;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::StorageConfig;
use crate::dimse::Status;
use crate::ingest::{HeaderError, InstanceHeader};
use crate::untrusted;
use files::Durability;
use journal::{Journal, RecordMeta};

pub use dataset::{Dataset, SpillFile};
pub use health::Activity;
pub use index::{InstanceRecord, SeriesRecord, SpoolCounts, StudyRecord};
pub use jobs::{JobRecord, JobRow, JobStore};
pub use outbox::{OutboxCount, OutboxRecord, OutboxStore};
pub use report::status_report;
pub use states::{DeliveryState, JobState};

/// Why an instance could not be stored (or the spool opened).
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error(
        "refusing to store: {free_mb} MB free under {dir}, below the configured floor of {floor_mb} MB \
         (free disk space or lower storage.min_free_disk_mb)"
    )]
    OutOfSpace {
        dir: PathBuf,
        free_mb: u64,
        floor_mb: u64,
    },
    #[error("data set cannot be parsed in transfer syntax {transfer_syntax}: {reason}")]
    Unparseable {
        transfer_syntax: String,
        reason: String,
    },
    #[error("data set refused before parsing: {0}")]
    Refused(#[from] crate::untrusted::UntrustedError),
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error("spool I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("spool index: {0}")]
    Index(#[from] rusqlite::Error),
    #[error("this spool was opened read-only (for inspection); only `segnode serve` stores")]
    ReadOnly,
    #[error(
        "{unfiled} acknowledged instances are still not filed after {seconds} s \
         (the disk is slow or failing: see the spool-filer errors in the log)"
    )]
    FilingBehind { unfiled: u64, seconds: u64 },
}

impl SpoolError {
    /// The C-STORE status this failure is answered with (PS3.4 B.2.3).
    pub fn dimse_status(&self) -> Status {
        match self {
            SpoolError::OutOfSpace { .. }
            | SpoolError::Io { .. }
            | SpoolError::Index(_)
            | SpoolError::ReadOnly
            | SpoolError::FilingBehind { .. } => Status::OUT_OF_RESOURCES,
            SpoolError::Refused(why) if why.is_resource_limit() => Status::OUT_OF_RESOURCES,
            SpoolError::Header(HeaderError::CommandMismatch {
                attribute: "SOPClassUID",
                ..
            }) => Status::DATASET_DOES_NOT_MATCH_SOP_CLASS,
            SpoolError::Unparseable { .. } | SpoolError::Refused(_) | SpoolError::Header(_) => {
                Status::CANNOT_UNDERSTAND
            }
        }
    }
}

/// One instance as it arrived in a C-STORE, before it is stored.
#[derive(Debug)]
pub struct IncomingInstance<'a> {
    /// Affected SOP Class UID of the C-STORE command.
    pub sop_class_uid: &'a str,
    /// Affected SOP Instance UID of the C-STORE command.
    pub sop_instance_uid: &'a str,
    /// Transfer syntax of the presentation context the data set came on.
    pub transfer_syntax_uid: &'a str,
    /// The data set, byte for byte as received (it is stored unchanged).
    pub dataset: Dataset,
    /// Calling AE title of the association, recorded in the index and the file meta.
    pub calling_ae: &'a str,
    /// Called AE title of the association, recorded in the index so that instances read
    /// back at start-up route to the same pipelines.
    pub called_ae: &'a str,
}

/// How an instance came, for filing it directly.
struct Received<'a> {
    transfer_syntax_uid: &'a str,
    calling_ae: &'a str,
    called_ae: &'a str,
    len: u64,
    received_ms: i64,
}

/// What storing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredInstance {
    /// The identifying attributes read from the data set.
    pub header: InstanceHeader,
    /// Where the file lives (journaled: will live, milliseconds later).
    pub path: PathBuf,
    /// Size of the data set in bytes.
    pub dataset_bytes: u64,
    /// True when an instance with this SOP Instance UID was already stored and has been replaced.
    pub replaced: bool,
}

/// How long a read waits for the filer to catch up before it fails.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The durable store. Cheap to share (`Arc<Spool>`); `store` and the reads are blocking
/// (disk I/O, fsync, waiting for the filer) and belong in `spawn_blocking`.
pub struct Spool {
    root: PathBuf,
    min_free_bytes: u64,
    /// What a received data set must pass before it is parsed.
    limits: crate::untrusted::Limits,
    read_only: bool,
    index: Mutex<index::Index>,
    /// None: no journal (`storage.journal_segment_mb = 0`, or read-only).
    journal: Option<Journal>,
    /// The last received time handed out (Unix ms): see [`Spool::next_received_ms`].
    last_received_ms: AtomicI64,
    /// The `flock` on `journal/lock` that keeps a second node off this data folder (None
    /// when read-only); dropped last, after the filer has stopped.
    _lock: Option<File>,
}

/// Check a data set received in `transfer_syntax_uid` (see [`crate::untrusted`]) and read
/// its header from the prefix that holds it.
pub(crate) fn parse_header(
    dataset: &[u8],
    transfer_syntax_uid: &str,
    limits: &untrusted::Limits,
) -> Result<InstanceHeader, SpoolError> {
    let checked = untrusted::check_dataset(dataset, transfer_syntax_uid, limits)?;
    Ok(InstanceHeader::from_checked(&checked)?)
}

impl Spool {
    /// Open (or create) the spool under `root`. Partial writes left by a crash are removed
    /// and the journal is replayed, so every instance acknowledged before is filed.
    pub fn open(root: &Path, storage: &StorageConfig) -> Result<Spool, SpoolError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SpoolError::Io { path, source }
        };
        // The lock first: nothing here may touch a folder another node is using.
        let journal_dir = root.join("journal");
        std::fs::create_dir_all(&journal_dir).map_err(io(root))?;
        let lock = journal::segments::lock_exclusively(&journal_dir).map_err(io(&journal_dir))?;
        std::fs::create_dir_all(root.join("instances")).map_err(io(root))?;
        let tmp = root.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        journal::segments::sync_dir(root).map_err(io(root))?;
        let index_path = root.join("index.sqlite");
        let index = index::Index::open(&index_path)?;
        // Also with the journal switched off: what an earlier run left in it is filed.
        let journal = Journal::open(
            root,
            storage.journal_segment_mb.saturating_mul(1024 * 1024),
            index::Index::open(&index_path)?,
        )?;
        let last_received_ms = index.max_received_ms()?;
        Ok(Spool {
            root: root.to_path_buf(),
            min_free_bytes: storage.min_free_disk_mb.saturating_mul(1024 * 1024),
            limits: storage.untrusted_limits(),
            read_only: false,
            index: Mutex::new(index),
            journal,
            last_received_ms: AtomicI64::new(last_received_ms),
            _lock: Some(lock),
        })
    }

    /// Open an existing spool to look at it (for `segnode status` beside a running node):
    /// nothing on disk is created or cleaned, and storing through it is refused.
    pub fn open_existing(root: &Path) -> Result<Spool, SpoolError> {
        let index_path = root.join("index.sqlite");
        if !index_path.is_file() {
            return Err(SpoolError::Io {
                path: index_path,
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no spool index here (wrong --data-dir?)",
                ),
            });
        }
        let index = index::Index::open(&index_path)?;
        Ok(Spool {
            root: root.to_path_buf(),
            min_free_bytes: 0,
            limits: crate::untrusted::Limits::default(),
            read_only: true,
            index: Mutex::new(index),
            journal: None,
            last_received_ms: AtomicI64::new(0),
            _lock: None,
        })
    }

    /// The data folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where data sets too large for memory are spilled while they arrive (`tmp/`, cleared
    /// at every start).
    pub fn spill_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Fail with [`SpoolError::OutOfSpace`] when the data folder's disk is below the floor.
    pub fn ensure_free_space(&self) -> Result<(), SpoolError> {
        disk::ensure_free_space(&self.root, self.min_free_bytes)
    }

    /// Parse, check and durably store one instance. Returns only once it is on stable
    /// storage (in the journal, or as its file and index row), so the caller may then answer
    /// success.
    pub fn store(&self, incoming: IncomingInstance<'_>) -> Result<StoredInstance, SpoolError> {
        if self.read_only {
            return Err(SpoolError::ReadOnly);
        }
        disk::ensure_free_space(&self.root, self.min_free_bytes)?;
        let IncomingInstance {
            sop_class_uid,
            sop_instance_uid,
            transfer_syntax_uid,
            dataset,
            calling_ae,
            called_ae,
        } = incoming;
        let bytes = match dataset {
            Dataset::Memory(bytes) => bytes,
            Dataset::Spilled(file) => {
                // Spilled: too large for the journal's memory path; checked as a stream and
                // filed straight from the file before the acknowledgement.
                let checked =
                    untrusted::check_dataset_file(file.path(), transfer_syntax_uid, &self.limits)?;
                let header = InstanceHeader::from_checked(&checked)?;
                header.check_against_command(sop_class_uid, sop_instance_uid)?;
                self.settle()?;
                let received_ms = self.next_received_ms();
                let received = Received {
                    transfer_syntax_uid,
                    calling_ae,
                    called_ae,
                    len: file.len(),
                    received_ms,
                };
                let mut reader =
                    std::fs::File::open(file.path()).map_err(|source| SpoolError::Io {
                        path: file.path().to_path_buf(),
                        source,
                    })?;
                return self.store_directly(header, &received, &mut reader);
            }
        };
        let header = parse_header(&bytes, transfer_syntax_uid, &self.limits)?;
        header.check_against_command(sop_class_uid, sop_instance_uid)?;
        let path = self.root.join(files::instance_path(&header));
        let dataset_bytes = bytes.len() as u64;

        if let Some(journal) = &self.journal {
            let received_ms = self.next_received_ms();
            let meta = RecordMeta {
                received_ms,
                transfer_syntax_uid: transfer_syntax_uid.to_string(),
                calling_ae: calling_ae.trim().to_string(),
                called_ae: called_ae.trim().to_string(),
                sop_instance_uid: header.sop_instance_uid.clone(),
            };
            if journal.fits(&meta, bytes.len()) {
                let replaced = journal.is_pending(&header.sop_instance_uid)
                    || self
                        .lock_index()
                        .received_ms_of(&header.sop_instance_uid)?
                        .is_some();
                journal
                    .append(header.clone(), meta, bytes)
                    .map_err(|source| SpoolError::Io {
                        path: self.root.join("journal"),
                        source,
                    })?;
                return Ok(StoredInstance {
                    header,
                    path,
                    dataset_bytes,
                    replaced,
                });
            }
            // Larger than a segment: filed directly, after what the journal holds (the
            // newest copy of an instance wins).
            self.settle()?;
        }
        let received = Received {
            transfer_syntax_uid,
            calling_ae,
            called_ae,
            len: dataset_bytes,
            received_ms: self.next_received_ms(),
        };
        self.store_directly(header, &received, &mut bytes.as_slice())
    }

    /// The received time of an instance being stored now (Unix ms): the wall clock, but
    /// always later than any handed out before, in this run or (from the index) an earlier
    /// one. Replay decides which copy of an instance is the newest by it, so two copies
    /// within a millisecond, or across a clock step back, still have an order.
    fn next_received_ms(&self) -> i64 {
        let now = now_ms();
        let previous = self.last_received_ms.fetch_max(now, Ordering::Relaxed);
        if previous < now {
            return now;
        }
        // Taken already (or the clock went back): one past the last, atomically.
        self.last_received_ms.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Write the file and the index row, both fsynced, before returning.
    fn store_directly(
        &self,
        header: InstanceHeader,
        received: &Received<'_>,
        dataset: &mut dyn std::io::Read,
    ) -> Result<StoredInstance, SpoolError> {
        let relative = files::instance_path(&header);
        let final_path = self.root.join(&relative);
        let calling_ae = received.calling_ae.trim();
        let size_bytes = files::write_part10(
            &self.root.join("tmp"),
            &final_path,
            &header,
            received.transfer_syntax_uid,
            calling_ae,
            dataset,
            Durability::Now,
        )?;
        let previous_path = self
            .lock_index()
            .upsert_instances(&[index::NewInstance {
                header: &header,
                relative_path: &relative,
                size_bytes,
                transfer_syntax_uid: received.transfer_syntax_uid,
                calling_ae,
                called_ae: received.called_ae.trim(),
                received_ms: received.received_ms,
            }])?
            .pop()
            .flatten();
        let replaced = previous_path.is_some();
        if let Some(old) = previous_path.filter(|old| *old != relative) {
            // Same SOP Instance UID re-sent under another study/series: the new copy wins.
            let _ = std::fs::remove_file(self.root.join(old));
        }
        Ok(StoredInstance {
            header,
            path: final_path,
            dataset_bytes: received.len,
            replaced,
        })
    }

    /// Wait until every instance acknowledged so far has its file and index row. The reads
    /// below do this first; call it before reading instance files by path.
    pub fn settle(&self) -> Result<(), SpoolError> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        match journal.settle(SETTLE_TIMEOUT) {
            0 => Ok(()),
            unfiled => Err(SpoolError::FilingBehind {
                unfiled,
                seconds: SETTLE_TIMEOUT.as_secs(),
            }),
        }
    }

    /// Instances acknowledged (in the journal) whose file and index row are not there yet:
    /// 0 on a quiet node; after a crash, what its next start files.
    pub fn unfiled(&self) -> Result<u64, SpoolError> {
        let index = self.lock_index();
        journal::unfiled_in(&self.root, &index)
    }

    /// Studies, series and instances in the index.
    pub fn counts(&self) -> Result<SpoolCounts, SpoolError> {
        self.settle()?;
        Ok(self.lock_index().counts()?)
    }

    /// All studies, most recently received first.
    pub fn studies(&self) -> Result<Vec<StudyRecord>, SpoolError> {
        self.settle()?;
        Ok(self.lock_index().studies()?)
    }

    /// The series of one study.
    pub fn series_of_study(&self, study_uid: &str) -> Result<Vec<SeriesRecord>, SpoolError> {
        self.settle()?;
        Ok(self.lock_index().series_of_study(study_uid)?)
    }

    /// Instances received at or after `since_ms` (Unix ms), oldest first, at most `limit`,
    /// with absolute paths.
    pub fn instances_received_since(
        &self,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<InstanceRecord>, SpoolError> {
        self.settle()?;
        let mut rows = self
            .lock_index()
            .instances_received_since(since_ms, limit)?;
        for r in &mut rows {
            r.path = self.root.join(&r.path);
        }
        Ok(rows)
    }

    /// The instances of one series, with absolute paths.
    pub fn instances_of_series(&self, series_uid: &str) -> Result<Vec<InstanceRecord>, SpoolError> {
        self.settle()?;
        let mut rows = self.lock_index().instances_of_series(series_uid)?;
        for r in &mut rows {
            r.path = self.root.join(&r.path);
        }
        Ok(rows)
    }

    /// The stored file of one instance, if any.
    pub fn instance(&self, sop_instance_uid: &str) -> Result<Option<InstanceRecord>, SpoolError> {
        self.settle()?;
        let mut row = self.lock_index().instance(sop_instance_uid)?;
        if let Some(r) = &mut row {
            r.path = self.root.join(&r.path);
        }
        Ok(row)
    }

    fn lock_index(&self) -> MutexGuard<'_, index::Index> {
        lock(&self.index)
    }
}

#[cfg(test)]
mod tests;

/// Lock one of the spool's mutexes, also after a panic on another thread poisoned it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

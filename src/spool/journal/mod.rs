//! The instance journal: how the spool acknowledges an instance before its file and index
//! row exist. Its contract:
//!
//! - **Acknowledged ⇒ on stable storage.** [`Journal::append`], on the C-STORE's path,
//!   writes one record into the current segment and `fdatasync`s it before it returns.
//!   That is the durability point: after it the SCP may answer success, because a crash
//!   from here on is repaired by replaying the journal at the next start.
//! - **Filed later.** The filer thread, after the acknowledgement, turns records into Part
//!   10 files and index rows, in batches, and retires a segment once all its instances are
//!   filed and made durable together. Readers that need the files or the rows
//!   ([`Journal::settle`]) wait until the filer has caught up with everything acknowledged
//!   before they asked; that wait is milliseconds.
//! - **Replayed at open.** [`Journal::open`] files every record a previous run left (the
//!   newest copy of an instance wins) and makes that durable before anything new is
//!   appended; a record that no longer parses keeps its segment aside for a person.
//!
//! Files:
//! ```text
//! mod.rs       the Journal: open, append, settle, backlog; the state both sides share
//! record.rs    the on-disk record format: layout, checksum, encode and decode
//! segments.rs  segment files: made full of zeros, recycled, listed; the folder's lock
//! writer.rs    appending: space in the current segment, spares, fsync, the filer's queue
//! filer.rs     the filer thread: records into files and index rows, segments retired
//! replay.rs    what happens at open, and `unfiled_in` for a look from outside
//! ```

mod filer;
pub(super) mod record;
mod replay;
pub(super) mod segments;
mod writer;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::index::Index;
use super::{SpoolError, lock};
use crate::ingest::InstanceHeader;
pub use record::RecordMeta;
pub use replay::unfiled_in;
use writer::{QUEUE_BYTES, QUEUE_DEPTH, SPARES, Segment, Segments};

/// The journal of a spool: see the module documentation.
pub struct Journal {
    shared: Arc<Shared>,
    hand_over: Mutex<HandOver>,
    filer: Option<JoinHandle<()>>,
}

/// The C-STORE threads' side of the filer's queue.
struct HandOver {
    tx: Option<SyncSender<Filing>>,
    next_seq: u64,
}

/// What the C-STORE threads and the filer share.
struct Shared {
    root: PathBuf,
    /// The data folder, open since the journal opened, for `syncfs` (see `Journal::open`).
    root_dir: File,
    dir: PathBuf,
    segment_bytes: u64,
    segments: Mutex<Segments>,
    progress: Mutex<Progress>,
    progressed: Condvar,
    queued_bytes: AtomicU64,
    /// [`QUEUE_BYTES`], lowered by tests to exercise the read-back.
    queue_budget: AtomicU64,
}

/// How far the filer is behind the acknowledgements.
#[derive(Default)]
struct Progress {
    queued_seq: u64,
    filed_seq: u64,
    /// SOP Instance UIDs handed over and not yet filed, with their count.
    pending: HashMap<String, u32>,
    /// When each filing not yet filed was handed over, oldest first (the filer's lag).
    handed_at: VecDeque<(u64, Instant)>,
}

impl Progress {
    /// One filing of this SOP Instance UID is no longer pending.
    fn not_pending(&mut self, uid: &str) {
        if let Some(n) = self.pending.get_mut(uid) {
            *n -= 1;
            if *n == 0 {
                self.pending.remove(uid);
            }
        }
    }
}

/// One acknowledged instance for the filer.
struct Filing {
    seq: u64,
    generation: u64,
    offset: u64,
    header: InstanceHeader,
    meta: RecordMeta,
    /// The data set, unless the queue was over [`QUEUE_BYTES`] (then read back).
    dataset: Option<Vec<u8>>,
}

impl Journal {
    /// Open the journal under `root/journal` (the caller holds its lock): replay every
    /// record a previous run left (files and index rows, newest copy wins), make that
    /// durable, and recycle the segments. With `segment_bytes` 0 (no journal configured) the
    /// segments are removed after the replay and there is no journal; otherwise the filer
    /// starts. `index` is the filer's own connection.
    pub fn open(
        root: &Path,
        segment_bytes: u64,
        mut index: Index,
    ) -> Result<Option<Journal>, SpoolError> {
        let dir = root.join("journal");
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SpoolError::Io { path, source }
        };
        // Opened before anything is filed: `syncfs` reports the write-back errors that
        // happened since its descriptor was opened, once.
        let root_dir = File::open(root).map_err(io(root))?;
        index.commit_lazily()?;
        let (mut spares, mut next_generation) =
            replay::replay_journal(root, &root_dir, segment_bytes, &mut index)?;
        if segment_bytes == 0 {
            return Ok(None);
        }
        while spares.len() < SPARES {
            let file =
                segments::create_segment(&dir, next_generation, segment_bytes).map_err(io(&dir))?;
            spares.push_back(Segment::new(next_generation, file));
            next_generation += 1;
        }

        let shared = Arc::new(Shared {
            root: root.to_path_buf(),
            root_dir,
            dir,
            segment_bytes,
            segments: Mutex::new(Segments {
                current: None,
                spares,
                books: BTreeMap::new(),
                next_generation,
            }),
            progress: Mutex::new(Progress::default()),
            progressed: Condvar::new(),
            queued_bytes: AtomicU64::new(0),
            queue_budget: AtomicU64::new(QUEUE_BYTES),
        });
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE_DEPTH);
        let filer = filer::spawn(Arc::clone(&shared), index, rx).map_err(io(root))?;
        Ok(Some(Journal {
            shared,
            hand_over: Mutex::new(HandOver {
                tx: Some(tx),
                next_seq: 1,
            }),
            filer: Some(filer),
        }))
    }

    /// Whether an instance with this SOP Instance UID is acknowledged and not yet filed.
    pub fn is_pending(&self, sop_instance_uid: &str) -> bool {
        lock(&self.shared.progress)
            .pending
            .contains_key(sop_instance_uid)
    }

    /// Acknowledged instances not yet filed, and how long the oldest of them has waited.
    pub fn backlog(&self) -> (u64, Duration) {
        let progress = lock(&self.shared.progress);
        let unfiled = progress.queued_seq.saturating_sub(progress.filed_seq);
        let lag = progress
            .handed_at
            .front()
            .map_or(Duration::ZERO, |(_, at)| at.elapsed());
        (unfiled, lag)
    }

    /// Wait until everything acknowledged so far is filed (files and index rows), at most
    /// `timeout`. Returns the number still unfiled when the wait ends (0: settled).
    pub fn settle(&self, timeout: Duration) -> u64 {
        let progress = lock(&self.shared.progress);
        let target = progress.queued_seq;
        let (progress, _) = self
            .shared
            .progressed
            .wait_timeout_while(progress, timeout, |p| p.filed_seq < target)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        target.saturating_sub(progress.filed_seq)
    }
}

impl Drop for Journal {
    /// Let the filer finish what was handed over, retire what it can, and stop.
    fn drop(&mut self) {
        lock(&self.hand_over).tx = None;
        if let Some(filer) = self.filer.take() {
            let _ = filer.join();
        }
    }
}

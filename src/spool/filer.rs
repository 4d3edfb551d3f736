//! The instance journal in use. Two sides:
//!
//! - [`Journal::append`], on the C-STORE's path: one record written into the current
//!   segment and `fdatasync`ed. That is the durability point: after it the SCP may answer
//!   success, because a crash from here on is repaired by replaying the journal at the next
//!   start ([`Journal::open`]).
//! - the filer thread, after the acknowledgement: it turns records into Part 10 files and
//!   index rows, in batches (one index transaction each, not flushed). A segment that is
//!   no longer written and whose instances are all filed is retired: one `syncfs` makes its
//!   files and folders durable, one flushed index commit its rows, and the segment is
//!   recycled as a spare. While instances arrive, retiring waits until the writer is about
//!   to run out of spares, so those flushes do not compete with the C-STORE's own; once
//!   the node is quiet for [`IDLE_ROLL`], everything filed is retired and the journal is
//!   empty.
//!
//! Readers that need the files or the rows ([`Journal::settle`]) wait until the filer has
//! caught up with everything acknowledged before they asked; that wait is milliseconds.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use super::SpoolError;
use super::files::{self, Durability};
use super::index::{Index, NewInstance};
use super::journal::{self, RecordMeta};
use crate::ingest::InstanceHeader;

/// After this long without a new record, the filer closes the current segment (once all of
/// it is filed), so a quiet node's journal is empty.
const IDLE_ROLL: Duration = Duration::from_secs(1);
/// Filings handed to the filer and not yet taken: beyond this the C-STORE waits.
const QUEUE_DEPTH: usize = 4096;
/// Data set bytes the queue may hold in memory; beyond, the filer reads them back from the
/// segment instead.
const QUEUE_BYTES: u64 = 256 * 1024 * 1024;
/// Filings per index transaction.
const BATCH: usize = 64;
/// Retries of a failed file write or index transaction before the filer gives up on it
/// (it stays in the journal and is filed at the next start).
const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_secs(2),
];
/// Spare segments kept ready beside the current one (a fresh spool makes this many).
const SPARES: usize = 2;
/// Nice value of the filer thread.
const FILER_NICE: libc::c_int = 10;

/// The journal of a spool: see the module documentation.
pub struct Journal {
    shared: Arc<Shared>,
    hand_over: Mutex<HandOver>,
    filer: Option<JoinHandle<()>>,
}

struct HandOver {
    tx: Option<SyncSender<Filing>>,
    next_seq: u64,
}

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

/// The segments: the one being written, the spares, and the books of those with records.
struct Segments {
    current: Option<Segment>,
    spares: VecDeque<Segment>,
    books: BTreeMap<u64, Book>,
    next_generation: u64,
}

struct Segment {
    generation: u64,
    file: Arc<File>,
    offset: u64,
}

/// What became of one segment's records.
struct Book {
    file: Arc<File>,
    /// No longer written (full, idle, or after a write error).
    sealed: bool,
    /// Appends between reserving space and handing over their filing.
    writing: u32,
    queued: u64,
    filed: u64,
    /// Records the filer gave up on: the segment is kept for the next start's replay.
    unfiled: u64,
    /// Making its files durable failed once: a later flush may not report the lost write
    /// again, so the segment is kept for the next start's replay.
    pinned: bool,
}

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
        journal::remove_partial_segments(&dir).map_err(io(&dir))?;
        let generations = journal::list_segments(&dir).map_err(io(&dir))?;
        let mut next_generation = generations.last().map_or(1, |g| g + 1);

        let mut replayed = 0usize;
        let mut kept = Vec::new();
        for &generation in &generations {
            let path = journal::segment_path(&dir, generation);
            let file = File::open(&path).map_err(io(&path))?;
            for record in journal::read_records(&file, generation).map_err(io(&path))? {
                match replay(root, &mut index, record)? {
                    Replayed::Filed => replayed += 1,
                    Replayed::Superseded => {}
                    Replayed::Unparseable => kept.push(generation),
                }
            }
        }
        if !generations.is_empty() {
            files::sync_file_system(&root_dir, root)?;
            index.record_retired(&generations, super::now_ms())?;
        }
        if replayed > 0 {
            info!(
                instances = replayed,
                "journal replayed: instances acknowledged before the last stop are filed"
            );
        }

        let mut spares = VecDeque::new();
        for &generation in &generations {
            if kept.contains(&generation) {
                let path = journal::set_aside(&dir, generation).map_err(io(&dir))?;
                error!(
                    path = %path.display(),
                    "a journal record could not be parsed at replay; its segment is kept aside \
                     for inspection (report it with the log)"
                );
            } else if segment_bytes > 0
                && spares.len() < SPARES
                && segment_len(&dir, generation) == Some(segment_bytes)
            {
                let file = journal::recycle_segment(&dir, generation, next_generation)
                    .map_err(io(&dir))?;
                spares.push_back(Segment::new(next_generation, file));
                next_generation += 1;
            } else {
                let path = journal::segment_path(&dir, generation);
                std::fs::remove_file(&path).map_err(io(&path))?;
            }
        }
        if segment_bytes == 0 {
            return Ok(None);
        }
        while spares.len() < SPARES {
            let file =
                journal::create_segment(&dir, next_generation, segment_bytes).map_err(io(&dir))?;
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
        let filer = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("spool-filer".into())
                .spawn(move || Filer { shared, index, rx }.run())
                .map_err(io(root))?
        };
        Ok(Some(Journal {
            shared,
            hand_over: Mutex::new(HandOver {
                tx: Some(tx),
                next_seq: 1,
            }),
            filer: Some(filer),
        }))
    }

    /// Whether a record of this data set fits in a segment (else it is filed directly).
    pub fn fits(&self, meta: &RecordMeta, dataset_len: usize) -> bool {
        journal::record_len(meta, dataset_len) <= self.shared.segment_bytes
    }

    /// Append one instance (it must [`fit`](Self::fits)) and make it durable. On `Ok` the
    /// caller may acknowledge it.
    pub fn append(
        &self,
        header: InstanceHeader,
        meta: RecordMeta,
        dataset: Vec<u8>,
    ) -> std::io::Result<()> {
        let len = journal::record_len(&meta, dataset.len());
        let (generation, offset, file) = self.shared.reserve(len)?;
        let written = journal::write_record(&file, offset, generation, &meta, &dataset)
            .and_then(|()| file.sync_data());
        if let Err(e) = written {
            self.shared.abandon(generation);
            return Err(e);
        }

        let bytes = dataset.len() as u64;
        let in_memory = self.shared.queued_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes
            <= self.shared.queue_budget.load(Ordering::Relaxed);
        if !in_memory {
            self.shared.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
        }
        // Hand over in sequence order, counting the filing as pending before the filer can
        // see it (it counts it done).
        let mut hand_over = lock(&self.hand_over);
        let seq = hand_over.next_seq;
        hand_over.next_seq += 1;
        let uid = header.sop_instance_uid.clone();
        let filing = Filing {
            seq,
            generation,
            offset,
            header,
            meta,
            dataset: in_memory.then_some(dataset),
        };
        let sent = match &hand_over.tx {
            Some(tx) => {
                self.shared.count_pending(&uid, seq);
                let sent = tx.send(filing).is_ok();
                if !sent {
                    self.shared.uncount_pending(&uid, seq);
                }
                sent
            }
            None => false,
        };
        drop(hand_over);
        let mut segments = lock(&self.shared.segments);
        let book = segments.books.get_mut(&generation).expect("reserved");
        book.writing -= 1;
        if sent {
            book.queued += 1;
        } else {
            // No filer (stopping, or gone): the record stays for the next start's replay.
            error!(sop_instance = %uid, "the spool filer is not running: this instance is filed at the next start");
            book.unfiled += 1;
        }
        Ok(())
    }

    /// Hold at most `bytes` of data sets in the filer's queue (tests: 0 makes the filer
    /// read every data set back from its segment).
    #[cfg(test)]
    pub fn set_queue_budget(&self, bytes: u64) {
        self.shared.queue_budget.store(bytes, Ordering::Relaxed);
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

impl Segment {
    fn new(generation: u64, file: File) -> Segment {
        Segment {
            generation,
            file: Arc::new(file),
            offset: 0,
        }
    }
}

impl Shared {
    /// A filing with this sequence number and SOP Instance UID is about to be handed over.
    fn count_pending(&self, uid: &str, seq: u64) {
        let mut progress = lock(&self.progress);
        progress.queued_seq = seq;
        *progress.pending.entry(uid.to_string()).or_default() += 1;
        progress.handed_at.push_back((seq, Instant::now()));
    }

    /// Undo [`Shared::count_pending`] for a hand-over that failed.
    fn uncount_pending(&self, uid: &str, seq: u64) {
        let mut progress = lock(&self.progress);
        progress.queued_seq = seq - 1;
        progress.not_pending(uid);
        if progress.handed_at.back().is_some_and(|(s, _)| *s == seq) {
            progress.handed_at.pop_back();
        }
    }

    /// Space for a record of `len` bytes in the current segment (rolling to a spare when it
    /// does not fit). The segment's book counts the append as writing until handed over.
    fn reserve(&self, len: u64) -> std::io::Result<(u64, u64, Arc<File>)> {
        let mut segments = lock(&self.segments);
        if let Some(current) = &segments.current
            && current.offset + len > self.segment_bytes
        {
            let generation = current.generation;
            segments.seal(generation);
        }
        if segments.current.is_none() {
            let segment = match segments.spares.pop_front() {
                Some(spare) => spare,
                None => {
                    // The filer had no spare ready: make one here (rare; the C-STORE waits).
                    let generation = segments.take_generation();
                    let file = journal::create_segment(&self.dir, generation, self.segment_bytes)?;
                    Segment::new(generation, file)
                }
            };
            segments.books.insert(
                segment.generation,
                Book {
                    file: Arc::clone(&segment.file),
                    sealed: false,
                    writing: 0,
                    queued: 0,
                    filed: 0,
                    unfiled: 0,
                    pinned: false,
                },
            );
            segments.current = Some(segment);
        }
        let current = segments.current.as_mut().expect("set above");
        let (generation, offset, file) = (
            current.generation,
            current.offset,
            Arc::clone(&current.file),
        );
        current.offset += len;
        segments
            .books
            .get_mut(&generation)
            .expect("inserted with the segment")
            .writing += 1;
        Ok((generation, offset, file))
    }

    /// A record could not be written: nothing acknowledged may follow a torn record, so the
    /// segment is sealed; the failed record is not counted.
    fn abandon(&self, generation: u64) {
        let mut segments = lock(&self.segments);
        segments.seal(generation);
        if let Some(book) = segments.books.get_mut(&generation) {
            book.writing -= 1;
        }
    }
}

impl Segments {
    fn seal(&mut self, generation: u64) {
        if let Some(book) = self.books.get_mut(&generation) {
            book.sealed = true;
        }
        if self.current.as_ref().map(|c| c.generation) == Some(generation) {
            self.current = None;
        }
    }

    /// Sealed segments with every record filed, nothing being written into them.
    fn retirable(&self) -> Vec<u64> {
        self.books
            .iter()
            .filter(|(_, b)| {
                b.sealed && !b.pinned && b.writing == 0 && b.unfiled == 0 && b.filed == b.queued
            })
            .map(|(g, _)| *g)
            .collect()
    }

    fn take_generation(&mut self) -> u64 {
        let generation = self.next_generation;
        self.next_generation += 1;
        generation
    }
}

/// The filer thread's state.
struct Filer {
    shared: Arc<Shared>,
    index: Index,
    rx: Receiver<Filing>,
}

impl Filer {
    fn run(mut self) {
        lower_priority();
        loop {
            match self.rx.recv_timeout(IDLE_ROLL) {
                Ok(first) => {
                    let mut batch = vec![first];
                    while batch.len() < BATCH {
                        match self.rx.try_recv() {
                            Ok(filing) => batch.push(filing),
                            Err(_) => break,
                        }
                    }
                    self.file_batch(batch);
                    self.maintain(false);
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.seal_if_idle();
                    self.maintain(true);
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.seal_if_idle();
                    self.retire_filed_segments();
                    return;
                }
            }
        }
    }

    /// Keep spares coming without flushing while instances arrive: retire (and so recycle)
    /// when quiet, or when the writer is about to need a spare and there is none; make a new
    /// segment only when there is nothing to recycle.
    fn maintain(&mut self, idle: bool) {
        let (needs_spare, retirable) = {
            let segments = lock(&self.shared.segments);
            let soon_full = segments
                .current
                .as_ref()
                .is_none_or(|c| c.offset * 2 >= self.shared.segment_bytes);
            (
                segments.spares.is_empty() && soon_full,
                !segments.retirable().is_empty(),
            )
        };
        if retirable && (idle || needs_spare) {
            self.retire_filed_segments();
        } else if needs_spare {
            self.make_a_spare();
        }
    }

    /// File a batch: each data set becomes its Part 10 file, then all rows go into the index
    /// in one transaction. A filing that cannot be filed after retries stays in the journal.
    fn file_batch(&mut self, batch: Vec<Filing>) {
        let tmp = self.shared.root.join("tmp");
        let mut written: Vec<(&Filing, PathBuf, u64)> = Vec::with_capacity(batch.len());
        let mut failed: Vec<&Filing> = Vec::new();
        for filing in &batch {
            let relative = files::instance_path(&filing.header);
            let final_path = self.shared.root.join(&relative);
            let result = with_retries("file an instance", &filing.header, || {
                let read_back;
                let dataset = match &filing.dataset {
                    Some(bytes) => bytes.as_slice(),
                    None => {
                        read_back = read_dataset(&self.shared.dir, filing)?;
                        read_back.as_slice()
                    }
                };
                files::write_part10(
                    &tmp,
                    &final_path,
                    &filing.header,
                    &filing.meta.transfer_syntax_uid,
                    &filing.meta.calling_ae,
                    &mut { dataset },
                    Durability::Later,
                )
            });
            match result {
                Ok(size) => written.push((filing, relative, size)),
                Err(()) => failed.push(filing),
            }
        }

        let rows: Vec<NewInstance<'_>> = written
            .iter()
            .map(|(filing, relative, size)| NewInstance {
                header: &filing.header,
                relative_path: relative,
                size_bytes: *size,
                transfer_syntax_uid: &filing.meta.transfer_syntax_uid,
                calling_ae: &filing.meta.calling_ae,
                called_ae: &filing.meta.called_ae,
                received_ms: filing.meta.received_ms,
            })
            .collect();
        let indexed = with_retries("index instances", &written_header(&written), || {
            Ok(self.index.upsert_instances(&rows)?)
        });
        drop(rows);
        let (filed, failed) = match indexed {
            Ok(previous) => {
                for ((_, relative, _), previous) in written.iter().zip(previous) {
                    if let Some(old) = previous.filter(|old| old != relative) {
                        // Re-sent under another study or series: the new copy wins.
                        let _ = std::fs::remove_file(self.shared.root.join(old));
                    }
                }
                (written, failed)
            }
            Err(()) => {
                failed.extend(written.iter().map(|(f, _, _)| *f));
                (Vec::new(), failed)
            }
        };
        for filing in &failed {
            error!(
                sop_instance = %filing.header.sop_instance_uid, study = %filing.header.study_uid,
                "instance acknowledged but not filed: it stays in the journal and is filed at the next start"
            );
        }

        {
            let mut segments = lock(&self.shared.segments);
            for (filing, _, _) in &filed {
                segments
                    .books
                    .get_mut(&filing.generation)
                    .expect("booked")
                    .filed += 1;
            }
            for filing in &failed {
                segments
                    .books
                    .get_mut(&filing.generation)
                    .expect("booked")
                    .unfiled += 1;
            }
        }
        let bytes: u64 = batch
            .iter()
            .filter_map(|f| f.dataset.as_ref().map(|d| d.len() as u64))
            .sum();
        self.shared.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
        let mut progress = lock(&self.shared.progress);
        for filing in &batch {
            progress.not_pending(&filing.header.sop_instance_uid);
            progress.filed_seq = progress.filed_seq.max(filing.seq);
        }
        let filed = progress.filed_seq;
        while progress.handed_at.front().is_some_and(|(s, _)| *s <= filed) {
            progress.handed_at.pop_front();
        }
        drop(progress);
        self.shared.progressed.notify_all();
    }

    /// No record for [`IDLE_ROLL`]: seal the current segment if all of it is filed, so it is
    /// retired and the journal is empty while the node is quiet.
    fn seal_if_idle(&mut self) {
        let mut segments = lock(&self.shared.segments);
        let Some(generation) = segments.current.as_ref().map(|c| c.generation) else {
            return;
        };
        let book = &segments.books[&generation];
        if book.queued > 0 && book.writing == 0 && book.filed + book.unfiled == book.queued {
            segments.seal(generation);
        }
    }

    /// Sealed segments whose records are all filed: make their files, folders and index
    /// rows durable (one `syncfs`, one flushed commit), then make them spares, or delete them
    /// when there are enough.
    fn retire_filed_segments(&mut self) {
        let done: Vec<(u64, Book)> = {
            let mut segments = lock(&self.shared.segments);
            let ready = segments.retirable();
            ready
                .into_iter()
                .map(|g| (g, segments.books.remove(&g).expect("listed")))
                .collect()
        };
        if done.is_empty() {
            return;
        }
        let generations: Vec<u64> = done.iter().map(|(g, _)| *g).collect();
        let durable = files::sync_file_system(&self.shared.root_dir, &self.shared.root)
            .and_then(|()| Ok(self.index.record_retired(&generations, super::now_ms())?));
        if let Err(e) = durable {
            error!(
                ?generations, cause = %e,
                "cannot make filed instances durable (the disk is failing?); their journal \
                 segments are kept and filed again at the next start"
            );
            let mut segments = lock(&self.shared.segments);
            for (generation, mut book) in done {
                book.pinned = true;
                segments.books.insert(generation, book);
            }
            return;
        }
        for (generation, book) in done {
            drop(book.file);
            let mut segments = lock(&self.shared.segments);
            if segments.spares.len() < SPARES {
                let new = segments.take_generation();
                match journal::recycle_segment(&self.shared.dir, generation, new) {
                    Ok(file) => segments.spares.push_back(Segment::new(new, file)),
                    Err(e) => warn!(generation, cause = %e, "cannot recycle a journal segment"),
                }
            } else {
                let path = journal::segment_path(&self.shared.dir, generation);
                if let Err(e) = std::fs::remove_file(&path) {
                    warn!(path = %path.display(), cause = %e, "cannot remove a retired journal segment");
                }
            }
        }
    }

    /// Make a new spare segment (zeros written and flushed), so the C-STORE that fills the
    /// current one does not wait for it.
    fn make_a_spare(&mut self) {
        let generation = lock(&self.shared.segments).take_generation();
        match journal::create_segment(&self.shared.dir, generation, self.shared.segment_bytes) {
            Ok(file) => lock(&self.shared.segments)
                .spares
                .push_back(Segment::new(generation, file)),
            Err(e) => warn!(cause = %e, "cannot prepare a spare journal segment"),
        }
    }
}

/// What replaying one record did.
enum Replayed {
    /// Its file was written (and its row upserted unless the index already had it).
    Filed,
    /// The index holds a newer copy of the instance.
    Superseded,
    /// The data set no longer parses (it did when it was acknowledged): its segment is kept.
    Unparseable,
}

/// File one record found at start-up. The newest copy of an instance wins (received times
/// are unique and increasing, see `Spool::next_received_ms`): a record older than the
/// indexed copy is skipped, one the index already holds is written again (its file may not
/// have reached the disk), a newer one is filed and indexed.
fn replay(root: &Path, index: &mut Index, record: journal::Record) -> Result<Replayed, SpoolError> {
    let header = match super::parse_header(
        &record.dataset,
        &record.meta.transfer_syntax_uid,
        &crate::untrusted::Limits::for_replay(),
    ) {
        Ok(header) => header,
        Err(e) => {
            error!(offset = record.offset, cause = %e, "journal record cannot be parsed");
            return Ok(Replayed::Unparseable);
        }
    };
    let indexed = index.received_ms_of(&header.sop_instance_uid)?;
    if indexed.is_some_and(|ms| ms > record.meta.received_ms) {
        return Ok(Replayed::Superseded);
    }
    let relative = files::instance_path(&header);
    let size = files::write_part10(
        &root.join("tmp"),
        &root.join(&relative),
        &header,
        &record.meta.transfer_syntax_uid,
        &record.meta.calling_ae,
        &mut record.dataset.as_slice(),
        Durability::Later,
    )?;
    if indexed != Some(record.meta.received_ms) {
        let previous = index.upsert_instances(&[NewInstance {
            header: &header,
            relative_path: &relative,
            size_bytes: size,
            transfer_syntax_uid: &record.meta.transfer_syntax_uid,
            calling_ae: &record.meta.calling_ae,
            called_ae: &record.meta.called_ae,
            received_ms: record.meta.received_ms,
        }])?;
        if let Some(old) = previous.into_iter().flatten().find(|old| *old != relative) {
            let _ = std::fs::remove_file(root.join(old));
        }
    }
    Ok(Replayed::Filed)
}

/// How many records in the journal under `root` the index does not hold yet (or holds an
/// older copy of): instances acknowledged and not yet filed. Reads the segments without
/// taking the journal, for a look beside a running node (whose newest records it may miss
/// or see being filed) or at a stopped one (whose next start files them).
pub fn unfiled_in(root: &Path, index: &Index) -> Result<u64, SpoolError> {
    let dir = root.join("journal");
    if !dir.is_dir() {
        return Ok(0);
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SpoolError::Io { path, source }
    };
    let mut unfiled = 0;
    for generation in journal::list_segments(&dir).map_err(io(&dir))? {
        let path = journal::segment_path(&dir, generation);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // recycled meanwhile
            Err(e) => return Err(io(&path)(e)),
        };
        for record in journal::read_records(&file, generation).map_err(io(&path))? {
            let indexed = index.received_ms_of(&record.meta.sop_instance_uid)?;
            if indexed.is_none_or(|ms| ms < record.meta.received_ms) {
                unfiled += 1;
            }
        }
    }
    Ok(unfiled)
}

/// Read a filing's data set back from its segment (which is not recycled before the
/// filing is filed).
fn read_dataset(dir: &Path, filing: &Filing) -> Result<Vec<u8>, SpoolError> {
    let path = journal::segment_path(dir, filing.generation);
    File::open(&path)
        .and_then(|file| journal::read_record_at(&file, filing.offset, filing.generation))
        .and_then(|r| r.ok_or_else(|| std::io::Error::other("record no longer in its segment")))
        .map(|r| r.dataset)
        .map_err(|source| SpoolError::Io { path, source })
}

/// Run `what` with bounded retries, logging each failure; `Err(())` once they are spent.
fn with_retries<T>(
    what: &str,
    header: &InstanceHeader,
    mut attempt: impl FnMut() -> Result<T, SpoolError>,
) -> Result<T, ()> {
    let started = Instant::now();
    for delay in RETRY_DELAYS.iter().map(Some).chain([None]) {
        match attempt() {
            Ok(value) => return Ok(value),
            Err(e) => {
                warn!(
                    sop_instance = %header.sop_instance_uid, cause = %e,
                    seconds = started.elapsed().as_secs_f32(), "filer cannot {what}"
                );
                match delay {
                    Some(delay) => std::thread::sleep(*delay),
                    None => return Err(()),
                }
            }
        }
    }
    Err(())
}

/// A header to name in the index-failure log: the batch's first instance.
fn written_header(written: &[(&Filing, PathBuf, u64)]) -> InstanceHeader {
    written
        .first()
        .map(|(f, _, _)| f.header.clone())
        .unwrap_or_default()
}

/// The filer yields the CPU to the C-STORE path and the sender (nice 10: about a tenth of
/// a normal thread's share when they compete); it has the time between associations and
/// the acknowledged instances are safe in the journal meanwhile.
fn lower_priority() {
    // SAFETY: plain syscalls on the calling thread's own id; failure only leaves the
    // priority as it was.
    let rc = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, FILER_NICE)
    };
    if rc != 0 {
        warn!(cause = %std::io::Error::last_os_error(), "cannot lower the spool filer's priority");
    }
}

fn segment_len(dir: &Path, generation: u64) -> Option<u64> {
    std::fs::metadata(journal::segment_path(dir, generation))
        .ok()
        .map(|m| m.len())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

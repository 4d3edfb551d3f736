//! The filer thread: after the acknowledgement, it turns records into Part 10 files and
//! index rows, in batches (one index transaction each, not flushed). A segment that is no
//! longer written and whose instances are all filed is retired: one `syncfs` makes its
//! files and folders durable, one flushed index commit its rows, and the segment is
//! recycled as a spare. While instances arrive, retiring waits until the writer is about to
//! run out of spares, so those flushes do not compete with the C-STORE's own; once the node
//! is quiet for [`IDLE_ROLL`], everything filed is retired and the journal is empty.
//!
//! A filing that cannot be filed after a few retries stays in the journal, and its segment
//! with it, for the next start's replay.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{error, warn};

use super::writer::{Book, SPARES, Segment};
use super::{Filing, Shared, lock, record, segments};
use crate::ingest::InstanceHeader;
use crate::spool::files::{self, Durability};
use crate::spool::index::{Index, NewInstance};
use crate::spool::{SpoolError, now_ms};

/// After this long without a new record, the filer closes the current segment (once all of
/// it is filed), so a quiet node's journal is empty.
const IDLE_ROLL: Duration = Duration::from_secs(1);
/// Filings per index transaction.
const BATCH: usize = 64;
/// Retries of a failed file write or index transaction before the filer gives up on it
/// (it stays in the journal and is filed at the next start).
const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_secs(2),
];
/// Nice value of the filer thread.
const FILER_NICE: libc::c_int = 10;

/// Start the filer thread on `index` (its own connection, committing lazily), taking
/// filings from `rx` until the journal drops its sender.
pub(super) fn spawn(
    shared: Arc<Shared>,
    index: Index,
    rx: Receiver<Filing>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("spool-filer".into())
        .spawn(move || Filer { shared, index, rx }.run())
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
            .and_then(|()| Ok(self.index.record_retired(&generations, now_ms())?));
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
                match segments::recycle_segment(&self.shared.dir, generation, new) {
                    Ok(file) => segments.spares.push_back(Segment::new(new, file)),
                    Err(e) => warn!(generation, cause = %e, "cannot recycle a journal segment"),
                }
            } else {
                let path = segments::segment_path(&self.shared.dir, generation);
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
        match segments::create_segment(&self.shared.dir, generation, self.shared.segment_bytes) {
            Ok(file) => lock(&self.shared.segments)
                .spares
                .push_back(Segment::new(generation, file)),
            Err(e) => warn!(cause = %e, "cannot prepare a spare journal segment"),
        }
    }
}

/// Read a filing's data set back from its segment (which is not recycled before the
/// filing is filed).
fn read_dataset(dir: &Path, filing: &Filing) -> Result<Vec<u8>, SpoolError> {
    let path = segments::segment_path(dir, filing.generation);
    File::open(&path)
        .and_then(|file| record::read_record_at(&file, filing.offset, filing.generation))
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

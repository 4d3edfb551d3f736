//! Appending to the journal, on the C-STORE's path: space for the record in the current
//! segment (rolling to a spare when it is full), one aligned write and an `fdatasync`, then
//! the filing handed to the filer's bounded queue, whose depth makes the C-STORE wait when
//! the filer falls far behind (back-pressure) and whose byte budget decides whether the data
//! set travels in memory or is read back from the segment.
//!
//! Here too are the books of the segments: which one is written, the spares kept ready, and
//! what became of each segment's records, which tells the filer when a segment can retire.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tracing::error;

use super::record::{self, RecordMeta};
use super::{Filing, Journal, Shared, lock, segments};
use crate::ingest::InstanceHeader;

/// Filings handed to the filer and not yet taken: beyond this the C-STORE waits.
pub(super) const QUEUE_DEPTH: usize = 4096;
/// Data set bytes the queue may hold in memory; beyond, the filer reads them back from the
/// segment instead.
pub(super) const QUEUE_BYTES: u64 = 256 * 1024 * 1024;
/// Spare segments kept ready beside the current one (a fresh spool makes this many).
pub(super) const SPARES: usize = 2;

/// The segments: the one being written, the spares, and the books of those with records.
pub(super) struct Segments {
    pub(super) current: Option<Segment>,
    pub(super) spares: VecDeque<Segment>,
    pub(super) books: BTreeMap<u64, Book>,
    pub(super) next_generation: u64,
}

/// A segment file ready for records, and where the next one goes.
pub(super) struct Segment {
    pub(super) generation: u64,
    pub(super) file: Arc<File>,
    pub(super) offset: u64,
}

/// What became of one segment's records.
pub(super) struct Book {
    pub(super) file: Arc<File>,
    /// No longer written (full, idle, or after a write error).
    pub(super) sealed: bool,
    /// Appends between reserving space and handing over their filing.
    pub(super) writing: u32,
    pub(super) queued: u64,
    pub(super) filed: u64,
    /// Records the filer gave up on: the segment is kept for the next start's replay.
    pub(super) unfiled: u64,
    /// Making its files durable failed once: a later flush may not report the lost write
    /// again, so the segment is kept for the next start's replay.
    pub(super) pinned: bool,
}

impl Journal {
    /// Whether a record of this data set fits in a segment (else it is filed directly).
    pub fn fits(&self, meta: &RecordMeta, dataset_len: usize) -> bool {
        record::record_len(meta, dataset_len) <= self.shared.segment_bytes
    }

    /// Append one instance (it must [`fit`](Self::fits)) and make it durable. On `Ok` the
    /// caller may acknowledge it.
    pub fn append(
        &self,
        header: InstanceHeader,
        meta: RecordMeta,
        dataset: Vec<u8>,
    ) -> std::io::Result<()> {
        let len = record::record_len(&meta, dataset.len());
        let (generation, offset, file) = self.shared.reserve(len)?;
        let written = record::write_record(&file, offset, generation, &meta, &dataset)
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
    pub(in crate::spool) fn set_queue_budget(&self, bytes: u64) {
        self.shared.queue_budget.store(bytes, Ordering::Relaxed);
    }
}

impl Segment {
    pub(super) fn new(generation: u64, file: File) -> Segment {
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
                    let file = segments::create_segment(&self.dir, generation, self.segment_bytes)?;
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
    pub(super) fn seal(&mut self, generation: u64) {
        if let Some(book) = self.books.get_mut(&generation) {
            book.sealed = true;
        }
        if self.current.as_ref().map(|c| c.generation) == Some(generation) {
            self.current = None;
        }
    }

    /// Sealed segments with every record filed, nothing being written into them.
    pub(super) fn retirable(&self) -> Vec<u64> {
        self.books
            .iter()
            .filter(|(_, b)| {
                b.sealed && !b.pinned && b.writing == 0 && b.unfiled == 0 && b.filed == b.queued
            })
            .map(|(g, _)| *g)
            .collect()
    }

    pub(super) fn take_generation(&mut self) -> u64 {
        let generation = self.next_generation;
        self.next_generation += 1;
        generation
    }
}

//! What happens at open: every record a previous run left in the journal is filed (the
//! newest copy of an instance wins) and made durable, then its segments are recycled as
//! spares, removed, or, holding a record that no longer parses, set aside for a person.
//! Also [`unfiled_in`], the same reading of the segments without filing, for a look at a
//! data folder from outside the node.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use tracing::{error, info};

use super::record::{self, Record};
use super::segments::{self, segment_path, sync_dir};
use super::writer::{SPARES, Segment};
use crate::spool::files::{self, Durability};
use crate::spool::index::{Index, NewInstance};
use crate::spool::{SpoolError, now_ms, parse_header};

/// Replay the journal under `root/journal` into the index (`index`, the filer's own
/// connection) and make it durable (`root_dir`: see `Journal::open`). Then its segments
/// become spares, at most [`SPARES`] of them and only with a journal of `segment_bytes`
/// segments, or are removed. Returns the spares and the next generation to use.
pub(super) fn replay_journal(
    root: &Path,
    root_dir: &File,
    segment_bytes: u64,
    index: &mut Index,
) -> Result<(VecDeque<Segment>, u64), SpoolError> {
    let dir = root.join("journal");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SpoolError::Io { path, source }
    };
    remove_partial_segments(&dir).map_err(io(&dir))?;
    let generations = segments::list_segments(&dir).map_err(io(&dir))?;
    let mut next_generation = generations.last().map_or(1, |g| g + 1);

    let mut replayed = 0usize;
    let mut kept = Vec::new();
    for &generation in &generations {
        let path = segment_path(&dir, generation);
        let file = File::open(&path).map_err(io(&path))?;
        for record in record::read_records(&file, generation).map_err(io(&path))? {
            match replay(root, index, record)? {
                Replayed::Filed => replayed += 1,
                Replayed::Superseded => {}
                Replayed::Unparseable => kept.push(generation),
            }
        }
    }
    if !generations.is_empty() {
        files::sync_file_system(root_dir, root)?;
        index.record_retired(&generations, now_ms())?;
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
            let path = set_aside(&dir, generation).map_err(io(&dir))?;
            error!(
                path = %path.display(),
                "a journal record could not be parsed at replay; its segment is kept aside \
                 for inspection (report it with the log)"
            );
        } else if segment_bytes > 0
            && spares.len() < SPARES
            && segment_len(&dir, generation) == Some(segment_bytes)
        {
            let file =
                segments::recycle_segment(&dir, generation, next_generation).map_err(io(&dir))?;
            spares.push_back(Segment::new(next_generation, file));
            next_generation += 1;
        } else {
            let path = segment_path(&dir, generation);
            fs::remove_file(&path).map_err(io(&path))?;
        }
    }
    Ok((spares, next_generation))
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
fn replay(root: &Path, index: &mut Index, record: Record) -> Result<Replayed, SpoolError> {
    let header = match parse_header(
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
            let _ = fs::remove_file(root.join(old));
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
    for generation in segments::list_segments(&dir).map_err(io(&dir))? {
        let path = segment_path(&dir, generation);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // recycled meanwhile
            Err(e) => return Err(io(&path)(e)),
        };
        for record in record::read_records(&file, generation).map_err(io(&path))? {
            let indexed = index.received_ms_of(&record.meta.sop_instance_uid)?;
            if indexed.is_none_or(|ms| ms < record.meta.received_ms) {
                unfiled += 1;
            }
        }
    }
    Ok(unfiled)
}

/// Remove what a crash left of segments being made (`segment-*.new`).
fn remove_partial_segments(dir: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "new") {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Rename a segment out of the journal (`segment-<generation>.kept`), for a person to look
/// at; returns its new path.
fn set_aside(dir: &Path, generation: u64) -> std::io::Result<PathBuf> {
    let kept = dir.join(format!("segment-{generation:016}.kept"));
    fs::rename(segment_path(dir, generation), &kept)?;
    sync_dir(dir)?;
    Ok(kept)
}

fn segment_len(dir: &Path, generation: u64) -> Option<u64> {
    fs::metadata(segment_path(dir, generation))
        .ok()
        .map(|m| m.len())
}

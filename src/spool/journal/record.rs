//! The journal's on-disk record: one acknowledged instance, checksummed, in a segment of
//! the journal (`segments.rs`). Every record carries its segment's generation, so records
//! left from a segment's earlier use end the scan of its new one.
//!
//! Each record starts at a multiple of [`ALIGN`] and is padded to one, and is written from
//! an aligned buffer, so on a segment opened with `O_DIRECT` it goes straight to the device
//! (the flush has no page cache to write back first, and the journal does not fill the page
//! cache). Elsewhere the same aligned records go through the page cache.
//!
//! Record layout (little endian):
//! ```text
//! 0   "SNJ1"            magic
//! 4   u32               meta length
//! 8   u64               data set length
//! 16  u64               generation of the segment
//! 24  u32               CRC-32 of bytes 4..24, the meta and the data set
//! 28  u32               zero
//! 32  meta              received_ms i64, then transfer syntax UID, calling AE, SOP
//!                       Instance UID and called AE (each u16 length + bytes; records
//!                       written before the called AE was recorded end after the UID)
//! ..  data set          as received
//! ..  zeros             up to the next multiple of ALIGN
//! ```

use std::cell::RefCell;
use std::fs::File;
use std::os::unix::fs::FileExt;

const MAGIC: &[u8; 4] = b"SNJ1";
const HEADER_BYTES: u64 = 32;

/// Record alignment: the logical block size `O_DIRECT` needs, 4 KiB covering every common
/// device.
pub const ALIGN: u64 = 4096;

/// The longest meta a record may carry (two UIDs/AE titles and a time: a few hundred bytes).
const MAX_META: u32 = 4096;

/// What a record says besides the data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMeta {
    /// When the instance was received (Unix ms); the index's received_ms.
    pub received_ms: i64,
    /// Transfer syntax of the presentation context the data set came on.
    pub transfer_syntax_uid: String,
    /// Calling AE of the association.
    pub calling_ae: String,
    /// SOP Instance UID of the data set (so a record can be matched with the index without
    /// parsing the data set).
    pub sop_instance_uid: String,
    /// Called AE of the association (empty in records written before it was recorded).
    pub called_ae: String,
}

/// One record read back from a segment.
#[derive(Debug)]
pub struct Record {
    /// Byte offset of the record in its segment.
    pub offset: u64,
    /// The record's meta.
    pub meta: RecordMeta,
    /// The data set bytes.
    pub dataset: Vec<u8>,
}

/// The bytes a record takes in a segment, padding included.
pub fn record_len(meta: &RecordMeta, dataset_len: usize) -> u64 {
    (HEADER_BYTES + encode_meta(meta).len() as u64 + dataset_len as u64).next_multiple_of(ALIGN)
}

thread_local! {
    /// Each writing thread's record buffer, reused: it holds one record at an aligned
    /// address (`O_DIRECT` needs the memory aligned too).
    static RECORD_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Write one record at `offset` (a multiple of [`ALIGN`]) in one aligned write; not yet
/// durable: the caller `sync_data`s the file.
pub fn write_record(
    file: &File,
    offset: u64,
    generation: u64,
    meta: &RecordMeta,
    dataset: &[u8],
) -> std::io::Result<()> {
    debug_assert_eq!(offset % ALIGN, 0);
    let meta_bytes = encode_meta(meta);
    let mut head = [0u8; HEADER_BYTES as usize];
    head[0..4].copy_from_slice(MAGIC);
    head[4..8].copy_from_slice(&(meta_bytes.len() as u32).to_le_bytes());
    head[8..16].copy_from_slice(&(dataset.len() as u64).to_le_bytes());
    head[16..24].copy_from_slice(&generation.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&head[4..24]);
    crc.update(&meta_bytes);
    crc.update(dataset);
    head[24..28].copy_from_slice(&crc.finalize().to_le_bytes());

    let len = record_len(meta, dataset.len()) as usize;
    RECORD_BUFFER.with_borrow_mut(|buffer| {
        if buffer.len() < len + ALIGN as usize {
            buffer.resize(len + ALIGN as usize, 0);
        }
        let start = buffer.as_ptr().align_offset(ALIGN as usize);
        let record = &mut buffer[start..start + len];
        let (head_part, rest) = record.split_at_mut(head.len());
        head_part.copy_from_slice(&head);
        let (meta_part, rest) = rest.split_at_mut(meta_bytes.len());
        meta_part.copy_from_slice(&meta_bytes);
        let (data_part, padding) = rest.split_at_mut(dataset.len());
        data_part.copy_from_slice(dataset);
        padding.fill(0);
        file.write_all_at(record, offset)
    })
}

/// Read the records of a segment of `generation`, in order. A place without a complete
/// record of this generation (zeros, an older generation's record, a torn write) is stepped
/// over by [`ALIGN`]: appends reserve their space in order but finish in any order, so a
/// record can be whole and acknowledged after a gap that a crash left.
pub fn read_records(file: &File, generation: u64) -> std::io::Result<Vec<Record>> {
    let size = file.metadata()?.len();
    let mut records = Vec::new();
    let mut offset = 0;
    while offset + HEADER_BYTES <= size {
        match read_record_within(file, size, offset, generation)? {
            Some(record) => {
                offset += record_len(&record.meta, record.dataset.len());
                records.push(record);
            }
            None => offset += ALIGN,
        }
    }
    Ok(records)
}

/// The record of `generation` at `offset`, if a complete one with a matching checksum is there.
pub fn read_record_at(
    file: &File,
    offset: u64,
    generation: u64,
) -> std::io::Result<Option<Record>> {
    read_record_within(file, file.metadata()?.len(), offset, generation)
}

fn read_record_within(
    file: &File,
    size: u64,
    offset: u64,
    generation: u64,
) -> std::io::Result<Option<Record>> {
    if offset + HEADER_BYTES > size {
        return Ok(None);
    }
    let mut head = [0u8; HEADER_BYTES as usize];
    file.read_exact_at(&mut head, offset)?;
    let meta_len = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes"));
    let dataset_len = u64::from_le_bytes(head[8..16].try_into().expect("8 bytes"));
    let record_generation = u64::from_le_bytes(head[16..24].try_into().expect("8 bytes"));
    let stored_crc = u32::from_le_bytes(head[24..28].try_into().expect("4 bytes"));
    let end = (offset + HEADER_BYTES)
        .checked_add(meta_len as u64)
        .and_then(|e| e.checked_add(dataset_len));
    let fits = matches!(end, Some(end) if end <= size);
    if &head[0..4] != MAGIC || record_generation != generation || meta_len > MAX_META || !fits {
        return Ok(None);
    }
    let mut meta_bytes = vec![0u8; meta_len as usize];
    file.read_exact_at(&mut meta_bytes, offset + HEADER_BYTES)?;
    let mut dataset = vec![0u8; dataset_len as usize];
    file.read_exact_at(&mut dataset, offset + HEADER_BYTES + meta_len as u64)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&head[4..24]);
    crc.update(&meta_bytes);
    crc.update(&dataset);
    if crc.finalize() != stored_crc {
        return Ok(None);
    }
    Ok(decode_meta(&meta_bytes).map(|meta| Record {
        offset,
        meta,
        dataset,
    }))
}

fn encode_meta(meta: &RecordMeta) -> Vec<u8> {
    let texts = [
        &meta.transfer_syntax_uid,
        &meta.calling_ae,
        &meta.sop_instance_uid,
        &meta.called_ae,
    ];
    let mut out = Vec::with_capacity(8 + texts.iter().map(|t| 2 + t.len()).sum::<usize>());
    out.extend_from_slice(&meta.received_ms.to_le_bytes());
    for text in texts {
        let bytes = &text.as_bytes()[..text.len().min(u16::MAX as usize)];
        out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

fn decode_meta(bytes: &[u8]) -> Option<RecordMeta> {
    let received_ms = i64::from_le_bytes(bytes.get(0..8)?.try_into().ok()?);
    let mut rest = &bytes[8..];
    let mut text = || -> Option<String> {
        let len = u16::from_le_bytes(rest.get(0..2)?.try_into().ok()?) as usize;
        let value = String::from_utf8(rest.get(2..2 + len)?.to_vec()).ok()?;
        rest = &rest[2 + len..];
        Some(value)
    };
    let transfer_syntax_uid = text()?;
    let calling_ae = text()?;
    let sop_instance_uid = text()?;
    // Appended field: absent from records of earlier versions, which still replay.
    let called_ae = text().unwrap_or_default();
    Some(RecordMeta {
        received_ms,
        transfer_syntax_uid,
        calling_ae,
        sop_instance_uid,
        called_ae,
    })
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::path::Path;

    use super::super::segments::{create_segment, list_segments, recycle_segment, segment_path};
    use super::*;

    fn records(dir: &Path, generation: u64) -> Vec<Record> {
        read_records(
            &File::open(segment_path(dir, generation)).unwrap(),
            generation,
        )
        .unwrap()
    }

    fn meta(ms: i64) -> RecordMeta {
        RecordMeta {
            received_ms: ms,
            transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
            calling_ae: "STORESCU".into(),
            sop_instance_uid: format!("1.2.3.{ms}"),
            called_ae: "SEGNODE".into(),
        }
    }

    #[test]
    fn records_read_back_in_order_up_to_the_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let file = create_segment(dir.path(), 7, 64 * 1024).unwrap();
        let mut offset = 0;
        for (i, len) in [10usize, 0, 5000].into_iter().enumerate() {
            let data = vec![i as u8 + 1; len];
            write_record(&file, offset, 7, &meta(i as i64), &data).unwrap();
            offset += record_len(&meta(i as i64), len);
        }
        let records = records(dir.path(), 7);
        assert_eq!(records.len(), 3);
        assert_eq!(records[2].meta, meta(2));
        assert_eq!(records[2].dataset, vec![3u8; 5000]);
        assert_eq!(records[1].dataset.len(), 0);
        assert_eq!(list_segments(dir.path()).unwrap(), vec![7]);
        assert_eq!(file.metadata().unwrap().len(), 64 * 1024, "size is fixed");
        assert_eq!(records[1].offset % ALIGN, 0, "records are aligned");
    }

    #[test]
    fn a_torn_record_is_stepped_over_and_whole_ones_after_it_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = create_segment(dir.path(), 1, 64 * 1024).unwrap();
        // Three appends reserved in order; the second (5 kB, two blocks) was torn by the
        // crash, the third had finished and been acknowledged before it.
        let second = record_len(&meta(1), 100);
        let third = second + record_len(&meta(2), 5000);
        write_record(&file, 0, 1, &meta(1), &[1; 100]).unwrap();
        write_record(&file, second, 1, &meta(2), &[2; 5000]).unwrap();
        write_record(&file, third, 1, &meta(3), &[3; 100]).unwrap();
        OpenOptions::new()
            .write(true)
            .open(segment_path(dir.path(), 1))
            .unwrap()
            .write_all_at(&[0; 8], second + HEADER_BYTES + 40)
            .unwrap();
        let records = records(dir.path(), 1);
        let metas: Vec<_> = records.iter().map(|r| r.meta.clone()).collect();
        assert_eq!(metas, vec![meta(1), meta(3)]);
        assert_eq!(records[1].offset, third);
    }

    #[test]
    fn a_record_after_one_never_written_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = create_segment(dir.path(), 1, 64 * 1024).unwrap();
        // The first reservation's write never happened (zeros); the second completed.
        let second = record_len(&meta(1), 9000);
        write_record(&file, second, 1, &meta(2), &[2; 100]).unwrap();
        let records = records(dir.path(), 1);
        assert_eq!(records.len(), 1);
        assert_eq!((records[0].offset, &records[0].meta), (second, &meta(2)));
    }

    #[test]
    fn a_recycled_segment_forgets_its_old_records() {
        let dir = tempfile::tempdir().unwrap();
        let file = create_segment(dir.path(), 1, 64 * 1024).unwrap();
        write_record(&file, 0, 1, &meta(1), &[1; 100]).unwrap();
        write_record(&file, record_len(&meta(1), 100), 1, &meta(2), &[2; 100]).unwrap();
        drop(file);
        let file = recycle_segment(dir.path(), 1, 2).unwrap();
        assert!(records(dir.path(), 2).is_empty());
        // One new record shorter than the old first one: the old second one must not count.
        write_record(&file, 0, 2, &meta(3), &[3; 10]).unwrap();
        let records = records(dir.path(), 2);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].dataset, vec![3; 10]);
        assert_eq!(list_segments(dir.path()).unwrap(), vec![2]);
    }
}

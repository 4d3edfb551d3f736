//! Spool behaviour on real files: what is stored, replaced, refused, and what survives a reopen.

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, OpenFileOptions};
use dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN;

use super::*;
use crate::uids;

fn dataset(study: &str, series: &str, sop: Option<&str>) -> Vec<u8> {
    dataset_with(study, series, sop, "P1", 0)
}

/// A data set with this Patient ID and `pixel_bytes` bytes of pixel data.
fn dataset_with(
    study: &str,
    series: &str,
    sop: Option<&str>,
    patient_id: &str,
    pixel_bytes: usize,
) -> Vec<u8> {
    let mut obj = InMemDicomObject::new_empty();
    let mut put = |tag, vr, v: &str| obj.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
    put(tags::SOP_CLASS_UID, VR::UI, uids::MR_IMAGE_STORAGE);
    if let Some(sop) = sop {
        put(tags::SOP_INSTANCE_UID, VR::UI, sop);
    }
    put(tags::STUDY_INSTANCE_UID, VR::UI, study);
    put(tags::SERIES_INSTANCE_UID, VR::UI, series);
    put(tags::PATIENT_ID, VR::LO, patient_id);
    put(tags::MODALITY, VR::CS, "MR");
    put(tags::SERIES_NUMBER, VR::IS, "5");
    if pixel_bytes > 0 {
        obj.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            PrimitiveValue::from(vec![7u8; pixel_bytes]),
        ));
    }
    let mut out = Vec::new();
    obj.write_dataset_with_ts(&mut out, &EXPLICIT_VR_LITTLE_ENDIAN.erased())
        .unwrap();
    out
}

fn incoming<'a>(bytes: &[u8], sop: &'a str) -> IncomingInstance<'a> {
    IncomingInstance {
        sop_class_uid: uids::MR_IMAGE_STORAGE,
        sop_instance_uid: sop,
        transfer_syntax_uid: uids::EXPLICIT_VR_LE,
        dataset: bytes.to_vec().into(),
        calling_ae: "STORESCU",
        called_ae: "SEGNODE",
    }
}

/// Storage settings: no disk floor, a journal of `journal_mb` MiB segments (0: none).
fn storage(journal_mb: u64) -> StorageConfig {
    StorageConfig {
        min_free_disk_mb: 0,
        journal_segment_mb: journal_mb,
        ..StorageConfig::default()
    }
}

/// Both ways of storing: through a journal of 1 MiB segments, and directly.
const BOTH: [u64; 2] = [1, 0];

#[test]
fn stores_a_readable_part10_file_and_indexes_it() {
    for journal_mb in BOTH {
        stores_a_readable_part10_file(journal_mb);
    }
}

fn stores_a_readable_part10_file(journal_mb: u64) {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), &storage(journal_mb)).unwrap();
    let bytes = dataset("1.2.3", "1.2.3.4", Some("1.2.3.4.5"));
    let stored = spool.store(incoming(&bytes, "1.2.3.4.5")).unwrap();
    assert!(!stored.replaced);
    assert_eq!(
        stored.path,
        dir.path().join("instances/1.2.3/1.2.3.4/1.2.3.4.5.dcm")
    );
    spool.settle().unwrap();

    let file = OpenFileOptions::new().open_file(&stored.path).unwrap();
    assert_eq!(file.meta().transfer_syntax(), uids::EXPLICIT_VR_LE);
    assert_eq!(
        file.meta().source_application_entity_title(),
        Some("STORESCU")
    );
    assert_eq!(
        file.element(tags::PATIENT_ID).unwrap().to_str().unwrap(),
        "P1"
    );
    assert_eq!(
        spool.counts().unwrap(),
        SpoolCounts {
            studies: 1,
            series: 1,
            instances: 1
        }
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0,
        "no partial files left"
    );
}

#[test]
fn a_resent_instance_replaces_the_old_copy_once() {
    for journal_mb in BOTH {
        resent_instance_replaces(journal_mb);
    }
}

fn resent_instance_replaces(journal_mb: u64) {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), &storage(journal_mb)).unwrap();
    let bytes = dataset("1.2.3", "1.2.3.4", Some("1.2.3.4.5"));
    spool.store(incoming(&bytes, "1.2.3.4.5")).unwrap();
    let again = spool.store(incoming(&bytes, "1.2.3.4.5")).unwrap();
    assert!(again.replaced);
    assert_eq!(spool.counts().unwrap().instances, 1);
    assert_eq!(
        spool.instance("1.2.3.4.5").unwrap().unwrap().times_received,
        2
    );

    // Re-sent under another series: the old file goes, the index still holds one row.
    let moved = dataset("1.2.3", "1.2.3.9", Some("1.2.3.4.5"));
    let stored = spool.store(incoming(&moved, "1.2.3.4.5")).unwrap();
    assert!(stored.replaced);
    spool.settle().unwrap();
    assert!(
        !dir.path()
            .join("instances/1.2.3/1.2.3.4/1.2.3.4.5.dcm")
            .exists()
    );
    assert!(stored.path.exists());
    assert_eq!(spool.counts().unwrap().instances, 1);
}

#[test]
fn refusals_carry_the_right_status() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), &storage(1)).unwrap();

    let no_sop = dataset("1.2.3", "1.2.3.4", None);
    let err = spool.store(incoming(&no_sop, "1.2.3.4.5")).unwrap_err();
    assert!(
        matches!(
            err,
            SpoolError::Header(HeaderError::MissingAttribute("SOPInstanceUID"))
        ),
        "{err}"
    );
    assert_eq!(err.dimse_status(), Status::CANNOT_UNDERSTAND);

    let bytes = dataset("1.2.3", "1.2.3.4", Some("1.2.3.4.5"));
    let mut wrong_class = incoming(&bytes, "1.2.3.4.5");
    wrong_class.sop_class_uid = uids::CT_IMAGE_STORAGE;
    assert_eq!(
        spool.store(wrong_class).unwrap_err().dimse_status(),
        Status::DATASET_DOES_NOT_MATCH_SOP_CLASS
    );

    let err = spool.store(incoming(&bytes, "9.9.9")).unwrap_err();
    assert_eq!(err.dimse_status(), Status::CANNOT_UNDERSTAND);

    let garbage = [0xFFu8; 37];
    let err = spool.store(incoming(&garbage, "1.2.3.4.5")).unwrap_err();
    assert_eq!(err.dimse_status(), Status::CANNOT_UNDERSTAND, "{err}");

    let traversal = dataset("1.2.3", "../../x", Some("1.2.3.4.6"));
    let err = spool.store(incoming(&traversal, "1.2.3.4.6")).unwrap_err();
    assert!(
        matches!(
            err,
            SpoolError::Header(HeaderError::InvalidUid {
                attribute: "SeriesInstanceUID",
                ..
            })
        ),
        "{err}"
    );

    assert_eq!(
        spool.counts().unwrap(),
        SpoolCounts::default(),
        "nothing refused was indexed"
    );
}

#[test]
fn the_disk_floor_refuses_with_out_of_resources() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(
        dir.path(),
        &StorageConfig {
            min_free_disk_mb: u64::MAX / (1024 * 1024 * 2),
            ..storage(1)
        },
    )
    .unwrap();
    let bytes = dataset("1.2.3", "1.2.3.4", Some("1.2.3.4.5"));
    let err = spool.store(incoming(&bytes, "1.2.3.4.5")).unwrap_err();
    assert_eq!(err.dimse_status(), Status::OUT_OF_RESOURCES);
    assert!(
        err.to_string().contains("min_free_disk_mb"),
        "the message tells the operator what to change: {err}"
    );
    assert_eq!(spool.counts().unwrap().instances, 0);
}

#[test]
fn everything_survives_a_reopen_and_partial_writes_are_cleared() {
    for journal_mb in BOTH {
        survives_a_reopen(journal_mb);
    }
}

fn survives_a_reopen(journal_mb: u64) {
    let dir = tempfile::tempdir().unwrap();
    {
        let spool = Spool::open(dir.path(), &storage(journal_mb)).unwrap();
        for i in 0..5 {
            let sop = format!("1.2.3.4.{i}");
            let bytes = dataset("1.2.3", "1.2.3.4", Some(&sop));
            spool.store(incoming(&bytes, &sop)).unwrap();
        }
    }
    std::fs::write(dir.path().join("tmp/leftover.part"), b"half a file").unwrap();
    let spool = Spool::open(dir.path(), &storage(journal_mb)).unwrap();
    assert_eq!(
        spool.counts().unwrap(),
        SpoolCounts {
            studies: 1,
            series: 1,
            instances: 5
        }
    );
    let rows = spool.instances_of_series("1.2.3.4").unwrap();
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r.path.is_file()));
    assert!(!dir.path().join("tmp/leftover.part").exists());

    let viewer = Spool::open_existing(dir.path()).unwrap();
    assert_eq!(viewer.counts().unwrap().instances, 5);
    let bytes = dataset("1.2.3", "1.2.3.4", Some("1.2.3.4.9"));
    assert_eq!(
        viewer
            .store(incoming(&bytes, "1.2.3.4.9"))
            .unwrap_err()
            .dimse_status(),
        Status::OUT_OF_RESOURCES
    );
}

fn patient_of(path: &std::path::Path) -> String {
    let file = OpenFileOptions::new().open_file(path).unwrap();
    file.element(tags::PATIENT_ID)
        .unwrap()
        .to_str()
        .unwrap()
        .trim()
        .to_string()
}

/// The segment files of the journal and how many records of their generation each holds.
fn journal_records(root: &std::path::Path) -> Vec<(u64, usize)> {
    let dir = root.join("journal");
    journal::segments::list_segments(&dir)
        .unwrap()
        .into_iter()
        .map(|g| {
            let file = std::fs::File::open(journal::segments::segment_path(&dir, g)).unwrap();
            (g, journal::record::read_records(&file, g).unwrap().len())
        })
        .collect()
}

#[test]
fn instances_acknowledged_but_not_filed_before_a_crash_are_filed_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let first_received = {
        let spool = Spool::open(dir.path(), &storage(1)).unwrap();
        let bytes = dataset("1.2.3", "1.2.3.4", Some("1.2.3.4.1"));
        spool.store(incoming(&bytes, "1.2.3.4.1")).unwrap();
        spool.settle().unwrap();
        now_ms()
    };
    // What a node that crashed right after acknowledging leaves: records in the spare
    // segment that the filer never saw (a new instance, a newer copy of the filed one
    // under another series, an older copy that must not win), then a torn record.
    let segments = journal_records(dir.path());
    assert!(
        segments.iter().all(|(_, records)| *records == 0),
        "a clean stop leaves no records: {segments:?}"
    );
    let generation = segments[0].0;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(journal::segments::segment_path(
            &dir.path().join("journal"),
            generation,
        ))
        .unwrap();
    let meta = |received_ms, sop: &str| RecordMeta {
        received_ms,
        transfer_syntax_uid: uids::EXPLICIT_VR_LE.to_string(),
        calling_ae: "CRASHED".to_string(),
        sop_instance_uid: sop.to_string(),
        called_ae: "SEG_DCE".to_string(),
    };
    let records = [
        (
            meta(first_received + 1000, "1.2.3.4.2"),
            dataset_with("1.2.3", "1.2.3.4", Some("1.2.3.4.2"), "NEW", 0),
        ),
        (
            meta(first_received + 2000, "1.2.3.4.1"),
            dataset_with("1.2.3", "1.2.3.9", Some("1.2.3.4.1"), "MOVED", 0),
        ),
        (
            meta(first_received - 60_000, "1.2.3.4.1"),
            dataset_with("1.2.3", "1.2.3.4", Some("1.2.3.4.1"), "OLD", 0),
        ),
        (
            meta(first_received + 3000, "1.2.3.4.3"),
            dataset_with("1.2.3", "1.2.3.4", Some("1.2.3.4.3"), "TORN", 0),
        ),
    ];
    let mut offset = 0;
    let mut last = 0;
    for (meta, bytes) in &records {
        journal::record::write_record(&file, offset, generation, meta, bytes).unwrap();
        last = offset;
        offset += journal::record::record_len(meta, bytes.len());
    }
    use std::os::unix::fs::FileExt;
    file.write_all_at(&[0xFF; 8], last + 100).unwrap();
    file.sync_all().unwrap();
    drop(file);
    // What `segnode status` says of the stopped node: the new instance and the newer copy
    // are not filed yet; the older copy is not counted, the index holds a newer one.
    let viewer = Spool::open_existing(dir.path()).unwrap();
    assert_eq!(viewer.unfiled().unwrap(), 2);
    assert!(
        status_report(dir.path())
            .unwrap()
            .contains("journal: 2 acknowledged instances not yet filed")
    );
    drop(viewer);

    let spool = Spool::open(dir.path(), &storage(1)).unwrap();
    assert_eq!(
        spool.counts().unwrap().instances,
        2,
        "the torn record is not an instance"
    );
    let new = spool.instance("1.2.3.4.2").unwrap().unwrap();
    assert_eq!(patient_of(&new.path), "NEW");
    assert_eq!(new.calling_ae, "CRASHED");
    assert_eq!(new.called_ae, "SEG_DCE", "the called AE survives replay");
    let moved = spool.instance("1.2.3.4.1").unwrap().unwrap();
    assert_eq!(moved.series_uid, "1.2.3.9");
    assert_eq!(patient_of(&moved.path), "MOVED", "the newest copy wins");
    assert_eq!(moved.times_received, 2);
    assert!(
        !dir.path()
            .join("instances/1.2.3/1.2.3.4/1.2.3.4.1.dcm")
            .exists(),
        "the copy under the old series is gone"
    );
    assert!(spool.instance("1.2.3.4.3").unwrap().is_none());
    assert_eq!(spool.unfiled().unwrap(), 0, "all filed after the replay");
    drop(spool);

    // Replayed once: the segments were recycled, a second open files nothing again.
    assert!(journal_records(dir.path()).iter().all(|(_, r)| *r == 0));
    let spool = Spool::open(dir.path(), &storage(1)).unwrap();
    assert_eq!(
        spool.instance("1.2.3.4.1").unwrap().unwrap().times_received,
        2
    );
}

#[test]
fn a_long_run_rolls_through_segments_and_leaves_an_empty_journal() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), &storage(1)).unwrap();
    // 40 instances of 100 kB through 1 MiB segments: about four segments' worth.
    for i in 0..40 {
        let sop = format!("1.2.3.4.{i}");
        let bytes = dataset_with("1.2.3", "1.2.3.4", Some(&sop), "P1", 100_000);
        spool.store(incoming(&bytes, &sop)).unwrap();
    }
    let rows = spool.instances_of_series("1.2.3.4").unwrap();
    assert_eq!(rows.len(), 40);
    for row in &rows {
        let file = OpenFileOptions::new().open_file(&row.path).unwrap();
        let pixels = file.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
        assert_eq!(pixels.len(), 100_000, "{}", row.sop_instance_uid);
    }
    drop(spool);
    let segments = journal_records(dir.path());
    assert!(
        segments.len() <= 2,
        "retired segments are recycled or removed: {segments:?}"
    );
    assert!(segments.iter().all(|(_, r)| *r == 0), "{segments:?}");
}

#[test]
fn an_instance_larger_than_a_segment_is_filed_before_the_acknowledgement() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), &storage(1)).unwrap();
    let small = dataset("1.2.3", "1.2.3.4", Some("1.2.3.4.1"));
    spool.store(incoming(&small, "1.2.3.4.1")).unwrap();
    let big = dataset_with("1.2.3", "1.2.3.4", Some("1.2.3.4.2"), "P1", 1_500_000);
    let stored = spool.store(incoming(&big, "1.2.3.4.2")).unwrap();
    assert!(stored.path.is_file(), "on disk when store returns");
    assert!(
        journal_records(dir.path()).iter().all(|(_, r)| *r <= 1),
        "only the small one went through the journal"
    );
    assert_eq!(spool.counts().unwrap().instances, 2);
}

#[test]
fn a_second_node_on_the_same_data_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = Spool::open(dir.path(), &storage(1)).unwrap();
    // A partial write of the first node's: the second must not clear tmp/ under it.
    std::fs::write(dir.path().join("tmp/in-progress.part"), b"half").unwrap();
    let err = Spool::open(dir.path(), &storage(1)).err().expect("refused");
    assert!(err.to_string().contains("another segnode serve"), "{err}");
    assert!(dir.path().join("tmp/in-progress.part").exists());
    drop(first);
    Spool::open(dir.path(), &storage(1)).expect("free again once the first is gone");
}

#[test]
fn beyond_its_memory_budget_the_filer_reads_data_sets_back_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), &storage(1)).unwrap();
    spool.journal.as_ref().unwrap().set_queue_budget(0);
    for i in 0..12 {
        let sop = format!("1.2.3.4.{i}");
        let bytes = dataset_with("1.2.3", "1.2.3.4", Some(&sop), &format!("P{i}"), 90_000 + i);
        spool.store(incoming(&bytes, &sop)).unwrap();
    }
    for i in 0..12 {
        let row = spool.instance(&format!("1.2.3.4.{i}")).unwrap().unwrap();
        assert_eq!(patient_of(&row.path), format!("P{i}"));
        let file = OpenFileOptions::new().open_file(&row.path).unwrap();
        let pixels = file.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
        assert_eq!(pixels.len(), (90_000 + i + 1) & !1, "even length, padded");
    }
}

/// Append `records` (received time, data set) to the first spare segment of a stopped
/// spool under `root`, as a node that crashed right after acknowledging them leaves them.
fn leave_in_journal(root: &std::path::Path, records: &[(i64, Vec<u8>)]) {
    let dir = root.join("journal");
    let generation = journal::segments::list_segments(&dir).unwrap()[0];
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(journal::segments::segment_path(&dir, generation))
        .unwrap();
    let mut offset = 0;
    for (received_ms, bytes) in records {
        let header = parse_header(bytes, uids::EXPLICIT_VR_LE, &Default::default()).ok();
        let meta = RecordMeta {
            received_ms: *received_ms,
            transfer_syntax_uid: uids::EXPLICIT_VR_LE.to_string(),
            calling_ae: "CRASHED".to_string(),
            sop_instance_uid: header.map(|h| h.sop_instance_uid).unwrap_or_default(),
            called_ae: String::new(),
        };
        journal::record::write_record(&file, offset, generation, &meta, bytes).unwrap();
        offset += journal::record::record_len(&meta, bytes.len());
    }
    file.sync_all().unwrap();
}

#[test]
fn switching_the_journal_off_still_files_what_an_earlier_run_left_in_it() {
    let dir = tempfile::tempdir().unwrap();
    drop(Spool::open(dir.path(), &storage(1)).unwrap());
    let bytes = dataset("1.2.3", "1.2.3.4", Some("1.2.3.4.7"));
    leave_in_journal(dir.path(), &[(now_ms(), bytes)]);

    let spool = Spool::open(dir.path(), &storage(0)).unwrap();
    let row = spool.instance("1.2.3.4.7").unwrap().expect("filed");
    assert!(row.path.is_file());
    assert!(
        journal::segments::list_segments(&dir.path().join("journal"))
            .unwrap()
            .is_empty(),
        "no journal segments without a journal"
    );
}

#[test]
fn a_record_that_no_longer_parses_is_kept_aside_not_recycled() {
    let dir = tempfile::tempdir().unwrap();
    drop(Spool::open(dir.path(), &storage(1)).unwrap());
    let good = dataset("1.2.3", "1.2.3.4", Some("1.2.3.4.8"));
    leave_in_journal(
        dir.path(),
        &[(now_ms(), b"not DICOM".to_vec()), (now_ms() + 1, good)],
    );

    let spool = Spool::open(dir.path(), &storage(1)).unwrap();
    assert!(
        spool.instance("1.2.3.4.8").unwrap().is_some(),
        "the good one is filed"
    );
    let kept: Vec<_> = std::fs::read_dir(dir.path().join("journal"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "kept"))
        .collect();
    assert_eq!(
        kept.len(),
        1,
        "the segment is set aside for a person to look at"
    );
}

#[test]
fn received_times_only_go_forward() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), &storage(1)).unwrap();
    // As if an earlier run had stamped an instance a minute ahead of this clock.
    spool
        .last_received_ms
        .store(now_ms() + 60_000, std::sync::atomic::Ordering::Relaxed);
    let mut last = spool
        .last_received_ms
        .load(std::sync::atomic::Ordering::Relaxed);
    for _ in 0..1000 {
        let next = spool.next_received_ms();
        assert!(next > last, "{next} after {last}");
        last = next;
    }
}

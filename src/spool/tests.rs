//! Spool behaviour on real files: what is stored, replaced, refused, and what survives a reopen.

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, OpenFileOptions};
use dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN;

use super::*;
use crate::uids;

fn dataset(study: &str, series: &str, sop: Option<&str>) -> Vec<u8> {
    let mut obj = InMemDicomObject::new_empty();
    let mut put = |tag, vr, v: &str| obj.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
    put(tags::SOP_CLASS_UID, VR::UI, uids::MR_IMAGE_STORAGE);
    if let Some(sop) = sop {
        put(tags::SOP_INSTANCE_UID, VR::UI, sop);
    }
    put(tags::STUDY_INSTANCE_UID, VR::UI, study);
    put(tags::SERIES_INSTANCE_UID, VR::UI, series);
    put(tags::PATIENT_ID, VR::LO, "P1");
    put(tags::MODALITY, VR::CS, "MR");
    put(tags::SERIES_NUMBER, VR::IS, "5");
    let mut out = Vec::new();
    obj.write_dataset_with_ts(&mut out, &EXPLICIT_VR_LITTLE_ENDIAN.erased())
        .unwrap();
    out
}

fn incoming<'a>(bytes: &'a [u8], sop: &'a str) -> IncomingInstance<'a> {
    IncomingInstance {
        sop_class_uid: uids::MR_IMAGE_STORAGE,
        sop_instance_uid: sop,
        transfer_syntax_uid: uids::EXPLICIT_VR_LE,
        dataset: bytes,
        calling_ae: "STORESCU",
    }
}

#[test]
fn stores_a_readable_part10_file_and_indexes_it() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), 0).unwrap();
    let bytes = dataset("1.2.3", "1.2.3.4", Some("1.2.3.4.5"));
    let stored = spool.store(incoming(&bytes, "1.2.3.4.5")).unwrap();
    assert!(!stored.replaced);
    assert_eq!(
        stored.path,
        dir.path().join("instances/1.2.3/1.2.3.4/1.2.3.4.5.dcm")
    );

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
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), 0).unwrap();
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
    let spool = Spool::open(dir.path(), 0).unwrap();

    let no_sop = dataset("1.2.3", "1.2.3.4", None);
    let err = spool.store(incoming(&no_sop, "1.2.3.4.5")).unwrap_err();
    assert!(
        matches!(err, SpoolError::MissingAttribute("SOPInstanceUID")),
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
            SpoolError::InvalidUid {
                attribute: "SeriesInstanceUID",
                ..
            }
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
    let spool = Spool::open(dir.path(), u64::MAX / (1024 * 1024 * 2)).unwrap();
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
    let dir = tempfile::tempdir().unwrap();
    {
        let spool = Spool::open(dir.path(), 0).unwrap();
        for i in 0..5 {
            let sop = format!("1.2.3.4.{i}");
            let bytes = dataset("1.2.3", "1.2.3.4", Some(&sop));
            spool.store(incoming(&bytes, &sop)).unwrap();
        }
    }
    std::fs::write(dir.path().join("tmp/leftover.part"), b"half a file").unwrap();
    let spool = Spool::open(dir.path(), 0).unwrap();
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

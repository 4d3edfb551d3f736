//! The Storage SCP under what goes wrong in production: peers that may not associate,
//! proposals of syntaxes this build cannot decode, many associations at once, garbage and
//! cut-off PDU streams, requests the node must refuse, a full disk, a restart, and
//! shutdowns with peers still connected. Every test checks the outcome where it lands:
//! statuses on the wire, files on disk, counts in the index.

mod common;

use std::time::{Duration, Instant};

use common::raw_scu::{RawScu, mr_dataset};
use common::{NODE_AE, TEST_SCU_AE, TestNode, describe, echoscu, fixtures, storescu};
use dicom_ul::Pdu;
use dicom_ul::association::Error as UlError;
use dicom_ul::pdu::{
    AbortRQServiceProviderReason, AbortRQSource, AssociationRJResult,
    AssociationRJServiceUserReason, AssociationRJSource, PDataValueType,
};
use segnode::ae::AeTitle;
use segnode::config::AllowedPeer;
use segnode::dimse::{Command, Status};
use segnode::ingest::IngestEvent;
use segnode::uids;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const UNCOMPRESSED: &[&str] = &[uids::EXPLICIT_VR_LE];
const IMPLICIT: &[&str] = &[uids::IMPLICIT_VR_LE];

fn allow(ae: &str, host: Option<&str>) -> AllowedPeer {
    AllowedPeer {
        ae_title: AeTitle::parse(ae).unwrap(),
        host: host.map(|h| h.parse().unwrap()),
    }
}

/// Associate with dicom-ul and return the rejection (panics if the node accepts).
async fn rejection(
    node: &TestNode,
    calling_ae: &str,
    called_ae: &str,
) -> (AssociationRJResult, AssociationRJSource) {
    let address = format!("{called_ae}@{}", node.addr);
    match RawScu::connect(&address, calling_ae, &[(uids::VERIFICATION, IMPLICIT)]).await {
        Err(UlError::Rejected { association_rj, .. }) => {
            (association_rj.result, association_rj.source)
        }
        Err(other) => panic!("expected A-ASSOCIATE-RJ, got {other}"),
        Ok(_) => panic!("{calling_ae} -> {called_ae} was accepted"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_calling_ae_is_rejected_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let files = fixtures::mr_series(dir.path(), 3, 32, 32, 31);
    let mut node = TestNode::start(|c| c.access.allow = vec![allow("GOODSCU", None)]).await;

    let out = echoscu(node.port(), "BADSCU", NODE_AE).await;
    assert!(
        !out.status.success(),
        "echoscu from an unknown AE succeeded: {}",
        describe(&out)
    );
    let out = storescu(node.port(), "BADSCU", &[], &files).await;
    assert!(
        !out.status.success(),
        "storescu from an unknown AE succeeded: {}",
        describe(&out)
    );
    let (result, source) = rejection(&node, "BADSCU", NODE_AE).await;
    assert_eq!(result, AssociationRJResult::Permanent);
    assert_eq!(
        source,
        AssociationRJSource::ServiceUser(
            AssociationRJServiceUserReason::CallingAETitleNotRecognized
        )
    );

    // The allowed AE gets through, so the refusals above are about the AE title.
    let out = echoscu(node.port(), "GOODSCU", NODE_AE).await;
    assert!(
        out.status.success(),
        "echoscu from the allowed AE failed: {}",
        describe(&out)
    );

    let summary = node.stop().await;
    assert_eq!(node.counts().instances, 0);
    assert!(node.events().is_empty());
    assert_eq!(
        (summary.associations, summary.associations_rejected),
        (1, 3),
        "{summary:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn allowed_ae_from_another_host_is_rejected() {
    let mut node =
        TestNode::start(|c| c.access.allow = vec![allow("GOODSCU", Some("192.0.2.7"))]).await;
    let out = echoscu(node.port(), "GOODSCU", NODE_AE).await;
    assert!(
        !out.status.success(),
        "echoscu from the wrong host succeeded: {}",
        describe(&out)
    );
    let (result, source) = rejection(&node, "GOODSCU", NODE_AE).await;
    assert_eq!(result, AssociationRJResult::Permanent);
    assert_eq!(
        source,
        AssociationRJSource::ServiceUser(
            AssociationRJServiceUserReason::CallingAETitleNotRecognized
        )
    );
    assert_eq!(node.stop().await.associations, 0);

    let mut node =
        TestNode::start(|c| c.access.allow = vec![allow("GOODSCU", Some("127.0.0.1"))]).await;
    let out = echoscu(node.port(), "GOODSCU", NODE_AE).await;
    assert!(
        out.status.success(),
        "echoscu from the listed host failed: {}",
        describe(&out)
    );
    assert_eq!(node.stop().await.associations, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_called_ae_is_rejected_when_checked() {
    let mut node = TestNode::start(|_| {}).await;
    let out = echoscu(node.port(), TEST_SCU_AE, "NOTSEGNODE").await;
    assert!(
        !out.status.success(),
        "echoscu to a wrong called AE succeeded: {}",
        describe(&out)
    );
    let (_, source) = rejection(&node, TEST_SCU_AE, "NOTSEGNODE").await;
    assert_eq!(
        source,
        AssociationRJSource::ServiceUser(
            AssociationRJServiceUserReason::CalledAETitleNotRecognized
        )
    );
    node.stop().await;

    let mut node = TestNode::start(|c| c.access.check_called_ae = false).await;
    let out = echoscu(node.port(), TEST_SCU_AE, "NOTSEGNODE").await;
    assert!(
        out.status.success(),
        "check_called_ae = false still rejects: {}",
        describe(&out)
    );
    node.stop().await;
}

/// Transfer syntaxes dicom-rs knows but segnode does not accept; without an explicit
/// allow-list dicom-ul would accept some of them.
const OUTSIDE_THE_LIST: &[&str] = &[
    "1.2.840.10008.1.2.2",     // Explicit VR Big Endian (retired)
    "1.2.840.10008.1.2.1.98",  // Encapsulated Uncompressed Explicit VR Little Endian
    "1.2.840.10008.1.2.4.92",  // JPEG 2000 Part 2 multi-component (lossless)
    "1.2.840.10008.1.2.4.201", // HTJ2K lossless
    "1.2.840.10008.1.2.4.100", // MPEG2
    "1.2.840.10008.1.2.4.110", // JPEG XL lossless
];

#[tokio::test(flavor = "multi_thread")]
async fn negotiation_accepts_exactly_the_listed_syntaxes_and_classes() {
    let mut node = TestNode::start(|c| c.storage.accepted_sop_classes = vec!["MR".into()]).await;
    // One presentation context per (abstract syntax, transfer syntax).
    let mut proposals: Vec<(&str, &str)> = Vec::new();
    for ts in uids::ACCEPTED_TRANSFER_SYNTAXES
        .iter()
        .chain(OUTSIDE_THE_LIST)
    {
        proposals.push((uids::MR_IMAGE_STORAGE, ts));
    }
    proposals.push((uids::CT_IMAGE_STORAGE, uids::EXPLICIT_VR_LE)); // not in accepted_sop_classes
    proposals.push(("1.2.840.10008.5.1.4.1.2.2.1", uids::IMPLICIT_VR_LE)); // C-FIND: not a service here
    proposals.push((uids::VERIFICATION, uids::IMPLICIT_VR_LE));
    let syntaxes: Vec<[&str; 1]> = proposals.iter().map(|(_, ts)| [*ts]).collect();
    let contexts: Vec<(&str, &[&str])> = proposals
        .iter()
        .zip(&syntaxes)
        .map(|((class, _), ts)| (*class, &ts[..]))
        .collect();

    let scu = RawScu::connect(&node.ae_address(), TEST_SCU_AE, &contexts)
        .await
        .unwrap();
    let mut accepted: Vec<(String, String)> = scu
        .association
        .presentation_contexts()
        .iter()
        .map(|pc| (pc.abstract_syntax.clone(), pc.transfer_syntax.clone()))
        .collect();
    accepted.sort();
    let mut expected: Vec<(String, String)> = uids::ACCEPTED_TRANSFER_SYNTAXES
        .iter()
        .map(|ts| (uids::MR_IMAGE_STORAGE.to_string(), ts.to_string()))
        .chain([(
            uids::VERIFICATION.to_string(),
            uids::IMPLICIT_VR_LE.to_string(),
        )])
        .collect();
    expected.sort();
    assert_eq!(accepted, expected);
    scu.release().await;
    node.stop().await;
}

/// 8 storescu processes at once, 25 instances each, through at most 4 association slots.
#[tokio::test(flavor = "multi_thread")]
async fn eight_concurrent_associations_store_everything() {
    let dir = tempfile::tempdir().unwrap();
    let series: Vec<_> = (0..8)
        .map(|i| fixtures::mr_series(&dir.path().join(format!("s{i}")), 25, 64, 64, 100 + i))
        .collect();
    let mut node = TestNode::start(|c| c.network.max_associations = 4).await;

    let port = node.port();
    let senders: Vec<_> = series
        .iter()
        .enumerate()
        .map(|(i, files)| {
            let files = files.clone();
            tokio::spawn(async move { storescu(port, &format!("SCU{i}"), &[], &files).await })
        })
        .collect();
    for (i, sender) in senders.into_iter().enumerate() {
        let out = sender.await.unwrap();
        assert!(
            out.status.success(),
            "storescu #{i} failed: {}",
            describe(&out)
        );
    }
    let summary = node.stop().await;

    let counts = node.counts();
    assert_eq!(
        (counts.studies, counts.series, counts.instances),
        (8, 8, 200),
        "{counts:?}"
    );
    assert_eq!(
        (
            summary.associations,
            summary.instances_stored,
            summary.store_failures
        ),
        (8, 200, 0)
    );
    for files in &series {
        for f in files {
            let record = node
                .spool
                .instance(&fixtures::sop_instance_uid(f))
                .unwrap()
                .expect("indexed");
            assert!(record.path.is_file());
        }
    }
    let events = node.events();
    let released = events
        .iter()
        .filter(|e| matches!(e, IngestEvent::AssociationReleased { .. }))
        .count();
    let stored = events
        .iter()
        .filter(|e| matches!(e, IngestEvent::InstanceStored { .. }))
        .count();
    assert_eq!((stored, released), (200, 8));
}

/// Read until the server closes the connection; returns what it sent and how long it took.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Err(_) => panic!("the server kept the connection open for more than {limit:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return (received, start.elapsed()),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// A valid A-ASSOCIATE-RQ PDU header announcing `length` bytes, followed by the start of its body.
fn half_associate_rq() -> Vec<u8> {
    let mut pdu = vec![0x01, 0x00, 0x00, 0x00, 0x00, 0xC8]; // type 1, length 200
    pdu.extend_from_slice(&[0x00, 0x01, 0x00, 0x00]); // protocol version 1, reserved
    pdu.extend_from_slice(format!("{NODE_AE:<16}").as_bytes()); // called AE
    pdu.extend_from_slice(format!("{TEST_SCU_AE:<16}").as_bytes()); // calling AE
    pdu
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_peers_are_cut_off_without_disturbing_a_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let files = fixtures::mr_series(dir.path(), 20, 64, 64, 41);
    let mut node = TestNode::start(|c| c.network.read_timeout_seconds = 3).await;
    let (port, address) = (node.port(), node.ae_address());

    // The good peer, running throughout.
    let good = tokio::spawn({
        let files = files.clone();
        async move { storescu(port, TEST_SCU_AE, &[], &files).await }
    });

    // 1. Not DICOM at all.
    let garbage = tokio::spawn(async move {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: segnode\r\n\r\n")
            .await
            .unwrap();
        read_until_closed(&mut s, Duration::from_secs(10)).await
    });
    // 2. Half an A-ASSOCIATE-RQ, then silence: closed after the read timeout.
    let half = tokio::spawn(async move {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(&half_associate_rq()).await.unwrap();
        read_until_closed(&mut s, Duration::from_secs(15)).await
    });
    // 3. An association that dies in the middle of a C-STORE data set.
    let cut_uid = "1.2.826.0.1.3680043.8.498.77.1";
    let cut = tokio::spawn({
        let address = address.clone();
        async move {
            let mut scu = RawScu::connect(
                &address,
                TEST_SCU_AE,
                &[(uids::MR_IMAGE_STORAGE, UNCOMPRESSED)],
            )
            .await
            .unwrap();
            let pc = scu.context_id(uids::MR_IMAGE_STORAGE);
            let dataset = mr_dataset(
                uids::MR_IMAGE_STORAGE,
                Some(cut_uid),
                "1.2.826.0.1.3680043.8.498.77",
                "1.2.826.0.1.3680043.8.498.78",
            );
            let command = Command::StoreRq {
                message_id: 1,
                sop_class_uid: uids::MR_IMAGE_STORAGE.into(),
                sop_instance_uid: cut_uid.into(),
                priority: 0,
                move_originator: None,
            };
            scu.send_pdv(pc, PDataValueType::Command, true, command.encode())
                .await;
            scu.send_pdv(
                pc,
                PDataValueType::Data,
                false,
                dataset[..dataset.len() / 2].to_vec(),
            )
            .await;
            drop(scu); // the TCP connection closes mid data set
        }
    });
    // 4. Junk inside an established association: the node answers A-ABORT.
    let junk = tokio::spawn({
        let address = address.clone();
        async move {
            let mut scu = RawScu::connect(&address, TEST_SCU_AE, &[(uids::VERIFICATION, IMPLICIT)])
                .await
                .unwrap();
            scu.association
                .inner_stream()
                .write_all(&[0x42; 64])
                .await
                .unwrap();
            match scu.association.receive().await {
                Ok(Pdu::AbortRQ { source }) => source,
                Ok(other) => panic!("expected A-ABORT, got {}", other.short_description()),
                Err(err) => panic!("expected A-ABORT, got {err}"),
            }
        }
    });

    let (garbage_reply, garbage_time) = garbage.await.unwrap();
    assert!(
        garbage_reply.is_empty(),
        "the node answered garbage with {garbage_reply:?}"
    );
    assert!(
        garbage_time < Duration::from_secs(3),
        "garbage was not cut off at once ({garbage_time:?})"
    );
    let (_, half_time) = half.await.unwrap();
    assert!(
        half_time >= Duration::from_secs(2),
        "a slow peer was cut before the read timeout ({half_time:?})"
    );
    cut.await.unwrap();
    assert_eq!(
        junk.await.unwrap(),
        AbortRQSource::ServiceProvider(AbortRQServiceProviderReason::UnrecognizedPdu)
    );
    let out = good.await.unwrap();
    assert!(
        out.status.success(),
        "the good peer failed: {}",
        describe(&out)
    );

    let summary = node.stop().await;
    assert_eq!(
        node.counts().instances,
        20,
        "exactly the good peer's instances"
    );
    assert!(
        node.spool.instance(cut_uid).unwrap().is_none(),
        "a half-received instance was stored"
    );
    assert_eq!(summary.associations, 3, "{summary:?}"); // good, cut, junk
    assert_eq!(summary.associations_rejected, 2, "{summary:?}"); // garbage, half RQ
    assert_eq!(summary.associations_aborted, 2, "{summary:?}"); // cut, junk
    assert_eq!(summary.instances_stored, 20);
}

const STUDY: &str = "1.2.826.0.1.3680043.8.498.90";
const SERIES: &str = "1.2.826.0.1.3680043.8.498.91";

fn status_of(response: &Command) -> (u16, Status, Option<String>) {
    match response {
        Command::StoreRsp {
            responding_to,
            status,
            error_comment,
            ..
        } => (*responding_to, *status, error_comment.clone()),
        other => panic!("expected C-STORE-RSP, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_failure_statuses_with_their_message_ids() {
    let mut node = TestNode::start(|_| {}).await;
    let contexts: &[(&str, &[&str])] = &[
        (uids::MR_IMAGE_STORAGE, UNCOMPRESSED),
        (uids::VERIFICATION, IMPLICIT),
    ];
    let mut scu = RawScu::connect(&node.ae_address(), TEST_SCU_AE, contexts)
        .await
        .unwrap();
    let mr = scu.context_id(uids::MR_IMAGE_STORAGE);
    let verification = scu.context_id(uids::VERIFICATION);

    // No SOP Instance UID in the data set: cannot understand (0xCxxx).
    let no_uid = mr_dataset(uids::MR_IMAGE_STORAGE, None, STUDY, SERIES);
    let rsp = scu
        .c_store(
            mr,
            11,
            uids::MR_IMAGE_STORAGE,
            &format!("{SERIES}.1"),
            &no_uid,
        )
        .await;
    let (id, status, comment) = status_of(&rsp);
    assert_eq!(id, 11);
    assert!((0xC000..=0xCFFF).contains(&status.0), "status {status}");
    assert!(comment.unwrap_or_default().contains("SOPInstanceUID"));

    // Bytes that are no data set at all: cannot understand.
    let rsp = scu
        .c_store(
            mr,
            12,
            uids::MR_IMAGE_STORAGE,
            &format!("{SERIES}.2"),
            &[0xFF; 40],
        )
        .await;
    let (id, status, _) = status_of(&rsp);
    assert_eq!(id, 12);
    assert!((0xC000..=0xCFFF).contains(&status.0), "status {status}");

    // The data set is a CT, the command says MR: data set does not match SOP class.
    let ct = mr_dataset(
        uids::CT_IMAGE_STORAGE,
        Some(&format!("{SERIES}.3")),
        STUDY,
        SERIES,
    );
    let rsp = scu
        .c_store(mr, 13, uids::MR_IMAGE_STORAGE, &format!("{SERIES}.3"), &ct)
        .await;
    assert_eq!(status_of(&rsp).0, 13);
    assert_eq!(status_of(&rsp).1, Status::DATASET_DOES_NOT_MATCH_SOP_CLASS);

    // A store on the Verification context: SOP class not supported.
    let good = mr_dataset(
        uids::MR_IMAGE_STORAGE,
        Some(&format!("{SERIES}.4")),
        STUDY,
        SERIES,
    );
    let implicit_good = {
        // The Verification context was negotiated in Implicit VR: re-encode.
        let obj = dicom_object::InMemDicomObject::read_dataset_with_ts(
            good.as_slice(),
            &dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased(),
        )
        .unwrap();
        let mut out = Vec::new();
        obj.write_dataset_with_ts(
            &mut out,
            &dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN.erased(),
        )
        .unwrap();
        out
    };
    let rsp = scu
        .c_store(
            verification,
            14,
            uids::MR_IMAGE_STORAGE,
            &format!("{SERIES}.4"),
            &implicit_good,
        )
        .await;
    assert_eq!(
        (status_of(&rsp).0, status_of(&rsp).1),
        (14, Status::SOP_CLASS_NOT_SUPPORTED)
    );

    // An operation the node does not implement (C-FIND-RQ): unrecognized operation.
    let find = Command::Unsupported {
        field: 0x0020,
        message_id: Some(15),
        sop_class_uid: Some(uids::MR_IMAGE_STORAGE.into()),
        has_dataset: false,
    };
    scu.send_message(mr, &find.encode(), None).await;
    match scu.read_response().await {
        Command::Unsupported { field, .. } => assert_eq!(field, 0x8020),
        other => panic!("expected a C-FIND-RSP, got {other:?}"),
    }

    // And a good store and an echo on the same association still work, with their own ids.
    let rsp = scu
        .c_store(
            mr,
            16,
            uids::MR_IMAGE_STORAGE,
            &format!("{SERIES}.4"),
            &good,
        )
        .await;
    assert_eq!(
        (status_of(&rsp).0, status_of(&rsp).1),
        (16, Status::SUCCESS)
    );
    assert_eq!(
        scu.c_echo(verification, 17).await,
        Command::EchoRsp {
            responding_to: 17,
            status: Status::SUCCESS
        }
    );
    scu.release().await;

    let summary = node.stop().await;
    assert_eq!(node.counts().instances, 1);
    assert!(
        node.spool
            .instance(&format!("{SERIES}.4"))
            .unwrap()
            .is_some()
    );
    assert_eq!(
        (summary.instances_stored, summary.store_failures),
        (1, 4),
        "{summary:?}"
    );
    assert_eq!(summary.associations_aborted, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn disk_floor_refuses_with_out_of_resources() {
    let dir = tempfile::tempdir().unwrap();
    let files = fixtures::mr_series(dir.path(), 3, 32, 32, 51);
    let mut node = TestNode::start(|c| c.storage.min_free_disk_mb = 1 << 40).await;

    let mut scu = RawScu::connect(
        &node.ae_address(),
        TEST_SCU_AE,
        &[(uids::MR_IMAGE_STORAGE, UNCOMPRESSED)],
    )
    .await
    .unwrap();
    let mr = scu.context_id(uids::MR_IMAGE_STORAGE);
    let dataset = mr_dataset(
        uids::MR_IMAGE_STORAGE,
        Some(&format!("{SERIES}.9")),
        STUDY,
        SERIES,
    );
    let (id, status, comment) = status_of(
        &scu.c_store(
            mr,
            3,
            uids::MR_IMAGE_STORAGE,
            &format!("{SERIES}.9"),
            &dataset,
        )
        .await,
    );
    assert_eq!((id, status), (3, Status::OUT_OF_RESOURCES));
    assert!(comment.unwrap_or_default().contains("disk"));
    scu.release().await;

    // DCMTK is refused too (storescu stops at the first 0xA700); nothing reaches the disk.
    let _ = storescu(node.port(), TEST_SCU_AE, &[], &files).await;
    let summary = node.stop().await;
    assert_eq!(node.counts().instances, 0);
    assert_eq!(summary.instances_stored, 0);
    assert!(summary.store_failures >= 2, "{summary:?}");
    let stored_files = walk(&node.data_dir.join("instances"));
    assert!(
        stored_files.is_empty(),
        "files written below the disk floor: {stored_files:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_keeps_everything_and_a_resent_instance_is_not_duplicated() {
    let data = tempfile::tempdir().unwrap();
    let inputs = tempfile::tempdir().unwrap();
    let files = fixtures::mr_series(inputs.path(), 10, 64, 64, 61);

    let mut first = TestNode::start_in(data.path(), |_| {}).await;
    let out = storescu(first.port(), TEST_SCU_AE, &[], &files).await;
    assert!(out.status.success(), "{}", describe(&out));
    first.stop().await;
    drop(first);

    let mut second = TestNode::start_in(data.path(), |_| {}).await;
    let counts = second.counts();
    assert_eq!(
        (counts.studies, counts.series, counts.instances),
        (1, 1, 10),
        "{counts:?}"
    );
    for f in &files {
        let record = second
            .spool
            .instance(&fixtures::sop_instance_uid(f))
            .unwrap()
            .expect("still indexed");
        assert!(
            record.path.is_file(),
            "{} lost across the restart",
            record.path.display()
        );
    }

    let out = storescu(second.port(), TEST_SCU_AE, &[], &files[..3]).await;
    assert!(out.status.success(), "{}", describe(&out));
    let summary = second.stop().await;
    assert_eq!(summary.instances_stored, 3);
    assert_eq!(
        second.counts().instances,
        10,
        "a re-sent instance was counted twice"
    );
    for (i, f) in files.iter().enumerate() {
        let record = second
            .spool
            .instance(&fixtures::sop_instance_uid(f))
            .unwrap()
            .unwrap();
        assert!(record.path.is_file());
        assert_eq!(
            record.times_received,
            if i < 3 { 2 } else { 1 },
            "{}",
            record.sop_instance_uid
        );
    }
    let replaced = second
        .events()
        .iter()
        .filter(|e| matches!(e, IngestEvent::InstanceStored { replaced: true, .. }))
        .count();
    assert_eq!(replaced, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_lets_an_association_in_flight_finish_then_refuses_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let files = fixtures::mr_series(dir.path(), 300, 64, 64, 71);
    let mut node = TestNode::start(|_| {}).await;
    let port = node.port();
    let sender = tokio::spawn({
        let files = files.clone();
        async move { storescu(port, TEST_SCU_AE, &[], &files).await }
    });
    node.wait_for_instances(1, Duration::from_secs(60)).await;

    let stored_at_stop = node.counts().instances;
    let summary = node.stop().await;
    let out = sender.await.unwrap();
    assert!(
        stored_at_stop < 300,
        "the sender finished before the shutdown: nothing was in flight"
    );
    assert!(
        out.status.success(),
        "the association in flight was cut: {}",
        describe(&out)
    );
    assert_eq!(summary.instances_stored, 300);
    assert_eq!(node.counts().instances, 300);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).await.is_err(),
        "still accepting after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_aborts_an_association_that_outlives_the_drain_timeout() {
    let mut node = TestNode::start(|c| c.network.read_timeout_seconds = 2).await;
    let mut scu = RawScu::connect(
        &node.ae_address(),
        TEST_SCU_AE,
        &[(uids::VERIFICATION, IMPLICIT)],
    )
    .await
    .unwrap();
    let pc = scu.context_id(uids::VERIFICATION);
    // A peer that stays busy (an echo every 300 ms) and never releases.
    let pinger = tokio::spawn(async move {
        for message_id in 1.. {
            let echo = Command::EchoRq { message_id }.encode();
            let pdu = Pdu::PData {
                data: vec![dicom_ul::pdu::PDataValue {
                    presentation_context_id: pc,
                    value_type: PDataValueType::Command,
                    is_last: true,
                    data: echo,
                }],
            };
            let _ = scu.association.send(&pdu).await; // may fail once the node is gone
            match scu.association.receive().await {
                Ok(Pdu::PData { .. }) => tokio::time::sleep(Duration::from_millis(300)).await,
                Ok(Pdu::AbortRQ { source }) => return Ok(source),
                Ok(other) => return Err(other.short_description().to_string()),
                Err(err) => return Err(err.to_string()),
            }
        }
        unreachable!()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    let started = Instant::now();
    let summary = node.stop().await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900),
        "stopped before the drain timeout ({took:?})"
    );
    assert!(
        took < Duration::from_secs(10),
        "the drain was not bounded ({took:?})"
    );
    assert_eq!(pinger.await.unwrap(), Ok(AbortRQSource::ServiceUser));
    assert_eq!((summary.associations, summary.associations_aborted), (1, 1));
}

//! What a hostile or broken peer can do to a running `segnode serve`, each attack against
//! the real binary on loopback: sequence-depth and declared-length bombs, a deflate bomb,
//! sixteen associations streaming huge data sets, a peer trickling one message, silent
//! sockets, and the garbage the node already refused before. After every attack the test
//! checks that the process is alive, that a legitimate C-ECHO and C-STORE still succeed,
//! which DICOM status or abort the attacker got, and how much memory the node took
//! (`VmHWM`, its peak resident set). Every attack is bounded in size and time.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::child_node::ChildNode;
use common::raw_scu::{RawScu, mr_dataset};
use common::{TEST_SCU_AE, fixtures, storescu};
use dicom_ul::Pdu;
use dicom_ul::pdu::PDataValueType;
use segnode::dimse::{Command, Status};
use segnode::uids;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const EXPLICIT: &[&str] = &[uids::EXPLICIT_VR_LE];
const IMPLICIT: &[&str] = &[uids::IMPLICIT_VR_LE];
const DEFLATED: &[&str] = &[uids::DEFLATED_EXPLICIT_VR_LE];
const STUDY: &str = "1.2.826.0.1.3680043.8.498.4242";
const SERIES: &str = "1.2.826.0.1.3680043.8.498.4243";
const MIB: u64 = 1024;

fn store_rq(message_id: u16, sop_instance_uid: &str) -> Command {
    Command::StoreRq {
        message_id,
        sop_class_uid: uids::MR_IMAGE_STORAGE.into(),
        sop_instance_uid: sop_instance_uid.into(),
        priority: 0,
        move_originator: None,
    }
}

fn status(response: &Command) -> (Status, Option<String>) {
    match response {
        Command::StoreRsp {
            status,
            error_comment,
            ..
        } => (*status, error_comment.clone()),
        other => panic!("expected a C-STORE-RSP, got {other:?}"),
    }
}

/// The element header of an Explicit VR Little Endian element with a 4-byte length.
fn long_header(group: u16, element: u16, vr: &[u8; 2], len: u32) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&group.to_le_bytes());
    out.extend_from_slice(&element.to_le_bytes());
    out.extend_from_slice(vr);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&len.to_le_bytes());
    out
}

fn delimiter(element: u16) -> [u8; 8] {
    let mut out = [0u8; 8];
    out[..2].copy_from_slice(&0xFFFEu16.to_le_bytes());
    out[2..4].copy_from_slice(&element.to_le_bytes());
    out
}

/// A valid MR data set for `uid`, then `tail` appended (a hostile element after the
/// identifying attributes and pixel data).
fn dataset_with(uid: &str, tail: &[u8]) -> Vec<u8> {
    let mut ds = mr_dataset(uids::MR_IMAGE_STORAGE, Some(uid), STUDY, SERIES);
    ds.extend_from_slice(tail);
    ds
}

/// An association proposing MR Image Storage in `syntaxes`, and its context id.
async fn mr_association(address: &str, syntaxes: &[&str]) -> (RawScu, u8) {
    let scu = RawScu::connect(address, TEST_SCU_AE, &[(uids::MR_IMAGE_STORAGE, syntaxes)])
        .await
        .unwrap();
    let pc = scu.context_id(uids::MR_IMAGE_STORAGE);
    (scu, pc)
}

/// The attack is over: the node must be alive and serve a legitimate C-ECHO and C-STORE.
async fn assert_still_serving(node: &mut ChildNode, uid: &str) {
    assert!(node.is_alive(), "segnode died: {}", node.log_text());
    let mut scu = RawScu::connect(
        &node.ae_address(),
        TEST_SCU_AE,
        &[
            (uids::VERIFICATION, IMPLICIT),
            (uids::MR_IMAGE_STORAGE, EXPLICIT),
        ],
    )
    .await
    .expect("a legitimate peer associates");
    let echo = scu.c_echo(scu.context_id(uids::VERIFICATION), 1).await;
    assert!(
        matches!(
            echo,
            Command::EchoRsp {
                status: Status::SUCCESS,
                ..
            }
        ),
        "{echo:?}"
    );
    let pc = scu.context_id(uids::MR_IMAGE_STORAGE);
    let ds = mr_dataset(uids::MR_IMAGE_STORAGE, Some(uid), STUDY, SERIES);
    let rsp = scu.c_store(pc, 2, uids::MR_IMAGE_STORAGE, uid, &ds).await;
    assert_eq!(status(&rsp).0, Status::SUCCESS, "{rsp:?}");
    scu.release().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sequences_nested_100000_deep_get_c000_and_the_node_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = ChildNode::start(dir.path(), |_| {});
    let uid = "1.2.826.0.1.3680043.8.498.4244.1";
    let mut bomb = Vec::new();
    for _ in 0..100_000 {
        bomb.extend(long_header(0x0040, 0xA730, b"SQ", u32::MAX));
        bomb.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
    }
    for _ in 0..100_000 {
        bomb.extend_from_slice(&delimiter(0xE00D));
        bomb.extend_from_slice(&delimiter(0xE0DD));
    }
    let (mut scu, pc) = mr_association(&node.ae_address(), EXPLICIT).await;
    let rsp = scu
        .c_store(
            pc,
            1,
            uids::MR_IMAGE_STORAGE,
            uid,
            &dataset_with(uid, &bomb),
        )
        .await;
    let (st, comment) = status(&rsp);
    assert_eq!(st, Status::CANNOT_UNDERSTAND, "{rsp:?}");
    assert!(comment.unwrap().contains("nested"));
    scu.release().await;
    assert_still_serving(&mut node, "1.2.826.0.1.3680043.8.498.4244.2").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn declared_lengths_of_4_gib_cost_less_than_64_mib() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = ChildNode::start(dir.path(), |_| {});
    let before = node.memory_kib("VmHWM");
    let mut scu = RawScu::connect(
        &node.ae_address(),
        TEST_SCU_AE,
        &[
            (uids::MR_IMAGE_STORAGE, EXPLICIT),
            (uids::CT_IMAGE_STORAGE, IMPLICIT),
        ],
    )
    .await
    .unwrap();

    // Explicit VR: a private OB declaring 0xFFFFFFF0 bytes, then 16 bytes.
    let uid = "1.2.826.0.1.3680043.8.498.4245.1";
    let mut ob = long_header(0x0009, 0x1010, b"OB", 0xFFFF_FFF0);
    ob.extend_from_slice(&[0u8; 16]);
    let mut ds = mr_dataset(uids::MR_IMAGE_STORAGE, Some(uid), STUDY, SERIES);
    // Before the pixel data, so a parser meets it early.
    let at = ds.len() - (8 + 4 + 32);
    ds.splice(at..at, ob);
    let pc = scu.context_id(uids::MR_IMAGE_STORAGE);
    let rsp = scu.c_store(pc, 1, uids::MR_IMAGE_STORAGE, uid, &ds).await;
    assert_eq!(status(&rsp).0, Status::CANNOT_UNDERSTAND, "{rsp:?}");

    // Implicit VR: Patient's Name (PN) declaring 0xFFFFFFF0 bytes.
    let uid = "1.2.826.0.1.3680043.8.498.4245.2";
    let mut pn = vec![0x10, 0x00, 0x10, 0x00];
    pn.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    pn.extend_from_slice(b"Doe^Jane........");
    let pc = scu.context_id(uids::CT_IMAGE_STORAGE);
    let rsp = scu.c_store(pc, 2, uids::CT_IMAGE_STORAGE, uid, &pn).await;
    assert_eq!(status(&rsp).0, Status::CANNOT_UNDERSTAND, "{rsp:?}");
    scu.release().await;

    // A command set declaring 0xFFFFFFF0 bytes: the association is aborted.
    let mut scu = RawScu::connect(
        &node.ae_address(),
        TEST_SCU_AE,
        &[(uids::VERIFICATION, IMPLICIT)],
    )
    .await
    .unwrap();
    let mut cmd = vec![0x00, 0x00, 0x02, 0x00];
    cmd.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    cmd.extend_from_slice(&[b'1'; 24]);
    let pc = scu.context_id(uids::VERIFICATION);
    scu.send_pdv(pc, PDataValueType::Command, true, cmd).await;
    match scu.association.receive().await {
        Ok(Pdu::AbortRQ { .. }) => {}
        other => panic!("expected A-ABORT for a hostile command set, got {other:?}"),
    }

    let grown = node.memory_kib("VmHWM").saturating_sub(before);
    eprintln!("peak RSS grew by {grown} KiB over the three declared-length bombs");
    assert!(grown < 64 * MIB, "peak RSS grew by {grown} KiB");
    assert_still_serving(&mut node, "1.2.826.0.1.3680043.8.498.4245.3").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_1_gib_deflate_bomb_is_refused_while_it_inflates() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = ChildNode::start(dir.path(), |_| {});
    let before = node.memory_kib("VmHWM");
    let uid = "1.2.826.0.1.3680043.8.498.4246.1";
    // The data set: identity, then an OB of 1 GiB of zeros; deflated, about 1 MB.
    let mut plain = mr_dataset(uids::MR_IMAGE_STORAGE, Some(uid), STUDY, SERIES);
    plain.extend(long_header(0x0009, 0x1010, b"OB", 1 << 30));
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&plain).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        enc.write_all(&zeros).unwrap();
    }
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 8 << 20, "the bomb is {} bytes", bomb.len());

    let (mut scu, pc) = mr_association(&node.ae_address(), DEFLATED).await;
    let rsp = scu.c_store(pc, 1, uids::MR_IMAGE_STORAGE, uid, &bomb).await;
    let (st, comment) = status(&rsp);
    assert_eq!(st, Status::OUT_OF_RESOURCES, "{rsp:?}");
    assert!(comment.unwrap().contains("inflates"));
    scu.release().await;
    let grown = node.memory_kib("VmHWM").saturating_sub(before);
    eprintln!("peak RSS grew by {grown} KiB for a 1 GiB deflate bomb");
    assert!(grown < 64 * MIB, "peak RSS grew by {grown} KiB");
    assert_still_serving(&mut node, "1.2.826.0.1.3680043.8.498.4246.2").await;
}

/// Send a C-STORE command, then `total` bytes of data set in 16 KiB fragments (never
/// held whole here), and return the response.
async fn stream_store(address: String, uid: String, total: usize) -> Command {
    let (mut scu, pc) = mr_association(&address, EXPLICIT).await;
    scu.send_pdv(
        pc,
        PDataValueType::Command,
        true,
        store_rq(1, &uid).encode(),
    )
    .await;
    let head = mr_dataset(uids::MR_IMAGE_STORAGE, Some(&uid), STUDY, SERIES);
    let mut sent = 0;
    let chunk = vec![0u8; 16 * 1024];
    scu.send_pdv(pc, PDataValueType::Data, false, head.clone())
        .await;
    sent += head.len();
    while sent < total {
        let n = chunk.len().min(total - sent);
        sent += n;
        scu.send_pdv(pc, PDataValueType::Data, sent == total, chunk[..n].to_vec())
            .await;
    }
    let rsp = scu.read_response().await;
    scu.release().await;
    rsp
}

#[tokio::test(flavor = "multi_thread")]
async fn sixteen_associations_streaming_huge_data_sets_stay_within_the_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    // A 64 MiB budget, data sets over 8 MiB spilled, over 32 MiB discarded; 16 peers each
    // stream 96 MiB at once (1.5 GiB in all).
    let mut node = ChildNode::start(dir.path(), |c| {
        c.network.memory_budget_mb = 64;
        c.network.spill_above_mb = 8;
        c.network.max_dataset_mb = 32;
    });
    let before_rss = node.memory_kib("VmRSS");
    let before = node.memory_kib("VmHWM");
    let streams: Vec<_> = (0..16)
        .map(|i| {
            tokio::spawn(stream_store(
                node.ae_address(),
                format!("1.2.826.0.1.3680043.8.498.4247.{i}"),
                96 << 20,
            ))
        })
        .collect();
    // A legitimate peer is served while the streams run.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_still_serving(&mut node, "1.2.826.0.1.3680043.8.498.4247.100").await;
    for stream in streams {
        let rsp = stream.await.unwrap();
        let (st, comment) = status(&rsp);
        assert_eq!(st, Status::OUT_OF_RESOURCES, "{rsp:?}");
        assert!(comment.unwrap().contains("larger than 32 MiB"));
    }
    let peak = node.memory_kib("VmHWM");
    let grown = peak.saturating_sub(before);
    eprintln!(
        "16 x 96 MiB streamed: RSS before {before_rss} KiB, peak {peak} KiB (grew {grown} KiB; budget 65536 KiB)"
    );
    assert!(
        grown < (64 + 64) * MIB,
        "peak RSS grew by {grown} KiB, beyond the 64 MiB budget plus 64 MiB"
    );
    let left: Vec<_> = std::fs::read_dir(node.data_dir.join("tmp"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "spill files left behind: {left:?}");
    assert_still_serving(&mut node, "1.2.826.0.1.3680043.8.498.4247.101").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_trickled_byte_by_byte_is_cut_at_the_message_time_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = ChildNode::start(dir.path(), |c| {
        c.network.read_timeout_seconds = 5;
        c.network.message_timeout_seconds = 3;
    });
    let uid = "1.2.826.0.1.3680043.8.498.4248.1";
    let (mut scu, pc) = mr_association(&node.ae_address(), EXPLICIT).await;
    scu.send_pdv(pc, PDataValueType::Command, true, store_rq(1, uid).encode())
        .await;
    let started = Instant::now();
    // Two bytes a second: each PDU restarts the 5 s idle timeout, never the 3 s limit.
    let cut = loop {
        let pdu = Pdu::PData {
            data: vec![dicom_ul::pdu::PDataValue {
                presentation_context_id: pc,
                value_type: PDataValueType::Data,
                is_last: false,
                data: vec![0, 0],
            }],
        };
        if scu.association.send(&pdu).await.is_err() {
            break true;
        }
        if started.elapsed() > Duration::from_secs(20) {
            break false;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert!(cut, "the node let a message trickle for 20 s");
    let log = node.log_text();
    assert!(log.contains("network.message_timeout_seconds"), "{log}");
    assert_still_serving(&mut node, "1.2.826.0.1.3680043.8.498.4248.2").await;
}

/// Open a TCP connection from `local` to the node and say nothing.
async fn silent_socket(local: &str, port: u16) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    socket
        .connect(format!("127.0.0.1:{port}").parse().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_silent_sockets_do_not_stop_storescu_from_storing_a_study() {
    let dir = tempfile::tempdir().unwrap();
    let files = fixtures::mr_series(&dir.path().join("study"), 12, 32, 32, 77);
    // The default limits: 16 association slots, ARTIM 10 s, 16 pending per host.
    let mut node = ChildNode::start(dir.path(), |_| {});
    let mut silent = Vec::new();
    for i in 0..20 {
        // From other hosts, one each ...
        silent.push(silent_socket(&format!("127.0.0.{}", 10 + i), node.port).await);
    }
    for _ in 0..20 {
        // ... and twenty from one more host (four beyond its pending limit are closed).
        silent.push(silent_socket("127.0.0.99", node.port).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // DCMTK storescu with its default timeouts (30 s association timeout): before the
    // ARTIM timer and pending places, 16 silent sockets held every slot for 60 s.
    let out = storescu(node.port, TEST_SCU_AE, &[], &files).await;
    assert!(out.status.success(), "{}", common::describe(&out));
    // The silent ones are closed after ARTIM (10 s).
    let mut closed = 0;
    for mut s in silent {
        let mut buf = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_secs(15), s.read(&mut buf)).await {
            closed += 1;
        }
    }
    assert_eq!(
        closed, 40,
        "every silent socket is closed by ARTIM or the per-host limit"
    );
    assert!(node.log_text().contains("ARTIM"));
    assert_still_serving(&mut node, "1.2.826.0.1.3680043.8.498.4249.1").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_absurd_pdus_and_aborts_mid_data_set_are_still_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = ChildNode::start(dir.path(), |_| {});
    let port = node.port;
    let mut attacks: Vec<Vec<u8>> = vec![
        // Random bytes.
        (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect(),
        // An A-ASSOCIATE-RQ declaring a 4 GiB PDU.
        vec![0x01, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x01],
        // An unknown PDU type.
        vec![0x09, 0x00, 0x00, 0x00, 0x00, 0x04, 1, 2, 3, 4],
    ];
    // A P-DATA whose PDV declares more than its PDU holds (before association: refused).
    attacks.push(vec![
        0x04, 0x00, 0x00, 0x00, 0x00, 0x0A, 0x7F, 0xFF, 0xFF, 0xF0, 1, 3, 0, 0, 0, 0,
    ]);
    for attack in attacks {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let _ = s.write_all(&attack).await;
        let mut buf = vec![0u8; 1024];
        let closed = tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the node kept a garbage connection open");
    }
    // An A-ABORT in the middle of a data set: nothing stored.
    let uid = "1.2.826.0.1.3680043.8.498.4250.1";
    let (mut scu, pc) = mr_association(&node.ae_address(), EXPLICIT).await;
    scu.send_pdv(pc, PDataValueType::Command, true, store_rq(1, uid).encode())
        .await;
    let ds = mr_dataset(uids::MR_IMAGE_STORAGE, Some(uid), STUDY, SERIES);
    scu.send_pdv(pc, PDataValueType::Data, false, ds[..ds.len() / 2].to_vec())
        .await;
    scu.association.abort().await.unwrap();
    // A SOP class mismatch gets A900, a path in a UID gets C000.
    let (mut scu, pc) = mr_association(&node.ae_address(), EXPLICIT).await;
    let ct = mr_dataset(uids::CT_IMAGE_STORAGE, Some(uid), STUDY, SERIES);
    let rsp = scu.c_store(pc, 1, uids::MR_IMAGE_STORAGE, uid, &ct).await;
    assert_eq!(status(&rsp).0, Status::DATASET_DOES_NOT_MATCH_SOP_CLASS);
    let evil = "1.2.3/../../etc";
    let rsp = scu
        .c_store(
            pc,
            2,
            uids::MR_IMAGE_STORAGE,
            evil,
            &mr_dataset(uids::MR_IMAGE_STORAGE, Some(evil), STUDY, SERIES),
        )
        .await;
    assert_eq!(status(&rsp).0, Status::CANNOT_UNDERSTAND);
    scu.release().await;
    assert_still_serving(&mut node, "1.2.826.0.1.3680043.8.498.4250.2").await;
    assert!(
        !node
            .data_dir
            .join("instances")
            .join(STUDY)
            .join(SERIES)
            .join(format!("{uid}.dcm"))
            .exists(),
        "a refused or aborted instance was stored"
    );
}

//! The SCU against real peers: DCMTK's `storescp` (started per test on a free port, killed
//! on drop), a dicom-ul acceptor that rejects our calling AE, and sockets that refuse or
//! never answer.
//!
//! What must hold: C-ECHO succeeds; a folder of MR instances (nested, with a non-DICOM file)
//! arrives complete and unchanged over PDUs smaller than an instance; a JPEG-LS file reaches
//! an uncompressed-only peer decoded with identical pixels and a JPEG-LS peer as sent;
//! unreachable, silent, rejecting, aborting and stalling peers give clear errors or failed
//! instances within the timeouts, never a hang.

mod common;

use common::storescp::Storescp;
use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, open_file};
use segnode::ae::{AeTitle, Peer};
use segnode::dimse::Status;
use segnode::scu::{self, ScuError, ScuOptions};
use segnode::uids;

fn opts(timeout: Duration) -> ScuOptions {
    ScuOptions {
        calling_ae: AeTitle::parse("SEGNODE_TEST").unwrap(),
        max_pdu_length: 65_536,
        connect_timeout: timeout,
        read_timeout: timeout,
        write_timeout: timeout,
        tls: None,
    }
}

fn sop_instance(obj: &DefaultDicomObject) -> String {
    uids::trim_uid(
        &obj.element(tags::SOP_INSTANCE_UID)
            .unwrap()
            .to_str()
            .unwrap(),
    )
    .to_string()
}

/// Native pixel data bytes.
fn pixel_bytes(obj: &DefaultDicomObject) -> Vec<u8> {
    obj.element(tags::PIXEL_DATA)
        .unwrap()
        .to_bytes()
        .unwrap()
        .into_owned()
}

/// Received files by SOP Instance UID.
fn by_instance(paths: &[PathBuf]) -> HashMap<String, DefaultDicomObject> {
    paths
        .iter()
        .map(|p| {
            let obj = open_file(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (sop_instance(&obj), obj)
        })
        .collect()
}

fn write_series(dir: &Path, slices: usize, size: usize, seed: u64) -> Vec<PathBuf> {
    segnode::synth::write_mr_series(dir, slices, size, size, seed).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn echo_succeeds() {
    let scp = Storescp::start("STORESCP", &[]);
    let status = scu::echo(&scp.peer(), &opts(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(status, Status::SUCCESS);
}

#[tokio::test(flavor = "multi_thread")]
async fn folder_arrives_complete_and_unchanged() {
    // 4 KiB PDUs: every 64x64 16-bit instance (8 KiB of pixels) spans several PDUs.
    let scp = Storescp::start("STORESCP", &["-pdu", "4096"]);
    let src = tempfile::tempdir().unwrap();
    let root = src.path().join("study");
    let mut sources = write_series(&root.join("series1"), 5, 64, 1);
    sources.extend(write_series(&root.join("nested/deeper/series2"), 4, 64, 2));
    std::fs::write(
        root.join("nested/notes.txt"),
        b"not a DICOM file, long enough to have 132 bytes? no",
    )
    .unwrap();
    std::fs::write(root.join("README"), vec![b'x'; 400]).unwrap();
    let n = sources.len();

    let report = scu::send_paths(
        &scp.peer(),
        &opts(Duration::from_secs(10)),
        std::slice::from_ref(&root),
        false,
    )
    .await
    .unwrap();

    assert_eq!(report.sent, n, "{report:#?}");
    assert_eq!(report.failed, 0, "{report:#?}");
    assert_eq!(
        report.skipped.len(),
        2,
        "notes.txt and README are skipped: {report:#?}"
    );
    assert_eq!(report.statuses.get(&0x0000), Some(&n));
    assert!(report.bytes > (n * 64 * 64 * 2) as u64);
    let table = report.summary_table();
    assert!(table.contains("sent") && table.contains("MB/s"), "{table}");

    let received = by_instance(&scp.wait_for_files(n, Duration::from_secs(10)));
    assert_eq!(received.len(), n);
    for path in &sources {
        let original = open_file(path).unwrap();
        let uid = sop_instance(&original);
        let copy = received
            .get(&uid)
            .unwrap_or_else(|| panic!("{uid} did not arrive"));
        assert_eq!(
            copy.meta().media_storage_sop_class_uid(),
            uids::MR_IMAGE_STORAGE
        );
        assert_eq!(
            pixel_bytes(copy),
            pixel_bytes(&original),
            "pixels of {uid} differ"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn jpeg_ls_is_decoded_for_an_uncompressed_only_peer_and_kept_for_one_that_accepts_it() {
    let src = tempfile::tempdir().unwrap();
    let plain = write_series(&src.path().join("plain"), 2, 64, 7);
    let jls_dir = src.path().join("jls");
    std::fs::create_dir(&jls_dir).unwrap();
    let mut jls = Vec::new();
    for p in &plain {
        let out = jls_dir.join(p.file_name().unwrap());
        let status = Command::new("dcmcjpls")
            .arg(p)
            .arg(&out)
            .status()
            .expect("DCMTK dcmcjpls");
        assert!(status.success());
        assert_eq!(
            open_file(&out).unwrap().meta().transfer_syntax(),
            uids::JPEG_LS_LOSSLESS
        );
        jls.push(out);
    }

    // storescp's default accepts uncompressed syntaxes only: we must decode.
    let scp = Storescp::start("STORESCP", &[]);
    let report = scu::send_files(&scp.peer(), &opts(Duration::from_secs(10)), &jls)
        .await
        .unwrap();
    assert_eq!((report.sent, report.failed), (2, 0), "{report:#?}");
    let received = by_instance(&scp.wait_for_files(2, Duration::from_secs(10)));
    for p in &plain {
        let original = open_file(p).unwrap();
        let copy = &received[&sop_instance(&original)];
        assert!(
            uids::UNCOMPRESSED_TRANSFER_SYNTAXES.contains(&copy.meta().transfer_syntax()),
            "arrived as {}",
            copy.meta().transfer_syntax()
        );
        assert_eq!(
            pixel_bytes(copy),
            pixel_bytes(&original),
            "decoded pixels differ"
        );
    }

    // A peer that accepts JPEG-LS gets the compressed stream exactly as stored.
    let scp = Storescp::start("STORESCP", &["+xa"]);
    let report = scu::send_files(&scp.peer(), &opts(Duration::from_secs(10)), &jls)
        .await
        .unwrap();
    assert_eq!((report.sent, report.failed), (2, 0), "{report:#?}");
    let received = by_instance(&scp.wait_for_files(2, Duration::from_secs(10)));
    for p in &jls {
        let original = open_file(p).unwrap();
        let copy = &received[&sop_instance(&original)];
        assert_eq!(copy.meta().transfer_syntax(), uids::JPEG_LS_LOSSLESS);
        let fragments = |o: &DefaultDicomObject| {
            o.element(tags::PIXEL_DATA)
                .unwrap()
                .fragments()
                .unwrap()
                .to_vec()
        };
        assert_eq!(fragments(copy), fragments(&original));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_port_fails_fast_with_a_connect_error() {
    let peer: Peer = format!("NOBODY@127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let src = tempfile::tempdir().unwrap();
    let files = write_series(&src.path().join("s"), 1, 16, 3);
    let t0 = Instant::now();
    let err = scu::send_paths(&peer, &opts(Duration::from_secs(3)), &files, false)
        .await
        .unwrap_err();
    assert!(matches!(err, ScuError::Connect { .. }), "{err}");
    assert!(err.to_string().contains("cannot connect"), "{err}");
    let err = scu::echo(&peer, &opts(Duration::from_secs(3)))
        .await
        .unwrap_err();
    assert!(matches!(err, ScuError::Connect { .. }), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_peer_times_out_instead_of_hanging() {
    // The kernel completes the TCP handshake (backlog) but nobody ever answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let peer: Peer = format!("SILENT@127.0.0.1:{}", listener.local_addr().unwrap().port())
        .parse()
        .unwrap();
    let t0 = Instant::now();
    let err = scu::echo(&peer, &opts(Duration::from_secs(1)))
        .await
        .unwrap_err();
    assert!(matches!(err, ScuError::ConnectTimeout { .. }), "{err}");
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "took {:?}",
        t0.elapsed()
    );
    drop(listener);
}

/// Accepts one association request and rejects it: calling AE title not recognized.
struct OnlyKnownCallers;

impl dicom_ul::association::server::AccessControl for OnlyKnownCallers {
    fn check_access(
        &self,
        _this: &str,
        calling: &str,
        _called: &str,
        _identity: Option<&dicom_ul::pdu::UserIdentity>,
    ) -> Result<(), dicom_ul::pdu::AssociationRJServiceUserReason> {
        if calling.trim() == "KNOWN" {
            Ok(())
        } else {
            Err(dicom_ul::pdu::AssociationRJServiceUserReason::CallingAETitleNotRecognized)
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rejected_calling_ae_is_a_clear_error() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (socket, _) = listener.accept().unwrap();
        let options = dicom_ul::ServerAssociationOptions::new()
            .ae_access_control(OnlyKnownCallers)
            .ae_title("STRICT")
            .with_abstract_syntax(uids::VERIFICATION);
        assert!(
            options.establish(socket).is_err(),
            "the acceptor must reject"
        );
    });
    let peer: Peer = format!("STRICT@127.0.0.1:{port}").parse().unwrap();
    let err = scu::echo(&peer, &opts(Duration::from_secs(5)))
        .await
        .unwrap_err();
    server.join().unwrap();
    assert!(matches!(err, ScuError::Rejected { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("calling AE title not recognized"), "{msg}");
    assert!(
        msg.contains("SEGNODE_TEST"),
        "the hint names our calling AE: {msg}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn peer_abort_fails_every_remaining_instance() {
    // storescp aborts the association after receiving the first C-STORE-RQ.
    let scp = Storescp::start("STORESCP", &["--abort-after"]);
    let src = tempfile::tempdir().unwrap();
    let files = write_series(&src.path().join("s"), 3, 32, 4);
    let report = scu::send_files(&scp.peer(), &opts(Duration::from_secs(5)), &files)
        .await
        .unwrap();
    assert_eq!((report.sent, report.failed), (0, 3), "{report:#?}");
    assert!(
        report.failures[0].1.contains("aborted"),
        "{:?}",
        report.failures
    );
    for (_, reason) in &report.failures[1..] {
        assert!(
            reason.starts_with("not sent:") && reason.contains("aborted"),
            "{reason}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stalled_response_times_out() {
    // storescp sleeps 10 s while receiving each instance; our read timeout is 1 s.
    let scp = Storescp::start("STORESCP", &["--sleep-during", "10"]);
    let src = tempfile::tempdir().unwrap();
    let files = write_series(&src.path().join("s"), 2, 32, 5);
    let t0 = Instant::now();
    let report = scu::send_files(&scp.peer(), &opts(Duration::from_secs(1)), &files)
        .await
        .unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(6),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!((report.sent, report.failed), (0, 2), "{report:#?}");
    assert!(
        report.failures[0].1.contains("C-STORE-RSP"),
        "{:?}",
        report.failures
    );
}

/// Throughput of one association to storescp: `cargo test --test scu_storescp -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark"]
async fn throughput_200_mr_256() {
    let scp = Storescp::start("STORESCP", &["-pdu", "131072"]);
    let src = tempfile::tempdir().unwrap();
    let files = write_series(&src.path().join("s"), 200, 256, 9);
    let report = scu::send_paths(&scp.peer(), &opts(Duration::from_secs(30)), &files, false)
        .await
        .unwrap();
    assert_eq!((report.sent, report.failed), (200, 0));
    println!("{}", report.summary_table());
}

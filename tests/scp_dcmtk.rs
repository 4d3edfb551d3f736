//! The Storage SCP against DCMTK, the reference peer: `echoscu` gets success, and `storescu`
//! stores every transfer syntax segnode accepts (uncompressed explicit and implicit VR,
//! deflated, JPEG lossless, JPEG-LS, RLE, JPEG 2000). For each: the index counts are
//! exact, every instance's file exists with the negotiated transfer syntax in its meta,
//! and its decoded pixels equal the original's. A 200-instance run over one association
//! reports the ingest throughput.

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use common::fixtures::{self, Pixels};
use common::{NODE_AE, TEST_SCU_AE, TestNode, describe, echoscu, storescu, storescu_with_env};
use segnode::ingest::IngestEvent;
use segnode::uids;

#[tokio::test(flavor = "multi_thread")]
async fn echoscu_gets_success() {
    let mut node = TestNode::start(|_| {}).await;
    let out = echoscu(node.port(), TEST_SCU_AE, NODE_AE).await;
    assert!(out.status.success(), "echoscu failed: {}", describe(&out));
    let summary = node.stop().await;
    assert_eq!(summary.associations, 1);
    assert_eq!(summary.associations_aborted, 0);
    assert_eq!(node.counts().instances, 0);
}

/// Send `files` with `storescu options`, then check that each one is stored exactly once
/// in `expected_ts` and decodes to the pixels of the matching `originals`.
async fn store_and_verify(
    options: &[&str],
    files: &[PathBuf],
    originals: &[PathBuf],
    expected_ts: &str,
) {
    let mut node = TestNode::start(|_| {}).await;
    let out = storescu(node.port(), TEST_SCU_AE, options, files).await;
    assert!(
        out.status.success(),
        "storescu {options:?} failed: {}",
        describe(&out)
    );
    let summary = node.stop().await;
    assert_eq!(summary.store_failures, 0, "{summary:?}");

    let counts = node.counts();
    assert_eq!(counts.instances, files.len() as u64, "{counts:?}");
    assert_eq!((counts.studies, counts.series), (1, 1), "{counts:?}");
    assert_eq!(summary.instances_stored, files.len() as u64);

    for (sent, original) in files.iter().zip(originals) {
        let uid = fixtures::sop_instance_uid(sent);
        let record = node
            .spool
            .instance(&uid)
            .unwrap()
            .unwrap_or_else(|| panic!("{uid} is not in the index"));
        assert!(
            record.path.is_file(),
            "{} is missing",
            record.path.display()
        );
        assert_eq!(
            record.transfer_syntax_uid, expected_ts,
            "index transfer syntax of {uid}"
        );
        assert_eq!(
            fixtures::transfer_syntax(&record.path),
            expected_ts,
            "meta transfer syntax of {uid}"
        );
        assert_eq!(fixtures::sop_instance_uid(&record.path), uid);
        let (stored, expected): (Pixels, Pixels) =
            (fixtures::pixels(&record.path), fixtures::pixels(original));
        assert_eq!(
            (stored.rows, stored.cols),
            (expected.rows, expected.cols),
            "{uid}"
        );
        assert!(
            stored.values == expected.values,
            "decoded pixels of {uid} differ from the original"
        );
    }
    let stored_events = node
        .events()
        .iter()
        .filter(|e| matches!(e, IngestEvent::InstanceStored { .. }))
        .count();
    assert_eq!(stored_events, files.len());
}

fn originals(dir: &Path, seed: u64) -> Vec<PathBuf> {
    fixtures::mr_series(&dir.join("original"), 4, 96, 80, seed)
}

#[tokio::test(flavor = "multi_thread")]
async fn storescu_explicit_little_endian() {
    let dir = tempfile::tempdir().unwrap();
    let files = originals(dir.path(), 11);
    assert_eq!(fixtures::transfer_syntax(&files[0]), uids::EXPLICIT_VR_LE);
    store_and_verify(&[], &files, &files, uids::EXPLICIT_VR_LE).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn storescu_implicit_little_endian() {
    let dir = tempfile::tempdir().unwrap();
    let files = originals(dir.path(), 12);
    // -xi: propose Implicit VR Little Endian only; storescu converts on the fly.
    store_and_verify(&["-xi"], &files, &files, uids::IMPLICIT_VR_LE).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn storescu_deflated_explicit_little_endian() {
    let dir = tempfile::tempdir().unwrap();
    let files = originals(dir.path(), 13);
    let deflated =
        fixtures::dcmtk_convert("dcmconv", &["+td"], &files, &dir.path().join("deflated")).await;
    assert_eq!(
        fixtures::transfer_syntax(&deflated[0]),
        uids::DEFLATED_EXPLICIT_VR_LE
    );
    store_and_verify(&["-xd"], &deflated, &files, uids::DEFLATED_EXPLICIT_VR_LE).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn storescu_jpeg_lossless() {
    let dir = tempfile::tempdir().unwrap();
    let files = originals(dir.path(), 14);
    let jpeg =
        fixtures::dcmtk_convert("dcmcjpeg", &["+e1"], &files, &dir.path().join("jpeg")).await;
    assert_eq!(fixtures::transfer_syntax(&jpeg[0]), uids::JPEG_LOSSLESS_SV1);
    store_and_verify(&["-xs"], &jpeg, &files, uids::JPEG_LOSSLESS_SV1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn storescu_jpeg_ls_lossless() {
    let dir = tempfile::tempdir().unwrap();
    let files = originals(dir.path(), 15);
    let jls = fixtures::dcmtk_convert("dcmcjpls", &["+el"], &files, &dir.path().join("jls")).await;
    assert_eq!(fixtures::transfer_syntax(&jls[0]), uids::JPEG_LS_LOSSLESS);
    store_and_verify(&["-xt"], &jls, &files, uids::JPEG_LS_LOSSLESS).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn storescu_rle_lossless() {
    let dir = tempfile::tempdir().unwrap();
    let files = originals(dir.path(), 16);
    let rle = fixtures::dcmtk_convert("dcmcrle", &[], &files, &dir.path().join("rle")).await;
    assert_eq!(fixtures::transfer_syntax(&rle[0]), uids::RLE_LOSSLESS);
    store_and_verify(&["-xr"], &rle, &files, uids::RLE_LOSSLESS).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn storescu_jpeg_2000_lossless() {
    let dir = tempfile::tempdir().unwrap();
    let files = originals(dir.path(), 17);
    // DCMTK 3.6.7 has no JPEG 2000 encoder: the inputs are encoded in Rust (openjp2).
    let j2k = fixtures::j2k_convert(&files, &dir.path().join("j2k"));
    assert_eq!(fixtures::transfer_syntax(&j2k[0]), uids::JPEG_2000_LOSSLESS);
    // The encoder itself must be lossless, or the comparison below proves nothing.
    assert_eq!(fixtures::pixels(&j2k[0]), fixtures::pixels(&files[0]));
    store_and_verify(&["-xv"], &j2k, &files, uids::JPEG_2000_LOSSLESS).await;
}

/// 200 instances of 256x256 over one association, twice: storescu as it comes (Nagle on
/// its side) and with DCMTK's `TCP_NODELAY=1`. Everything is stored, the events say so,
/// and the throughput is printed (run with `--nocapture` to see it).
#[tokio::test(flavor = "multi_thread")]
async fn storescu_200_instances_over_one_association() {
    let dir = tempfile::tempdir().unwrap();
    let files = fixtures::mr_series(dir.path(), 200, 256, 256, 21);
    let bytes: u64 = files.iter().map(|f| f.metadata().unwrap().len()).sum();
    let study = fixtures::attribute(&files[0], dicom_dictionary_std::tags::STUDY_INSTANCE_UID);

    for env in [&[][..], &[("TCP_NODELAY", "1")][..]] {
        let mut node = TestNode::start(|_| {}).await;
        let started = Instant::now();
        let out = storescu_with_env(node.port(), TEST_SCU_AE, &[], &files, env).await;
        let secs = started.elapsed().as_secs_f64();
        assert!(out.status.success(), "storescu failed: {}", describe(&out));
        let summary = node.stop().await;
        eprintln!(
            "ingest (storescu env {env:?}): {} instances, {:.1} MB in {:.2} s over one association: \
             {:.0} instances/s, {:.1} MB/s",
            files.len(),
            bytes as f64 / 1e6,
            secs,
            files.len() as f64 / secs,
            bytes as f64 / 1e6 / secs
        );

        assert_eq!(node.counts().instances, 200);
        assert_eq!(summary.instances_stored, 200);
        assert_eq!(summary.associations, 1);
        let events = node.events();
        let stored = events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    IngestEvent::InstanceStored {
                        replaced: false,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(stored, 200);
        // Each event says who sent it and which of the node's titles it was sent to.
        assert!(events.iter().all(|e| match e {
            IngestEvent::InstanceStored { origin, .. } => {
                origin.calling_ae == TEST_SCU_AE
                    && origin.called_ae == NODE_AE
                    && origin.association_id.is_some()
            }
            IngestEvent::AssociationReleased { .. } => true,
        }));
        let released: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                IngestEvent::AssociationReleased {
                    study_uids,
                    calling_ae,
                    ..
                } => Some((study_uids.clone(), calling_ae.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            released,
            vec![(vec![study.clone()], TEST_SCU_AE.to_string())]
        );
    }
}

/// Small instances from a peer with Nagle's algorithm on (DCMTK's default) must not wait
/// for delayed ACKs: without the socket tuning in `scp::tcp` each one stalls ~40 ms
/// (300 took 16 s); with it they take well under a second on an idle machine.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread")]
async fn storescu_small_instances_do_not_stall_on_delayed_acks() {
    let dir = tempfile::tempdir().unwrap();
    let files = fixtures::mr_series(dir.path(), 300, 64, 64, 22);
    let mut node = TestNode::start(|_| {}).await;
    let started = Instant::now();
    let out = storescu(node.port(), TEST_SCU_AE, &[], &files).await;
    let secs = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "storescu failed: {}", describe(&out));
    node.stop().await;
    assert_eq!(node.counts().instances, 300);
    eprintln!("300 instances of 64x64 from storescu in {secs:.2} s");
    assert!(
        secs < 8.0,
        "300 small instances took {secs:.1} s: delayed-ACK stalls are back"
    );
}

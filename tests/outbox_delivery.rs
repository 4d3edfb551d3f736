//! The outbox against a real peer: DCMTK's `storescp` as the destination of the DCE
//! pipeline, the node running in-process on a small synthetic study.
//!
//! What must hold: the SEG arrives exactly once (same SOP Instance UID as the job's SEG);
//! a destination that is down at first and comes up later still gets it exactly once
//! (after retries); a destination that never comes up ends in a dead letter visible in
//! `segnode status`; a delivery pending when the node stops is made by the next node on
//! the same data folder.

mod common;

use common::node::{dimse_destination, spawn_node};
use common::storescp::Storescp;
use std::path::Path;
use std::time::{Duration, Instant};

use dicom_dictionary_std::tags;
use segnode::config::Config;
use segnode::spool::{DeliveryState, OutboxRecord, Spool};
use segnode::synth::{Orientation, SynthStudy};

/// Every wait is bounded by this.
const LIMIT: Duration = Duration::from_secs(60);
/// The node stops within this, because the outbox must never hold shutdown up.
const STOP_LIMIT: Duration = Duration::from_secs(20);

/// The node config ([`common::node::node_config`]): the DCE pipeline with
/// `output.destinations = ["store"]`, storescp on `store_port` as the destination, short
/// network timeouts, the given retry policy.
fn node_config(dir: &Path, store_port: u16, initial_delay: u64, max_attempts: u32) -> Config {
    let mut config = common::node::node_config(dir);
    common::dce::pipelines_dir(
        dir,
        "dce_breast",
        &[("destinations = []", "destinations = [\"store\"]")],
    );
    config.network.connect_timeout_seconds = 5;
    config.network.read_timeout_seconds = 10;
    config
        .destinations
        .push(dimse_destination("store", "STORE", store_port));
    config.outbox.initial_delay_seconds = initial_delay;
    config.outbox.max_delay_seconds = 2;
    config.outbox.max_attempts = max_attempts;
    config
}

fn small_study(dir: &Path, seed: u64) -> SynthStudy {
    common::dce::small_study(dir, Orientation::Axial, seed, false)
}

/// The study's outbox rows, read beside the running node.
fn outbox_rows(spool_dir: &Path, study_uid: &str) -> Vec<OutboxRecord> {
    match Spool::open_existing(spool_dir) {
        Ok(spool) => spool.outbox().of_study(study_uid).unwrap(),
        Err(_) => Vec::new(),
    }
}

/// Wait (bounded) until the study's only outbox row satisfies `done`; return it.
async fn wait_row(
    spool_dir: &Path,
    study_uid: &str,
    what: &str,
    done: impl Fn(&OutboxRecord) -> bool,
) -> OutboxRecord {
    let deadline = Instant::now() + LIMIT;
    loop {
        let rows = outbox_rows(spool_dir, study_uid);
        assert!(rows.len() <= 1, "one row per SEG and destination: {rows:?}");
        if let Some(row) = rows.into_iter().next().filter(|r| done(r)) {
            return row;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            outbox_rows(spool_dir, study_uid)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The job's SEG arrived at storescp exactly once, with the job's SOP Instance UID.
fn assert_arrived_once(scp: &Storescp, spool_dir: &Path, study_uid: &str) {
    let spool = Spool::open_existing(spool_dir).unwrap();
    let jobs = spool.jobs().of_study(study_uid).unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let seg_uid = jobs[0].seg_sop_instance_uid.clone().expect("job done");
    let files = scp.files();
    assert_eq!(
        files.len(),
        1,
        "exactly one file at the destination: {files:?}"
    );
    let obj = dicom_object::open_file(&files[0]).unwrap();
    let uid = obj
        .element(tags::SOP_INSTANCE_UID)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches('\0')
        .to_string();
    assert_eq!(uid, seg_uid, "the destination holds the job's SEG");
    let class = obj.element(tags::SOP_CLASS_UID).unwrap().to_str().unwrap();
    assert_eq!(
        class.trim_end_matches('\0'),
        segnode::uids::SEGMENTATION_STORAGE
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seg_is_delivered_once() {
    let tmp = tempfile::tempdir().unwrap();
    let study = small_study(&tmp.path().join("study"), 31);
    let scp = Storescp::start_on(common::free_port(), "STORE", &["+uf"]);
    let spool_dir = tmp.path().join("spool");
    let node = spawn_node(node_config(tmp.path(), scp.port, 2, 10)).await;
    node.send(&study.files).await;

    let row = wait_row(&spool_dir, &study.study_uid, "delivery", |r| {
        r.state != DeliveryState::Pending
    })
    .await;
    assert_eq!(
        (row.state.as_str(), row.attempts, row.destination.as_str()),
        ("delivered", 1, "store"),
        "{row:?}"
    );
    assert!(row.delivered_ms.is_some() && row.last_error.is_none());
    assert!(
        row.seg_path.is_file(),
        "the outbox copy stays in the results folder"
    );
    assert_arrived_once(&scp, &spool_dir, &study.study_uid);

    let summary = node.stop_within(STOP_LIMIT).await;
    assert_eq!(summary.outbox.delivered, 1);
    assert_eq!(summary.outbox.dead, 0);
    assert_arrived_once(&scp, &spool_dir, &study.study_uid);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destination_down_then_up_gets_the_seg_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let study = small_study(&tmp.path().join("study"), 32);
    let port = common::free_port();
    let spool_dir = tmp.path().join("spool");
    let node = spawn_node(node_config(tmp.path(), port, 1, 10)).await;
    node.send(&study.files).await;

    // The SEG is queued and the first attempt fails: nothing listens.
    let row = wait_row(&spool_dir, &study.study_uid, "a failed attempt", |r| {
        r.attempts >= 1
    })
    .await;
    assert_eq!(row.state, DeliveryState::Pending, "{row:?}");
    assert!(row.last_error.is_some(), "{row:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let scp = Storescp::start_on(port, "STORE", &["+uf"]);

    let row = wait_row(&spool_dir, &study.study_uid, "delivery", |r| {
        r.state != DeliveryState::Pending
    })
    .await;
    assert_eq!(row.state, DeliveryState::Delivered, "{row:?}");
    assert!(row.attempts >= 2, "{row:?}");
    assert_arrived_once(&scp, &spool_dir, &study.study_uid);
    let summary = node.stop_within(STOP_LIMIT).await;
    assert_eq!((summary.outbox.delivered, summary.outbox.dead), (1, 0));
    assert!(summary.outbox.retried >= 1);
    assert_arrived_once(&scp, &spool_dir, &study.study_uid);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destination_that_never_answers_ends_in_a_visible_dead_letter() {
    let tmp = tempfile::tempdir().unwrap();
    let study = small_study(&tmp.path().join("study"), 33);
    let spool_dir = tmp.path().join("spool");
    let node = spawn_node(node_config(tmp.path(), common::free_port(), 1, 2)).await;
    node.send(&study.files).await;

    let row = wait_row(&spool_dir, &study.study_uid, "the dead letter", |r| {
        r.state != DeliveryState::Pending
    })
    .await;
    assert_eq!((row.state.as_str(), row.attempts), ("dead", 2), "{row:?}");
    let error = row.last_error.clone().expect("the reason is kept");
    assert!(
        error.contains("127.0.0.1"),
        "the error names the peer: {error}"
    );

    let report = segnode::spool::status_report(&spool_dir).unwrap();
    let line = report
        .lines()
        .find(|l| l.contains("outbox"))
        .unwrap_or_else(|| panic!("no outbox line in\n{report}"));
    assert!(
        line.contains("store") && line.contains("dead") && line.contains("2 attempt"),
        "{line}"
    );
    assert!(line.contains(&error), "{line}");

    // Dead means dead: no further attempts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(outbox_rows(&spool_dir, &study.study_uid)[0].attempts, 2);
    let summary = node.stop_within(STOP_LIMIT).await;
    assert_eq!((summary.outbox.delivered, summary.outbox.dead), (0, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_pending_at_shutdown_is_made_by_the_next_node() {
    let tmp = tempfile::tempdir().unwrap();
    let study = small_study(&tmp.path().join("study"), 34);
    let port = common::free_port();
    let spool_dir = tmp.path().join("spool");
    let config = node_config(tmp.path(), port, 1, 10);

    let node = spawn_node(config.clone()).await;
    node.send(&study.files).await;
    let row = wait_row(&spool_dir, &study.study_uid, "a failed attempt", |r| {
        r.attempts >= 1
    })
    .await;
    assert_eq!(row.state, DeliveryState::Pending);
    let first = node.stop_within(STOP_LIMIT).await;
    assert_eq!(first.pipelines.completed.len(), 1);
    assert_eq!(first.outbox.delivered, 0);
    assert_eq!(
        outbox_rows(&spool_dir, &study.study_uid)[0].state,
        DeliveryState::Pending
    );

    // The destination comes up; a new node on the same data folder delivers, unprompted.
    let scp = Storescp::start_on(port, "STORE", &["+uf"]);
    let node = spawn_node(config).await;
    let row = wait_row(&spool_dir, &study.study_uid, "delivery", |r| {
        r.state != DeliveryState::Pending
    })
    .await;
    assert_eq!(row.state, DeliveryState::Delivered, "{row:?}");
    assert!(row.attempts >= 2, "{row:?}");
    assert_arrived_once(&scp, &spool_dir, &study.study_uid);
    let second = node.stop_within(STOP_LIMIT).await;
    assert_eq!(second.outbox.delivered, 1);
    assert!(second.pipelines.completed.is_empty(), "no second job");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_naming_an_unknown_destination_stops_the_node_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = node_config(tmp.path(), common::free_port(), 1, 10);
    config.destinations.clear();
    let err = common::node::spawn_node_error(config).await.to_string();
    assert!(
        err.contains("dce_breast") && err.contains("\"store\"") && err.contains("[[destinations]]"),
        "{err}"
    );
}

/// A destination with `tls = { … }` gets the SEG over DICOM TLS (storescp `+tls`, client
/// certificate required), and the delivery is audited as DICOM Instances Transferred sent.
#[tokio::test(flavor = "multi_thread")]
async fn the_seg_is_delivered_over_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let study = small_study(&tmp.path().join("study"), 35);
    let mut scp_args = vec!["+uf".to_string()];
    scp_args.extend(common::tls::dcmtk_tls_args("peer"));
    let scp_args: Vec<&str> = scp_args.iter().map(String::as_str).collect();
    let scp = Storescp::start_on(common::free_port(), "STORE", &scp_args);
    let spool_dir = tmp.path().join("spool");
    let audit_file = tmp.path().join("audit.jsonl");
    let mut config = node_config(tmp.path(), scp.port, 1, 3);
    config.destinations[0].tls = Some(common::tls::client_config(Some("segnode")));
    config.audit.enabled = true;
    config.audit.file = Some(audit_file.clone());
    let node = spawn_node(config).await;
    node.send(&study.files).await;

    let row = wait_row(&spool_dir, &study.study_uid, "delivery", |r| {
        r.state != DeliveryState::Pending
    })
    .await;
    assert_eq!(
        (row.state.as_str(), row.attempts),
        ("delivered", 1),
        "{row:?}"
    );
    assert_arrived_once(&scp, &spool_dir, &study.study_uid);
    let summary = node.stop_within(STOP_LIMIT).await;
    assert_eq!(summary.outbox.delivered, 1);

    let audit = std::fs::read_to_string(&audit_file).unwrap();
    let sent: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("110104") && l.contains("EventActionCode=\\\"R\\\""))
        .collect();
    assert_eq!(sent.len(), 1, "one transfer audited as sent:\n{audit}");
    assert!(
        sent[0].contains(&study.study_uid) && sent[0].contains("UserID=\\\"STORE\\\""),
        "{}",
        sent[0]
    );
}

//! `kill -9` of `segnode serve`, in the middle of ingest, right after the last
//! acknowledgement and in the middle of a job: after a restart on the same spool every
//! acknowledged instance is there, the study completes and exactly one SEG comes out. The real
//! binary runs as a child process (`common::child_node`, on the config the other node suites
//! use, written as TOML); nothing here is simulated in-process.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::child_node::{BIN, ChildNode};
use segnode::config::Config;
use segnode::spool::{JobState, Spool};
use segnode::synth::Orientation;

/// The test node's config ([`common::node::node_config`] under `dir`) running the shipped
/// `pipeline` sized for small test studies, stable after 2 s; `None`: a node that only
/// stores.
fn node_config(dir: &Path, pipeline: Option<&str>) -> Config {
    let mut config = common::node::node_config(dir);
    common::dce::pipelines_dir(
        dir,
        pipeline.unwrap_or("dce_breast"),
        &[("stable_seconds = 30", "stable_seconds = 2")],
    );
    config.pipelines.enabled = pipeline.map(str::to_string).into_iter().collect();
    config
}

fn send(node: &ChildNode, dir: &Path) -> Child {
    Command::new(BIN)
        .args(["send", &node.ae_address()])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Send the study in `dir` and wait: every instance must be acknowledged.
fn send_all(node: &ChildNode, dir: &Path) {
    let status = send(node, dir).wait().unwrap();
    assert!(
        status.success(),
        "segnode send: {status} (an instance was refused)"
    );
}

fn study(dir: &Path, seed: u64) -> segnode::synth::SynthStudy {
    common::dce::small_study(dir, Orientation::Axial, seed, false)
}

#[test]
fn kill_9_during_ingest_then_resend_gives_exactly_one_seg() {
    let tmp = tempfile::tempdir().unwrap();
    let s = study(&tmp.path().join("study"), 31);
    let config = node_config(tmp.path(), Some("dce_breast"));
    let spool_dir = config.node.data_dir.clone();

    let mut node = ChildNode::start_with(tmp.path(), &config);
    let mut sender = send(&node, &tmp.path().join("study"));
    node.wait_for(
        "the first instances to be stored",
        Duration::from_secs(60),
        |_| {
            Spool::open_existing(&spool_dir)
                .and_then(|sp| sp.counts())
                .is_ok_and(|c| c.instances >= 10)
                .then_some(())
        },
    );
    node.kill9();
    let _ = sender.wait();
    let stored_before = Spool::open_existing(&spool_dir)
        .unwrap()
        .counts()
        .unwrap()
        .instances;
    assert!(
        stored_before < s.files.len() as u64,
        "the kill came before the study was complete ({stored_before})"
    );
    assert!(node.results().is_empty());

    // Restart; the sender sends the study again (what it sent unacknowledged, and more).
    let mut node = ChildNode::start_with(tmp.path(), &config);
    send_all(&node, &tmp.path().join("study"));
    node.wait_for("the SEG", Duration::from_secs(120), |n| {
        (!n.results().is_empty()).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3)); // a second SEG would show up by now
    node.kill9();

    let spool = Spool::open_existing(&spool_dir).unwrap();
    assert_eq!(
        spool.counts().unwrap().instances,
        s.files.len() as u64,
        "no instance lost or doubled"
    );
    assert_eq!(
        node.results().len(),
        1,
        "exactly one SEG; log:\n{}",
        node.log_text()
    );
    let jobs = spool.jobs().of_study(&s.study_uid).unwrap();
    assert_eq!(
        jobs.iter().filter(|j| j.state == JobState::Done).count(),
        1,
        "{jobs:?}"
    );
}

/// The acknowledgement comes after the journal append; the file and the index row after
/// that. A kill right after the sender's last success leaves the journal unretired (the
/// filer retires only once the node is quiet), and the restart files every instance from
/// it: all of them are there, readable, each counted once.
#[test]
fn kill_9_right_after_the_last_acknowledgement_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let s = study(&tmp.path().join("study"), 33);
    // A node that only stores (a job would read the spool and so wait for the filer).
    let config = node_config(tmp.path(), None);

    let mut node = ChildNode::start_with(tmp.path(), &config);
    send_all(&node, &tmp.path().join("study"));
    node.kill9();

    let mut node = ChildNode::start_with(tmp.path(), &config);
    node.kill9();
    let log_text = node.log_text();
    assert!(
        log_text.contains("journal replayed"),
        "the kill left acknowledged instances in the journal; log:\n{log_text}"
    );
    let spool = Spool::open_existing(&node.data_dir).unwrap();
    assert_eq!(spool.counts().unwrap().instances, s.files.len() as u64);
    for series in spool.series_of_study(&s.study_uid).unwrap() {
        for instance in spool.instances_of_series(&series.series_uid).unwrap() {
            assert_eq!(instance.times_received, 1, "{}", instance.sop_instance_uid);
            let file = dicom_object::open_file(&instance.path)
                .unwrap_or_else(|e| panic!("{} unreadable: {e}", instance.path.display()));
            assert_eq!(
                file.meta().media_storage_sop_instance_uid(),
                instance.sop_instance_uid
            );
        }
    }
}

#[test]
fn kill_9_during_a_job_then_restart_runs_it_again_once() {
    let tmp = tempfile::tempdir().unwrap();
    let s = study(&tmp.path().join("study"), 32);
    // The SwinUNETR pipeline takes seconds per job on a CPU: a kill lands inside it.
    let config = node_config(tmp.path(), Some("dce_breast_swinunetr"));
    let spool_dir = config.node.data_dir.clone();

    let mut node = ChildNode::start_with(tmp.path(), &config);
    send_all(&node, &tmp.path().join("study"));
    node.wait_for("the job to start", Duration::from_secs(60), |_| {
        Spool::open_existing(&spool_dir)
            .and_then(|sp| sp.jobs().of_study(&s.study_uid))
            .is_ok_and(|jobs| jobs.iter().any(|j| j.state == JobState::Running))
            .then_some(())
    });
    node.kill9();
    assert!(
        node.results().is_empty(),
        "killed before the SEG was written"
    );

    let mut node = ChildNode::start_with(tmp.path(), &config);
    node.wait_for("the SEG after the restart", Duration::from_secs(180), |n| {
        (!n.results().is_empty()).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    node.kill9();

    assert_eq!(
        node.results().len(),
        1,
        "exactly one SEG; log:\n{}",
        node.log_text()
    );
    let jobs = Spool::open_existing(&spool_dir)
        .unwrap()
        .jobs()
        .of_study(&s.study_uid)
        .unwrap();
    let states: Vec<&str> = jobs.iter().map(|j| j.state.as_str()).collect();
    assert_eq!(
        states,
        ["failed", "done"],
        "the interrupted job is recorded, then run again: {jobs:?}"
    );
    assert_eq!(
        jobs[0].error.as_deref(),
        Some(segnode::pipeline::recovery::INTERRUPTED)
    );
}

//! `kill -9` of `segnode serve`, in the middle of ingest, right after the last
//! acknowledgement and in the middle of a job: after a restart on the same spool every
//! acknowledged instance is there, the study completes and exactly one SEG comes out. The real
//! binary runs as a child process; nothing here is simulated in-process.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use segnode::spool::{JobState, Spool};
use segnode::synth::Orientation;

const BIN: &str = env!("CARGO_BIN_EXE_segnode");

/// Config file for a node with its spool under `dir`, running the shipped `pipeline`
/// sized for small test studies, stable after 2 s; `None`: a node that only stores.
fn write_config(dir: &Path, pipeline: Option<&str>, port: u16) -> PathBuf {
    let definitions = common::dce::pipelines_dir(
        dir,
        pipeline.unwrap_or("dce_breast"),
        &[("stable_seconds = 30", "stable_seconds = 2")],
    );
    let enabled = pipeline.map(|p| format!("'{p}'")).unwrap_or_default();
    let config = dir.join("segnode.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nae_title = 'SEGNODE'\nbind = '127.0.0.1'\nport = {port}\ndata_dir = '{}'\n\
             [storage]\nmin_free_disk_mb = 0\n\
             [pipelines]\nenabled = [{enabled}]\ndefinitions_dir = '{}'\nmodels_dir = '{}'\n",
            dir.join("spool").display(),
            definitions.display(),
            common::dce::models_dir().display()
        ),
    )
    .unwrap();
    config
}

/// `segnode serve` as a child; killed with SIGKILL on drop if still running.
struct Node(Child);

impl Node {
    fn start(config: &Path, log: &Path) -> Node {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Node(child)
    }

    fn wait_ready(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = Command::new(BIN)
                .args([
                    "echo",
                    &format!("SEGNODE@127.0.0.1:{port}"),
                    "--timeout",
                    "2",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .success();
            if ok {
                return;
            }
            assert!(
                self.0.try_wait().unwrap().is_none(),
                "segnode exited during start-up"
            );
            assert!(
                Instant::now() < deadline,
                "segnode did not answer C-ECHO within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill9(&mut self) {
        let _ = self.0.kill(); // SIGKILL
        let _ = self.0.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn send(port: u16, dir: &Path) -> Child {
    Command::new(BIN)
        .args(["send", &format!("SEGNODE@127.0.0.1:{port}")])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Send the study in `dir` and wait: every instance must be acknowledged.
fn send_all(port: u16, dir: &Path) {
    let status = send(port, dir).wait().unwrap();
    assert!(
        status.success(),
        "segnode send: {status} (an instance was refused)"
    );
}

fn segs(results: &Path) -> Vec<PathBuf> {
    walk(results)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "dcm"))
        .collect()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p))
            } else {
                out.push(p)
            }
        }
    }
    out
}

fn poll(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn study(dir: &Path, seed: u64) -> segnode::synth::SynthStudy {
    common::dce::small_study(dir, Orientation::Axial, seed, false)
}

#[test]
fn kill_9_during_ingest_then_resend_gives_exactly_one_seg() {
    let tmp = tempfile::tempdir().unwrap();
    let s = study(&tmp.path().join("study"), 31);
    let port = common::free_port();
    let config = write_config(tmp.path(), Some("dce_breast"), port);
    let log = tmp.path().join("serve.log");
    let spool_dir = tmp.path().join("spool");
    let results = spool_dir.join("results");

    let mut node = Node::start(&config, &log);
    node.wait_ready(port);
    let mut sender = send(port, &tmp.path().join("study"));
    poll(
        "the first instances to be stored",
        Duration::from_secs(60),
        || {
            Spool::open_existing(&spool_dir)
                .and_then(|sp| sp.counts())
                .is_ok_and(|c| c.instances >= 10)
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
    assert!(segs(&results).is_empty());

    // Restart; the sender sends the study again (what it sent unacknowledged, and more).
    let mut node = Node::start(&config, &log);
    node.wait_ready(port);
    send_all(port, &tmp.path().join("study"));
    poll("the SEG", Duration::from_secs(120), || {
        !segs(&results).is_empty()
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
        segs(&results).len(),
        1,
        "exactly one SEG; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
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
    let port = common::free_port();
    // A node that only stores (a job would read the spool and so wait for the filer).
    let config = write_config(tmp.path(), None, port);
    let log = tmp.path().join("serve.log");
    let spool_dir = tmp.path().join("spool");

    let mut node = Node::start(&config, &log);
    node.wait_ready(port);
    send_all(port, &tmp.path().join("study"));
    node.kill9();

    let mut node = Node::start(&config, &log);
    node.wait_ready(port);
    node.kill9();
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        log_text.contains("journal replayed"),
        "the kill left acknowledged instances in the journal; log:\n{log_text}"
    );
    let spool = Spool::open_existing(&spool_dir).unwrap();
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
    let port = common::free_port();
    // The SwinUNETR pipeline takes seconds per job on a CPU: a kill lands inside it.
    let config = write_config(tmp.path(), Some("dce_breast_swinunetr"), port);
    let log = tmp.path().join("serve.log");
    let spool_dir = tmp.path().join("spool");
    let results = spool_dir.join("results");

    let mut node = Node::start(&config, &log);
    node.wait_ready(port);
    send_all(port, &tmp.path().join("study"));
    poll("the job to start", Duration::from_secs(60), || {
        Spool::open_existing(&spool_dir)
            .and_then(|sp| sp.jobs().of_study(&s.study_uid))
            .is_ok_and(|jobs| jobs.iter().any(|j| j.state == JobState::Running))
    });
    node.kill9();
    assert!(
        segs(&results).is_empty(),
        "killed before the SEG was written"
    );

    let mut node = Node::start(&config, &log);
    node.wait_ready(port);
    poll(
        "the SEG after the restart",
        Duration::from_secs(180),
        || !segs(&results).is_empty(),
    );
    std::thread::sleep(Duration::from_secs(3));
    node.kill9();

    assert_eq!(
        segs(&results).len(),
        1,
        "exactly one SEG; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
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

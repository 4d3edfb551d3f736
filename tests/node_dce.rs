//! The node as a PACS administrator runs it: studies arrive over DICOM, in any order,
//! interleaved on one association; each comes out as a SEG in the results folder that
//! lies on its source slices (Dice against the phantom truth, `dciodvfy` clean).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::node::{node_config, spawn_node};
use segnode::synth::Orientation;

/// Every wait for a SEG is bounded by this.
const LIMIT: Duration = Duration::from_secs(120);

fn small_study(dir: &Path, orientation: Orientation, seed: u64) -> segnode::synth::SynthStudy {
    common::dce::small_study(dir, orientation, seed, true)
}

/// A deterministic shuffle (xorshift), so a failure can be reproduced.
fn shuffle(files: &mut [PathBuf], mut state: u64) {
    for i in (1..files.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        files.swap(i, (state % (i as u64 + 1)) as usize);
    }
}

fn dciodvfy_errors(path: &Path) -> Vec<String> {
    let out = std::process::Command::new("dciodvfy")
        .arg(path)
        .output()
        .expect("dciodvfy is missing: run `make setup` (Debian package dicom3tools)");
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("Error"))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_studies_interleaved_and_shuffled_on_one_association_each_give_a_seg_on_their_slices() {
    let tmp = tempfile::tempdir().unwrap();
    let axial = small_study(&tmp.path().join("axial"), Orientation::Axial, 11);
    let oblique = small_study(&tmp.path().join("oblique"), Orientation::Oblique, 12);

    // Interleave the two studies file by file, then shuffle: arrival order means nothing.
    let mut files: Vec<PathBuf> = Vec::new();
    for i in 0..axial.files.len().max(oblique.files.len()) {
        files.extend(axial.files.get(i).cloned());
        files.extend(oblique.files.get(i).cloned());
    }
    shuffle(&mut files, 0x5EED);

    let node = spawn_node(node_config(tmp.path())).await;
    node.send(&files).await;

    // The release of that one association completes both studies; wait (bounded) for the SEGs.
    let axial_segs = node.wait_for_results(&axial.study_uid, 1, LIMIT).await;
    let oblique_segs = node.wait_for_results(&oblique.study_uid, 1, LIMIT).await;
    let spool_dir = node.data_dir.clone();
    let summary = node.stop().await;
    assert!(
        summary.pipelines.failed.is_empty(),
        "failed jobs: {:?}",
        summary.pipelines.failed
    );
    assert_eq!(
        summary.pipelines.completed.len(),
        2,
        "exactly one SEG per study"
    );

    for (study, segs) in [(&axial, axial_segs), (&oblique, oblique_segs)] {
        let seg = &segs[0];
        let score = segnode::eval::evaluate_file(seg, &study.truth_path, 1).unwrap();
        assert!(
            score.dice >= 0.9,
            "{}: Dice {:.4} ({score:?})",
            study.study_uid,
            score.dice
        );
        let errors = dciodvfy_errors(seg);
        assert!(errors.is_empty(), "dciodvfy: {errors:?}");
        let contents = segnode::pipeline::seg::read_seg(seg).unwrap();
        assert_eq!(
            contents.study_instance_uid, study.study_uid,
            "the SEG belongs to its own study"
        );
        let phases: Vec<&str> = study
            .dce_phases()
            .into_iter()
            .map(|s| s.series_uid.as_str())
            .collect();
        let referenced: Vec<&str> = contents
            .referenced_series
            .iter()
            .map(|r| r.series_instance_uid.as_str())
            .collect();
        assert_eq!(
            referenced,
            [phases[0]],
            "the reference phase, whose slices the frames lie on"
        );
        assert_eq!(
            contents.related_series,
            phases[1..],
            "the other phases as related series, not the localizer"
        );
        assert_eq!(contents.frames.len(), 24, "one frame per source slice");

        // The job record in the index: done, with this SEG and its findings.
        let spool = segnode::spool::Spool::open_existing(&spool_dir).unwrap();
        let jobs = spool.jobs().of_study(&study.study_uid).unwrap();
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        let job = &jobs[0];
        assert_eq!(
            (job.state.as_str(), job.pipeline.as_str()),
            ("done", "dce_breast")
        );
        assert_eq!(
            job.seg_sop_instance_uid.as_deref(),
            Some(contents.sop_instance_uid.as_str())
        );
        let findings: serde_json::Value =
            serde_json::from_str(job.findings.as_deref().unwrap()).unwrap();
        assert_eq!(
            findings[0]["voxels"].as_u64(),
            Some(score.seg_voxels),
            "findings count the SEG's voxels"
        );
        assert!(findings[0]["volume_ml"].as_f64().unwrap() > 0.0);
        let timings: serde_json::Value =
            serde_json::from_str(job.timings.as_deref().unwrap()).unwrap();
        assert!(timings["inference"].as_f64().is_some(), "{timings}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_completes_a_collecting_study_once_and_never_repeats_a_finished_one() {
    let tmp = tempfile::tempdir().unwrap();
    let study = small_study(&tmp.path().join("study"), Orientation::Axial, 21);
    // Wait for stability only, so that node 1 can stop before the study is complete.
    let config = node_config(tmp.path());
    common::dce::pipelines_dir(
        tmp.path(),
        "dce_breast",
        &[
            (
                "on_association_release = true",
                "on_association_release = false",
            ),
            ("stable_seconds = 30", "stable_seconds = 2"),
        ],
    );
    let segs = || common::node::results_of(&config.results_dir(), &study.study_uid).len();

    // Node 1 receives the whole study and stops before it is stable: no SEG yet.
    let node = spawn_node(config.clone()).await;
    node.send(&study.files).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let first = node.stop().await;
    assert_eq!(first.scp.instances_stored as usize, study.files.len());
    assert_eq!(segs(), 0, "node 1 stopped before the study was stable");

    // Node 2 on the same spool reads the study back, and completes it once stable.
    let node = spawn_node(config.clone()).await;
    node.wait_for_results(&study.study_uid, 1, Duration::from_secs(60))
        .await;
    let second = node.stop().await;
    assert_eq!(
        second.pipelines.completed.len(),
        1,
        "{:?}",
        second.pipelines
    );
    assert_eq!(segs(), 1);
    let seg = second.pipelines.completed[0].seg_path.clone();
    let score = segnode::eval::evaluate_file(&seg, &study.truth_path, 1).unwrap();
    assert!(score.dice >= 0.9, "Dice {:.4}", score.dice);

    // Node 3 recognises the finished job: nothing runs again, however long it waits.
    let node = spawn_node(config.clone()).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let third = node.stop().await;
    assert!(
        third.pipelines.completed.is_empty() && third.pipelines.failed.is_empty(),
        "{:?}",
        third.pipelines
    );
    assert_eq!(segs(), 1, "still exactly one SEG");
    let spool = segnode::spool::Spool::open_existing(&config.node.data_dir).unwrap();
    let jobs = spool.jobs().of_study(&study.study_uid).unwrap();
    assert_eq!(
        jobs.iter()
            .filter(|j| j.state == segnode::spool::JobState::Done)
            .count(),
        1,
        "{jobs:?}"
    );
}

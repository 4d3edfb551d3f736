//! One node serving one AE title per pipeline: with `access.check_called_ae = false`, two
//! pipelines that differ only in `applies_to.called_ae_titles` each segment the studies sent
//! to their own title, and only those.

mod common;

use std::path::Path;
use std::time::Duration;

use common::node::{node_config, spawn_node};
use segnode::synth::Orientation;

/// Write the shipped DCE pipeline as `name`, applying to studies sent to `called_ae` only.
fn pipeline_for(definitions: &Path, name: &str, called_ae: &str) {
    let shipped = std::fs::read_to_string(definitions.join("dce_breast.toml")).unwrap();
    for needle in ["name = \"dce_breast\"", "called_ae_titles = []"] {
        assert!(
            shipped.contains(needle),
            "the shipped pipeline lacks {needle:?}"
        );
    }
    let text = shipped
        .replace("name = \"dce_breast\"", &format!("name = \"{name}\""))
        .replace(
            "called_ae_titles = []",
            &format!("called_ae_titles = [\"{called_ae}\"]"),
        );
    std::fs::write(definitions.join(format!("{name}.toml")), text).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn each_called_ae_title_routes_to_its_own_pipeline() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = node_config(tmp.path());
    pipeline_for(&config.pipelines.definitions_dir, "dce_left", "SEG_LEFT");
    pipeline_for(&config.pipelines.definitions_dir, "dce_right", "SEG_RIGHT");
    config.access.check_called_ae = false;
    config.pipelines.enabled = vec!["dce_left".into(), "dce_right".into()];

    let left = common::dce::small_study(&tmp.path().join("left"), Orientation::Axial, 21, false);
    let right = common::dce::small_study(&tmp.path().join("right"), Orientation::Axial, 22, false);

    let node = spawn_node(config).await;
    // One association per study, each to another of the node's titles; its release
    // completes the study for the pipeline that accepted it.
    for (called, study) in [("SEG_LEFT", &left), ("SEG_RIGHT", &right)] {
        node.send_as(common::TEST_SCU_AE, called, &study.files)
            .await;
    }
    for study in [&left, &right] {
        node.wait_for_results(&study.study_uid, 1, Duration::from_secs(120))
            .await;
    }
    let summary = node.stop().await;
    assert!(
        summary.pipelines.failed.is_empty(),
        "failed jobs: {:?}",
        summary.pipelines.failed
    );
    let mut ran: Vec<(String, String)> = summary
        .pipelines
        .completed
        .iter()
        .map(|job| (job.pipeline.clone(), job.study_uid.clone()))
        .collect();
    ran.sort();
    let mut expected = vec![
        ("dce_left".to_string(), left.study_uid.clone()),
        ("dce_right".to_string(), right.study_uid.clone()),
    ];
    expected.sort();
    assert_eq!(
        ran, expected,
        "each study is segmented by its own title's pipeline, and by no other"
    );
    assert!(
        summary.pipelines.given_up.is_empty(),
        "no pipeline tracked the other's study: {:?}",
        summary.pipelines.given_up
    );
}

//! One node serving one AE title per pipeline: two pipelines that differ only in
//! `applies_to.called_ae_titles` each segment the studies sent to their own title, and only
//! those — with `access.check_called_ae = false`, and with the titles listed in
//! `node.ae_titles` while every other called title is still rejected.

mod common;

use std::path::Path;
use std::time::Duration;

use common::node::{SpawnedNode, node_config, spawn_node, spawn_node_error};
use segnode::ae::AeTitle;
use segnode::config::Config;
use segnode::scu::{ScuError, ScuOptions};
use segnode::synth::{Orientation, SynthStudy};

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

/// A node config enabling `dce_left` for SEG_LEFT and `dce_right` for SEG_RIGHT.
fn two_title_config(dir: &Path) -> Config {
    let mut config = node_config(dir);
    pipeline_for(&config.pipelines.definitions_dir, "dce_left", "SEG_LEFT");
    pipeline_for(&config.pipelines.definitions_dir, "dce_right", "SEG_RIGHT");
    config.pipelines.enabled = vec!["dce_left".into(), "dce_right".into()];
    config
}

/// One study for each title.
fn two_studies(dir: &Path) -> (SynthStudy, SynthStudy) {
    (
        common::dce::small_study(&dir.join("left"), Orientation::Axial, 21, false),
        common::dce::small_study(&dir.join("right"), Orientation::Axial, 22, false),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn each_called_ae_title_routes_to_its_own_pipeline() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = two_title_config(tmp.path());
    config.access.check_called_ae = false;
    let (left, right) = two_studies(tmp.path());
    let node = spawn_node(config).await;
    each_study_goes_to_its_titles_pipeline(node, &left, &right).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_titles_in_node_ae_titles_are_answered_and_no_other() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = two_title_config(tmp.path());
    assert!(config.access.check_called_ae, "checked by default");

    // Without the titles listed the node refuses to start, naming the title and the key:
    // the pipelines could never receive a study.
    let refusal = spawn_node_error(config.clone()).await.to_string();
    assert!(
        refusal.contains("SEG_LEFT") && refusal.contains("node.ae_titles"),
        "{refusal}"
    );

    config.node.ae_titles = ["SEG_LEFT", "SEG_RIGHT"]
        .map(|t| AeTitle::parse(t).unwrap())
        .to_vec();
    let (left, right) = two_studies(tmp.path());
    let node = spawn_node(config).await;
    // A title the node does not answer to is still rejected.
    let opts = ScuOptions::new(AeTitle::parse(common::TEST_SCU_AE).unwrap());
    let rejected = segnode::scu::echo(&node.peer("SEG_MIDDLE"), &opts)
        .await
        .expect_err("an association calling SEG_MIDDLE is rejected");
    // segnode's SCU gives this hint for "called AE title not recognized" and for no other
    // rejection reason.
    let text = rejected.to_string();
    assert!(
        matches!(rejected, ScuError::Rejected { .. }) && text.contains("check the peer's AE title"),
        "{text}"
    );
    each_study_goes_to_its_titles_pipeline(node, &left, &right).await;
}

/// Send `left` to SEG_LEFT and `right` to SEG_RIGHT, one association each, and stop the
/// node: each study was segmented by its title's pipeline, and by no other.
async fn each_study_goes_to_its_titles_pipeline(
    node: SpawnedNode,
    left: &SynthStudy,
    right: &SynthStudy,
) {
    // Each association's release completes the study for the pipeline that accepted it.
    for (called, study) in [("SEG_LEFT", left), ("SEG_RIGHT", right)] {
        node.send_as(common::TEST_SCU_AE, called, &study.files)
            .await;
    }
    for study in [left, right] {
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

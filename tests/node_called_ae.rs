//! One node serving one AE title per pipeline: with `access.check_called_ae = false`, two
//! pipelines that differ only in `applies_to.called_ae_titles` each segment the studies sent
//! to their own title, and only those.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use segnode::ae::{AeTitle, Peer};
use segnode::config::Config;
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
    let definitions = common::dce::pipelines_dir(tmp.path(), "dce_breast", &[]);
    pipeline_for(&definitions, "dce_left", "SEG_LEFT");
    pipeline_for(&definitions, "dce_right", "SEG_RIGHT");
    let text = format!(
        "[node]\nae_title = 'SEGNODE'\nbind = '127.0.0.1'\nport = 11112\ndata_dir = '{}'\n\
         [access]\ncheck_called_ae = false\n\
         [storage]\nmin_free_disk_mb = 0\n\
         [pipelines]\nenabled = ['dce_left', 'dce_right']\ndefinitions_dir = '{}'\nmodels_dir = '{}'\n",
        tmp.path().join("spool").display(),
        definitions.display(),
        common::dce::models_dir().display()
    );
    let config = Config::from_toml(&text, "<test config>", None).unwrap();
    let results = config.results_dir();

    let left = common::dce::small_study(&tmp.path().join("left"), Orientation::Axial, 21, false);
    let right = common::dce::small_study(&tmp.path().join("right"), Orientation::Axial, 22, false);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let node = tokio::spawn(segnode::serve::run_on(listener, config, async move {
        let _ = stop_rx.await;
    }));

    // One association per study, each to another of the node's titles; its release
    // completes the study for the pipeline that accepted it.
    let opts = segnode::scu::ScuOptions::new(AeTitle::parse("TESTSCU").unwrap());
    for (called, study) in [("SEG_LEFT", &left), ("SEG_RIGHT", &right)] {
        let peer: Peer = format!("{called}@127.0.0.1:{port}").parse().unwrap();
        let report = segnode::scu::send_files(&peer, &opts, &study.files)
            .await
            .unwrap();
        assert_eq!((report.sent, report.failed), (study.files.len(), 0));
    }

    let deadline = Instant::now() + Duration::from_secs(120);
    let seg_of = |study: &str| -> Option<PathBuf> {
        std::fs::read_dir(results.join(study))
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "dcm"))
    };
    while (seg_of(&left.study_uid).is_none() || seg_of(&right.study_uid).is_none())
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop_tx.send(()).unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(60), node)
        .await
        .expect("node stops")
        .unwrap()
        .unwrap();
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

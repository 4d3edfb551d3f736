//! Operating the node through its admin HTTP server, against the real node and DCMTK:
//! readiness fails for a missing model file and for a disk below the floor; every operator
//! action is refused (401) without the bearer token; forcing a study that lacks most of one
//! phase runs it under `force_policy = "run"`; a dead-lettered SEG re-sent by an operator
//! arrives at DCMTK `storescp` exactly once.

mod common;

use std::path::Path;
use std::time::Duration;

use common::admin::{AdminNode, config, models_copy};
use common::storescp::Storescp;
use segnode::synth::Orientation;

const TOKEN: &str = "correct-horse-battery-staple";

fn token_file(dir: &Path) -> String {
    let path = dir.join("http-token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    format!("[http]\ntoken_file = '{}'\n", path.display())
}

fn check<'a>(readyz: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    readyz["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {readyz}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_is_503_when_the_model_file_is_missing_or_the_disk_is_below_the_floor() {
    let tmp = tempfile::tempdir().unwrap();
    let models = models_copy(tmp.path());
    let node = AdminNode::start(config(tmp.path(), &[], Some(&models), "")).await;
    let ready = node.get("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    let body = ready.json().unwrap();
    assert_eq!(body["ready"], true);
    assert!(
        check(&body, "model:dce_breast")["detail"]
            .as_str()
            .unwrap()
            .contains("cpu")
    );
    assert_eq!(node.get("/healthz").await.status, 200);

    std::fs::remove_file(models.join("dce_kinetic.pt")).unwrap();
    let ready = node.get("/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    let body = ready.json().unwrap();
    assert_eq!(body["ready"], false);
    let model = check(&body, "model:dce_breast");
    assert_eq!(model["ok"], false);
    assert!(
        model["detail"].as_str().unwrap().contains("missing"),
        "{model}"
    );
    assert_eq!(check(&body, "disk")["ok"], true);
    node.stop().await;

    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path(), &[], None, "");
    // A floor far above any disk: 1 EiB.
    cfg.storage.min_free_disk_mb = 1 << 40;
    let node = AdminNode::start(cfg).await;
    let ready = node.get("/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    let body = ready.json().unwrap();
    let disk = check(&body, "disk");
    assert_eq!(disk["ok"], false);
    assert!(
        disk["detail"]
            .as_str()
            .unwrap()
            .contains("min_free_disk_mb"),
        "{disk}"
    );
    assert_eq!(check(&body, "journal")["ok"], true);
    assert_eq!(check(&body, "model:dce_breast")["ok"], true);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_action_needs_the_bearer_token() {
    let tmp = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let extra = format!(
        "{}[[destinations]]\nname = 'store'\nae_title = 'STORE'\nhost = '127.0.0.1'\nport = {port}\n",
        token_file(tmp.path())
    );
    let node = AdminNode::start(config(tmp.path(), &[], None, &extra)).await;
    let actions = [
        "/api/studies/1.2.3/force",
        "/api/jobs/1/rerun",
        "/api/outbox/1/resend",
        "/api/destinations/store/pause",
        "/api/destinations/store/resume",
    ];
    for path in actions {
        for token in [None, Some("wrong"), Some("correct-horse-battery-stapl")] {
            let r = node.post(path, token).await;
            assert_eq!(r.status, 401, "POST {path} with {token:?}: {}", r.text());
            assert!(r.text().contains("token"), "{}", r.text());
        }
    }
    // Reading needs no token; the token opens the actions.
    assert_eq!(node.get("/api/outbox").await.status, 200);
    let r = node
        .post("/api/destinations/store/pause", Some(TOKEN))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let outbox = node.get("/api/outbox").await.json().unwrap();
    assert_eq!(outbox["destinations"]["store"]["paused"], true, "{outbox}");
    let r = node.post("/api/studies/1.2.3/force", Some(TOKEN)).await;
    assert_eq!(r.status, 409, "not collecting: {}", r.text());
    let config = node.get("/api/config").await.json().unwrap();
    assert_eq!(config["http"]["token_file"], "(redacted)");
    assert!(!config.to_string().contains(TOKEN));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn force_complete_runs_a_study_short_of_one_phase_under_force_policy_run() {
    let tmp = tempfile::tempdir().unwrap();
    let study = common::dce::small_study(&tmp.path().join("study"), Orientation::Axial, 21, false);
    let edits = [("force_policy = \"drop\"", "force_policy = \"run\"")];
    let node = AdminNode::start(config(tmp.path(), &edits, None, &token_file(tmp.path()))).await;
    // Three phases whole, the last one only half there.
    let phases = study.dce_phases();
    assert_eq!(phases.len(), 4);
    let mut files: Vec<_> = phases[..3].iter().flat_map(|s| s.files.clone()).collect();
    let half = phases[3].files.len() / 2;
    files.extend(phases[3].files[..half].iter().cloned());
    node.send(&files).await;

    let studies = node.get("/api/studies").await.json().unwrap();
    let collecting = studies["collecting"].as_array().unwrap();
    assert_eq!(collecting.len(), 1, "{studies}");
    assert_eq!(collecting[0]["study_uid"], study.study_uid.as_str());
    assert_eq!(collecting[0]["force_policy"], "run");
    let last = &collecting[0]["channels"][3];
    assert_eq!(
        (last["name"].as_str(), last["slices"].as_u64()),
        (Some("post3"), Some(half as u64))
    );
    assert!(
        node.jobs().await.is_empty(),
        "nothing runs before the operator forces it"
    );

    let r = node
        .post(
            &format!("/api/studies/{}/force", study.study_uid),
            Some(TOKEN),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json().unwrap()["results"][0]["job_queued"], true);
    node.wait_for("the forced job is done", |n| async move {
        n.jobs().await.iter().any(|j| j["state"] == "done")
    })
    .await;
    let jobs = node.jobs().await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["trigger"], "Operator");
    assert_eq!(jobs[0]["study_uid"], study.study_uid.as_str());
    assert!(
        node.get("/api/studies").await.json().unwrap()["collecting"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let summary = node.stop().await;
    assert_eq!(summary.pipelines.completed.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_lettered_seg_resent_by_an_operator_arrives_once() {
    let tmp = tempfile::tempdir().unwrap();
    let study = common::dce::small_study(&tmp.path().join("study"), Orientation::Axial, 22, false);
    let port = common::free_port();
    let extra = format!(
        "{}[[destinations]]\nname = 'store'\nae_title = 'STORE'\nhost = '127.0.0.1'\nport = {port}\n\
         [outbox]\ninitial_delay_seconds = 1\nmax_delay_seconds = 1\nmax_attempts = 1\n",
        token_file(tmp.path())
    );
    let edits = [("destinations = []", "destinations = [\"store\"]")];
    let node = AdminNode::start(config(tmp.path(), &edits, None, &extra)).await;
    node.send(&study.files).await;
    node.wait_for("the delivery is dead-lettered", |n| async move {
        let outbox = n.get("/api/outbox").await.json().unwrap();
        outbox["deliveries"][0]["state"] == "dead"
    })
    .await;
    let outbox = node.get("/api/outbox").await.json().unwrap();
    let id = outbox["deliveries"][0]["id"].as_i64().unwrap();
    let seg_uid = outbox["deliveries"][0]["seg_sop_instance_uid"]
        .as_str()
        .unwrap()
        .to_string();
    let metrics = node.get("/metrics").await.text();
    assert!(
        metrics.contains("segnode_outbox_dead{destination=\"store\"} 1"),
        "{metrics}"
    );

    let scp = tokio::task::spawn_blocking(move || Storescp::start_on(port, "STORE", &["+uf"]))
        .await
        .unwrap();
    let r = node
        .post(&format!("/api/outbox/{id}/resend"), Some(TOKEN))
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let r = node
        .post(&format!("/api/outbox/{id}/resend"), Some(TOKEN))
        .await;
    assert_eq!(
        r.status,
        409,
        "only a dead delivery is re-sent: {}",
        r.text()
    );
    node.wait_for("the re-sent SEG is delivered", |n| async move {
        let outbox = n.get("/api/outbox").await.json().unwrap();
        outbox["deliveries"][0]["state"] == "delivered"
    })
    .await;
    let scp = tokio::task::spawn_blocking(move || {
        scp.wait_for_files(1, Duration::from_secs(30));
        std::thread::sleep(Duration::from_secs(2));
        scp
    })
    .await
    .unwrap();
    let files = scp.files();
    assert_eq!(files.len(), 1, "exactly one SEG arrived: {files:?}");
    let seg = dicom_object::open_file(&files[0]).unwrap();
    let uid = seg
        .element(dicom_dictionary_std::tags::SOP_INSTANCE_UID)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches('\0')
        .to_string();
    assert_eq!(uid, seg_uid);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn status_json_reads_the_running_node_and_falls_back_to_the_spool() {
    let tmp = tempfile::tempdir().unwrap();
    let node = AdminNode::start(config(tmp.path(), &[], None, "")).await;
    let file = tmp.path().join("status.toml");
    std::fs::write(
        &file,
        format!(
            "[node]\nae_title = 'SEGNODE'\nport = {}\ndata_dir = '{}'\n[http]\nport = {}\n",
            node.dicom_port,
            tmp.path().join("spool").display(),
            node.http.port()
        ),
    )
    .unwrap();
    let status = |file: std::path::PathBuf| async move {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_segnode"))
            .args(["status", "--json", "--config"])
            .arg(&file)
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", common::describe(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let running = status(file.clone()).await;
    assert_eq!(running["node_running"], true, "{running}");
    assert_eq!(running["ready"], true, "{running}");
    assert!(
        running["checks"].as_array().unwrap().len() >= 3,
        "{running}"
    );
    assert_eq!(running["spool"]["instances"], 0);
    node.stop().await;

    let stopped = status(file).await;
    assert_eq!(stopped["node_running"], false, "{stopped}");
    assert_eq!(stopped["spool"]["instances"], 0, "{stopped}");
}

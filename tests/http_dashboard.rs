//! The dashboard in a real browser: headless Chromium (Debian `chromium`) loads `/` while a
//! study waits for its last phase (the missing channel is named in the rendered DOM), and
//! again after its SEG (the job, its findings and its mask thumbnail are there, and the
//! SEG's dead-lettered delivery to a destination that is down, with its Re-send button).
//! The screenshot, taken while a second study waits, is saved under the cargo target dir
//! (`dashboard/dashboard.png`).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::admin::{AdminNode, config};
use segnode::synth::Orientation;

/// The cargo target dir this test binary runs from (`<target>/debug/deps/<test>`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir)
}

/// Headless Chromium with a fresh profile; `args` say what to do with `url`.
async fn chromium(url: &str, args: &[&str]) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    let user_data = format!("--user-data-dir={}", profile.path().display());
    let mut all = vec![
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        user_data.as_str(),
    ];
    all.extend_from_slice(args);
    all.push(url);
    common::run_tool("chromium", &all, Duration::from_secs(90)).await
}

async fn dom(url: &str) -> String {
    let out = chromium(url, &["--dump-dom"]).await;
    assert!(
        out.status.success(),
        "chromium --dump-dom: {}",
        common::describe(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_shows_the_missing_phase_then_the_job_with_findings_and_its_mask() {
    let tmp = tempfile::tempdir().unwrap();
    let study = common::dce::small_study(&tmp.path().join("study"), Orientation::Axial, 31, false);
    let second =
        common::dce::small_study(&tmp.path().join("second"), Orientation::Axial, 32, false);
    let down = common::free_port();
    let extra = format!(
        "[[destinations]]\nname = 'pacs'\nae_title = 'PACS'\nhost = '127.0.0.1'\nport = {down}\n\
         [outbox]\nmax_attempts = 1\n"
    );
    let edits = [("destinations = []", "destinations = [\"pacs\"]")];
    let node = AdminNode::start(config(tmp.path(), &edits, None, &extra)).await;
    let url = format!("http://{}/", node.http);
    let phases = study.dce_phases();
    assert_eq!(phases.len(), 4);

    // Three phases: the study waits for the last one.
    let first: Vec<PathBuf> = phases[..3].iter().flat_map(|s| s.files.clone()).collect();
    node.send(&first).await;
    let page = dom(&url).await;
    assert!(
        page.contains(&study.study_uid),
        "the collecting study is listed:\n{page}"
    );
    assert!(
        page.contains("missing post3"),
        "the missing channel is named:\n{page}"
    );
    assert!(
        page.contains("no series for channel"),
        "what it waits for:\n{page}"
    );
    assert!(page.contains("Force complete"));

    // The last phase: the release of its association completes the study.
    node.send(&phases[3].files).await;
    node.wait_for("the job is done", |n| async move {
        n.jobs().await.iter().any(|j| j["state"] == "done")
    })
    .await;
    let job = node.jobs().await[0]["id"].as_i64().unwrap();
    let thumbnail = node.get(&format!("/api/jobs/{job}/thumbnail.png")).await;
    assert_eq!(thumbnail.status, 200, "{}", thumbnail.text());
    assert_eq!(&thumbnail.body[1..4], b"PNG");

    node.wait_for("the SEG's delivery is dead-lettered", |n| async move {
        n.get("/api/outbox").await.json().unwrap()["deliveries"][0]["state"] == "dead"
    })
    .await;
    // A second study waits for its last phase while the screenshot is taken.
    let second_phases: Vec<PathBuf> = second
        .series
        .iter()
        .filter(|s| s.temporal_position.is_some_and(|t| t < 4))
        .flat_map(|s| s.files.clone())
        .collect();
    node.send(&second_phases).await;

    let page = dom(&url).await;
    assert!(
        page.contains(&format!("id=\"job-{job}\"")),
        "the job is listed:\n{page}"
    );
    assert!(
        page.contains("Re-send"),
        "the dead letter can be re-sent:\n{page}"
    );
    assert!(
        page.contains(&second.study_uid),
        "the second study waits:\n{page}"
    );
    assert!(
        page.contains("Enhancing lesion:"),
        "its findings are shown:\n{page}"
    );
    assert!(page.contains(" mL"), "with a volume:\n{page}");
    assert!(
        page.contains(&format!("src=\"/api/jobs/{job}/thumbnail.png\"")),
        "with its mask thumbnail:\n{page}"
    );

    let shots = target_dir().join("dashboard");
    std::fs::create_dir_all(&shots).unwrap();
    let png = shots.join("dashboard.png");
    let _ = std::fs::remove_file(&png);
    let shot = format!("--screenshot={}", png.display());
    let out = chromium(&url, &[&shot, "--window-size=1400,900"]).await;
    assert!(
        out.status.success(),
        "chromium --screenshot: {}",
        common::describe(&out)
    );
    let bytes = std::fs::read(&png).expect("the screenshot was written");
    assert_eq!(&bytes[1..4], b"PNG");
    assert!(
        bytes.len() > 10_000,
        "a real page, not a blank: {} bytes",
        bytes.len()
    );
    eprintln!("dashboard screenshot: {}", png.display());
    node.stop().await;
}

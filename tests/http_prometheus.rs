//! The node as Prometheus sees it: a real Prometheus (Debian `prometheus`) scrapes the
//! node's `/metrics` every second while a study is sent and segmented; its HTTP API must
//! then report exactly the instances sent and one job. `promtool check metrics` lints the
//! exposition, and `promtool check rules` the committed alert rules, which the same
//! Prometheus loads.
//!
//! One node per process: the metrics registry is process-wide, and this binary's only
//! node-starting test owns it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::admin::{AdminNode, config};
use segnode::synth::Orientation;

fn rules_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/prometheus/segnode-alerts.yml")
}

/// A Prometheus started by the test on a free port; killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: std::net::SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules.yml");
        std::fs::copy(rules_file(), &rules).unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {}\n\
                 scrape_configs:\n  - job_name: segnode\n    static_configs:\n      - targets: ['{target}']\n",
                rules.display()
            ),
        )
        .unwrap();
        let port = common::free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(common::require_tool("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus could not be started");
        let mut p = Prometheus {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(
                p.child.try_wait().unwrap().is_none(),
                "prometheus exited at start-up: {}",
                p.log()
            );
            if p.get("/-/ready").is_some_and(|r| r.status == 200) {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready in 60 s: {}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    fn get(&self, path: &str) -> Option<segnode::http::client::Response> {
        let addr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        segnode::http::client::get(addr, path, Duration::from_secs(10)).ok()
    }

    /// The value of an instant query's single result (None while it has none).
    fn query(&self, promql: &str) -> Option<f64> {
        let encoded: String = promql
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let r = self.get(&format!("/api/v1/query?query={encoded}"))?;
        let v = r.json().ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }

    /// Wait until `promql` gives `want` (bounded); the last value seen otherwise.
    fn wait_value(&self, promql: &str, want: f64) -> Option<f64> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.query(promql);
            if got == Some(want) || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_the_instances_sent_and_one_job_and_promtool_accepts_the_exposition() {
    let tmp = tempfile::tempdir().unwrap();
    let study = common::dce::small_study(&tmp.path().join("study"), Orientation::Axial, 5, false);
    let node = AdminNode::start(config(tmp.path(), &[], None, "")).await;
    let prometheus = tokio::task::spawn_blocking({
        let target = node.http;
        move || Prometheus::start(target)
    })
    .await
    .unwrap();

    node.send(&study.files).await;
    node.wait_for("the job is done", |n| async move {
        n.jobs().await.iter().any(|j| j["state"] == "done")
    })
    .await;

    let sent = study.files.len() as f64;
    let (instances, jobs, job_done, up) = tokio::task::spawn_blocking(move || {
        let instances = prometheus.wait_value("sum(segnode_instances_received_total)", sent);
        let jobs = prometheus.wait_value("sum(segnode_job_duration_seconds_count)", 1.0);
        let done = prometheus.wait_value(
            "sum(segnode_jobs_total{pipeline=\"dce_breast\",outcome=\"done\"})",
            1.0,
        );
        let up = prometheus.query("up{job=\"segnode\"}");
        let rules = prometheus.get("/api/v1/rules").unwrap().json().unwrap();
        let loaded = rules["data"]["groups"][0]["rules"]
            .as_array()
            .map_or(0, |r| r.len());
        assert_eq!(loaded, 3, "the committed alert rules load: {rules}");
        (instances, jobs, done, up)
    })
    .await
    .unwrap();
    assert_eq!(
        instances,
        Some(sent),
        "segnode_instances_received_total in Prometheus"
    );
    assert_eq!(jobs, Some(1.0), "the job histogram's count in Prometheus");
    assert_eq!(job_done, Some(1.0), "segnode_jobs_total{{outcome=done}}");
    assert_eq!(up, Some(1.0), "Prometheus scrapes the node");

    // The exposition itself passes promtool's lint.
    let metrics = node.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        metrics.headers
    );
    let text = metrics.text();
    for family in [
        "segnode_associations_accepted_total",
        "segnode_store_duration_seconds_bucket",
        "segnode_journal_unfiled_instances",
        "segnode_filer_lag_seconds",
        "segnode_disk_free_bytes",
        "segnode_studies_collecting{pipeline=\"dce_breast\"}",
        "segnode_job_queue_depth",
        "segnode_job_stage_duration_seconds_count{pipeline=\"dce_breast\",stage=\"inference\"} 1",
        "segnode_model_info{pipeline=\"dce_breast\",file=\"dce_kinetic.pt\"",
        "segnode_build_info{version=",
        "calling_ae=\"TESTSCU\"",
    ] {
        assert!(text.contains(family), "/metrics lacks {family}:\n{text}");
    }
    assert!(!text.contains(&study.study_uid), "no UID in any label");
    let lint = promtool(&["check", "metrics"], Some(text.as_bytes()));
    assert!(
        lint.status.success(),
        "promtool check metrics: {}",
        common::describe(&lint)
    );

    node.stop().await;
}

#[test]
fn promtool_accepts_the_committed_alert_rules() {
    let out = promtool(&["check", "rules", rules_file().to_str().unwrap()], None);
    assert!(out.status.success(), "{}", common::describe(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("SUCCESS: 3 rules found"), "{said}");
}

fn promtool(args: &[&str], stdin: Option<&[u8]>) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(common::require_tool("promtool"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool could not be started");
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

//! Shared helpers for the integration tests: the whole node in-process for a test
//! (`node::spawn_node`, on the config `node::node_config` builds; the same config runs the
//! binary as a child in `child_node`), the SCP alone on 127.0.0.1 port 0 with its own data
//! folder ([`TestNode`]), DCMTK runners that fail loudly when a tool is missing
//! ([`require_tool`]), DICOM fixtures (`fixtures`, `j2k`), a raw DIMSE
//! requestor for what DCMTK will not send (`raw_scu`), a real Orthanc (`orthanc`), DCMTK
//! storescp as a destination (`storescp`), the DCE node fixtures (`dce`), the fetal
//! ultrasound image (`fetal`), the project venv's Python (`python`) and OHIF's SEG code
//! in Node (`ohif`).
//!
//! Each test binary compiles this module on its own and uses a different part of it.
#![allow(dead_code)]

pub mod admin;
pub mod child_node;
pub mod dce;
pub mod fetal;
pub mod fixtures;
pub mod j2k;
pub mod node;
pub mod ohif;
pub mod orthanc;
pub mod python;
pub mod raw_scu;
pub mod rsyslog;
pub mod storescp;
pub mod tls;

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use segnode::config::Config;
use segnode::ingest::{IngestEvent, IngestSink};
use segnode::scp::{self, ScpContext, ScpError, ScpSummary};
use segnode::spool::{Spool, SpoolCounts};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The AE title test nodes answer to.
pub const NODE_AE: &str = "SEGNODE";
/// The calling AE title tests use unless they test access control.
pub const TEST_SCU_AE: &str = "TESTSCU";

/// Route `tracing` output through the test harness (shown for failing tests or with
/// `--nocapture`); `RUST_LOG` overrides the default `info`.
pub fn init_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// A config for the SCP-only [`TestNode`]: [`node::loopback_config`] on `data_dir`, short
/// timeouts, 1 MiB journal segments (so a test's few hundred instances roll through many).
/// Tests change what they need in the tweak closure of [`TestNode::start`].
pub fn test_config(data_dir: &Path) -> Config {
    let mut config = node::loopback_config(data_dir);
    config.network.read_timeout_seconds = 15;
    config.network.write_timeout_seconds = 15;
    config.storage.journal_segment_mb = 1;
    config
}

/// A running in-process node.
pub struct TestNode {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its data folder.
    pub data_dir: PathBuf,
    /// The config it runs with.
    pub config: Arc<Config>,
    /// Its spool (shared with the server), for counts and look-ups.
    pub spool: Arc<Spool>,
    events: Arc<Mutex<Vec<IngestEvent>>>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<ScpSummary, ScpError>>>,
    /// Moves events from the SCP's channel into `events`; ends when the SCP has stopped.
    collector: Option<JoinHandle<()>>,
    summary: Option<ScpSummary>,
    _temp: Option<tempfile::TempDir>,
}

impl TestNode {
    /// Start a node on a fresh temporary data folder.
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> TestNode {
        let temp = tempfile::tempdir().expect("create a temporary data folder");
        let mut node = Self::start_in(temp.path(), tweak).await;
        node._temp = Some(temp);
        node
    }

    /// Start a node on `data_dir` (kept after the node stops: restart tests use it).
    pub async fn start_in(data_dir: &Path, tweak: impl FnOnce(&mut Config)) -> TestNode {
        let mut config = test_config(data_dir);
        tweak(&mut config);
        let spool =
            Arc::new(Spool::open(&config.node.data_dir, &config.storage).expect("open the spool"));
        Self::start_on(spool, config).await
    }

    /// Start a node's SCP on a spool already open (one spool per data folder: the pipelines
    /// side of a test may hold it too).
    pub async fn start_on(spool: Arc<Spool>, config: Config) -> TestNode {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        Self::start_on_listener(spool, config, scp::Listener::plain(listener)).await
    }

    /// [`TestNode::start_on`] with a listener of the caller's (a TLS one, for instance).
    pub async fn start_on_listener(
        spool: Arc<Spool>,
        config: Config,
        listener: scp::Listener,
    ) -> TestNode {
        init_logging();
        let config = Arc::new(config);
        let addr = listener.tcp.local_addr().unwrap();

        let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        let collector = tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                sink.lock().unwrap().push(event);
            }
        });

        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let ctx = ScpContext {
            config: Arc::clone(&config),
            spool: Arc::clone(&spool),
            events: Some(IngestSink::new(tx)),
            // Tests that set `[audit]` get the trail they configured.
            audit: segnode::audit::Audit::start(&config.audit, config.node.ae_title.as_str())
                .await
                .expect("start the audit trail"),
        };
        let server = tokio::spawn(scp::run(listener, ctx, async move {
            let _ = stop_rx.await;
        }));
        TestNode {
            addr,
            data_dir: config.node.data_dir.clone(),
            config,
            spool,
            events,
            shutdown: Some(stop_tx),
            server: Some(server),
            collector: Some(collector),
            summary: None,
            _temp: None,
        }
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `SEGNODE@127.0.0.1:PORT`, for dicom-ul clients.
    pub fn ae_address(&self) -> String {
        format!("{NODE_AE}@{}", self.addr)
    }

    /// Index counts now.
    pub fn counts(&self) -> SpoolCounts {
        self.spool.counts().expect("spool counts")
    }

    /// The ingest events received so far.
    pub fn events(&self) -> Vec<IngestEvent> {
        self.events.lock().unwrap().clone()
    }

    /// Wait until the index holds at least `n` instances (panics after `limit`).
    pub async fn wait_for_instances(&self, n: u64, limit: Duration) {
        let start = Instant::now();
        while self.counts().instances < n {
            assert!(
                start.elapsed() < limit,
                "only {} of {n} instances after {limit:?}",
                self.counts().instances
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Ask the server to stop and wait for it (it drains in-flight associations first).
    /// The data folder stays until the node is dropped.
    pub async fn stop(&mut self) -> ScpSummary {
        if let Some(summary) = &self.summary {
            return summary.clone();
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let server = self.server.take().expect("server handle");
        let summary = tokio::time::timeout(Duration::from_secs(60), server)
            .await
            .expect("the server stops within 60 s")
            .expect("the server task does not panic")
            .expect("the server returns a summary");
        // Every event the SCP sent is in `events` once the collector has drained the
        // channel (its senders went with the server).
        if let Some(collector) = self.collector.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), collector).await;
        }
        self.summary = Some(summary.clone());
        summary
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The path of an installed tool; fails the test (with how to fix it) when it is missing.
pub fn require_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed (not on PATH): install with make setup"))
}

/// A port nothing listens on right now (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Run a tool to completion (killed after `limit`) and return its output.
pub async fn run_tool<S: AsRef<OsStr>>(name: &str, args: &[S], limit: Duration) -> Output {
    run_tool_with_env(name, args, &[], limit).await
}

/// [`run_tool`] with extra environment variables.
pub async fn run_tool_with_env<S: AsRef<OsStr>>(
    name: &str,
    args: &[S],
    env: &[(&str, &str)],
    limit: Duration,
) -> Output {
    let program = require_tool(name);
    let child = tokio::process::Command::new(&program)
        .args(args)
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null())
        .output();
    tokio::time::timeout(limit, child)
        .await
        .unwrap_or_else(|_| panic!("{name} did not finish within {limit:?}"))
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

/// stdout and stderr of a tool, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// DCMTK `echoscu -aet CALLING -aec CALLED 127.0.0.1 PORT`.
pub async fn echoscu(port: u16, calling_ae: &str, called_ae: &str) -> Output {
    let port = port.to_string();
    run_tool(
        "echoscu",
        &["-aet", calling_ae, "-aec", called_ae, "127.0.0.1", &port],
        Duration::from_secs(60),
    )
    .await
}

/// DCMTK `storescu -aet CALLING -aec SEGNODE [options] 127.0.0.1 PORT files…` (one
/// association for all files).
pub async fn storescu(port: u16, calling_ae: &str, options: &[&str], files: &[PathBuf]) -> Output {
    storescu_with_env(port, calling_ae, options, files, &[]).await
}

/// [`storescu`] with extra environment variables (DCMTK reads `TCP_NODELAY=1`, for one).
pub async fn storescu_with_env(
    port: u16,
    calling_ae: &str,
    options: &[&str],
    files: &[PathBuf],
    env: &[(&str, &str)],
) -> Output {
    let mut args: Vec<std::ffi::OsString> = vec![
        "-aet".into(),
        calling_ae.into(),
        "-aec".into(),
        NODE_AE.into(),
    ];
    args.extend(options.iter().map(Into::into));
    args.push("127.0.0.1".into());
    args.push(port.to_string().into());
    args.extend(files.iter().map(|f| f.as_os_str().to_owned()));
    run_tool_with_env("storescu", &args, env, Duration::from_secs(300)).await
}

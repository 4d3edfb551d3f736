//! The whole node (SCP, pipelines, outbox) for a test, in the manner of zero-to-production's
//! `spawn_app`: [`node_config`] gives the config every node suite starts from, a test
//! changes what it needs on the returned [`Config`], and [`spawn_node`] runs it in-process
//! on a free loopback port and returns once it answers C-ECHO. [`BlockingNode`] is the
//! same for a synchronous test; `child_node::ChildNode` runs the same config in the
//! `segnode` binary, written by [`write_config`].
//!
//! Every wait is bounded and panics saying what it waited for.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use segnode::ae::{AeTitle, Peer};
use segnode::config::{Config, DestinationConfig};
use segnode::dimse::Status;
use segnode::scu::{ScuOptions, SendReport};
use segnode::serve::{NodeSummary, ServeError};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{NODE_AE, TEST_SCU_AE};

/// How long a node may take to answer its first C-ECHO (it loads its models first).
pub const START_LIMIT: Duration = Duration::from_secs(60);
/// How long [`SpawnedNode::stop`] waits for the node to finish.
pub const STOP_LIMIT: Duration = Duration::from_secs(60);
/// Associations [`spawn_node`] opens itself (the readiness C-ECHO); they count in
/// `NodeSummary::scp.associations`.
pub const READINESS_ASSOCIATIONS: u64 = 1;

/// The settings every test node shares: our AE title on 127.0.0.1, a free port (the port
/// a child process listens on; [`spawn_node`] binds a fresh one), `data_dir`, no disk
/// floor. The pipelines are the defaults: [`node_config`] sets the test ones.
pub fn loopback_config(data_dir: &Path) -> Config {
    let mut config = Config::default();
    config.node.ae_title = AeTitle::parse(NODE_AE).unwrap();
    config.node.bind = Ipv4Addr::LOCALHOST.into();
    config.node.port = super::free_port();
    config.node.data_dir = data_dir.to_path_buf();
    config.storage.min_free_disk_mb = 0;
    config
}

/// The whole-node config for a test folder `dir`: [`loopback_config`] on `<dir>/spool`,
/// the shipped DCE pipeline sized for the small test studies (`dce::pipelines_dir`,
/// written to `<dir>/pipelines`) as the only one enabled, the repository's models. Tests
/// change what they need on the result (more pipelines through [`write_pipeline`] into
/// the same folder, destinations, the outbox policy, access control).
pub fn node_config(dir: &Path) -> Config {
    let mut config = loopback_config(&dir.join("spool"));
    config.pipelines.enabled = vec!["dce_breast".to_string()];
    config.pipelines.definitions_dir = super::dce::pipelines_dir(dir, "dce_breast", &[]);
    config.pipelines.models_dir = super::dce::models_dir();
    config
}

/// Write `<dir>/pipelines/<name>.toml` (the folder [`node_config`] uses): the shipped
/// `conf/pipelines/<name>.toml`, without its measurement report unless `keep_report`, with
/// each `(from, to)` edit applied. An edit that no longer finds its text fails the test,
/// so a changed shipped file cannot silently void a test. Returns the folder.
pub fn write_pipeline(
    dir: &Path,
    name: &str,
    keep_report: bool,
    edits: &[(&str, &str)],
) -> PathBuf {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("conf/pipelines/{name}.toml"));
    let text = std::fs::read_to_string(&shipped).unwrap();
    let mut text = if keep_report {
        text
    } else {
        super::dce::without_report(&text)
    };
    for (from, to) in edits {
        assert!(
            text.contains(from),
            "{} no longer contains {from:?}",
            shipped.display()
        );
        text = text.replace(from, to);
    }
    let definitions = dir.join("pipelines");
    std::fs::create_dir_all(&definitions).unwrap();
    std::fs::write(definitions.join(format!("{name}.toml")), text).unwrap();
    definitions
}

/// A DIMSE destination `name`: `ae`@127.0.0.1:`port`.
pub fn dimse_destination(name: &str, ae: &str, port: u16) -> DestinationConfig {
    destination(&format!(
        "name = '{name}'\nae_title = '{ae}'\nhost = '127.0.0.1'\nport = {port}\n"
    ))
}

/// A destination from its `[[destinations]]` keys (every other key at its default).
pub fn destination(toml: &str) -> DestinationConfig {
    toml::from_str(toml).unwrap_or_else(|e| panic!("destination {toml:?}: {e}"))
}

/// `config` as the config file a `segnode` process reads (it is validated, and loads back
/// as the same config).
pub fn config_toml(config: &Config) -> String {
    let text = toml::to_string(config).expect("the config serialises as TOML");
    Config::from_toml(&text, "<test config>", None)
        .unwrap_or_else(|e| panic!("the test config is invalid: {e}\n{text}"));
    text
}

/// Write `config` as TOML to `path`, for `segnode serve --config path`.
pub fn write_config(config: &Config, path: &Path) {
    std::fs::write(path, config_toml(config)).unwrap();
}

/// The last `lines` lines of a log file ("" when there is none).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The `.dcm` files directly in `<results>/<study_uid>` (SEGs, and reports where a pipeline
/// keeps them), sorted.
pub fn results_of(results: &Path, study_uid: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(results.join(study_uid))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "dcm"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Whether a poll that began at `start` may go on; panics with `what` and `context` once
/// `limit` has passed.
pub fn within(start: Instant, limit: Duration, what: &str, context: &dyn Fn() -> String) {
    assert!(
        start.elapsed() < limit,
        "timed out after {limit:?} waiting for {what}{}",
        context()
    );
}

/// What a wait on an in-process node adds to its panic message.
fn in_process_log() -> String {
    " (the node runs in-process: its log is in the test output above)".to_string()
}

/// A node running in-process (see [`spawn_node`]); stopped, if the test did not, when
/// dropped.
pub struct SpawnedNode {
    /// Its DICOM port on 127.0.0.1.
    pub port: u16,
    /// Its data folder (spool, results).
    pub data_dir: PathBuf,
    /// Its AE title.
    pub ae_title: String,
    results_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<NodeSummary, ServeError>>>,
}

/// Run `config` in-process: validated (as [`config_toml`] does), on a fresh listener on
/// 127.0.0.1 (`node.port` is set to its port), until [`SpawnedNode::stop`]. Returns once the
/// node answers a C-ECHO (called by the first AE title of `access.allow`, or
/// [`TEST_SCU_AE`]); panics if it does not within [`START_LIMIT`] or stops first.
pub async fn spawn_node(config: Config) -> SpawnedNode {
    super::init_logging();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let mut config = Config::from_toml(&config_toml(&config), "<test config>", None).unwrap();
    config.node.port = listener.local_addr().unwrap().port();
    let calling = config
        .access
        .allow
        .first()
        .map_or_else(|| TEST_SCU_AE.to_string(), |a| a.ae_title.to_string());
    let (stop, stop_rx) = oneshot::channel::<()>();
    let mut node = SpawnedNode {
        port: config.node.port,
        data_dir: config.node.data_dir.clone(),
        ae_title: config.node.ae_title.to_string(),
        results_dir: config.results_dir(),
        stop: Some(stop),
        task: None,
    };
    node.task = Some(tokio::spawn(segnode::serve::run_on(
        listener,
        config,
        async move {
            let _ = stop_rx.await;
        },
    )));
    node.wait_ready(&calling).await;
    node
}

/// Start `config` in-process and expect it to refuse: the error it stopped with (bounded
/// by [`START_LIMIT`]).
pub async fn spawn_node_error(config: Config) -> ServeError {
    super::init_logging();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let run = segnode::serve::run_on(listener, config, std::future::pending());
    match tokio::time::timeout(START_LIMIT, run).await {
        Ok(Ok(_)) => panic!("the node started and stopped without an error"),
        Ok(Err(e)) => e,
        Err(_) => panic!("the node neither failed nor stopped within {START_LIMIT:?}"),
    }
}

impl SpawnedNode {
    /// C-ECHO as `calling` until the node answers, bounded; once: the listener is bound
    /// before the node starts, so the association waits for the node, however long its
    /// start takes.
    async fn wait_ready(&mut self, calling: &str) {
        let mut opts = ScuOptions::new(AeTitle::parse(calling).unwrap());
        opts.connect_timeout = START_LIMIT;
        let peer = self.peer(&self.ae_title);
        let echo = tokio::time::timeout(START_LIMIT, segnode::scu::echo(&peer, &opts));
        let task = self.task.as_mut().expect("the node task");
        tokio::select! {
            answer = echo => match answer {
                Ok(Ok(status)) => assert_eq!(
                    status,
                    Status::SUCCESS,
                    "the node answered the readiness C-ECHO with {status:?}"
                ),
                Ok(Err(e)) => panic!("the node did not answer the readiness C-ECHO: {e}"),
                Err(_) => panic!("the node did not answer C-ECHO within {START_LIMIT:?}{}", in_process_log()),
            },
            ended = task => panic!("the node stopped during start-up: {ended:?}"),
        }
    }

    /// `AE@127.0.0.1:PORT` of this node called `called_ae`.
    pub fn peer(&self, called_ae: &str) -> Peer {
        format!("{called_ae}@127.0.0.1:{}", self.port)
            .parse()
            .unwrap()
    }

    /// `SEGNODE@127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        self.peer(&self.ae_title).to_string()
    }

    /// Where it writes SEGs (`pipelines.results_dir`).
    pub fn results_dir(&self) -> &Path {
        &self.results_dir
    }

    /// C-STORE `files` as [`TEST_SCU_AE`] on one association; every one must be
    /// acknowledged.
    pub async fn send(&self, files: &[PathBuf]) -> SendReport {
        self.send_as(TEST_SCU_AE, &self.ae_title, files).await
    }

    /// [`SpawnedNode::send`] calling as `calling_ae` and to `called_ae`.
    pub async fn send_as(
        &self,
        calling_ae: &str,
        called_ae: &str,
        files: &[PathBuf],
    ) -> SendReport {
        let opts = ScuOptions::new(AeTitle::parse(calling_ae).unwrap());
        let report = segnode::scu::send_files(&self.peer(called_ae), &opts, files)
            .await
            .unwrap_or_else(|e| panic!("C-STORE to {}: {e}", self.peer(called_ae)));
        assert_eq!(
            (report.sent, report.failed),
            (files.len(), 0),
            "every instance is acknowledged: {:?}",
            report.failures
        );
        report
    }

    /// The `.dcm` files in the results folder of `study_uid` now.
    pub fn results(&self, study_uid: &str) -> Vec<PathBuf> {
        results_of(&self.results_dir, study_uid)
    }

    /// Wait until the results folder of `study_uid` holds at least `n` `.dcm` files;
    /// return them. Panics after `limit`.
    pub async fn wait_for_results(
        &self,
        study_uid: &str,
        n: usize,
        limit: Duration,
    ) -> Vec<PathBuf> {
        let what = format!("{n} result file(s) of study {study_uid}");
        self.wait_for(&what, limit, || {
            let files = self.results(study_uid);
            (files.len() >= n).then_some(files)
        })
        .await
    }

    /// Poll `probe` every 100 ms until it gives a value; panics with `what` after `limit`.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        limit: Duration,
        mut probe: impl FnMut() -> Option<T>,
    ) -> T {
        let start = Instant::now();
        loop {
            if let Some(value) = probe() {
                return value;
            }
            within(start, limit, what, &in_process_log);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stop it and wait (at most [`STOP_LIMIT`]): what it did.
    pub async fn stop(self) -> NodeSummary {
        self.stop_within(STOP_LIMIT).await
    }

    /// Stop it; panics unless it has stopped within `limit`.
    pub async fn stop_within(mut self, limit: Duration) -> NodeSummary {
        let _ = self.stop.take().expect("not stopped yet").send(());
        let task = self.task.take().expect("the node task");
        match tokio::time::timeout(limit, task).await {
            Ok(Ok(Ok(summary))) => summary,
            Ok(Ok(Err(e))) => panic!("the node stopped with an error: {e}"),
            Ok(Err(e)) => panic!("the node task failed: {e}"),
            Err(_) => panic!("the node did not stop within {limit:?}{}", in_process_log()),
        }
    }
}

impl Drop for SpawnedNode {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// [`spawn_node`] for a synchronous test (one that drives blocking clients): the node runs
/// on a runtime of its own, whose worker threads serve it while the test blocks.
pub struct BlockingNode {
    node: Option<SpawnedNode>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl BlockingNode {
    /// [`spawn_node`] on a new 4-thread runtime.
    pub fn start(config: Config) -> BlockingNode {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap();
        let node = runtime.block_on(spawn_node(config));
        BlockingNode {
            node: Some(node),
            runtime: Some(runtime),
        }
    }

    /// The node.
    pub fn node(&self) -> &SpawnedNode {
        self.node.as_ref().expect("the node runs")
    }

    /// Its DICOM port.
    pub fn port(&self) -> u16 {
        self.node().port
    }

    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.as_ref().expect("the runtime").block_on(future)
    }

    /// [`SpawnedNode::wait_for_results`], blocking.
    pub fn wait_for_results(&self, study_uid: &str, n: usize, limit: Duration) -> Vec<PathBuf> {
        self.block_on(self.node().wait_for_results(study_uid, n, limit))
    }

    /// [`SpawnedNode::stop`], blocking.
    pub fn stop(mut self) -> NodeSummary {
        let node = self.node.take().expect("the node runs");
        self.block_on(node.stop())
    }
}

impl Drop for BlockingNode {
    /// Stop the node if the test did not (it panicked), and give up its runtime without
    /// waiting long for a job in flight.
    fn drop(&mut self) {
        drop(self.node.take());
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(10));
        }
    }
}

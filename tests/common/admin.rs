//! A node with its admin HTTP server, in-process: DICOM and HTTP both on 127.0.0.1 port 0,
//! the DCE pipeline sized for the small test studies, plus HTTP helpers (the node's own
//! minimal client) and a bounded wait.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use segnode::ae::{AeTitle, Peer};
use segnode::config::Config;
use segnode::http::client::{self, Response};
use segnode::serve::{NodeListeners, NodeSummary, ServeError};

/// Every HTTP request and wait is bounded by this.
pub const LIMIT: Duration = Duration::from_secs(90);

/// A node config: loopback, the spool under `dir`, the shipped DCE pipeline with `edits`
/// (min_slices lowered to the test studies), the repo's models (or `models_dir`), and
/// `extra` TOML appended (e.g. `[http]`, `[[destinations]]`).
pub fn config(
    dir: &Path,
    edits: &[(&str, &str)],
    models_dir: Option<&Path>,
    extra: &str,
) -> Config {
    let definitions = super::dce::pipelines_dir(dir, "dce_breast", edits);
    let models = models_dir.map_or_else(super::dce::models_dir, Path::to_path_buf);
    let text = format!(
        "[node]\nae_title = 'SEGNODE'\nbind = '127.0.0.1'\nport = 11112\ndata_dir = '{}'\n\
         [network]\nconnect_timeout_seconds = 5\nread_timeout_seconds = 10\n\
         [storage]\nmin_free_disk_mb = 0\n\
         [pipelines]\nenabled = ['dce_breast']\ndefinitions_dir = '{}'\nmodels_dir = '{}'\n{extra}",
        dir.join("spool").display(),
        definitions.display(),
        models.display()
    );
    Config::from_toml(&text, "<test config>", None).unwrap()
}

/// A copy of the repo's DCE model in its own folder (tests remove it).
pub fn models_copy(dir: &Path) -> PathBuf {
    let models = dir.join("models");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::copy(
        super::dce::models_dir().join("dce_kinetic.pt"),
        models.join("dce_kinetic.pt"),
    )
    .unwrap();
    models
}

/// A running node with its admin HTTP server.
pub struct AdminNode {
    /// DICOM port.
    pub dicom_port: u16,
    /// Admin HTTP address.
    pub http: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<NodeSummary, ServeError>>,
}

impl AdminNode {
    /// Start `config` on fresh loopback ports.
    pub async fn start(config: Config) -> AdminNode {
        super::init_logging();
        let dicom = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dicom_port = dicom.local_addr().unwrap().port();
        let http_addr = http.local_addr().unwrap();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let listeners = NodeListeners {
            dicom: dicom.into(),
            http: Some(http),
        };
        let task = tokio::spawn(segnode::serve::run_with(listeners, config, async move {
            let _ = stop_rx.await;
        }));
        let node = AdminNode {
            dicom_port,
            http: http_addr,
            stop,
            task,
        };
        node.wait_for("/healthz answers", |n| async move {
            n.get("/healthz").await.status == 200
        })
        .await;
        node
    }

    /// C-STORE `files` on one association; every one must be acknowledged.
    pub async fn send(&self, files: &[PathBuf]) {
        let peer: Peer = format!("SEGNODE@127.0.0.1:{}", self.dicom_port)
            .parse()
            .unwrap();
        let opts = segnode::scu::ScuOptions::new(AeTitle::parse("TESTSCU").unwrap());
        let report = segnode::scu::send_files(&peer, &opts, files).await.unwrap();
        assert_eq!((report.sent, report.failed), (files.len(), 0));
    }

    /// `GET path` (panics when the node does not answer).
    pub async fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[]).await
    }

    /// `POST path` with an optional bearer token.
    pub async fn post(&self, path: &str, token: Option<&str>) -> Response {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("X-Operator", "test".to_string())];
        if let Some(a) = auth {
            headers.push(("Authorization", a));
        }
        let headers: Vec<(&str, String)> = headers;
        let owned: Vec<(String, String)> = headers
            .into_iter()
            .map(|(n, v)| (n.to_string(), v))
            .collect();
        self.request_owned("POST", path, owned).await
    }

    async fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        let owned = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        self.request_owned(method, path, owned).await
    }

    async fn request_owned(
        &self,
        method: &str,
        path: &str,
        headers: Vec<(String, String)>,
    ) -> Response {
        let (addr, method, path) = (self.http, method.to_string(), path.to_string());
        tokio::task::spawn_blocking(move || {
            let h: Vec<(&str, &str)> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            client::request(addr, &method, &path, &h, LIMIT)
                .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"))
        })
        .await
        .unwrap()
    }

    /// Poll `check` every 200 ms until it holds; panic with `what` after [`LIMIT`].
    pub async fn wait_for<'a, F, Fut>(&'a self, what: &str, check: F)
    where
        F: Fn(&'a AdminNode) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + LIMIT;
        while !check(self).await {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The jobs `/api/jobs` lists.
    pub async fn jobs(&self) -> Vec<serde_json::Value> {
        let r = self.get("/api/jobs").await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json().unwrap()["jobs"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Stop the node (bounded).
    pub async fn stop(self) -> NodeSummary {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the node stops within 30 s")
            .unwrap()
            .unwrap()
    }
}

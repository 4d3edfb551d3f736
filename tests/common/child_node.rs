//! `segnode serve` as a child process on a free loopback port, for tests that must see the
//! whole process: that it is still alive after an attack, how much memory it holds
//! (`VmRSS`, `VmHWM` from `/proc`), what a `kill -9` leaves. Its config is the one
//! `node::node_config` (or `node::loopback_config`) builds, written as TOML. Killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use segnode::config::Config;

use super::node;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_segnode");

/// A running `segnode serve`.
pub struct ChildNode {
    child: Child,
    /// Its DICOM port.
    pub port: u16,
    /// Its data folder.
    pub data_dir: PathBuf,
    /// Where it writes SEGs.
    pub results_dir: PathBuf,
    /// Its log (stderr).
    pub log: PathBuf,
}

impl ChildNode {
    /// Start a storage-only node under `dir` ([`node::loopback_config`] on `<dir>/spool`,
    /// no pipelines) with `edit` applied to its config (e.g. a smaller
    /// `network.memory_budget_mb`), and wait until it answers C-ECHO.
    pub fn start(dir: &Path, edit: impl FnOnce(&mut Config)) -> ChildNode {
        let mut config = node::loopback_config(&dir.join("spool"));
        config.pipelines.enabled.clear();
        edit(&mut config);
        Self::start_with(dir, &config)
    }

    /// Run `config` (written as `<dir>/segnode.toml` by [`node::write_config`]; its stderr
    /// appended to `<dir>/segnode.log`, so a restart on the same `dir` keeps one log) and
    /// wait until it answers C-ECHO on `node.port`.
    pub fn start_with(dir: &Path, config: &Config) -> ChildNode {
        let path = dir.join("segnode.toml");
        node::write_config(config, &path);
        let log = dir.join("segnode.log");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&path)
            .env("RUST_LOG", "segnode=info")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut node = ChildNode {
            child,
            port: config.node.port,
            data_dir: config.node.data_dir.clone(),
            results_dir: config.results_dir(),
            log,
        };
        node.wait_ready();
        node
    }

    fn wait_ready(&mut self) {
        self.wait_for("C-ECHO to be answered", Duration::from_secs(60), |node| {
            assert!(
                node.is_alive(),
                "segnode exited during start-up; log:\n{}",
                node.log_text()
            );
            node.answers_echo().then_some(())
        });
    }

    /// Poll `probe` every 20 ms until it gives a value; panics with `what` and the tail of
    /// the node's log after `limit`.
    pub fn wait_for<T>(
        &mut self,
        what: &str,
        limit: Duration,
        mut probe: impl FnMut(&mut ChildNode) -> Option<T>,
    ) -> T {
        let start = Instant::now();
        loop {
            if let Some(value) = probe(self) {
                return value;
            }
            node::within(start, limit, what, &|| {
                format!("; segnode log (tail):\n{}", node::log_tail(&self.log, 40))
            });
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every `.dcm` file under its results folder (SEGs of every study), sorted.
    pub fn results(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for path in std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
            {
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|x| x == "dcm") {
                    out.push(path);
                }
            }
        }
        let mut files = Vec::new();
        walk(&self.results_dir, &mut files);
        files.sort();
        files
    }

    /// `kill -9` it and reap it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    /// Whether `segnode echo` gets a C-ECHO success from it now.
    pub fn answers_echo(&self) -> bool {
        Command::new(BIN)
            .args(["echo", &self.ae_address(), "--timeout", "5"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    }

    /// `SEGNODE@127.0.0.1:PORT`.
    pub fn ae_address(&self) -> String {
        format!("{}@127.0.0.1:{}", super::NODE_AE, self.port)
    }

    /// Whether the process still runs.
    pub fn is_alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// A `/proc/<pid>/status` value in KiB (`"VmRSS"`, `"VmHWM"`).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    /// What it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        self.kill9();
    }
}

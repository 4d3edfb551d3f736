//! `segnode serve` as a child process on a free loopback port, for tests that must see the
//! whole process: that it is still alive after an attack, and how much memory it holds
//! (`VmRSS`, `VmHWM` from `/proc`). Killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_segnode");

/// A running `segnode serve`.
pub struct ChildNode {
    child: Child,
    /// Its DICOM port.
    pub port: u16,
    /// Its data folder.
    pub data_dir: PathBuf,
    /// Its log (stderr).
    pub log: PathBuf,
}

impl ChildNode {
    /// Start a storage-only node under `dir` with `extra` TOML appended to `[network]`
    /// (e.g. `"memory_budget_mb = 64"`), and wait until it answers C-ECHO.
    pub fn start(dir: &Path, network: &str) -> ChildNode {
        let port = super::free_port();
        let data_dir = dir.join("spool");
        let config = dir.join("segnode.toml");
        std::fs::write(
            &config,
            format!(
                "[node]\nae_title = '{ae}'\nbind = '127.0.0.1'\nport = {port}\ndata_dir = '{data}'\n\
                 [network]\n{network}\n\
                 [storage]\nmin_free_disk_mb = 0\n\
                 [pipelines]\nenabled = []\n",
                ae = super::NODE_AE,
                data = data_dir.display(),
            ),
        )
        .unwrap();
        let log = dir.join("segnode.log");
        let child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "segnode=info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut node = ChildNode {
            child,
            port,
            data_dir,
            log,
        };
        node.wait_ready();
        node
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.answers_echo() {
            assert!(
                self.is_alive(),
                "segnode exited during start-up: {}",
                self.log_text()
            );
            assert!(
                Instant::now() < deadline,
                "segnode did not answer C-ECHO within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
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
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

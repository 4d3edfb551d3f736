//! DCMTK `storescp` as a test destination: started on a loopback port with Nagle off,
//! waited for (bounded), killed when dropped.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use segnode::ae::Peer;

/// A running `storescp -aet AE -od DIR [extra] PORT`.
pub struct Storescp {
    child: Child,
    /// Where it listens.
    pub port: u16,
    ae: String,
    received: tempfile::TempDir,
    _log_dir: tempfile::TempDir,
}

impl Storescp {
    /// On a free port (another port is tried if one is lost to a race).
    pub fn start(ae: &str, extra: &[&str]) -> Storescp {
        (0..3)
            .find_map(|_| Self::spawn(super::free_port(), ae, extra))
            .expect("storescp did not start listening")
    }

    /// On `port`, reserved by the caller (to bring a destination up after the test began).
    pub fn start_on(port: u16, ae: &str, extra: &[&str]) -> Storescp {
        Self::spawn(port, ae, extra).unwrap_or_else(|| panic!("storescp did not listen on {port}"))
    }

    fn spawn(port: u16, ae: &str, extra: &[&str]) -> Option<Storescp> {
        let received = tempfile::tempdir().unwrap();
        let log_dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(log_dir.path().join("storescp.log")).unwrap();
        let child = Command::new(super::require_tool("storescp"))
            // DCMTK keeps Nagle's algorithm on unless told otherwise: ~40 ms per response.
            .env("TCP_NODELAY", "1")
            .args(["-aet", ae, "-od"])
            .arg(received.path())
            .args(extra)
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("storescp could not be started");
        let mut scp = Storescp {
            child,
            port,
            ae: ae.to_string(),
            received,
            _log_dir: log_dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = scp.child.try_wait() {
                return None;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(scp);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// `AE@127.0.0.1:PORT`.
    pub fn peer(&self) -> Peer {
        format!("{}@127.0.0.1:{}", self.ae, self.port)
            .parse()
            .unwrap()
    }

    /// The files it wrote so far.
    pub fn files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.received.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect()
    }

    /// The files it wrote, once there are `n` (or `limit` has passed).
    pub fn wait_for_files(&self, n: usize, limit: Duration) -> Vec<PathBuf> {
        let deadline = Instant::now() + limit;
        loop {
            let files = self.files();
            if files.len() >= n || Instant::now() > deadline {
                return files;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Storescp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

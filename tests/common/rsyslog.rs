//! A real rsyslog as the audit collector: `rsyslogd -n` with its own config, listening on
//! loopback (TCP with octet counting, and UDP on the same port number), writing each
//! message's MSGID and body, one per line, to a file the test reads. Killed when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running rsyslogd.
pub struct Rsyslog {
    child: Child,
    /// TCP and UDP port.
    pub port: u16,
    out: PathBuf,
    dir: tempfile::TempDir,
}

impl Rsyslog {
    /// Start on a free port; panics (with the log) if it does not listen within 10 s.
    pub fn start() -> Rsyslog {
        let rsyslogd = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .unwrap_or_else(|| super::require_tool("rsyslogd"));
        let dir = tempfile::tempdir().unwrap();
        let port = super::free_port();
        let out = dir.path().join("audit.log");
        let conf = dir.path().join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{work}" maxMessageSize="64k")
module(load="imtcp")
module(load="imudp")
input(type="imtcp" address="127.0.0.1" port="{port}")
input(type="imudp" address="127.0.0.1" port="{port}")
template(name="line" type="string" string="%msgid% %app-name% %msg%\n")
action(type="omfile" file="{out}" template="line")
"#,
                work = dir.path().display(),
                out = out.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("rsyslogd.log")).unwrap();
        let child = Command::new(rsyslogd)
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.path().join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start rsyslogd (make setup installs rsyslog)");
        let mut r = Rsyslog {
            child,
            port,
            out,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = r.child.try_wait() {
                panic!("rsyslogd exited ({status}): {}", r.log());
            }
            assert!(
                Instant::now() < deadline,
                "rsyslogd does not listen: {}",
                r.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    /// rsyslogd's own output, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rsyslogd.log")).unwrap_or_default()
    }

    /// The lines written so far.
    pub fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Wait (at most `limit`) until some line satisfies `pred` for every predicate.
    pub async fn wait_for(&self, preds: &[&dyn Fn(&str) -> bool], limit: Duration) -> Vec<String> {
        let start = Instant::now();
        loop {
            let lines = self.lines();
            if preds.iter().all(|p| lines.iter().any(|l| p(l))) {
                return lines;
            }
            assert!(
                start.elapsed() < limit,
                "rsyslog did not receive the expected messages within {limit:?}; it has:\n{}\n{}",
                lines.join("\n"),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

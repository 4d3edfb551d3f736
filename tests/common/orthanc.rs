//! A real Orthanc (Debian package, 1.10) for the integration tests: started from the
//! shipped template `conf/orthanc/orthanc.json` (with its Lua routing script) on free
//! ports, with its own temporary storage, segnode declared at the test's port; stopped
//! (SIGTERM, then SIGKILL) when dropped. HTTP/1.1 over std's TcpStream (no HTTP crate, no curl).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// The repository's template folder.
pub fn template_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/orthanc")
}

pub struct Orthanc {
    child: Option<Child>,
    pub dir: PathBuf,
    pub http_port: u16,
    pub dicom_port: u16,
    pub log: PathBuf,
}

/// Merge `extra` into `config`: objects key by key, anything else replaces.
fn merge(config: &mut serde_json::Value, extra: &serde_json::Value) {
    match (config, extra) {
        (serde_json::Value::Object(c), serde_json::Value::Object(e)) => {
            for (k, v) in e {
                merge(c.entry(k.clone()).or_insert(serde_json::Value::Null), v);
            }
        }
        (_, serde_json::Value::Null) => {}
        (c, e) => *c = e.clone(),
    }
}

impl Orthanc {
    /// Start Orthanc from the template under `dir`, with segnode declared at
    /// `127.0.0.1:segnode_port`; wait (bounded) until its REST API answers.
    pub fn start(dir: &Path, segnode_port: u16) -> Orthanc {
        Orthanc::launch(dir, segnode_port, None, &serde_json::Value::Null)
    }

    /// As `start`, with `extra` merged into the configuration (objects key by key, other
    /// values replaced): DICOM TLS settings, for instance.
    pub fn start_with(dir: &Path, segnode_port: u16, extra: &serde_json::Value) -> Orthanc {
        Orthanc::launch(dir, segnode_port, None, extra)
    }

    /// As `start`, on a DICOM port chosen by the caller (a node config that names Orthanc
    /// as a destination needs it first).
    pub fn start_with_dicom_port(dir: &Path, segnode_port: u16, dicom_port: u16) -> Orthanc {
        Orthanc::launch(
            dir,
            segnode_port,
            Some(dicom_port),
            &serde_json::Value::Null,
        )
    }

    /// As `start_with`, on DICOM and HTTP ports chosen by the caller (a node config that
    /// names Orthanc's DICOMweb URL needs its HTTP port first).
    #[allow(dead_code)]
    pub fn start_on_ports(
        dir: &Path,
        segnode_port: u16,
        dicom_port: u16,
        http_port: u16,
        extra: &serde_json::Value,
    ) -> Orthanc {
        Orthanc::launch_once(dir, segnode_port, http_port, dicom_port, extra)
            .unwrap_or_else(|log_tail| panic!("Orthanc did not start; log:\n{log_tail}"))
    }

    /// Ports are picked free and released before Orthanc binds them: when another process
    /// took one meanwhile, Orthanc exits at start ("already in use") and is started again
    /// on other ports (a DICOM port fixed by the caller is kept).
    fn launch(
        dir: &Path,
        segnode_port: u16,
        fixed_dicom_port: Option<u16>,
        extra: &serde_json::Value,
    ) -> Orthanc {
        assert!(
            Command::new("Orthanc").arg("--version").output().is_ok(),
            "Orthanc is missing: run `make setup` (Debian package orthanc)"
        );
        let mut attempt = 1;
        loop {
            let dicom_port = fixed_dicom_port.unwrap_or_else(free_port);
            match Orthanc::launch_once(dir, segnode_port, free_port(), dicom_port, extra) {
                Ok(orthanc) => return orthanc,
                Err(log_tail) if attempt < 3 && log_tail.contains("already in use") => {
                    attempt += 1;
                }
                Err(log_tail) => panic!("Orthanc did not start; log:\n{log_tail}"),
            }
        }
    }

    fn launch_once(
        dir: &Path,
        segnode_port: u16,
        http_port: u16,
        dicom_port: u16,
        extra: &serde_json::Value,
    ) -> Result<Orthanc, String> {
        std::fs::create_dir_all(dir).unwrap();
        let template = template_dir();
        let text = std::fs::read_to_string(template.join("orthanc.json")).unwrap();
        let mut config: serde_json::Value = serde_json::from_str(&text)
            .expect("conf/orthanc/orthanc.json is plain JSON (no comments)");
        config["HttpPort"] = http_port.into();
        config["DicomPort"] = dicom_port.into();
        config["StorageDirectory"] = dir.join("storage").display().to_string().into();
        config["IndexDirectory"] = dir.join("index").display().to_string().into();
        let scripts: Vec<serde_json::Value> = config["LuaScripts"]
            .as_array()
            .expect("LuaScripts in the template")
            .iter()
            .map(|s| {
                template
                    .join(s.as_str().unwrap())
                    .display()
                    .to_string()
                    .into()
            })
            .collect();
        config["LuaScripts"] = scripts.into();
        config["DicomModalities"]["segnode"]["Port"] = segnode_port.into();
        merge(&mut config, extra);
        let config_path = dir.join("orthanc.json");
        std::fs::write(&config_path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
        let log = dir.join("orthanc.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("Orthanc")
            .arg(&config_path)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .expect("start Orthanc");
        let mut orthanc = Orthanc {
            child: Some(child),
            dir: dir.to_path_buf(),
            http_port,
            dicom_port,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = orthanc.child.as_mut().unwrap().try_wait().unwrap() {
                orthanc.child = None;
                return Err(format!("(exited: {status})\n{}", orthanc.log_tail(40)));
            }
            // Ours, not another process that holds the port: it answers with our DICOM port.
            if orthanc
                .try_get("/system")
                .is_some_and(|s| s["DicomPort"] == dicom_port)
            {
                return Ok(orthanc);
            }
            assert!(
                Instant::now() < deadline,
                "Orthanc's REST API did not answer within 30 s; log:\n{}",
                orthanc.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    /// The last `n` lines of Orthanc's log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read(&self.log).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Lines Orthanc's Lua printed (`Lua says: ...`).
    pub fn lua_lines(&self) -> Vec<String> {
        let text = std::fs::read(&self.log).unwrap_or_default();
        String::from_utf8_lossy(&text)
            .lines()
            .filter(|l| l.contains("Lua says: segnode routing"))
            .map(str::to_string)
            .collect()
    }

    /// One HTTP/1.1 request over a fresh connection (`Connection: close`); Some(body) on a
    /// 2xx answer. A tiny std-only client: no HTTP crate, no curl needed.
    fn http(&self, method: &str, path: &str, body: &[u8]) -> Option<Vec<u8>> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.http_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        s.set_write_timeout(Some(Duration::from_secs(30))).ok()?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\
             Content-Length: {}\r\n\r\n",
            self.http_port,
            body.len()
        );
        s.write_all(head.as_bytes()).ok()?;
        s.write_all(body).ok()?;
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).ok()?;
        let end = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
        let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
        let mut rest = answer[end + 4..].to_vec();
        if head.contains("transfer-encoding: chunked") {
            let mut out = Vec::new();
            loop {
                let eol = rest.windows(2).position(|w| w == b"\r\n")?;
                let size_text = String::from_utf8_lossy(&rest[..eol]).to_string();
                let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
                if size == 0 {
                    break;
                }
                out.extend_from_slice(rest.get(eol + 2..eol + 2 + size)?);
                rest.drain(..(eol + 2 + size + 2).min(rest.len()));
            }
            rest = out;
        } else if let Some(len) = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            rest.truncate(len);
        }
        (200..300).contains(&status).then_some(rest)
    }

    fn try_get(&self, path: &str) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.http("GET", path, b"")?).ok()
    }

    /// GET a JSON resource; panics with the log tail when it fails.
    pub fn get(&self, path: &str) -> serde_json::Value {
        self.try_get(path)
            .unwrap_or_else(|| panic!("GET {path} failed; Orthanc log:\n{}", self.log_tail(30)))
    }

    /// GET raw bytes (e.g. `/instances/{id}/file`).
    pub fn get_bytes(&self, path: &str) -> Vec<u8> {
        self.http("GET", path, b"")
            .unwrap_or_else(|| panic!("GET {path} failed; Orthanc log:\n{}", self.log_tail(30)))
    }

    /// POST a body given as a string.
    pub fn post(&self, path: &str, body: &str) -> serde_json::Value {
        let bytes = self
            .http("POST", path, body.as_bytes())
            .unwrap_or_else(|| panic!("POST {path} failed; Orthanc log:\n{}", self.log_tail(30)));
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)
    }

    /// Upload one DICOM file (`POST /instances`); returns Orthanc's answer (ID, ParentStudy…).
    pub fn upload(&self, file: &Path) -> serde_json::Value {
        let data = std::fs::read(file).unwrap();
        let bytes = self.http("POST", "/instances", &data).unwrap_or_else(|| {
            panic!(
                "upload of {} failed; Orthanc log:\n{}",
                file.display(),
                self.log_tail(30)
            )
        });
        serde_json::from_slice(&bytes).unwrap()
    }

    /// The study's series (expanded), as Orthanc lists them.
    pub fn series_of_study(&self, study_id: &str) -> Vec<serde_json::Value> {
        self.get(&format!("/studies/{study_id}/series"))
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The study's series whose Modality is `modality`.
    pub fn series_with_modality(&self, study_id: &str, modality: &str) -> Vec<serde_json::Value> {
        self.series_of_study(study_id)
            .into_iter()
            .filter(|s| s["MainDicomTags"]["Modality"] == modality)
            .collect()
    }

    /// Every job Orthanc remembers (expanded).
    pub fn jobs(&self) -> Vec<serde_json::Value> {
        self.get("/jobs?expand")
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Jobs that C-STOREd to a modality (what the Lua routing creates).
    pub fn store_jobs(&self) -> Vec<serde_json::Value> {
        self.jobs()
            .into_iter()
            .filter(|j| j["Type"] == "DicomModalityStore")
            .collect()
    }

    /// Poll `probe` every 250 ms until it returns Some, at most `limit`; panic with `what`
    /// and Orthanc's log tail otherwise.
    pub fn wait_for<T>(
        &self,
        what: &str,
        limit: Duration,
        mut probe: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = probe() {
                return v;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {} s waiting for {what}; Orthanc log:\n{}",
                    limit.as_secs(),
                    self.log_tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// SIGTERM, wait up to 15 s for the index to close, then SIGKILL.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        self.stop();
    }
}

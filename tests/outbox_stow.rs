//! The outbox's STOW-RS destinations and its permanent failures, against real peers on
//! 127.0.0.1: Orthanc with the Debian DICOMweb plugin, an in-test STOW-RS server that
//! answers what each test scripts, and the node's own SCP refusing a SOP class.
//!
//! The outbox runs on its own (`outbox::spawn` over a spool) with rows queued as a job
//! queues them: the instances are whatever files the rows name (here MR images from a
//! synthetic study; the sender does not care about the SOP class).
//!
//! What must hold: each instance arrives exactly once (retries after 500 included, and
//! after a restart of the sender nothing is sent again); a 409 whose Failed SOP Sequence
//! names an instance dead-letters that instance after one attempt with the archive's
//! reason, while the other instance is delivered; a DIMSE destination that refuses the SOP
//! class dead-letters after one attempt.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dicom_dictionary_std::tags;
use segnode::config::Config;
use segnode::outbox::OutboxHandle;
use segnode::pipeline::output::{OutputInstance, OutputKind};
use segnode::spool::{DeliveryState, OutboxRecord, Spool};
use segnode::synth::Orientation;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every wait is bounded by this.
const LIMIT: Duration = Duration::from_secs(60);

/// One instance queued for delivery.
#[derive(Debug, Clone)]
struct Instance {
    kind: OutputKind,
    path: PathBuf,
    sop_instance_uid: String,
}

impl Instance {
    fn output(&self) -> OutputInstance {
        OutputInstance {
            kind: self.kind,
            path: self.path.clone(),
            sop_instance_uid: self.sop_instance_uid.clone(),
        }
    }
}

fn text(obj: &dicom_object::DefaultDicomObject, tag: dicom_core::Tag) -> String {
    obj.element(tag)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches(['\0', ' '])
        .to_string()
}

/// `n` instances of a small synthetic study, and the study's UID. They are queued as a
/// job's outputs are (the first as the SEG, then a report and an overlay): the sender
/// sends the file whatever its SOP class, so MR images stand in for them.
fn instances(dir: &Path, n: usize, seed: u64) -> (String, Vec<Instance>) {
    let study = common::dce::small_study(dir, Orientation::Axial, seed, false);
    let picked = study
        .files
        .iter()
        .take(n)
        .zip(
            [OutputKind::Seg, OutputKind::Report, OutputKind::Overlay]
                .into_iter()
                .cycle(),
        )
        .map(|(path, kind)| {
            let obj = dicom_object::open_file(path).unwrap();
            Instance {
                kind,
                path: path.clone(),
                sop_instance_uid: text(&obj, tags::SOP_INSTANCE_UID),
            }
        })
        .collect();
    (study.study_uid, picked)
}

/// A node config with one destination (`destination` is its TOML body after `name`).
fn config(dir: &Path, destination: &str, max_attempts: u32) -> Config {
    let text = format!(
        "[node]\nae_title = 'SEGNODE'\nbind = '127.0.0.1'\nport = 11112\ndata_dir = '{}'\n\
         [network]\nconnect_timeout_seconds = 5\nread_timeout_seconds = 10\nwrite_timeout_seconds = 10\n\
         [storage]\nmin_free_disk_mb = 0\n\
         [http]\nenabled = false\n\
         [[destinations]]\nname = 'archive'\n{destination}\n\
         [outbox]\ninitial_delay_seconds = 1\nmax_delay_seconds = 2\nmax_attempts = {max_attempts}\n",
        dir.join("spool").display(),
    );
    Config::from_toml(&text, "<test config>", Some(dir)).unwrap()
}

/// The spool with `instances` queued for `archive` as one job's outputs.
fn queue(config: &Config, study_uid: &str, instances: &[Instance]) -> Arc<Spool> {
    let spool = Arc::new(Spool::open(&config.node.data_dir, &config.storage).unwrap());
    let job = spool
        .jobs()
        .started(
            "dce_breast",
            study_uid,
            "fingerprint",
            segnode::pipeline::assembler::Trigger::Stable,
        )
        .unwrap();
    for i in instances {
        spool
            .outbox()
            .enqueue(job, study_uid, &i.output(), &["archive".to_string()])
            .unwrap();
    }
    spool
}

fn start(config: &Config, spool: &Arc<Spool>) -> OutboxHandle {
    common::init_logging();
    segnode::outbox::spawn(config, spool.clone(), segnode::audit::Audit::disabled())
}

/// Wait (bounded) until no row of the study is pending; return the rows by SOP Instance UID.
async fn settled(spool: &Spool, study_uid: &str) -> HashMap<String, OutboxRecord> {
    let deadline = Instant::now() + LIMIT;
    loop {
        let rows = spool.outbox().of_study(study_uid).unwrap();
        if rows.iter().all(|r| r.state != DeliveryState::Pending) {
            return rows
                .into_iter()
                .map(|r| (r.sop_instance_uid.clone(), r))
                .collect();
        }
        assert!(Instant::now() < deadline, "rows still pending: {rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the in-test STOW-RS server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    content_type: String,
    authorization: Option<String>,
    sop_instance_uid: String,
}

/// Decides the answer (status, JSON body) to the `n`-th request (0-based) for an instance.
type Script = dyn Fn(usize, &str) -> (u16, String) + Send + Sync;

/// A minimal STOW-RS server: reads one POST per connection, takes the DICOM part out of
/// the multipart body, and answers as scripted.
struct StowServer {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StowServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StowServer {
    async fn start(dir: &Path, script: Arc<Script>) -> StowServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (dir, log) = (dir.to_path_buf(), seen.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let Ok(Some(request)) =
                    tokio::time::timeout(Duration::from_secs(10), read_request(&mut stream, &dir))
                        .await
                else {
                    continue;
                };
                let n = {
                    let mut seen = log.lock().unwrap();
                    seen.push(request.clone());
                    seen.len() - 1
                };
                let (status, body) = script(n, &request.sop_instance_uid);
                let answer = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/dicom+json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        });
        StowServer { port, seen, task }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/dicom-web", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// How many requests carried this instance.
    fn count(&self, uid: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.sop_instance_uid == uid)
            .count()
    }
}

async fn read_request(stream: &mut tokio::net::TcpStream, dir: &Path) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            })
            .map(|(_, v)| v.trim().to_string())
    };
    let length: usize = header("content-length")?.parse().ok()?;
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = &buf[head_end..head_end + length];
    let content_type = header("content-type")?;
    let boundary = content_type
        .split("boundary=")
        .nth(1)?
        .trim_matches('"')
        .to_string();
    let opening = format!("--{boundary}\r\n");
    let closing = format!("\r\n--{boundary}--\r\n");
    assert!(body.starts_with(opening.as_bytes()) && body.ends_with(closing.as_bytes()));
    let part = &body[opening.len()..body.len() - closing.len()];
    let part_head = part.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    assert!(String::from_utf8_lossy(&part[..part_head]).contains("application/dicom"));
    let file = dir.join(format!("received-{}.dcm", next_file_number()));
    std::fs::write(&file, &part[part_head..]).ok()?;
    let obj = dicom_object::open_file(&file).ok()?;
    Some(Seen {
        target: head.lines().next()?.split_whitespace().nth(1)?.to_string(),
        content_type,
        authorization: header("authorization"),
        sop_instance_uid: text(&obj, tags::SOP_INSTANCE_UID),
    })
}

/// A distinct number per call (file names of received parts).
fn next_file_number() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

/// A Store Instances Response naming `uid` as stored.
fn stored(uid: &str) -> String {
    format!(
        r#"{{"00081199":{{"vr":"SQ","Value":[{{"00081150":{{"vr":"UI","Value":["1.2.840.10008.5.1.4.1.1.4"]}},"00081155":{{"vr":"UI","Value":["{uid}"]}}}}]}}}}"#
    )
}

/// A Store Instances Response naming `uid` as failed with `reason`.
fn failed(uid: &str, reason: u16) -> String {
    format!(
        r#"{{"00081198":{{"vr":"SQ","Value":[{{"00081150":{{"vr":"UI","Value":["1.2.840.10008.5.1.4.1.1.4"]}},"00081155":{{"vr":"UI","Value":["{uid}"]}},"00081197":{{"vr":"US","Value":[{reason}]}}}}]}}}}"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stow_server_that_fails_then_recovers_gets_each_instance_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (study_uid, queued) = instances(&tmp.path().join("study"), 2, 41);
    // The first three requests fail as an overloaded archive does; then it stores.
    let server = StowServer::start(
        tmp.path(),
        Arc::new(|n, uid: &str| {
            if n < 3 {
                (500, "{}".into())
            } else {
                (200, stored(uid))
            }
        }),
    )
    .await;
    std::fs::write(tmp.path().join("token"), "s3cret-token\n").unwrap();
    let config = config(
        tmp.path(),
        &format!(
            "kind = 'stow'\nurl = '{}'\ntoken_file = 'token'",
            server.url()
        ),
        10,
    );
    let spool = queue(&config, &study_uid, &queued);
    let outbox = start(&config, &spool);

    let rows = settled(&spool, &study_uid).await;
    for i in &queued {
        let row = &rows[&i.sop_instance_uid];
        assert_eq!(row.state, DeliveryState::Delivered, "{row:?}");
    }
    let summary = outbox.stop(Duration::from_secs(10)).await;
    assert_eq!((summary.delivered, summary.dead), (2, 0));
    assert!(summary.retried >= 1, "{summary:?}");

    // Each instance was stored exactly once: one 200 per instance, and no request after it.
    let seen = server.seen();
    for i in &queued {
        let answered_ok: Vec<usize> = seen
            .iter()
            .enumerate()
            .filter(|(n, s)| *n >= 3 && s.sop_instance_uid == i.sop_instance_uid)
            .map(|(n, _)| n)
            .collect();
        assert_eq!(answered_ok.len(), 1, "stored once: {seen:?}");
    }
    assert_eq!(seen.len(), 3 + queued.len(), "{seen:?}");
    for s in &seen {
        assert_eq!(s.target, "/dicom-web/studies");
        assert!(
            s.content_type
                .starts_with("multipart/related; type=\"application/dicom\"")
        );
        assert_eq!(s.authorization.as_deref(), Some("Bearer s3cret-token"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_409_for_one_instance_dead_letters_it_after_one_attempt() {
    let tmp = tempfile::tempdir().unwrap();
    let (study_uid, queued) = instances(&tmp.path().join("study"), 2, 42);
    let victim = queued[0].sop_instance_uid.clone();
    let refused = victim.clone();
    let server = StowServer::start(
        tmp.path(),
        Arc::new(move |_, uid: &str| {
            if uid == refused {
                // Data set does not match SOP class: the archive will say so every time.
                (409, failed(uid, 0xA900))
            } else {
                (200, stored(uid))
            }
        }),
    )
    .await;
    let config = config(
        tmp.path(),
        &format!("kind = 'stow'\nurl = '{}'", server.url()),
        10,
    );
    let spool = queue(&config, &study_uid, &queued);
    let outbox = start(&config, &spool);

    let rows = settled(&spool, &study_uid).await;
    let dead = &rows[&victim];
    assert_eq!(
        (dead.state.as_str(), dead.attempts),
        ("dead", 1),
        "{dead:?}"
    );
    let reason = dead.last_error.clone().unwrap();
    assert!(
        reason.contains("refused permanently")
            && reason.contains("409")
            && reason.contains("0xA900"),
        "{reason}"
    );
    let other = &rows[&queued[1].sop_instance_uid];
    assert_eq!(
        (other.state.as_str(), other.attempts),
        ("delivered", 1),
        "{other:?}"
    );
    // Past a backoff: nothing was retried.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let summary = outbox.stop(Duration::from_secs(10)).await;
    assert_eq!(server.count(&victim), 1);
    assert_eq!(server.count(&queued[1].sop_instance_uid), 1);
    assert_eq!(
        (
            summary.delivered,
            summary.dead,
            summary.refused,
            summary.retried
        ),
        (1, 1, 1, 0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_go_to_orthanc_by_stow_rs_once_and_not_again_after_a_restart() {
    let plugin = Path::new("/usr/share/orthanc/plugins/libOrthancDicomWeb.so");
    assert!(
        plugin.is_file(),
        "{} is missing: run `make setup` (Debian package orthanc-dicomweb)",
        plugin.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let (study_uid, queued) = instances(&tmp.path().join("study"), 3, 43);
    let mut orthanc = common::orthanc::Orthanc::start_with(
        &tmp.path().join("orthanc"),
        common::free_port(),
        &serde_json::json!({
            "Plugins": [plugin.display().to_string()],
            "LuaScripts": [],
            "DicomWeb": { "Enable": true, "Root": "/dicom-web/" }
        }),
    );
    let url = format!("http://127.0.0.1:{}/dicom-web", orthanc.http_port);
    let config = config(tmp.path(), &format!("kind = 'stow'\nurl = '{url}'"), 5);
    let spool = queue(&config, &study_uid, &queued);
    let outbox = start(&config, &spool);
    let rows = settled(&spool, &study_uid).await;
    for i in &queued {
        let row = &rows[&i.sop_instance_uid];
        assert_eq!(
            (row.state.as_str(), row.attempts),
            ("delivered", 1),
            "{row:?}"
        );
    }
    assert_eq!(outbox.stop(Duration::from_secs(10)).await.delivered, 3);

    let in_orthanc = |orthanc: &common::orthanc::Orthanc| -> Vec<String> {
        let ids = orthanc.get("/instances");
        let mut uids: Vec<String> = ids
            .as_array()
            .unwrap()
            .iter()
            .map(|id| {
                let tags = orthanc.get(&format!(
                    "/instances/{}/simplified-tags",
                    id.as_str().unwrap()
                ));
                tags["SOPInstanceUID"].as_str().unwrap().to_string()
            })
            .collect();
        uids.sort();
        uids
    };
    let mut expected: Vec<String> = queued.iter().map(|i| i.sop_instance_uid.clone()).collect();
    expected.sort();
    assert_eq!(
        in_orthanc(&orthanc),
        expected,
        "each instance once in Orthanc"
    );

    // A restarted sender on the same spool finds nothing to send.
    drop(spool);
    let spool = Arc::new(Spool::open_existing(&config.node.data_dir).unwrap());
    let outbox = start(&config, &spool);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let summary = outbox.stop(Duration::from_secs(10)).await;
    assert_eq!(
        (summary.delivered, summary.retried, summary.dead),
        (0, 0, 0)
    );
    for row in spool.outbox().of_study(&study_uid).unwrap() {
        assert_eq!(
            (row.state.as_str(), row.attempts),
            ("delivered", 1),
            "{row:?}"
        );
    }
    assert_eq!(in_orthanc(&orthanc), expected);
    orthanc.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dimse_destination_refusing_the_sop_class_dead_letters_after_one_attempt() {
    let tmp = tempfile::tempdir().unwrap();
    let (study_uid, queued) = instances(&tmp.path().join("study"), 1, 44);
    // The node's own SCP accepting CT only: the MR instance's class has no context.
    let mut peer = common::TestNode::start(|c| {
        c.storage.accepted_sop_classes = vec!["1.2.840.10008.5.1.4.1.1.2".into()];
    })
    .await;
    let config = config(
        tmp.path(),
        &format!(
            "ae_title = 'SEGNODE'\nhost = '127.0.0.1'\nport = {}",
            peer.port()
        ),
        10,
    );
    let spool = queue(&config, &study_uid, &queued);
    let outbox = start(&config, &spool);
    let rows = settled(&spool, &study_uid).await;
    let row = &rows[&queued[0].sop_instance_uid];
    assert_eq!((row.state.as_str(), row.attempts), ("dead", 1), "{row:?}");
    let reason = row.last_error.clone().unwrap();
    assert!(
        reason.contains("refused permanently") && reason.contains("1.2.840.10008.5.1.4.1.1.4"),
        "the reason names the refused class: {reason}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let summary = outbox.stop(Duration::from_secs(10)).await;
    assert_eq!((summary.dead, summary.refused, summary.retried), (1, 1, 0));
    assert_eq!(peer.counts().instances, 0, "nothing was stored");
    peer.stop().await;
}

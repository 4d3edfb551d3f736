//! The audit queue: [`Audit::record`] never waits. Messages go through a bounded channel to
//! one writer task that renders them and hands them to the syslog collector and/or the
//! JSON-lines file. A full queue, a collector that is down or a file that cannot be
//! written drops messages; every drop is counted ([`Audit::dropped`]) and logged
//! (the first, then each tenfold).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::config::AuditConfig;
use super::record::AuditRecord;
use super::syslog::{self, SyslogSender};
use super::xml::{AuditSource, to_xml};
use crate::tls::TlsError;

/// Why the audit trail could not start.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The JSON-lines file cannot be opened for appending.
    #[error(
        "cannot open the audit file {path}: {source} (check audit.file and its folder's permissions)"
    )]
    File {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The collector's TLS files are unusable.
    #[error("audit.syslog.tls: {0}")]
    Tls(#[from] TlsError),
}

enum Message {
    Record(Box<AuditRecord>),
    Flush(oneshot::Sender<()>),
}

struct Inner {
    tx: mpsc::Sender<Message>,
    dropped: AtomicU64,
}

/// The handle every part of the node records audit events through. Cheap to clone; the
/// default one is disabled and records nothing.
#[derive(Clone, Default)]
pub struct Audit {
    inner: Option<Arc<Inner>>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit")
            .field("enabled", &self.inner.is_some())
            .finish()
    }
}

impl Audit {
    /// An audit trail that records nothing.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Start the writer task for `config` (on the current tokio runtime). `node_ae` is the
    /// AuditSourceID unless `audit.source_id` says otherwise. Disabled config: a disabled
    /// handle.
    pub async fn start(config: &AuditConfig, node_ae: &str) -> Result<Audit, AuditError> {
        if !config.enabled {
            return Ok(Audit::disabled());
        }
        let file = match &config.file {
            Some(path) => Some(
                tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .await
                    .map_err(|source| AuditError::File {
                        path: path.display().to_string(),
                        source,
                    })?,
            ),
            None => None,
        };
        let syslog = match &config.syslog {
            Some(s) => {
                let tls = s.tls.as_ref().map(|t| t.load()).transpose()?;
                Some(SyslogSender::new(s.clone(), tls))
            }
            None => None,
        };
        let source = AuditSource {
            source_id: config
                .source_id
                .clone()
                .unwrap_or_else(|| node_ae.to_string()),
            site_id: config.site_id.clone(),
        };
        let (tx, rx) = mpsc::channel(config.queue_capacity);
        let inner = Arc::new(Inner {
            tx,
            dropped: AtomicU64::new(0),
        });
        info!(
            syslog = syslog.as_ref().map(|s| s.describe()).unwrap_or_default(),
            file = config
                .file
                .as_ref()
                .map(|f| f.display().to_string())
                .unwrap_or_default(),
            "audit trail on"
        );
        let writer = Writer {
            source,
            hostname: syslog::hostname(),
            file,
            syslog,
            inner: Arc::downgrade(&inner),
        };
        tokio::spawn(writer.run(rx));
        Ok(Audit { inner: Some(inner) })
    }

    /// Whether messages are recorded at all.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Queue one message; never waits. A full queue drops it (counted and logged).
    pub fn record(&self, record: AuditRecord) {
        let Some(inner) = &self.inner else { return };
        if inner
            .tx
            .try_send(Message::Record(Box::new(record)))
            .is_err()
        {
            count_drop(&inner.dropped, "audit queue full (collector slow or down)");
        }
    }

    /// Messages dropped so far (queue full, collector down, file not writable).
    pub fn dropped(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |i| i.dropped.load(Ordering::Relaxed))
    }

    /// Wait (at most `limit`) until every message queued before this call is written or
    /// dropped: at shutdown, so that the stop message leaves before the process does.
    pub async fn flush(&self, limit: Duration) {
        let Some(inner) = &self.inner else { return };
        let (done_tx, done_rx) = oneshot::channel();
        let _ = tokio::time::timeout(limit, async {
            if inner.tx.send(Message::Flush(done_tx)).await.is_ok() {
                let _ = done_rx.await;
            }
        })
        .await;
    }
}

fn count_drop(dropped: &AtomicU64, why: &str) {
    let n = dropped.fetch_add(1, Ordering::Relaxed) + 1;
    // The first drop, then at 10, 100, 1000 …: visible without flooding the log.
    let mut m = n;
    while m.is_multiple_of(10) {
        m /= 10;
    }
    if m == 1 {
        warn!(dropped_total = n, cause = why, "audit message dropped");
    }
}

struct Writer {
    source: AuditSource,
    hostname: String,
    file: Option<tokio::fs::File>,
    syslog: Option<SyslogSender>,
    inner: std::sync::Weak<Inner>,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Message>) {
        while let Some(message) = rx.recv().await {
            match message {
                Message::Record(record) => self.write(&record).await,
                Message::Flush(done) => {
                    let _ = done.send(());
                }
            }
        }
    }

    async fn write(&mut self, record: &AuditRecord) {
        let xml = to_xml(record, &self.source);
        let mut failure = None;
        if let Some(file) = &mut self.file {
            let line = serde_json::json!({
                "time": record.time,
                "event": record.summary(),
                "outcome": record.outcome.value(),
                "record": record,
                "xml": xml,
            });
            let mut text = line.to_string();
            text.push('\n');
            if let Err(e) = file.write_all(text.as_bytes()).await {
                failure = Some(format!("audit file: {e}"));
            } else if let Err(e) = file.flush().await {
                failure = Some(format!("audit file: {e}"));
            }
        }
        if let Some(syslog) = &mut self.syslog {
            let framed = syslog::frame(&xml, &self.hostname, record.time);
            if let Err(e) = syslog.send(&framed).await {
                failure = Some(format!("syslog {}: {e}", syslog.describe()));
            }
        }
        if let (Some(why), Some(inner)) = (failure, self.inner.upgrade()) {
            count_drop(&inner.dropped, &why);
        }
    }
}

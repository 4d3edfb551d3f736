//! `segnode serve`: open the spool, bind the DICOM port and run the SCP, the pipelines and
//! the outbox sender until shutdown.

use std::future::Future;
use std::sync::Arc;

use tracing::{info, warn};

use crate::config::Config;
use crate::outbox::{self, OutboxSummary};
use crate::pipeline::driver::{self, DriverError, DriverSummary};
use crate::scp::{self, Listener, Listeners, ScpContext, ScpSummary};
use crate::spool::{Spool, SpoolError};

/// At shutdown, a SEG delivery in flight gets this long to finish before it is cut off
/// (it stays pending and is sent again at the next start).
const OUTBOX_STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// At shutdown, queued audit messages get this long to reach their collector.
const AUDIT_FLUSH_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Why the node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot open the spool in {dir}: {source}")]
    Spool { dir: String, source: SpoolError },
    #[error(
        "cannot listen on {addr}: {source} (is another DICOM node on that port? choose one with --port)"
    )]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Scp(#[from] scp::ScpError),
    #[error(transparent)]
    Pipelines(#[from] DriverError),
    #[error("config tls.{0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
}

/// Bind the configured addresses (`node.port`, and `tls.port` when `[tls]` is set) and
/// serve until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<NodeSummary, ServeError> {
    let bind = |port: u16| async move {
        let addr = std::net::SocketAddr::new(config.node.bind, port);
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind {
                addr: addr.to_string(),
                source,
            })
    };
    let mut listeners = Vec::new();
    match &config.tls {
        None => listeners.push(Listener::plain(bind(config.node.port).await?)),
        Some(tls) => {
            if tls.keep_plain_port {
                listeners.push(Listener::plain(bind(config.node.port).await?));
            }
            listeners.push(Listener::tls(bind(tls.port).await?, server_tls(&config)?));
        }
    }
    run_on(Listeners::new(listeners), config, shutdown).await
}

/// The listener's TLS configuration from `[tls]` (checked at load already; read again
/// here, so files replaced since are picked up at start).
pub fn server_tls(config: &Config) -> Result<crate::tls::ServerTls, crate::tls::TlsError> {
    match &config.tls {
        Some(tls) => tls.load(),
        None => Err(crate::tls::TlsError {
            key: "certificate",
            file: Default::default(),
            reason: "the config has no [tls] table".into(),
        }),
    }
}

/// Serve on already bound listeners (tests bind port 0 and pass them in; a
/// `TcpListener` is a plain-DICOM one).
pub async fn run_on(
    listeners: impl Into<Listeners>,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<NodeSummary, ServeError> {
    let listeners = listeners.into();
    let audit = crate::audit::Audit::start(&config.audit, config.node.ae_title.as_str()).await?;
    let data_dir = config.node.data_dir.clone();
    let spool = {
        let dir = data_dir.clone();
        let storage = config.storage.clone();
        tokio::task::spawn_blocking(move || Spool::open(&dir, &storage))
            .await
            .expect("spool open task panicked")
            .map_err(|source| ServeError::Spool {
                dir: data_dir.display().to_string(),
                source,
            })?
    };
    let counts = spool.counts().map_err(|source| ServeError::Spool {
        dir: data_dir.display().to_string(),
        source,
    })?;
    let local = listeners.describe();
    info!(
        ae_title = %config.node.ae_title,
        listen = %local,
        data_dir = %data_dir.display(),
        studies = counts.studies,
        instances = counts.instances,
        sop_classes = config.accepted_sop_classes().len(),
        "segnode listening"
    );
    if config.access.allow.is_empty() {
        warn!(
            "access.allow is empty: any calling AE may store here; list your PACS in [[access.allow]]"
        );
    }
    let spool = Arc::new(spool);
    let pipelines = driver::load_pipelines(&config).await?;
    if pipelines.is_empty() {
        info!("no pipelines enabled: storing only");
    }
    // Deliveries pending from an earlier run resume as soon as the sender starts.
    let outbox = outbox::spawn(&config, spool.clone(), audit.clone());
    let (events, driver) = if pipelines.is_empty() {
        (None, None)
    } else {
        let (tx, handle) = driver::spawn(&config, spool.clone(), pipelines, outbox.waker());
        (Some(tx), Some(handle))
    };
    info!(torch = %crate::torch_runtime::describe(), "runtime");
    let node_ae = config.node.ae_title.as_str().to_string();
    audit.record(crate::audit::events::application_activity(&node_ae, true));
    let ctx = ScpContext {
        config: Arc::new(config),
        spool,
        events,
        audit: audit.clone(),
    };
    let scp = match scp::run(listeners, ctx, shutdown).await {
        Ok(scp) => scp,
        Err(e) => {
            outbox.stop(OUTBOX_STOP_GRACE).await;
            audit.record(crate::audit::events::application_activity(&node_ae, false));
            audit.flush(AUDIT_FLUSH_GRACE).await;
            return Err(e.into());
        }
    };
    // The SCP dropped its event senders: the assembler stops, queued jobs finish.
    let pipelines = match driver {
        Some(handle) => handle.await.unwrap_or_default(),
        None => DriverSummary::default(),
    };
    // Jobs are finished and their SEGs queued; what is still pending resumes at next start.
    let outbox = outbox.stop(OUTBOX_STOP_GRACE).await;
    audit.record(crate::audit::events::application_activity(&node_ae, false));
    audit.flush(AUDIT_FLUSH_GRACE).await;
    info!(
        associations = scp.associations,
        instances = scp.instances_stored,
        segs = pipelines.completed.len(),
        failed_jobs = pipelines.failed.len(),
        delivered = outbox.delivered,
        dead_letters = outbox.dead,
        "segnode stopped"
    );
    Ok(NodeSummary {
        scp,
        pipelines,
        outbox,
    })
}

/// What the node did while it ran.
#[derive(Debug, Clone)]
pub struct NodeSummary {
    /// The network side.
    pub scp: ScpSummary,
    /// The segmentation side.
    pub pipelines: DriverSummary,
    /// SEG deliveries to destination peers.
    pub outbox: OutboxSummary,
}

/// Resolves on SIGINT (ctrl-c) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => info!("SIGINT received: finishing in-flight associations"),
        _ = term => info!("SIGTERM received: finishing in-flight associations"),
    }
}

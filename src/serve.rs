//! `segnode serve`: open the spool, bind the DICOM port(s) (plain and/or TLS) and run the
//! SCP, the pipelines, the outbox sender, the audit trail and the admin HTTP server until
//! shutdown.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::http::{HttpState, ModelInfo};
use crate::outbox::{self, OutboxSummary};
use crate::pipeline::control::PipelineControl;
use crate::pipeline::driver::{self, DriverSummary};
use crate::pipeline::load::{LoadError, PipelineSet};
use crate::scp::{self, Listener, Listeners, ScpContext, ScpSummary};
use crate::spool::{Spool, SpoolError};

/// At shutdown, a SEG delivery in flight gets this long to finish before it is cut off
/// (it stays pending and is sent again at the next start).
const OUTBOX_STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);
/// At shutdown, queued audit messages get this long to reach their collector.
const AUDIT_FLUSH_GRACE: std::time::Duration = std::time::Duration::from_secs(5);
/// How often the admin side C-ECHOes each destination (readiness shows the last answer).
const PROBE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// At shutdown, open HTTP requests get this long to finish.
const HTTP_STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// What the node listens on.
pub struct NodeListeners {
    /// The DICOM listeners (plain and/or TLS).
    pub dicom: Listeners,
    /// The admin HTTP port; `None` runs the node without it.
    pub http: Option<TcpListener>,
}

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
    Pipelines(#[from] LoadError),
    #[error("config tls.{0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error("config key `http.token_file`: {0}")]
    HttpToken(String),
}

/// Bind the configured addresses (`node.port`, `tls.port` when `[tls]` is set, the admin
/// HTTP port) and serve until `shutdown` resolves. The DICOM ports must bind; the admin
/// HTTP port should: when it cannot, the node still serves DICOM and says so in the log
/// (the archive's traffic matters more than the dashboard).
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<NodeSummary, ServeError> {
    // Everything that can stop the node at start-up is checked before a port is bound: a
    // sender must never see a node that listens and then goes away.
    let pipelines = PipelineSet::load_in_background(&config).await?;
    let bind = |port: u16| async move {
        let addr = std::net::SocketAddr::new(config.node.bind, port);
        TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind {
                addr: addr.to_string(),
                source,
            })
    };
    let mut dicom = Vec::new();
    match &config.tls {
        None => dicom.push(Listener::plain(bind(config.node.port).await?)),
        Some(tls) => {
            if tls.keep_plain_port {
                dicom.push(Listener::plain(bind(config.node.port).await?));
            }
            dicom.push(Listener::tls(bind(tls.port).await?, server_tls(&config)?));
        }
    }
    let http = if config.http.enabled {
        let addr = std::net::SocketAddr::new(config.http.bind, config.http.port);
        match TcpListener::bind(addr).await {
            Ok(listener) => Some(listener),
            Err(cause) => {
                error!(addr = %addr, cause = %cause, "cannot listen for the admin HTTP server: no dashboard, /metrics or /readyz (choose another [http] port, or set http.enabled = false)");
                None
            }
        }
    } else {
        None
    };
    let listeners = NodeListeners {
        dicom: Listeners::new(dicom),
        http,
    };
    serve_loaded(listeners, config, pipelines, shutdown).await
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

/// Serve DICOM on already bound listeners, without the admin HTTP server (tests bind port
/// 0 and pass them in; a `TcpListener` is a plain-DICOM one).
pub async fn run_on(
    listeners: impl Into<Listeners>,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<NodeSummary, ServeError> {
    let listeners = NodeListeners {
        dicom: listeners.into(),
        http: None,
    };
    run_with(listeners, config, shutdown).await
}

/// Serve on already bound listeners until `shutdown` resolves.
pub async fn run_with(
    listeners: NodeListeners,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<NodeSummary, ServeError> {
    let pipelines = PipelineSet::load_in_background(&config).await?;
    serve_loaded(listeners, config, pipelines, shutdown).await
}

/// Serve on bound listeners with the pipelines loaded, until `shutdown` resolves.
async fn serve_loaded(
    listeners: NodeListeners,
    config: Config,
    pipelines: PipelineSet,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<NodeSummary, ServeError> {
    let NodeListeners {
        dicom: listeners,
        http: http_listener,
    } = listeners;
    let token = match &http_listener {
        Some(_) => config.http.read_token().map_err(ServeError::HttpToken)?,
        None => None,
    };
    crate::metrics::global()
        .calling_aes
        .configure(config.access.allow.iter().map(|a| a.ae_title.to_string()));
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
    let spool = Arc::new(spool);
    if pipelines.is_empty() {
        info!("no pipelines enabled: storing only");
    }
    let models = if http_listener.is_some() {
        let loaded = pipelines.clone();
        tokio::task::spawn_blocking(move || loaded.iter().map(|p| ModelInfo::of(p)).collect())
            .await
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    // Deliveries pending from an earlier run resume as soon as the sender starts.
    let outbox = outbox::spawn(&config, spool.clone(), audit.clone());
    let (events, control, driver) = if pipelines.is_empty() {
        (None, PipelineControl::none(), None)
    } else {
        let (tx, control, handle) =
            driver::spawn_with_control(&config, spool.clone(), pipelines, outbox.waker());
        (Some(tx), control, Some(handle))
    };
    info!(torch = %crate::torch_runtime::describe(), "runtime");
    let node_ae = config.node.ae_title.as_str().to_string();
    audit.record(crate::audit::events::application_activity(&node_ae, true));
    let config = Arc::new(config);
    let admin = http_listener.map(|listener| {
        let state = Arc::new(HttpState {
            config: config.clone(),
            spool: spool.clone(),
            models,
            control,
            destinations: outbox.destinations(),
            token,
            started: std::time::Instant::now(),
        });
        AdminServer::start(listener, state)
    });
    let ctx = ScpContext {
        config,
        spool,
        events,
        audit: audit.clone(),
    };
    let scp = scp::run(listeners, ctx, shutdown).await;
    if let Some(admin) = admin {
        admin.stop().await;
    }
    let scp = match scp {
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
/// The admin HTTP server and the destination prober, running beside the SCP.
struct AdminServer {
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    prober: tokio::task::JoinHandle<()>,
}

impl AdminServer {
    fn start(listener: TcpListener, state: Arc<HttpState>) -> AdminServer {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let prober = tokio::spawn(outbox::probe_periodically(
            state.config.clone(),
            state.destinations.clone(),
            PROBE_EVERY,
        ));
        let server = tokio::spawn(crate::http::run(listener, state, async move {
            let _ = stopped.await;
        }));
        AdminServer {
            stop,
            server,
            prober,
        }
    }

    async fn stop(self) {
        self.prober.abort();
        let _ = self.stop.send(());
        let mut server = self.server;
        match tokio::time::timeout(HTTP_STOP_GRACE, &mut server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => error!(cause = %e, "admin HTTP server failed"),
            Ok(Err(e)) => error!(cause = %e, "admin HTTP server task panicked"),
            Err(_) => {
                warn!("admin HTTP requests still open at shutdown were cut off");
                server.abort();
            }
        }
    }
}

/// What the node did while it ran.
#[derive(Debug)]
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

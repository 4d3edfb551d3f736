//! The Storage SCP: accepts associations (access control, presentation-context
//! negotiation), answers C-ECHO and C-STORE, and hands stored instances to the spool.
//!
//! [`run`] owns the accept loop: one task per connection; a connection holds a pending
//! place until it has negotiated (ARTIM timeout, a per-host limit), then one of the
//! `network.max_associations` slots (`admission`); sockets tuned for request/response
//! (`TCP_NODELAY`, `TCP_QUICKACK`), accept errors backed off. When `shutdown` resolves it stops accepting, lets in-flight
//! associations finish for up to the read timeout, aborts what is left and returns the
//! totals.
//!
//! Files: `access` (who may associate), `admission` (pending places and association slots),
//! `negotiation` (what is accepted), `association` (one association's life), `ending` (how
//! it ends and what is logged), `reassembly` (PDV fragments into DIMSE messages), `body`
//! and `budget` (a data set's bytes while they arrive, within the memory budget),
//! `dispatch` (one message to its service and back), `echo` and `store` (the two
//! services), `tcp` (socket options), `listener` (plain and TLS listeners), `stream` (TCP
//! or TLS under an association), `audited` (the audit messages of accepted, refused and
//! ended associations).

mod access;
mod admission;
mod association;
mod audited;
mod body;
pub mod budget;
mod dispatch;
mod echo;
mod ending;
mod listener;
mod negotiation;
mod reassembly;
mod store;
mod stream;
mod tcp;

pub use listener::{Listener, Listeners, Transport};

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{Instrument, error, info, info_span, warn};

use crate::config::Config;
use crate::ingest::IngestSink;
use crate::spool::Spool;

/// What the SCP needs to run.
#[derive(Clone)]
pub struct ScpContext {
    /// Validated node configuration.
    pub config: Arc<Config>,
    /// Where instances go.
    pub spool: Arc<Spool>,
    /// Where ingest events go; `None` when nobody listens.
    pub events: Option<IngestSink>,
    /// The audit trail (disabled by default).
    pub audit: crate::audit::Audit,
}

/// Why the SCP stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ScpError {
    #[error("listener failed: {0}")]
    Listener(#[from] std::io::Error),
}

/// Totals over the server's lifetime, returned when it stops.
#[derive(Debug, Clone, Default)]
pub struct ScpSummary {
    /// Associations accepted.
    pub associations: u64,
    /// Instances stored successfully.
    pub instances_stored: u64,
    /// Association requests refused (access control) or that never became an association
    /// (garbage, silence, closed before A-ASSOCIATE-RQ).
    pub associations_rejected: u64,
    /// Accepted associations that ended without A-RELEASE (aborted by either side, timed
    /// out, dropped, or cut at shutdown).
    pub associations_aborted: u64,
    /// C-STOREs answered with a failure status.
    pub store_failures: u64,
    /// Data set bytes received in C-STOREs.
    pub bytes_received: u64,
}

/// Counters shared by the association tasks; read once into [`ScpSummary`] at the end.
#[derive(Debug, Default)]
pub(crate) struct Totals {
    associations: AtomicU64,
    instances_stored: AtomicU64,
    associations_rejected: AtomicU64,
    associations_aborted: AtomicU64,
    store_failures: AtomicU64,
    bytes_received: AtomicU64,
}

impl Totals {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn summary(&self) -> ScpSummary {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ScpSummary {
            associations: get(&self.associations),
            instances_stored: get(&self.instances_stored),
            associations_rejected: get(&self.associations_rejected),
            associations_aborted: get(&self.associations_aborted),
            store_failures: get(&self.store_failures),
            bytes_received: get(&self.bytes_received),
        }
    }
}

/// First and largest pause after a failed `accept` (EMFILE and friends are transient).
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(5), Duration::from_secs(1));

/// Serve associations on `listeners` (a `TcpListener` is a plain one) until `shutdown`
/// resolves, then stop accepting and finish in-flight associations.
pub async fn run(
    listeners: impl Into<Listeners>,
    ctx: ScpContext,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<ScpSummary, ScpError> {
    let listeners = listeners.into();
    let local_addr = listeners.describe();
    let config = Arc::clone(&ctx.config);
    let shared = Arc::new(association::Shared::new(ctx));
    if shared.access.allows_anyone() {
        warn!(
            "access.allow is empty: any calling AE may store here; list your PACS under [[access.allow]]"
        );
    }
    let admission = admission::Admission::new(&config.network);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut next_id: u64 = 0;
    let mut backoff = ACCEPT_BACKOFF.0;
    info!(
        addr = %local_addr,
        ae_titles = %config.node.titles().join(", "),
        max_associations = config.network.max_associations,
        max_pending = config.network.max_pending_associations,
        max_pending_per_host = config.network.max_pending_per_host,
        artim_s = config.network.artim_timeout_seconds,
        max_pdu = config.network.max_pdu_length,
        memory_budget_mb = config.network.memory_budget_mb,
        "storage SCP listening"
    );

    tokio::pin!(shutdown);
    loop {
        while let Some(done) = tasks.try_join_next() {
            report_join(done);
        }
        let place = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            place = admission.pending_place() => place,
        };
        let (socket, peer, transport) = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            accepted = listeners.accept() => match accepted {
                Ok(pair) => {
                    backoff = ACCEPT_BACKOFF.0;
                    pair
                }
                Err(err) => {
                    warn!(cause = %err, retry_in_ms = backoff.as_millis() as u64, "accept failed (file descriptors exhausted?); backing off");
                    tokio::select! {
                        biased;
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
                    continue;
                }
            },
        };
        let pending = match admission.admit(peer.ip(), place) {
            Ok(pending) => pending,
            Err(refused) => {
                Totals::add(&shared.totals.associations_rejected, 1);
                warn!(
                    peer = %peer,
                    pending = refused.pending,
                    limit = config.network.max_pending_per_host,
                    "connection closed at once: this host already has network.max_pending_per_host connections that have not negotiated"
                );
                drop(socket);
                continue;
            }
        };
        next_id += 1;
        let span = info_span!("association", id = next_id, peer = %peer, transport = transport.name(), calling_ae = tracing::field::Empty);
        let task = association::serve(
            next_id,
            socket,
            peer,
            transport,
            pending,
            Arc::clone(&shared),
            stop_rx.clone(),
        );
        tasks.spawn(task.instrument(span));
    }
    drop(listeners);

    let drain = config.network.read_timeout();
    if !tasks.is_empty() {
        info!(
            in_flight = tasks.len(),
            drain_s = drain.as_secs(),
            "shutting down: no new associations, draining"
        );
        if tokio::time::timeout(drain, join_all(&mut tasks))
            .await
            .is_err()
        {
            warn!(
                still_open = tasks.len(),
                "drain timeout reached: aborting the associations still open"
            );
            let _ = stop_tx.send(true);
            let grace = config.network.write_timeout() + Duration::from_secs(1);
            if tokio::time::timeout(grace, join_all(&mut tasks))
                .await
                .is_err()
            {
                tasks.abort_all();
                join_all(&mut tasks).await;
            }
        }
    }
    let summary = shared.totals.summary();
    info!(
        associations = summary.associations,
        instances = summary.instances_stored,
        rejected = summary.associations_rejected,
        aborted = summary.associations_aborted,
        store_failures = summary.store_failures,
        "storage SCP stopped"
    );
    Ok(summary)
}

async fn join_all(tasks: &mut JoinSet<()>) {
    while let Some(done) = tasks.join_next().await {
        report_join(done);
    }
}

fn report_join(done: Result<(), tokio::task::JoinError>) {
    if let Err(err) = done
        && err.is_panic()
    {
        error!(cause = %err, "association task panicked (a bug: please report it with the log)");
    }
}

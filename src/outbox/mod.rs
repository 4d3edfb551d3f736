//! The outbox sender: delivers every instance the pipelines queued (rows of the spool's
//! `outbox` table: SEG, report, overlay) to its destinations, by C-STORE or STOW-RS,
//! durably and with retries.
//!
//! - The task reads due rows from the index, so deliveries pending when the node stopped
//!   resume on start-up without anything else to do.
//! - It is woken by a [`Notify`] when a job enqueues, and otherwise sleeps until the next
//!   row is due (at most [`POLL`]).
//! - A DIMSE destination that failed (in this run, or a row that already has failed
//!   attempts) is probed with C-ECHO before the instance is sent again.
//! - A transient failure retries with [`Backoff`]; the destination's other pending rows
//!   wait with it. After `max_attempts` the row is dead-lettered with an `error!` line.
//! - A permanent failure (the peer refuses this instance for what it is, see `failure`)
//!   is dead-lettered at once with the peer's reason; the destination's other rows go on.
//! - Every retry sends the same file, hence the same SOP Instance UID: the destination
//!   stores it once whatever happened to an earlier attempt's response.
//!
//! Files: `dimse` (C-STORE and the C-ECHO probe), `stow` (STOW-RS), `failure` (permanent
//! or transient), `backoff`, `destinations` (pause and last answer, shared with the admin
//! API), `audited` (TLS loading and the audit messages).
//! - Stopping never takes longer than the grace given to [`OutboxHandle::stop`]; a send
//!   cut short stays pending and is sent again at the next start.

mod audited;
mod backoff;
mod destinations;
mod dimse;
pub mod failure;
mod stow;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{Instrument, error, info, info_span, warn};

use crate::ae::AeTitle;
use crate::config::{Config, DestinationConfig, DestinationKind};
use crate::metrics;
use crate::spool::{OutboxRecord, Spool, SpoolError};

pub use backoff::Backoff;
pub use destinations::{
    DestinationState, Destinations, LastContact, UnknownDestination, probe_periodically,
};
pub use failure::{DeliveryFailure, Permanence};
pub use stow::{MAX_RESPONSE_BYTES, Scheme, StowAuth, StowTarget, StowUrl};

/// The longest the sender sleeps without looking at the table.
pub const POLL: Duration = Duration::from_secs(5);
/// The shortest pause between rounds.
const MIN_WAIT: Duration = Duration::from_millis(20);
/// Rows taken from the table per round.
const BATCH: usize = 32;

/// What the outbox did while the node ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxSummary {
    /// Instances acknowledged by a destination.
    pub delivered: usize,
    /// Attempts that failed and were scheduled again.
    pub retried: usize,
    /// Deliveries given up (after the last attempt, or at once when refused for good).
    pub dead: usize,
    /// Of `dead`, those a destination refused permanently (not retried).
    pub refused: usize,
}

/// The running sender: wake it when something is queued, stop it with the node.
pub struct OutboxHandle {
    wake: Arc<Notify>,
    destinations: Arc<Destinations>,
    stopping: Arc<AtomicBool>,
    summary: Arc<Mutex<OutboxSummary>>,
    task: JoinHandle<()>,
}

impl OutboxHandle {
    /// The notifier to poke after enqueueing (the job driver holds a clone).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Pause, resume and last answer of each destination (shared with the admin API).
    pub fn destinations(&self) -> Arc<Destinations> {
        self.destinations.clone()
    }

    /// Stop the sender: it finishes the delivery in flight if that takes less than
    /// `grace`, otherwise it is cut off (the row stays pending for the next start).
    pub async fn stop(mut self, grace: Duration) -> OutboxSummary {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        if tokio::time::timeout(grace, &mut self.task).await.is_err() {
            warn!(
                grace_seconds = grace.as_secs_f64(),
                "outbox stopped in the middle of a delivery; it is sent again at the next start"
            );
            self.task.abort();
        }
        self.summary
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Start the sender for the destinations in `config`.
pub fn spawn(config: &Config, spool: Arc<Spool>, audit: crate::audit::Audit) -> OutboxHandle {
    let wake = Arc::new(Notify::new());
    let stopping = Arc::new(AtomicBool::new(false));
    let summary = Arc::new(Mutex::new(OutboxSummary::default()));
    let destinations = Arc::new(Destinations::new(
        config.destinations.iter().map(|d| d.name.clone()),
        wake.clone(),
    ));
    let sender = Sender {
        spool,
        states: destinations.clone(),
        destinations: config
            .destinations
            .iter()
            .map(|d| (d.name.clone(), d.clone()))
            .collect(),
        node_ae: config.node.ae_title.clone(),
        network: config.network.clone(),
        backoff: Backoff::from_config(&config.outbox),
        down: HashSet::new(),
        summary: summary.clone(),
        tls: audited::load_tls(&config.destinations),
        stow: load_stow(config),
        audit,
    };
    let task = tokio::spawn(
        sender
            .run(wake.clone(), stopping.clone())
            .instrument(info_span!("outbox")),
    );
    OutboxHandle {
        wake,
        destinations,
        stopping,
        summary,
        task,
    }
}

struct Sender {
    spool: Arc<Spool>,
    /// Paused destinations and last answers.
    states: Arc<Destinations>,
    destinations: HashMap<String, DestinationConfig>,
    node_ae: AeTitle,
    network: crate::config::NetworkConfig,
    backoff: Backoff,
    /// DIMSE destinations whose last attempt failed: probed with C-ECHO before the next send.
    down: HashSet<String>,
    summary: Arc<Mutex<OutboxSummary>>,
    /// Per destination with `tls`: its TLS configuration, or why it cannot be used.
    tls: HashMap<String, Result<crate::tls::ClientTls, String>>,
    /// Per `kind = "stow"` destination: its client, or why it cannot be used.
    stow: HashMap<String, Result<StowTarget, String>>,
    /// Where delivered and dead-lettered instances are audited.
    audit: crate::audit::Audit,
}

impl Sender {
    async fn run(mut self, wake: Arc<Notify>, stopping: Arc<AtomicBool>) {
        let stopped = || stopping.load(Ordering::SeqCst);
        while !stopped() {
            let due = match self
                .blocking(move |s| s.outbox().due(now_ms(), BATCH))
                .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    error!(cause = %e, "cannot read the outbox; trying again shortly");
                    Vec::new()
                }
            };
            let full = due.len() == BATCH;
            // Destinations that failed in this round: their rows were deferred.
            let mut deferred = HashSet::new();
            let mut held_back = false;
            for row in due {
                if stopped() {
                    return;
                }
                if self.states.is_paused(&row.destination) {
                    held_back = true;
                    continue;
                }
                if deferred.contains(&row.destination) {
                    continue;
                }
                if !self.attempt(row.clone()).await {
                    deferred.insert(row.destination);
                }
            }
            if full && !held_back {
                continue;
            }
            // Rows of a paused destination stay due: wait for a resume (it wakes us) or POLL.
            let next_due = if held_back {
                Ok(None)
            } else {
                self.blocking(|s| s.outbox().next_due()).await
            };
            let wait = match next_due {
                Ok(Some(at)) => Duration::from_millis((at - now_ms()).max(0) as u64).min(POLL),
                Ok(None) => POLL,
                Err(e) => {
                    error!(cause = %e, "cannot read the outbox; trying again shortly");
                    POLL
                }
            };
            if stopped() {
                break;
            }
            // Never spin: a row that could not be updated would otherwise be due forever.
            let wait = wait.max(MIN_WAIT);
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One attempt at one row, recorded in the index. False when the destination failed
    /// in a way that should hold back its other rows this round.
    async fn attempt(&mut self, row: OutboxRecord) -> bool {
        let span = info_span!(
            "delivery",
            kind = %row.kind,
            destination = %row.destination,
            study = %row.study_uid,
            instance = %row.sop_instance_uid,
            attempt = row.attempts + 1
        );
        let in_flight = metrics::global();
        in_flight
            .outbox_in_flight
            .add(&[row.destination.as_str()], 1.0);
        let outcome = self.deliver(&row).instrument(span.clone()).await;
        in_flight
            .outbox_in_flight
            .add(&[row.destination.as_str()], -1.0);
        let _in_span = span.enter();
        let attempts = row.attempts + 1;
        let id = row.id;
        let file = row.seg_path.display().to_string();
        match outcome {
            Ok(()) => {
                self.down.remove(&row.destination);
                if let Err(e) = self.blocking(move |s| s.outbox().delivered(id)).await {
                    // Not recorded: sent again later, with the same SOP Instance UID.
                    error!(cause = %e, "instance delivered but the outbox row could not be updated");
                }
                info!(attempts, file = %file, "instance delivered");
                self.record(&row.destination, "delivered", Ok(&row.sop_instance_uid));
                self.audit_transfer(&row, crate::audit::Outcome::Success);
                self.count(|s| s.delivered += 1);
                true
            }
            Err(failure) if failure.is_permanent() => {
                // The destination answered, and will answer the same again: it is up, so
                // its other rows are not held back.
                self.down.remove(&row.destination);
                let reason = format!("refused permanently: {}", failure.reason);
                self.dead_letter(&row, &reason).await;
                error!(
                    destination = %row.destination,
                    kind = %row.kind,
                    instance = %row.sop_instance_uid,
                    file = %file,
                    study = %row.study_uid,
                    attempts,
                    reason = %failure.reason,
                    "delivery refused permanently by the destination, dead-lettered without \
                     retrying: fix what the reason names (destination config, SOP classes it \
                     accepts, credentials), then re-send it from the admin API or with \
                     `segnode send`"
                );
                self.count(|s| s.refused += 1);
                true
            }
            Err(failure) => {
                let reason = failure.reason;
                self.down.insert(row.destination.clone());
                if self.backoff.exhausted(attempts) {
                    self.dead_letter(&row, &reason).await;
                    error!(
                        destination = %row.destination,
                        instance = %row.sop_instance_uid,
                        file = %file,
                        study = %row.study_uid,
                        attempts,
                        last_error = %reason,
                        "delivery dead-lettered after the last attempt: fix the destination \
                         and re-send it from the admin API or with `segnode send`, or raise \
                         outbox.max_attempts"
                    );
                } else {
                    let delay = self.backoff.delay(attempts, id);
                    let next = now_ms() + delay.as_millis() as i64;
                    let (r, dest) = (reason.clone(), row.destination.clone());
                    let recorded = self
                        .blocking(move |s| {
                            s.outbox().retry(id, next, &r)?;
                            s.outbox().defer_destination(&dest, next)
                        })
                        .await;
                    if let Err(e) = recorded {
                        error!(cause = %e, "cannot record the failed attempt in the outbox");
                    }
                    warn!(
                        attempts,
                        retry_in_seconds = format!("{:.1}", delay.as_secs_f64()),
                        cause = %reason,
                        "delivery failed; retrying"
                    );
                    self.record(&row.destination, "retry", Err(&reason));
                    self.count(|s| s.retried += 1);
                }
                false
            }
        }
    }

    /// Record the row dead with `reason`; count, remember and audit it.
    async fn dead_letter(&mut self, row: &OutboxRecord, reason: &str) {
        let (id, r) = (row.id, reason.to_string());
        if let Err(e) = self.blocking(move |s| s.outbox().dead(id, &r)).await {
            error!(cause = %e, "cannot record the dead delivery in the outbox");
        }
        self.record(&row.destination, "dead", Err(reason));
        self.count(|s| s.dead += 1);
        self.audit_transfer(row, crate::audit::Outcome::SeriousFailure);
    }

    /// Send the row's file to its destination, by the destination's kind.
    async fn deliver(&self, row: &OutboxRecord) -> Result<(), DeliveryFailure> {
        let dest = self.destinations.get(&row.destination).ok_or_else(|| {
            DeliveryFailure::transient(format!(
                "destination {:?} is not in the node config's [[destinations]] (restore it \
                 and restart; the row waits)",
                row.destination
            ))
        })?;
        match dest.kind {
            DestinationKind::Dimse => self.deliver_dimse(dest, row).await,
            DestinationKind::Stow => {
                let target = match self.stow.get(&row.destination) {
                    Some(Ok(target)) => target,
                    Some(Err(why)) => return Err(DeliveryFailure::transient(why.clone())),
                    None => {
                        return Err(DeliveryFailure::transient(format!(
                            "destination {:?} has no STOW-RS client",
                            row.destination
                        )));
                    }
                };
                let stored = target.store(&row.seg_path, &row.sop_instance_uid).await?;
                if let Some(code) = stored.warning {
                    warn!(
                        url = %target.url(),
                        warning = %crate::dimse::Status(code),
                        http_status = stored.http_status,
                        "stored with a warning"
                    );
                }
                Ok(())
            }
        }
    }

    /// Probe (when the destination failed before) and C-STORE the file.
    async fn deliver_dimse(
        &self,
        dest: &DestinationConfig,
        row: &OutboxRecord,
    ) -> Result<(), DeliveryFailure> {
        let peer = dest.peer().ok_or_else(|| {
            DeliveryFailure::transient(format!(
                "destination {:?} lacks ae_title, host or port",
                dest.name
            ))
        })?;
        let tls = match self.tls.get(&row.destination) {
            None => None,
            Some(Ok(tls)) => Some(tls.clone()),
            Some(Err(why)) => return Err(DeliveryFailure::transient(why.clone())),
        };
        let opts = dimse::options_for(dest, &self.node_ae, &self.network, tls);
        let probe_first = self.down.contains(&row.destination) || row.attempts > 0;
        dimse::store(&peer, &opts, &row.seg_path, probe_first).await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Spool) -> Result<T, SpoolError> + Send + 'static,
    ) -> Result<T, SpoolError> {
        let spool = self.spool.clone();
        tokio::task::spawn_blocking(move || f(&spool))
            .await
            .unwrap_or_else(|e| {
                Err(SpoolError::Io {
                    path: "outbox".into(),
                    source: std::io::Error::other(format!("outbox index task panicked: {e}")),
                })
            })
    }

    /// Count the attempt and remember the destination's answer.
    fn record(&self, destination: &str, outcome: &str, result: Result<&str, &str>) {
        metrics::global()
            .delivery_attempts
            .inc(&[destination, outcome]);
        match result {
            Ok(uid) => {
                self.states
                    .record(destination, true, format!("instance {uid} acknowledged"))
            }
            Err(reason) => self.states.record(destination, false, reason),
        }
    }

    fn count(&self, f: impl FnOnce(&mut OutboxSummary)) {
        f(&mut self.summary.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// The STOW-RS client of every `kind = "stow"` destination, or why it cannot be used
/// (logged now; its deliveries fail with the reason until fixed).
fn load_stow(config: &Config) -> HashMap<String, Result<StowTarget, String>> {
    config
        .destinations
        .iter()
        .filter(|d| d.kind == DestinationKind::Stow)
        .map(|d| {
            let target = StowTarget::from_config(d, &config.network);
            if let Err(why) = &target {
                error!(destination = %d.name, cause = %why, "STOW-RS destination unusable: its deliveries fail until fixed");
            }
            (d.name.clone(), target)
        })
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

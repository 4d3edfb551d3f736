//! One association, from A-ASSOCIATE-RQ to A-RELEASE or A-ABORT: negotiate (with access
//! control), receive P-DATA, reassemble DIMSE messages, dispatch them to the services,
//! answer each with its own message id, and report what happened.
//!
//! Every read is bounded by the read timeout and every write by the write timeout (both
//! enforced by dicom-ul). A peer that sends garbage, breaks the DIMSE protocol or falls
//! silent is aborted; it affects no other association. The task never panics on input.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use dicom_ul::Pdu;
use dicom_ul::association::{Association, AsyncServerAssociation};
use dicom_ul::pdu::{AbortRQServiceProviderReason, PDataValue, PDataValueType};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{Span, debug, info, warn};

use super::access::AccessPolicy;
use super::admission::Pending;
use super::audited::{self, StudyTally};
use super::body::BodyLimits;
use super::budget::MemoryBudget;
use super::ending::{End, report_failed_negotiation};
use super::listener::Transport;
use super::negotiation::{self, ScpOptions};
use super::reassembly::Reassembler;
use super::stream::ScpStream;
use super::{ScpContext, Totals, tcp};
use crate::error_chain::error_chain;
use crate::ingest::IngestEvent;

/// The association type the SCP serves, over TCP or TLS.
pub(super) type ServerAssociation<S = TcpStream> = AsyncServerAssociation<S>;

/// What all association tasks share.
pub(crate) struct Shared {
    /// Config, spool and event channel.
    pub(crate) ctx: ScpContext,
    /// Negotiation options (without the per-peer access policy).
    options: ScpOptions,
    /// Access rules.
    pub(crate) access: Arc<AccessPolicy>,
    /// Storage SOP classes accepted.
    pub(super) accepted_classes: Vec<String>,
    /// Counters for the final summary.
    pub(crate) totals: Totals,
    /// Where data sets may live while they arrive (memory budget, spill folder, maximum).
    pub(crate) body_limits: BodyLimits,
}

impl Shared {
    /// Derive everything the tasks need from the context once.
    pub(crate) fn new(ctx: ScpContext) -> Self {
        Self {
            options: negotiation::server_options(&ctx.config),
            access: Arc::new(AccessPolicy::from_config(
                &ctx.config.node,
                &ctx.config.access,
            )),
            accepted_classes: ctx.config.accepted_sop_classes(),
            totals: Totals::default(),
            body_limits: BodyLimits {
                budget: MemoryBudget::new(mib(ctx.config.network.memory_budget_mb)),
                spool: Arc::clone(&ctx.spool),
                spill_above: mib(ctx.config.network.spill_above_mb),
                max_bytes: mib(ctx.config.network.max_dataset_mb),
            },
            ctx,
        }
    }
}

fn mib(n: u64) -> u64 {
    n.saturating_mul(1024 * 1024)
}

/// Per-association counters for the summary line.
#[derive(Debug, Default)]
pub(super) struct Stats {
    /// Instances stored.
    pub(super) stored: u64,
    /// C-STOREs answered with a failure status.
    pub(super) failed: u64,
    /// Data set bytes received.
    pub(super) bytes: u64,
}

/// Serve one accepted connection until the association ends. Runs inside the
/// `association` span created by the accept loop. The connection holds a pending place
/// until it has negotiated (within the ARTIM timeout), then an association slot.
pub(crate) async fn serve(
    id: u64,
    socket: TcpStream,
    peer: SocketAddr,
    transport: Transport,
    pending: Pending,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    tcp::tune_accepted(&socket);
    let access = shared.access.for_peer(peer.ip());
    let refusal = access.refusal();
    let options = shared.options.clone().ae_access_control(access);
    // ARTIM (PS3.8 9.1.5) bounds the whole negotiation: the TLS handshake and the
    // A-ASSOCIATE-RQ together.
    let artim = shared.ctx.config.network.artim_timeout();
    match transport {
        Transport::Plain => {
            let established = tokio::select! {
                biased;
                _ = stopped(&mut stop) => return,
                established = tokio::time::timeout(artim, options.establish_async(socket)) => established,
            };
            serve_established(
                id,
                peer,
                &transport,
                pending,
                established,
                &refusal,
                shared,
                stop,
            )
            .await
        }
        Transport::Tls(ref tls) => {
            let options = options.tls_config(Arc::clone(&tls.config));
            let established = tokio::select! {
                biased;
                _ = stopped(&mut stop) => return,
                established = tokio::time::timeout(artim, options.establish_tls_async(socket)) => established,
            };
            serve_established(
                id,
                peer,
                &transport,
                pending,
                established,
                &refusal,
                shared,
                stop,
            )
            .await
        }
    }
}

/// The rest of [`serve`] once negotiation has ended (or ARTIM expired), on either stream.
#[allow(clippy::too_many_arguments)]
async fn serve_established<S: ScpStream>(
    id: u64,
    peer: SocketAddr,
    transport: &Transport,
    pending: Pending,
    established: Result<
        Result<ServerAssociation<S>, dicom_ul::association::Error>,
        tokio::time::error::Elapsed,
    >,
    refusal: &super::access::RefusalSlot,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let network = &shared.ctx.config.network;
    let mut association = match established {
        Ok(Ok(association)) => association,
        Ok(Err(err)) => {
            Totals::add(&shared.totals.associations_rejected, 1);
            crate::metrics::global().association_rejected(&err);
            report_failed_negotiation(&err, network.read_timeout_seconds);
            audited::refused(&shared, peer, transport, &err, refusal);
            return;
        }
        Err(_artim_expired) => {
            Totals::add(&shared.totals.associations_rejected, 1);
            warn!(
                artim_s = network.artim_timeout_seconds,
                "connection closed: no complete A-ASSOCIATE-RQ within the ARTIM timeout (network.artim_timeout_seconds)"
            );
            return;
        }
    };
    let Some(_slot) = pending.into_slot(network.read_timeout()).await else {
        Totals::add(&shared.totals.associations_rejected, 1);
        warn!(
            max_associations = network.max_associations,
            waited_s = network.read_timeout_seconds,
            "association aborted: every association slot stayed busy (network.max_associations)"
        );
        let _ = association
            .send(&Pdu::AbortRQ {
                source: dicom_ul::pdu::AbortRQSource::ServiceProvider(
                    AbortRQServiceProviderReason::ReasonNotSpecified,
                ),
            })
            .await;
        return;
    };
    Totals::add(&shared.totals.associations, 1);
    crate::metrics::global().association_accepted();
    let calling_ae = association.peer_ae_title().to_string();
    let called_ae = association.called_ae_title().trim().to_string();
    Span::current().record("calling_ae", calling_ae.as_str());
    audited::accepted(&shared, peer, transport, &calling_ae);
    let contexts = association.presentation_contexts();
    info!(
        called_ae = %called_ae,
        peer_max_pdu = association.requestor_max_pdu_length(),
        "association accepted"
    );
    debug!(contexts = %negotiation::describe_contexts(contexts), "presentation contexts");
    if !contexts
        .iter()
        .any(|pc| negotiation::accepted_context(contexts, pc.id).is_some())
    {
        warn!(
            contexts = %negotiation::describe_contexts(contexts),
            "no presentation context accepted: the peer proposed no SOP class/transfer syntax this node accepts"
        );
    }

    let mut session = Session {
        id,
        calling_ae,
        called_ae,
        shared: Arc::clone(&shared),
        reassembler: Reassembler::new(shared.body_limits.clone()),
        stats: Stats::default(),
        study_uids: Vec::new(),
        events_stalled: false,
        started: Instant::now(),
        peer,
        tally: StudyTally::default(),
    };
    let end = session.receive_loop(&mut association, &mut stop).await;
    let shutting_down = *stop.borrow();
    session.finish(association, end, shutting_down).await;
}

/// Resolves when the server asks in-flight associations to stop.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// The state of one established association.
pub(super) struct Session {
    /// Association id (also in the tracing span).
    pub(super) id: u64,
    /// The peer's calling AE title, recorded with every stored instance.
    pub(super) calling_ae: String,
    /// The called AE title the peer addressed, recorded with every stored instance: the
    /// pipelines route on it.
    pub(super) called_ae: String,
    /// Config, spool, events, counters.
    pub(super) shared: Arc<Shared>,
    /// PDV fragments not yet forming a whole message.
    reassembler: Reassembler,
    /// Counters for the summary line.
    pub(super) stats: Stats,
    /// Study Instance UIDs stored on this association, in first-seen order.
    pub(super) study_uids: Vec<String>,
    /// Set after an event send timed out: further events are offered without waiting.
    pub(super) events_stalled: bool,
    started: Instant,
    /// The peer's address (for audit messages).
    pub(super) peer: SocketAddr,
    /// What was stored per study, for the audit trail.
    pub(super) tally: StudyTally,
}

impl Session {
    /// Receive PDUs and serve DIMSE messages until the association ends.
    async fn receive_loop<S: ScpStream>(
        &mut self,
        association: &mut ServerAssociation<S>,
        stop: &mut watch::Receiver<bool>,
    ) -> End {
        let shared = Arc::clone(&self.shared);
        let network = &shared.ctx.config.network;
        let association_deadline = self.started + network.association_timeout();
        loop {
            // A message must arrive whole within the message limit, however slowly the
            // peer trickles its bytes (each PDU restarts only the idle read timeout).
            let message_deadline = self
                .reassembler
                .message_started()
                .map_or(association_deadline, |t| {
                    (t + network.message_timeout()).min(association_deadline)
                });
            let pdu = tokio::select! {
                biased;
                _ = stopped(stop) => return End::abort_by_user("server shutting down (drain timeout reached)"),
                _ = tokio::time::sleep_until(message_deadline.into()) => {
                    return if message_deadline == association_deadline {
                        warn!(limit_s = network.association_timeout_seconds, "association time limit reached (network.association_timeout_seconds); aborting");
                        End::abort_by_user("association time limit reached")
                    } else {
                        warn!(limit_s = network.message_timeout_seconds, "a DIMSE message did not arrive whole within network.message_timeout_seconds; aborting");
                        End::abort_by_user("message time limit reached")
                    };
                }
                pdu = association.receive() => pdu,
            };
            match pdu {
                Ok(Pdu::PData { data }) => {
                    tcp::quickack(association.inner_stream().tcp());
                    for pdv in data {
                        if let Err(end) = self.take_fragment(association, pdv).await {
                            return end;
                        }
                    }
                }
                Ok(Pdu::ReleaseRQ) => {
                    if !self.reassembler.is_idle() {
                        warn!(
                            "A-RELEASE-RQ in the middle of a DIMSE message; the partial message is discarded"
                        );
                    }
                    return match association.send(&Pdu::ReleaseRP).await {
                        Ok(()) => End::Released,
                        Err(err) => End::SendFailed(error_chain(&err)),
                    };
                }
                Ok(Pdu::AbortRQ { source }) => return End::PeerAborted(source),
                Ok(other) => {
                    let what = other.short_description().to_string();
                    warn!(pdu = %what, "unexpected PDU during the association; aborting");
                    return End::abort_by_provider(
                        AbortRQServiceProviderReason::UnexpectedPdu,
                        format!("unexpected {what}"),
                    );
                }
                Err(err) => {
                    let read_timeout_s = self.shared.ctx.config.network.read_timeout_seconds;
                    return End::from_receive_error(
                        &err,
                        !self.reassembler.is_idle(),
                        read_timeout_s,
                    );
                }
            }
        }
    }

    /// Feed one PDV to the reassembler and serve the message it completes, if any.
    async fn take_fragment<S: ScpStream>(
        &mut self,
        association: &mut ServerAssociation<S>,
        pdv: PDataValue,
    ) -> Result<(), End> {
        if pdv.value_type == PDataValueType::Data {
            self.stats.bytes += pdv.data.len() as u64;
        }
        match self.reassembler.push(pdv) {
            Ok(None) => Ok(()),
            Ok(Some(message)) => self.dispatch(association, message).await,
            Err(err) => {
                warn!(cause = %err, "DIMSE protocol violation; aborting the association");
                Err(End::abort_by_user(err.to_string()))
            }
        }
    }

    /// Close the association as `end` requires, send the release event and log the summary.
    async fn finish<S: ScpStream>(
        mut self,
        mut association: ServerAssociation<S>,
        end: End,
        shutting_down: bool,
    ) {
        if let End::Abort { source, .. } = &end {
            let abort = Pdu::AbortRQ {
                source: source.clone(),
            };
            if let Err(err) = association.send(&abort).await {
                debug!(cause = %error_chain(&err), "could not send A-ABORT (peer gone?)");
            }
        }
        let _ = association.inner_stream().shutdown().await;
        drop(association);

        Totals::add(&self.shared.totals.bytes_received, self.stats.bytes);
        crate::metrics::global().association_ended(self.stats.bytes);
        audited::ended(&self, &end, shutting_down);
        if !matches!(end, End::Released) {
            Totals::add(&self.shared.totals.associations_aborted, 1);
        } else if !self.study_uids.is_empty() {
            // A released association that stored nothing (an echo) tells the pipeline nothing.
            let study_uids = std::mem::take(&mut self.study_uids);
            self.emit(IngestEvent::AssociationReleased {
                association_id: self.id,
                calling_ae: self.calling_ae.clone(),
                study_uids,
            })
            .await;
        }
        let secs = self.started.elapsed().as_secs_f64();
        let mb_per_s = if secs > 0.0 {
            self.stats.bytes as f64 / 1e6 / secs
        } else {
            0.0
        };
        info!(
            end = %end.describe(),
            instances = self.stats.stored,
            failures = self.stats.failed,
            bytes = self.stats.bytes,
            duration_ms = (secs * 1000.0) as u64,
            mb_per_s = (mb_per_s * 10.0).round() / 10.0,
            "association ended"
        );
    }
}

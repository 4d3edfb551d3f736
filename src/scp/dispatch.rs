//! Serving one DIMSE message on an established association: route it to its service
//! (C-ECHO, C-STORE, or "unrecognized operation"), send the response with the request's
//! own message id, and tell the pipeline about what was stored.

use std::time::{Duration, Instant};

use dicom_ul::Pdu;
use dicom_ul::pdu::{PDataValue, PDataValueType, PresentationContextNegotiated};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::association::{ServerAssociation, Session};
use super::ending::End;
use super::negotiation;
use super::reassembly::Message;
use super::store::{self, StoreRequest};
use super::{Totals, echo, tcp};
use crate::dimse::{Command, command::unrecognized_operation_response};
use crate::error_chain::error_chain;
use crate::ingest::{IngestEvent, Origin};

/// How long one ingest event may wait for room in the channel before it is dropped.
const EVENT_SEND_TIMEOUT: Duration = Duration::from_secs(5);

impl Session {
    /// Serve one DIMSE message and send its response.
    pub(super) async fn dispatch<S: super::stream::ScpStream>(
        &mut self,
        association: &mut ServerAssociation<S>,
        message: Message,
    ) -> Result<(), End> {
        let Message {
            context_id,
            command,
            payload,
        } = message;
        let Some(context) =
            negotiation::accepted_context(association.presentation_contexts(), context_id).cloned()
        else {
            warn!(
                context = context_id,
                "DIMSE message on a presentation context that was not accepted; aborting"
            );
            return Err(End::abort_by_user(format!(
                "message on unaccepted presentation context {context_id}"
            )));
        };
        let mut stored_event = None;
        let response = match command {
            Command::EchoRq { message_id } => {
                debug!(message_id, "C-ECHO");
                echo::respond(message_id, &context).encode()
            }
            Command::StoreRq {
                message_id,
                sop_class_uid,
                sop_instance_uid,
                ..
            } => {
                let request = StoreRequest {
                    message_id,
                    sop_class_uid,
                    sop_instance_uid,
                    payload,
                };
                let (response, event) = self.store(&context, request).await;
                stored_event = event;
                response.encode()
            }
            Command::Unsupported {
                field,
                message_id: Some(message_id),
                sop_class_uid,
                ..
            } => {
                info!(
                    command_field = format!("{field:#06x}"),
                    message_id, "unsupported DIMSE operation; answered 0x0211"
                );
                unrecognized_operation_response(field, message_id, sop_class_uid.as_deref())
            }
            Command::Unsupported {
                field,
                message_id: None,
                ..
            } => {
                warn!(
                    command_field = format!("{field:#06x}"),
                    "DIMSE request without a MessageID; aborting"
                );
                return Err(End::abort_by_user("DIMSE request without a MessageID"));
            }
            Command::EchoRsp { .. } | Command::StoreRsp { .. } => {
                warn!(command = ?command.field(), "peer sent a DIMSE response to an SCP; ignored");
                return Ok(());
            }
        };
        let pdu = Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: context_id,
                value_type: PDataValueType::Command,
                is_last: true,
                data: response,
            }],
        };
        if let Err(err) = association.send(&pdu).await {
            let cause = error_chain(&err);
            warn!(cause = %cause, "cannot send the DIMSE response; closing");
            return Err(End::SendFailed(cause));
        }
        // Sending put the socket back into delayed-ACK mode; the peer's next request
        // must not wait for our ACK (see `tcp`).
        tcp::quickack(association.inner_stream().tcp());
        if let Some(event) = stored_event {
            self.emit(event).await;
        }
        Ok(())
    }

    /// Serve one C-STORE; returns the response and, on success, the event to emit once
    /// the response is on its way.
    async fn store(
        &mut self,
        context: &PresentationContextNegotiated,
        request: StoreRequest,
    ) -> (Command, Option<IngestEvent>) {
        let started = Instant::now();
        let sop_class_uid = request.sop_class_uid.clone();
        let origin = Origin {
            association_id: Some(self.id),
            calling_ae: self.calling_ae.clone(),
            called_ae: self.called_ae.clone(),
        };
        let outcome = store::handle(
            &self.shared.ctx.spool,
            &self.shared.accepted_classes,
            context,
            &origin,
            request,
        )
        .await;
        if let Command::StoreRsp { status, .. } = &outcome.response {
            crate::metrics::global().store_answered(
                &sop_class_uid,
                &context.transfer_syntax,
                &self.calling_ae,
                status.0,
                started.elapsed(),
            );
        }
        let Some(stored) = outcome.stored else {
            self.stats.failed += 1;
            Totals::add(&self.shared.totals.store_failures, 1);
            return (outcome.response, None);
        };
        self.stats.stored += 1;
        Totals::add(&self.shared.totals.instances_stored, 1);
        debug!(
            sop_instance = %stored.header.sop_instance_uid,
            series = %stored.header.series_uid,
            bytes = stored.dataset_bytes,
            ms = started.elapsed().as_millis() as u64,
            replaced = stored.replaced,
            stored_so_far = self.stats.stored,
            "instance stored"
        );
        if stored.replaced {
            debug!(sop_instance = %stored.header.sop_instance_uid, "re-sent instance replaced the stored copy");
        }
        self.tally.add(&stored.header);
        if !self.study_uids.contains(&stored.header.study_uid) {
            self.study_uids.push(stored.header.study_uid.clone());
        }
        let event = IngestEvent::InstanceStored {
            origin,
            header: stored.header,
            replaced: stored.replaced,
        };
        (outcome.response, Some(event))
    }

    /// Offer an ingest event to the pipeline without letting a stalled consumer hold
    /// the association: wait at most [`EVENT_SEND_TIMEOUT`], and after one timeout only
    /// offer (no waiting) until the consumer catches up.
    pub(super) async fn emit(&mut self, event: IngestEvent) {
        let Some(events) = &self.shared.ctx.events else {
            return;
        };
        if self.events_stalled {
            match events.tx.try_send(event) {
                Ok(()) => self.events_stalled = false,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    events.count_drop();
                    debug!("ingest event consumer still stalled; event dropped")
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    debug!("ingest event receiver gone; event dropped")
                }
            }
            return;
        }
        match tokio::time::timeout(EVENT_SEND_TIMEOUT, events.tx.send(event)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => debug!("ingest event receiver gone; event dropped"),
            Err(_) => {
                events.count_drop();
                self.events_stalled = true;
                warn!(
                    timeout_s = EVENT_SEND_TIMEOUT.as_secs(),
                    "ingest event consumer stalled; event dropped (the instance is safe in the spool; the pipelines read it back from there)"
                );
            }
        }
    }
}

//! The SCP's audit messages: an association accepted (User Authenticated / Login), a
//! connection refused (Security Alert: an AE title not allowed here, a failed TLS
//! handshake, something that is not DICOM), an association cut for breaking the protocol
//! (Security Alert, hostile input), and at its end one DICOM Instances Transferred per
//! study stored on it.

use std::net::SocketAddr;

use dicom_ul::association::Error as UlError;
use dicom_ul::pdu::{AbortRQServiceProviderReason, AbortRQSource};
use tracing::warn;

use super::access::RefusalSlot;
use super::association::{Session, Shared};
use super::ending::End;
use super::listener::Transport;
use crate::audit::{AlertKind, Direction, Node, Outcome, StudyRef, events};
use crate::error_chain::error_chain;
use crate::ingest::InstanceHeader;

/// What one association stored, per study, in first-seen order.
#[derive(Debug, Default)]
pub(super) struct StudyTally {
    studies: Vec<StudyRef>,
}

impl StudyTally {
    /// Count one stored instance.
    pub(super) fn add(&mut self, header: &InstanceHeader) {
        let study = match self
            .studies
            .iter_mut()
            .position(|s| s.study_uid == header.study_uid)
        {
            Some(i) => &mut self.studies[i],
            None => {
                self.studies.push(StudyRef {
                    study_uid: header.study_uid.clone(),
                    patient_id: header.patient_id.clone(),
                    patient_name: Some(header.patient_name.clone()),
                    sop_classes: Vec::new(),
                });
                self.studies.last_mut().expect("just pushed")
            }
        };
        match study
            .sop_classes
            .iter_mut()
            .find(|(uid, _)| *uid == header.sop_class_uid)
        {
            Some((_, n)) => *n += 1,
            None => study.sop_classes.push((header.sop_class_uid.clone(), 1)),
        }
    }
}

fn us(shared: &Shared) -> Node {
    Node {
        ae_title: shared.ctx.config.node.ae_title.as_str().to_string(),
        ip: None,
    }
}

/// An association was accepted.
pub(super) fn accepted(shared: &Shared, peer: SocketAddr, transport: &Transport, calling_ae: &str) {
    let peer = Node {
        ae_title: calling_ae.to_string(),
        ip: Some(peer.ip()),
    };
    shared.ctx.audit.record(events::association_accepted(
        &peer,
        &us(shared),
        transport.name(),
    ));
}

/// A connection did not become an association.
pub(super) fn refused(
    shared: &Shared,
    peer: SocketAddr,
    transport: &Transport,
    err: &UlError,
    refusal: &RefusalSlot,
) {
    let mut who = Node {
        ae_title: String::new(),
        ip: Some(peer.ip()),
    };
    let (kind, why) = match err {
        UlError::Rejected { .. } => {
            let Some(titles) = refusal.get() else { return };
            who.ae_title = titles.calling_ae.clone();
            (
                AlertKind::UnknownAe,
                format!(
                    "association refused: calling AE {:?} calling {:?} is not allowed here",
                    titles.calling_ae, titles.called_ae
                ),
            )
        }
        UlError::TlsHandshake { .. } | UlError::TlsConnection { .. } => {
            let cause = error_chain(err);
            warn!(cause = %cause, "TLS handshake failed (no, an untrusted or an expired client certificate, or plain DICOM on the TLS port); connection closed");
            (
                AlertKind::TlsFailure,
                format!("TLS handshake failed: {cause}"),
            )
        }
        UlError::ReceivePdu { .. } if matches!(transport, Transport::Plain) => (
            AlertKind::HostileInput,
            format!("not a DICOM association request: {}", error_chain(err)),
        ),
        UlError::ReceivePdu { .. } => (
            AlertKind::HostileInput,
            format!(
                "not a DICOM association request (after TLS): {}",
                error_chain(err)
            ),
        ),
        _ => return,
    };
    shared
        .ctx
        .audit
        .record(events::security_alert(kind, &who, &us(shared), &why));
}

/// Whether an association's end means the peer broke the protocol (rather than hanging up,
/// falling silent or being cut by our shutdown).
fn hostile(end: &End, shutting_down: bool) -> Option<String> {
    match end {
        End::Abort {
            source:
                AbortRQSource::ServiceProvider(
                    AbortRQServiceProviderReason::UnrecognizedPdu
                    | AbortRQServiceProviderReason::UnexpectedPdu,
                ),
            reason,
        } => Some(reason.clone()),
        End::Abort {
            source: AbortRQSource::ServiceUser,
            reason,
        } if !shutting_down => Some(reason.clone()),
        _ => None,
    }
}

/// An association ended: what it stored, and whether it was cut for hostile input.
pub(super) fn ended(session: &Session, end: &End, shutting_down: bool) {
    let audit = &session.shared.ctx.audit;
    if !audit.is_enabled() {
        return;
    }
    let peer = Node {
        ae_title: session.calling_ae.clone(),
        ip: Some(session.peer.ip()),
    };
    let node = us(&session.shared);
    let outcome = if session.stats.failed == 0 {
        Outcome::Success
    } else {
        Outcome::MinorFailure
    };
    for study in &session.tally.studies {
        audit.record(events::instances_transferred(
            Direction::Received,
            &peer,
            &node,
            study,
            outcome,
        ));
    }
    if let Some(why) = hostile(end, shutting_down) {
        audit.record(events::security_alert(
            AlertKind::HostileInput,
            &peer,
            &node,
            &format!("association aborted: {why}"),
        ));
    }
}

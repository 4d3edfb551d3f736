//! One C-STORE over an open association: the command set and the data set on the chosen
//! presentation context (split into PDUs of the peer's maximum length), then the
//! C-STORE-RSP within the read timeout, checked against our message id.

use super::ScuError;
use super::association::Association;
use crate::dimse::{Command, Status};

/// What the peer answered to one C-STORE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoreOutcome {
    /// The response status.
    pub status: Status,
    /// The peer's Error Comment (0000,0902), when it gave one.
    pub error_comment: Option<String>,
}

/// The instance to store: its identity and its data set, already encoded in the transfer
/// syntax of context `pc_id`.
pub(crate) struct StoreRequest<'a> {
    /// Accepted presentation context for this SOP class and transfer syntax.
    pub pc_id: u8,
    /// Affected SOP Class UID.
    pub sop_class_uid: &'a str,
    /// Affected SOP Instance UID.
    pub sop_instance_uid: &'a str,
    /// The data set bytes (no preamble, no file meta group).
    pub dataset: &'a [u8],
}

/// Send one C-STORE-RQ with its data set and wait for the matching C-STORE-RSP.
///
/// An `Err` means the association can no longer be trusted (transport failure, timeout,
/// abort, a response to another message): the caller aborts it and fails what remains.
/// A failure status is not an error: it is the peer's answer, in the outcome.
pub(crate) async fn c_store(
    assoc: &mut Association,
    rq: &StoreRequest<'_>,
) -> Result<StoreOutcome, ScuError> {
    let message_id = assoc.next_message_id();
    let command = Command::StoreRq {
        message_id,
        sop_class_uid: rq.sop_class_uid.to_string(),
        sop_instance_uid: rq.sop_instance_uid.to_string(),
        priority: 0,
        move_originator: None,
    };
    assoc
        .send_message(rq.pc_id, &command.encode(), Some(rq.dataset))
        .await?;
    let (pc_id, response) = assoc.receive_command("C-STORE-RSP").await?;
    let protocol = |reason: String| ScuError::Protocol {
        peer: assoc.peer().to_string(),
        reason,
    };
    match response {
        Command::StoreRsp {
            responding_to,
            status,
            error_comment,
            sop_instance_uid,
            ..
        } => {
            if responding_to != message_id {
                return Err(protocol(format!(
                    "C-STORE-RSP answers message {responding_to}, but the outstanding request is {message_id}"
                )));
            }
            if pc_id != rq.pc_id {
                return Err(protocol(format!(
                    "C-STORE-RSP came on presentation context {pc_id}, the request went on {}",
                    rq.pc_id
                )));
            }
            if !sop_instance_uid.is_empty() && sop_instance_uid != rq.sop_instance_uid {
                return Err(protocol(format!(
                    "C-STORE-RSP names instance {sop_instance_uid}, the request was for {}",
                    rq.sop_instance_uid
                )));
            }
            Ok(StoreOutcome {
                status,
                error_comment,
            })
        }
        other => Err(protocol(format!(
            "expected C-STORE-RSP, got {:?}",
            other.field()
        ))),
    }
}

//! C-STORE (Storage Service Class, PS3.4 B): check the request against the negotiated
//! presentation context, have the spool store the data set durably (on a blocking thread:
//! it parses, appends to the journal and flushes it), and answer with a status that says what
//! happened, plus an ErrorComment an operator on the other side can act on.

use std::sync::Arc;

use dicom_ul::pdu::PresentationContextNegotiated;
use tracing::{error, warn};

use super::body::{Discarded, Received};
use super::reassembly::Payload;
use crate::dimse::{Command, Status};
use crate::ingest::Origin;
use crate::spool::{IncomingInstance, Spool, SpoolError, StoredInstance};

/// One C-STORE request with its data set.
#[derive(Debug)]
pub(crate) struct StoreRequest {
    /// MessageID, echoed as MessageIDBeingRespondedTo.
    pub(crate) message_id: u16,
    /// Affected SOP Class UID of the command.
    pub(crate) sop_class_uid: String,
    /// Affected SOP Instance UID of the command.
    pub(crate) sop_instance_uid: String,
    /// The data set.
    pub(crate) payload: Payload,
}

/// What handling one C-STORE gave.
#[derive(Debug)]
pub(crate) struct StoreOutcome {
    /// The C-STORE-RSP to send.
    pub(crate) response: Command,
    /// The stored instance, on success.
    pub(crate) stored: Option<StoredInstance>,
}

/// Handle one C-STORE received on `context` (an accepted presentation context).
pub(crate) async fn handle(
    spool: &Arc<Spool>,
    accepted_classes: &[String],
    context: &PresentationContextNegotiated,
    origin: &Origin,
    request: StoreRequest,
) -> StoreOutcome {
    let StoreRequest {
        message_id,
        sop_class_uid,
        sop_instance_uid,
        payload,
    } = request;
    let respond =
        |status: Status, comment: Option<String>, stored: Option<StoredInstance>| StoreOutcome {
            response: Command::StoreRsp {
                responding_to: message_id,
                sop_class_uid: sop_class_uid.clone(),
                sop_instance_uid: sop_instance_uid.clone(),
                status,
                error_comment: comment,
            },
            stored,
        };

    if sop_class_uid != context.abstract_syntax || !accepted_classes.contains(&sop_class_uid) {
        warn!(
            sop_class = %sop_class_uid, sop_instance = %sop_instance_uid, context = context.id,
            context_class = %context.abstract_syntax,
            "C-STORE refused: its SOP class was not negotiated on this presentation context"
        );
        let comment = format!(
            "SOP class not negotiated on presentation context {}",
            context.id
        );
        return respond(Status::SOP_CLASS_NOT_SUPPORTED, Some(comment), None);
    }
    let (dataset, _lease) = match payload {
        Payload::Dataset(Received::Complete { dataset, lease }) => (dataset, lease),
        Payload::Dataset(Received::Discarded {
            bytes,
            why: Discarded::TooLarge { limit },
        }) => {
            error!(sop_instance = %sop_instance_uid, bytes, limit, "C-STORE refused: data set larger than network.max_dataset_mb; its bytes were discarded as they arrived");
            return respond(
                Status::OUT_OF_RESOURCES,
                Some(format!("data set larger than {} MiB", limit >> 20)),
                None,
            );
        }
        Payload::Dataset(Received::Discarded {
            bytes,
            why: Discarded::Spool(err),
        }) => {
            error!(sop_instance = %sop_instance_uid, bytes, cause = %err, "C-STORE refused: the data set could not be spilled to disk while it arrived");
            return respond(err.dimse_status(), Some(error_comment(&err)), None);
        }
        Payload::None => {
            warn!(sop_instance = %sop_instance_uid, "C-STORE without a data set");
            return respond(
                Status::CANNOT_UNDERSTAND,
                Some("C-STORE without a data set".into()),
                None,
            );
        }
    };

    let incoming = IncomingInstance {
        sop_class_uid: &sop_class_uid,
        sop_instance_uid: &sop_instance_uid,
        transfer_syntax_uid: &context.transfer_syntax,
        dataset,
        calling_ae: &origin.calling_ae,
        called_ae: &origin.called_ae,
    };
    // `_lease` (the memory the data set holds of the budget) is given back once storing
    // is done with the bytes.
    let stored = store_off_the_runtime(spool, incoming).await;
    match stored {
        Ok(Ok(stored)) => respond(Status::SUCCESS, None, Some(stored)),
        Ok(Err(err)) => {
            let status = err.dimse_status();
            if status == Status::OUT_OF_RESOURCES {
                error!(sop_instance = %sop_instance_uid, status = %status, cause = %err, "C-STORE refused");
            } else {
                warn!(sop_instance = %sop_instance_uid, status = %status, cause = %err, "C-STORE refused");
            }
            respond(status, Some(error_comment(&err)), None)
        }
        Err(panic) => {
            error!(sop_instance = %sop_instance_uid, cause = %panic, "storing panicked (a bug: please report it with the log)");
            respond(
                Status::PROCESSING_FAILURE,
                Some("internal error while storing; see SCP log".into()),
                None,
            )
        }
    }
}

/// Run the blocking [`Spool::store`] (parse, journal append, flush) without stalling the
/// runtime. On a multi-thread runtime (`serve`) it runs right here under `block_in_place`,
/// which moves this worker's other tasks elsewhere: two thread hand-offs fewer per instance
/// than the blocking pool, measured at 5-7 % of a 512-instance ingest. A current-thread
/// runtime cannot do that, so there it goes to the blocking pool. A panic becomes an error.
async fn store_off_the_runtime(
    spool: &Arc<Spool>,
    incoming: IncomingInstance<'_>,
) -> Result<Result<StoredInstance, SpoolError>, String> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread {
        tokio::task::block_in_place(|| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| spool.store(incoming)))
                .map_err(|panic| panic_message(&panic))
        })
    } else {
        let spool = Arc::clone(spool);
        let (class, instance, ts, calling, called) = (
            incoming.sop_class_uid.to_string(),
            incoming.sop_instance_uid.to_string(),
            incoming.transfer_syntax_uid.to_string(),
            incoming.calling_ae.to_string(),
            incoming.called_ae.to_string(),
        );
        let dataset = incoming.dataset;
        tokio::task::spawn_blocking(move || {
            spool.store(IncomingInstance {
                sop_class_uid: &class,
                sop_instance_uid: &instance,
                transfer_syntax_uid: &ts,
                dataset,
                calling_ae: &calling,
                called_ae: &called,
            })
        })
        .await
        .map_err(|join| join.to_string())
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
}

/// A short (ErrorComment is LO: at most 64 characters) reason for the peer's operator.
fn error_comment(err: &SpoolError) -> String {
    match err {
        SpoolError::OutOfSpace {
            free_mb, floor_mb, ..
        } => {
            format!("out of disk space: {free_mb} MB free, floor {floor_mb} MB")
        }
        SpoolError::Unparseable { .. } => {
            "data set cannot be parsed in the negotiated syntax".into()
        }
        SpoolError::Refused(why) => why.comment().into(),
        SpoolError::Header(why) => why.comment(),
        SpoolError::Io { .. } => "spool write failed; see SCP log".into(),
        SpoolError::Index(_) => "spool index update failed; see SCP log".into(),
        SpoolError::ReadOnly => "node is not accepting instances".into(),
        SpoolError::FilingBehind { .. } => "spool is behind filing; see SCP log".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::HeaderError;

    #[test]
    fn comments_fit_in_lo() {
        let errors = [
            SpoolError::OutOfSpace {
                dir: "/x".into(),
                free_mb: 9_999_999_999,
                floor_mb: 1_099_511_627_776,
            },
            SpoolError::Header(HeaderError::MissingAttribute("SOPInstanceUID")),
            SpoolError::Header(HeaderError::InvalidUid {
                attribute: "SeriesInstanceUID",
                value: "x".into(),
            }),
            SpoolError::Header(HeaderError::CommandMismatch {
                attribute: "SOPInstanceUID",
                in_command: "1".into(),
                in_dataset: "2".into(),
            }),
            SpoolError::Unparseable {
                transfer_syntax: "1.2".into(),
                reason: "x".into(),
            },
        ];
        for err in &errors {
            let c = error_comment(err);
            assert!(c.len() <= 64, "{c:?} is {} characters", c.len());
        }
    }
}

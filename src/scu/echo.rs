//! C-ECHO: associate proposing Verification only, send C-ECHO-RQ, return the peer's status.

use tracing::{Instrument, info, info_span, warn};

use super::association;
use super::contexts::ProposedContext;
use super::{ScuError, ScuOptions};
use crate::ae::Peer;
use crate::dimse::{Command, Status};
use crate::uids::{UNCOMPRESSED_TRANSFER_SYNTAXES, VERIFICATION};

/// C-ECHO a peer: the status it answered (success is `Status::SUCCESS`). Association
/// rejects, timeouts and transport failures are errors that say why.
pub async fn echo(peer: &Peer, opts: &ScuOptions) -> Result<Status, ScuError> {
    let span =
        info_span!("association", peer = %peer, calling_ae = %opts.calling_ae, service = "echo");
    echo_inner(peer, opts).instrument(span).await
}

async fn echo_inner(peer: &Peer, opts: &ScuOptions) -> Result<Status, ScuError> {
    let contexts = [ProposedContext {
        abstract_syntax: VERIFICATION.to_string(),
        transfer_syntaxes: UNCOMPRESSED_TRANSFER_SYNTAXES
            .iter()
            .map(|s| s.to_string())
            .collect(),
    }];
    let mut assoc = association::establish(peer, opts, &contexts).await?;
    let Some(pc_id) = assoc
        .accepted()
        .iter()
        .find(|c| c.abstract_syntax == VERIFICATION)
        .map(|c| c.id)
    else {
        assoc.abort().await;
        return Err(ScuError::NoAcceptedContext {
            peer: peer.to_string(),
            proposed: VERIFICATION.into(),
        });
    };
    let message_id = assoc.next_message_id();
    let exchange = async {
        assoc
            .send_message(pc_id, &Command::EchoRq { message_id }.encode(), None)
            .await?;
        match assoc.receive_command("C-ECHO-RSP").await? {
            (
                _,
                Command::EchoRsp {
                    responding_to,
                    status,
                },
            ) if responding_to == message_id => Ok(status),
            (_, Command::EchoRsp { responding_to, .. }) => Err(ScuError::Protocol {
                peer: peer.to_string(),
                reason: format!("C-ECHO-RSP answers message {responding_to}, we sent {message_id}"),
            }),
            (_, other) => Err(ScuError::Protocol {
                peer: peer.to_string(),
                reason: format!("expected C-ECHO-RSP, got {:?}", other.field()),
            }),
        }
    };
    match exchange.await {
        Ok(status) => {
            if let Err(e) = assoc.release().await {
                warn!(cause = %e, "association release failed after C-ECHO");
            }
            info!(%status, "C-ECHO answered");
            Ok(status)
        }
        Err(e) => {
            assoc.abort().await;
            Err(e)
        }
    }
}

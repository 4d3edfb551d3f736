//! How an association ends and why: what the peer did (release, abort, hang-up), what we
//! do about it (A-ABORT with which source), and how dicom-ul's errors read in the log.

use std::error::Error as StdError;

use crate::error_chain::error_chain;
use dicom_ul::association::Error as UlError;
use dicom_ul::pdu::{AbortRQServiceProviderReason, AbortRQSource};
use tracing::{debug, info, warn};

/// How an association ended.
#[derive(Debug)]
pub(super) enum End {
    /// A-RELEASE: the normal end.
    Released,
    /// The peer sent A-ABORT.
    PeerAborted(AbortRQSource),
    /// The peer closed the connection without release.
    PeerClosed { mid_message: bool },
    /// We could not write to the peer.
    SendFailed(String),
    /// We abort: protocol violation, garbage, silence or shutdown.
    Abort {
        source: AbortRQSource,
        reason: String,
    },
}

impl End {
    /// We abort at the upper-layer level (a PDU we cannot read or did not expect, silence).
    pub(super) fn abort_by_provider(
        reason: AbortRQServiceProviderReason,
        why: impl Into<String>,
    ) -> Self {
        End::Abort {
            source: AbortRQSource::ServiceProvider(reason),
            reason: why.into(),
        }
    }

    /// We abort as the application (DIMSE protocol violation, shutdown).
    pub(super) fn abort_by_user(why: impl Into<String>) -> Self {
        End::Abort {
            source: AbortRQSource::ServiceUser,
            reason: why.into(),
        }
    }

    /// One phrase for the summary log line.
    pub(super) fn describe(&self) -> String {
        match self {
            End::Released => "released".into(),
            End::PeerAborted(source) => format!("aborted by peer ({source:?})"),
            End::PeerClosed { mid_message: true } => {
                "connection closed by peer in the middle of a message".into()
            }
            End::PeerClosed { mid_message: false } => {
                "connection closed by peer without release".into()
            }
            End::SendFailed(why) => format!("send failed: {why}"),
            End::Abort { reason, .. } => format!("aborted by us: {reason}"),
        }
    }

    /// The end a failed `receive` means: the peer hung up (`mid_message`: with a DIMSE
    /// message half received), fell silent past `read_timeout_s`, or sent garbage.
    pub(super) fn from_receive_error(
        err: &UlError,
        mid_message: bool,
        read_timeout_s: u64,
    ) -> Self {
        if is_disconnect(err) {
            if mid_message {
                warn!(
                    "connection closed in the middle of a DIMSE message; the partial message is discarded"
                );
            }
            return End::PeerClosed { mid_message };
        }
        if matches!(err, UlError::Timeout { .. }) {
            warn!(
                timeout_s = read_timeout_s,
                "peer silent for longer than network.read_timeout_seconds; aborting"
            );
            return End::abort_by_provider(
                AbortRQServiceProviderReason::ReasonNotSpecified,
                format!("peer silent for {read_timeout_s} s"),
            );
        }
        let cause = error_chain(err);
        warn!(cause = %cause, "malformed PDU from peer; aborting the association");
        End::abort_by_provider(AbortRQServiceProviderReason::UnrecognizedPdu, cause)
    }
}

/// Log why a connection never became an association.
pub(super) fn report_failed_negotiation(err: &UlError, read_timeout_s: u64) {
    match err {
        // The access policy has already logged which rule refused the peer.
        UlError::Rejected { association_rj, .. } => {
            info!(reason = %association_rj.source, "association request rejected")
        }
        UlError::Timeout { .. } => {
            warn!(
                timeout_s = read_timeout_s,
                "no complete A-ASSOCIATE-RQ within the read timeout; connection closed"
            )
        }
        UlError::ConnectionClosed { .. } => {
            debug!("connection closed before an association request (port probe?)")
        }
        UlError::ReceivePdu { .. } => {
            warn!(cause = %error_chain(err), "not a DICOM association request; connection closed (is the peer speaking DICOM on this port?)")
        }
        _ => warn!(cause = %error_chain(err), "association negotiation failed; connection closed"),
    }
}

/// Whether a receive error means the peer went away (as opposed to sending garbage).
fn is_disconnect(err: &UlError) -> bool {
    if matches!(err, UlError::ConnectionClosed { .. }) {
        return true;
    }
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            return matches!(
                io.kind(),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
            );
        }
        source = cause.source();
    }
    false
}

//! The SCU: association requestor, C-ECHO and C-STORE to a remote node. Used by
//! `segnode echo` / `segnode send` and by the pipeline to deliver SEGs.
//!
//! - `contexts`: which presentation contexts to propose for a set of files.
//! - `association`: establishes an association with timeouts, sends messages in PDUs of the
//!   peer's size, reads responses; turns dicom-ul errors into operator-facing [`ScuError`]s.
//! - `echo`: C-ECHO over a Verification-only association.
//! - `store`: one C-STORE over an open association (command, data set, response).
//! - `payload`: picks the accepted presentation context for a file and produces its data
//!   set bytes in that context's transfer syntax (as-is, re-encoded or decoded).
//! - `files`: finds DICOM Part 10 files under files and folders.
//! - `send`: a whole batch: plan, associate, store each, release, report.
//! - `report`: the [`SendReport`] and its summary table.

mod association;
mod contexts;
mod echo;
mod link;
mod payload;
mod report;
mod send;
mod store;

use std::time::Duration;

use crate::ae::AeTitle;

pub use crate::ingest::files::{Collected, FileInfo, ProbeError, collect_dicom_files, probe_file};
pub use echo::echo;
pub use report::SendReport;
pub use send::{send_files, send_paths};

/// How to associate with a peer.
#[derive(Debug, Clone)]
pub struct ScuOptions {
    /// Our calling AE title.
    pub calling_ae: AeTitle,
    /// Largest PDU we accept.
    pub max_pdu_length: u32,
    /// TCP connect + association negotiation.
    pub connect_timeout: Duration,
    /// Waiting for a response.
    pub read_timeout: Duration,
    /// Writing a PDU.
    pub write_timeout: Duration,
    /// DICOM over TLS (CA to verify the peer, optional client certificate); `None`:
    /// plain TCP.
    pub tls: Option<crate::tls::ClientTls>,
}

impl ScuOptions {
    /// Options with the defaults segnode uses for a LAN peer: 128 KiB PDUs, 10 s to
    /// associate, 30 s per response and per PDU write.
    pub fn new(calling_ae: AeTitle) -> Self {
        Self {
            calling_ae,
            max_pdu_length: 131_072,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            tls: None,
        }
    }
}

/// Why an SCU operation failed as a whole (per-instance failures are in [`SendReport`]).
///
/// Every message names the peer and says what to check.
#[derive(Debug, thiserror::Error)]
pub enum ScuError {
    /// No TCP connection could be made.
    #[error("cannot connect to {peer}: {reason} (is the peer running and listening on that port?)")]
    Connect {
        /// The peer, as AE@HOST:PORT.
        peer: String,
        /// The transport error.
        reason: String,
    },
    /// Connecting and negotiating the association took longer than the connect timeout.
    #[error(
        "no association with {peer} within {timeout:?} (host unreachable, or the peer does not answer)"
    )]
    ConnectTimeout {
        /// The peer, as AE@HOST:PORT.
        peer: String,
        /// The connect timeout that ran out.
        timeout: Duration,
    },
    /// The peer answered the association request with A-ASSOCIATE-RJ.
    #[error("{peer} rejected the association ({result}): {reason}{hint}")]
    Rejected {
        /// The peer, as AE@HOST:PORT.
        peer: String,
        /// Whether the peer says a later attempt may succeed.
        result: RejectResult,
        /// The reject source and reason, as the standard words it.
        reason: String,
        /// What to do about it, when we know.
        hint: String,
    },
    /// The TLS handshake failed.
    #[error(
        "TLS handshake with {peer} failed: {reason} (check that the peer speaks DICOM over TLS on that port, that its certificate chains to the configured CA and names its host, and that it accepts our client certificate)"
    )]
    Tls {
        /// The peer, as AE@HOST:PORT.
        peer: String,
        /// rustls' reason.
        reason: String,
    },
    /// The peer accepted the association but none of the proposed presentation contexts.
    #[error(
        "{peer} accepted none of the proposed presentation contexts ({proposed}); it does not support these SOP classes / transfer syntaxes"
    )]
    NoAcceptedContext {
        /// The peer, as AE@HOST:PORT.
        peer: String,
        /// The proposed abstract syntaxes, for the operator.
        proposed: String,
    },
    /// The peer did not answer in time once associated.
    #[error("{peer} did not answer within {timeout:?} while waiting for {waiting_for}")]
    Timeout {
        /// The peer, as AE@HOST:PORT.
        peer: String,
        /// The read or write timeout that ran out.
        timeout: Duration,
        /// What we were waiting for (a response, A-RELEASE-RP …).
        waiting_for: String,
    },
    /// The peer sent A-ABORT.
    #[error("{peer} aborted the association ({reason})")]
    Aborted {
        /// The peer, as AE@HOST:PORT.
        peer: String,
        /// Abort source and reason.
        reason: String,
    },
    /// The connection broke or an upper-layer error occurred.
    #[error("association with {peer} failed: {reason}")]
    Association {
        /// The peer, as AE@HOST:PORT.
        peer: String,
        /// What happened.
        reason: String,
    },
    /// The peer answered something that does not fit the exchange.
    #[error("unexpected answer from {peer}: {reason}")]
    Protocol {
        /// The peer, as AE@HOST:PORT.
        peer: String,
        /// What was wrong.
        reason: String,
    },
    /// Nothing under the given paths is a DICOM file.
    #[error("no DICOM files to send: {detail}")]
    NoFiles {
        /// What was looked at and why nothing qualified.
        detail: String,
    },
}

/// The Result field of an A-ASSOCIATE-RJ (PS3.8 9.3.4): the peer's own word on whether
/// asking again later can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectResult {
    /// "rejected-permanent": the same request will be rejected again.
    Permanent,
    /// "rejected-transient": the peer may accept later (busy, restarting).
    Transient,
}

impl std::fmt::Display for RejectResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RejectResult::Permanent => "permanent",
            RejectResult::Transient => "transient",
        })
    }
}

impl ScuError {
    /// Whether the failure happened before anything could be sent (no association), so a
    /// later retry of the whole batch is safe and meaningful.
    pub fn is_association_setup(&self) -> bool {
        matches!(
            self,
            ScuError::Connect { .. }
                | ScuError::ConnectTimeout { .. }
                | ScuError::Tls { .. }
                | ScuError::Rejected { .. }
                | ScuError::NoAcceptedContext { .. }
        )
    }
}

//! Why a delivery attempt failed, and whether trying again can help.
//!
//! A destination that refuses an instance for what it is (its SOP class, its content, our
//! credentials) refuses it again on every retry: retrying only delays the dead letter by
//! `max_attempts` backoffs and floods the peer's log. Such a failure is [`Permanence::Permanent`]
//! and is dead-lettered at once with the peer's reason. Everything else (the peer down, slow,
//! out of resources, overloaded) is [`Permanence::Transient`] and backs off as usual.
//!
//! The table, for both destination kinds:
//!
//! | failure                                                    | permanence |
//! |------------------------------------------------------------|------------|
//! | A-ASSOCIATE-RJ with result rejected-permanent              | permanent  |
//! | no presentation context accepted for the instance's class  | permanent  |
//! | DIMSE status 0x0122, 0x0124, 0xA9xx, 0xC000..=0xCFFF       | permanent  |
//! | STOW-RS HTTP 3xx, 4xx other than 408 and 429               | permanent  |
//! | STOW-RS Failed SOP Sequence reason with a permanent status | permanent  |
//! | the outbox file is missing or not DICOM                    | permanent  |
//! | anything else: refused/timeout/reset, A-ASSOCIATE-RJ transient, 0xA7xx, 0x0110, HTTP 5xx/408/429, an unreadable 2xx answer | transient |

use crate::dimse::Status;
use crate::scu::{RejectResult, ScuError};

/// Whether a later attempt of the same delivery can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permanence {
    /// The peer will refuse the same instance again: dead-letter now.
    Permanent,
    /// The peer or the network may recover: retry with backoff.
    Transient,
}

/// A failed delivery attempt: the peer's reason, kept for the log, the row and the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryFailure {
    /// Whether to retry.
    pub permanence: Permanence,
    /// What the peer answered (or what went wrong), for an operator.
    pub reason: String,
}

impl DeliveryFailure {
    /// A failure no retry can fix.
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self {
            permanence: Permanence::Permanent,
            reason: reason.into(),
        }
    }

    /// A failure a later attempt may not meet.
    pub fn transient(reason: impl Into<String>) -> Self {
        Self {
            permanence: Permanence::Transient,
            reason: reason.into(),
        }
    }

    /// Whether the delivery is given up at once.
    pub fn is_permanent(&self) -> bool {
        self.permanence == Permanence::Permanent
    }
}

impl std::fmt::Display for DeliveryFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// A C-STORE failure status, or a STOW-RS Failure Reason (the same PS3.4 codes).
pub fn status_permanence(status: Status) -> Permanence {
    match status.0 {
        // SOP class not supported; not authorized.
        0x0122 | 0x0124 => Permanence::Permanent,
        // Data set does not match SOP class; cannot understand (includes 0xC122,
        // transfer syntax not supported).
        0xA900..=0xA9FF | 0xC000..=0xCFFF => Permanence::Permanent,
        // Out of resources (0xA7xx), processing failure (0x0110), anything unknown.
        _ => Permanence::Transient,
    }
}

/// A STOW-RS HTTP status that is not a success.
pub fn http_permanence(status: u16) -> Permanence {
    match status {
        // Request timeout and too many requests: the server asks us to come back.
        408 | 429 => Permanence::Transient,
        // Redirects are not followed (the configured URL is wrong); client errors
        // (bad URL, credentials refused, unsupported media type, conflict) repeat.
        300..=499 => Permanence::Permanent,
        _ => Permanence::Transient,
    }
}

/// An SCU error that ended the attempt before the peer answered the C-STORE.
pub fn scu_error_permanence(e: &ScuError) -> Permanence {
    match e {
        ScuError::Rejected {
            result: RejectResult::Permanent,
            ..
        }
        | ScuError::NoAcceptedContext { .. }
        | ScuError::NoFiles { .. } => Permanence::Permanent,
        _ => Permanence::Transient,
    }
}

/// Peer-supplied text made safe for one log line and a table cell: control characters
/// replaced, at most `max` characters.
pub fn sanitize(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimse_statuses() {
        for code in [0x0122, 0x0124, 0xA900, 0xA9FF, 0xC000, 0xC122, 0xCFFF] {
            assert_eq!(
                status_permanence(Status(code)),
                Permanence::Permanent,
                "{code:#06X}"
            );
        }
        for code in [0xA700, 0xA7FF, 0x0110, 0x0211, 0xFE00, 0x0117] {
            assert_eq!(
                status_permanence(Status(code)),
                Permanence::Transient,
                "{code:#06X}"
            );
        }
    }

    #[test]
    fn http_statuses() {
        for code in [301, 400, 401, 403, 404, 409, 413, 415] {
            assert_eq!(http_permanence(code), Permanence::Permanent, "{code}");
        }
        for code in [408, 429, 500, 502, 503, 504, 100, 600] {
            assert_eq!(http_permanence(code), Permanence::Transient, "{code}");
        }
    }

    #[test]
    fn scu_errors() {
        let rejected = |result| ScuError::Rejected {
            peer: "P@h:1".into(),
            result,
            reason: "service user: no reason given".into(),
            hint: String::new(),
        };
        assert_eq!(
            scu_error_permanence(&rejected(RejectResult::Permanent)),
            Permanence::Permanent
        );
        assert_eq!(
            scu_error_permanence(&rejected(RejectResult::Transient)),
            Permanence::Transient
        );
        let no_context = ScuError::NoAcceptedContext {
            peer: "P@h:1".into(),
            proposed: crate::uids::SEGMENTATION_STORAGE.into(),
        };
        assert_eq!(scu_error_permanence(&no_context), Permanence::Permanent);
        for transient in [
            ScuError::Connect {
                peer: "P@h:1".into(),
                reason: "connection refused".into(),
            },
            ScuError::ConnectTimeout {
                peer: "P@h:1".into(),
                timeout: std::time::Duration::from_secs(1),
            },
            ScuError::Aborted {
                peer: "P@h:1".into(),
                reason: "by the service user".into(),
            },
        ] {
            assert_eq!(
                scu_error_permanence(&transient),
                Permanence::Transient,
                "{transient}"
            );
        }
    }

    #[test]
    fn peer_text_is_bounded_and_single_line() {
        assert_eq!(sanitize("a\nb\r\u{0}c", 100), "a b  c");
        let long = "x".repeat(1000);
        assert_eq!(sanitize(&long, 10).chars().count(), 11);
    }
}

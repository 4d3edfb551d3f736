//! The audit trail: DICOM audit messages (PS3.15 A.5, the IHE ATNA vocabulary) for what a
//! security officer reviews: the node starting and stopping, associations accepted,
//! peers refused (Security Alert: unknown AE titles, failed TLS handshakes, hostile
//! input), studies received and sent (DICOM Instances Transferred: one message per study
//! per association, with study UID, patient ID, and the peer's AE title and IP address),
//! and operator actions.
//!
//! - `config`: the `[audit]` table.
//! - `record`: one message as data; `events`: the message of each event.
//! - `xml`: the DICOM `AuditMessage` XML.
//! - `syslog`: RFC 5424 over UDP, TCP (RFC 6587 octet counting) or TLS (RFC 5425).
//! - `sink`: the bounded, never-blocking queue and its writer ([`Audit`]).

pub mod config;
pub mod events;
pub mod record;
mod sink;
pub mod syslog;
pub mod xml;

pub use config::{AuditConfig, SyslogConfig, SyslogTransport};
pub use events::{AlertKind, Direction, Node, OperatorAction, StudyRef};
pub use record::{Action, AuditRecord, Outcome};
pub use sink::{Audit, AuditError};

impl Audit {
    /// Record an operator's action (the admin API calls this for every change it makes).
    pub fn operator_action(&self, action: &OperatorAction, node: &Node) {
        self.record(events::operator_action(action, node));
    }
}

//! One audit message as data: the parts of a DICOM `AuditMessage` (PS3.15 A.5.1) that
//! segnode fills. `events` builds them for each event; `xml` writes them out.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// A coded value: code, coding scheme designator, display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Code {
    /// The code value (`csd-code`).
    pub code: &'static str,
    /// The coding scheme designator (`codeSystemName`): DCM, RFC-3881, 99SEGNODE.
    pub system: &'static str,
    /// The display name (`originalText`).
    pub display: &'static str,
}

impl Code {
    /// A DICOM (DCM) code.
    pub const fn dcm(code: &'static str, display: &'static str) -> Code {
        Code {
            code,
            system: "DCM",
            display,
        }
    }
}

/// EventActionCode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Action {
    /// C: create (instances received and stored).
    Create,
    /// R: read (instances sent, viewed).
    Read,
    /// U: update.
    Update,
    /// D: delete.
    Delete,
    /// E: execute (application start/stop, security events, operator actions).
    Execute,
}

impl Action {
    /// The letter the schema uses.
    pub fn letter(self) -> &'static str {
        match self {
            Action::Create => "C",
            Action::Read => "R",
            Action::Update => "U",
            Action::Delete => "D",
            Action::Execute => "E",
        }
    }
}

/// EventOutcomeIndicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Outcome {
    /// 0: success.
    Success,
    /// 4: minor failure (the action was refused or partly failed; the node carries on).
    MinorFailure,
    /// 8: serious failure (the action failed).
    SeriousFailure,
    /// 12: major failure (the node cannot go on).
    MajorFailure,
}

impl Outcome {
    /// The number the schema uses.
    pub fn value(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::MinorFailure => 4,
            Outcome::SeriousFailure => 8,
            Outcome::MajorFailure => 12,
        }
    }
}

/// An ActiveParticipant: a user, an application entity or a process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Participant {
    /// UserID: the AE title for DICOM peers, the user name for people.
    pub user_id: String,
    /// AlternativeUserID: for this process, its process id.
    pub alternative_user_id: Option<String>,
    /// UserIsRequestor: whether this participant started the activity.
    pub is_requestor: bool,
    /// NetworkAccessPointID: an IP address.
    pub network_access_point: Option<String>,
    /// RoleIDCode: Source, Destination, Application …
    pub roles: Vec<Code>,
}

/// A ParticipantObjectIdentification: a study, a patient, a node …
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParticipantObject {
    /// ParticipantObjectID: the study UID, the patient ID …
    pub id: String,
    /// ParticipantObjectTypeCode: 1 person, 2 system object.
    pub type_code: u8,
    /// ParticipantObjectTypeCodeRole: 1 patient, 3 report, 24 query …
    pub type_role: u8,
    /// ParticipantObjectIDTypeCode.
    pub id_type: Code,
    /// ParticipantObjectName (the patient's name, for a patient).
    pub name: Option<String>,
    /// ParticipantObjectDescription: free text.
    pub description: Option<String>,
    /// SOPClass elements: SOP Class UID and number of instances (for a study).
    pub sop_classes: Vec<(String, u32)>,
}

/// One audit message, without its AuditSourceIdentification (the sink adds it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// EventDateTime.
    pub time: DateTime<Utc>,
    /// EventID.
    pub event_id: Code,
    /// EventActionCode.
    pub action: Action,
    /// EventOutcomeIndicator.
    pub outcome: Outcome,
    /// EventOutcomeDescription: why, in words, for failures and alerts.
    pub outcome_description: Option<String>,
    /// EventTypeCode(s).
    pub type_codes: Vec<Code>,
    /// ActiveParticipant(s).
    pub participants: Vec<Participant>,
    /// ParticipantObjectIdentification(s).
    pub objects: Vec<ParticipantObject>,
}

impl AuditRecord {
    /// A short name for logs and the JSON line's `event` field.
    pub fn summary(&self) -> String {
        match self.type_codes.first() {
            Some(t) => format!("{} / {}", self.event_id.display, t.display),
            None => self.event_id.display.to_string(),
        }
    }
}

//! The events segnode audits, each as the [`AuditRecord`] PS3.15 A.5.3 prescribes, in the
//! IHE ATNA vocabulary (DCM codes; one local code where DICOM has none).

use std::net::IpAddr;

use chrono::Utc;

use super::record::{Action, AuditRecord, Code, Outcome, Participant, ParticipantObject};

/// EventID 110100 Application Activity.
const APPLICATION_ACTIVITY: Code = Code::dcm("110100", "Application Activity");
/// EventID 110103 DICOM Instances Accessed.
const INSTANCES_ACCESSED: Code = Code::dcm("110103", "DICOM Instances Accessed");
/// EventID 110104 DICOM Instances Transferred.
const INSTANCES_TRANSFERRED: Code = Code::dcm("110104", "DICOM Instances Transferred");
/// EventID 110105 DICOM Study Deleted.
const STUDY_DELETED: Code = Code::dcm("110105", "DICOM Study Deleted");
/// EventID 110113 Security Alert.
const SECURITY_ALERT: Code = Code::dcm("110113", "Security Alert");
/// EventID 110114 User Authenticated.
const USER_AUTHENTICATED: Code = Code::dcm("110114", "User Authenticated");
/// EventTypeCode 110120 Application Start.
const APPLICATION_START: Code = Code::dcm("110120", "Application Start");
/// EventTypeCode 110121 Application Stop.
const APPLICATION_STOP: Code = Code::dcm("110121", "Application Stop");
/// EventTypeCode 110122 Login: an association was accepted.
const LOGIN: Code = Code::dcm("110122", "Login");
/// EventTypeCode 110126 Node Authentication: an unknown AE or a failed TLS handshake.
const NODE_AUTHENTICATION: Code = Code::dcm("110126", "Node Authentication");
/// EventTypeCode for input that breaks the protocol on purpose or by accident: DICOM has no
/// code for it, so a local one (coding scheme designators starting with 99 are local).
const HOSTILE_INPUT: Code = Code {
    code: "HOSTILE-INPUT",
    system: "99SEGNODE",
    display: "Hostile Input",
};
/// EventTypeCode of an operator action that is neither a study access nor a deletion.
const OPERATOR_ACTION: Code = Code {
    code: "OPERATOR-ACTION",
    system: "99SEGNODE",
    display: "Operator Action",
};
/// RoleIDCode 110150 Application.
const ROLE_APPLICATION: Code = Code::dcm("110150", "Application");
/// RoleIDCode 110152 Destination Role ID.
const ROLE_DESTINATION: Code = Code::dcm("110152", "Destination Role ID");
/// RoleIDCode 110153 Source Role ID.
const ROLE_SOURCE: Code = Code::dcm("110153", "Source Role ID");
/// ParticipantObjectIDTypeCode 110180 Study Instance UID.
const STUDY_UID: Code = Code::dcm("110180", "Study Instance UID");
/// ParticipantObjectIDTypeCode 2 Patient Number (RFC 3881).
const PATIENT_NUMBER: Code = Code {
    code: "2",
    system: "RFC-3881",
    display: "Patient Number",
};

/// A DICOM application entity taking part: AE title and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The AE title (for this node: its own).
    pub ae_title: String,
    /// Its IP address, when known.
    pub ip: Option<IpAddr>,
}

/// Why an association was refused or cut, for a Security Alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    /// The calling (or called) AE title is not allowed here.
    UnknownAe,
    /// The TLS handshake failed: no, an untrusted or an expired client certificate, or a
    /// client speaking plain DICOM on the TLS port.
    TlsFailure,
    /// Malformed PDUs, DIMSE protocol violations, data sets that break the limits.
    HostileInput,
}

/// Which way instances went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A peer stored them here.
    Received,
    /// This node stored them at a peer.
    Sent,
}

/// The study an instances-transferred or operator event is about.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StudyRef {
    /// Study Instance UID.
    pub study_uid: String,
    /// Patient ID (0010,0020).
    pub patient_id: String,
    /// Patient's Name, when known.
    pub patient_name: Option<String>,
    /// SOP classes and how many instances of each.
    pub sop_classes: Vec<(String, u32)>,
}

fn record(event_id: Code, action: Action, outcome: Outcome) -> AuditRecord {
    AuditRecord {
        time: Utc::now(),
        event_id,
        action,
        outcome,
        outcome_description: None,
        type_codes: Vec::new(),
        participants: Vec::new(),
        objects: Vec::new(),
    }
}

fn participant(node: &Node, is_requestor: bool, roles: Vec<Code>) -> Participant {
    Participant {
        user_id: node.ae_title.clone(),
        alternative_user_id: None,
        is_requestor,
        network_access_point: node.ip.map(|ip| ip.to_canonical().to_string()),
        roles,
    }
}

/// The study and patient objects of a transfer or an access.
fn study_objects(study: &StudyRef) -> Vec<ParticipantObject> {
    vec![
        ParticipantObject {
            id: study.study_uid.clone(),
            type_code: 2,
            type_role: 3,
            id_type: STUDY_UID,
            name: None,
            description: None,
            sop_classes: study.sop_classes.clone(),
        },
        ParticipantObject {
            id: study.patient_id.clone(),
            type_code: 1,
            type_role: 1,
            id_type: PATIENT_NUMBER,
            name: study.patient_name.clone().filter(|n| !n.is_empty()),
            description: None,
            sop_classes: Vec::new(),
        },
    ]
}

/// Application Activity: the node started (`started`) or stopped.
pub fn application_activity(node_ae: &str, started: bool) -> AuditRecord {
    let mut r = record(APPLICATION_ACTIVITY, Action::Execute, Outcome::Success);
    r.type_codes.push(if started {
        APPLICATION_START
    } else {
        APPLICATION_STOP
    });
    r.participants.push(Participant {
        user_id: node_ae.to_string(),
        alternative_user_id: Some(std::process::id().to_string()),
        is_requestor: false,
        network_access_point: None,
        roles: vec![ROLE_APPLICATION],
    });
    r
}

/// User Authenticated / Login: a peer's association was accepted (`how`: "TCP" or "TLS").
pub fn association_accepted(peer: &Node, node: &Node, how: &str) -> AuditRecord {
    let mut r = record(USER_AUTHENTICATED, Action::Execute, Outcome::Success);
    r.type_codes.push(LOGIN);
    r.outcome_description = Some(format!("DICOM association accepted over {how}"));
    r.participants.push(participant(peer, true, Vec::new()));
    r.participants
        .push(participant(node, false, vec![ROLE_APPLICATION]));
    r
}

/// Security Alert: a peer was refused or cut off. `peer.ae_title` is empty when the
/// peer never said who it is (a failed TLS handshake).
pub fn security_alert(kind: AlertKind, peer: &Node, node: &Node, why: &str) -> AuditRecord {
    let mut r = record(SECURITY_ALERT, Action::Execute, Outcome::MinorFailure);
    r.type_codes.push(match kind {
        AlertKind::UnknownAe | AlertKind::TlsFailure => NODE_AUTHENTICATION,
        AlertKind::HostileInput => HOSTILE_INPUT,
    });
    r.outcome_description = Some(why.to_string());
    let mut peer = peer.clone();
    if peer.ae_title.is_empty() {
        peer.ae_title = "unknown".into();
    }
    r.participants.push(participant(&peer, true, Vec::new()));
    r.participants
        .push(participant(node, false, vec![ROLE_APPLICATION]));
    r
}

/// DICOM Instances Transferred: one study's instances over one association.
pub fn instances_transferred(
    direction: Direction,
    peer: &Node,
    node: &Node,
    study: &StudyRef,
    outcome: Outcome,
) -> AuditRecord {
    let (action, source, destination) = match direction {
        Direction::Received => (Action::Create, peer, node),
        Direction::Sent => (Action::Read, node, peer),
    };
    let mut r = record(INSTANCES_TRANSFERRED, action, outcome);
    r.participants
        .push(participant(source, true, vec![ROLE_SOURCE]));
    r.participants
        .push(participant(destination, false, vec![ROLE_DESTINATION]));
    r.objects = study_objects(study);
    r
}

/// What an operator did, for [`operator_action`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorAction {
    /// Who: the operator's user name.
    pub user: String,
    /// From where: the operator's IP address.
    pub ip: Option<IpAddr>,
    /// The kind of action (C/R/U/D/E).
    pub action: Action,
    /// What was done, in words ("retry delivery 12 to orthanc", "delete study").
    pub what: String,
    /// The study acted on, if any.
    pub study: Option<StudyRef>,
    /// Whether it worked.
    pub outcome: Outcome,
}

/// An operator's action: a study deletion is DICOM Study Deleted, another action on a
/// study is DICOM Instances Accessed, anything else Application Activity with a local
/// "Operator Action" type.
pub fn operator_action(op: &OperatorAction, node: &Node) -> AuditRecord {
    let event_id = match (&op.study, op.action) {
        (Some(_), Action::Delete) => STUDY_DELETED,
        (Some(_), _) => INSTANCES_ACCESSED,
        (None, _) => APPLICATION_ACTIVITY,
    };
    let mut r = record(event_id, op.action, op.outcome);
    if op.study.is_none() {
        r.type_codes.push(OPERATOR_ACTION);
    }
    r.outcome_description = Some(op.what.clone());
    r.participants.push(participant(
        &Node {
            ae_title: op.user.clone(),
            ip: op.ip,
        },
        true,
        Vec::new(),
    ));
    r.participants
        .push(participant(node, false, vec![ROLE_APPLICATION]));
    if let Some(study) = &op.study {
        r.objects = study_objects(study);
    }
    r
}

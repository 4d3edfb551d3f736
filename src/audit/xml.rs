//! An [`AuditRecord`] as a DICOM audit message (PS3.15 A.5.1 `AuditMessage`), on one line
//! so that syslog relays and line-oriented files keep it whole.

use std::fmt::Write;

use super::record::{AuditRecord, Code, Participant, ParticipantObject};

/// Who writes the messages: AuditSourceIdentification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSource {
    /// AuditSourceID (the node's AE title unless configured).
    pub source_id: String,
    /// AuditEnterpriseSiteID, when configured.
    pub site_id: Option<String>,
}

/// Escape text for an XML attribute or element.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0 (tabs and newlines would
            // also split a syslog line): a space instead.
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn code(out: &mut String, element: &str, c: &Code) {
    let _ = write!(
        out,
        "<{element} csd-code=\"{}\" codeSystemName=\"{}\" originalText=\"{}\"/>",
        esc(c.code),
        esc(c.system),
        esc(c.display)
    );
}

fn participant(out: &mut String, p: &Participant) {
    let _ = write!(out, "<ActiveParticipant UserID=\"{}\"", esc(&p.user_id));
    if let Some(alt) = &p.alternative_user_id {
        let _ = write!(out, " AlternativeUserID=\"{}\"", esc(alt));
    }
    let _ = write!(out, " UserIsRequestor=\"{}\"", p.is_requestor);
    if let Some(nap) = &p.network_access_point {
        // Type 2: an IP address.
        let _ = write!(
            out,
            " NetworkAccessPointID=\"{}\" NetworkAccessPointTypeCode=\"2\"",
            esc(nap)
        );
    }
    if p.roles.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    for role in &p.roles {
        code(out, "RoleIDCode", role);
    }
    out.push_str("</ActiveParticipant>");
}

fn object(out: &mut String, o: &ParticipantObject) {
    let _ = write!(
        out,
        "<ParticipantObjectIdentification ParticipantObjectID=\"{}\" \
         ParticipantObjectTypeCode=\"{}\" ParticipantObjectTypeCodeRole=\"{}\">",
        esc(&o.id),
        o.type_code,
        o.type_role
    );
    code(out, "ParticipantObjectIDTypeCode", &o.id_type);
    if let Some(name) = &o.name {
        let _ = write!(
            out,
            "<ParticipantObjectName>{}</ParticipantObjectName>",
            esc(name)
        );
    }
    if let Some(d) = &o.description {
        let _ = write!(
            out,
            "<ParticipantObjectDescription>{}</ParticipantObjectDescription>",
            esc(d)
        );
    }
    for (uid, n) in &o.sop_classes {
        let _ = write!(
            out,
            "<SOPClass UID=\"{}\" NumberOfInstances=\"{n}\"/>",
            esc(uid)
        );
    }
    out.push_str("</ParticipantObjectIdentification>");
}

/// The message as XML: EventIdentification, ActiveParticipant(s),
/// AuditSourceIdentification, ParticipantObjectIdentification(s), in the schema's order.
pub fn to_xml(r: &AuditRecord, source: &AuditSource) -> String {
    let mut out = String::with_capacity(1024);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?><AuditMessage>");
    let _ = write!(
        out,
        "<EventIdentification EventActionCode=\"{}\" EventDateTime=\"{}\" EventOutcomeIndicator=\"{}\">",
        r.action.letter(),
        r.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        r.outcome.value()
    );
    code(&mut out, "EventID", &r.event_id);
    for t in &r.type_codes {
        code(&mut out, "EventTypeCode", t);
    }
    if let Some(d) = &r.outcome_description {
        let _ = write!(
            out,
            "<EventOutcomeDescription>{}</EventOutcomeDescription>",
            esc(d)
        );
    }
    out.push_str("</EventIdentification>");
    for p in &r.participants {
        participant(&mut out, p);
    }
    let _ = write!(
        out,
        "<AuditSourceIdentification AuditSourceID=\"{}\"",
        esc(&source.source_id)
    );
    if let Some(site) = &source.site_id {
        let _ = write!(out, " AuditEnterpriseSiteID=\"{}\"", esc(site));
    }
    out.push('>');
    // Type 4: application server process.
    code(
        &mut out,
        "AuditSourceTypeCode",
        &Code::dcm("4", "Application Server Process"),
    );
    out.push_str("</AuditSourceIdentification>");
    for o in &r.objects {
        object(&mut out, o);
    }
    out.push_str("</AuditMessage>");
    out
}

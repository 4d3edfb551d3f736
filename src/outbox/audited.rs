//! The outbox's security side: each destination's TLS configuration, loaded once, and the
//! DICOM Instances Transferred message of an instance delivered (or given up on).

use std::collections::HashMap;

use dicom_dictionary_std::tags;
use dicom_object::OpenFileOptions;
use tracing::error;

use super::Sender;
use crate::audit::{Direction, Node, Outcome, StudyRef, events};
use crate::config::DestinationConfig;
use crate::spool::OutboxRecord;
use crate::tls::ClientTls;

/// The TLS configuration of every destination that has `tls`. The config loader checked
/// the files; if one became unusable since, deliveries to that destination fail with the
/// reason (and the error is logged now).
pub(super) fn load_tls(
    destinations: &[DestinationConfig],
) -> HashMap<String, Result<ClientTls, String>> {
    destinations
        .iter()
        .filter_map(|d| {
            let tls = d.tls.as_ref()?.load().map_err(|e| {
                let why = format!("destination {:?} tls.{e}", d.name);
                error!(cause = %why, "TLS for this destination is unusable: its deliveries will fail until fixed");
                why
            });
            Some((d.name.clone(), tls))
        })
        .collect()
}

/// Patient ID and SOP Class UID of an outbox file (empty when unreadable).
fn seg_identity(path: &std::path::Path) -> (String, String) {
    let Ok(obj) = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
    else {
        return Default::default();
    };
    let text = |tag| {
        obj.element(tag)
            .ok()
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
            .unwrap_or_default()
    };
    (text(tags::PATIENT_ID), text(tags::SOP_CLASS_UID))
}

impl Sender {
    /// Audit a delivery that ended (delivered, or dead-lettered).
    pub(super) fn audit_transfer(&self, row: &OutboxRecord, outcome: Outcome) {
        if !self.audit.is_enabled() {
            return;
        }
        let Some(dest) = self.destinations.get(&row.destination) else {
            return;
        };
        let (patient_id, sop_class) = seg_identity(&row.seg_path);
        let study = StudyRef {
            study_uid: row.study_uid.clone(),
            patient_id,
            patient_name: None,
            sop_classes: vec![(sop_class, 1)],
        };
        // A STOW-RS archive has no AE title: its URL identifies it.
        let peer = match (&dest.ae_title, &dest.host) {
            (Some(ae), host) => Node {
                ae_title: ae.as_str().to_string(),
                ip: host.as_deref().and_then(|h| h.parse().ok()),
            },
            (None, _) => Node {
                ae_title: dest.address(),
                ip: dest.url.as_ref().and_then(|u| u.host.parse().ok()),
            },
        };
        let node = Node {
            ae_title: dest
                .calling_ae
                .as_ref()
                .unwrap_or(&self.node_ae)
                .as_str()
                .to_string(),
            ip: None,
        };
        self.audit.record(events::instances_transferred(
            Direction::Sent,
            &peer,
            &node,
            &study,
            outcome,
        ));
    }
}

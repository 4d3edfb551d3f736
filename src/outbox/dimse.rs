//! Delivery to a DICOM node by C-STORE (`kind = "dimse"`): the association options of a
//! destination, the C-ECHO probe of a destination that was down, and one C-STORE of the
//! row's file with the peer's answer classified (see `failure`).

use std::path::Path;

use super::failure::{DeliveryFailure, Permanence, scu_error_permanence, status_permanence};
use crate::ae::{AeTitle, Peer};
use crate::config::{Config, DestinationConfig, NetworkConfig};
use crate::dimse::Status;
use crate::scu::{self, ScuError, ScuOptions};

/// How we associate with `dest`.
pub(super) fn options_for(
    dest: &DestinationConfig,
    node_ae: &AeTitle,
    network: &NetworkConfig,
    tls: Option<crate::tls::ClientTls>,
) -> ScuOptions {
    ScuOptions {
        calling_ae: dest.calling_ae.clone().unwrap_or_else(|| node_ae.clone()),
        max_pdu_length: network.max_pdu_length,
        connect_timeout: network.connect_timeout(),
        read_timeout: network.read_timeout(),
        write_timeout: network.write_timeout(),
        tls,
    }
}

/// [`options_for`] with the node's config; a destination whose TLS files cannot be loaded
/// is probed without, and its failure says so.
pub(super) fn scu_options(dest: &DestinationConfig, config: &Config) -> ScuOptions {
    let tls = dest.tls.as_ref().and_then(|t| t.load().ok());
    options_for(dest, &config.node.ae_title, &config.network, tls)
}

/// C-ECHO a destination that was down. A peer that accepts the association but not the
/// Verification SOP class is up (it may only store), so that counts as an answer.
pub(super) async fn probe(peer: &Peer, opts: &ScuOptions) -> Result<(), String> {
    match scu::echo(peer, opts).await {
        Ok(status) if status.is_success_or_warning() => Ok(()),
        Ok(status) => Err(format!("C-ECHO probe: {peer} answered {status}")),
        Err(ScuError::NoAcceptedContext { .. }) => Ok(()),
        Err(e) => Err(format!("C-ECHO probe: {e}")),
    }
}

/// C-STORE the file at `path` to `peer`. A probe that fails is transient: it says the peer
/// is not there, not that it refuses the instance.
pub(super) async fn store(
    peer: &Peer,
    opts: &ScuOptions,
    path: &Path,
    probe_first: bool,
) -> Result<(), DeliveryFailure> {
    if probe_first {
        probe(peer, opts)
            .await
            .map_err(DeliveryFailure::transient)?;
        tracing::info!(peer = %peer, "destination answers C-ECHO: sending");
    }
    if !path.is_file() {
        return Err(DeliveryFailure::permanent(format!(
            "the outbox file {} is missing from the results folder",
            path.display()
        )));
    }
    let report = scu::send_files(peer, opts, &[path.to_path_buf()])
        .await
        .map_err(|e| DeliveryFailure {
            permanence: scu_error_permanence(&e),
            reason: e.to_string(),
        })?;
    if report.sent == 1 && report.all_sent() {
        return Ok(());
    }
    let reason = report
        .failures
        .first()
        .map(|(_, reason)| reason.clone())
        .unwrap_or_else(|| format!("{peer} did not acknowledge the instance"));
    // One file per send: a failure status in the report is the peer's answer to it.
    let refused = report
        .statuses
        .keys()
        .map(|code| Status(*code))
        .find(|s| !s.is_success_or_warning());
    // No status: the association was lost or the file could not be read at send time.
    let permanence = refused.map_or(Permanence::Transient, status_permanence);
    Err(DeliveryFailure { permanence, reason })
}

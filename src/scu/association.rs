//! The association requestor: establishing an association within the connect timeout,
//! sending DIMSE messages split into PDUs of the peer's maximum length, reading command
//! responses, and releasing.
//!
//! Messages are split into P-DATA-TF PDUs here and each PDU goes out through
//! `AsyncClientAssociation::send`, which applies the write timeout. dicom-ul's
//! `send_pdata` writer is not used: when it is dropped mid-write (a timeout firing while
//! the last PDU is being written) its `Drop` re-sends the buffered PDU inside
//! `block_in_place` with no timeout, which can hang on a peer that stopped reading.

use std::time::Duration;

use dicom_ul::ClientAssociationOptions;
use dicom_ul::association::Error as UlError;
use dicom_ul::pdu::{
    AbortRQSource, AssociationRJResult, AssociationRJServiceUserReason, AssociationRJSource,
    PDV_HEADER_SIZE, PDataValue, PDataValueType, Pdu,
};
use tracing::{debug, warn};

use super::contexts::{MAX_CONTEXTS, ProposedContext};
use super::link::Link;
use super::{RejectResult, ScuError, ScuOptions};
use crate::ae::Peer;
use crate::dimse::Command;
use crate::error_chain::error_chain;
use crate::uids;

/// Largest PDV payload we put in one PDU even when the peer allows more (it may announce
/// "unlimited"), so buffers stay bounded.
const MAX_FRAGMENT: u32 = 4 * 1024 * 1024;

/// A presentation context the peer accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AcceptedContext {
    /// Presentation context id.
    pub id: u8,
    /// SOP Class UID.
    pub abstract_syntax: String,
    /// The one transfer syntax the peer chose.
    pub transfer_syntax: String,
}

/// An established association and what was negotiated on it.
pub(crate) struct Association {
    inner: Link,
    /// The peer, as AE@HOST:PORT, for messages.
    peer: String,
    accepted: Vec<AcceptedContext>,
    /// Largest PDV payload per PDU the peer takes.
    fragment: usize,
    read_timeout: Duration,
    write_timeout: Duration,
    next_message_id: u16,
}

/// Request an association with `peer` proposing `contexts` (at most [`MAX_CONTEXTS`]).
/// Connect and negotiation together are bounded by `opts.connect_timeout`.
pub(crate) async fn establish(
    peer: &Peer,
    opts: &ScuOptions,
    contexts: &[ProposedContext],
) -> Result<Association, ScuError> {
    debug_assert!(!contexts.is_empty() && contexts.len() <= MAX_CONTEXTS);
    let name = peer.to_string();
    let mut options = ClientAssociationOptions::new()
        .calling_ae_title(opts.calling_ae.as_str().to_string())
        .called_ae_title(peer.ae_title.as_str().to_string())
        .max_pdu_length(opts.max_pdu_length)
        .connection_timeout(opts.connect_timeout)
        .read_timeout(opts.read_timeout)
        .write_timeout(opts.write_timeout);
    for c in contexts {
        options = options
            .with_presentation_context(c.abstract_syntax.clone(), c.transfer_syntaxes.clone());
    }
    let address = peer.socket_addr();
    let established = async {
        match &opts.tls {
            None => options.establish_async(address).await.map(Link::Plain),
            Some(tls) => options
                .tls_config(std::sync::Arc::clone(&tls.config))
                .server_name(&peer.host)
                .establish_tls_async(address)
                .await
                .map(Link::Tls),
        }
    };
    let started = std::time::Instant::now();
    let mut inner = match tokio::time::timeout(opts.connect_timeout, established).await {
        Err(_) => {
            return Err(ScuError::ConnectTimeout {
                peer: name,
                timeout: opts.connect_timeout,
            });
        }
        Ok(Err(UlError::TlsNotSupported)) if opts.tls.is_none() => {
            return Err(unreadable_answer(name, opts, started.elapsed()));
        }
        Ok(Err(e)) => return Err(establish_error(&name, opts, contexts, e)),
        Ok(Ok(a)) => a,
    };
    // A C-STORE is a burst of PDUs whose last one is usually short, then a wait for the
    // response: with Nagle's algorithm that short PDU waits for the peer's delayed ACK
    // (~40 ms per instance). Send every PDU at once.
    if let Err(e) = inner.tcp().set_nodelay(true) {
        debug!(cause = %e, "cannot set TCP_NODELAY");
    }
    let accepted: Vec<AcceptedContext> = inner
        .presentation_contexts()
        .iter()
        .map(|pc| AcceptedContext {
            id: pc.id,
            abstract_syntax: uids::trim_uid(&pc.abstract_syntax).to_string(),
            transfer_syntax: uids::trim_uid(&pc.transfer_syntax).to_string(),
        })
        .collect();
    let peer_max = inner
        .acceptor_max_pdu_length()
        .clamp(dicom_ul::pdu::MINIMUM_PDU_SIZE, MAX_FRAGMENT);
    debug!(
        peer_max_pdu = inner.acceptor_max_pdu_length(),
        proposed = contexts.len(),
        accepted = accepted.len(),
        "association established"
    );
    for c in contexts {
        if !accepted
            .iter()
            .any(|a| a.abstract_syntax == c.abstract_syntax)
        {
            warn!(sop_class = %c.abstract_syntax, "peer rejected every context proposed for this SOP class");
        }
    }
    Ok(Association {
        inner,
        peer: name,
        accepted,
        fragment: (peer_max - PDV_HEADER_SIZE) as usize,
        read_timeout: opts.read_timeout,
        write_timeout: opts.write_timeout,
        next_message_id: 1,
    })
}

/// With its TLS feature on, dicom-ul 0.10 reports every failure to read the answer to a
/// plain A-ASSOCIATE-RQ (silence past the read timeout, a closed connection, bytes that
/// are not a PDU) as "TLS not supported": tell these apart by the time it took.
fn unreadable_answer(peer: String, opts: &ScuOptions, elapsed: Duration) -> ScuError {
    if elapsed + Duration::from_millis(50) >= opts.read_timeout.min(opts.connect_timeout) {
        ScuError::ConnectTimeout {
            peer,
            timeout: opts.connect_timeout,
        }
    } else {
        ScuError::Association {
            peer,
            reason: "no readable answer to the association request: the peer closed the \
                     connection or answered with something that is not DICOM (if it speaks \
                     DICOM over TLS on this port, configure TLS for it)"
                .into(),
        }
    }
}

/// Whether a connect error is rustls refusing the handshake (rather than TCP failing).
fn is_tls_failure(e: &std::io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
}

/// Turn a failed establishment into an operator-facing error.
fn establish_error(
    peer: &str,
    opts: &ScuOptions,
    contexts: &[ProposedContext],
    e: UlError,
) -> ScuError {
    let peer = peer.to_string();
    match e {
        UlError::Rejected { association_rj, .. } => {
            let result = match association_rj.result {
                AssociationRJResult::Permanent => RejectResult::Permanent,
                AssociationRJResult::Transient => RejectResult::Transient,
            };
            let hint = match &association_rj.source {
                AssociationRJSource::ServiceUser(
                    AssociationRJServiceUserReason::CallingAETitleNotRecognized,
                ) => {
                    format!(
                        "; register calling AE title {:?} with the peer, or use one it knows",
                        opts.calling_ae.as_str()
                    )
                }
                AssociationRJSource::ServiceUser(
                    AssociationRJServiceUserReason::CalledAETitleNotRecognized,
                ) => "; check the peer's AE title (the part before @)".to_string(),
                _ => String::new(),
            };
            ScuError::Rejected {
                peer,
                result,
                reason: reject_source(&association_rj.source),
                hint,
            }
        }
        UlError::NoAcceptedPresentationContexts { .. } => {
            let mut classes: Vec<&str> = contexts
                .iter()
                .map(|c| c.abstract_syntax.as_str())
                .collect();
            classes.dedup();
            ScuError::NoAcceptedContext {
                peer,
                proposed: classes.join(", "),
            }
        }
        UlError::Connect { source, .. } if opts.tls.is_some() && is_tls_failure(&source) => {
            ScuError::Tls {
                peer,
                reason: source.to_string(),
            }
        }
        UlError::TlsHandshake { .. } | UlError::TlsConnection { .. } => ScuError::Tls {
            peer,
            reason: error_chain(&e),
        },
        UlError::Connect { source, .. } | UlError::ToAddress { source, .. } => ScuError::Connect {
            peer,
            reason: source.to_string(),
        },
        UlError::Timeout { .. } => ScuError::ConnectTimeout {
            peer,
            timeout: opts.connect_timeout,
        },
        other => ScuError::Association {
            peer,
            reason: error_chain(&other),
        },
    }
}

fn reject_source(source: &AssociationRJSource) -> String {
    match source {
        AssociationRJSource::ServiceUser(r) => format!("service user: {r}"),
        AssociationRJSource::ServiceProviderASCE(r) => format!("service provider (ACSE): {r}"),
        AssociationRJSource::ServiceProviderPresentation(r) => {
            format!("service provider (presentation): {r}")
        }
    }
}

fn abort_source(source: &AbortRQSource) -> String {
    match source {
        AbortRQSource::ServiceUser => "by the service user".to_string(),
        AbortRQSource::ServiceProvider(r) => format!("by the service provider: {r}"),
        AbortRQSource::Reserved => "source reserved".to_string(),
    }
}

impl Association {
    /// The peer, as AE@HOST:PORT.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// The contexts the peer accepted.
    pub fn accepted(&self) -> &[AcceptedContext] {
        &self.accepted
    }

    /// A fresh message id (1, 2 … wrapping, never 0).
    pub fn next_message_id(&mut self) -> u16 {
        let id = self.next_message_id;
        self.next_message_id = self.next_message_id.checked_add(1).unwrap_or(1);
        id
    }

    /// Send a command set and, when given, its data set on context `pc_id`, split into
    /// PDUs no larger than the peer's maximum; each PDU write is bounded by the write timeout.
    pub async fn send_message(
        &mut self,
        pc_id: u8,
        command: &[u8],
        dataset: Option<&[u8]>,
    ) -> Result<(), ScuError> {
        self.send_fragments(pc_id, PDataValueType::Command, command)
            .await?;
        if let Some(data) = dataset {
            self.send_fragments(pc_id, PDataValueType::Data, data)
                .await?;
        }
        Ok(())
    }

    async fn send_fragments(
        &mut self,
        pc_id: u8,
        value_type: PDataValueType,
        bytes: &[u8],
    ) -> Result<(), ScuError> {
        let mut chunks = bytes.chunks(self.fragment).peekable();
        if chunks.peek().is_none() {
            // An empty data set still needs its last fragment.
            return self.send_pdv(pc_id, value_type, true, Vec::new()).await;
        }
        while let Some(chunk) = chunks.next() {
            let is_last = chunks.peek().is_none();
            self.send_pdv(pc_id, value_type.clone(), is_last, chunk.to_vec())
                .await?;
        }
        Ok(())
    }

    async fn send_pdv(
        &mut self,
        pc_id: u8,
        value_type: PDataValueType,
        is_last: bool,
        data: Vec<u8>,
    ) -> Result<(), ScuError> {
        let pdu = Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: pc_id,
                value_type,
                is_last,
                data,
            }],
        };
        let timeout = self.write_timeout;
        self.inner
            .send(&pdu)
            .await
            .map_err(|e| self.io_error(e, "a PDU write to complete", timeout))
    }

    /// Read PDUs until a complete command set arrives on any context, and decode it.
    /// A-ABORT, a closed connection or a data set where none belongs end the association.
    pub async fn receive_command(&mut self, waiting_for: &str) -> Result<(u8, Command), ScuError> {
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let timeout = self.read_timeout;
            let pdu = self
                .inner
                .receive()
                .await
                .map_err(|e| self.io_error(e, waiting_for, timeout))?;
            match pdu {
                Pdu::PData { data } => {
                    for pdv in data {
                        if pdv.value_type != PDataValueType::Command {
                            return Err(self.protocol(format!(
                                "a data set arrived while waiting for {waiting_for}"
                            )));
                        }
                        buf.extend_from_slice(&pdv.data);
                        if pdv.is_last {
                            let command = Command::decode(&buf).map_err(|e| {
                                self.protocol(format!("undecodable {waiting_for}: {e}"))
                            })?;
                            return Ok((pdv.presentation_context_id, command));
                        }
                    }
                }
                Pdu::AbortRQ { source } => {
                    return Err(ScuError::Aborted {
                        peer: self.peer.clone(),
                        reason: abort_source(&source),
                    });
                }
                other => {
                    return Err(self.protocol(format!(
                        "{} while waiting for {waiting_for}",
                        other.short_description()
                    )));
                }
            }
        }
    }

    /// A-RELEASE-RQ, then wait (read timeout) for A-RELEASE-RP and close.
    pub async fn release(self) -> Result<(), ScuError> {
        let peer = self.peer.clone();
        let read_timeout = self.read_timeout;
        // dicom-ul applies the write and read timeouts to the two PDUs; the outer bound
        // only guards against both running their full length.
        match tokio::time::timeout(read_timeout + self.write_timeout, self.inner.release()).await {
            Err(_) => Err(ScuError::Timeout {
                peer,
                timeout: read_timeout,
                waiting_for: "A-RELEASE-RP".into(),
            }),
            Ok(Err(UlError::Timeout { .. })) => Err(ScuError::Timeout {
                peer,
                timeout: read_timeout,
                waiting_for: "A-RELEASE-RP".into(),
            }),
            Ok(Err(e)) => Err(ScuError::Association {
                peer,
                reason: format!("release failed: {}", error_chain(&e)),
            }),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Send A-ABORT (best effort, bounded by the write timeout) and close.
    pub async fn abort(self) {
        let timeout = self.write_timeout;
        let _ = tokio::time::timeout(timeout, self.inner.abort()).await;
    }

    fn io_error(&self, e: UlError, waiting_for: &str, timeout: Duration) -> ScuError {
        let peer = self.peer.clone();
        match e {
            UlError::Timeout { .. } => ScuError::Timeout {
                peer,
                timeout,
                waiting_for: waiting_for.to_string(),
            },
            UlError::ConnectionClosed { .. } => ScuError::Association {
                peer,
                reason: format!("the peer closed the connection while we waited for {waiting_for}"),
            },
            other => ScuError::Association {
                peer,
                reason: error_chain(&other),
            },
        }
    }

    fn protocol(&self, reason: String) -> ScuError {
        ScuError::Protocol {
            peer: self.peer.clone(),
            reason,
        }
    }
}

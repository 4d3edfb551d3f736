//! The requestor's association over plain TCP or over TLS: one type for the rest of the SCU,
//! whichever stream dicom-ul established it on.

use dicom_ul::association::client::AsyncTlsStream;
use dicom_ul::association::{AsyncClientAssociation, Error as UlError};
use dicom_ul::pdu::{Pdu, PresentationContextNegotiated};
use tokio::net::TcpStream;

/// An established association on either stream.
// One per association, held for its life: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum Link {
    /// DICOM over TCP.
    Plain(AsyncClientAssociation<TcpStream>),
    /// DICOM over TLS.
    Tls(AsyncClientAssociation<AsyncTlsStream>),
}

impl Link {
    /// The TCP socket underneath.
    pub(super) fn tcp(&mut self) -> &TcpStream {
        match self {
            Link::Plain(a) => a.inner_stream(),
            Link::Tls(a) => a.inner_stream().get_ref().0,
        }
    }

    /// The presentation contexts the peer answered.
    pub(super) fn presentation_contexts(&self) -> &[PresentationContextNegotiated] {
        match self {
            Link::Plain(a) => a.presentation_contexts(),
            Link::Tls(a) => a.presentation_contexts(),
        }
    }

    /// The largest PDU the peer accepts.
    pub(super) fn acceptor_max_pdu_length(&self) -> u32 {
        match self {
            Link::Plain(a) => a.acceptor_max_pdu_length(),
            Link::Tls(a) => a.acceptor_max_pdu_length(),
        }
    }

    /// Send one PDU (write timeout applied by dicom-ul).
    pub(super) async fn send(&mut self, pdu: &Pdu) -> Result<(), UlError> {
        match self {
            Link::Plain(a) => a.send(pdu).await,
            Link::Tls(a) => a.send(pdu).await,
        }
    }

    /// Receive one PDU (read timeout applied by dicom-ul).
    pub(super) async fn receive(&mut self) -> Result<Pdu, UlError> {
        match self {
            Link::Plain(a) => a.receive().await,
            Link::Tls(a) => a.receive().await,
        }
    }

    /// A-RELEASE-RQ, A-RELEASE-RP, close.
    pub(super) async fn release(self) -> Result<(), UlError> {
        match self {
            Link::Plain(a) => a.release().await,
            Link::Tls(a) => a.release().await,
        }
    }

    /// A-ABORT and close.
    pub(super) async fn abort(self) -> Result<(), UlError> {
        match self {
            Link::Plain(a) => a.abort().await,
            Link::Tls(a) => a.abort().await,
        }
    }
}

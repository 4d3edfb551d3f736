//! What the SCP listens on: one or more TCP listeners, each plain DICOM or DICOM over TLS
//! ([`Transport`]). A TLS listener never serves plain DICOM: a connection whose TLS
//! handshake fails is closed before any DICOM is read.
//!
//! The accept loop takes [`Listeners`]; a bare `TcpListener` converts into a plain one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;

use tokio::net::{TcpListener, TcpStream};

use crate::tls::ServerTls;

/// How connections accepted on a listener speak DICOM.
#[derive(Debug, Clone)]
pub enum Transport {
    /// DICOM directly over TCP.
    Plain,
    /// DICOM over TLS: the handshake (with client certificate check) comes first.
    Tls(Arc<ServerTls>),
}

impl Transport {
    /// "TCP" or "TLS", for logs and audit messages.
    pub fn name(&self) -> &'static str {
        match self {
            Transport::Plain => "TCP",
            Transport::Tls(_) => "TLS",
        }
    }
}

/// A bound listener and the transport of its connections.
#[derive(Debug)]
pub struct Listener {
    /// The socket.
    pub tcp: TcpListener,
    /// What its connections speak.
    pub transport: Transport,
}

impl Listener {
    /// Plain DICOM on `tcp`.
    pub fn plain(tcp: TcpListener) -> Self {
        Self {
            tcp,
            transport: Transport::Plain,
        }
    }

    /// DICOM over TLS on `tcp`.
    pub fn tls(tcp: TcpListener, tls: ServerTls) -> Self {
        Self {
            tcp,
            transport: Transport::Tls(Arc::new(tls)),
        }
    }
}

/// Every listener of one SCP; connections from all of them share its limits.
#[derive(Debug)]
pub struct Listeners {
    all: Vec<Listener>,
    /// Where the next accept starts looking, so no listener starves the others.
    next: std::sync::atomic::AtomicUsize,
}

impl From<TcpListener> for Listeners {
    fn from(tcp: TcpListener) -> Self {
        Listener::plain(tcp).into()
    }
}

impl From<Listener> for Listeners {
    fn from(listener: Listener) -> Self {
        Listeners::new(vec![listener])
    }
}

impl Listeners {
    /// These listeners (at least one).
    pub fn new(all: Vec<Listener>) -> Self {
        assert!(!all.is_empty(), "an SCP needs at least one listener");
        Self {
            all,
            next: Default::default(),
        }
    }

    /// `127.0.0.1:11112 (TCP), 127.0.0.1:2762 (TLS)`, for the start-up log.
    pub fn describe(&self) -> String {
        self.all
            .iter()
            .map(|l| match l.tcp.local_addr() {
                Ok(addr) => format!("{addr} ({})", l.transport.name()),
                Err(_) => format!("? ({})", l.transport.name()),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The next connection on any listener.
    pub async fn accept(&self) -> std::io::Result<(TcpStream, SocketAddr, Transport)> {
        use std::sync::atomic::Ordering;
        std::future::poll_fn(|cx| {
            let n = self.all.len();
            let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
            for i in 0..n {
                let listener = &self.all[(start + i) % n];
                if let Poll::Ready(result) = listener.tcp.poll_accept(cx) {
                    return Poll::Ready(
                        result.map(|(socket, peer)| (socket, peer, listener.transport.clone())),
                    );
                }
            }
            Poll::Pending
        })
        .await
    }
}

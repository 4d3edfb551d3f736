//! The streams an association runs on: a TCP socket, or TLS over one. Both give access to
//! the TCP socket underneath for its options (see `tcp`).

use tokio::net::TcpStream;

/// A TLS session on an accepted socket.
pub(crate) type TlsStream = tokio_rustls::server::TlsStream<TcpStream>;

/// A stream an SCP association can run on.
pub(crate) trait ScpStream:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static
{
    /// The TCP socket carrying the association.
    fn tcp(&self) -> &TcpStream;
}

impl ScpStream for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl ScpStream for TlsStream {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

//! RFC 5424 syslog messages to a collector: one datagram each over UDP (RFC 5426), or
//! octet-counted frames (RFC 6587 / RFC 5425) over TCP or TLS, with the reconnects and
//! back-off that a collector going away and coming back needs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

use super::config::{SyslogConfig, SyslogTransport};
use crate::tls::ClientTls;

/// Facility 10 (security/authorization) and severity 5 (notice), as IHE ATNA suggests.
const PRI: u8 = 10 * 8 + 5;
/// MSGID of DICOM audit messages (IHE ITI TF-2, Record Audit Event).
const MSGID: &str = "IHE+RFC-3881";
/// How long a connect or a write may take before the collector counts as down.
const IO_TIMEOUT: Duration = Duration::from_secs(3);
/// After a failure, messages are dropped at once for this long before the next connect.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The RFC 5424 line for one XML message: header, no structured data, a UTF-8 BOM and
/// the XML.
pub fn frame(xml: &str, hostname: &str, time: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "<{PRI}>1 {} {hostname} segnode {} {MSGID} - \u{FEFF}{xml}",
        time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        std::process::id()
    )
}

/// This machine's host name as RFC 5424 wants it (printable ASCII, at most 255), or "-".
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that much.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name: String = String::from_utf8_lossy(&buf[..end])
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    if rc != 0 || name.is_empty() {
        "-".into()
    } else {
        name
    }
}

enum Connection {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Sends framed messages to the collector, connecting when needed.
pub(super) struct SyslogSender {
    config: SyslogConfig,
    tls: Option<ClientTls>,
    connection: Option<Connection>,
    /// While set and in the future, the collector is down: drop without trying.
    retry_at: Option<Instant>,
}

impl SyslogSender {
    /// A sender for `config` (TLS settings already loaded into `tls`).
    pub(super) fn new(config: SyslogConfig, tls: Option<ClientTls>) -> Self {
        Self {
            config,
            tls,
            connection: None,
            retry_at: None,
        }
    }

    /// `host:port (transport)`, for logs.
    pub(super) fn describe(&self) -> String {
        format!(
            "{}:{} ({:?})",
            self.config.host,
            self.config.port(),
            self.config.transport
        )
    }

    /// Send one message; `Err` says why it was not (the caller counts it as dropped).
    pub(super) async fn send(&mut self, message: &str) -> Result<(), String> {
        if let Some(at) = self.retry_at {
            if Instant::now() < at {
                return Err("collector unreachable (waiting before the next try)".into());
            }
            self.retry_at = None;
        }
        if self.connection.is_none() {
            match tokio::time::timeout(IO_TIMEOUT, self.connect()).await {
                Ok(Ok(c)) => self.connection = Some(c),
                Ok(Err(e)) => return Err(self.down(format!("cannot connect: {e}"))),
                Err(_) => return Err(self.down(format!("no connection within {IO_TIMEOUT:?}"))),
            }
        }
        let result = match self.connection.as_mut().expect("connected above") {
            Connection::Udp(socket) => socket.send(message.as_bytes()).await.map(drop),
            Connection::Tcp(stream) => write_counted(stream, message).await,
            Connection::Tls(stream) => write_counted(stream.as_mut(), message).await,
        };
        result.map_err(|e| self.down(format!("send failed: {e}")))
    }

    fn down(&mut self, why: String) -> String {
        self.connection = None;
        self.retry_at = Some(Instant::now() + RETRY_AFTER);
        why
    }

    async fn connect(&self) -> std::io::Result<Connection> {
        let addr = (self.config.host.as_str(), self.config.port());
        Ok(match self.config.transport {
            SyslogTransport::Udp => {
                let target = tokio::net::lookup_host(addr).await?.next().ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, "host has no address")
                })?;
                let local: std::net::SocketAddr = if target.is_ipv4() {
                    "0.0.0.0:0".parse().expect("valid")
                } else {
                    "[::]:0".parse().expect("valid")
                };
                let socket = UdpSocket::bind(local).await?;
                socket.connect(target).await?;
                Connection::Udp(socket)
            }
            SyslogTransport::Tcp => Connection::Tcp(TcpStream::connect(addr).await?),
            SyslogTransport::Tls => {
                let tls = self.tls.as_ref().ok_or_else(|| {
                    std::io::Error::other("transport tls without a TLS configuration")
                })?;
                let name = rustls::pki_types::ServerName::try_from(self.config.host.clone())
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                let tcp = TcpStream::connect(addr).await?;
                let connector = tokio_rustls::TlsConnector::from(Arc::clone(&tls.config));
                Connection::Tls(Box::new(connector.connect(name, tcp).await?))
            }
        })
    }
}

/// RFC 6587 octet counting: `LEN SP MSG`, bounded by the I/O timeout.
async fn write_counted<W: tokio::io::AsyncWrite + Unpin>(
    stream: &mut W,
    message: &str,
) -> std::io::Result<()> {
    let framed = format!("{} {message}", message.len());
    tokio::time::timeout(IO_TIMEOUT, async {
        stream.write_all(framed.as_bytes()).await?;
        stream.flush().await
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "write timed out"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_is_rfc5424() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05.678Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let line = frame("<AuditMessage/>", "host1", t);
        let pid = std::process::id();
        assert_eq!(
            line,
            format!(
                "<85>1 2026-01-02T03:04:05.678Z host1 segnode {pid} IHE+RFC-3881 - \u{FEFF}<AuditMessage/>"
            )
        );
        assert!(!hostname().is_empty());
    }
}

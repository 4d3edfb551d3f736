//! One HTTP/1.1 POST over a fresh connection (plain TCP or rustls), every step bounded:
//! connect and TLS handshake by the connect timeout, each body chunk written by the write
//! timeout, each read by the read timeout, the response head to [`MAX_HEAD`] bytes and the
//! body to the caller's limit. `Connection: close`, no redirects, no keep-alive: one
//! delivery is one request, and a half-read answer never leaks into the next.
//!
//! Hand-written rather than a client crate: the node needs exactly this one exchange, the
//! head is parsed by `httparse` (already compiled in through axum's hyper), and TLS goes
//! through the same rustls configuration as DICOM TLS.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::url::{Scheme, StowUrl};

/// Largest response head (status line and headers) we read.
pub const MAX_HEAD: usize = 64 * 1024;
/// Interim (1xx) responses skipped before the real one, at most.
const MAX_INTERIM: usize = 4;
/// Body bytes written per bounded write.
const WRITE_CHUNK: usize = 256 * 1024;

/// Timeouts and limits of one exchange.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// TCP connect plus TLS handshake.
    pub connect: Duration,
    /// Each read.
    pub read: Duration,
    /// Each body chunk written.
    pub write: Duration,
    /// Largest response body kept.
    pub max_body: usize,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// The body, de-chunked, at most `max_body` bytes.
    pub body: Vec<u8>,
}

/// Why no answer came back.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No TCP connection.
    #[error("cannot connect to {addr}: {reason} (is the server running and listening there?)")]
    Connect {
        /// host:port.
        addr: String,
        /// The transport error.
        reason: String,
    },
    /// TLS handshake refused.
    #[error(
        "TLS handshake with {addr} failed: {reason} (check tls.ca and that the certificate names the URL's host)"
    )]
    Tls {
        /// host:port.
        addr: String,
        /// rustls' reason.
        reason: String,
    },
    /// A step ran past its timeout.
    #[error("no progress within {timeout:?} while {step}")]
    Timeout {
        /// What we were doing.
        step: &'static str,
        /// The timeout.
        timeout: Duration,
    },
    /// The connection broke.
    #[error("connection lost while {step}: {reason}")]
    Io {
        /// What we were doing.
        step: &'static str,
        /// The I/O error.
        reason: String,
    },
    /// The server answered something that is not HTTP/1.x within our limits.
    #[error("unreadable answer: {0}")]
    Malformed(String),
}

/// The request: target path and the headers beyond Host, Content-Length and Connection.
pub struct Request<'a> {
    /// Path and query, e.g. `/dicom-web/studies`.
    pub target: &'a str,
    /// Extra header lines (name, value).
    pub headers: &'a [(&'a str, &'a str)],
    /// The body.
    pub body: &'a [u8],
}

/// POST `rq` to `url` and read the answer.
pub async fn post(
    url: &StowUrl,
    tls: Option<&Arc<rustls::ClientConfig>>,
    rq: &Request<'_>,
    limits: Limits,
) -> Result<Answer, HttpError> {
    let addr = format!("{}:{}", url.host, url.port);
    let tcp = bounded(
        limits.connect,
        "connecting",
        TcpStream::connect((url.host.as_str(), url.port)),
    )
    .await?
    .map_err(|e| HttpError::Connect {
        addr: addr.clone(),
        reason: e.to_string(),
    })?;
    let _ = tcp.set_nodelay(true);
    match (url.scheme, tls) {
        (Scheme::Http, _) => exchange(tcp, url, rq, limits).await,
        (Scheme::Https, None) => Err(HttpError::Tls {
            addr,
            reason: "an https URL needs tls = { ca = … } in the destination".into(),
        }),
        (Scheme::Https, Some(config)) => {
            let name = rustls::pki_types::ServerName::try_from(url.host.clone()).map_err(|e| {
                HttpError::Tls {
                    addr: addr.clone(),
                    reason: format!("{:?} is not a valid server name: {e}", url.host),
                }
            })?;
            let connector = tokio_rustls::TlsConnector::from(config.clone());
            let stream = bounded(
                limits.connect,
                "in the TLS handshake",
                connector.connect(name, tcp),
            )
            .await?
            .map_err(|e| HttpError::Tls {
                addr,
                reason: e.to_string(),
            })?;
            exchange(stream, url, rq, limits).await
        }
    }
}

async fn bounded<T>(
    timeout: Duration,
    step: &'static str,
    f: impl std::future::Future<Output = T>,
) -> Result<T, HttpError> {
    tokio::time::timeout(timeout, f)
        .await
        .map_err(|_| HttpError::Timeout { step, timeout })
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    url: &StowUrl,
    rq: &Request<'_>,
    limits: Limits,
) -> Result<Answer, HttpError> {
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: segnode/{}\r\n",
        rq.target,
        url.host_header(),
        rq.body.len(),
        env!("CARGO_PKG_VERSION")
    );
    for (name, value) in rq.headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    write(&mut stream, head.as_bytes(), limits.write).await?;
    for chunk in rq.body.chunks(WRITE_CHUNK) {
        write(&mut stream, chunk, limits.write).await?;
    }
    bounded(limits.write, "sending the request", stream.flush())
        .await?
        .map_err(|e| io("sending the request", e))?;
    read_answer(&mut stream, limits).await
}

async fn write<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    timeout: Duration,
) -> Result<(), HttpError> {
    bounded(timeout, "sending the request", stream.write_all(bytes))
        .await?
        .map_err(|e| io("sending the request", e))
}

fn io(step: &'static str, e: std::io::Error) -> HttpError {
    HttpError::Io {
        step,
        reason: e.to_string(),
    }
}

/// How the body is framed.
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// Read the response: skip interim answers, parse the head, read the framed body.
async fn read_answer<S: AsyncRead + Unpin>(
    stream: &mut S,
    limits: Limits,
) -> Result<Answer, HttpError> {
    let mut reader = Reader {
        stream,
        buf: Vec::new(),
        timeout: limits.read,
    };
    for _ in 0..=MAX_INTERIM {
        let (status, framing, head_len) = reader.head().await?;
        reader.buf.drain(..head_len);
        if (100..200).contains(&status) {
            continue;
        }
        let body = match framing {
            Framing::Length(n) if n > limits.max_body => {
                return Err(HttpError::Malformed(format!(
                    "HTTP {status} with a {n}-byte body, more than the {} bytes a STOW-RS answer needs",
                    limits.max_body
                )));
            }
            Framing::Length(n) => reader.exactly(n).await?,
            Framing::Chunked => reader.chunked(limits.max_body).await?,
            Framing::UntilClose => reader.until_close(limits.max_body).await?,
        };
        return Ok(Answer { status, body });
    }
    Err(HttpError::Malformed(format!(
        "more than {MAX_INTERIM} interim (1xx) answers"
    )))
}

struct Reader<'s, S> {
    stream: &'s mut S,
    buf: Vec<u8>,
    timeout: Duration,
}

impl<S: AsyncRead + Unpin> Reader<'_, S> {
    /// Read more bytes; false at end of stream.
    async fn fill(&mut self, step: &'static str) -> Result<bool, HttpError> {
        let mut chunk = [0u8; 16 * 1024];
        let n = bounded(self.timeout, step, self.stream.read(&mut chunk))
            .await?
            .map_err(|e| io(step, e))?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// Status, framing and the head's length in the buffer.
    async fn head(&mut self) -> Result<(u16, Framing, usize), HttpError> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&self.buf) {
                Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => {
                    return Err(HttpError::Malformed(format!(
                        "the response head is longer than {MAX_HEAD} bytes"
                    )));
                }
                Ok(httparse::Status::Complete(len)) => {
                    let status = response.code.unwrap_or(0);
                    let framing = framing(response.headers)?;
                    return Ok((status, framing, len));
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(HttpError::Malformed(format!("not an HTTP/1.x answer: {e}"))),
            }
            if self.buf.len() > MAX_HEAD {
                return Err(HttpError::Malformed(format!(
                    "the response head is longer than {MAX_HEAD} bytes"
                )));
            }
            if !self.fill("waiting for the answer").await? {
                return Err(HttpError::Io {
                    step: "waiting for the answer",
                    reason: "the server closed the connection without answering".into(),
                });
            }
        }
    }

    async fn exactly(&mut self, n: usize) -> Result<Vec<u8>, HttpError> {
        while self.buf.len() < n {
            if !self.fill("reading the answer's body").await? {
                return Err(HttpError::Io {
                    step: "reading the answer's body",
                    reason: format!("closed after {} of {n} bytes", self.buf.len()),
                });
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    async fn until_close(&mut self, max: usize) -> Result<Vec<u8>, HttpError> {
        loop {
            // Checked before each read: the head's reads may have brought the body already.
            if self.buf.len() > max {
                return Err(too_long(max));
            }
            if !self.fill("reading the answer's body").await? {
                return Ok(std::mem::take(&mut self.buf));
            }
        }
    }

    /// A line ending in CRLF (without it), at most 4 KiB.
    async fn line(&mut self) -> Result<String, HttpError> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..i + 2).take(i).collect();
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            if self.buf.len() > 4096 {
                return Err(HttpError::Malformed(
                    "a chunk-size line longer than 4 KiB".into(),
                ));
            }
            if !self.fill("reading the answer's body").await? {
                return Err(HttpError::Io {
                    step: "reading the answer's body",
                    reason: "closed inside a chunked body".into(),
                });
            }
        }
    }

    async fn chunked(&mut self, max: usize) -> Result<Vec<u8>, HttpError> {
        let mut body = Vec::new();
        loop {
            let line = self.line().await?;
            let size = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16).map_err(|_| {
                HttpError::Malformed(format!("bad chunk size {:?}", sanitize(&line)))
            })?;
            if size == 0 {
                // Trailers, bounded like everything else, until the empty line.
                for _ in 0..64 {
                    if self.line().await?.is_empty() {
                        return Ok(body);
                    }
                }
                return Err(HttpError::Malformed("more than 64 trailer lines".into()));
            }
            if body.len().saturating_add(size) > max {
                return Err(too_long(max));
            }
            body.extend(self.exactly(size).await?);
            if !self.line().await?.is_empty() {
                return Err(HttpError::Malformed("a chunk not followed by CRLF".into()));
            }
        }
    }
}

fn too_long(max: usize) -> HttpError {
    HttpError::Malformed(format!(
        "the body is longer than the {max} bytes a STOW-RS answer needs"
    ))
}

fn sanitize(text: &str) -> String {
    crate::outbox::failure::sanitize(text, 40)
}

fn framing(headers: &[httparse::Header<'_>]) -> Result<Framing, HttpError> {
    let get = |name: &str| {
        headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    if get("transfer-encoding").is_some_and(|v| v.ends_with("chunked")) {
        return Ok(Framing::Chunked);
    }
    match get("content-length") {
        Some(v) => v
            .parse::<usize>()
            .map(Framing::Length)
            .map_err(|_| HttpError::Malformed(format!("Content-Length {:?}", sanitize(&v)))),
        None => Ok(Framing::UntilClose),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            connect: Duration::from_secs(2),
            read: Duration::from_secs(2),
            write: Duration::from_secs(2),
            max_body: 1024,
        }
    }

    async fn answer(bytes: &[u8]) -> Result<Answer, HttpError> {
        let (mut client, mut server) = tokio::io::duplex(1 << 20);
        server.write_all(bytes).await.unwrap();
        drop(server);
        read_answer(&mut client, limits()).await
    }

    #[tokio::test]
    async fn framings() {
        let a = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
            .await
            .unwrap();
        assert_eq!((a.status, a.body.as_slice()), (200, &b"hello"[..]));
        let a = answer(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nX-T: 1\r\n\r\n")
            .await
            .unwrap();
        assert_eq!((a.status, a.body.as_slice()), (409, &b"abcde"[..]));
        let a = answer(b"HTTP/1.0 500 Oops\r\n\r\nuntil close")
            .await
            .unwrap();
        assert_eq!((a.status, a.body.as_slice()), (500, &b"until close"[..]));
    }

    #[tokio::test]
    async fn hostile_answers_are_errors_not_panics_or_hoards() {
        let huge_head = format!(
            "HTTP/1.1 200 OK\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_HEAD + 10)
        );
        let cases: Vec<Vec<u8>> = vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n"
                .to_vec(),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort".to_vec(),
            [b"HTTP/1.1 200 OK\r\n\r\n".to_vec(), vec![b'x'; 5000]].concat(),
            huge_head.into_bytes(),
            b"SSH-2.0-OpenSSH\r\n\r\n".to_vec(),
            b"".to_vec(),
            b"HTTP/1.1 100 Continue\r\n\r\n".repeat(10),
        ];
        for bytes in cases {
            let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(60)]).into_owned();
            assert!(answer(&bytes).await.is_err(), "{shown}");
        }
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let (mut client, _server) = tokio::io::duplex(1024);
        let mut l = limits();
        l.read = Duration::from_millis(50);
        let e = read_answer(&mut client, l).await.unwrap_err();
        assert!(matches!(e, HttpError::Timeout { .. }), "{e}");
    }
}

//! Socket tuning for DICOM's strict request/response rhythm: a peer sends a message, then
//! waits for our answer before it sends the next. Two kernel defaults turn that rhythm into
//! stalls of milliseconds per message (a few MB/s on loopback instead of tens):
//!
//! - Nagle's algorithm would hold our small responses back: `TCP_NODELAY`, once per socket;
//! - delayed ACKs would hold back the acknowledgement a Nagle-enabled peer (DCMTK's
//!   `storescu` by default) waits for before it sends the data set that follows a command
//!   (about 40 ms per instance: 300 small instances took 16 s instead of 2): `TCP_QUICKACK`
//!   on Linux, re-armed after every PDU received and every response sent, because the
//!   kernel drops back to delayed ACKs on its own (notably once we send).

use tokio::net::TcpStream;
use tracing::warn;

/// Tune a freshly accepted socket.
pub(super) fn tune_accepted(socket: &TcpStream) {
    if let Err(err) = socket.set_nodelay(true) {
        warn!(cause = %err, "cannot set TCP_NODELAY; transfers from this peer may be slow");
    }
    quickack(socket);
}

/// Acknowledge received data at once rather than after the delayed-ACK timer (best
/// effort: a failure only costs speed).
#[cfg(target_os = "linux")]
pub(super) fn quickack(socket: &TcpStream) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: the descriptor belongs to a live TCP socket borrowed for the call, and the
    // option value points to a c_int of the length passed.
    let _ = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// Delayed ACKs cannot be switched off per socket on this platform.
#[cfg(not(target_os = "linux"))]
pub(super) fn quickack(_socket: &TcpStream) {}

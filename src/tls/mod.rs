//! DICOM TLS (the BCP 195 profile of PS3.15 B.9/B.13): what the `[tls]` table and a
//! destination's `tls = { … }` say (`config`), and the rustls configurations built from
//! them (`load`): TLS 1.2 and 1.3 only, rustls' default cipher suites with the `ring`
//! provider (ECDHE key exchange with AES-GCM or ChaCha20-Poly1305 only: forward secret
//! and authenticated, as BCP 195 / RFC 9325 recommend; no RSA key exchange, no CBC, no
//! RC4/3DES, no SSL 3/TLS 1.0/1.1), peer certificates checked against the configured CA
//! (chain, validity period, key usage; the server's name or IP address on the client side).
//!
//! Every file is read and parsed when the config is loaded, so a missing file, a key that
//! does not match its certificate or a CA file without a certificate fails `segnode
//! check-config` and `segnode serve` at start, naming the key, the file and the reason.

pub mod config;
pub mod load;

pub use config::{PeerTlsConfig, ServerTlsConfig};
pub use load::{ClientTls, ServerTls, TlsError};

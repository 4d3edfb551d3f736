//! The TLS settings as written in the node config: `[tls]` for the listener, and
//! `tls = { ca = …, certificate = …, private_key = … }` on a `[[destinations]]` entry.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The IANA port for DICOM over TLS (`dicom-tls`).
pub const DICOM_TLS_PORT: u16 = 2762;

/// `[tls]`: a second listener that speaks only DICOM over TLS.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// Port of the TLS listener (on `node.bind`); it never accepts plain TCP. Default 2762,
    /// the IANA `dicom-tls` port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// PEM file with this node's certificate, followed by any intermediate certificates.
    pub certificate: PathBuf,
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1). Keep it
    /// readable by the segnode user only.
    pub private_key: PathBuf,
    /// PEM file with the CA certificate(s) a client certificate must chain to. Required
    /// when `require_client_certificate` is true.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Refuse clients that present no certificate signed by `ca` (mutual TLS, as BCP 195
    /// peers expect). Default true. False: a client certificate is still verified when
    /// one is presented and `ca` is set.
    #[serde(default = "yes")]
    pub require_client_certificate: bool,
    /// Keep the plain-TCP listener on `node.port` open as well. Default false: once TLS is
    /// configured, the node accepts DICOM only over TLS.
    #[serde(default)]
    pub keep_plain_port: bool,
}

/// `tls = { … }` on a destination, or `segnode echo/send --tls-*`: talk TLS to that peer.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PeerTlsConfig {
    /// PEM file with the CA certificate(s) the peer's certificate must chain to. The
    /// certificate must name the destination's `host` (DNS name or IP address).
    pub ca: PathBuf,
    /// PEM file with our client certificate (chain), for peers that require one.
    #[serde(default)]
    pub certificate: Option<PathBuf>,
    /// PEM file with the client certificate's private key; given together with
    /// `certificate`.
    #[serde(default)]
    pub private_key: Option<PathBuf>,
}

fn default_port() -> u16 {
    DICOM_TLS_PORT
}

fn yes() -> bool {
    true
}

/// Make a relative path absolute against `base` (the config file's folder).
fn resolve(path: &mut PathBuf, base: &Path) {
    if path.is_relative() {
        *path = base.join(&*path);
    }
}

impl ServerTlsConfig {
    /// Resolve relative file names against the config file's folder.
    pub fn resolve_paths(&mut self, base: &Path) {
        resolve(&mut self.certificate, base);
        resolve(&mut self.private_key, base);
        if let Some(ca) = &mut self.ca {
            resolve(ca, base);
        }
    }
}

impl PeerTlsConfig {
    /// Resolve relative file names against the config file's folder.
    pub fn resolve_paths(&mut self, base: &Path) {
        resolve(&mut self.ca, base);
        for path in [&mut self.certificate, &mut self.private_key]
            .into_iter()
            .flatten()
        {
            resolve(path, base);
        }
    }
}

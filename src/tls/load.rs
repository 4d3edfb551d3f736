//! Building rustls configurations from the PEM files the config names.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::config::{PeerTlsConfig, ServerTlsConfig};

/// The protocol versions BCP 195 allows: TLS 1.3 and 1.2, nothing older.
static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Why a TLS setting cannot be used. `key` is the setting's name inside its table
/// (`certificate`, `ca` …); the config loader puts the table in front.
#[derive(Debug, thiserror::Error)]
#[error("{key} = {file:?}: {reason}")]
pub struct TlsError {
    /// The setting that names the file.
    pub key: &'static str,
    /// The file.
    pub file: PathBuf,
    /// What is wrong and what to do.
    pub reason: String,
}

/// The listener's TLS configuration, ready for every connection.
#[derive(Clone)]
pub struct ServerTls {
    /// Shared by every handshake.
    pub config: Arc<ServerConfig>,
    /// Whether a client certificate is required (for the start-up log).
    pub client_certificate_required: bool,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field(
                "client_certificate_required",
                &self.client_certificate_required,
            )
            .finish_non_exhaustive()
    }
}

/// A requestor's TLS configuration for one peer.
#[derive(Clone)]
pub struct ClientTls {
    /// Shared by every connection to the peer.
    pub config: Arc<ClientConfig>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls").finish_non_exhaustive()
    }
}

/// rustls with *ring*: no C toolchain beyond what `ring` needs. rustls 0.23.48 deprecates
/// it for lacking post-quantum hybrid key exchange, which no DICOM peer negotiates yet
/// (DCMTK and Orthanc offer classic ECDHE); the classic groups meet BCP 195.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn err(key: &'static str, file: &Path, reason: impl Into<String>) -> TlsError {
    TlsError {
        key,
        file: file.to_path_buf(),
        reason: reason.into(),
    }
}

/// Fail early with a readable reason when the file is not there or not readable.
fn readable(key: &'static str, file: &Path) -> Result<(), TlsError> {
    std::fs::File::open(file)
        .map(drop)
        .map_err(|e| err(key, file, format!("cannot read it: {e}")))
}

/// Every certificate in a PEM file (at least one).
pub fn read_certificates(
    key: &'static str,
    file: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    readable(key, file)?;
    let certs = CertificateDer::pem_file_iter(file)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| err(key, file, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(err(
            key,
            file,
            "holds no certificate (expected a PEM block \"BEGIN CERTIFICATE\")",
        ));
    }
    Ok(certs)
}

/// The private key in a PEM file.
fn read_key(key: &'static str, file: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    readable(key, file)?;
    PrivateKeyDer::from_pem_file(file).map_err(|e| {
        err(
            key,
            file,
            format!("no PKCS#8, PKCS#1 or SEC1 private key in it: {e}"),
        )
    })
}

/// The CA certificates of a file as a trust store.
fn read_roots(key: &'static str, file: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certificates(key, file)? {
        roots
            .add(cert)
            .map_err(|e| err(key, file, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(Arc::new(roots))
}

impl ServerTlsConfig {
    /// Read the files and build the listener's TLS configuration.
    pub fn load(&self) -> Result<ServerTls, TlsError> {
        let certs = read_certificates("certificate", &self.certificate)?;
        let key = read_key("private_key", &self.private_key)?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(VERSIONS)
            .map_err(|e| err("certificate", &self.certificate, e.to_string()))?;
        let builder = match (&self.ca, self.require_client_certificate) {
            (None, true) => {
                return Err(TlsError {
                    key: "ca",
                    file: PathBuf::new(),
                    reason: "require_client_certificate = true needs the CA that signs the \
                             clients' certificates: set ca = \"ca.pem\" (or set \
                             require_client_certificate = false)"
                        .into(),
                });
            }
            (None, false) => builder.with_no_client_auth(),
            (Some(ca), required) => {
                let roots = read_roots("ca", ca)?;
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider());
                let verifier = if required {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| err("ca", ca, format!("cannot verify clients with it: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder.with_single_cert(certs, key).map_err(|e| {
            err(
                "private_key",
                &self.private_key,
                format!(
                    "does not go with the certificate {:?}: {e}",
                    self.certificate
                ),
            )
        })?;
        Ok(ServerTls {
            config: Arc::new(config),
            client_certificate_required: self.require_client_certificate,
        })
    }
}

impl PeerTlsConfig {
    /// Read the files and build the requestor's TLS configuration.
    pub fn load(&self) -> Result<ClientTls, TlsError> {
        let roots = read_roots("ca", &self.ca)?;
        // The same verification as `with_root_certificates`, built once here so that an
        // unusable CA file fails now, not at the first delivery.
        let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| err("ca", &self.ca, format!("cannot verify peers with it: {e}")))?;
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(VERSIONS)
            .map_err(|e| err("ca", &self.ca, e.to_string()))?
            .with_webpki_verifier(verifier);
        let config = match (&self.certificate, &self.private_key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key_file)) => {
                let certs = read_certificates("certificate", cert)?;
                let key = read_key("private_key", key_file)?;
                builder.with_client_auth_cert(certs, key).map_err(|e| {
                    err(
                        "private_key",
                        key_file,
                        format!("does not go with the certificate {cert:?}: {e}"),
                    )
                })?
            }
            (Some(cert), None) => {
                return Err(err(
                    "private_key",
                    Path::new(""),
                    format!("certificate {cert:?} is set: give its private_key too"),
                ));
            }
            (None, Some(key)) => {
                return Err(err(
                    "certificate",
                    Path::new(""),
                    format!("private_key {key:?} is set: give its certificate too"),
                ));
            }
        };
        Ok(ClientTls {
            config: Arc::new(config),
        })
    }
}

//! The security parts of the node config, checked at load: `[tls]` (its files are read
//! and a TLS configuration is built from them), each destination's `tls`, and `[audit]`.

use std::path::Path;

use crate::config::{Config, ConfigError};

impl Config {
    /// Resolve the file names of `[tls]`, destinations' `tls` and `[audit]` against the
    /// config file's folder.
    pub(crate) fn resolve_security_paths(&mut self, base: &Path) {
        if let Some(tls) = &mut self.tls {
            tls.resolve_paths(base);
        }
        for d in &mut self.destinations {
            if let Some(tls) = &mut d.tls {
                tls.resolve_paths(base);
            }
        }
        self.audit.resolve_paths(base);
    }

    /// Read every TLS file (so a bad one fails now) and check `[audit]`.
    pub(crate) fn validate_security(&self, file: &str) -> Result<(), ConfigError> {
        let invalid = |key: String, reason: String| ConfigError::Invalid {
            file: file.to_string(),
            key,
            reason,
        };
        if let Some(tls) = &self.tls {
            if tls.port == 0 {
                return Err(invalid("tls.port".into(), "0 is not a port".into()));
            }
            if tls.keep_plain_port && tls.port == self.node.port {
                return Err(invalid(
                    "tls.port".into(),
                    format!(
                        "{} is node.port too: the TLS listener needs a port of its own \
                         (2762 is the IANA DICOM TLS port)",
                        tls.port
                    ),
                ));
            }
            tls.load()
                .map_err(|e| invalid(format!("tls.{}", e.key), describe(&e)))?;
        }
        for (i, d) in self.destinations.iter().enumerate() {
            if let Some(tls) = &d.tls {
                tls.load().map_err(|e| {
                    invalid(format!("destinations[{i}].tls.{}", e.key), describe(&e))
                })?;
            }
        }
        self.audit
            .validate()
            .map_err(|(key, reason)| invalid(format!("audit.{key}"), reason))
    }
}

/// The file (when the error is about one) and the reason.
fn describe(e: &crate::tls::TlsError) -> String {
    if e.file.as_os_str().is_empty() {
        e.reason.clone()
    } else {
        format!("{}: {}", e.file.display(), e.reason)
    }
}

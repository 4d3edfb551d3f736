//! `[audit]`: whether audit messages are written, and where (a syslog collector, a local
//! JSON-lines file, or both).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::tls::PeerTlsConfig;

/// The `[audit]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Write audit messages. Default false; when true, `syslog` and/or `file` must be set.
    pub enabled: bool,
    /// AuditSourceID of every message. Default: `node.ae_title`.
    pub source_id: Option<String>,
    /// AuditEnterpriseSiteID (the hospital or department), when the collector wants one.
    pub site_id: Option<String>,
    /// Messages waiting for their transport at most; past it new messages are dropped
    /// (counted, and logged) rather than ever slowing the DICOM side down.
    pub queue_capacity: usize,
    /// Append each message as one JSON line (with its XML) to this file. Relative paths
    /// resolve against the config file's folder.
    pub file: Option<PathBuf>,
    /// Send each message to this syslog collector (RFC 5424).
    pub syslog: Option<SyslogConfig>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            source_id: None,
            site_id: None,
            queue_capacity: 1024,
            file: None,
            syslog: None,
        }
    }
}

/// `syslog = { host = …, port = …, transport = … }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// The collector's host name or IP address.
    pub host: String,
    /// The collector's port. Default: 514 for UDP and TCP, 6514 for TLS.
    #[serde(default)]
    pub port: Option<u16>,
    /// How messages travel.
    #[serde(default)]
    pub transport: SyslogTransport,
    /// For `transport = "tls"`: the collector's CA, and our client certificate if it wants
    /// one.
    #[serde(default)]
    pub tls: Option<PeerTlsConfig>,
}

/// The syslog transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogTransport {
    /// RFC 5426: one datagram per message (lost silently when the collector is down).
    #[default]
    Udp,
    /// RFC 6587 octet counting over TCP.
    Tcp,
    /// RFC 5425: octet counting over TLS (what IHE ATNA asks for).
    Tls,
}

impl SyslogConfig {
    /// The port in use.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.transport {
            SyslogTransport::Tls => 6514,
            _ => 514,
        })
    }
}

impl AuditConfig {
    /// Resolve relative file names against the config file's folder.
    pub fn resolve_paths(&mut self, base: &Path) {
        if let Some(file) = &mut self.file
            && file.is_relative()
        {
            *file = base.join(&*file);
        }
        if let Some(tls) = self.syslog.as_mut().and_then(|s| s.tls.as_mut()) {
            tls.resolve_paths(base);
        }
    }

    /// Checks serde cannot express: `Err((key under audit., reason))`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.queue_capacity == 0 {
            return Err(("queue_capacity".into(), "must be at least 1".into()));
        }
        if self.enabled && self.file.is_none() && self.syslog.is_none() {
            return Err((
                "enabled".into(),
                "audit is enabled but goes nowhere: set syslog = { host = …, port = …, \
                 transport = \"udp\" | \"tcp\" | \"tls\" } and/or file = \"audit.jsonl\""
                    .into(),
            ));
        }
        let Some(syslog) = &self.syslog else {
            return Ok(());
        };
        if syslog.host.trim().is_empty() {
            return Err(("syslog.host".into(), "must not be empty".into()));
        }
        if syslog.port == Some(0) {
            return Err(("syslog.port".into(), "0 is not a port".into()));
        }
        match (syslog.transport, &syslog.tls) {
            (SyslogTransport::Tls, None) => Err((
                "syslog.tls".into(),
                "transport = \"tls\" needs tls = { ca = \"collector-ca.pem\" }".into(),
            )),
            (SyslogTransport::Tls, Some(tls)) => tls
                .load()
                .map(drop)
                .map_err(|e| (format!("syslog.tls.{}", e.key), e.to_string())),
            (_, Some(_)) => Err((
                "syslog.tls".into(),
                "only used with transport = \"tls\"".into(),
            )),
            (_, None) => Ok(()),
        }
    }
}

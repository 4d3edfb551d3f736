//! Typed configuration (`conf/segnode.toml`), validated at load so that a mistake fails at
//! start-up with the file, the key and the reason, never later in the middle of a study.
//!
//! The default config is embedded in the binary: `segnode serve` with no `--config` runs it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ae::AeTitle;
use crate::uids;

mod effective;
mod security;

/// The config shipped in `conf/segnode.toml`, compiled into the binary.
pub const EMBEDDED_DEFAULT: &str = include_str!("../conf/segnode.toml");

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {file}: {message}")]
    Parse { file: String, message: String },
    #[error("config {file}: key `{key}`: {reason}")]
    Invalid {
        file: String,
        key: String,
        reason: String,
    },
}

/// The whole node configuration. `Default` is every key at its documented default (what
/// an empty config file gives).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Who this node is and where it listens.
    #[serde(default)]
    pub node: NodeConfig,
    /// Bounds on the network layer.
    #[serde(default)]
    pub network: NetworkConfig,
    /// Spool behaviour.
    #[serde(default)]
    pub storage: StorageConfig,
    /// Which peers may associate.
    #[serde(default)]
    pub access: AccessConfig,
    /// Which pipelines run, and where their definitions, models and results are.
    #[serde(default)]
    pub pipelines: PipelinesConfig,
    /// Named DICOM peers SEGs are delivered to (referenced by a pipeline's
    /// `output.destinations`).
    #[serde(default)]
    pub destinations: Vec<DestinationConfig>,
    /// Delivery retries: backoff and the dead-letter limit.
    #[serde(default)]
    pub outbox: OutboxConfig,
    /// DICOM TLS listener; absent: no TLS port.
    #[serde(default)]
    pub tls: Option<crate::tls::ServerTlsConfig>,
    /// Audit trail (PS3.15 A.5 messages to syslog and/or a JSON-lines file).
    #[serde(default)]
    pub audit: crate::audit::AuditConfig,
    /// The admin HTTP server: health, metrics, read API, dashboard, operator actions.
    #[serde(default)]
    pub http: HttpConfig,
}

/// The admin HTTP server (`/healthz`, `/readyz`, `/metrics`, `/api/*`, the dashboard at `/`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Run the HTTP server inside `serve`.
    pub enabled: bool,
    /// Address to bind; the default keeps it to this machine (put a reverse proxy with TLS
    /// in front to reach it from elsewhere).
    pub bind: IpAddr,
    /// HTTP port.
    pub port: u16,
    /// File holding the bearer token that operator actions (POST) require. Unset: actions
    /// need no token (only sensible with `bind = 127.0.0.1`). The token is never logged.
    /// Relative paths resolve like `node.data_dir`.
    pub token_file: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 8080,
            token_file: None,
        }
    }
}

impl HttpConfig {
    /// The bearer token from `token_file` (surrounding whitespace trimmed), if one is set.
    pub fn read_token(&self) -> Result<Option<String>, String> {
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let token = text.trim();
        if token.is_empty() {
            return Err(format!(
                "{} is empty: write a long random token into it (e.g. `openssl rand -hex 32`)",
                path.display()
            ));
        }
        Ok(Some(token.to_string()))
    }
}

/// How a destination is reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationKind {
    /// C-STORE over a DICOM association (`ae_title`, `host`, `port`).
    #[default]
    Dimse,
    /// STOW-RS to a DICOMweb service (`url`).
    Stow,
}

impl std::fmt::Display for DestinationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DestinationKind::Dimse => "dimse",
            DestinationKind::Stow => "stow",
        })
    }
}

/// A named peer that receives the node's results (SEG, report, overlay): a DICOM node by
/// C-STORE (`kind = "dimse"`, the default) or a DICOMweb archive by STOW-RS
/// (`kind = "stow"`). The loader checks that each entry has the keys of its kind and none
/// of the other's.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    /// The name pipelines use in `output.destinations`.
    pub name: String,
    /// DIMSE or STOW-RS.
    #[serde(default)]
    pub kind: DestinationKind,
    /// DIMSE: the peer's AE title (our called AE).
    #[serde(default)]
    pub ae_title: Option<AeTitle>,
    /// DIMSE: host name or IP address of the peer.
    #[serde(default)]
    pub host: Option<String>,
    /// DIMSE: the peer's DICOM port.
    #[serde(default)]
    pub port: Option<u16>,
    /// DIMSE: calling AE title we present; default `node.ae_title`. The peer must know it
    /// (Orthanc: `DicomModalities`).
    #[serde(default)]
    pub calling_ae: Option<AeTitle>,
    /// STOW-RS: the DICOMweb base URL (`http://host:8042/dicom-web`); instances are
    /// POSTed to `{url}/studies`.
    #[serde(default)]
    pub url: Option<crate::outbox::StowUrl>,
    /// STOW-RS: file holding a bearer token sent as `Authorization: Bearer …`. Never logged.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// STOW-RS: file holding one line `user:password` for HTTP basic authentication.
    /// Never logged.
    #[serde(default)]
    pub basic_auth_file: Option<PathBuf>,
    /// DIMSE: talk DICOM over TLS to this peer; STOW-RS with an `https` URL: whom to trust
    /// (`tls = { ca = …, certificate = …, private_key = … }`).
    #[serde(default)]
    pub tls: Option<crate::tls::PeerTlsConfig>,
}

impl DestinationConfig {
    /// A DIMSE destination's peer as `AE@HOST:PORT`; `None` for STOW-RS (or an entry the
    /// loader would refuse).
    pub fn peer(&self) -> Option<crate::ae::Peer> {
        match (self.kind, &self.ae_title, &self.host, self.port) {
            (DestinationKind::Dimse, Some(ae_title), Some(host), Some(port)) => {
                Some(crate::ae::Peer {
                    ae_title: ae_title.clone(),
                    host: host.clone(),
                    port,
                })
            }
            _ => None,
        }
    }

    /// Where it is, for messages: `AE@HOST:PORT` or the URL.
    pub fn address(&self) -> String {
        match (self.peer(), &self.url) {
            (Some(peer), _) => peer.to_string(),
            (None, Some(url)) => url.to_string(),
            (None, None) => format!("destination {:?}", self.name),
        }
    }

    /// Kind-specific checks; `key` builds the error's key from a field name.
    fn validate(&self, key: impl Fn(&str) -> String) -> Result<(), (String, String)> {
        let name = &self.name;
        let misplaced = |field: &str, present: bool, other: DestinationKind| {
            if present {
                Err((
                    key(field),
                    format!(
                        "destination {name:?} is kind = \"{}\", but {field} belongs to \
                         kind = \"{other}\": remove it or change kind",
                        self.kind
                    ),
                ))
            } else {
                Ok(())
            }
        };
        match self.kind {
            DestinationKind::Dimse => {
                for (field, present) in [
                    ("url", self.url.is_some()),
                    ("token_file", self.token_file.is_some()),
                    ("basic_auth_file", self.basic_auth_file.is_some()),
                ] {
                    misplaced(field, present, DestinationKind::Stow)?;
                }
                if self.ae_title.is_none() {
                    return Err((
                        key("ae_title"),
                        format!("destination {name:?} needs the peer's AE title"),
                    ));
                }
                if self.host.as_deref().is_none_or(|h| h.trim().is_empty()) {
                    return Err((key("host"), format!("destination {name:?} needs a host")));
                }
                match self.port {
                    None => Err((
                        key("port"),
                        format!("destination {name:?} needs the peer's DICOM port"),
                    )),
                    Some(0) => Err((
                        key("port"),
                        format!("destination {name:?}: port 0 is not a DICOM port"),
                    )),
                    Some(_) => Ok(()),
                }
            }
            DestinationKind::Stow => {
                for (field, present) in [
                    ("ae_title", self.ae_title.is_some()),
                    ("host", self.host.is_some()),
                    ("port", self.port.is_some()),
                    ("calling_ae", self.calling_ae.is_some()),
                ] {
                    misplaced(field, present, DestinationKind::Dimse)?;
                }
                let Some(url) = &self.url else {
                    return Err((
                        key("url"),
                        format!(
                            "destination {name:?} is kind = \"stow\" and needs the DICOMweb \
                             base URL (e.g. url = \"http://127.0.0.1:8042/dicom-web\")"
                        ),
                    ));
                };
                match (url.scheme, &self.tls) {
                    (crate::outbox::Scheme::Https, None) => {
                        return Err((
                            key("tls"),
                            format!(
                                "destination {name:?}: an https URL needs tls = {{ ca = … }} \
                                 naming the CA file to trust (/etc/ssl/certs/ca-certificates.crt \
                                 for public certificates)"
                            ),
                        ));
                    }
                    (crate::outbox::Scheme::Http, Some(_)) => {
                        return Err((
                            key("tls"),
                            format!(
                                "destination {name:?}: tls applies to https URLs only; {url} is http"
                            ),
                        ));
                    }
                    _ => {}
                }
                match (&self.token_file, &self.basic_auth_file) {
                    (Some(_), Some(_)) => Err((
                        key("basic_auth_file"),
                        format!(
                            "destination {name:?}: give token_file or basic_auth_file, not both"
                        ),
                    )),
                    (Some(file), None) => crate::outbox::StowAuth::bearer_from_file(file)
                        .map(drop)
                        .map_err(|why| (key("token_file"), why)),
                    (None, Some(file)) => crate::outbox::StowAuth::basic_from_file(file)
                        .map(drop)
                        .map_err(|why| (key("basic_auth_file"), why)),
                    (None, None) => Ok(()),
                }
            }
        }
    }
}

/// How the outbox retries a delivery that failed.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// Delay before the first retry; each further retry doubles it (with ±20 % jitter).
    pub initial_delay_seconds: u64,
    /// The delay between retries never exceeds this.
    pub max_delay_seconds: u64,
    /// Attempts in all (the first send included); after the last failure the delivery is
    /// dead-lettered with an error line and stays visible in `segnode status`.
    pub max_attempts: u32,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            initial_delay_seconds: 2,
            max_delay_seconds: 300,
            max_attempts: 10,
        }
    }
}

/// The segmentation side of the node.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelinesConfig {
    /// Pipelines to run (names of `<definitions_dir>/<name>.toml`, or built-in ones).
    /// Empty: the node only receives and stores.
    pub enabled: Vec<String>,
    /// Folder of pipeline definitions. Relative paths resolve like `node.data_dir`.
    pub definitions_dir: PathBuf,
    /// Folder the pipelines' model files are relative to. Resolved like `node.data_dir`.
    pub models_dir: PathBuf,
    /// Local folder destination: every SEG is written here, under its study UID.
    /// Relative paths resolve against `node.data_dir`.
    pub results_dir: PathBuf,
    /// Jobs waiting to run at most; past it the assembler waits (back-pressure).
    pub job_queue_capacity: usize,
}

impl Default for PipelinesConfig {
    fn default() -> Self {
        Self {
            enabled: vec!["dce_breast".to_string()],
            definitions_dir: PathBuf::from("conf/pipelines"),
            models_dir: PathBuf::from("models"),
            results_dir: PathBuf::from("results"),
            job_queue_capacity: 64,
        }
    }
}

/// Identity and listening address.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Our AE title; associations must call it (or one of `ae_titles`) when
    /// `access.check_called_ae` is on. The node also presents it when it sends.
    pub ae_title: AeTitle,
    /// Further titles the node answers to, one per pipeline that senders address by title
    /// (`applies_to.called_ae_titles`); with `access.check_called_ae` on, any other called
    /// title is rejected.
    pub ae_titles: Vec<AeTitle>,
    /// Address to bind the DICOM listener to.
    pub bind: IpAddr,
    /// DICOM port (104 and 11112 are customary).
    pub port: u16,
    /// Where the spool (instances, index, outbox) lives. Relative paths resolve against
    /// the config file's folder, or the working directory for the embedded default.
    pub data_dir: PathBuf,
}

impl NodeConfig {
    /// Whether an association calling `called_ae` calls this node: `ae_title` or one of
    /// `ae_titles` (AE titles compare without their padding spaces, case-sensitively).
    pub fn answers_to(&self, called_ae: &str) -> bool {
        let called_ae = called_ae.trim();
        std::iter::once(&self.ae_title)
            .chain(&self.ae_titles)
            .any(|title| title.as_str() == called_ae)
    }

    /// Every title the node answers to, `ae_title` first, for messages.
    pub fn titles(&self) -> Vec<&str> {
        std::iter::once(&self.ae_title)
            .chain(&self.ae_titles)
            .map(AeTitle::as_str)
            .collect()
    }
}

impl Default for NodeConfig {
    /// README's documented defaults, as the embedded `conf/segnode.toml` spells them out.
    fn default() -> Self {
        Self {
            ae_title: AeTitle::parse("SEGNODE").expect("a valid AE title"),
            ae_titles: Vec::new(),
            bind: default_bind(),
            port: 11112,
            data_dir: PathBuf::from("segnode-data"),
        }
    }
}

/// Bounds on associations and I/O.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Associations served at once; further ones wait for a slot.
    pub max_associations: usize,
    /// Largest PDU we accept and announce (bytes).
    pub max_pdu_length: u32,
    /// A peer silent for longer than this during an association is aborted.
    pub read_timeout_seconds: u64,
    /// A write to a peer that does not drain within this is aborted.
    pub write_timeout_seconds: u64,
    /// Time to establish an outgoing association.
    pub connect_timeout_seconds: u64,
    /// ARTIM (PS3.8 9.1.5): a connection must complete its A-ASSOCIATE-RQ within this.
    pub artim_timeout_seconds: u64,
    /// Connections that have not finished negotiating, from all hosts. They do not take
    /// an association slot, so silent sockets cannot lock senders out.
    pub max_pending_associations: usize,
    /// Connections that have not finished negotiating, from one IP address; more from it
    /// are closed at once.
    pub max_pending_per_host: usize,
    /// A DIMSE message (command and data set) must arrive completely within this.
    pub message_timeout_seconds: u64,
    /// An association is aborted after this long, however busy.
    pub association_timeout_seconds: u64,
    /// Data set bytes held in memory while they arrive, all associations together (MiB).
    /// Past it, arriving data sets go to spill files instead; memory never grows beyond.
    pub memory_budget_mb: u64,
    /// A data set larger than this (MiB) is written to a spill file as it arrives instead of
    /// being held in memory.
    pub spill_above_mb: u64,
    /// Largest data set accepted in one C-STORE (MiB); larger ones are answered 0xA700.
    pub max_dataset_mb: u64,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            max_associations: 16,
            max_pdu_length: 131_072,
            read_timeout_seconds: 60,
            write_timeout_seconds: 60,
            connect_timeout_seconds: 10,
            artim_timeout_seconds: 10,
            max_pending_associations: 64,
            max_pending_per_host: 16,
            message_timeout_seconds: 600,
            association_timeout_seconds: 7200,
            memory_budget_mb: 1024,
            spill_above_mb: 32,
            max_dataset_mb: 4096,
        }
    }
}

impl NetworkConfig {
    /// Read timeout as a duration.
    pub fn read_timeout(&self) -> Duration {
        Duration::from_secs(self.read_timeout_seconds)
    }
    /// Write timeout as a duration.
    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.write_timeout_seconds)
    }
    /// Connect timeout as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_seconds)
    }
    /// ARTIM timeout as a duration.
    pub fn artim_timeout(&self) -> Duration {
        Duration::from_secs(self.artim_timeout_seconds)
    }
    /// Message time limit as a duration.
    pub fn message_timeout(&self) -> Duration {
        Duration::from_secs(self.message_timeout_seconds)
    }
    /// Association time limit as a duration.
    pub fn association_timeout(&self) -> Duration {
        Duration::from_secs(self.association_timeout_seconds)
    }
}

/// Spool settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Refuse C-STOREs (status A700) while the data folder's file system has less free space.
    pub min_free_disk_mb: u64,
    /// Size of one instance-journal segment, in MiB (`<data>/journal/`, two of them on disk
    /// normally). An instance is acknowledged once it is appended to the journal and flushed;
    /// its file and index row follow on the filer thread. 0: no journal; every instance's
    /// file and index row are fsynced before its acknowledgement (slower: three flushes).
    /// An instance larger than a segment is filed that way too.
    pub journal_segment_mb: u64,
    /// SOP classes accepted for storage, by keyword ("MR") or UID. Empty: the default list
    /// in `uids::STORAGE_CLASSES`.
    pub accepted_sop_classes: Vec<String>,
    /// A Deflated Explicit VR data set may inflate to at most this (MiB): deflate bombs
    /// are refused with 0xA700 while they are inflated, never held whole.
    pub max_inflated_mb: u64,
}

impl StorageConfig {
    /// The checks every received data set passes before it is parsed.
    pub fn untrusted_limits(&self) -> crate::untrusted::Limits {
        crate::untrusted::Limits {
            max_inflated_bytes: self.max_inflated_mb.saturating_mul(1024 * 1024),
            ..crate::untrusted::Limits::default()
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            min_free_disk_mb: 1024,
            journal_segment_mb: 64,
            accepted_sop_classes: Vec::new(),
            max_inflated_mb: 256,
        }
    }
}

/// Association access control.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// Reject associations whose called AE title is not ours (`node.ae_title` or one of
    /// `node.ae_titles`).
    pub check_called_ae: bool,
    /// Calling AEs allowed to associate. Empty: any calling AE (logged as a warning).
    pub allow: Vec<AllowedPeer>,
}

impl Default for AccessConfig {
    fn default() -> Self {
        Self {
            check_called_ae: true,
            allow: Vec::new(),
        }
    }
}

/// One entry of the calling-AE allow-list.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AllowedPeer {
    /// The calling AE title the peer uses.
    pub ae_title: AeTitle,
    /// If set, the peer must also connect from this address.
    #[serde(default)]
    pub host: Option<IpAddr>,
}

fn default_bind() -> IpAddr {
    IpAddr::from([0, 0, 0, 0])
}

impl Config {
    /// The embedded default config; relative paths resolve against the working directory.
    pub fn embedded_default() -> Result<Self, ConfigError> {
        Self::from_toml(EMBEDDED_DEFAULT, "<embedded conf/segnode.toml>", None)
    }

    /// Load and validate a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string(), path.parent())
    }

    /// Parse and validate config text. `base` is the folder relative paths resolve against.
    pub fn from_toml(text: &str, file: &str, base: Option<&Path>) -> Result<Self, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        if let Some(base) = base {
            for dir in [
                &mut cfg.node.data_dir,
                &mut cfg.pipelines.definitions_dir,
                &mut cfg.pipelines.models_dir,
            ] {
                if dir.is_relative() {
                    *dir = base.join(&*dir);
                }
            }
            cfg.resolve_security_paths(base);
            let destination_files = cfg
                .destinations
                .iter_mut()
                .flat_map(|d| [d.token_file.as_mut(), d.basic_auth_file.as_mut()]);
            for file in [cfg.http.token_file.as_mut()]
                .into_iter()
                .chain(destination_files)
                .flatten()
                .filter(|f| f.is_relative())
            {
                *file = base.join(&*file);
            }
        }
        cfg.validate(file)?;
        Ok(cfg)
    }

    /// Checks that serde cannot express.
    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            file: file.to_string(),
            key: key.to_string(),
            reason,
        };
        if self.network.max_associations == 0 {
            return Err(invalid(
                "network.max_associations",
                "must be at least 1".into(),
            ));
        }
        if !(4096..=16 * 1024 * 1024).contains(&self.network.max_pdu_length) {
            return Err(invalid(
                "network.max_pdu_length",
                format!(
                    "{} is outside 4096..=16777216 bytes",
                    self.network.max_pdu_length
                ),
            ));
        }
        for (key, secs) in [
            (
                "network.read_timeout_seconds",
                self.network.read_timeout_seconds,
            ),
            (
                "network.write_timeout_seconds",
                self.network.write_timeout_seconds,
            ),
            (
                "network.connect_timeout_seconds",
                self.network.connect_timeout_seconds,
            ),
            (
                "network.artim_timeout_seconds",
                self.network.artim_timeout_seconds,
            ),
        ] {
            if secs == 0 || secs > 3600 {
                return Err(invalid(key, format!("{secs} s is outside 1..=3600")));
            }
        }
        let n = &self.network;
        for (key, value, range) in [
            (
                "network.message_timeout_seconds",
                n.message_timeout_seconds,
                1..=86_400,
            ),
            (
                "network.association_timeout_seconds",
                n.association_timeout_seconds,
                1..=604_800,
            ),
            (
                "network.max_pending_associations",
                n.max_pending_associations as u64,
                1..=65_536,
            ),
            (
                "network.max_pending_per_host",
                n.max_pending_per_host as u64,
                1..=65_536,
            ),
            (
                "network.memory_budget_mb",
                n.memory_budget_mb,
                16..=1_048_576,
            ),
            ("network.spill_above_mb", n.spill_above_mb, 1..=4096),
            ("network.max_dataset_mb", n.max_dataset_mb, 1..=4096),
            (
                "storage.max_inflated_mb",
                self.storage.max_inflated_mb,
                1..=4096,
            ),
        ] {
            if !range.contains(&value) {
                return Err(invalid(
                    key,
                    format!("{value} is outside {}..={}", range.start(), range.end()),
                ));
            }
        }
        for (i, entry) in self.storage.accepted_sop_classes.iter().enumerate() {
            if uids::storage_class_uid(entry).is_none() {
                return Err(invalid(
                    &format!("storage.accepted_sop_classes[{i}]"),
                    format!("{entry:?} is neither a known keyword nor a valid UID"),
                ));
            }
        }
        if self.pipelines.job_queue_capacity == 0 {
            return Err(invalid(
                "pipelines.job_queue_capacity",
                "must be at least 1".into(),
            ));
        }
        if self.node.data_dir.as_os_str().is_empty() {
            return Err(invalid("node.data_dir", "must not be empty".into()));
        }
        if self.http.enabled {
            self.http
                .read_token()
                .map_err(|reason| invalid("http.token_file", reason))?;
        }
        self.validate_destinations(file)?;
        self.validate_security(file)
    }

    /// `[[destinations]]` and `[outbox]`.
    fn validate_destinations(&self, file: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            file: file.to_string(),
            key: key.to_string(),
            reason,
        };
        for (i, d) in self.destinations.iter().enumerate() {
            if d.name.trim().is_empty() {
                return Err(invalid(
                    &format!("destinations[{i}].name"),
                    "must not be empty".into(),
                ));
            }
            if self.destinations[..i].iter().any(|o| o.name == d.name) {
                return Err(invalid(
                    &format!("destinations[{i}].name"),
                    format!("{:?} is used by another destination", d.name),
                ));
            }
            d.validate(|field| format!("destinations[{i}].{field}"))
                .map_err(|(key, reason)| invalid(&key, reason))?;
        }
        let o = &self.outbox;
        if o.initial_delay_seconds == 0 || o.initial_delay_seconds > 86_400 {
            return Err(invalid(
                "outbox.initial_delay_seconds",
                format!("{} s is outside 1..=86400", o.initial_delay_seconds),
            ));
        }
        if o.max_delay_seconds < o.initial_delay_seconds || o.max_delay_seconds > 7 * 86_400 {
            return Err(invalid(
                "outbox.max_delay_seconds",
                format!(
                    "{} s must lie between outbox.initial_delay_seconds ({}) and 604800",
                    o.max_delay_seconds, o.initial_delay_seconds
                ),
            ));
        }
        if o.max_attempts == 0 {
            return Err(invalid("outbox.max_attempts", "must be at least 1".into()));
        }
        Ok(())
    }

    /// The destination called `name`.
    pub fn destination(&self, name: &str) -> Option<&DestinationConfig> {
        self.destinations.iter().find(|d| d.name == name)
    }

    /// Where SEGs are written (the local folder destination).
    pub fn results_dir(&self) -> PathBuf {
        self.node.data_dir.join(&self.pipelines.results_dir)
    }

    /// SOP Class UIDs accepted for storage.
    pub fn accepted_sop_classes(&self) -> Vec<String> {
        if self.storage.accepted_sop_classes.is_empty() {
            uids::STORAGE_CLASSES
                .iter()
                .map(|c| c.uid.to_string())
                .collect()
        } else {
            self.storage
                .accepted_sop_classes
                .iter()
                .filter_map(|e| uids::storage_class_uid(e))
                .collect()
        }
    }

    /// Apply command-line overrides (they win over the file).
    pub fn override_with(
        &mut self,
        port: Option<u16>,
        ae_title: Option<AeTitle>,
        data_dir: Option<PathBuf>,
    ) {
        if let Some(port) = port {
            self.node.port = port;
        }
        if let Some(ae) = ae_title {
            self.node.ae_title = ae;
        }
        if let Some(dir) = data_dir {
            self.node.data_dir = dir;
        }
    }
}

#[cfg(test)]
mod readme_defaults {
    //! README's configuration table against the code's defaults.

    use super::*;

    /// Every leaf of a TOML value by dotted key.
    fn flatten(prefix: &str, value: &toml::Value, out: &mut Vec<(String, toml::Value)>) {
        match value {
            toml::Value::Table(table) => {
                for (key, v) in table {
                    let key = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    flatten(&key, v, out);
                }
            }
            other => out.push((prefix.to_string(), other.clone())),
        }
    }

    /// Does a README default cell say `value`? `None`: the cell is prose, not a value.
    fn cell_says(cell: &str, value: &toml::Value) -> Option<bool> {
        let cell = cell.trim().trim_matches('`').trim();
        if let Ok(parsed) = format!("v = {cell}").parse::<toml::Table>() {
            return Some(parsed["v"] == *value);
        }
        match value {
            toml::Value::String(s) => Some(s == cell),
            toml::Value::Array(a) if cell.starts_with("empty") => Some(a.is_empty()),
            _ => None,
        }
    }

    #[test]
    fn readme_table_states_the_code_defaults() {
        let readme = include_str!("../README.md");
        let mut defaults = Vec::new();
        flatten(
            "",
            &toml::Value::try_from(Config::default()).unwrap(),
            &mut defaults,
        );
        let mut checked = 0;
        let mut wrong = Vec::new();
        for line in readme.lines() {
            let cells: Vec<&str> = line.split(" | ").collect();
            let Some(key) = cells
                .first()
                .and_then(|c| c.trim_start_matches("| ").strip_prefix('`'))
                .and_then(|c| c.strip_suffix('`'))
            else {
                continue;
            };
            let Some((_, value)) = defaults.iter().find(|(k, _)| k == key) else {
                continue;
            };
            match cells.get(1).and_then(|cell| cell_says(cell, value)) {
                Some(true) => checked += 1,
                Some(false) => {
                    wrong.push(format!("{key}: README says {}, code has {value}", cells[1]))
                }
                None => {}
            }
        }
        assert!(
            wrong.is_empty(),
            "README's defaults differ:\n{}",
            wrong.join("\n")
        );
        assert!(checked >= 20, "only {checked} README rows were checked");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let cfg = Config::embedded_default().unwrap();
        assert_eq!(cfg.node.ae_title.as_str(), "SEGNODE");
        assert!(
            cfg.accepted_sop_classes()
                .contains(&uids::MR_IMAGE_STORAGE.to_string())
        );
    }

    #[test]
    fn errors_name_the_key() {
        let text = "[node]\nae_title='A'\nport=1\ndata_dir='d'\n[network]\nmax_associations=0\n";
        let err = Config::from_toml(text, "x.toml", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("x.toml") && err.contains("network.max_associations"),
            "{err}"
        );

        let text = "[node]\nae_title='WAY_TOO_LONG_AE_TITLE'\nport=1\ndata_dir='d'\n";
        let err = Config::from_toml(text, "x.toml", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ae_title") && err.contains("longer than 16"),
            "{err}"
        );

        let text = "[node]\nae_title='A'\nport=1\ndata_dir='d'\nprot=2\n";
        let err = Config::from_toml(text, "x.toml", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("prot"), "{err}");

        let text =
            "[node]\nae_title='A'\nport=1\ndata_dir='d'\n[storage]\naccepted_sop_classes=['MRI']\n";
        let err = Config::from_toml(text, "x.toml", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("accepted_sop_classes[0]"), "{err}");
    }

    #[test]
    fn destinations_and_outbox_are_checked() {
        let base = "[node]\nae_title='A'\nport=1\ndata_dir='d'\n";
        let dest =
            "[[destinations]]\nname='orthanc'\nae_title='ORTHANC'\nhost='127.0.0.1'\nport=4242\n";
        let cfg = Config::from_toml(
            &format!("{base}{dest}[outbox]\ninitial_delay_seconds=1\nmax_delay_seconds=5\nmax_attempts=3\n"),
            "x.toml",
            None,
        )
        .unwrap();
        let d = cfg.destination("orthanc").unwrap();
        assert_eq!(d.peer().unwrap().to_string(), "ORTHANC@127.0.0.1:4242");
        assert_eq!(d.kind, DestinationKind::Dimse);
        assert!(d.calling_ae.is_none());
        assert_eq!(cfg.outbox.max_attempts, 3);

        let err = Config::from_toml(&format!("{base}{dest}{dest}"), "x.toml", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("destinations[1].name"), "{err}");
        let err = Config::from_toml(
            &format!("{base}{dest}[outbox]\ninitial_delay_seconds=10\nmax_delay_seconds=5\n"),
            "x.toml",
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("outbox.max_delay_seconds"), "{err}");
        let err = Config::from_toml(&format!("{base}[outbox]\nmax_attempts=0\n"), "x.toml", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("outbox.max_attempts"), "{err}");
    }

    #[test]
    fn stow_destinations_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "t0k3n\n").unwrap();
        std::fs::write(dir.path().join("basic"), "user:pw\n").unwrap();
        let base = "[node]\nae_title='A'\nport=1\ndata_dir='d'\n[[destinations]]\nname='web'\n";
        let load =
            |extra: &str| Config::from_toml(&format!("{base}{extra}"), "x.toml", Some(dir.path()));
        let cfg = load("kind='stow'\nurl='http://127.0.0.1:8042/dicom-web'\ntoken_file='token'\n")
            .unwrap();
        let d = cfg.destination("web").unwrap();
        assert_eq!(d.kind, DestinationKind::Stow);
        assert!(d.peer().is_none());
        assert_eq!(d.address(), "http://127.0.0.1:8042/dicom-web");
        assert_eq!(
            d.token_file.as_deref(),
            Some(dir.path().join("token").as_path())
        );
        assert!(load("kind='stow'\nurl='http://h/'\nbasic_auth_file='basic'\n").is_ok());

        for (extra, key, words) in [
            ("kind='stow'\n", "destinations[0].url", "needs the DICOMweb"),
            ("kind='stow'\nurl='ftp://h/'\n", "url", "http"),
            (
                "kind='stow'\nurl='https://h/'\n",
                "destinations[0].tls",
                "ca",
            ),
            (
                "kind='stow'\nurl='http://h/'\nport=4242\n",
                "destinations[0].port",
                "kind = \"dimse\"",
            ),
            (
                "kind='stow'\nurl='http://h/'\nae_title='X'\n",
                "destinations[0].ae_title",
                "dimse",
            ),
            (
                "kind='stow'\nurl='http://h/'\ntoken_file='missing'\n",
                "destinations[0].token_file",
                "cannot read",
            ),
            (
                "kind='stow'\nurl='http://h/'\ntoken_file='token'\nbasic_auth_file='basic'\n",
                "destinations[0].basic_auth_file",
                "not both",
            ),
            (
                "kind='stow'\nurl='http://h/'\nbasic_auth_file='token'\n",
                "basic_auth_file",
                "user:password",
            ),
            (
                "ae_title='X'\nhost='h'\nport=1\nurl='http://h/'\n",
                "destinations[0].url",
                "kind = \"stow\"",
            ),
            ("ae_title='X'\nhost='h'\n", "destinations[0].port", "port"),
            ("kind='smtp'\n", "kind", "dimse"),
        ] {
            let err = load(extra).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(words), "{extra}: {err}");
            assert!(!err.contains("t0k3n") && !err.contains("user:pw"), "{err}");
        }
    }

    #[test]
    fn http_defaults_and_token_file_are_checked() {
        let base = "[node]\nae_title='A'\nport=1\ndata_dir='d'\n";
        let cfg = Config::from_toml(base, "x.toml", None).unwrap();
        assert!(cfg.http.enabled);
        assert_eq!(cfg.http.bind, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(cfg.http.port, 8080);
        assert!(cfg.http.token_file.is_none());
        let err = Config::from_toml(&format!("{base}[http]\nprot=1\n"), "x.toml", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("prot"), "{err}");
        let err = Config::from_toml(
            &format!("{base}[http]\ntoken_file='/nonexistent/token'\n"),
            "x.toml",
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("http.token_file"), "{err}");
    }

    #[test]
    fn relative_data_dir_resolves_against_the_file() {
        let text = "[node]\nae_title='A'\nport=1\ndata_dir='spool'\n";
        let cfg = Config::from_toml(text, "x.toml", Some(Path::new("/etc/segnode"))).unwrap();
        assert_eq!(cfg.node.data_dir, PathBuf::from("/etc/segnode/spool"));
    }
}

//! Delivery to a DICOMweb archive by STOW-RS (PS3.18 10.5, Store Instances).
//!
//! Each outbox row is one request: `POST {url}/studies` with one
//! `multipart/related; type="application/dicom"` part holding the row's file as written,
//! `Accept: application/dicom+json`. The study-level target `{url}/studies/{study}` would
//! add nothing: the instance carries its Study Instance UID, every archive (Orthanc,
//! dcm4chee, cloud APIs) accepts the study-less form, and the study-level form only adds
//! a way to fail (an archive refuses instances of another study).
//!
//! - `url`: the validated base URL.
//! - `auth`: bearer token / basic credentials read from files, never logged.
//! - `multipart`: the request body.
//! - `http`: one bounded HTTP/1.1 exchange over TCP or rustls.
//! - `response`: the Store Instances Response and the verdict on our instance.

mod auth;
mod http;
mod multipart;
mod response;
mod url;

use std::path::Path;
use std::sync::Arc;

pub use auth::StowAuth;
pub use response::Stored;
pub use url::{Scheme, StowUrl};

use super::failure::DeliveryFailure;
use crate::config::{DestinationConfig, NetworkConfig};

/// Largest STOW-RS answer we read: the response for one instance is a few hundred bytes;
/// an archive that sends more is broken or hostile, and the attempt fails (transient).
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// A STOW-RS destination, ready to send to.
#[derive(Debug, Clone)]
pub struct StowTarget {
    url: StowUrl,
    auth: Option<StowAuth>,
    tls: Option<Arc<rustls::ClientConfig>>,
    limits: http::Limits,
}

impl StowTarget {
    /// The target for a `kind = "stow"` destination; the files it names (credentials, TLS)
    /// are read now. The config loader checked them, so an error here means a file changed
    /// since: the destination's deliveries fail with the reason until it is fixed.
    pub fn from_config(dest: &DestinationConfig, network: &NetworkConfig) -> Result<Self, String> {
        let url = dest.url.clone().ok_or_else(|| {
            format!(
                "destination {:?} is kind = \"stow\" without a url",
                dest.name
            )
        })?;
        let auth = match (&dest.token_file, &dest.basic_auth_file) {
            (Some(token), None) => Some(StowAuth::bearer_from_file(token)?),
            (None, Some(basic)) => Some(StowAuth::basic_from_file(basic)?),
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(format!(
                    "destination {:?} has both token_file and basic_auth_file",
                    dest.name
                ));
            }
        };
        let tls = match &dest.tls {
            Some(t) => Some(
                t.load()
                    .map_err(|e| format!("destination {:?} tls.{e}", dest.name))?
                    .config,
            ),
            None => None,
        };
        Ok(StowTarget {
            url,
            auth,
            tls,
            limits: http::Limits {
                connect: network.connect_timeout(),
                read: network.read_timeout(),
                write: network.write_timeout(),
                max_body: MAX_RESPONSE_BYTES,
            },
        })
    }

    /// The base URL, for messages.
    pub fn url(&self) -> &StowUrl {
        &self.url
    }

    /// Store the Part 10 file at `path`, whose SOP Instance UID is `sop_instance_uid`.
    pub async fn store(
        &self,
        path: &Path,
        sop_instance_uid: &str,
    ) -> Result<Stored, DeliveryFailure> {
        let file = tokio::fs::read(path).await.map_err(|e| {
            DeliveryFailure::permanent(format!(
                "cannot read the outbox file {}: {e}",
                path.display()
            ))
        })?;
        if file.get(128..132) != Some(b"DICM".as_slice()) {
            return Err(DeliveryFailure::permanent(format!(
                "the outbox file {} is not a DICOM Part 10 file",
                path.display()
            )));
        }
        let body = multipart::single_instance(&file);
        drop(file);
        let mut headers = vec![
            ("Content-Type", body.content_type.as_str()),
            ("Accept", "application/dicom+json"),
        ];
        if let Some(auth) = &self.auth {
            headers.push(("Authorization", auth.header_value()));
        }
        let target = self.url.studies_path();
        let rq = http::Request {
            target: &target,
            headers: &headers,
            body: &body.body,
        };
        let answer = http::post(&self.url, self.tls.as_ref(), &rq, self.limits)
            .await
            .map_err(|e| DeliveryFailure::transient(format!("STOW-RS {}: {e}", self.url)))?;
        response::judge(answer.status, &answer.body, sop_instance_uid).map_err(|mut f| {
            f.reason = format!("STOW-RS {}: {}", self.url, f.reason);
            f
        })
    }
}

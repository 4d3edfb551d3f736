//! Reading a STOW-RS answer (PS3.18 10.5.3): the HTTP status and the Store Instances
//! Response Module in `application/dicom+json`, and the verdict on our one instance.
//!
//! - The Failed SOP Sequence (0008,1198) naming our instance is a failure whatever the
//!   HTTP status; its Failure Reason (0008,1197) decides whether it is permanent (the
//!   same codes as a C-STORE status).
//! - A 2xx answer is a success only when the Referenced SOP Sequence (0008,1199) names
//!   our instance: anything less (no body, another instance, a body we cannot read) is
//!   transient, because resending the same SOP Instance UID is harmless.
//! - Any other status is classified by [`http_permanence`], with the server's own words
//!   (Orthanc: `Message`/`Details`, otherwise the start of the body) in the reason.
//!
//! The body reaching this module is already bounded by the HTTP reader; JSON nesting is
//! bounded by serde_json's recursion limit, so no answer can panic or exhaust the node.

use serde_json::Value;

use crate::dimse::Status;
use crate::outbox::failure::{
    DeliveryFailure, Permanence, http_permanence, sanitize, status_permanence,
};

const FAILED_SOP_SEQUENCE: &str = "00081198";
const REFERENCED_SOP_SEQUENCE: &str = "00081199";
const REFERENCED_SOP_INSTANCE_UID: &str = "00081155";
const FAILURE_REASON: &str = "00081197";
const WARNING_REASON: &str = "00081196";
/// Error Comment: not part of the STOW module, but some archives put their words there.
const ERROR_COMMENT: &str = "00000902";

/// The longest stretch of server text kept in a reason.
const MAX_TEXT: usize = 300;

/// What the destination said about our instance when it accepted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The HTTP status (200 or 202).
    pub http_status: u16,
    /// A Warning Reason (0008,1196) for our instance (e.g. 0xB000 coercion), if given.
    pub warning: Option<u16>,
}

/// Judge the answer `http_status` / `body` for the instance `sop_instance_uid`.
pub fn judge(
    http_status: u16,
    body: &[u8],
    sop_instance_uid: &str,
) -> Result<Stored, DeliveryFailure> {
    let parsed = parse(body);
    let failed_item = parsed
        .as_ref()
        .ok()
        .and_then(|module| find_item(module, FAILED_SOP_SEQUENCE, sop_instance_uid));
    if let Some(item) = failed_item {
        let reason = first_number(item, FAILURE_REASON).map(|c| Status(c as u16));
        let comment = first_string(item, ERROR_COMMENT)
            .map(|c| format!(": {}", sanitize(&c, MAX_TEXT)))
            .unwrap_or_default();
        let what = format!("HTTP {http_status}, the instance is in the Failed SOP Sequence");
        return Err(match reason {
            Some(status) => DeliveryFailure {
                permanence: status_permanence(status),
                reason: format!("{what} with failure reason {status}{comment}"),
            },
            // No reason given: the HTTP status is all we have.
            None => DeliveryFailure {
                permanence: non_success(http_status),
                reason: format!("{what} without a failure reason{comment}"),
            },
        });
    }
    if (200..300).contains(&http_status) {
        return match parsed {
            Ok(module) => match find_item(&module, REFERENCED_SOP_SEQUENCE, sop_instance_uid) {
                Some(item) => Ok(Stored {
                    http_status,
                    warning: first_number(item, WARNING_REASON).map(|c| c as u16),
                }),
                None => Err(DeliveryFailure::transient(format!(
                    "HTTP {http_status}, but the answer does not list the instance in its \
                     Referenced SOP Sequence: it is not known to be stored"
                ))),
            },
            Err(why) => Err(DeliveryFailure::transient(format!(
                "HTTP {http_status}, but the answer cannot be read ({why}): the instance is \
                 not known to be stored"
            ))),
        };
    }
    let permanence = non_success(http_status);
    let words = server_words(body);
    let hint = match http_status {
        401 | 403 => " (check token_file / basic_auth_file and the account's rights)",
        404 | 405 => {
            " (check the destination's url: it is the DICOMweb root, e.g. http://host:8042/dicom-web)"
        }
        300..=399 => " (redirects are not followed: put the final URL in the config)",
        _ => "",
    };
    Err(DeliveryFailure {
        permanence,
        reason: format!("HTTP {http_status}{hint}{words}"),
    })
}

fn non_success(http_status: u16) -> Permanence {
    if (200..300).contains(&http_status) {
        Permanence::Transient
    } else {
        http_permanence(http_status)
    }
}

/// The Store Instances Response Module: a JSON object (some servers wrap it in an array).
fn parse(body: &[u8]) -> Result<serde_json::Map<String, Value>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("empty body".into());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Array(mut items)) if items.len() == 1 => match items.pop() {
            Some(Value::Object(map)) => Ok(map),
            _ => Err("a JSON array that is not one data set".into()),
        },
        Ok(_) => Err("JSON that is not a DICOM JSON data set".into()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

/// The item of sequence `tag` whose Referenced SOP Instance UID is `uid`.
fn find_item<'a>(
    module: &'a serde_json::Map<String, Value>,
    tag: &str,
    uid: &str,
) -> Option<&'a serde_json::Map<String, Value>> {
    module
        .get(tag)?
        .get("Value")?
        .as_array()?
        .iter()
        .filter_map(Value::as_object)
        .find(|item| first_string(item, REFERENCED_SOP_INSTANCE_UID).as_deref() == Some(uid))
}

fn first_value<'a>(item: &'a serde_json::Map<String, Value>, tag: &str) -> Option<&'a Value> {
    item.get(tag)?.get("Value")?.as_array()?.first()
}

fn first_string(item: &serde_json::Map<String, Value>, tag: &str) -> Option<String> {
    first_value(item, tag)?
        .as_str()
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
}

/// A US value; tolerates a number sent as a string.
fn first_number(item: &serde_json::Map<String, Value>, tag: &str) -> Option<u64> {
    let v = first_value(item, tag)?;
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .filter(|n| *n <= u64::from(u16::MAX))
}

/// `: <what the server said>` for an error status: Orthanc's JSON error (`Message`,
/// `Details`), or the start of a text body; empty when there is nothing readable.
fn server_words(body: &[u8]) -> String {
    if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
        let text: Vec<String> = ["Message", "Details", "OrthancError"]
            .iter()
            .filter_map(|k| map.get(*k).and_then(Value::as_str))
            .map(|s| sanitize(s, MAX_TEXT))
            .filter(|s| !s.is_empty())
            .collect();
        if !text.is_empty() {
            return format!(": {}", text.join(" — "));
        }
    }
    let text = sanitize(
        &String::from_utf8_lossy(&body[..body.len().min(4 * MAX_TEXT)]),
        MAX_TEXT,
    );
    if text.is_empty() || text.starts_with('{') || text.starts_with('[') {
        String::new()
    } else {
        format!(": {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "1.2.826.0.1.3680043.10.1.99";

    fn item(uid: &str, extra: &str) -> String {
        format!(
            r#"{{"00081150":{{"vr":"UI","Value":["1.2.840.10008.5.1.4.1.1.66.4"]}},"00081155":{{"vr":"UI","Value":["{uid}"]}}{extra}}}"#
        )
    }

    #[test]
    fn our_instance_referenced_is_stored() {
        let body = format!(
            r#"{{"00081190":{{"vr":"UR","Value":["http://x/studies/1"]}},"00081199":{{"vr":"SQ","Value":[{}]}}}}"#,
            item(UID, r#","00081196":{"vr":"US","Value":[45056]}"#)
        );
        assert_eq!(
            judge(200, body.as_bytes(), UID),
            Ok(Stored {
                http_status: 200,
                warning: Some(0xB000)
            })
        );
        // An array around the data set, as some servers send.
        let wrapped = format!("[{body}]");
        assert!(judge(202, wrapped.as_bytes(), UID).is_ok());
    }

    #[test]
    fn failed_sop_sequence_decides_by_its_reason() {
        let failed = |reason: u16, status: u16| {
            let body = format!(
                r#"{{"00081198":{{"vr":"SQ","Value":[{}]}}}}"#,
                item(
                    UID,
                    &format!(r#","00081197":{{"vr":"US","Value":[{reason}]}}"#)
                )
            );
            judge(status, body.as_bytes(), UID).unwrap_err()
        };
        let e = failed(0xA900, 409);
        assert!(e.is_permanent(), "{e:?}");
        assert!(
            e.reason.contains("0xA900") && e.reason.contains("409"),
            "{e}"
        );
        assert!(failed(0xC000, 409).is_permanent());
        assert!(failed(0x0122, 202).is_permanent());
        // Out of resources, even inside a 409: the archive may make room.
        assert!(!failed(0xA700, 409).is_permanent());
        assert!(!failed(0x0110, 202).is_permanent());
    }

    #[test]
    fn a_success_that_does_not_confirm_our_instance_is_transient() {
        for body in [
            String::new(),
            "{}".to_string(),
            "<xml/>".to_string(),
            "null".to_string(),
            format!(
                r#"{{"00081199":{{"vr":"SQ","Value":[{}]}}}}"#,
                item("1.2.3", "")
            ),
            r#"{"00081199":{"vr":"SQ","Value":"not an array"}}"#.to_string(),
            r#"{"00081199":{"vr":"SQ","Value":[1,null,"x",[]]}}"#.to_string(),
        ] {
            let e = judge(200, body.as_bytes(), UID).unwrap_err();
            assert!(!e.is_permanent(), "{body}: {e:?}");
        }
    }

    #[test]
    fn error_statuses_keep_the_servers_words() {
        let e = judge(
            400,
            br#"{"HttpError":"Bad Request","Message":"Bad file format","Details":"Cannot parse\nit"}"#,
            UID,
        )
        .unwrap_err();
        assert!(e.is_permanent());
        assert!(
            e.reason.contains("Bad file format") && e.reason.contains("Cannot parse it"),
            "{e}"
        );
        assert!(
            judge(401, b"", UID)
                .unwrap_err()
                .reason
                .contains("token_file")
        );
        assert!(!judge(503, b"busy", UID).unwrap_err().is_permanent());
        assert!(!judge(429, b"", UID).unwrap_err().is_permanent());
        assert!(!judge(408, b"", UID).unwrap_err().is_permanent());
        let e = judge(409, b"", UID).unwrap_err();
        assert!(
            e.is_permanent(),
            "a 409 without a readable body is still a 4xx"
        );
    }

    #[test]
    fn hostile_bodies_never_panic() {
        let deep = "[".repeat(100_000);
        let long_text = "A".repeat(100_000);
        let bodies: Vec<Vec<u8>> = vec![
            deep.into_bytes(),
            long_text.into_bytes(),
            vec![0xFF, 0xFE, 0x00, 0x80],
            br#"{"00081198":{"vr":"SQ","Value":[{"00081155":{"Value":[null]},"00081197":{"Value":[-1]}}]}}"#.to_vec(),
            br#"{"00081198":{"vr":"SQ","Value":[{"00081155":{"Value":["1.2.826.0.1.3680043.10.1.99"]},"00081197":{"Value":[99999999]}}]}}"#.to_vec(),
        ];
        for body in bodies {
            for status in [200, 202, 409, 500] {
                let outcome = judge(status, &body, UID);
                assert!(outcome.is_err(), "{status}");
                assert!(outcome.unwrap_err().reason.chars().count() < 1000);
            }
        }
    }
}

//! Who may act: a request carries `Authorization: Bearer <token>` matching the configured
//! token (compared in constant time), or is refused with 401. Without a configured token
//! every request may act. Who asked is the peer address plus the optional `X-Operator`
//! header (a name for the log, not a credential).

use std::net::SocketAddr;

use axum::http::{HeaderMap, StatusCode, header};

use super::api::ApiError;

/// `X-Operator` values are cut to this length in the log.
const MAX_OPERATOR_NAME: usize = 64;

/// Who asked for an action, for the log line.
#[derive(Debug, Clone)]
pub struct Operator {
    /// The peer's address.
    pub remote: SocketAddr,
    /// The `X-Operator` header, printable ASCII only, or `-`.
    pub name: String,
}

impl std::fmt::Display for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} from {}", self.name, self.remote)
    }
}

/// Check the bearer token (when one is configured) and say who asked.
pub fn authorize(
    token: Option<&str>,
    headers: &HeaderMap,
    remote: SocketAddr,
) -> Result<Operator, ApiError> {
    let name: String = headers
        .get("x-operator")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.chars()
                .filter(|c| c.is_ascii_graphic() || *c == ' ')
                .take(MAX_OPERATOR_NAME)
                .collect()
        })
        .filter(|v: &String| !v.is_empty())
        .unwrap_or_else(|| "-".into());
    let operator = Operator { remote, name };
    let Some(expected) = token else {
        return Ok(operator);
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(given) if same(given.as_bytes(), expected.as_bytes()) => Ok(operator),
        Some(_) => Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "wrong bearer token (the one in http.token_file is needed)".into(),
        )),
        None => Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "operator actions need `Authorization: Bearer <token>` (the token in http.token_file)"
                .into(),
        )),
    }
}

/// Equal, in time that depends only on the lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, a.parse().unwrap());
        }
        h.insert(
            "x-operator",
            "night\u{7f}shift"
                .parse()
                .unwrap_or_else(|_| "nightshift".parse().unwrap()),
        );
        h
    }

    #[test]
    fn only_the_right_token_passes() {
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(authorize(None, &headers(None), peer).is_ok());
        assert!(authorize(Some("s3cret"), &headers(Some("Bearer s3cret")), peer).is_ok());
        for bad in [
            None,
            Some("Bearer s3cre"),
            Some("Bearer s3cret2"),
            Some("Basic s3cret"),
        ] {
            let err = authorize(Some("s3cret"), &headers(bad), peer).unwrap_err();
            assert_eq!(err.0, StatusCode::UNAUTHORIZED);
        }
    }
}

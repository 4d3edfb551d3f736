//! The credentials a STOW-RS destination asks for: a bearer token (`token_file`) or HTTP
//! basic authentication (`basic_auth_file`, one line `user:password`). They are read from
//! files so that the config (shown by `/api/config`) holds no secret, and they are never
//! logged: the type's `Debug` prints only which kind it is.

use std::path::Path;

/// The `Authorization` header of every request to one destination.
#[derive(Clone)]
pub struct StowAuth {
    kind: &'static str,
    header: String,
}

impl std::fmt::Debug for StowAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StowAuth({}, redacted)", self.kind)
    }
}

impl StowAuth {
    /// `Authorization: Bearer <token>` from the file's trimmed content.
    pub fn bearer_from_file(path: &Path) -> Result<Self, String> {
        let token = read_secret(path)?;
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "{} must hold one token without spaces or line breaks",
                path.display()
            ));
        }
        Ok(StowAuth {
            kind: "bearer",
            header: format!("Bearer {token}"),
        })
    }

    /// `Authorization: Basic <base64(user:password)>` from the file's one line.
    pub fn basic_from_file(path: &Path) -> Result<Self, String> {
        let line = read_secret(path)?;
        if line.contains(['\n', '\r']) {
            return Err(format!(
                "{} must hold one line user:password",
                path.display()
            ));
        }
        match line.split_once(':') {
            Some((user, _)) if !user.is_empty() => Ok(StowAuth {
                kind: "basic",
                header: format!("Basic {}", base64(line.as_bytes())),
            }),
            _ => Err(format!(
                "{} must hold user:password (the user part is empty or the ':' is missing)",
                path.display()
            )),
        }
    }

    /// The header value (only ever written to the request).
    pub(super) fn header_value(&self) -> &str {
        &self.header
    }
}

/// The file's content, surrounding white space trimmed; an empty file is an error.
fn read_secret(path: &Path) -> Result<String, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    // A credentials file is a line; anything large is the wrong file.
    if meta.len() > 64 * 1024 {
        return Err(format!(
            "{} is {} bytes: that is not a credentials file",
            path.display(),
            meta.len()
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(text.to_string())
}

/// Standard base64 with padding (RFC 4648 §4), for the basic-auth header.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
    }

    #[test]
    fn files_are_checked_and_secrets_stay_out_of_debug() {
        let dir = tempfile::tempdir().unwrap();
        let basic = dir.path().join("basic");
        std::fs::write(&basic, "orthanc:s3cret\n").unwrap();
        let auth = StowAuth::basic_from_file(&basic).unwrap();
        assert_eq!(
            auth.header_value(),
            format!("Basic {}", base64(b"orthanc:s3cret"))
        );
        assert!(!format!("{auth:?}").contains("s3cret"));
        let token = dir.path().join("token");
        std::fs::write(&token, "  abc.def  \n").unwrap();
        assert_eq!(
            StowAuth::bearer_from_file(&token).unwrap().header_value(),
            "Bearer abc.def"
        );
        std::fs::write(&token, "").unwrap();
        assert!(
            StowAuth::bearer_from_file(&token)
                .unwrap_err()
                .contains("empty")
        );
        std::fs::write(&basic, "no-colon").unwrap();
        assert!(StowAuth::basic_from_file(&basic).is_err());
        assert!(StowAuth::basic_from_file(&dir.path().join("missing")).is_err());
    }
}

//! The base URL of a DICOMweb service (`url` of a `kind = "stow"` destination), validated
//! when the config is loaded: `http` or `https`, a host, an optional port, an optional path
//! prefix (Orthanc: `/dicom-web`). No credentials in it (they go in `token_file` or
//! `basic_auth_file`, which are never logged), no query, no fragment.

use std::fmt;

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS (the destination's `tls.ca` says whom to trust).
    Https,
}

/// A parsed DICOMweb base URL.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct StowUrl {
    /// How to connect.
    pub scheme: Scheme,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port (80 or 443 when the URL gives none).
    pub port: u16,
    /// Path prefix without a trailing slash (`""` or `/dicom-web`).
    pub path: String,
}

impl StowUrl {
    /// Parse `scheme://host[:port][/path]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (scheme, rest) = if let Some(rest) = text.strip_prefix("http://") {
            (Scheme::Http, rest)
        } else if let Some(rest) = text.strip_prefix("https://") {
            (Scheme::Https, rest)
        } else {
            return Err(format!(
                "{text:?} is not an http:// or https:// URL (e.g. http://127.0.0.1:8042/dicom-web)"
            ));
        };
        if rest.contains(['?', '#']) {
            return Err(format!(
                "{text:?}: a query or fragment has no place in the base URL"
            ));
        }
        if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{text:?} contains white space"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(format!(
                "{:?}: credentials do not belong in the URL (they would be logged); use \
                 token_file or basic_auth_file",
                redact_userinfo(text)
            ));
        }
        let default_port = match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        let (host, port) = split_host_port(authority).map_err(|why| format!("{text:?}: {why}"))?;
        let port = match port {
            None => default_port,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{text:?}: port {p:?} is not a TCP port"))?,
        };
        if host.is_empty() {
            return Err(format!("{text:?} names no host"));
        }
        Ok(StowUrl {
            scheme,
            host: host.to_string(),
            port,
            path: path.trim_end_matches('/').to_string(),
        })
    }

    /// The request target of a Store Instances transaction: `{path}/studies`.
    pub fn studies_path(&self) -> String {
        format!("{}/studies", self.path)
    }

    /// The Host header value.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = match self.scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address needs its closing ']'")?;
        return match after {
            "" => Ok((host, None)),
            _ => after
                .strip_prefix(':')
                .map(|p| (host, Some(p)))
                .ok_or_else(|| format!("unexpected {after:?} after the IPv6 address")),
        };
    }
    Ok(match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

/// The URL with any `user:password@` replaced, for an error message.
fn redact_userinfo(text: &str) -> String {
    match (text.find("://"), text.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            format!("{}(redacted)@{}", &text[..s + 3], &text[at + 1..])
        }
        _ => text.to_string(),
    }
}

impl fmt::Display for StowUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        write!(f, "{scheme}://{}{}", self.host_header(), self.path)
    }
}

impl TryFrom<String> for StowUrl {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        StowUrl::parse(&text)
    }
}

impl From<StowUrl> for String {
    fn from(url: StowUrl) -> String {
        url.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_archives_use() {
        let u = StowUrl::parse("http://127.0.0.1:8042/dicom-web/").unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port, u.path.as_str()),
            (Scheme::Http, "127.0.0.1", 8042, "/dicom-web")
        );
        assert_eq!(u.studies_path(), "/dicom-web/studies");
        assert_eq!(u.to_string(), "http://127.0.0.1:8042/dicom-web");
        let u = StowUrl::parse("https://pacs.example.org").unwrap();
        assert_eq!((u.port, u.studies_path()), (443, "/studies".to_string()));
        assert_eq!(u.host_header(), "pacs.example.org");
        let u = StowUrl::parse("http://[::1]:8080/wado").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 8080));
        assert_eq!(u.host_header(), "[::1]:8080");
    }

    #[test]
    fn refuses_what_cannot_work_and_never_echoes_a_password() {
        for bad in [
            "ftp://x/",
            "127.0.0.1:8042",
            "http://",
            "http://host:0/",
            "http://host:99999/",
            "http://host/a?b=c",
            "http://ho st/",
        ] {
            assert!(StowUrl::parse(bad).is_err(), "{bad}");
        }
        let err = StowUrl::parse("https://alice:s3cret@pacs/dicom-web").unwrap_err();
        assert!(
            !err.contains("s3cret") && err.contains("basic_auth_file"),
            "{err}"
        );
    }
}

//! Validated identities of DICOM application entities: AE titles and network peers.
//!
//! Parsed once at the edge (config, CLI) so the rest of the code never meets a bad one.

use std::fmt;
use std::str::FromStr;

/// Why an AE title or peer address was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AeError {
    #[error("AE title must not be empty")]
    Empty,
    #[error("AE title {0:?} is longer than 16 characters")]
    TooLong(String),
    #[error("AE title {0:?} contains a backslash or control character")]
    BadCharacter(String),
    #[error("peer {0:?} is not of the form AE@HOST:PORT")]
    BadPeer(String),
    #[error("peer {0:?} has an invalid port")]
    BadPort(String),
}

/// An Application Entity title: 1–16 characters of the default repertoire, no backslash,
/// no control characters, not only spaces. Leading and trailing spaces are not significant
/// (PS3.5 6.2) and are trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AeTitle(String);

impl AeTitle {
    /// Parse and normalise an AE title.
    pub fn parse(raw: &str) -> Result<Self, AeError> {
        let trimmed = raw.trim_matches(|c| c == ' ' || c == '\0');
        if trimmed.is_empty() {
            return Err(AeError::Empty);
        }
        if trimmed.chars().count() > 16 {
            return Err(AeError::TooLong(raw.to_string()));
        }
        if trimmed
            .chars()
            .any(|c| c == '\\' || c.is_control() || !c.is_ascii())
        {
            return Err(AeError::BadCharacter(raw.to_string()));
        }
        Ok(Self(trimmed.to_string()))
    }

    /// The title without padding.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AeTitle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for AeTitle {
    type Err = AeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for AeTitle {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for AeTitle {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        AeTitle::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A remote DICOM node: the AE title it answers to and where it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Called AE title of the remote node.
    pub ae_title: AeTitle,
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl Peer {
    /// `host:port`, as a socket address string.
    pub fn socket_addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for Peer {
    type Err = AeError;
    /// Parses `AE@HOST:PORT` (the form dicom-rs and this CLI use).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ae, addr) = s
            .split_once('@')
            .ok_or_else(|| AeError::BadPeer(s.to_string()))?;
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| AeError::BadPeer(s.to_string()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(AeError::BadPeer(s.to_string()));
        }
        let port: u16 = port.parse().map_err(|_| AeError::BadPort(s.to_string()))?;
        if port == 0 {
            return Err(AeError::BadPort(s.to_string()));
        }
        Ok(Peer {
            ae_title: AeTitle::parse(ae)?,
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.ae_title, self.socket_addr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ae_titles_are_trimmed_and_checked() {
        assert_eq!(AeTitle::parse("  SEGNODE ").unwrap().as_str(), "SEGNODE");
        assert_eq!(AeTitle::parse(""), Err(AeError::Empty));
        assert_eq!(AeTitle::parse("    "), Err(AeError::Empty));
        assert!(matches!(
            AeTitle::parse("ABCDEFGHIJKLMNOPQ"),
            Err(AeError::TooLong(_))
        ));
        assert!(matches!(
            AeTitle::parse("A\\B"),
            Err(AeError::BadCharacter(_))
        ));
    }

    #[test]
    fn peers_parse_from_ae_at_host_port() {
        let p: Peer = "ORTHANC@127.0.0.1:4242".parse().unwrap();
        assert_eq!(p.ae_title.as_str(), "ORTHANC");
        assert_eq!(p.socket_addr(), "127.0.0.1:4242");
        let v6: Peer = "PACS@[::1]:104".parse().unwrap();
        assert_eq!(v6.socket_addr(), "[::1]:104");
        assert!("ORTHANC127.0.0.1:4242".parse::<Peer>().is_err());
        assert!("ORTHANC@127.0.0.1:0".parse::<Peer>().is_err());
        assert!("ORTHANC@host:x".parse::<Peer>().is_err());
    }
}

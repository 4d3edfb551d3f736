//! The body of a STOW-RS Store Instances request (PS3.18 10.5.1.1): one
//! `multipart/related; type="application/dicom"` part holding the instance's Part 10 file
//! byte for byte (preamble, meta group and data set, as the outbox wrote it).

use std::hash::{DefaultHasher, Hash, Hasher};

/// A request body and the Content-Type that names its boundary.
#[derive(Debug)]
pub struct Multipart {
    /// `multipart/related; type="application/dicom"; boundary=…`.
    pub content_type: String,
    /// The encoded parts.
    pub body: Vec<u8>,
}

/// Wrap one Part 10 file. The boundary is derived from the file (deterministic, no random
/// source) and changed until it does not occur in the file, as RFC 2046 requires; each
/// try is a fresh 128-bit hash, so the bounded loop practically never runs twice.
pub fn single_instance(file: &[u8]) -> Multipart {
    let mut boundary = String::new();
    for salt in 0u32..64 {
        boundary = boundary_for(file, salt);
        if !contains(file, boundary.as_bytes()) {
            break;
        }
    }
    let mut body = Vec::with_capacity(file.len() + 2 * boundary.len() + 64);
    body.extend_from_slice(b"--");
    body.extend_from_slice(boundary.as_bytes());
    body.extend_from_slice(b"\r\nContent-Type: application/dicom\r\n\r\n");
    body.extend_from_slice(file);
    body.extend_from_slice(b"\r\n--");
    body.extend_from_slice(boundary.as_bytes());
    body.extend_from_slice(b"--\r\n");
    Multipart {
        content_type: format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
        body,
    }
}

fn boundary_for(file: &[u8], salt: u32) -> String {
    let mut parts = [0u64; 2];
    for (i, part) in parts.iter_mut().enumerate() {
        let mut h = DefaultHasher::new();
        (salt, i, file.len()).hash(&mut h);
        file[..file.len().min(4096)].hash(&mut h);
        file[file.len().saturating_sub(4096)..].hash(&mut h);
        *part = h.finish();
    }
    format!("segnode-{:016x}{:016x}", parts[0], parts[1])
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_part_framed_by_the_boundary_in_the_content_type() {
        let file = b"\0\0\0\0DICMpayload\r\n--not-a-boundary".to_vec();
        let m = single_instance(&file);
        let boundary = m
            .content_type
            .split("boundary=")
            .nth(1)
            .expect("boundary parameter")
            .to_string();
        assert!(
            m.content_type
                .starts_with("multipart/related; type=\"application/dicom\"")
        );
        assert!(boundary.len() <= 70, "RFC 2046 limit");
        let head = format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n");
        let tail = format!("\r\n--{boundary}--\r\n");
        assert!(m.body.starts_with(head.as_bytes()));
        assert!(m.body.ends_with(tail.as_bytes()));
        assert_eq!(&m.body[head.len()..m.body.len() - tail.len()], &file[..]);
        // Deterministic: a resend is the same request.
        assert_eq!(single_instance(&file).content_type, m.content_type);
    }

    #[test]
    fn a_file_containing_the_boundary_gets_another_one() {
        // Only the ends and the length are hashed: a large file can embed, in its middle,
        // the very boundary its first try would give.
        let mut file = vec![7u8; 20_000];
        let first = boundary_for(&file, 0);
        file[10_000..10_000 + first.len()].copy_from_slice(first.as_bytes());
        assert_eq!(boundary_for(&file, 0), first);
        let m = single_instance(&file);
        let boundary = m.content_type.split("boundary=").nth(1).unwrap();
        assert_ne!(boundary, first);
        assert!(!contains(&file, boundary.as_bytes()));
    }
}

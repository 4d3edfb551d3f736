//! Bounded label values for what peers control: a SOP class or transfer syntax becomes a
//! keyword from the node's own lists (else `other`), a calling AE title is kept only when
//! the node knows it (an `[[access.allow]]` entry, or one of the first few seen when anyone
//! may store), a DIMSE status is its hex code. No UID ever becomes a label.

use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::uids;

/// Calling AE titles kept as labels when the node has no allow-list; later ones are `other`.
pub const MAX_OPEN_CALLING_AES: usize = 32;

/// The label for a SOP Class UID: its keyword in `uids::STORAGE_CLASSES`, else `other`.
pub fn sop_class(uid: &str) -> &'static str {
    uids::STORAGE_CLASSES
        .iter()
        .find(|c| c.uid == uid)
        .map_or("other", |c| c.keyword)
}

/// The label for a transfer syntax UID: a short name for those the node accepts.
pub fn transfer_syntax(uid: &str) -> &'static str {
    match uid {
        uids::IMPLICIT_VR_LE => "implicit_le",
        uids::EXPLICIT_VR_LE => "explicit_le",
        uids::DEFLATED_EXPLICIT_VR_LE => "deflated",
        uids::JPEG_BASELINE => "jpeg_baseline",
        uids::JPEG_EXTENDED => "jpeg_extended",
        uids::JPEG_LOSSLESS_NH => "jpeg_lossless",
        uids::JPEG_LOSSLESS_SV1 => "jpeg_lossless_sv1",
        uids::JPEG_LS_LOSSLESS => "jpegls_lossless",
        uids::JPEG_LS_NEAR_LOSSLESS => "jpegls_near_lossless",
        uids::JPEG_2000_LOSSLESS => "j2k_lossless",
        uids::JPEG_2000 => "j2k",
        uids::RLE_LOSSLESS => "rle",
        _ => "other",
    }
}

/// The label for a DIMSE status: `0x0000`, `0xA700`, …
pub fn status(code: u16) -> String {
    format!("0x{code:04X}")
}

/// Which calling AE titles may appear as label values.
#[derive(Default)]
pub struct CallingAes {
    inner: Mutex<CallingAesState>,
}

#[derive(Default)]
struct CallingAesState {
    /// From `[[access.allow]]`: exactly these, nothing else.
    configured: Option<BTreeSet<String>>,
    /// Without an allow-list: the first [`MAX_OPEN_CALLING_AES`] seen.
    seen: BTreeSet<String>,
}

impl CallingAes {
    /// Use the node's allow-list (empty: anyone may store, the first few seen are kept).
    pub fn configure(&self, allowed: impl IntoIterator<Item = String>) {
        let allowed: BTreeSet<String> = allowed.into_iter().collect();
        let mut state = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        state.configured = (!allowed.is_empty()).then_some(allowed);
        state.seen.clear();
    }

    /// The label for `ae`.
    pub fn label(&self, ae: &str) -> String {
        let ae = ae.trim();
        let mut state = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(configured) = &state.configured {
            return if configured.contains(ae) {
                ae.to_string()
            } else {
                "other".into()
            };
        }
        if state.seen.contains(ae) {
            return ae.to_string();
        }
        if state.seen.len() < MAX_OPEN_CALLING_AES {
            state.seen.insert(ae.to_string());
            return ae.to_string();
        }
        "other".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_values_are_bounded() {
        assert_eq!(sop_class(uids::MR_IMAGE_STORAGE), "MR");
        assert_eq!(sop_class("1.2.3.4.5"), "other");
        assert_eq!(transfer_syntax("1.2.3"), "other");
        assert_eq!(status(0xA700), "0xA700");
        let aes = CallingAes::default();
        aes.configure(["ORTHANC".to_string()]);
        assert_eq!(aes.label("ORTHANC "), "ORTHANC");
        assert_eq!(aes.label("EVIL"), "other");
        aes.configure(Vec::new());
        for i in 0..MAX_OPEN_CALLING_AES {
            assert_eq!(aes.label(&format!("AE{i}")), format!("AE{i}"));
        }
        assert_eq!(aes.label("ONE_TOO_MANY"), "other");
    }
}

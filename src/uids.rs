//! The SOP classes and transfer syntaxes segnode speaks, in one place.
//!
//! The SCP accepts exactly the transfer syntaxes this build can decode (every codec is
//! compiled in: JPEG, JPEG-LS via CharLS, JPEG 2000 via OpenJPEG, RLE, deflate), so an
//! accepted instance can always reach the pipeline.

/// Verification SOP Class (C-ECHO).
pub const VERIFICATION: &str = "1.2.840.10008.1.1";
/// MR Image Storage.
pub const MR_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.4";
/// Enhanced MR Image Storage.
pub const ENHANCED_MR_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.4.1";
/// CT Image Storage.
pub const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
/// Ultrasound Image Storage.
pub const US_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.6.1";
/// Ultrasound Multi-frame Image Storage.
pub const US_MULTIFRAME_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.3.1";
/// Secondary Capture Image Storage.
pub const SECONDARY_CAPTURE_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.7";
/// Segmentation Storage (what segnode produces: BINARY segmentations).
pub const SEGMENTATION_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.66.4";
/// Label Map Segmentation Storage (Supplement 243: LABELMAP segmentations).
pub const LABEL_MAP_SEGMENTATION_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.66.7";

/// Implicit VR Little Endian: the default transfer syntax every node must support.
pub const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
/// Explicit VR Little Endian.
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
/// Deflated Explicit VR Little Endian.
pub const DEFLATED_EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1.99";
/// JPEG Baseline (Process 1).
pub const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
/// JPEG Extended (Process 2 & 4).
pub const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";
/// JPEG Lossless, Non-Hierarchical (Process 14).
pub const JPEG_LOSSLESS_NH: &str = "1.2.840.10008.1.2.4.57";
/// JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14, SV1).
pub const JPEG_LOSSLESS_SV1: &str = "1.2.840.10008.1.2.4.70";
/// JPEG-LS Lossless.
pub const JPEG_LS_LOSSLESS: &str = "1.2.840.10008.1.2.4.80";
/// JPEG-LS Lossy (Near-Lossless).
pub const JPEG_LS_NEAR_LOSSLESS: &str = "1.2.840.10008.1.2.4.81";
/// JPEG 2000 (Lossless Only).
pub const JPEG_2000_LOSSLESS: &str = "1.2.840.10008.1.2.4.90";
/// JPEG 2000.
pub const JPEG_2000: &str = "1.2.840.10008.1.2.4.91";
/// RLE Lossless.
pub const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";

/// Transfer syntaxes the SCP accepts, in the order it prefers them when a requestor proposes
/// several in one presentation context. Every one of them is decodable by this build.
pub const ACCEPTED_TRANSFER_SYNTAXES: &[&str] = &[
    EXPLICIT_VR_LE,
    IMPLICIT_VR_LE,
    DEFLATED_EXPLICIT_VR_LE,
    JPEG_LOSSLESS_SV1,
    JPEG_LOSSLESS_NH,
    JPEG_LS_LOSSLESS,
    JPEG_LS_NEAR_LOSSLESS,
    JPEG_2000_LOSSLESS,
    JPEG_2000,
    RLE_LOSSLESS,
    JPEG_BASELINE,
    JPEG_EXTENDED,
];

/// Uncompressed syntaxes an SCU proposes as fallbacks next to a file's own syntax.
pub const UNCOMPRESSED_TRANSFER_SYNTAXES: &[&str] = &[EXPLICIT_VR_LE, IMPLICIT_VR_LE];

/// A storage SOP class the node accepts by default: its UID and a short keyword usable
/// in the config file (`accepted_sop_classes = ["MR", "CT"]`).
#[derive(Debug, Clone, Copy)]
pub struct StorageClass {
    /// Keyword accepted in the config.
    pub keyword: &'static str,
    /// SOP Class UID.
    pub uid: &'static str,
}

/// Storage SOP classes a radiology node meets; the default accept list.
pub const STORAGE_CLASSES: &[StorageClass] = &[
    StorageClass {
        keyword: "MR",
        uid: MR_IMAGE_STORAGE,
    },
    StorageClass {
        keyword: "EnhancedMR",
        uid: ENHANCED_MR_IMAGE_STORAGE,
    },
    StorageClass {
        keyword: "EnhancedMRColor",
        uid: "1.2.840.10008.5.1.4.1.1.4.3",
    },
    StorageClass {
        keyword: "CT",
        uid: CT_IMAGE_STORAGE,
    },
    StorageClass {
        keyword: "EnhancedCT",
        uid: "1.2.840.10008.5.1.4.1.1.2.1",
    },
    StorageClass {
        keyword: "US",
        uid: US_IMAGE_STORAGE,
    },
    StorageClass {
        keyword: "USMultiframe",
        uid: US_MULTIFRAME_IMAGE_STORAGE,
    },
    StorageClass {
        keyword: "SecondaryCapture",
        uid: SECONDARY_CAPTURE_IMAGE_STORAGE,
    },
    StorageClass {
        keyword: "MultiframeGrayscaleByteSC",
        uid: "1.2.840.10008.5.1.4.1.1.7.2",
    },
    StorageClass {
        keyword: "MultiframeGrayscaleWordSC",
        uid: "1.2.840.10008.5.1.4.1.1.7.3",
    },
    StorageClass {
        keyword: "MultiframeTrueColorSC",
        uid: "1.2.840.10008.5.1.4.1.1.7.4",
    },
    StorageClass {
        keyword: "Segmentation",
        uid: SEGMENTATION_STORAGE,
    },
    StorageClass {
        keyword: "LabelMapSegmentation",
        uid: LABEL_MAP_SEGMENTATION_STORAGE,
    },
    StorageClass {
        keyword: "CR",
        uid: "1.2.840.10008.5.1.4.1.1.1",
    },
    StorageClass {
        keyword: "DX",
        uid: "1.2.840.10008.5.1.4.1.1.1.1",
    },
    StorageClass {
        keyword: "MG",
        uid: "1.2.840.10008.5.1.4.1.1.1.2",
    },
    StorageClass {
        keyword: "PT",
        uid: "1.2.840.10008.5.1.4.1.1.128",
    },
    StorageClass {
        keyword: "NM",
        uid: "1.2.840.10008.5.1.4.1.1.20",
    },
    StorageClass {
        keyword: "XA",
        uid: "1.2.840.10008.5.1.4.1.1.12.1",
    },
    StorageClass {
        keyword: "GrayscalePresentationState",
        uid: "1.2.840.10008.5.1.4.1.1.11.1",
    },
    StorageClass {
        keyword: "BasicTextSR",
        uid: "1.2.840.10008.5.1.4.1.1.88.11",
    },
    StorageClass {
        keyword: "EnhancedSR",
        uid: "1.2.840.10008.5.1.4.1.1.88.22",
    },
    StorageClass {
        keyword: "ComprehensiveSR",
        uid: "1.2.840.10008.5.1.4.1.1.88.33",
    },
    StorageClass {
        keyword: "KeyObjectSelection",
        uid: "1.2.840.10008.5.1.4.1.1.88.59",
    },
    StorageClass {
        keyword: "EncapsulatedPDF",
        uid: "1.2.840.10008.5.1.4.1.1.104.1",
    },
];

/// Resolve a config entry (keyword or dotted UID) to a SOP Class UID.
pub fn storage_class_uid(keyword_or_uid: &str) -> Option<String> {
    if let Some(c) = STORAGE_CLASSES
        .iter()
        .find(|c| c.keyword.eq_ignore_ascii_case(keyword_or_uid))
    {
        return Some(c.uid.to_string());
    }
    is_valid_uid(keyword_or_uid).then(|| keyword_or_uid.to_string())
}

/// Whether `uid` is a syntactically valid UID (PS3.5 9.1): digits and dots, components
/// without leading zeros, at most 64 characters.
pub fn is_valid_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 64
        && uid.split('.').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_digit())
                && (c == "0" || !c.starts_with('0'))
        })
}

/// Trim the trailing NUL or space padding DICOM puts on UI values.
pub fn trim_uid(raw: &str) -> &str {
    raw.trim_end_matches(['\0', ' '])
}

/// Root for UIDs segnode generates ("2.25." + a 128-bit random integer, PS3.5 B.2).
pub fn new_uid() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut x = nanos
        ^ (u128::from(std::process::id()) << 64)
        ^ COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed) as u128;
    // SplitMix-style mixing so consecutive UIDs differ in every digit.
    x ^= x >> 67;
    x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
    x ^= x >> 61;
    format!("2.25.{x}")
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Implementation Class UID written in the file meta of every file segnode writes and in
/// association requests ("2.25." form: no registered root needed).
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.177316412834596232101386373520151738921";
/// Implementation Version Name (at most 16 characters).
pub const IMPLEMENTATION_VERSION_NAME: &str = "SEGNODE_0.1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_syntax() {
        assert!(is_valid_uid("1.2.840.10008.1.1"));
        assert!(!is_valid_uid("1.2.03"));
        assert!(!is_valid_uid("1..2"));
        assert!(!is_valid_uid(""));
        let u = new_uid();
        assert!(is_valid_uid(&u), "{u}");
        assert_ne!(new_uid(), new_uid());
    }

    #[test]
    fn config_keywords_resolve() {
        assert_eq!(storage_class_uid("mr").as_deref(), Some(MR_IMAGE_STORAGE));
        assert_eq!(storage_class_uid("1.2.3").as_deref(), Some("1.2.3"));
        assert_eq!(storage_class_uid("NotAClass"), None);
    }
}

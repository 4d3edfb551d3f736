//! What goes on the wire for one file: the accepted presentation context to use, and the
//! data set bytes in that context's transfer syntax.
//!
//! When the peer accepted the file's own transfer syntax, the data set bytes after the file
//! meta group are sent exactly as stored. Otherwise the data set is converted to the
//! accepted uncompressed syntax: re-encoded when the file is uncompressed, decoded first
//! when its pixel data is compressed (every codec this build has). Data never goes out in a
//! syntax the peer did not accept; when no conversion is possible the instance fails with
//! the reason.

use std::io::Cursor;

use dicom_encoding::TransferSyntaxIndex;
use dicom_object::{FileMetaTable, OpenFileOptions};
use dicom_pixeldata::Transcode;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use super::FileInfo;
use super::association::AcceptedContext;
use crate::error_chain::error_chain;
use crate::uids::UNCOMPRESSED_TRANSFER_SYNTAXES;

/// A data set ready to send.
#[derive(Debug)]
pub(crate) struct Payload {
    /// The data set, encoded in the chosen context's transfer syntax.
    pub dataset: Vec<u8>,
    /// Whether it had to be converted from the file's own transfer syntax.
    pub converted: bool,
}

/// Pick the accepted context to send `info` on: the file's own transfer syntax when the
/// peer accepted it, else an uncompressed one we can convert to (Explicit VR LE first).
pub(crate) fn choose_context<'a>(
    info: &FileInfo,
    accepted: &'a [AcceptedContext],
) -> Result<&'a AcceptedContext, String> {
    let for_class: Vec<&AcceptedContext> = accepted
        .iter()
        .filter(|c| c.abstract_syntax == info.sop_class_uid)
        .collect();
    if for_class.is_empty() {
        return Err(format!(
            "the peer accepted no presentation context for SOP class {} (it does not store this kind of object)",
            info.sop_class_uid
        ));
    }
    if let Some(c) = for_class
        .iter()
        .find(|c| c.transfer_syntax == info.transfer_syntax)
    {
        return Ok(c);
    }
    let offered: Vec<&str> = for_class
        .iter()
        .map(|c| c.transfer_syntax.as_str())
        .collect();
    let Some(source) = TransferSyntaxRegistry.get(&info.transfer_syntax) else {
        return Err(format!(
            "the file's transfer syntax {} is unknown to this build and the peer accepted only {}",
            info.transfer_syntax,
            offered.join(", ")
        ));
    };
    if source.is_encapsulated_pixel_data() && !source.can_decode_all() {
        return Err(format!(
            "the peer does not accept {} ({}) and this build cannot decode it to {}",
            source.name(),
            source.uid(),
            offered.join(", ")
        ));
    }
    for target in UNCOMPRESSED_TRANSFER_SYNTAXES {
        if let Some(c) = for_class.iter().find(|c| c.transfer_syntax == *target) {
            return Ok(c);
        }
    }
    Err(format!(
        "the peer accepted SOP class {} only in {}, which segnode cannot convert {} to",
        info.sop_class_uid,
        offered.join(", "),
        source.name()
    ))
}

/// Read `info`'s file and produce its data set in `target_ts`.
pub(crate) fn load(info: &FileInfo, target_ts: &str) -> Result<Payload, String> {
    let mut bytes = std::fs::read(&info.path).map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() < 132 || &bytes[128..132] != b"DICM" {
        return Err("no longer a DICOM file (no \"DICM\" after the preamble)".into());
    }
    let mut cursor = Cursor::new(&bytes[128..]);
    let meta = FileMetaTable::from_reader(&mut cursor)
        .map_err(|e| format!("broken file meta group: {e}"))?;
    let file_ts = meta.transfer_syntax().to_string();
    if meta.media_storage_sop_instance_uid() != info.sop_instance_uid {
        return Err("the file changed since it was scanned (different SOP Instance UID)".into());
    }
    if file_ts == target_ts {
        let start = 128 + cursor.position() as usize;
        bytes.drain(..start);
        return Ok(Payload {
            dataset: bytes,
            converted: false,
        });
    }
    convert(&bytes[128..], &file_ts, target_ts).map(|dataset| Payload {
        dataset,
        converted: true,
    })
}

/// Re-encode (and decode pixel data where needed) a Part 10 stream without its preamble.
fn convert(part10: &[u8], file_ts: &str, target_ts: &str) -> Result<Vec<u8>, String> {
    let target = TransferSyntaxRegistry
        .get(target_ts)
        .ok_or_else(|| format!("target transfer syntax {target_ts} is unknown to this build"))?;
    let mut obj = OpenFileOptions::new()
        .from_reader(part10)
        .map_err(|e| format!("cannot parse the data set ({file_ts}): {e}"))?;
    obj.transcode(target).map_err(|e| {
        format!(
            "cannot convert {file_ts} to {}: {}",
            target.name(),
            error_chain(&e)
        )
    })?;
    let mut out = Vec::with_capacity(part10.len());
    obj.write_dataset(&mut out)
        .map_err(|e| format!("cannot encode the data set as {}: {e}", target.name()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uids::{EXPLICIT_VR_LE, IMPLICIT_VR_LE, JPEG_LS_LOSSLESS, MR_IMAGE_STORAGE};

    fn info(ts: &str) -> FileInfo {
        FileInfo {
            path: "x.dcm".into(),
            sop_class_uid: MR_IMAGE_STORAGE.into(),
            sop_instance_uid: "1.2.3".into(),
            transfer_syntax: ts.into(),
        }
    }

    fn ctx(id: u8, class: &str, ts: &str) -> AcceptedContext {
        AcceptedContext {
            id,
            abstract_syntax: class.into(),
            transfer_syntax: ts.into(),
        }
    }

    #[test]
    fn own_syntax_first_then_explicit_then_implicit() {
        let accepted = [
            ctx(1, MR_IMAGE_STORAGE, IMPLICIT_VR_LE),
            ctx(3, MR_IMAGE_STORAGE, EXPLICIT_VR_LE),
        ];
        assert_eq!(
            choose_context(&info(IMPLICIT_VR_LE), &accepted).unwrap().id,
            1
        );
        assert_eq!(
            choose_context(&info(EXPLICIT_VR_LE), &accepted).unwrap().id,
            3
        );
        assert_eq!(
            choose_context(&info(JPEG_LS_LOSSLESS), &accepted)
                .unwrap()
                .id,
            3
        );
        let only_implicit = [ctx(1, MR_IMAGE_STORAGE, IMPLICIT_VR_LE)];
        assert_eq!(
            choose_context(&info(JPEG_LS_LOSSLESS), &only_implicit)
                .unwrap()
                .id,
            1
        );
    }

    #[test]
    fn no_context_for_the_class_or_unknown_syntax_fails_with_a_reason() {
        let accepted = [ctx(1, "1.2.840.10008.5.1.4.1.1.2", EXPLICIT_VR_LE)];
        let e = choose_context(&info(EXPLICIT_VR_LE), &accepted).unwrap_err();
        assert!(e.contains("no presentation context"), "{e}");
        let accepted = [ctx(1, MR_IMAGE_STORAGE, EXPLICIT_VR_LE)];
        let e = choose_context(&info("1.2.3.4.5.6"), &accepted).unwrap_err();
        assert!(e.contains("unknown"), "{e}");
    }
}

//! Finding what to send: DICOM Part 10 files named directly or found under folders
//! (recursively, in name order), each probed for the identity in its file meta group.
//!
//! A file is DICOM when it has the 128-byte preamble followed by "DICM". Files found in a
//! folder that are not DICOM are skipped with a logged reason; a file named explicitly that
//! is not DICOM is a failure, because the operator asked for it.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use dicom_object::FileMetaTable;
use tracing::{debug, info};

/// Media Storage Directory Storage (DICOMDIR): a file-set index, never sent.
const MEDIA_STORAGE_DIRECTORY: &str = "1.2.840.10008.1.3.10";

/// The identity of a DICOM file, from its file meta group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Where it is.
    pub path: PathBuf,
    /// Media Storage SOP Class UID (0002,0002).
    pub sop_class_uid: String,
    /// Media Storage SOP Instance UID (0002,0003).
    pub sop_instance_uid: String,
    /// Transfer Syntax UID (0002,0010): how the data set in the file is encoded.
    pub transfer_syntax: String,
}

/// Why a file cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// Not a DICOM Part 10 file (or a DICOMDIR); skipped when found in a folder.
    #[error("not a DICOM file: {0}")]
    NotDicom(String),
    /// A DICOM file that cannot be read or whose file meta group is broken.
    #[error("{0}")]
    Unreadable(String),
}

/// What [`collect_dicom_files`] found.
#[derive(Debug, Clone, Default)]
pub struct Collected {
    /// DICOM files to send, in the order found.
    pub files: Vec<FileInfo>,
    /// Files in folders that are not DICOM, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
    /// Paths that do not exist, cannot be read, or were named explicitly but are not DICOM.
    pub failed: Vec<(PathBuf, String)>,
}

/// Walk `paths` (files or folders, folders recursively, entries in name order) and probe
/// every file. Symlinks are followed; a folder reached twice is walked once.
pub fn collect_dicom_files(paths: &[PathBuf]) -> Collected {
    let mut out = Collected::default();
    let mut seen_dirs = HashSet::new();
    let mut seen_files = HashSet::new();
    for path in paths {
        match std::fs::metadata(path) {
            Err(e) => out
                .failed
                .push((path.clone(), format!("cannot access: {e}"))),
            Ok(m) if m.is_dir() => walk(path, &mut seen_dirs, &mut seen_files, &mut out),
            Ok(_) => {
                if seen_files.insert(canonical(path)) {
                    match probe_file(path) {
                        Ok(info) => out.files.push(info),
                        Err(e) => out.failed.push((path.clone(), e.to_string())),
                    }
                }
            }
        }
    }
    out
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn walk(
    dir: &Path,
    seen_dirs: &mut HashSet<PathBuf>,
    seen_files: &mut HashSet<PathBuf>,
    out: &mut Collected,
) {
    if !seen_dirs.insert(canonical(dir)) {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            out.failed
                .push((dir.to_path_buf(), format!("cannot list folder: {e}")));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in entries {
        match entry {
            Ok(e) => paths.push(e.path()),
            Err(e) => out
                .failed
                .push((dir.to_path_buf(), format!("cannot list folder: {e}"))),
        }
    }
    paths.sort();
    for path in paths {
        match std::fs::metadata(&path) {
            Err(e) => out.failed.push((path, format!("cannot access: {e}"))),
            Ok(m) if m.is_dir() => walk(&path, seen_dirs, seen_files, out),
            Ok(m) if !m.is_file() => {
                debug!(path = %path.display(), "skipping: not a regular file");
                out.skipped.push((path, "not a regular file".into()));
            }
            Ok(_) => {
                if !seen_files.insert(canonical(&path)) {
                    continue;
                }
                match probe_file(&path) {
                    Ok(info) => out.files.push(info),
                    Err(ProbeError::NotDicom(reason)) => {
                        info!(path = %path.display(), %reason, "skipping file that is not DICOM");
                        out.skipped.push((path, reason));
                    }
                    Err(e) => out.failed.push((path, e.to_string())),
                }
            }
        }
    }
}

/// Read a file's preamble and file meta group: is it DICOM, and what does it hold?
pub fn probe_file(path: &Path) -> Result<FileInfo, ProbeError> {
    let file = File::open(path).map_err(|e| ProbeError::Unreadable(format!("cannot open: {e}")))?;
    let mut reader = BufReader::with_capacity(8192, file);
    let mut head = [0u8; 132];
    let mut filled = 0;
    while filled < head.len() {
        match reader.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ProbeError::Unreadable(format!("cannot read: {e}"))),
        }
    }
    if filled < head.len() {
        return Err(ProbeError::NotDicom(format!(
            "only {filled} bytes, shorter than the 128-byte preamble and \"DICM\""
        )));
    }
    if &head[128..132] != b"DICM" {
        return Err(ProbeError::NotDicom(
            "no \"DICM\" after the 128-byte preamble".into(),
        ));
    }
    let meta = FileMetaTable::from_reader(std::io::Cursor::new(*b"DICM").chain(reader))
        .map_err(|e| ProbeError::Unreadable(format!("broken file meta group: {e}")))?;
    let info = FileInfo {
        path: path.to_path_buf(),
        sop_class_uid: meta.media_storage_sop_class_uid().to_string(),
        sop_instance_uid: meta.media_storage_sop_instance_uid().to_string(),
        transfer_syntax: meta.transfer_syntax().to_string(),
    };
    if info.sop_class_uid == MEDIA_STORAGE_DIRECTORY {
        return Err(ProbeError::NotDicom(
            "a DICOMDIR (media directory), not an instance".into(),
        ));
    }
    for (what, value) in [
        ("Media Storage SOP Class UID", &info.sop_class_uid),
        ("Media Storage SOP Instance UID", &info.sop_instance_uid),
        ("Transfer Syntax UID", &info.transfer_syntax),
    ] {
        if value.is_empty() {
            return Err(ProbeError::Unreadable(format!(
                "file meta group lacks {what}"
            )));
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_non_dicom_files_are_not_dicom() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, b"hello").unwrap();
        assert!(matches!(probe_file(&short), Err(ProbeError::NotDicom(_))));
        let long = dir.path().join("long.dcm");
        std::fs::write(&long, vec![0u8; 4096]).unwrap();
        assert!(matches!(probe_file(&long), Err(ProbeError::NotDicom(_))));
        let broken = dir.path().join("broken.dcm");
        let mut bytes = vec![0u8; 128];
        bytes.extend_from_slice(b"DICMxxxx");
        std::fs::write(&broken, bytes).unwrap();
        assert!(matches!(
            probe_file(&broken),
            Err(ProbeError::Unreadable(_))
        ));
    }

    #[test]
    fn folders_skip_what_files_fail() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let readme = dir.path().join("sub/README.txt");
        std::fs::write(&readme, b"not dicom").unwrap();
        let got = collect_dicom_files(&[dir.path().to_path_buf()]);
        assert!(got.files.is_empty() && got.failed.is_empty());
        assert_eq!(got.skipped.len(), 1);
        let got = collect_dicom_files(&[readme.clone(), dir.path().join("missing")]);
        assert_eq!(got.failed.len(), 2, "{got:?}");
    }
}

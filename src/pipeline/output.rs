//! What a job leaves in the results folder for delivery: the SEG, and the instances that
//! travel with it (a measurement report, an overlay series). Each one is written atomically
//! and then queued, one outbox row per instance and destination, in the transaction that
//! records the job done.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use dicom_object::{FileDicomObject, InMemDicomObject};

use crate::pipeline::run::JobError;

/// The role of an instance a job produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputKind {
    /// The DICOM SEG (always produced).
    Seg,
    /// The measurement report (Comprehensive 3D SR, TID 1500).
    Report,
    /// One image of the secondary-capture overlay series.
    Overlay,
}

impl OutputKind {
    /// The name stored in the outbox table and shown in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputKind::Seg => "seg",
            OutputKind::Report => "report",
            OutputKind::Overlay => "overlay",
        }
    }
}

impl fmt::Display for OutputKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored kind that this version does not know (a newer node's index).
#[derive(Debug, thiserror::Error)]
#[error("unknown output kind {0:?} (expected seg, report or overlay)")]
pub struct UnknownOutputKind(pub String);

impl FromStr for OutputKind {
    type Err = UnknownOutputKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "seg" => Ok(OutputKind::Seg),
            "report" => Ok(OutputKind::Report),
            "overlay" => Ok(OutputKind::Overlay),
            other => Err(UnknownOutputKind(other.to_string())),
        }
    }
}

/// One instance a job wrote, ready to be queued for its pipeline's destinations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputInstance {
    /// What it is.
    pub kind: OutputKind,
    /// The file in the results folder (it is the outbox copy: sent as it is, on every try).
    pub path: PathBuf,
    /// Its SOP Instance UID: the same on every attempt, so a destination stores it once.
    pub sop_instance_uid: String,
}

impl OutputInstance {
    /// `obj` written to `path` atomically, described for the outbox.
    pub fn write(
        kind: OutputKind,
        obj: &FileDicomObject<InMemDicomObject>,
        path: &Path,
    ) -> Result<Self, JobError> {
        write_dicom_atomically(obj, path)?;
        Ok(OutputInstance {
            kind,
            path: path.to_path_buf(),
            sop_instance_uid: sop_instance_uid(obj),
        })
    }
}

/// The SOP Instance UID from the file meta group, without DICOM padding.
pub fn sop_instance_uid(obj: &FileDicomObject<InMemDicomObject>) -> String {
    obj.meta()
        .media_storage_sop_instance_uid()
        .trim_end_matches('\0')
        .to_string()
}

/// Write `obj` to `out_path` so that a reader (or a crash) sees either no file or the whole
/// file: a `.part` file is written and fsynced, then renamed into place.
pub fn write_dicom_atomically(
    obj: &FileDicomObject<InMemDicomObject>,
    out_path: &Path,
) -> Result<(), JobError> {
    let err = |reason: String| JobError::Write {
        path: out_path.to_path_buf(),
        reason,
    };
    if let Some(parent) = out_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| err(e.to_string()))?;
    }
    let tmp = out_path.with_extension("dcm.part");
    obj.write_to_file(&tmp).map_err(|e| err(e.to_string()))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| err(e.to_string()))?;
    std::fs::rename(&tmp, out_path).map_err(|e| err(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_stored_names() {
        for kind in [OutputKind::Seg, OutputKind::Report, OutputKind::Overlay] {
            assert_eq!(kind.as_str().parse::<OutputKind>().unwrap(), kind);
        }
        assert!("sr".parse::<OutputKind>().is_err());
    }
}

//! What a job leaves in the results folder for delivery: the SEG, and the instances that
//! travel with it (a measurement report, an overlay series). Each one is written atomically
//! and then queued, one outbox row per instance and destination, in the transaction that
//! records the job done.

use std::path::{Path, PathBuf};

use dicom_object::{FileDicomObject, InMemDicomObject};

use crate::pipeline::job::JobError;

crate::stored_enum::stored_enum! {
    /// The role of an instance a job produced.
    pub enum OutputKind {
        /// The DICOM SEG (always produced).
        Seg = "seg",
        /// The measurement report (Comprehensive 3D SR, TID 1500).
        Report = "report",
        /// One image of the secondary-capture overlay series.
        Overlay = "overlay",
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
/// file, and so that the file is still there after a power loss once this returns: the
/// outbox row that points at it is committed next, and a durable row must never point at a
/// name the file system forgot. A `.part` file is written and fsynced, renamed into place,
/// and the folder holding it fsynced (the rename is an entry in that folder); a folder made
/// for it is fsynced into its own parent first.
pub fn write_dicom_atomically(
    obj: &FileDicomObject<InMemDicomObject>,
    out_path: &Path,
) -> Result<(), JobError> {
    write_atomically_with(&RealFs, obj, out_path)
}

/// The file-system steps of [`write_dicom_atomically`]: a seam, so a test can check their
/// order.
trait FsSteps {
    /// Make one folder (its parent exists).
    fn create_dir(&self, dir: &Path) -> std::io::Result<()>;
    /// Write the whole data set to `path`.
    fn write(&self, obj: &FileDicomObject<InMemDicomObject>, path: &Path) -> std::io::Result<()>;
    /// Flush a file's data and metadata.
    fn sync_file(&self, path: &Path) -> std::io::Result<()>;
    /// Rename within one folder.
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()>;
    /// Flush a folder's entries.
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()>;
}

/// The real file system.
struct RealFs;

impl FsSteps for RealFs {
    fn create_dir(&self, dir: &Path) -> std::io::Result<()> {
        match std::fs::create_dir(dir) {
            // Made meanwhile by another job's write: just as good.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
            other => other,
        }
    }
    fn write(&self, obj: &FileDicomObject<InMemDicomObject>, path: &Path) -> std::io::Result<()> {
        obj.write_to_file(path).map_err(std::io::Error::other)
    }
    fn sync_file(&self, path: &Path) -> std::io::Result<()> {
        std::fs::File::open(path)?.sync_all()
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }
}

fn write_atomically_with(
    fs: &dyn FsSteps,
    obj: &FileDicomObject<InMemDicomObject>,
    out_path: &Path,
) -> Result<(), JobError> {
    let err = |e: std::io::Error| JobError::Write {
        path: out_path.to_path_buf(),
        reason: e.to_string(),
    };
    let parent = out_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // The folders to make, outermost first; each is fsynced into its parent once made.
    let missing: Vec<&Path> = parent
        .ancestors()
        .take_while(|dir| !dir.as_os_str().is_empty() && !dir.is_dir())
        .collect();
    for dir in missing.into_iter().rev() {
        fs.create_dir(dir).map_err(err)?;
        let above = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs.sync_dir(above).map_err(err)?;
    }
    let tmp = out_path.with_extension("dcm.part");
    fs.write(obj, &tmp).map_err(err)?;
    fs.sync_file(&tmp).map_err(err)?;
    fs.rename(&tmp, out_path).map_err(err)?;
    fs.sync_dir(parent).map_err(err)?;
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

    /// Records each step, then does it for real.
    struct Recording(std::sync::Mutex<Vec<String>>, PathBuf);

    impl Recording {
        fn note(&self, step: &str, path: &Path) {
            let relative = path.strip_prefix(&self.1).unwrap_or(path);
            self.0
                .lock()
                .unwrap()
                .push(format!("{step} {}", relative.display()));
        }
    }

    impl FsSteps for Recording {
        fn create_dir(&self, dir: &Path) -> std::io::Result<()> {
            self.note("mkdir", dir);
            RealFs.create_dir(dir)
        }
        fn write(
            &self,
            obj: &FileDicomObject<InMemDicomObject>,
            path: &Path,
        ) -> std::io::Result<()> {
            self.note("write", path);
            RealFs.write(obj, path)
        }
        fn sync_file(&self, path: &Path) -> std::io::Result<()> {
            self.note("fsync", path);
            RealFs.sync_file(path)
        }
        fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
            self.note("rename", from);
            RealFs.rename(from, to)
        }
        fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
            self.note("fsync-dir", dir);
            RealFs.sync_dir(dir)
        }
    }

    fn instance() -> FileDicomObject<InMemDicomObject> {
        use dicom_object::FileMetaTableBuilder;
        InMemDicomObject::new_empty()
            .with_meta(
                FileMetaTableBuilder::new()
                    .media_storage_sop_class_uid(crate::uids::SEGMENTATION_STORAGE)
                    .media_storage_sop_instance_uid("1.2.3.4")
                    .transfer_syntax(crate::uids::EXPLICIT_VR_LE),
            )
            .unwrap()
    }

    #[test]
    fn the_file_and_every_folder_it_needs_are_durable_before_it_returns() {
        let root = tempfile::tempdir().unwrap();
        let fs = Recording(Default::default(), root.path().to_path_buf());
        let out = root.path().join("1.2.3/seg/x.dcm");
        write_atomically_with(&fs, &instance(), &out).unwrap();
        assert_eq!(
            *fs.0.lock().unwrap(),
            [
                "mkdir 1.2.3",
                "fsync-dir ",
                "mkdir 1.2.3/seg",
                "fsync-dir 1.2.3",
                "write 1.2.3/seg/x.dcm.part",
                "fsync 1.2.3/seg/x.dcm.part",
                "rename 1.2.3/seg/x.dcm.part",
                "fsync-dir 1.2.3/seg",
            ]
        );
        assert_eq!(
            sop_instance_uid(&dicom_object::open_file(&out).unwrap()),
            "1.2.3.4"
        );
        assert!(!out.with_extension("dcm.part").exists());

        // Into a folder that exists: no folder made, the rename still made durable.
        fs.0.lock().unwrap().clear();
        write_atomically_with(&fs, &instance(), &root.path().join("1.2.3/y.dcm")).unwrap();
        assert_eq!(
            *fs.0.lock().unwrap(),
            [
                "write 1.2.3/y.dcm.part",
                "fsync 1.2.3/y.dcm.part",
                "rename 1.2.3/y.dcm.part",
                "fsync-dir 1.2.3",
            ]
        );
    }
}

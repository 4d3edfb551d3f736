//! Writing instance files: to a temporary file, renamed into place, so a reader never sees
//! half a file. Filed [`Durability::Now`], the file and its directory are fsynced before
//! returning; filed [`Durability::Later`] (the journal holds the data set meanwhile), the
//! filer makes a segment's worth durable at once with [`sync_file_system`] before the
//! segment goes.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use dicom_object::meta::FileMetaTableBuilder;

use super::SpoolError;
use crate::ingest::InstanceHeader;
use crate::uids;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Where an instance lives, relative to the data folder.
pub fn instance_path(header: &InstanceHeader) -> PathBuf {
    PathBuf::from("instances")
        .join(&header.study_uid)
        .join(&header.series_uid)
        .join(format!("{}.dcm", header.sop_instance_uid))
}

/// When a written file must be on stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Before `write_part10` returns (file and directory fsynced).
    Now,
    /// Later, by [`sync_file_system`]; until then the journal holds the data set.
    Later,
}

/// Write `dataset` (already encoded in `transfer_syntax_uid`; read as a stream, so a
/// spilled data set is never held whole) as a Part 10 file at `final_path`. Returns the
/// file size.
pub fn write_part10(
    tmp_dir: &Path,
    final_path: &Path,
    header: &InstanceHeader,
    transfer_syntax_uid: &str,
    calling_ae: &str,
    dataset: &mut dyn std::io::Read,
    durability: Durability,
) -> Result<u64, SpoolError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SpoolError::Io { path, source }
    };
    let mut meta = FileMetaTableBuilder::new()
        .transfer_syntax(transfer_syntax_uid)
        .media_storage_sop_class_uid(header.sop_class_uid.as_str())
        .media_storage_sop_instance_uid(header.sop_instance_uid.as_str())
        .implementation_class_uid(uids::IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(uids::IMPLEMENTATION_VERSION_NAME);
    if !calling_ae.trim().is_empty() {
        meta = meta.source_application_entity_title(calling_ae.trim());
    }
    let meta = meta.build().map_err(|e| SpoolError::Unparseable {
        transfer_syntax: transfer_syntax_uid.to_string(),
        reason: format!("cannot build file meta: {e}"),
    })?;

    let tmp_path = tmp_dir.join(format!(
        "{}.{}.{}.part",
        header.sop_instance_uid,
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let file = File::create(&tmp_path).map_err(io(&tmp_path))?;
        let mut out = BufWriter::with_capacity(256 * 1024, file);
        out.write_all(&[0u8; 128]).map_err(io(&tmp_path))?;
        out.write_all(b"DICM").map_err(io(&tmp_path))?;
        meta.write(&mut out).map_err(|e| SpoolError::Io {
            path: tmp_path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        std::io::copy(dataset, &mut out).map_err(io(&tmp_path))?;
        let file = out.into_inner().map_err(|e| SpoolError::Io {
            path: tmp_path.clone(),
            source: e.into_error(),
        })?;
        if durability == Durability::Now {
            file.sync_all().map_err(io(&tmp_path))?;
        }
        let size = file.metadata().map_err(io(&tmp_path))?.len();

        let parent = final_path.parent().expect("instance paths have a parent");
        let created = create_dirs(parent)?;
        fs::rename(&tmp_path, final_path).map_err(io(final_path))?;
        if durability == Durability::Now {
            sync_dir(parent)?;
            for dir in created {
                if let Some(up) = dir.parent() {
                    sync_dir(up)?;
                }
            }
        }
        Ok(size)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp_path);
    }
    result
}

/// Create `dir` and missing ancestors; returns the ones created (deepest last) so their
/// parents' entries can be fsynced too.
fn create_dirs(dir: &Path) -> Result<Vec<PathBuf>, SpoolError> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.is_dir() {
            break;
        }
        missing.push(d.to_path_buf());
        cur = d.parent();
    }
    if missing.is_empty() {
        return Ok(missing);
    }
    fs::create_dir_all(dir).map_err(|source| SpoolError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    missing.reverse();
    Ok(missing)
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| SpoolError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

/// Make everything written [`Durability::Later`] under `root` durable: one `syncfs` of
/// the file system holding it (data, inodes and directory entries, then one device flush),
/// rather than an fsync per file and folder. `root_dir` is a descriptor of `root` kept open
/// since before the files were written: the kernel reports a write-back error to each
/// descriptor's `syncfs` once, and only errors after the descriptor was opened.
pub fn sync_file_system(root_dir: &File, root: &Path) -> Result<(), SpoolError> {
    use std::os::fd::AsRawFd;
    // SAFETY: syncfs on a descriptor we own; no memory is passed.
    if unsafe { libc::syncfs(root_dir.as_raw_fd()) } != 0 {
        return Err(SpoolError::Io {
            path: root.to_path_buf(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

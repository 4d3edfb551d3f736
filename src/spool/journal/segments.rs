//! The journal's segment files, in `<data>/journal/`: fixed-size files written full of
//! zeros when they are made, into which records (`record.rs`) are appended. Overwriting
//! blocks a file already owns changes no file-system metadata, so the flush of an append is
//! one data write and a device cache flush: the cheapest durable write there is, and the
//! only one on the C-STORE's path.
//!
//! A segment is named by its generation (`segment-<generation>.wal`); a segment whose
//! records are all filed is recycled under a new generation. The folder's `lock` keeps a
//! second node off the data folder.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

const ZERO_CHUNK: usize = 1 << 20;

/// A segment file's path for a generation.
pub fn segment_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("segment-{generation:016}.wal"))
}

/// The generations of the segments in `dir`, oldest first.
pub fn list_segments(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut generations = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(g) = name
            .strip_prefix("segment-")
            .and_then(|rest| rest.strip_suffix(".wal"))
            .and_then(|g| g.parse::<u64>().ok())
        {
            generations.push(g);
        }
    }
    generations.sort_unstable();
    Ok(generations)
}

/// Make a new segment of `bytes` bytes for `generation`: written full of zeros and fsynced
/// under a temporary name, then renamed into place and the directory fsynced, so a segment
/// that exists under its name is entirely allocated.
pub fn create_segment(dir: &Path, generation: u64, bytes: u64) -> std::io::Result<File> {
    let tmp = dir.join(format!("segment-{generation:016}.new"));
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    let zeros = vec![0u8; ZERO_CHUNK];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(ZERO_CHUNK as u64) as usize;
        file.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    file.sync_all()?;
    drop(file);
    let path = segment_path(dir, generation);
    fs::rename(&tmp, &path)?;
    sync_dir(dir)?;
    open_for_writing(&path)
}

/// Give a segment whose records are all filed a new generation (rename, directory fsync),
/// so it can be written again; its old records no longer count.
pub fn recycle_segment(dir: &Path, old: u64, new: u64) -> std::io::Result<File> {
    let path = segment_path(dir, new);
    fs::rename(segment_path(dir, old), &path)?;
    sync_dir(dir)?;
    open_for_writing(&path)
}

/// Open a segment for appending records: `O_DIRECT` where the file system supports it
/// (not tmpfs, for one), else through the page cache.
fn open_for_writing(path: &Path) -> std::io::Result<File> {
    let direct = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path);
    match direct {
        Ok(file) => Ok(file),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            OpenOptions::new().write(true).open(path)
        }
        Err(e) => Err(e),
    }
}

/// Take the journal for this process: an exclusive `flock` on `dir/lock`, held while the
/// returned file is open. Two nodes writing one journal would overwrite each other's
/// records, so the second is refused.
pub fn lock_exclusively(dir: &Path) -> std::io::Result<File> {
    use std::os::fd::AsRawFd;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))?;
    // SAFETY: flock on a descriptor we own; no memory is passed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let err = std::io::Error::last_os_error();
        return Err(if err.kind() == std::io::ErrorKind::WouldBlock {
            std::io::Error::new(
                err.kind(),
                "another segnode serve is using this data folder (its journal is locked); \
                 stop it or give this one its own --data-dir",
            )
        } else {
            err
        });
    }
    Ok(file)
}

/// Fsync a directory, so the entries made or renamed in it are durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

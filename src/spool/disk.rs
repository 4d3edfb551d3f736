//! Free-space floor: refuse new instances before the disk fills up, not after.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::SpoolError;

/// Bytes available to unprivileged users on the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let c_path = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains NUL"))?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is a valid NUL-terminated string and stat a properly sized out-parameter.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}

/// Fail with [`SpoolError::OutOfSpace`] when less than `floor` bytes are free.
pub fn ensure_free_space(dir: &Path, floor: u64) -> Result<(), SpoolError> {
    if floor == 0 {
        return Ok(());
    }
    let free = free_bytes(dir).map_err(|source| SpoolError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    if free < floor {
        return Err(SpoolError::OutOfSpace {
            dir: dir.to_path_buf(),
            free_mb: free / (1024 * 1024),
            floor_mb: floor / (1024 * 1024),
        });
    }
    Ok(())
}

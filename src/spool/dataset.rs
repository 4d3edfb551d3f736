//! A received data set: held in memory, or spilled to a file under the data folder's
//! `tmp/` while it arrived (a large one, or any once the node's memory budget for data sets
//! in flight is spent). Either way the spool stores it byte for byte as received.

use std::path::{Path, PathBuf};

/// The bytes of one received data set.
#[derive(Debug)]
pub enum Dataset {
    /// Held whole in memory.
    Memory(Vec<u8>),
    /// Written to a file as it arrived.
    Spilled(SpillFile),
}

impl Dataset {
    /// Its size in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Dataset::Memory(bytes) => bytes.len() as u64,
            Dataset::Spilled(file) => file.len,
        }
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<Vec<u8>> for Dataset {
    fn from(bytes: Vec<u8>) -> Self {
        Dataset::Memory(bytes)
    }
}

/// A data set in a file of its own under `tmp/`; the file is removed when this is dropped
/// (stored or refused, it is never needed again; a crash leaves it to the next start's
/// clean-up of `tmp/`).
#[derive(Debug)]
pub struct SpillFile {
    path: PathBuf,
    len: u64,
}

impl SpillFile {
    /// Take over a completely written spill file of `len` bytes.
    pub fn new(path: PathBuf, len: u64) -> Self {
        SpillFile { path, len }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for SpillFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

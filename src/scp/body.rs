//! A data set's bytes while they arrive: in memory while the node's memory budget has room
//! and the data set is small, else in a spill file under the spool's `tmp/`, else (too
//! large, or no disk for it) counted and discarded so the C-STORE can still be answered.
//! Memory held never exceeds what the budget granted: a buffer grows only by a lease.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::budget::{Lease, MemoryBudget};
use crate::spool::{Dataset, SpillFile, Spool, SpoolError};

/// How much disk a spill may write between two checks of the free-space floor.
const SPACE_CHECK_EVERY: u64 = 64 * 1024 * 1024;

static SPILL_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Where and how far data sets may grow.
#[derive(Clone)]
pub(crate) struct BodyLimits {
    /// The node's memory budget for data sets in flight.
    pub(crate) budget: Arc<MemoryBudget>,
    /// The spool (spill folder, disk floor).
    pub(crate) spool: Arc<Spool>,
    /// Larger data sets are spilled as they arrive.
    pub(crate) spill_above: u64,
    /// Larger data sets are discarded and answered 0xA700.
    pub(crate) max_bytes: u64,
}

/// Why a data set was discarded while it arrived.
#[derive(Debug)]
pub(crate) enum Discarded {
    /// It grew past `network.max_dataset_mb`.
    TooLarge { limit: u64 },
    /// It could not be spilled (disk floor reached, or a write failed).
    Spool(SpoolError),
}

/// A complete data set, or why it is not there.
#[derive(Debug)]
pub(crate) enum Received {
    /// All of it; `lease` is the memory it holds of the budget (given back when dropped,
    /// so keep it until the data set is stored).
    Complete { dataset: Dataset, lease: Lease },
    /// Discarded after `bytes` bytes.
    Discarded { bytes: u64, why: Discarded },
}

/// The bytes of one data set so far.
#[derive(Debug)]
pub(crate) enum Body {
    Memory {
        bytes: Vec<u8>,
        lease: Lease,
    },
    Spilling {
        out: BufWriter<File>,
        path: PathBuf,
        written: u64,
        checked_at: u64,
    },
    Discarding {
        received: u64,
        why: Discarded,
    },
}

impl Body {
    /// An empty body.
    pub(crate) fn new(limits: &BodyLimits) -> Self {
        Body::Memory {
            bytes: Vec::new(),
            lease: Lease::new(&limits.budget),
        }
    }

    /// Bytes received so far.
    pub(crate) fn received(&self) -> u64 {
        match self {
            Body::Memory { bytes, .. } => bytes.len() as u64,
            Body::Spilling { written, .. } => *written,
            Body::Discarding { received, .. } => *received,
        }
    }

    /// Add one fragment.
    pub(crate) fn push(&mut self, data: Vec<u8>, limits: &BodyLimits) {
        let total = self.received() + data.len() as u64;
        if total > limits.max_bytes {
            return self.discard(
                total,
                Discarded::TooLarge {
                    limit: limits.max_bytes,
                },
            );
        }
        match self {
            Body::Discarding { received, .. } => *received = total,
            Body::Memory { bytes, lease } => {
                if total <= limits.spill_above && grow(bytes, lease, &data) {
                    return;
                }
                let held = std::mem::take(bytes);
                self.spill(held, data, limits);
            }
            Body::Spilling {
                out,
                written,
                checked_at,
                ..
            } => {
                if let Err(why) = out.write_all(&data) {
                    return self.discard(total, Discarded::Spool(spill_error(limits, why)));
                }
                *written = total;
                if total - *checked_at >= SPACE_CHECK_EVERY {
                    *checked_at = total;
                    if let Err(e) = limits.spool.ensure_free_space() {
                        self.discard(total, Discarded::Spool(e));
                    }
                }
            }
        }
    }

    /// The data set is complete.
    pub(crate) fn finish(self, limits: &BodyLimits) -> Received {
        match self {
            Body::Memory { bytes, lease } => Received::Complete {
                dataset: Dataset::Memory(bytes),
                lease,
            },
            Body::Spilling {
                out, path, written, ..
            } => {
                let flushed = out.into_inner().map_err(|e| e.into_error());
                match flushed {
                    Ok(_file) => Received::Complete {
                        dataset: Dataset::Spilled(SpillFile::new(path, written)),
                        lease: Lease::new(&limits.budget),
                    },
                    Err(why) => {
                        let _ = std::fs::remove_file(&path);
                        Received::Discarded {
                            bytes: written,
                            why: Discarded::Spool(spill_error(limits, why)),
                        }
                    }
                }
            }
            Body::Discarding { received, why } => Received::Discarded {
                bytes: received,
                why,
            },
        }
    }

    /// Move what is held, and `data`, to a new spill file.
    fn spill(&mut self, held: Vec<u8>, data: Vec<u8>, limits: &BodyLimits) {
        let total = (held.len() + data.len()) as u64;
        if let Err(e) = limits.spool.ensure_free_space() {
            return self.discard(total, Discarded::Spool(e));
        }
        let path = limits.spool.spill_dir().join(format!(
            "spill-{}-{}",
            std::process::id(),
            SPILL_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = File::create(&path).and_then(|file| {
            let mut out = BufWriter::with_capacity(256 * 1024, file);
            out.write_all(&held)?;
            out.write_all(&data)?;
            Ok(out)
        });
        match written {
            Ok(out) => {
                // Replacing the memory body drops its lease: the budget gets its bytes back.
                *self = Body::Spilling {
                    out,
                    path,
                    written: total,
                    checked_at: total,
                };
            }
            Err(why) => {
                let _ = std::fs::remove_file(&path);
                self.discard(total, Discarded::Spool(spill_error(limits, why)));
            }
        }
    }

    fn discard(&mut self, received: u64, why: Discarded) {
        if let Body::Spilling { path, .. } = self {
            let _ = std::fs::remove_file(&*path);
        }
        *self = Body::Discarding { received, why };
    }
}

/// Append `data` to `bytes` if the lease can cover the capacity that needs; the buffer
/// grows geometrically, and the lease counts its capacity (what is really allocated).
fn grow(bytes: &mut Vec<u8>, lease: &mut Lease, data: &[u8]) -> bool {
    let needed = bytes.len() + data.len();
    if needed > bytes.capacity() {
        let target = needed.max(bytes.capacity() * 2);
        let granted = if lease.grow_to(target as u64) {
            target
        } else if lease.grow_to(needed as u64) {
            needed
        } else {
            return false;
        };
        bytes.reserve_exact(granted - bytes.len());
    }
    bytes.extend_from_slice(data);
    true
}

fn spill_error(limits: &BodyLimits, source: std::io::Error) -> SpoolError {
    SpoolError::Io {
        path: limits.spool.spill_dir(),
        source,
    }
}

//! The ingest contract between the SCP, the spool and the pipelines: what is known about a
//! received instance and where it came from.
//!
//! The SCP reads an [`InstanceHeader`] once (through the spool, which indexes it), and
//! emits an [`IngestEvent`] carrying it with its [`Origin`]: the association, the calling
//! AE that sent it and the called AE it was sent to. The spool records the origin beside
//! the instance so that instances read back at start-up route the same way; the pipelines
//! consume the events. None of these three modules imports another for these types.
//!
//! Files: `header` (the attributes read from the data set, the routing attributes),
//! `files` (DICOM Part 10 files found under folders: what `send` and `segment` read).

pub mod files;
mod header;

pub use header::{HeaderError, InstanceHeader, RULE_ATTRIBUTES};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

/// Where an instance came from. Pipelines route on the called AE
/// (`applies_to.called_ae_titles`), so one node can serve one AE title per pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    /// The association it arrived on, unique within one run of the node; `None` for an
    /// instance read back from the spool, which completes by its pipeline's stable time
    /// rather than by its association's release.
    pub association_id: Option<u64>,
    /// Calling AE title of the sender.
    pub calling_ae: String,
    /// Called AE title the sender addressed; empty when unknown (instances stored before
    /// the spool recorded it), which only pipelines without `called_ae_titles` accept.
    pub called_ae: String,
}

/// Something the ingest side tells the pipeline.
// The header is moved through a channel a few hundred times per study; boxing it would
// only add an allocation per instance.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum IngestEvent {
    /// An instance is durably stored (sent after the spool wrote it, before or after the
    /// C-STORE response; never for a failed store).
    InstanceStored {
        /// The association and AE titles it came with.
        origin: Origin,
        /// What was read from its data set.
        header: InstanceHeader,
        /// True when a stored copy of the same SOP instance was replaced.
        replaced: bool,
    },
    /// An association ended by A-RELEASE: the sender says it is done (for now).
    AssociationReleased {
        /// The association.
        association_id: u64,
        /// Its calling AE title.
        calling_ae: String,
        /// Studies it sent instances of.
        study_uids: Vec<String>,
    },
}

/// Where ingest events go: a bounded channel, and the number of events the SCP had to drop
/// because their consumer stalled. The instances of dropped events are safe in the spool;
/// the pipeline side notices the count grow and reads them back from there.
#[derive(Debug, Clone)]
pub struct IngestSink {
    /// The channel.
    pub tx: mpsc::Sender<IngestEvent>,
    /// Events dropped so far.
    pub dropped: Arc<AtomicU64>,
}

impl IngestSink {
    /// A sink on `tx` with no event dropped yet.
    pub fn new(tx: mpsc::Sender<IngestEvent>) -> Self {
        IngestSink {
            tx,
            dropped: Arc::default(),
        }
    }

    /// Count one event dropped because its consumer stalled.
    pub fn count_drop(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

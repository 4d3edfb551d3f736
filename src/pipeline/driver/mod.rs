//! The node's segmentation side: ingest events → assembler → bounded job queue → worker →
//! SEG (and its companions) in the results folder → outbox rows.
//!
//! - `assembling`: the assembler task. It owns the state machine, reads the spool back at
//!   start, sleeps until its next deadline and answers the admin API.
//! - `worker`: runs one job at a time (one model instance per device) in `spawn_blocking`,
//!   never on the async runtime, and records each outcome in the job table. A finished job
//!   is recorded done together with one outbox row per destination and instance, in one
//!   transaction, before anything is sent; the outbox sender is then woken.
//!
//! Loading the pipelines is [`load`](crate::pipeline::load), shared with `check-config`
//! and `segment`.

mod assembling;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::ingest::IngestSink;
use crate::pipeline::assembler::Assembler;
use crate::pipeline::control::PipelineControl;
use crate::pipeline::definition::PipelineDefinition;
use crate::pipeline::load::PipelineSet;
use crate::spool::Spool;

pub use assembling::GivenUp;
pub use worker::{CompletedJob, FailedJob, JobFailure};

/// Ingest events waiting for the assembler at most (the SCP waits, bounded, when full).
pub const EVENT_QUEUE_CAPACITY: usize = 4096;

/// Decided jobs the assembler holds beyond the worker's queue (`job_queue_capacity`)
/// before it waits for the worker: room for a burst of single-image jobs while a long
/// volume job runs.
pub const MAX_PENDING_JOBS: usize = 4096;

/// What the segmentation side did while the node ran.
#[derive(Debug, Default)]
pub struct DriverSummary {
    /// Jobs that produced a SEG.
    pub completed: Vec<CompletedJob>,
    /// Jobs that failed, with why.
    pub failed: Vec<FailedJob>,
    /// Studies given up by the assembler, with why.
    pub given_up: Vec<GivenUp>,
}

/// Start the assembler and the worker. Send ingest events to the returned sender; when
/// every sender is dropped, queued jobs finish and the handle yields the summary.
/// `outbox` is notified whenever a SEG has been queued for delivery.
pub fn spawn(
    config: &Config,
    spool: Arc<Spool>,
    pipelines: PipelineSet,
    outbox: Arc<Notify>,
) -> (IngestSink, JoinHandle<DriverSummary>) {
    let (sink, _control, handle) = spawn_with_control(config, spool, pipelines, outbox);
    (sink, handle)
}

/// [`spawn`], plus the handle the admin API uses to inspect the assembler, force studies
/// complete and re-run jobs.
pub fn spawn_with_control(
    config: &Config,
    spool: Arc<Spool>,
    pipelines: PipelineSet,
    outbox: Arc<Notify>,
) -> (IngestSink, PipelineControl, JoinHandle<DriverSummary>) {
    let (control, control_rx) = PipelineControl::channel();
    let (event_tx, event_rx) = mpsc::channel(EVENT_QUEUE_CAPACITY);
    let sink = IngestSink::new(event_tx);
    let (job_tx, job_rx) = mpsc::channel(config.pipelines.job_queue_capacity);
    let definitions: Vec<PipelineDefinition> =
        pipelines.iter().map(|p| p.definition.clone()).collect();
    // Studies are re-read back to the longest force timeout: older ones were decided.
    let recovery_window = Duration::from_secs(
        definitions
            .iter()
            .map(|d| d.completion.force_after_seconds)
            .max()
            .unwrap_or(0),
    );
    let assembler = tokio::spawn(assembling::run(assembling::AssemblerTask {
        events: event_rx,
        control: control_rx,
        dropped: sink.dropped.clone(),
        jobs: job_tx,
        assembler: Assembler::new(&definitions),
        spool: spool.clone(),
        recovery_window,
    }));
    let worker = tokio::spawn(worker::run(
        job_rx,
        worker::Worker {
            spool,
            pipelines,
            results_dir: config.results_dir(),
            outbox,
        },
    ));
    let handle = tokio::spawn(async move {
        let given_up = assembler.await.unwrap_or_default();
        let mut summary = worker.await.unwrap_or_default();
        summary.given_up = given_up;
        summary
    });
    (sink, control, handle)
}

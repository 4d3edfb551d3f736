//! The node's segmentation side: ingest events → assembler → bounded job queue → worker →
//! SEG in the results folder. The assembler task owns the state machine and sleeps until
//! its next deadline; the worker runs one job at a time (one model instance per device)
//! in `spawn_blocking`, never on the async runtime.
//!
//! Jobs are not yet durable: a job queued or running when the node stops is not resumed
//! (the study's instances are safe in the spool; the end-to-end issue adds the job table).
//! A finished job is recorded done together with one outbox row per destination of its
//! pipeline, in one transaction, before anything is sent; the outbox sender is then woken.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tracing::{Instrument, error, info, info_span, warn};

use crate::config::Config;
use crate::ingest::{IngestEvent, IngestSink};
use crate::metrics::{self, JobOutcome};
use crate::pipeline::assembler::{Assembler, Decision, InstanceSeen, JobSpec};
use crate::pipeline::control::{AssemblyView, Control, ForceResult, PipelineControl};
use crate::pipeline::definition::PipelineDefinition;
use crate::pipeline::output::{OutputInstance, OutputKind};
use crate::pipeline::post::Findings;
use crate::pipeline::recovery;
use crate::pipeline::run::{JobError, LoadedPipeline, run_job};
use crate::spool::Spool;

/// Ingest events waiting for the assembler at most (the SCP waits, bounded, when full).
pub const EVENT_QUEUE_CAPACITY: usize = 4096;
/// How often the assembler checks whether the SCP dropped events.
const RECONCILE_EVERY: Duration = Duration::from_secs(10);
/// How far before the last check the spool is read back (clock steps, slow stores).
const RECONCILE_MARGIN_MS: i64 = 60_000;

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Decided jobs the assembler holds beyond the worker's queue (`job_queue_capacity`)
/// before it waits for the worker: room for a burst of single-image jobs while a long
/// volume job runs.
pub const MAX_PENDING_JOBS: usize = 4096;

/// Why the pipelines could not start.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("pipeline {name}: {source}")]
    Definition {
        name: String,
        source: crate::config::ConfigError,
    },
    #[error(
        "pipeline {name}: {source} (build the models with `make models`, or fix pipelines.models_dir)"
    )]
    Load { name: String, source: JobError },
    #[error(
        "pipeline {pipeline}: output.destinations names {destination:?}, which is not a \
         [[destinations]] entry of the node config (configured: {configured})"
    )]
    UnknownDestination {
        pipeline: String,
        destination: String,
        configured: String,
    },
}

/// A finished job.
#[derive(Debug, Clone)]
pub struct CompletedJob {
    /// Pipeline name.
    pub pipeline: String,
    /// Study Instance UID.
    pub study_uid: String,
    /// The SEG written.
    pub seg_path: PathBuf,
    /// Its SOP Instance UID.
    pub seg_sop_instance_uid: String,
    /// The instances delivered with it (report, overlay).
    pub companions: Vec<OutputInstance>,
    /// Per segment label, what was found.
    pub findings: Vec<(String, Findings)>,
    /// Wall time of each stage.
    pub stages: Vec<(&'static str, Duration)>,
}

/// What the segmentation side did while the node ran.
#[derive(Debug, Clone, Default)]
pub struct DriverSummary {
    /// Jobs that produced a SEG.
    pub completed: Vec<CompletedJob>,
    /// Jobs that failed: (pipeline, study, reason).
    pub failed: Vec<(String, String, String)>,
    /// Studies given up: (pipeline, study, reason).
    pub given_up: Vec<(String, String, String)>,
}

/// Load every enabled pipeline (definition, model, warm-up). Blocking work runs off the
/// async runtime; an unusable pipeline stops the node at start-up with the reason.
pub async fn load_pipelines(config: &Config) -> Result<Vec<Arc<LoadedPipeline>>, DriverError> {
    let mut loaded = Vec::new();
    for name in &config.pipelines.enabled {
        let definition = PipelineDefinition::find(name, &config.pipelines.definitions_dir)
            .map_err(|source| DriverError::Definition {
                name: name.clone(),
                source,
            })?;
        // Every destination a pipeline names must be configured (before its model loads).
        if let Some((destination, configured)) = unknown_destination(config, &definition) {
            return Err(DriverError::UnknownDestination {
                pipeline: definition.name.clone(),
                destination,
                configured,
            });
        }
        let models_dir = config.pipelines.models_dir.clone();
        let pipeline =
            tokio::task::spawn_blocking(move || LoadedPipeline::load(definition, &models_dir))
                .await
                .expect("pipeline load task panicked")
                .map_err(|source| DriverError::Load {
                    name: name.clone(),
                    source,
                })?;
        loaded.push(Arc::new(pipeline));
    }
    Ok(loaded)
}

/// The first destination a pipeline names that the node config lacks, with the names it has.
fn unknown_destination(
    config: &Config,
    definition: &PipelineDefinition,
) -> Option<(String, String)> {
    let missing = definition
        .output
        .destinations
        .iter()
        .find(|d| config.destination(d).is_none())?;
    let names: Vec<&str> = config
        .destinations
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    let configured = if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    };
    Some((missing.clone(), configured))
}

/// Start the assembler and the worker. Send ingest events to the returned sender; when
/// every sender is dropped, queued jobs finish and the handle yields the summary.
/// `outbox` is notified whenever a SEG has been queued for delivery.
pub fn spawn(
    config: &Config,
    spool: Arc<Spool>,
    pipelines: Vec<Arc<LoadedPipeline>>,
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
    pipelines: Vec<Arc<LoadedPipeline>>,
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
    let assembler = tokio::spawn(assemble(
        event_rx,
        control_rx,
        sink.dropped.clone(),
        job_tx,
        Assembler::new(&definitions),
        spool.clone(),
        recovery_window,
    ));
    let results_dir = config.results_dir();
    let worker = tokio::spawn(work(job_rx, spool, pipelines, results_dir, outbox));
    let handle = tokio::spawn(async move {
        let given_up = assembler.await.unwrap_or_default();
        let mut summary = worker.await.unwrap_or_default();
        summary.given_up = given_up;
        summary
    });
    (sink, control, handle)
}

/// The assembler loop: feed events and deadlines to the state machine, queue its jobs.
#[allow(clippy::too_many_arguments)]
async fn assemble(
    mut events: mpsc::Receiver<IngestEvent>,
    mut control: mpsc::Receiver<Control>,
    dropped: Arc<AtomicU64>,
    jobs: mpsc::Sender<JobSpec>,
    mut assembler: Assembler,
    spool: Arc<Spool>,
    recovery_window: Duration,
) -> Vec<(String, String, String)> {
    let mut given_up = Vec::new();
    let recovered = {
        let spool = spool.clone();
        tokio::task::spawn_blocking(move || recovery::recover(&spool, recovery_window)).await
    };
    match recovered {
        Ok(Ok(r)) => {
            let now = Instant::now();
            for seen in &r.instances {
                assembler.restore_instance(seen, now);
            }
            for (pipeline, study, fingerprint) in &r.done_jobs {
                assembler.remember_job(pipeline, study, *fingerprint);
            }
            info!(
                studies = r.studies,
                instances = r.instances.len(),
                interrupted_jobs = r.interrupted_jobs,
                collecting = assembler.collecting(),
                "state recovered from the spool"
            );
        }
        Ok(Err(e)) => {
            error!(cause = %e, "cannot read the spool back at start-up; studies received before this start need to be sent again")
        }
        Err(e) => error!(cause = %e, "start-up recovery task panicked"),
    }
    // Jobs decided but not yet in the worker's queue. Handing a job over never blocks the
    // loop while there is room here, so ingest events keep flowing (the SCP gives up on
    // an event after a few seconds of stall) while a long job holds the worker.
    let mut pending: VecDeque<JobSpec> = VecDeque::new();
    // Events the SCP dropped (it does after a stall) are made good from the spool: every
    // RECONCILE_EVERY, if the drop count grew, stored instances received since the last
    // look that the assembler never heard of are fed to it.
    let mut reconcile = tokio::time::interval(RECONCILE_EVERY);
    reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut drops_seen = 0u64;
    let mut reconcile_from_ms = unix_ms() - RECONCILE_MARGIN_MS;
    let mut control_open = true;
    loop {
        let deadline = assembler
            .next_deadline()
            .map(tokio::time::Instant::from_std);
        let decisions = tokio::select! {
            permit = jobs.reserve(), if !pending.is_empty() => match permit {
                Ok(permit) => {
                    permit.send(pending.pop_front().expect("not empty"));
                    continue;
                }
                Err(_) => {
                    error!("job worker stopped; no further jobs can run");
                    return given_up;
                }
            },
            event = events.recv() => match event {
                Some(IngestEvent::InstanceStored { origin, header, .. }) => {
                    assembler.on_instance(&InstanceSeen { header, origin }, Instant::now())
                }
                Some(IngestEvent::AssociationReleased { association_id, .. }) => {
                    assembler.on_association_released(association_id, Instant::now())
                }
                None => break,
            },
            _ = sleep_until(deadline) => assembler.on_tick(Instant::now()),
            request = control.recv(), if control_open => match request {
                None => {
                    control_open = false;
                    continue;
                }
                Some(Control::Inspect(reply)) => {
                    let _ = reply.send(AssemblyView {
                        studies: assembler.collecting_studies(Instant::now()),
                        collecting: assembler.collecting_per_pipeline(),
                        queued_jobs: pending.len() + (jobs.max_capacity() - jobs.capacity()),
                    });
                    continue;
                }
                Some(Control::Force { study_uid, reply }) => match assembler.force(&study_uid) {
                    Ok(decisions) => {
                        let _ = reply.send(Ok(decisions.iter().map(force_result).collect()));
                        decisions
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                        continue;
                    }
                },
                Some(Control::Rerun { pipeline, study_uid, reply }) => {
                    match assembler.rerun(&pipeline, &study_uid) {
                        Ok(decision) => {
                            let _ = reply.send(Ok(()));
                            vec![decision]
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e));
                            continue;
                        }
                    }
                }
            },
            _ = reconcile.tick() => {
                let drops = dropped.load(Ordering::Relaxed);
                if drops == drops_seen {
                    continue;
                }
                drops_seen = drops;
                let since = reconcile_from_ms;
                reconcile_from_ms = unix_ms() - RECONCILE_MARGIN_MS;
                let known = assembler.known_instances();
                let missed = read_back_missed(&spool, since, known).await;
                warn!(
                    dropped_events = drops,
                    read_back = missed.len(),
                    "ingest events were dropped; instances read back from the spool"
                );
                let now = Instant::now();
                missed
                    .iter()
                    .flat_map(|seen| assembler.on_instance(seen, now))
                    .collect()
            }
        };
        for decision in decisions {
            match decision {
                Decision::Ready(job) => {
                    info!(
                        study = %job.study_uid,
                        pipeline = %job.pipeline,
                        trigger = ?job.trigger,
                        channels = %job.channels.iter().map(|c| format!("{}={}({})", c.name, c.description, c.instances.len())).collect::<Vec<_>>().join(", "),
                        queued = jobs.max_capacity() - jobs.capacity(),
                        "study complete: job queued"
                    );
                    for note in &job.notes {
                        info!(study = %job.study_uid, pipeline = %job.pipeline, "{note}");
                    }
                    if pending.len() < MAX_PENDING_JOBS {
                        pending.push_back(job);
                    } else {
                        warn!(
                            pending = pending.len(),
                            "jobs pile up faster than the worker runs them; ingest waits for the queue"
                        );
                        pending.push_back(job);
                        let oldest = pending.pop_front().expect("not empty");
                        if jobs.send(oldest).await.is_err() {
                            error!("job worker stopped; no further jobs can run");
                            return given_up;
                        }
                    }
                }
                Decision::GiveUp {
                    pipeline,
                    study_uid,
                    reason,
                } => {
                    warn!(study = %study_uid, pipeline = %pipeline, reason = %reason, "no job for this study");
                    given_up.push((pipeline, study_uid, reason));
                }
            }
        }
    }
    // Ingest has stopped: the decided jobs still go to the worker, in order.
    for job in pending {
        if jobs.send(job).await.is_err() {
            error!("job worker stopped; no further jobs can run");
            break;
        }
    }
    if assembler.collecting() > 0 {
        warn!(
            studies = assembler.collecting(),
            "stopping with studies still collecting; they are in the spool and need to be sent again to run"
        );
    }
    given_up
}

/// The stored instances received since `since_ms` that are not in `known` (blocking
/// spool and file reads, off the runtime); empty, with the reason logged, when the spool
/// cannot be read.
async fn read_back_missed(
    spool: &Arc<Spool>,
    since_ms: i64,
    known: std::collections::HashSet<String>,
) -> Vec<InstanceSeen> {
    let spool = spool.clone();
    match tokio::task::spawn_blocking(move || recovery::missed_instances(&spool, since_ms, &known))
        .await
    {
        Ok(Ok(missed)) => missed,
        Ok(Err(e)) => {
            error!(cause = %e, "cannot read the spool back after dropped events; restart the node to assemble them");
            Vec::new()
        }
        Err(e) => {
            error!(cause = %e, "spool read-back task panicked");
            Vec::new()
        }
    }
}

/// What a forcing decision means for the operator who asked.
fn force_result(decision: &Decision) -> ForceResult {
    match decision {
        Decision::Ready(job) => ForceResult {
            pipeline: job.pipeline.clone(),
            job_queued: true,
            reason: None,
        },
        Decision::GiveUp {
            pipeline, reason, ..
        } => ForceResult {
            pipeline: pipeline.clone(),
            job_queued: false,
            reason: Some(reason.clone()),
        },
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The worker: one job at a time.
async fn work(
    mut jobs: mpsc::Receiver<JobSpec>,
    spool: Arc<Spool>,
    pipelines: Vec<Arc<LoadedPipeline>>,
    results_dir: PathBuf,
    outbox: Arc<Notify>,
) -> DriverSummary {
    let mut summary = DriverSummary::default();
    while let Some(job) = jobs.recv().await {
        let span = info_span!("job", study = %job.study_uid, pipeline = %job.pipeline);
        let started = Instant::now();
        let outcome = run_one(&job, &spool, &pipelines, &results_dir, &outbox)
            .instrument(span.clone())
            .await;
        let _enter = span.enter();
        match outcome {
            Ok(done) => {
                info!(seg = %done.seg_path.display(), "SEG written");
                metrics::global().job_finished(
                    &job.pipeline,
                    JobOutcome::Done,
                    started.elapsed(),
                    &done.stages,
                );
                summary.completed.push(done);
            }
            Err(reason) => {
                error!(reason = %reason, "job failed");
                metrics::global().job_finished(
                    &job.pipeline,
                    JobOutcome::Failed,
                    started.elapsed(),
                    &[],
                );
                summary
                    .failed
                    .push((job.pipeline.clone(), job.study_uid.clone(), reason));
            }
        }
    }
    summary
}

async fn run_one(
    job: &JobSpec,
    spool: &Arc<Spool>,
    pipelines: &[Arc<LoadedPipeline>],
    results_dir: &std::path::Path,
    outbox: &Notify,
) -> Result<CompletedJob, String> {
    let pipeline = pipelines
        .iter()
        .find(|p| p.definition.name == job.pipeline)
        .cloned()
        .ok_or_else(|| format!("pipeline {} is not loaded", job.pipeline))?;
    let channels = {
        let spool = spool.clone();
        let wanted: Vec<(String, String, Vec<String>)> = job
            .channels
            .iter()
            .map(|c| (c.name.clone(), c.series_uid.clone(), c.instances.clone()))
            .collect();
        tokio::task::spawn_blocking(move || resolve_files(&spool, wanted))
            .await
            .map_err(|e| format!("spool lookup task panicked: {e}"))??
    };
    let job_id = {
        let spool = spool.clone();
        let (pipeline, study, fingerprint, trigger) = (
            job.pipeline.clone(),
            job.study_uid.clone(),
            format!("{:016x}", job.fingerprint),
            job.trigger,
        );
        tokio::task::spawn_blocking(move || {
            spool
                .jobs()
                .started(&pipeline, &study, &fingerprint, trigger)
        })
        .await
        .map_err(|e| format!("job record task panicked: {e}"))?
        .map_err(|e| format!("cannot record the job: {e}"))?
    };
    let destinations = pipeline.definition.output.destinations.clone();
    let result = execute(job, pipeline, channels, results_dir).await;
    let record = {
        let destinations = destinations.clone();
        let spool = spool.clone();
        let result = result.clone();
        tokio::task::spawn_blocking(move || match &result {
            Ok((done, timings)) => {
                let findings: Vec<serde_json::Value> = done
                    .findings
                    .iter()
                    .map(|(label, f)| f.to_json(label))
                    .collect();
                let seg = OutputInstance {
                    kind: OutputKind::Seg,
                    path: done.seg_path.clone(),
                    sop_instance_uid: done.seg_sop_instance_uid.clone(),
                };
                spool.jobs().done_with_deliveries(
                    job_id,
                    &done.study_uid,
                    &seg,
                    &done.companions,
                    &serde_json::Value::Array(findings).to_string(),
                    &timings.to_string(),
                    &destinations,
                )
            }
            Err(reason) => spool.jobs().failed(job_id, reason),
        })
        .await
    };
    match record {
        Ok(Ok(())) => {
            if result.is_ok() && !destinations.is_empty() {
                let companions = result.as_ref().map_or(0, |(done, _)| done.companions.len());
                info!(job = job_id, destinations = %destinations.join(", "), companions, "SEG queued for delivery");
                outbox.notify_one();
            }
        }
        Ok(Err(e)) => {
            error!(job = job_id, cause = %e, "cannot record the job outcome in the index")
        }
        Err(e) => error!(job = job_id, cause = %e, "job record task panicked"),
    }
    result.map(|(done, _)| done)
}

/// Run the job's blocking work; on success the outcome and the stage timings as JSON.
async fn execute(
    job: &JobSpec,
    pipeline: Arc<LoadedPipeline>,
    channels: Vec<(String, Vec<PathBuf>)>,
    results_dir: &std::path::Path,
) -> Result<(CompletedJob, serde_json::Value), String> {
    let out = results_dir
        .join(&job.study_uid)
        .join(format!("{}-{:016x}.dcm", job.pipeline, job.fingerprint));
    let study = job.study_uid.clone();
    let started = Instant::now();
    let span = tracing::Span::current();
    let outcome = tokio::task::spawn_blocking(move || {
        let _in_job = span.enter();
        run_job(&pipeline, &study, &channels, &out, &|stage| {
            tracing::debug!(stage, "job stage")
        })
    })
    .await
    .map_err(|e| format!("job task panicked: {e}"))?
    .map_err(|e| e.to_string())?;
    info!(
        seconds = format!("{:.2}", started.elapsed().as_secs_f64()),
        stages = %outcome.timings.0.iter().map(|(s, d)| format!("{s}={:.3}s", d.as_secs_f64())).collect::<Vec<_>>().join(" "),
        "job done"
    );
    let timings: serde_json::Map<String, serde_json::Value> = outcome
        .timings
        .0
        .iter()
        .map(|(stage, d)| (stage.to_string(), serde_json::json!(d.as_secs_f64())))
        .collect();
    Ok((
        CompletedJob {
            pipeline: job.pipeline.clone(),
            study_uid: job.study_uid.clone(),
            seg_path: outcome.seg_path,
            seg_sop_instance_uid: outcome.seg_sop_instance_uid,
            companions: outcome.companions,
            findings: outcome.findings,
            stages: outcome.timings.0.clone(),
        },
        serde_json::Value::Object(timings),
    ))
}

/// The spool files of each channel's instances (blocking index look-ups).
fn resolve_files(
    spool: &Spool,
    channels: Vec<(String, String, Vec<String>)>,
) -> Result<Vec<(String, Vec<PathBuf>)>, String> {
    channels
        .into_iter()
        .map(|(name, series_uid, instances)| {
            let files = instances
                .iter()
                .map(|sop| match spool.instance(sop) {
                    Ok(Some(record)) => Ok(record.path),
                    Ok(None) => Err(format!(
                        "instance {sop} of series {series_uid} is not in the spool"
                    )),
                    Err(e) => Err(format!("spool lookup of {sop}: {e}")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((name, files))
        })
        .collect()
}

//! The worker: one job at a time, blocking work off the async runtime. For each job it
//! finds the instances' files in the spool, records the job started, runs it, and records
//! the outcome: done together with its outbox rows (one transaction), or failed with the
//! whole cause chain, so the dashboard and `segnode status` say why.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinError;
use tracing::{Instrument, error, info, info_span};

use super::DriverSummary;
use crate::error_chain::error_chain;
use crate::metrics::{self, JobOutcome};
use crate::pipeline::assembler::{ChannelInput, JobSpec};
use crate::pipeline::job::{JobError, LoadedPipeline};
use crate::pipeline::load::PipelineSet;
use crate::pipeline::output::{OutputInstance, OutputKind};
use crate::pipeline::post::Findings;
use crate::pipeline::run::run_job;
use crate::spool::{Spool, SpoolError};

/// Why a queued job produced no SEG. The source chain is kept: logs and the job table get
/// every cause, each once.
#[derive(Debug, thiserror::Error)]
pub enum JobFailure {
    #[error("pipeline {0} is not loaded on this node (was it disabled since the job was queued?)")]
    NotLoaded(String),
    #[error(
        "instance {sop_instance_uid} of series {series_uid} is not in the spool \
         (removed by hand? send the series again)"
    )]
    MissingInstance {
        sop_instance_uid: String,
        series_uid: String,
    },
    #[error("spool index")]
    Spool(#[source] SpoolError),
    #[error(transparent)]
    Run(#[from] JobError),
    #[error("the {task} task panicked (a bug: please report it with the log)")]
    Panicked {
        task: &'static str,
        #[source]
        source: JoinError,
    },
}

impl JobFailure {
    fn panicked(task: &'static str) -> impl FnOnce(JoinError) -> JobFailure {
        move |source| JobFailure::Panicked { task, source }
    }
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

/// A job that failed.
#[derive(Debug)]
pub struct FailedJob {
    /// Pipeline name.
    pub pipeline: String,
    /// Study Instance UID.
    pub study_uid: String,
    /// Why.
    pub failure: JobFailure,
}

/// What the worker needs besides its queue.
pub(super) struct Worker {
    pub spool: Arc<Spool>,
    pub pipelines: PipelineSet,
    pub results_dir: PathBuf,
    /// Woken once a finished job's deliveries are queued.
    pub outbox: Arc<Notify>,
}

/// Run the queued jobs in order until the queue closes.
pub(super) async fn run(mut jobs: mpsc::Receiver<JobSpec>, worker: Worker) -> DriverSummary {
    let mut summary = DriverSummary::default();
    while let Some(job) = jobs.recv().await {
        let span = info_span!("job", study = %job.study_uid, pipeline = %job.pipeline);
        let started = Instant::now();
        let outcome = worker.run_one(&job).instrument(span.clone()).await;
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
            Err(failure) => {
                error!(reason = %error_chain(&failure), "job failed");
                metrics::global().job_finished(
                    &job.pipeline,
                    JobOutcome::Failed,
                    started.elapsed(),
                    &[],
                );
                summary.failed.push(FailedJob {
                    pipeline: job.pipeline.clone(),
                    study_uid: job.study_uid.clone(),
                    failure,
                });
            }
        }
    }
    summary
}

/// What is recorded in the job table when a job ends: the finished job with its stage
/// timings, or the failure's cause chain as the operator will read it.
enum Ending {
    Done(Box<CompletedJob>, serde_json::Value),
    Failed(String),
}

impl Worker {
    async fn run_one(&self, job: &JobSpec) -> Result<CompletedJob, JobFailure> {
        let pipeline = self
            .pipelines
            .get(&job.pipeline)
            .cloned()
            .ok_or_else(|| JobFailure::NotLoaded(job.pipeline.clone()))?;
        let channels = {
            let spool = self.spool.clone();
            let wanted = job.channels.clone();
            tokio::task::spawn_blocking(move || resolve_files(&spool, &wanted))
                .await
                .map_err(JobFailure::panicked("spool lookup"))??
        };
        let job_id = {
            let spool = self.spool.clone();
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
            .map_err(JobFailure::panicked("job record"))?
            .map_err(JobFailure::Spool)?
        };
        let destinations = pipeline.definition.output.destinations.clone();
        let result = execute(job, pipeline, channels, &self.results_dir).await;
        let ending = match &result {
            Ok((done, timings)) => Ending::Done(Box::new(done.clone()), timings.clone()),
            Err(failure) => Ending::Failed(error_chain(failure)),
        };
        let recorded = {
            let spool = self.spool.clone();
            let destinations = destinations.clone();
            tokio::task::spawn_blocking(move || record(&spool, job_id, &ending, &destinations))
                .await
        };
        match recorded {
            Ok(Ok(())) => {
                if let Ok((done, _)) = &result
                    && !destinations.is_empty()
                {
                    info!(job = job_id, destinations = %destinations.join(", "), companions = done.companions.len(), "SEG queued for delivery");
                    self.outbox.notify_one();
                }
            }
            Ok(Err(e)) => {
                error!(job = job_id, cause = %error_chain(&e), "cannot record the job outcome in the index")
            }
            Err(e) => error!(job = job_id, cause = %e, "job record task panicked"),
        }
        result.map(|(done, _)| done)
    }
}

/// Record a job's ending: done with one outbox row per destination and instance (SEG
/// first), in one transaction; or failed with its reason.
fn record(
    spool: &Spool,
    job_id: i64,
    ending: &Ending,
    destinations: &[String],
) -> Result<(), SpoolError> {
    match ending {
        Ending::Done(done, timings) => {
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
                destinations,
            )
        }
        Ending::Failed(reason) => spool.jobs().failed(job_id, reason),
    }
}

/// Run the job's blocking work; on success the outcome and the stage timings as JSON.
async fn execute(
    job: &JobSpec,
    pipeline: Arc<LoadedPipeline>,
    channels: Vec<(String, Vec<PathBuf>)>,
    results_dir: &Path,
) -> Result<(CompletedJob, serde_json::Value), JobFailure> {
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
    .map_err(JobFailure::panicked("job"))??;
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
    channels: &[ChannelInput],
) -> Result<Vec<(String, Vec<PathBuf>)>, JobFailure> {
    channels
        .iter()
        .map(|channel| {
            let files = channel
                .instances
                .iter()
                .map(|sop| match spool.instance(sop) {
                    Ok(Some(record)) => Ok(record.path),
                    Ok(None) => Err(JobFailure::MissingInstance {
                        sop_instance_uid: sop.clone(),
                        series_uid: channel.series_uid.clone(),
                    }),
                    Err(e) => Err(JobFailure::Spool(e)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((channel.name.clone(), files))
        })
        .collect()
}

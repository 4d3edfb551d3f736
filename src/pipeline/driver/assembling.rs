//! The assembler task: ingest events, deadlines and admin requests in; decided jobs out to
//! the worker's bounded queue. At start it restores what the spool holds (studies still
//! collecting, jobs already done); when the SCP drops events after a stall it reads the
//! missed instances back from the spool, so no stored instance is ever forgotten.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{error, info, warn};

use super::MAX_PENDING_JOBS;
use crate::ingest::IngestEvent;
use crate::pipeline::assembler::{Assembler, Decision, InstanceSeen, JobSpec};
use crate::pipeline::control::{AssemblyView, Control, ForceResult};
use crate::pipeline::recovery;
use crate::spool::Spool;

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

/// What the assembler task owns.
pub(super) struct AssemblerTask {
    /// Ingest events from the SCP (or a folder import).
    pub events: mpsc::Receiver<IngestEvent>,
    /// Admin requests: inspect, force, re-run.
    pub control: mpsc::Receiver<Control>,
    /// How many ingest events the SCP dropped after a stall (read back from the spool).
    pub dropped: Arc<AtomicU64>,
    /// The worker's bounded queue.
    pub jobs: mpsc::Sender<JobSpec>,
    /// The state machine.
    pub assembler: Assembler,
    /// Where stored instances are read back from.
    pub spool: Arc<Spool>,
    /// How far back instances are read at start (the longest force timeout).
    pub recovery_window: Duration,
}

/// A study the assembler gave up on: no job will run for it.
#[derive(Debug, Clone)]
pub struct GivenUp {
    /// Pipeline name.
    pub pipeline: String,
    /// Study Instance UID.
    pub study_uid: String,
    /// Why, for the operator.
    pub reason: String,
}

/// The assembler loop: feed events and deadlines to the state machine, queue its jobs;
/// returns the studies given up once ingest has stopped and every decided job is queued.
pub(super) async fn run(task: AssemblerTask) -> Vec<GivenUp> {
    let AssemblerTask {
        mut events,
        mut control,
        dropped,
        jobs,
        mut assembler,
        spool,
        recovery_window,
    } = task;
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
                    given_up.push(GivenUp {
                        pipeline,
                        study_uid,
                        reason,
                    });
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
    known: HashSet<String>,
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

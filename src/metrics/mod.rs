//! The node's metrics: what happened (counters, histograms) recorded where it happens,
//! rendered in the Prometheus text format by `GET /metrics` together with the gauges the
//! HTTP side reads from the node's state when scraped (`crate::http::exposition`).
//!
//! Names follow Prometheus conventions: `segnode_` prefix, `_total` for counters,
//! `_seconds` and `_bytes` base units, bounded label sets (no UIDs; peer-controlled values
//! go through [`labels`]).
//!
//! The registry is process-wide ([`global`]), like Prometheus client libraries' default
//! registry, so the DICOM and pipeline paths record with one call and no plumbing. One
//! node runs per process; tests that run several in one process read differences.
//!
//! Files: `registry` (families and the text format), `labels` (bounded label values).

pub mod labels;
pub mod registry;

use std::sync::LazyLock;
use std::time::Duration;

use dicom_ul::association::Error as UlError;
use dicom_ul::pdu::{AssociationRJServiceUserReason, AssociationRJSource};

use registry::{CounterVec, GaugeVec, HistogramVec};

/// Bounds for request handling times (C-STORE): 1 ms to 10 s.
const FAST_SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
/// Bounds for job and stage times: 10 ms to 10 min.
const SLOW_SECONDS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Every metric the node records as things happen.
pub struct Metrics {
    /// Associations accepted.
    pub associations_accepted: CounterVec,
    /// Association requests refused or that never became one, by reason.
    pub associations_rejected: CounterVec,
    /// Associations open now.
    pub associations_active: GaugeVec,
    /// C-STOREs answered, by SOP class, transfer syntax, calling AE and DIMSE status.
    pub instances_received: CounterVec,
    /// Data set bytes received in C-STOREs.
    pub received_bytes: CounterVec,
    /// Time from a C-STORE request to its response being ready.
    pub store_duration: HistogramVec,
    /// Jobs finished, by pipeline and outcome.
    pub jobs: CounterVec,
    /// Whole-job wall time, by pipeline.
    pub job_duration: HistogramVec,
    /// Wall time of each pipeline stage.
    pub stage_duration: HistogramVec,
    /// Delivery attempts, by destination and outcome.
    pub delivery_attempts: CounterVec,
    /// Deliveries being sent now, by destination.
    pub outbox_in_flight: GaugeVec,
    /// Operator actions through the HTTP API, by action and outcome.
    pub operator_actions: CounterVec,
    /// Calling AE titles allowed as label values.
    pub calling_aes: labels::CallingAes,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        Metrics {
            associations_accepted: CounterVec::new(
                "segnode_associations_accepted_total",
                "DICOM associations accepted.",
                &[],
            ),
            associations_rejected: CounterVec::new(
                "segnode_associations_rejected_total",
                "DICOM association requests rejected or never completed, by reason.",
                &["reason"],
            ),
            associations_active: GaugeVec::new(
                "segnode_associations_active",
                "DICOM associations open now.",
                &[],
            ),
            instances_received: CounterVec::new(
                "segnode_instances_received_total",
                "C-STORE requests answered, by SOP class, transfer syntax, calling AE and DIMSE status.",
                &["sop_class", "transfer_syntax", "calling_ae", "status"],
            ),
            received_bytes: CounterVec::new(
                "segnode_received_bytes_total",
                "Data set bytes received in C-STORE requests.",
                &[],
            ),
            store_duration: HistogramVec::new(
                "segnode_store_duration_seconds",
                "Time to handle one C-STORE (parse, journal append, flush) until its response.",
                &[],
                FAST_SECONDS,
            ),
            jobs: CounterVec::new(
                "segnode_jobs_total",
                "Segmentation jobs finished, by pipeline and outcome.",
                &["pipeline", "outcome"],
            ),
            job_duration: HistogramVec::new(
                "segnode_job_duration_seconds",
                "Wall time of a segmentation job, from its inputs to the SEG written.",
                &["pipeline"],
                SLOW_SECONDS,
            ),
            stage_duration: HistogramVec::new(
                "segnode_job_stage_duration_seconds",
                "Wall time of one stage of a job (decode, preprocess, inference, post, seg_encode, seg_write).",
                &["pipeline", "stage"],
                SLOW_SECONDS,
            ),
            delivery_attempts: CounterVec::new(
                "segnode_delivery_attempts_total",
                "SEG delivery attempts, by destination and outcome (delivered, retry, dead).",
                &["destination", "outcome"],
            ),
            outbox_in_flight: GaugeVec::new(
                "segnode_outbox_in_flight",
                "SEG deliveries being sent now, by destination.",
                &["destination"],
            ),
            operator_actions: CounterVec::new(
                "segnode_operator_actions_total",
                "Operator actions asked through the HTTP API, by action and HTTP status.",
                &["action", "status"],
            ),
            calling_aes: labels::CallingAes::default(),
        }
    }

    /// An association was accepted (the active gauge goes up until [`Metrics::association_ended`]).
    pub fn association_accepted(&self) {
        self.associations_accepted.inc(&[]);
        self.associations_active.add(&[], 1.0);
    }

    /// An accepted association ended, after `bytes` of data sets.
    pub fn association_ended(&self, bytes: u64) {
        self.associations_active.add(&[], -1.0);
        self.received_bytes.add(&[], bytes as f64);
    }

    /// An association request failed negotiation with `err`.
    pub fn association_rejected(&self, err: &UlError) {
        self.associations_rejected.inc(&[rejection_reason(err)]);
    }

    /// One C-STORE was answered with `status` after `took`.
    pub fn store_answered(
        &self,
        sop_class_uid: &str,
        transfer_syntax_uid: &str,
        calling_ae: &str,
        status: u16,
        took: Duration,
    ) {
        let ae = self.calling_aes.label(calling_ae);
        let status = labels::status(status);
        self.instances_received.inc(&[
            labels::sop_class(sop_class_uid),
            labels::transfer_syntax(transfer_syntax_uid),
            &ae,
            &status,
        ]);
        self.store_duration.observe(&[], took.as_secs_f64());
    }

    /// A job of `pipeline` finished; `stages` are its stage timings when it succeeded.
    pub fn job_finished(
        &self,
        pipeline: &str,
        outcome: JobOutcome,
        took: Duration,
        stages: &[(&str, Duration)],
    ) {
        self.jobs.inc(&[pipeline, outcome.label()]);
        self.job_duration.observe(&[pipeline], took.as_secs_f64());
        for (stage, d) in stages {
            self.stage_duration
                .observe(&[pipeline, stage_label(stage)], d.as_secs_f64());
        }
    }

    /// Render every family recorded here.
    pub fn encode(&self, out: &mut String) {
        self.associations_accepted.encode(out);
        self.associations_rejected.encode(out);
        self.associations_active.encode(out);
        self.instances_received.encode(out);
        self.received_bytes.encode(out);
        self.store_duration.encode(out);
        self.jobs.encode(out);
        self.job_duration.encode(out);
        self.stage_duration.encode(out);
        self.delivery_attempts.encode(out);
        self.outbox_in_flight.encode(out);
        self.operator_actions.encode(out);
    }
}

/// How a job ended, as a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// A SEG was written.
    Done,
    /// The job failed with a reason.
    Failed,
}

impl JobOutcome {
    fn label(self) -> &'static str {
        match self {
            JobOutcome::Done => "done",
            JobOutcome::Failed => "failed",
        }
    }
}

/// The stage label for a stage name of `pipeline::run` (a fixed set).
fn stage_label(stage: &str) -> &'static str {
    match stage {
        "decode + volume" | "decode" => "decode",
        "preprocess" => "preprocess",
        "inference" => "inference",
        "post-process" => "post",
        "SEG encode" => "seg_encode",
        "SEG write" => "seg_write",
        _ => "other",
    }
}

/// A bounded reason for a failed association negotiation.
fn rejection_reason(err: &UlError) -> &'static str {
    match err {
        UlError::Rejected { association_rj, .. } => match &association_rj.source {
            AssociationRJSource::ServiceUser(
                AssociationRJServiceUserReason::CallingAETitleNotRecognized,
            ) => "calling_ae",
            AssociationRJSource::ServiceUser(
                AssociationRJServiceUserReason::CalledAETitleNotRecognized,
            ) => "called_ae",
            AssociationRJSource::ServiceUser(
                AssociationRJServiceUserReason::ApplicationContextNameNotSupported,
            ) => "application_context",
            _ => "rejected_other",
        },
        UlError::Timeout { .. } => "timeout",
        UlError::ConnectionClosed { .. } => "closed",
        UlError::ReceivePdu { .. } => "not_dicom",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_names_map_to_a_fixed_set() {
        for (stage, label) in [
            ("decode + volume", "decode"),
            ("post-process", "post"),
            ("SEG encode", "seg_encode"),
            ("what", "other"),
        ] {
            assert_eq!(stage_label(stage), label);
        }
    }
}

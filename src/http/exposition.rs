//! `GET /metrics`: the counters and histograms recorded as things happen
//! ([`crate::metrics`]), plus gauges read from the node's state at scrape time (journal
//! backlog, free disk, studies collecting, job queue, outbox by state), model and build
//! info. Prometheus text format 0.0.4.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::state::HttpState;
use crate::metrics::registry::{header as family, sample};
use crate::spool::DeliveryState;

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`.
pub async fn metrics(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    let assembly = state.control.inspect().await.ok();
    let body = tokio::task::spawn_blocking(move || {
        let mut out = String::new();
        crate::metrics::global().encode(&mut out);
        scraped(&state, assembly.as_ref(), &mut out);
        out
    })
    .await
    .unwrap_or_else(|e| format!("# metrics task panicked: {e}\n"));
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body)
}

fn gauge(out: &mut String, name: &str, help: &str, value: f64) {
    family(out, name, help, "gauge");
    sample(out, name, &[], &[], value);
}

/// The gauges read now (blocking: index and file system).
fn scraped(
    state: &HttpState,
    assembly: Option<&crate::pipeline::control::AssemblyView>,
    out: &mut String,
) {
    let (unfiled, lag) = state.spool.filer_backlog();
    gauge(
        out,
        "segnode_journal_unfiled_instances",
        "Acknowledged instances in the journal whose file and index row are not written yet.",
        unfiled as f64,
    );
    gauge(
        out,
        "segnode_filer_lag_seconds",
        "How long the oldest acknowledged, not yet filed instance has waited.",
        lag.as_secs_f64(),
    );
    if let Ok(free) = state.spool.free_bytes() {
        gauge(
            out,
            "segnode_disk_free_bytes",
            "Bytes free on the spool's file system.",
            free as f64,
        );
    }
    gauge(
        out,
        "segnode_disk_min_free_bytes",
        "The free-space floor (storage.min_free_disk_mb) below which C-STOREs are refused.",
        state.config.storage.min_free_disk_mb as f64 * 1024.0 * 1024.0,
    );
    if let Some(a) = assembly {
        family(
            out,
            "segnode_studies_collecting",
            "Studies (or instances, for per-instance pipelines) collecting, per pipeline.",
            "gauge",
        );
        for (pipeline, n) in &a.collecting {
            sample(
                out,
                "segnode_studies_collecting",
                &["pipeline"],
                std::slice::from_ref(pipeline),
                *n as f64,
            );
        }
        gauge(
            out,
            "segnode_job_queue_depth",
            "Jobs decided and waiting for the worker.",
            a.queued_jobs as f64,
        );
    }
    outbox(state, out);
    family(
        out,
        "segnode_model_info",
        "The model each enabled pipeline runs: file, SHA-256, device, precision.",
        "gauge",
    );
    for m in &state.models {
        sample(
            out,
            "segnode_model_info",
            &["pipeline", "file", "sha256", "device", "precision"],
            &[
                m.pipeline.clone(),
                m.file
                    .file_name()
                    .map_or_else(String::new, |f| f.to_string_lossy().into_owned()),
                m.sha256.clone(),
                m.device.clone(),
                m.precision.to_string(),
            ],
            1.0,
        );
    }
    family(
        out,
        "segnode_build_info",
        "segnode and libtorch versions.",
        "gauge",
    );
    sample(
        out,
        "segnode_build_info",
        &["version", "torch"],
        &[
            env!("CARGO_PKG_VERSION").to_string(),
            crate::torch_runtime::LIBTORCH_VERSION.to_string(),
        ],
        1.0,
    );
    gauge(
        out,
        "segnode_start_time_seconds",
        "When the node started, in seconds since the Unix epoch.",
        unix_seconds() - state.started.elapsed().as_secs_f64(),
    );
}

/// Outbox rows per destination: pending and dead (every configured destination listed).
fn outbox(state: &HttpState, out: &mut String) {
    let counts = state.spool.outbox().counts().unwrap_or_default();
    let paused = state.destinations.snapshot();
    for (name, help, wanted) in [
        (
            "segnode_outbox_pending",
            "SEG deliveries waiting to be sent (or retried), per destination.",
            DeliveryState::Pending,
        ),
        (
            "segnode_outbox_dead",
            "SEG deliveries dead-lettered after their last attempt, per destination.",
            DeliveryState::Dead,
        ),
    ] {
        family(out, name, help, "gauge");
        for d in &state.config.destinations {
            let n = counts
                .iter()
                .filter(|c| c.destination == d.name && c.state == wanted)
                .map(|c| c.count)
                .sum::<u64>();
            sample(
                out,
                name,
                &["destination"],
                std::slice::from_ref(&d.name),
                n as f64,
            );
        }
    }
    family(
        out,
        "segnode_destination_paused",
        "1 while an operator holds back a destination's deliveries.",
        "gauge",
    );
    for (name, d) in &paused {
        sample(
            out,
            "segnode_destination_paused",
            &["destination"],
            std::slice::from_ref(name),
            if d.paused { 1.0 } else { 0.0 },
        );
    }
    family(
        out,
        "segnode_destination_up",
        "1 when a destination's last answer (delivery or C-ECHO probe) was a success.",
        "gauge",
    );
    for (name, d) in &paused {
        if let Some(c) = &d.last_contact {
            sample(
                out,
                "segnode_destination_up",
                &["destination"],
                std::slice::from_ref(name),
                if c.ok { 1.0 } else { 0.0 },
            );
        }
    }
}

fn unix_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

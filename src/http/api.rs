//! The read API (JSON): `/api/studies` (collecting studies and what each waits for),
//! `/api/jobs` (recent jobs with stage timings, findings, errors), `/api/outbox`
//! (deliveries and destinations), `/api/config` (the effective config, secrets redacted)
//! and `/api/status` (a summary of all of it, what `segnode status --json` prints).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::health;
use super::state::HttpState;
use crate::pipeline::control::{AssemblyView, ControlError};
use crate::spool::{DeliveryState, SpoolError};

/// Rows a list returns unless `?limit=` says otherwise, and at most.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

/// An error answered as `{"error": "..."}` with its status.
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<SpoolError> for ApiError {
    fn from(e: SpoolError) -> Self {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading the spool index failed: {e}"),
        )
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let code = match &e {
            ControlError::Refused(_) => StatusCode::CONFLICT,
            ControlError::NoPipelines => StatusCode::NOT_FOUND,
            ControlError::Stopped | ControlError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError(code, e.to_string())
    }
}

/// `?limit=N`.
#[derive(Debug, Deserialize)]
pub struct Limit {
    limit: Option<usize>,
}

impl Limit {
    fn get(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
    }
}

/// Run a blocking spool read off the runtime.
pub async fn blocking<T: Send + 'static>(
    state: &Arc<HttpState>,
    f: impl FnOnce(&HttpState) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || f(&state))
        .await
        .map_err(|e| {
            ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("task panicked: {e}"),
            )
        })?
}

/// The assembler's view; empty on a node without pipelines.
pub async fn assembly(state: &HttpState) -> Result<AssemblyView, ApiError> {
    match state.control.inspect().await {
        Ok(view) => Ok(view),
        Err(ControlError::NoPipelines) => Ok(AssemblyView::default()),
        Err(e) => Err(e.into()),
    }
}

/// `GET /api/studies`.
pub async fn studies(State(state): State<Arc<HttpState>>) -> Result<Json<Value>, ApiError> {
    let view = assembly(&state).await?;
    Ok(Json(json!({
        "collecting": view.studies,
        "queued_jobs": view.queued_jobs,
    })))
}

/// `GET /api/jobs?limit=N`.
pub async fn jobs(
    State(state): State<Arc<HttpState>>,
    Query(limit): Query<Limit>,
) -> Result<Json<Value>, ApiError> {
    let n = limit.get();
    let jobs = blocking(&state, move |s| Ok(s.spool.jobs().recent(n)?)).await?;
    Ok(Json(json!({ "jobs": jobs })))
}

/// One outbox row as the API shows it.
#[derive(Debug, Serialize)]
pub struct DeliveryRow {
    id: i64,
    job_id: i64,
    study_uid: String,
    destination: String,
    /// `seg`, `report` or `overlay`.
    kind: &'static str,
    /// The instance's SOP Instance UID (named when every row was a SEG).
    seg_sop_instance_uid: String,
    state: DeliveryState,
    attempts: u32,
    next_attempt_ms: i64,
    last_error: Option<String>,
    delivered_ms: Option<i64>,
}

/// `GET /api/outbox?limit=N`: dead and pending rows first, then delivered ones.
pub async fn outbox(
    State(state): State<Arc<HttpState>>,
    Query(limit): Query<Limit>,
) -> Result<Json<Value>, ApiError> {
    let n = limit.get();
    let (rows, counts) = blocking(&state, move |s| {
        Ok((s.spool.outbox().recent(n)?, s.spool.outbox().counts()?))
    })
    .await?;
    let rows: Vec<DeliveryRow> = rows
        .into_iter()
        .map(|r| DeliveryRow {
            id: r.id,
            job_id: r.job_id,
            study_uid: r.study_uid,
            destination: r.destination,
            kind: r.kind.as_str(),
            seg_sop_instance_uid: r.sop_instance_uid,
            state: r.state,
            attempts: r.attempts,
            next_attempt_ms: r.next_attempt_ms,
            last_error: r.last_error,
            delivered_ms: r.delivered_ms,
        })
        .collect();
    let counts: Vec<Value> = counts
        .into_iter()
        .map(|c| json!({ "destination": c.destination, "state": c.state, "count": c.count }))
        .collect();
    Ok(Json(json!({
        "destinations": state.destinations.snapshot(),
        "counts": counts,
        "deliveries": rows,
    })))
}

/// `GET /api/config`: the effective config; the bearer token's file is not shown.
pub async fn config(State(state): State<Arc<HttpState>>) -> Result<Json<Value>, ApiError> {
    let mut value = serde_json::to_value(&*state.config).map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render the config: {e}"),
        )
    })?;
    if let Some(file) = value.pointer_mut("/http/token_file")
        && !file.is_null()
    {
        *file = Value::String("(redacted)".into());
    }
    Ok(Json(value))
}

/// `GET /api/status`: counts, readiness, what is collecting and queued, outbox totals and
/// the latest jobs.
pub async fn status(State(state): State<Arc<HttpState>>) -> Result<Json<Value>, ApiError> {
    let view = assembly(&state).await?;
    let (counts, readiness, outbox, jobs, hour) = blocking(&state, |s| {
        let since = crate::http::dashboard::unix_ms() - 3_600_000;
        Ok((
            s.spool.counts()?,
            health::readiness(s),
            s.spool.outbox().counts()?,
            s.spool.jobs().recent(10)?,
            s.spool.activity_since(since)?,
        ))
    })
    .await?;
    let outbox: Vec<Value> = outbox
        .into_iter()
        .map(|c| json!({ "destination": c.destination, "state": c.state, "count": c.count }))
        .collect();
    Ok(Json(json!({
        "node": {
            "ae_title": state.config.node.ae_title,
            "port": state.config.node.port,
            "data_dir": state.config.node.data_dir,
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": state.started.elapsed().as_secs_f64(),
        },
        "spool": {
            "studies": counts.studies,
            "series": counts.series,
            "instances": counts.instances,
        },
        "last_hour": hour,
        "ready": readiness.ready,
        "checks": readiness.checks,
        "collecting": view.studies,
        "queued_jobs": view.queued_jobs,
        "outbox": outbox,
        "recent_jobs": jobs,
    })))
}

//! Operator actions (POST; bearer token when configured; each logged with who asked):
//! force a collecting study complete under its pipeline's force policy, re-run a job,
//! re-send a dead-lettered delivery, pause and resume a destination.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tracing::{info, warn};

use super::api::{ApiError, blocking};
use super::auth::{Operator, authorize};
use super::state::HttpState;

/// What an action answers.
type Answer = Result<(StatusCode, Json<Value>), ApiError>;

/// Check the token, run the action, count and log it with who asked.
async fn act<F>(
    state: &Arc<HttpState>,
    headers: &HeaderMap,
    remote: SocketAddr,
    action: &'static str,
    target: &str,
    run: impl FnOnce(Operator) -> F,
) -> Answer
where
    F: std::future::Future<Output = Answer>,
{
    let result = match authorize(state.token.as_deref(), headers, remote) {
        Ok(operator) => {
            let who = operator.to_string();
            let result = run(operator).await;
            match &result {
                Ok((code, _)) => {
                    info!(action, target, operator = %who, status = code.as_u16(), "operator action")
                }
                Err(e) => {
                    warn!(action, target, operator = %who, status = e.0.as_u16(), reason = %e.1, "operator action refused")
                }
            }
            result
        }
        Err(e) => {
            warn!(action, target, remote = %remote, "operator action without a valid bearer token: refused");
            Err(e)
        }
    };
    let code = match &result {
        Ok((code, _)) => *code,
        Err(e) => e.0,
    };
    crate::metrics::global()
        .operator_actions
        .inc(&[action, code.as_str()]);
    result
}

/// `POST /api/studies/{study_uid}/force`.
pub async fn force_study(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(study_uid): Path<String>,
) -> Answer {
    let s = state.clone();
    act(
        &state,
        &headers,
        remote,
        "force_study",
        &study_uid.clone(),
        |_| async move {
            let results = s.control.force(&study_uid).await?;
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "study_uid": study_uid, "results": results })),
            ))
        },
    )
    .await
}

/// `POST /api/jobs/{id}/rerun`.
pub async fn rerun_job(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Answer {
    let s = state.clone();
    act(&state, &headers, remote, "rerun_job", &id.to_string(), |_| async move {
        let job = blocking(&s, move |s| Ok(s.spool.jobs().row(id)?))
            .await?
            .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no job {id}")))?;
        s.control.rerun(&job.pipeline, &job.study_uid).await?;
        Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "job": id, "pipeline": job.pipeline, "study_uid": job.study_uid, "queued": true })),
        ))
    })
    .await
}

/// `POST /api/outbox/{id}/resend`: a dead-lettered delivery goes back to pending, its
/// attempts counted from zero; the same SEG file (same SOP Instance UID) is sent.
pub async fn resend_delivery(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Answer {
    let s = state.clone();
    act(
        &state,
        &headers,
        remote,
        "resend_delivery",
        &id.to_string(),
        |_| async move {
            let (row, requeued) = blocking(&s, move |s| {
                let row = s.spool.outbox().row(id)?;
                let requeued = row.is_some() && s.spool.outbox().requeue_dead(id)?;
                Ok((row, requeued))
            })
            .await?;
            let Some(row) = row else {
                return Err(ApiError(StatusCode::NOT_FOUND, format!("no delivery {id}")));
            };
            if !requeued {
                return Err(ApiError(
                    StatusCode::CONFLICT,
                    format!(
                        "delivery {id} is {}, not dead: only dead-lettered deliveries are re-sent",
                        row.state
                    ),
                ));
            }
            s.destinations.wake_sender();
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "delivery": id, "destination": row.destination, "state": "pending" })),
            ))
        },
    )
    .await
}

/// `POST /api/destinations/{name}/pause`.
pub async fn pause_destination(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Answer {
    set_paused(state, remote, headers, name, true).await
}

/// `POST /api/destinations/{name}/resume`.
pub async fn resume_destination(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Answer {
    set_paused(state, remote, headers, name, false).await
}

async fn set_paused(
    state: Arc<HttpState>,
    remote: SocketAddr,
    headers: HeaderMap,
    name: String,
    paused: bool,
) -> Answer {
    let action = if paused {
        "pause_destination"
    } else {
        "resume_destination"
    };
    let s = state.clone();
    act(
        &state,
        &headers,
        remote,
        action,
        &name.clone(),
        |_| async move {
            s.destinations
                .set_paused(&name, paused)
                .map_err(|e| ApiError(StatusCode::NOT_FOUND, e.to_string()))?;
            Ok((
                StatusCode::OK,
                Json(json!({ "destination": name, "paused": paused })),
            ))
        },
    )
    .await
}

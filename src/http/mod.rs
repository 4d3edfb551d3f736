//! The admin HTTP server that runs inside `serve` (axum on the node's tokio runtime, its
//! own listener, never on the DICOM path): health (`/healthz`, `/readyz`), Prometheus
//! metrics (`/metrics`), a read API (`/api/*`), operator actions (POST, bearer token) and
//! a live dashboard at `/`.
//!
//! Files: `state` (what handlers share), `health`, `exposition` (`/metrics`), `api` (JSON
//! reads), `auth` (bearer token, who asked), `actions` (POSTs), `dashboard` (the page),
//! `thumbnail` (mask outlined on its source, PNG), `client` (a minimal HTTP/1.1 GET/POST
//! for `segnode status --json` and tests).

mod actions;
mod api;
mod auth;
pub mod client;
mod dashboard;
mod exposition;
pub mod health;
mod state;
mod thumbnail;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use tracing::info;

pub use exposition::CONTENT_TYPE as METRICS_CONTENT_TYPE;
pub use state::{HttpState, ModelInfo};

/// The routes.
pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/", get(dashboard::dashboard))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(exposition::metrics))
        .route("/api/status", get(api::status))
        .route("/api/studies", get(api::studies))
        .route("/api/jobs", get(api::jobs))
        .route("/api/jobs/{id}/thumbnail.png", get(thumbnail::thumbnail))
        .route("/api/outbox", get(api::outbox))
        .route("/api/config", get(api::config))
        .route("/api/studies/{study_uid}/force", post(actions::force_study))
        .route("/api/jobs/{id}/rerun", post(actions::rerun_job))
        .route("/api/outbox/{id}/resend", post(actions::resend_delivery))
        .route(
            "/api/destinations/{name}/pause",
            post(actions::pause_destination),
        )
        .route(
            "/api/destinations/{name}/resume",
            post(actions::resume_destination),
        )
        .with_state(state)
}

/// Serve the admin API on `listener` until `shutdown` resolves.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: Arc<HttpState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    info!(addr = %addr, token = state.token.is_some(), "admin HTTP listening (dashboard, /metrics, /readyz, /api)");
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

//! `GET /healthz` (the process answers) and `GET /readyz` (the node can do its job): one
//! entry per check, 200 when all pass, 503 otherwise, so a load balancer or an on-call
//! dashboard knows what is wrong without reading the log.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use super::state::HttpState;

/// The filer may lag this far behind the acknowledgements before the node is not ready.
pub const MAX_FILER_LAG: Duration = Duration::from_secs(30);

/// One readiness check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked (`journal`, `disk`, `model:<pipeline>`, `destination:<name>`).
    pub name: String,
    /// It passed.
    pub ok: bool,
    /// What was found, and on failure what to do.
    pub detail: String,
}

/// The `/readyz` body.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    /// Every check passed.
    pub ready: bool,
    /// The checks, in a fixed order.
    pub checks: Vec<Check>,
}

/// `GET /healthz`: the process is up and its runtime answers.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`.
pub async fn readyz(State(state): State<Arc<HttpState>>) -> (StatusCode, Json<Readiness>) {
    let readiness = tokio::task::spawn_blocking(move || readiness(&state))
        .await
        .unwrap_or_else(|e| Readiness {
            ready: false,
            checks: vec![Check {
                name: "readiness".into(),
                ok: false,
                detail: format!("the checks panicked: {e}"),
            }],
        });
    let code = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(readiness))
}

/// Run every check (blocking: file system calls).
pub fn readiness(state: &HttpState) -> Readiness {
    let mut checks = vec![journal(state), disk(state)];
    checks.extend(state.models.iter().map(|m| {
        let present = m.file.is_file();
        Check {
            name: format!("model:{}", m.pipeline),
            ok: present,
            detail: if present {
                format!("loaded on {} ({}) from {}", m.device, m.precision, m.file.display())
            } else {
                format!(
                    "loaded on {}, but its file {} is missing: the pipeline cannot start again; restore the file (make models) before restarting",
                    m.device,
                    m.file.display()
                )
            },
        }
    }));
    for (name, d) in state.destinations.snapshot() {
        let (ok, detail) = match (&d.last_contact, d.paused) {
            (_, true) => (true, "paused by an operator".to_string()),
            (None, false) => (true, "not contacted yet".to_string()),
            (Some(c), false) => (
                c.ok,
                if c.ok {
                    c.detail.clone()
                } else {
                    format!(
                        "{} (check the peer and the [[destinations]] entry)",
                        c.detail
                    )
                },
            ),
        };
        checks.push(Check {
            name: format!("destination:{name}"),
            ok,
            detail,
        });
    }
    Readiness {
        ready: checks.iter().all(|c| c.ok),
        checks,
    }
}

fn journal(state: &HttpState) -> Check {
    let (unfiled, lag) = state.spool.filer_backlog();
    let ok = lag <= MAX_FILER_LAG;
    Check {
        name: "journal".into(),
        ok,
        detail: if ok {
            format!(
                "open; {unfiled} instances not yet filed, filer lag {:.1} s",
                lag.as_secs_f64()
            )
        } else {
            format!(
                "filer lag {:.0} s exceeds {} s with {unfiled} instances not yet filed: the disk is too slow or the filer is stuck; see the log",
                lag.as_secs_f64(),
                MAX_FILER_LAG.as_secs()
            )
        },
    }
}

fn disk(state: &HttpState) -> Check {
    let floor_mb = state.config.storage.min_free_disk_mb;
    match state.spool.free_bytes() {
        Ok(free) => {
            let free_mb = free / (1024 * 1024);
            let ok = free_mb >= floor_mb;
            Check {
                name: "disk".into(),
                ok,
                detail: if ok {
                    format!("{free_mb} MiB free, floor {floor_mb} MiB")
                } else {
                    format!(
                        "{free_mb} MiB free is below storage.min_free_disk_mb = {floor_mb}: C-STOREs are refused; free space in {}",
                        state.spool.root().display()
                    )
                },
            }
        }
        Err(e) => Check {
            name: "disk".into(),
            ok: false,
            detail: format!(
                "cannot read free space of {}: {e}",
                state.spool.root().display()
            ),
        },
    }
}

//! The live dashboard at `/`: one server-rendered HTML page with its style and a few lines
//! of script inline (hospital networks are offline: no CDN, no external asset). It
//! refreshes itself and shows the node at a glance: readiness, instances and studies in
//! the last hour, the queue, the studies collecting and what each waits for, recent jobs
//! with findings and a mask thumbnail, the outbox with its action buttons.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Html;
use serde_json::Value;

use super::api::{ApiError, assembly, blocking};
use super::health;
use super::state::HttpState;
use crate::pipeline::assembler::CollectingStudy;
use crate::spool::{Activity, DeliveryState, JobRow, OutboxRecord};

/// Seconds between refreshes.
pub const REFRESH_SECONDS: u32 = 5;
/// Jobs and deliveries shown.
const ROWS: usize = 12;

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// HTML-escape text.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Everything one page shows.
struct Page {
    readiness: health::Readiness,
    hour: Activity,
    collecting: Vec<CollectingStudy>,
    queued: usize,
    jobs: Vec<JobRow>,
    deliveries: Vec<OutboxRecord>,
}

/// `GET /`.
pub async fn dashboard(State(state): State<Arc<HttpState>>) -> Result<Html<String>, ApiError> {
    let view = assembly(&state).await?;
    let page = blocking(&state, move |s| {
        Ok(Page {
            readiness: health::readiness(s),
            hour: s.spool.activity_since(unix_ms() - 3_600_000)?,
            collecting: view.studies,
            queued: view.queued_jobs,
            jobs: s.spool.jobs().recent(ROWS)?,
            deliveries: s.spool.outbox().recent(ROWS)?,
        })
    })
    .await?;
    Ok(Html(render(&state, &page)))
}

fn render(state: &HttpState, page: &Page) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <title>segnode {ae}</title><style>{STYLE}</style></head><body>\
         <header><h1>segnode <span>{ae}</span></h1><div id=\"ready\" class=\"{cls}\">{ready}</div>\
         <div class=\"meta\">v{version} · up {up} · DICOM port {port}</div></header>",
        ae = esc(state.config.node.ae_title.as_str()),
        cls = if page.readiness.ready { "ok" } else { "bad" },
        ready = if page.readiness.ready {
            "READY"
        } else {
            "NOT READY"
        },
        version = env!("CARGO_PKG_VERSION"),
        up = human_seconds(state.started.elapsed().as_secs_f64()),
        port = state.config.node.port,
    );
    tiles(&mut h, page);
    checks(&mut h, &page.readiness);
    collecting(&mut h, &page.collecting);
    jobs(&mut h, &page.jobs);
    outbox(&mut h, state, &page.deliveries);
    let _ = write!(
        h,
        "<footer><label>Bearer token for actions <input id=\"token\" type=\"password\" \
         autocomplete=\"off\"></label> <span id=\"msg\"></span> · refreshes every {REFRESH_SECONDS} s · \
         <a href=\"/metrics\">metrics</a> · <a href=\"/readyz\">readyz</a> · \
         <a href=\"/api/status\">api</a></footer><script>{SCRIPT}</script></body></html>"
    );
    h
}

fn tiles(h: &mut String, page: &Page) {
    let dead = page
        .deliveries
        .iter()
        .filter(|d| d.state == DeliveryState::Dead)
        .count();
    let pending = page
        .deliveries
        .iter()
        .filter(|d| d.state == DeliveryState::Pending)
        .count();
    h.push_str("<section class=\"tiles\">");
    for (label, value, id) in [
        (
            "instances / hour",
            page.hour.instances.to_string(),
            "instances-hour",
        ),
        (
            "studies / hour",
            page.hour.studies.to_string(),
            "studies-hour",
        ),
        ("jobs / hour", page.hour.jobs.to_string(), "jobs-hour"),
        (
            "collecting",
            page.collecting.len().to_string(),
            "collecting-count",
        ),
        ("job queue", page.queued.to_string(), "queue"),
        ("outbox pending", pending.to_string(), "outbox-pending"),
        ("dead letters", dead.to_string(), "dead"),
    ] {
        let _ = write!(
            h,
            "<div class=\"tile\"><b id=\"{id}\">{value}</b><span>{label}</span></div>"
        );
    }
    h.push_str("</section>");
}

fn checks(h: &mut String, readiness: &health::Readiness) {
    h.push_str("<section><h2>Readiness</h2><table><tr><th>check</th><th></th><th>detail</th></tr>");
    for c in &readiness.checks {
        let _ = write!(
            h,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td></tr>",
            if c.ok { "ok" } else { "bad" },
            esc(&c.name),
            if c.ok { "ok" } else { "FAIL" },
            esc(&c.detail)
        );
    }
    h.push_str("</table></section>");
}

fn collecting(h: &mut String, studies: &[CollectingStudy]) {
    h.push_str("<section id=\"collecting\"><h2>Studies collecting</h2>");
    if studies.is_empty() {
        h.push_str("<p class=\"none\">none</p></section>");
        return;
    }
    h.push_str(
        "<table><tr><th>pipeline</th><th>study</th><th>channels</th><th>waiting for</th>\
         <th>forced in</th><th></th></tr>",
    );
    for s in studies {
        let mut channels = String::new();
        for c in &s.channels {
            if c.present {
                let short = c.slices < s.min_slices;
                let _ = write!(
                    channels,
                    "<span class=\"ch {}\">{} {}/{}</span>",
                    if short { "short" } else { "have" },
                    esc(&c.name),
                    c.slices,
                    s.min_slices
                );
            } else {
                let _ = write!(
                    channels,
                    "<span class=\"ch missing\">missing {}</span>",
                    esc(&c.name)
                );
            }
        }
        let _ = write!(
            h,
            "<tr class=\"study\"><td>{}</td><td class=\"uid\">{}</td><td>{}</td><td>{}</td>\
             <td>{} ({})</td><td><button data-post=\"/api/studies/{}/force\">Force complete</button></td></tr>",
            esc(&s.pipeline),
            esc(&s.study_uid),
            channels,
            esc(&s.waiting_for),
            human_seconds(s.forced_in_seconds),
            s.force_policy,
            esc(&s.study_uid),
        );
    }
    h.push_str("</table></section>");
}

fn findings_text(findings: &Option<Value>) -> String {
    let Some(Value::Array(items)) = findings else {
        return String::new();
    };
    items
        .iter()
        .map(|f| {
            let label = f["label"].as_str().unwrap_or("?");
            if let Some(ml) = f["volume_ml"].as_f64() {
                format!("{label}: {ml:.2} mL")
            } else if let Some(mm2) = f["area_mm2"].as_f64() {
                format!("{label}: {mm2:.0} mm²")
            } else {
                format!("{label}: {} voxels", f["voxels"])
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn jobs(h: &mut String, jobs: &[JobRow]) {
    h.push_str("<section id=\"jobs\"><h2>Recent jobs</h2>");
    if jobs.is_empty() {
        h.push_str("<p class=\"none\">none yet</p></section>");
        return;
    }
    h.push_str(
        "<table><tr><th>job</th><th>pipeline</th><th>study</th><th>state</th><th>findings</th>\
         <th>time</th><th>mask</th><th></th></tr>",
    );
    for j in jobs {
        let total: f64 = j
            .timings
            .as_ref()
            .and_then(Value::as_object)
            .map_or(0.0, |t| t.values().filter_map(Value::as_f64).sum());
        let detail = match &j.error {
            Some(e) => format!("<span class=\"err\">{}</span>", esc(e)),
            None => esc(&findings_text(&j.findings)),
        };
        let thumb = if j.seg_path.is_some() {
            format!(
                "<img class=\"thumb\" alt=\"mask of job {}\" src=\"/api/jobs/{}/thumbnail.png\">",
                j.id, j.id
            )
        } else {
            String::new()
        };
        let _ = write!(
            h,
            "<tr class=\"job {state}\" id=\"job-{id}\"><td>{id}</td><td>{p}</td><td class=\"uid\">{study}</td>\
             <td>{state} <small>({trigger})</small></td><td class=\"findings\">{detail}</td><td>{total:.2} s</td>\
             <td>{thumb}</td><td><button data-post=\"/api/jobs/{id}/rerun\">Re-run</button></td></tr>",
            id = j.id,
            p = esc(&j.pipeline),
            study = esc(&j.study_uid),
            state = j.state,
            trigger = j.trigger,
        );
    }
    h.push_str("</table></section>");
}

fn outbox(h: &mut String, state: &HttpState, deliveries: &[OutboxRecord]) {
    h.push_str("<section id=\"outbox\"><h2>Outbox</h2><table><tr><th>destination</th><th>state</th><th>last answer</th><th></th></tr>");
    let destinations = state.destinations.snapshot();
    if destinations.is_empty() {
        h.push_str("<tr><td colspan=\"4\" class=\"none\">no [[destinations]] configured: SEGs stay in the results folder</td></tr>");
    }
    for (name, d) in &destinations {
        let last = d.last_contact.as_ref().map_or_else(
            || "not contacted yet".to_string(),
            |c| {
                format!(
                    "{} {} ago: {}",
                    if c.ok { "ok" } else { "FAILED" },
                    human_seconds((unix_ms() - c.at_ms) as f64 / 1000.0),
                    c.detail
                )
            },
        );
        let (label, action) = if d.paused {
            ("Resume", "resume")
        } else {
            ("Pause", "pause")
        };
        let _ = write!(
            h,
            "<tr><td>{n}</td><td>{s}</td><td>{last}</td><td><button data-post=\"/api/destinations/{n}/{action}\">{label}</button></td></tr>",
            n = esc(name),
            s = if d.paused { "paused" } else { "active" },
            last = esc(&last),
        );
    }
    h.push_str("</table>");
    if !deliveries.is_empty() {
        h.push_str("<table><tr><th>delivery</th><th>destination</th><th>study</th><th>state</th><th>attempts</th><th>last error</th><th></th></tr>");
        for d in deliveries {
            let button = if d.state == DeliveryState::Dead {
                format!(
                    "<button data-post=\"/api/outbox/{}/resend\">Re-send</button>",
                    d.id
                )
            } else {
                String::new()
            };
            let _ = write!(
                h,
                "<tr class=\"delivery {state}\"><td>{id}</td><td>{dest}</td><td class=\"uid\">{study}</td><td>{state}</td>\
                 <td>{attempts}</td><td>{err}</td><td>{button}</td></tr>",
                id = d.id,
                dest = esc(&d.destination),
                study = esc(&d.study_uid),
                state = d.state,
                attempts = d.attempts,
                err = esc(d.last_error.as_deref().unwrap_or("")),
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</section>");
}

/// `42 s`, `7 min`, `3.5 h`.
fn human_seconds(s: f64) -> String {
    if s < 90.0 {
        format!("{s:.0} s")
    } else if s < 5400.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:0;background:#f4f5f7;color:#222}\
header{display:flex;align-items:center;gap:16px;padding:10px 18px;background:#1f2a38;color:#fff}\
h1{font-size:20px;margin:0}h1 span{color:#9cc3ff}h2{font-size:15px;margin:14px 0 6px}\
#ready{padding:3px 10px;border-radius:4px;font-weight:bold}#ready.ok{background:#2e7d32}#ready.bad{background:#c62828}\
.meta{margin-left:auto;color:#c8d0da}section{padding:0 18px}\
.tiles{display:flex;gap:10px;padding-top:12px;flex-wrap:wrap}\
.tile{background:#fff;border-radius:6px;padding:8px 14px;min-width:110px;box-shadow:0 1px 2px #0002}\
.tile b{display:block;font-size:22px}.tile span{color:#666;font-size:12px}\
table{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px #0002;margin-bottom:6px}\
th,td{padding:4px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:middle}\
th{background:#e9ecf1;font-weight:600}tr.bad td{color:#c62828}.uid{font-family:monospace;font-size:11px;max-width:260px;word-break:break-all}\
.ch{display:inline-block;margin:1px 3px;padding:1px 6px;border-radius:3px;font-size:12px}\
.ch.have{background:#e3f2e5}.ch.short{background:#fff3cd}.ch.missing{background:#fde2e1;color:#b71c1c;font-weight:bold}\
.err{color:#c62828}.none{color:#777}img.thumb{height:120px;image-rendering:pixelated;border-radius:3px}\
tr.failed td{background:#fff5f5}tr.dead td{background:#fff5f5}button{cursor:pointer}\
footer{padding:12px 18px;color:#555}";

const SCRIPT: &str = "const t=document.getElementById('token');t.value=localStorage.getItem('segnodeToken')||'';\
t.addEventListener('input',()=>localStorage.setItem('segnodeToken',t.value));\
document.querySelectorAll('button[data-post]').forEach(b=>b.addEventListener('click',async()=>{\
const h={};if(t.value)h['Authorization']='Bearer '+t.value;h['X-Operator']='dashboard';\
const r=await fetch(b.dataset.post,{method:'POST',headers:h});const j=await r.json().catch(()=>({}));\
document.getElementById('msg').textContent=b.textContent+': '+r.status+' '+(j.error||'done');\
if(r.ok)setTimeout(()=>location.reload(),800);}));";

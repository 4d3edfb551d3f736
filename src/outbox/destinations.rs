//! What the node knows about each destination right now: whether an operator paused it,
//! and the last thing it answered (a delivery or a C-ECHO probe). Shared between the
//! sender, the periodic prober and the admin API; in memory only (a restart resumes every
//! destination).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

/// The last answer of a destination.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LastContact {
    /// It answered (C-ECHO success, or an instance acknowledged).
    pub ok: bool,
    /// When (ms since the Unix epoch).
    pub at_ms: i64,
    /// What was tried and, on failure, why it failed.
    pub detail: String,
}

/// One destination as the admin API shows it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DestinationState {
    /// Deliveries held back by an operator.
    pub paused: bool,
    /// The last answer, if any yet.
    pub last_contact: Option<LastContact>,
}

/// Every configured destination's state.
#[derive(Debug, Default)]
pub struct Destinations {
    states: Mutex<BTreeMap<String, DestinationState>>,
    /// Poked on resume and re-send so the sender looks at the table at once.
    pub(super) wake: std::sync::Arc<Notify>,
}

/// Why a destination request was refused.
#[derive(Debug, thiserror::Error)]
#[error("no destination named {0:?} in the node config's [[destinations]]")]
pub struct UnknownDestination(pub String);

impl Destinations {
    /// States for these destination names, none paused, nothing heard yet.
    pub fn new(names: impl IntoIterator<Item = String>, wake: std::sync::Arc<Notify>) -> Self {
        Destinations {
            states: Mutex::new(
                names
                    .into_iter()
                    .map(|n| (n, DestinationState::default()))
                    .collect(),
            ),
            wake,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, DestinationState>> {
        self.states.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every destination, by name.
    pub fn snapshot(&self) -> BTreeMap<String, DestinationState> {
        self.lock().clone()
    }

    /// Hold back (or release) the deliveries of `name`.
    pub fn set_paused(&self, name: &str, paused: bool) -> Result<(), UnknownDestination> {
        let mut states = self.lock();
        let state = states
            .get_mut(name)
            .ok_or_else(|| UnknownDestination(name.to_string()))?;
        state.paused = paused;
        drop(states);
        if !paused {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Whether `name` is paused.
    pub fn is_paused(&self, name: &str) -> bool {
        self.lock().get(name).is_some_and(|s| s.paused)
    }

    /// Record what `name` answered just now.
    pub fn record(&self, name: &str, ok: bool, detail: impl Into<String>) {
        if let Some(state) = self.lock().get_mut(name) {
            state.last_contact = Some(LastContact {
                ok,
                at_ms: super::now_ms(),
                detail: detail.into(),
            });
        }
    }

    /// Wake the sender (after a dead delivery was queued again).
    pub fn wake_sender(&self) {
        self.wake.notify_one();
    }
}

/// C-ECHO every DIMSE destination every `every`, recording the answers, until the task is
/// dropped or aborted. A destination that fails is not retried faster: the sender already
/// probes before each retry.
pub async fn probe_periodically(
    config: std::sync::Arc<crate::config::Config>,
    destinations: std::sync::Arc<Destinations>,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // STOW-RS destinations have no verification service; their deliveries are the
        // only answers recorded.
        for d in &config.destinations {
            let Some(peer) = d.peer() else { continue };
            let opts = super::dimse::scu_options(d, &config);
            match super::dimse::probe(&peer, &opts).await {
                Ok(()) => destinations.record(&d.name, true, format!("C-ECHO {peer}: answered")),
                Err(e) => destinations.record(&d.name, false, e),
            }
        }
    }
}

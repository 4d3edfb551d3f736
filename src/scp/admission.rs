//! Who gets in, and when. A connection first takes a *pending* place (at most
//! `network.max_pending_associations`, and `network.max_pending_per_host` from one IP
//! address) and must finish its A-ASSOCIATE-RQ within the ARTIM timeout. Only a negotiated
//! association takes one of the `network.max_associations` slots. Silent or half-open
//! sockets therefore cost a pending place for at most ARTIM seconds and never lock a
//! legitimate sender out of the slots.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::NetworkConfig;

/// The node's admission limits, shared by the accept loop and the association tasks.
#[derive(Debug)]
pub(crate) struct Admission {
    pending: Arc<Semaphore>,
    slots: Arc<Semaphore>,
    per_host_limit: usize,
    per_host: Mutex<HashMap<IpAddr, usize>>,
}

/// A connection from a host that already has its limit of pending connections.
#[derive(Debug)]
pub(crate) struct TooManyFromHost {
    /// Pending connections from that host.
    pub(crate) pending: usize,
}

impl Admission {
    /// Limits from the configuration.
    pub(crate) fn new(network: &NetworkConfig) -> Arc<Self> {
        Arc::new(Admission {
            pending: Arc::new(Semaphore::new(network.max_pending_associations)),
            slots: Arc::new(Semaphore::new(network.max_associations)),
            per_host_limit: network.max_pending_per_host,
            per_host: Mutex::new(HashMap::new()),
        })
    }

    /// Wait for a pending place (connections beyond wait in the listen backlog).
    pub(crate) async fn pending_place(&self) -> OwnedSemaphorePermit {
        Arc::clone(&self.pending)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// Count an accepted connection against its host, or refuse it.
    pub(crate) fn admit(
        self: &Arc<Self>,
        host: IpAddr,
        place: OwnedSemaphorePermit,
    ) -> Result<Pending, TooManyFromHost> {
        let mut per_host = self.per_host.lock().unwrap_or_else(|p| p.into_inner());
        let count = per_host.entry(host).or_insert(0);
        if *count >= self.per_host_limit {
            return Err(TooManyFromHost { pending: *count });
        }
        *count += 1;
        Ok(Pending {
            admission: Arc::clone(self),
            host,
            _place: place,
        })
    }

    fn leave(&self, host: IpAddr) {
        let mut per_host = self.per_host.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = per_host.get_mut(&host) {
            *count -= 1;
            if *count == 0 {
                per_host.remove(&host);
            }
        }
    }
}

/// A connection that has not become a served association yet; its places are given back
/// when it is dropped.
#[derive(Debug)]
pub(crate) struct Pending {
    admission: Arc<Admission>,
    host: IpAddr,
    _place: OwnedSemaphorePermit,
}

impl Pending {
    /// Trade the pending place for an association slot, waiting at most `wait`; `None`
    /// when every slot stayed busy.
    pub(crate) async fn into_slot(self, wait: Duration) -> Option<OwnedSemaphorePermit> {
        let slots = Arc::clone(&self.admission.slots);
        let slot = tokio::time::timeout(wait, slots.acquire_owned()).await;
        drop(self);
        slot.ok().map(|s| s.expect("the semaphore is never closed"))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.admission.leave(self.host);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_host_cannot_take_every_pending_place() {
        let network = NetworkConfig {
            max_pending_associations: 4,
            max_pending_per_host: 2,
            ..NetworkConfig::default()
        };
        let admission = Admission::new(&network);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let a: IpAddr = "127.0.0.2".parse().unwrap();
            let b: IpAddr = "127.0.0.1".parse().unwrap();
            let first = admission.admit(a, admission.pending_place().await).unwrap();
            let _second = admission.admit(a, admission.pending_place().await).unwrap();
            assert!(admission.admit(a, admission.pending_place().await).is_err());
            let _other = admission.admit(b, admission.pending_place().await).unwrap();
            drop(first);
            let _again = admission.admit(a, admission.pending_place().await).unwrap();
        });
    }
}

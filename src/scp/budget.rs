//! The node's memory budget for data sets in flight: the bytes all associations together
//! hold in memory while data sets arrive. A reassembler takes from it as fragments come and
//! gives back when the data set is stored or dropped; when the budget is spent, data sets
//! arriving go to spill files instead, so the node's memory never grows with what peers
//! send (`network.memory_budget_mb`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes that may be held, and bytes held now.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    used: AtomicU64,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(MemoryBudget {
            limit,
            used: AtomicU64::new(0),
        })
    }

    /// Bytes held now.
    pub fn in_use(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// The configured limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    fn try_take(&self, n: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |used| {
                used.checked_add(n).filter(|&after| after <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, n: u64) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Bytes one data set holds of the budget; given back when dropped.
#[derive(Debug)]
pub struct Lease {
    budget: Arc<MemoryBudget>,
    bytes: u64,
}

impl Lease {
    /// A lease of nothing yet.
    pub fn new(budget: &Arc<MemoryBudget>) -> Self {
        Lease {
            budget: Arc::clone(budget),
            bytes: 0,
        }
    }

    /// Hold `total` bytes in all, if the budget has them; `false` leaves the lease as it was.
    pub fn grow_to(&mut self, total: u64) -> bool {
        if total <= self.bytes {
            return true;
        }
        if !self.budget.try_take(total - self.bytes) {
            return false;
        }
        self.bytes = total;
        true
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_share_the_limit_and_give_back_on_drop() {
        let budget = MemoryBudget::new(100);
        let mut a = Lease::new(&budget);
        let mut b = Lease::new(&budget);
        assert!(a.grow_to(60));
        assert!(!b.grow_to(50));
        assert_eq!(b.bytes(), 0);
        assert!(b.grow_to(40));
        assert_eq!(budget.in_use(), 100);
        drop(a);
        assert_eq!(budget.in_use(), 40);
        assert!(b.grow_to(90));
        drop(b);
        assert_eq!(budget.in_use(), 0);
    }
}

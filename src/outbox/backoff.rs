//! How long a failed delivery waits: exponential from `initial_delay_seconds`, doubled per
//! failed attempt, capped at `max_delay_seconds`, with ±20 % jitter so that many SEGs for
//! one peer that comes back do not all retry in the same second. The jitter is a hash of
//! the row and the attempt (deterministic, no random-number crate).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use crate::config::OutboxConfig;

/// The retry policy of the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub initial: Duration,
    /// No delay is longer.
    pub max: Duration,
    /// Attempts in all before a delivery is dead-lettered.
    pub max_attempts: u32,
}

impl Backoff {
    /// The policy in the config.
    pub fn from_config(c: &OutboxConfig) -> Self {
        Self {
            initial: Duration::from_secs(c.initial_delay_seconds),
            max: Duration::from_secs(c.max_delay_seconds),
            max_attempts: c.max_attempts,
        }
    }

    /// Whether a delivery that has now failed `attempts` times is given up.
    pub fn exhausted(&self, attempts: u32) -> bool {
        attempts >= self.max_attempts
    }

    /// The wait after the `attempts`-th failure (1 for the first) of row `row_id`:
    /// `initial · 2^(attempts-1)`, jittered by ±20 %, never above `max`.
    pub fn delay(&self, attempts: u32, row_id: i64) -> Duration {
        let doublings = attempts.saturating_sub(1).min(30);
        let base = self.initial.saturating_mul(1 << doublings).min(self.max);
        let mut h = DefaultHasher::new();
        (row_id, attempts).hash(&mut h);
        // A factor in [0.8, 1.2).
        let factor = 0.8 + 0.4 * ((h.finish() % 10_000) as f64 / 10_000.0);
        base.mul_f64(factor).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Backoff {
        Backoff {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(300),
            max_attempts: 10,
        }
    }

    #[test]
    fn doubles_within_jitter_and_caps() {
        let p = policy();
        for attempts in 1..=12u32 {
            for row in 0..50 {
                let d = p.delay(attempts, row).as_secs_f64();
                let base = (2.0 * 2f64.powi(attempts as i32 - 1)).min(300.0);
                assert!(
                    d >= base * 0.8 - 1e-9 && d <= (base * 1.2).min(300.0) + 1e-9,
                    "attempt {attempts}, row {row}: {d} s vs base {base}"
                );
            }
        }
        assert!(p.delay(40, 1) <= p.max);
    }

    #[test]
    fn jitter_spreads_rows() {
        let p = policy();
        let delays: std::collections::HashSet<Duration> =
            (0..20).map(|row| p.delay(3, row)).collect();
        assert!(delays.len() > 10, "{delays:?}");
        assert_eq!(
            p.delay(3, 7),
            p.delay(3, 7),
            "deterministic per row and attempt"
        );
    }

    #[test]
    fn gives_up_at_max_attempts() {
        let p = policy();
        assert!(!p.exhausted(9));
        assert!(p.exhausted(10));
    }
}

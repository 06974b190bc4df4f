//! Exponential backoff with jitter between failed registration attempts (after
//! linkerd2-proxy's `exp-backoff`): 2 s, 4 s, 8 s … up to a cap, each ±20 %, so that many
//! lines behind one NAT or restarted by one power cut do not hammer the registrar in step.

use std::time::Duration;

use rand::Rng;

/// The first wait: long enough not to flood a registrar that is restarting, short
/// enough that a brief outage costs the parish few missed calls.
pub const BASE: Duration = Duration::from_secs(2);
/// Each wait is its nominal value times a factor drawn from `1 ± JITTER`.
pub const JITTER: f64 = 0.2;

#[derive(Debug, Clone)]
pub struct Backoff {
    max: Duration,
    /// Failures since the last success.
    failures: u32,
}

impl Backoff {
    pub fn new(max: Duration) -> Backoff {
        Backoff { max, failures: 0 }
    }

    /// The nominal wait after the `failures`-th failure in a row (1-based), before jitter.
    pub fn nominal(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        BASE.saturating_mul(1 << doublings).min(self.max)
    }

    /// Counts a failure and returns how long to wait before the next attempt, its jitter
    /// drawn from `rng`; never more than the cap, never zero.
    pub fn next_wait(&mut self, rng: &mut (impl Rng + ?Sized)) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let factor = rng.random_range(1.0 - JITTER..=1.0 + JITTER);
        self.nominal(self.failures).mul_f64(factor).min(self.max)
    }

    /// A success: the next failure starts again from [`BASE`].
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_up_to_the_cap_and_resets() {
        let max = Duration::from_secs(60);
        let mut backoff = Backoff::new(max);
        let rng = &mut rand::rng();
        let mut saw_spread = false;
        for round in 0..50 {
            backoff.reset();
            let waits: Vec<Duration> = (0..10).map(|_| backoff.next_wait(rng)).collect();
            for (i, wait) in waits.iter().enumerate() {
                let nominal = (BASE * (1 << i)).min(max);
                assert!(
                    *wait >= nominal.mul_f64(0.8),
                    "round {round}: {i}: {wait:?}"
                );
                assert!(*wait <= nominal.mul_f64(1.2).min(max), "{i}: {wait:?}");
            }
            assert!(waits[9] <= max);
            saw_spread |= waits[0] != BASE;
        }
        assert!(saw_spread, "jitter never moved the first wait off 2 s");
        // Far past the point where 2^n overflows, the cap still holds.
        for _ in 0..100 {
            assert!(backoff.next_wait(rng) <= max);
        }
    }
}

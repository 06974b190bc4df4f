//! Engine counters and the send-lateness histogram.
//!
//! Each worker writes its own [`WorkerStats`] with relaxed atomics (a few ns
//! per packet, no lock); [`super::MediaEngine::stats`] reads and merges them.
//! The histogram is log-linear like HDR histograms: 8 linear sub-buckets per
//! power of two of microseconds, so any percentile read from it is within
//! 12.5 % of the truth, from 1 µs to 71 minutes, in 240 counters.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

/// Sub-buckets per power of two, as a power of two.
const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
/// Values up to 2^32 µs; larger ones land in the last bucket.
const BUCKETS: usize = SUB + (32 - SUB_BITS as usize) * SUB;

fn bucket_of(micros: u64) -> usize {
    let v = micros.min(u64::from(u32::MAX));
    if v < SUB as u64 {
        return v as usize;
    }
    let exponent = 63 - v.leading_zeros();
    let sub = (v >> (exponent - SUB_BITS)) as usize & (SUB - 1);
    SUB + (exponent - SUB_BITS) as usize * SUB + sub
}

/// The largest value, in µs, that falls in `bucket`.
fn bucket_top(bucket: usize) -> u64 {
    if bucket < SUB {
        return bucket as u64;
    }
    let exponent = (bucket - SUB) / SUB;
    let sub = ((bucket - SUB) % SUB) as u64;
    ((SUB as u64 + sub + 1) << exponent) - 1
}

/// One worker's counters; only that worker writes them.
pub(super) struct WorkerStats {
    pub streams: AtomicUsize,
    pub packets_sent: AtomicU64,
    pub catch_ups: AtomicU64,
    pub underruns: AtomicU64,
    pub send_errors: AtomicU64,
    pub latches: AtomicU64,
    pub strangers: AtomicU64,
    lateness: [AtomicU64; BUCKETS],
    lateness_sum_us: AtomicU64,
    lateness_max_us: AtomicU64,
}

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats {
            streams: AtomicUsize::new(0),
            packets_sent: AtomicU64::new(0),
            catch_ups: AtomicU64::new(0),
            underruns: AtomicU64::new(0),
            send_errors: AtomicU64::new(0),
            latches: AtomicU64::new(0),
            strangers: AtomicU64::new(0),
            lateness: std::array::from_fn(|_| AtomicU64::new(0)),
            lateness_sum_us: AtomicU64::new(0),
            lateness_max_us: AtomicU64::new(0),
        }
    }
}

impl WorkerStats {
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// How long after its due instant a packet was handed to `send_to`.
    pub fn record_lateness(&self, late: Duration) {
        let micros = u64::try_from(late.as_micros()).unwrap_or(u64::MAX);
        self.lateness[bucket_of(micros)].fetch_add(1, Relaxed);
        self.lateness_sum_us.fetch_add(micros, Relaxed);
        self.lateness_max_us.fetch_max(micros, Relaxed);
    }

    pub fn snapshot(&self) -> EngineStats {
        EngineStats {
            workers: 1,
            streams_active: self.streams.load(Relaxed),
            packets_sent: self.packets_sent.load(Relaxed),
            catch_ups: self.catch_ups.load(Relaxed),
            underruns: self.underruns.load(Relaxed),
            send_errors: self.send_errors.load(Relaxed),
            latches: self.latches.load(Relaxed),
            strangers: self.strangers.load(Relaxed),
            lateness: Lateness {
                buckets: self.lateness.iter().map(|b| b.load(Relaxed)).collect(),
                sum_us: self.lateness_sum_us.load(Relaxed),
                max_us: self.lateness_max_us.load(Relaxed),
            },
        }
    }
}

/// A point-in-time copy of the engine's counters.
#[derive(Debug, Clone, Default)]
pub struct EngineStats {
    pub workers: usize,
    pub streams_active: usize,
    pub packets_sent: u64,
    /// Times a stream fell further behind than the catch-up window and had
    /// its clock re-anchored.
    pub catch_ups: u64,
    /// 20 ms slots with no frame ready (decoder behind), sent as silence.
    pub underruns: u64,
    pub send_errors: u64,
    /// Times a stream switched its destination to the caller's RTP source.
    pub latches: u64,
    /// RTP packets dropped because they came from someone not the caller.
    pub strangers: u64,
    pub lateness: Lateness,
}

impl EngineStats {
    pub fn merge(&mut self, other: &EngineStats) {
        self.workers += other.workers;
        self.streams_active += other.streams_active;
        self.packets_sent += other.packets_sent;
        self.catch_ups += other.catch_ups;
        self.underruns += other.underruns;
        self.send_errors += other.send_errors;
        self.latches += other.latches;
        self.strangers += other.strangers;
        self.lateness.merge(&other.lateness);
    }
}

impl fmt::Display for EngineStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "streams {} packets {} catch-ups {} underruns {} send-errors {} latches {} strangers {}; lateness {}",
            self.streams_active,
            self.packets_sent,
            self.catch_ups,
            self.underruns,
            self.send_errors,
            self.latches,
            self.strangers,
            self.lateness
        )
    }
}

/// Histogram of send lateness: how long after its due instant each packet
/// was sent.
#[derive(Debug, Clone, Default)]
pub struct Lateness {
    buckets: Vec<u64>,
    sum_us: u64,
    max_us: u64,
}

impl Lateness {
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    pub fn max(&self) -> Duration {
        Duration::from_micros(self.max_us)
    }

    pub fn sum(&self) -> Duration {
        Duration::from_micros(self.sum_us)
    }

    /// Packets whose bucket lies wholly at or under `bound` (a histogram
    /// bucket for exposition; within 12.5 % of `bound`, never over it).
    pub fn count_at_most(&self, bound: Duration) -> u64 {
        let bound = u64::try_from(bound.as_micros()).unwrap_or(u64::MAX);
        self.buckets
            .iter()
            .enumerate()
            .take_while(|(bucket, _)| bucket_top(*bucket) <= bound)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn mean(&self) -> Duration {
        match self.count() {
            0 => Duration::ZERO,
            n => Duration::from_micros(self.sum_us / n),
        }
    }

    /// The lateness `quantile` (0.0–1.0) of packets were at or under, as the
    /// top of its bucket (so it errs high), never above the maximum.
    pub fn quantile(&self, quantile: f64) -> Duration {
        let count = self.count();
        if count == 0 {
            return Duration::ZERO;
        }
        let rank = ((quantile.clamp(0.0, 1.0) * count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Duration::from_micros(bucket_top(bucket).min(self.max_us));
            }
        }
        self.max()
    }

    pub fn merge(&mut self, other: &Lateness) {
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
        self.sum_us += other.sum_us;
        self.max_us = self.max_us.max(other.max_us);
    }
}

impl fmt::Display for Lateness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {:?} p99 {:?} p99.9 {:?} max {:?} (n {})",
            self.quantile(0.5),
            self.quantile(0.99),
            self.quantile(0.999),
            self.max(),
            self.count()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values_in_order_within_an_eighth() {
        let mut last = 0;
        for v in [
            0u64,
            1,
            7,
            8,
            9,
            15,
            16,
            17,
            100,
            999,
            1000,
            1023,
            1024,
            65_000,
            1 << 31,
        ] {
            let b = bucket_of(v);
            assert!(b >= last, "buckets grow with values");
            last = b;
            let top = bucket_top(b);
            assert!(top >= v, "{v} sits under its bucket's top {top}");
            assert!(top - v <= v / 8, "{v}: bucket top {top} within 12.5 %");
            if b > 0 {
                assert!(bucket_top(b - 1) < v, "{v} is above the previous bucket");
            }
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_from_recorded_lateness() {
        let stats = WorkerStats::default();
        for _ in 0..98 {
            stats.record_lateness(Duration::from_micros(50));
        }
        stats.record_lateness(Duration::from_micros(900));
        stats.record_lateness(Duration::from_millis(30));
        let mut snap = stats.snapshot().lateness;
        assert_eq!(snap.count(), 100);
        assert_eq!(snap.quantile(0.5), Duration::from_micros(51));
        assert_eq!(snap.quantile(0.99), Duration::from_micros(959));
        assert_eq!(snap.quantile(1.0), Duration::from_millis(30));
        assert_eq!(snap.max(), Duration::from_millis(30));
        assert_eq!(
            snap.mean(),
            Duration::from_micros((98 * 50 + 900 + 30_000) / 100)
        );
        snap.merge(&stats.snapshot().lateness);
        assert_eq!(snap.count(), 200);
        assert_eq!(Lateness::default().quantile(0.99), Duration::ZERO);
        assert_eq!(snap.count_at_most(Duration::from_micros(100)), 196);
        assert_eq!(snap.count_at_most(Duration::from_millis(1)), 198);
        assert_eq!(snap.count_at_most(Duration::from_secs(1)), 200);
    }
}

//! A look-ahead true-peak limiter: the last stage before encoding, so no
//! sample, and approximately no reconstructed inter-sample peak, goes past
//! [`CEILING`]. G.711 has no headroom at all (µ-law's largest code decodes
//! to ±32124), and a clipped consonant is the harshest sound a hearing aid
//! passes on.
//!
//! The gain falls smoothly over the look-ahead before a peak arrives, so
//! the limiter turns peaks down rather than squaring them off, and recovers
//! over [`RELEASE`]; a final per-sample clamp makes the ceiling a guarantee
//! rather than an average.

use std::collections::VecDeque;
use std::time::Duration;

use super::true_peak::{self, TruePeakDetector};

/// −1 dBTP: EBU R128 (Tech 3343) advises at most −1 dBTP for material
/// that goes through a lossy codec, which Opus is; the same margin keeps
/// G.711's rebuilt waveform inside its range.
pub const CEILING: f32 = 0.891_250_9;

/// Long enough for a smooth turn-down (5 ms, far below what the ear
/// resolves as a level change), short enough not to be heard as a delay.
pub const LOOK_AHEAD: Duration = Duration::from_millis(5);

/// Recovery after a peak: slow enough not to pump on syllables.
pub const RELEASE: Duration = Duration::from_millis(150);

/// What the limiter did, for `check` and the log.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LimiterActivity {
    /// Samples it turned down at all (by more than 0.1 dB).
    pub samples_limited: u64,
    pub samples_total: u64,
    /// The deepest turn-down, in dB (0 or negative).
    pub deepest_db: f32,
}

pub struct Limiter {
    detector: TruePeakDetector,
    /// Samples waiting for their gain: (sample, gain it needs).
    delay: VecDeque<(f32, f32)>,
    /// Needed gains of the samples in `delay`, kept as a monotonic queue
    /// (index, gain) so the window minimum costs O(1) per sample.
    minimum: VecDeque<(u64, f32)>,
    pushed: u64,
    look_ahead: usize,
    attack: f32,
    release: f32,
    gain: f32,
    activity: LimiterActivity,
}

impl Limiter {
    pub fn new(rate_hz: u32) -> Limiter {
        let look_ahead = samples(LOOK_AHEAD, rate_hz).max(1);
        Limiter {
            detector: TruePeakDetector::default(),
            delay: std::iter::repeat_n((0.0, 1.0), look_ahead).collect(),
            minimum: VecDeque::with_capacity(look_ahead + 1),
            pushed: 0,
            look_ahead,
            // About 99 % of the way to the needed gain within the look-ahead.
            attack: 1.0 - (-4.6 / look_ahead as f32).exp(),
            release: 1.0 - (-1.0 / samples(RELEASE, rate_hz).max(1) as f32).exp(),
            gain: 1.0,
            activity: LimiterActivity::default(),
        }
    }

    /// Samples between a sample going in and coming out of [`Limiter::push`].
    pub fn delay(&self) -> usize {
        self.look_ahead + true_peak::DELAY
    }

    /// Takes one sample, returns the limited sample [`Limiter::delay`]
    /// pushes ago (zeros at first).
    pub fn push(&mut self, sample: f32) -> f32 {
        let (sample, peak) = self.detector.push(sample);
        let needed = if peak > CEILING { CEILING / peak } else { 1.0 };
        let index = self.pushed;
        self.pushed += 1;
        while self.minimum.back().is_some_and(|&(_, g)| g >= needed) {
            self.minimum.pop_back();
        }
        self.minimum.push_back((index, needed));
        self.delay.push_back((sample, needed));
        let (out, out_needed) = self
            .delay
            .pop_front()
            .expect("invariant: the delay line holds look_ahead samples");
        // Only gains of samples still in the window (including the one
        // leaving now) count.
        let oldest = index.saturating_sub(self.look_ahead as u64);
        while self.minimum.front().is_some_and(|&(i, _)| i < oldest) {
            self.minimum.pop_front();
        }
        let target = self.minimum.front().map_or(1.0, |&(_, g)| g);
        let coefficient = if target < self.gain {
            self.attack
        } else {
            self.release
        };
        self.gain += (target - self.gain) * coefficient;
        let gain = self.gain.min(out_needed);
        self.note(gain);
        // The clamp only catches float rounding of `CEILING / peak`.
        (out * gain).clamp(-CEILING, CEILING)
    }

    pub fn activity(&self) -> LimiterActivity {
        self.activity
    }

    fn note(&mut self, gain: f32) {
        self.activity.samples_total += 1;
        if gain >= 1.0 {
            return; // the usual case, without a logarithm per sample
        }
        let db = 20.0 * gain.log10();
        if db < -0.1 {
            self.activity.samples_limited += 1;
        }
        self.activity.deepest_db = self.activity.deepest_db.min(db);
    }
}

/// Whole samples in `duration` at `rate_hz`.
pub(super) fn samples(duration: Duration, rate_hz: u32) -> usize {
    (duration.as_secs_f64() * f64::from(rate_hz)).round() as usize
}

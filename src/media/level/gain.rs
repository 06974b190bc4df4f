//! The loudness gain: brings a source's integrated loudness (ITU-R BS.1770,
//! gated as EBU R128 prescribes) to the target. The source itself is
//! metered as it passes, pre-gain, so when it ends its integrated loudness
//! is known (and remembered: [`super::memory`]).
//!
//! - Known loudness (measured on an earlier pass): one static gain, so the
//!   service's own dynamics are untouched by this stage.
//! - Unknown (a file never decoded before, whose first second must play at
//!   once): the first [`SEED`] is measured before any of it is let out, the
//!   gain starts there, then follows the gated loudness of everything so
//!   far at no more than [`SLEW_DB_PER_SECOND`], converging on the static
//!   gain as the file goes on.

use std::time::Duration;

use ebur128::{EbuR128, Mode};

use super::Lufs;

/// Measured before an unknown source's first sample is let out: three
/// BS.1770 gating blocks' worth and more, still within the one second
/// `TrackCache::open` decodes before answering.
pub const SEED: Duration = Duration::from_millis(800);

/// The adaptive gain moves no faster than this: a level change over
/// seconds is heard as the speaker, not as the line.
pub const SLEW_DB_PER_SECOND: f32 = 2.0;

/// A near-silent source is not raised past this (hiss would become the
/// programme); a blaring one is not lowered past [`MIN_GAIN_DB`].
pub const MAX_GAIN_DB: f32 = 30.0;
pub const MIN_GAIN_DB: f32 = -30.0;

/// The adaptive gain looks at the meter this often.
const UPDATE_EVERY: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
#[error("cannot meter loudness at {rate_hz} Hz: {reason}")]
pub struct MeterError {
    pub rate_hz: u32,
    pub reason: String,
}

pub struct LoudnessGain {
    target: Lufs,
    meter: EbuR128,
    rate_hz: u32,
    /// `true` while the gain follows the meter.
    adaptive: bool,
    gain_db: f32,
    desired_db: f32,
    since_update: usize,
}

impl LoudnessGain {
    /// `known`: the source's integrated loudness if measured before.
    pub fn new(rate_hz: u32, target: Lufs, known: Option<Lufs>) -> Result<Self, MeterError> {
        let meter =
            EbuR128::new(1, rate_hz, Mode::I | Mode::HISTOGRAM).map_err(|e| MeterError {
                rate_hz,
                reason: e.to_string(),
            })?;
        let gain_db = known.map_or(0.0, |measured| gain_to(target, measured));
        Ok(LoudnessGain {
            target,
            meter,
            rate_hz,
            adaptive: known.is_none(),
            gain_db,
            desired_db: gain_db,
            since_update: 0,
        })
    }

    pub fn is_adaptive(&self) -> bool {
        self.adaptive
    }

    /// The gain now, in dB.
    pub fn gain_db(&self) -> f32 {
        self.gain_db
    }

    /// Meters `samples` (pre-gain). For an adaptive gain, call with the
    /// seed and then [`LoudnessGain::start_at_measured`] before applying.
    pub fn measure(&mut self, samples: &[f32]) {
        // Only a wrong channel count fails, and there is one channel.
        let _ = self.meter.add_frames_f32(samples);
    }

    /// Jumps the adaptive gain to what the seed measured.
    pub fn start_at_measured(&mut self) {
        if let Some(measured) = self.measured() {
            self.desired_db = gain_to(self.target, measured);
            self.gain_db = self.desired_db;
        }
    }

    /// Meters and scales `samples` in place; the gain ramps across the
    /// block, so a change never clicks.
    pub fn apply(&mut self, samples: &mut [f32]) {
        self.measure(samples);
        let from = self.gain_db;
        if self.adaptive {
            self.since_update += samples.len();
            let every = super::limiter::samples(UPDATE_EVERY, self.rate_hz);
            if self.since_update >= every {
                self.since_update = 0;
                if let Some(measured) = self.measured() {
                    self.desired_db = gain_to(self.target, measured);
                }
            }
            let seconds = samples.len() as f32 / self.rate_hz as f32;
            let step = SLEW_DB_PER_SECOND * seconds;
            self.gain_db += (self.desired_db - self.gain_db).clamp(-step, step);
        }
        let to = self.gain_db;
        if from == to {
            let factor = 10f32.powf(to / 20.0);
            samples.iter_mut().for_each(|s| *s *= factor);
            return;
        }
        let n = samples.len().max(1) as f32;
        for (i, sample) in samples.iter_mut().enumerate() {
            let db = from + (to - from) * (i + 1) as f32 / n;
            *sample *= 10f32.powf(db / 20.0);
        }
    }

    /// Integrated (gated) loudness of everything metered; `None` while
    /// nothing is above the absolute gate (−70 LUFS) or under 400 ms.
    pub fn measured(&self) -> Option<Lufs> {
        let loudness = self.meter.loudness_global().ok()?;
        loudness.is_finite().then_some(Lufs(loudness))
    }
}

/// The gain from `measured` to `target`, within the limits.
pub fn gain_to(target: Lufs, measured: Lufs) -> f32 {
    ((target.0 - measured.0) as f32).clamp(MIN_GAIN_DB, MAX_GAIN_DB)
}

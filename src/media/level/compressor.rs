//! Gentle two-way compression around the loudness target, so a quiet
//! reader and a loud organ in one service sit closer together: passages
//! well below the target are raised a little (1.5:1, at most
//! [`MAX_BOOST_DB`]), passages above it lowered (2:1, at most
//! [`MAX_CUT_DB`]), with slow attack and release on a short-term level
//! (in the spirit of EBU R128's 3 s short-term loudness), so speech keeps
//! its natural rise and fall within a sentence. Near-silence (pauses, the
//! hiss between hymns) is left alone rather than lifted.
//!
//! Runs after the loudness gain, so "the target" is where the programme's
//! average already sits.

use std::time::Duration;

use super::limiter::samples;

/// Above target + this, turned down at [`CUT_RATIO`].
const CUT_ABOVE_DB: f32 = 2.0;
const CUT_RATIO: f32 = 2.0;
pub const MAX_CUT_DB: f32 = 8.0;

/// Below target − this, raised at [`BOOST_RATIO`].
const BOOST_BELOW_DB: f32 = 6.0;
const BOOST_RATIO: f32 = 1.5;
pub const MAX_BOOST_DB: f32 = 6.0;
/// Below target − this, the boost fades out, to nothing at
/// [`SILENCE_BELOW_DB`]: a pause is not a quiet reader.
const FADE_BELOW_DB: f32 = 30.0;
const SILENCE_BELOW_DB: f32 = 40.0;

/// A loud passage is turned down over about a second; a quiet one comes up
/// over a few (slow, so a breath between sentences is not lifted).
const ATTACK: Duration = Duration::from_millis(800);
const RELEASE: Duration = Duration::from_secs(3);

/// What the compressor did, for `check` and the log.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CompressorActivity {
    /// The most it raised anything, in dB (≥ 0).
    pub most_raised_db: f32,
    /// The most it lowered anything, in dB (≥ 0).
    pub most_lowered_db: f32,
}

pub struct Compressor {
    /// Target as a mean-square power of the signal.
    target_db: f32,
    /// Smoothed mean square of the input.
    envelope: f32,
    attack: f32,
    release: f32,
    /// The gain now (linear), and samples until it is worked out again.
    gain: f32,
    until_update: u32,
    activity: CompressorActivity,
}

impl Compressor {
    /// `target_lufs` is the level the input is already normalised to.
    pub fn new(rate_hz: u32, target_lufs: f32) -> Compressor {
        // BS.1770: loudness = −0.691 + 10·log10(mean square); the
        // detector skips K-weighting (speech and organ differ little in
        // it), so this is an approximation of short-term loudness.
        let target_db = target_lufs + 0.691;
        Compressor {
            target_db,
            // Starting at the target, the first seconds are left alone
            // rather than boosted while the envelope rises from silence.
            envelope: 10f32.powf(target_db / 10.0),
            attack: coefficient(ATTACK, rate_hz),
            release: coefficient(RELEASE, rate_hz),
            gain: 1.0,
            until_update: 0,
            activity: CompressorActivity::default(),
        }
    }

    pub fn push(&mut self, sample: f32) -> f32 {
        let power = sample * sample;
        let coefficient = if power > self.envelope {
            self.attack
        } else {
            self.release
        };
        self.envelope += (power - self.envelope) * coefficient;
        if self.until_update == 0 {
            self.until_update = GAIN_EVERY;
            let level = 10.0 * self.envelope.max(1e-12).log10() - self.target_db;
            let gain_db = gain_db(level);
            if gain_db > 0.0 {
                self.activity.most_raised_db = self.activity.most_raised_db.max(gain_db);
            } else {
                self.activity.most_lowered_db = self.activity.most_lowered_db.max(-gain_db);
            }
            self.gain = 10f32.powf(gain_db / 20.0);
        }
        self.until_update -= 1;
        sample * self.gain
    }

    pub fn activity(&self) -> CompressorActivity {
        self.activity
    }
}

/// The static curve: gain in dB for a level `relative_db` from the target.
pub fn gain_db(relative_db: f32) -> f32 {
    if relative_db > CUT_ABOVE_DB {
        let over = relative_db - CUT_ABOVE_DB;
        -(over * (1.0 - 1.0 / CUT_RATIO)).min(MAX_CUT_DB)
    } else if relative_db < -BOOST_BELOW_DB && relative_db > -SILENCE_BELOW_DB {
        let under = -BOOST_BELOW_DB - relative_db;
        let boost = (under * (1.0 - 1.0 / BOOST_RATIO)).min(MAX_BOOST_DB);
        let fade = ((relative_db + SILENCE_BELOW_DB) / (SILENCE_BELOW_DB - FADE_BELOW_DB)).min(1.0);
        boost * fade
    } else {
        0.0
    }
}

/// The gain is worked out again every this many samples: the envelope
/// moves over hundreds of milliseconds, so per-sample logarithms would buy
/// nothing (a step of at most a few hundredths of a dB).
const GAIN_EVERY: u32 = 16;

/// One-pole smoothing coefficient for a time constant.
fn coefficient(time: Duration, rate_hz: u32) -> f32 {
    1.0 - (-1.0 / samples(time, rate_hz).max(1) as f32).exp()
}

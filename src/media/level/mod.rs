//! Levelling: every service, the apology and every prompt leave the line at
//! one loudness (`[audio] loudness_target`, ITU-R BS.1770 integrated
//! loudness, EBU R128 gating), gently compressed (`[audio] dynamics`), and
//! never past −1 dBTP, so an older ear on a phone hears every source at the
//! same comfortable level without reaching for the volume.
//!
//! ```text
//! samples ─▶ LoudnessGain ─▶ Compressor (gentle) ─▶ Limiter ─▶ encoder
//!            (gain.rs)       (compressor.rs)        (limiter.rs, true peak)
//! ```
//!
//! [`Leveller`] runs the chain at the codec's rate, after resampling: what
//! is measured is what the caller gets (a 48 kHz measurement counts treble
//! that G.711 never carries). Its output is aligned with its input (the
//! look-ahead's delay is taken back), so a track keeps its length in frames.

pub mod compressor;
pub mod gain;
pub mod limiter;
pub mod memory;
pub mod true_peak;

use std::collections::VecDeque;
use std::fmt;

use compressor::{Compressor, CompressorActivity};
use gain::{LoudnessGain, MeterError};
use limiter::{Limiter, LimiterActivity};

/// Loudness in LUFS (EBU R128: loudness units relative to full scale).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Lufs(pub f64);

impl fmt::Display for Lufs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A typographic minus reads better, but operators copy these.
        write!(f, "{:.1} LUFS", self.0)
    }
}

/// `[audio] dynamics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dynamics {
    /// Quiet passages raised and loud ones lowered a little ([`compressor`]).
    #[default]
    Gentle,
    /// Each source keeps its own dynamics: loudness gain and limiter only.
    Off,
}

impl Dynamics {
    pub const NAMES: [&str; 2] = ["gentle", "off"];

    pub fn config_name(self) -> &'static str {
        match self {
            Dynamics::Gentle => "gentle",
            Dynamics::Off => "off",
        }
    }

    pub fn from_config_name(name: &str) -> Option<Dynamics> {
        match name.trim().to_ascii_lowercase().as_str() {
            "gentle" => Some(Dynamics::Gentle),
            "off" => Some(Dynamics::Off),
            _ => None,
        }
    }
}

/// −19 LUFS: loud enough for a telephone earpiece, with room under the
/// −1 dBTP ceiling for speech's peaks; between the −16 of spoken-word
/// streaming and the −23 of EBU R128 broadcast, which assumes a
/// loudspeaker and a volume knob.
pub const DEFAULT_TARGET: Lufs = Lufs(-19.0);

/// `[audio] loudness_target` and `dynamics`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoudnessSettings {
    pub target: Lufs,
    pub dynamics: Dynamics,
}

impl Default for LoudnessSettings {
    fn default() -> Self {
        LoudnessSettings {
            target: DEFAULT_TARGET,
            dynamics: Dynamics::default(),
        }
    }
}

/// What levelling did to one source, for `check` and the log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LevelReport {
    /// The source's integrated loudness (pre-gain, at the codec's rate);
    /// `None` if it is silent or shorter than one gating block.
    pub measured: Option<Lufs>,
    /// The loudness gain at the end, in dB.
    pub gain_db: f32,
    /// The gain followed the meter (the loudness was not known at open).
    pub adaptive: bool,
    pub limiter: LimiterActivity,
    /// `None` when `[audio] dynamics = "off"`.
    pub compressor: Option<CompressorActivity>,
}

/// The levelling chain for one stream at one rate.
pub struct Leveller {
    gain: LoudnessGain,
    compressor: Option<Compressor>,
    limiter: Limiter,
    rate_hz: u32,
    /// An adaptive gain's seed, held back until measured.
    seed: Option<Vec<f32>>,
    /// Limiter outputs still to drop: its delay, taken back.
    to_skip: usize,
    /// Levelled samples not yet taken.
    out: VecDeque<f32>,
    /// The input being gained (kept to reuse its allocation).
    block: Vec<f32>,
    finished: bool,
}

impl Leveller {
    /// `known`: the source's integrated loudness at `rate_hz`, if measured
    /// before (a static gain); else the gain adapts as it plays.
    pub fn new(
        rate_hz: u32,
        settings: LoudnessSettings,
        known: Option<Lufs>,
    ) -> Result<Leveller, MeterError> {
        let gain = LoudnessGain::new(rate_hz, settings.target, known)?;
        let limiter = Limiter::new(rate_hz);
        Ok(Leveller {
            seed: gain.is_adaptive().then(Vec::new),
            gain,
            compressor: match settings.dynamics {
                Dynamics::Gentle => Some(Compressor::new(rate_hz, settings.target.0 as f32)),
                Dynamics::Off => None,
            },
            to_skip: limiter.delay(),
            limiter,
            rate_hz,
            out: VecDeque::new(),
            block: Vec::new(),
            finished: false,
        })
    }

    /// Levels a whole clip held in memory; the result has its length.
    pub fn level_clip(
        samples: &[f32],
        rate_hz: u32,
        settings: LoudnessSettings,
        known: Option<Lufs>,
    ) -> Result<Vec<f32>, MeterError> {
        let mut leveller = Leveller::new(rate_hz, settings, known)?;
        leveller.push(samples);
        leveller.finish();
        Ok(leveller.out.into())
    }

    /// Takes the next samples (any count).
    pub fn push(&mut self, samples: &[f32]) {
        if let Some(seed) = &mut self.seed {
            seed.extend_from_slice(samples);
            if seed.len() >= limiter::samples(gain::SEED, self.rate_hz) {
                self.release_seed();
            }
            return;
        }
        let mut block = std::mem::take(&mut self.block);
        block.clear();
        block.extend_from_slice(samples);
        self.gain.apply(&mut block);
        self.process(&block);
        self.block = block;
    }

    /// No more input: lets out what the seed and the look-ahead hold.
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.release_seed();
        // The limiter's delay in zeros pushes out the input's last samples
        // (the first outputs, its initial zeros, were skipped).
        let delay = self.limiter.delay();
        self.process(&vec![0.0; delay]);
    }

    /// Fills `frame` with the next levelled samples if that many are ready.
    pub fn pop_frame(&mut self, frame: &mut [f32]) -> bool {
        if self.out.len() < frame.len() {
            return false;
        }
        let len = frame.len();
        for (slot, sample) in frame.iter_mut().zip(self.out.drain(..len)) {
            *slot = sample;
        }
        true
    }

    /// The source's integrated loudness so far (pre-gain).
    pub fn measured(&self) -> Option<Lufs> {
        self.gain.measured()
    }

    pub fn report(&self) -> LevelReport {
        LevelReport {
            measured: self.gain.measured(),
            gain_db: self.gain.gain_db(),
            adaptive: self.gain.is_adaptive(),
            limiter: self.limiter.activity(),
            compressor: self.compressor.as_ref().map(Compressor::activity),
        }
    }

    fn release_seed(&mut self) {
        let Some(mut seed) = self.seed.take() else {
            return;
        };
        self.gain.measure(&seed);
        self.gain.start_at_measured();
        // Metered already: scaled without metering it twice.
        let factor = 10f32.powf(self.gain.gain_db() / 20.0);
        seed.iter_mut().for_each(|s| *s *= factor);
        self.process(&seed);
    }

    /// Gained samples through the compressor and limiter into `out`.
    fn process(&mut self, samples: &[f32]) {
        for &sample in samples {
            let sample = match &mut self.compressor {
                Some(compressor) => compressor.push(sample),
                None => sample,
            };
            let limited = self.limiter.push(sample);
            if self.to_skip > 0 {
                self.to_skip -= 1;
            } else {
                self.out.push_back(limited);
            }
        }
    }
}

/// The integrated loudness (ITU-R BS.1770, gated) of `samples` at
/// `rate_hz`; `None` if silent or shorter than one 400 ms gating block.
pub fn integrated_loudness(samples: &[f32], rate_hz: u32) -> Result<Option<Lufs>, MeterError> {
    let mut gain = LoudnessGain::new(rate_hz, DEFAULT_TARGET, None)?;
    gain.measure(samples);
    Ok(gain.measured())
}

#[cfg(test)]
mod tests;

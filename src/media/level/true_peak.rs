//! Estimates the true (inter-sample) peak around each sample, as ITU-R
//! BS.1770-4 Annex 2 does: 4× oversampling by a windowed-sinc interpolator.
//! A G.711 or Opus decoder at the caller rebuilds the waveform between our
//! samples, so a limiter that looks only at sample values lets those
//! reconstructed peaks through (up to +3 dB on a tone at a quarter of the
//! rate).
//!
//! Hand-written rather than taken from `ebur128`: that crate reports one
//! maximum per block, and the limiter needs a peak per sample.

/// Samples either side of an interpolated point.
const HALF_TAPS: usize = 6;
const TAPS: usize = 2 * HALF_TAPS;
/// 4× oversampling: three points between each pair of samples.
const PHASES: usize = 3;

/// How many samples [`TruePeakDetector::push`] answers late: the
/// interpolator needs that many samples after the point it estimates.
pub const DELAY: usize = HALF_TAPS;

/// Streaming peak estimator: push a sample, get back the sample from
/// [`DELAY`] pushes ago with the largest magnitude of the waveform within
/// one sample either side of it.
pub struct TruePeakDetector {
    coefficients: [[f32; TAPS]; PHASES],
    /// The last `TAPS` samples, oldest first (a sliding window; tiny, so
    /// shifting costs less than ring indexing).
    history: [f32; TAPS],
    /// Peak between the previous sample and the current one.
    previous_interval: f32,
}

impl Default for TruePeakDetector {
    fn default() -> Self {
        let mut coefficients = [[0.0; TAPS]; PHASES];
        for (p, phase) in coefficients.iter_mut().enumerate() {
            let offset = (p + 1) as f64 / 4.0;
            for (k, c) in phase.iter_mut().enumerate() {
                // Tap k multiplies the sample at (k − HALF_TAPS + 1) relative
                // to the left sample of the interval.
                let t = k as f64 - (HALF_TAPS as f64 - 1.0) - offset;
                let sinc = if t == 0.0 {
                    1.0
                } else {
                    (std::f64::consts::PI * t).sin() / (std::f64::consts::PI * t)
                };
                // Hann window reaching zero just past the outermost tap.
                let span = HALF_TAPS as f64 + 1.0;
                let window = 0.5 + 0.5 * (std::f64::consts::PI * t / span).cos();
                *c = (sinc * window) as f32;
            }
        }
        TruePeakDetector {
            coefficients,
            history: [0.0; TAPS],
            previous_interval: 0.0,
        }
    }
}

impl TruePeakDetector {
    /// Takes the next sample; returns `(sample, peak)` for the sample
    /// [`DELAY`] pushes ago (zeros at first).
    pub fn push(&mut self, sample: f32) -> (f32, f32) {
        self.history.copy_within(1.., 0);
        self.history[TAPS - 1] = sample;
        // The interval from history[HALF_TAPS - 1] (the sample answered
        // now) to history[HALF_TAPS].
        let interval = self
            .coefficients
            .iter()
            .map(|phase| {
                phase
                    .iter()
                    .zip(&self.history)
                    .map(|(c, x)| c * x)
                    .sum::<f32>()
                    .abs()
            })
            .fold(0.0f32, f32::max);
        let current = self.history[HALF_TAPS - 1];
        let peak = current
            .abs()
            .max(interval)
            .max(self.previous_interval)
            .max(self.history[HALF_TAPS].abs());
        self.previous_interval = interval;
        (current, peak)
    }
}

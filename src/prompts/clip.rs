//! One spoken clip made ready for joining: decoded whole, resampled to the
//! codec's rate, cut to the sound (near-silence off both ends), brought to
//! one level, and faded in and out so its edges are exactly zero.
//!
//! Resample first, then trim and fade: the resampler's filter rings against
//! the silence at the edges, and the fades must be the last word on the
//! samples that are actually joined.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::media::decode::{DecodeError, Decoder};
use crate::media::resample::resample_clip;

/// Samples quieter than this (relative to the clip's peak, about −36 dB)
/// count as silence when trimming the ends.
const SILENCE_RELATIVE: f32 = 0.015;

/// Kept before the first and after the last loud sample, so a soft
/// consonant ("f", "th") is not cut: the fades fall in this margin.
const EDGE_MARGIN: Duration = Duration::from_millis(15);

/// Long enough to remove any step at the edges (a click), short enough to
/// leave the word untouched.
pub const FADE: Duration = Duration::from_millis(8);

/// Every clip is scaled to this peak (−3 dBFS), so the library, a parish's
/// own recordings and synthesised names sound one level when joined.
pub const PEAK: f32 = 0.7;

/// A prompt, name or title longer than this is a mistake (a whole service
/// named as a title's recording?): refused after decoding this much.
pub const MAX_CLIP: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("{} is silent", path.display())]
    Silent { path: PathBuf },
    #[error("{} is longer than {}s, too long for a spoken word or title", path.display(), MAX_CLIP.as_secs())]
    TooLong { path: PathBuf },
    #[error("cannot resample {}: {reason}", path.display())]
    Resample { path: PathBuf, reason: String },
}

impl ClipError {
    /// A stable code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            ClipError::Decode(e) => e.code(),
            ClipError::Silent { .. } => "prompt.silent",
            ClipError::TooLong { .. } => "prompt.too_long",
            ClipError::Resample { .. } => "prompt.resample",
        }
    }
}

/// A whole file as mono samples and their rate.
pub struct Decoded {
    pub path: PathBuf,
    pub samples: Vec<f32>,
    pub rate_hz: u32,
}

/// Decodes all of `path` (at most [`MAX_CLIP`]).
pub fn decode(path: &Path) -> Result<Decoded, ClipError> {
    let mut decoder = Decoder::open(path)?;
    let rate_hz = decoder.sample_rate_hz();
    let max = (MAX_CLIP.as_secs() as usize + 1) * rate_hz as usize;
    let mut samples = Vec::new();
    while decoder.next_chunk(&mut samples)? {
        if samples.len() > max {
            return Err(ClipError::TooLong {
                path: path.to_owned(),
            });
        }
    }
    Ok(Decoded {
        path: path.to_owned(),
        samples,
        rate_hz,
    })
}

/// The clip at `to_hz`, trimmed, levelled and faded.
pub fn prepare(decoded: &Decoded, to_hz: u32) -> Result<Vec<f32>, ClipError> {
    let resampled = resample_clip(&decoded.samples, decoded.rate_hz, to_hz).map_err(|e| {
        ClipError::Resample {
            path: decoded.path.clone(),
            reason: e.to_string(),
        }
    })?;
    shape(resampled, to_hz).ok_or_else(|| ClipError::Silent {
        path: decoded.path.clone(),
    })
}

/// Trim, level and fade samples at `rate_hz`; `None` if nothing is audible.
pub fn shape(samples: Vec<f32>, rate_hz: u32) -> Option<Vec<f32>> {
    let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    // Below about −60 dBFS there is nothing to say.
    if !peak.is_finite() || peak < 0.001 {
        return None;
    }
    let threshold = peak * SILENCE_RELATIVE;
    let first = samples.iter().position(|s| s.abs() > threshold)?;
    let last = samples.iter().rposition(|s| s.abs() > threshold)?;
    let margin = samples_in(EDGE_MARGIN, rate_hz);
    let start = first.saturating_sub(margin);
    let end = (last + 1 + margin).min(samples.len());
    let gain = PEAK / peak;
    let mut clip: Vec<f32> = samples[start..end].iter().map(|s| s * gain).collect();
    fade(&mut clip, samples_in(FADE, rate_hz));
    Some(clip)
}

/// Raised-cosine fades over `len` samples at both ends; the first and last
/// samples become exactly zero.
pub fn fade(clip: &mut [f32], len: usize) {
    let len = len.min(clip.len() / 2);
    if len == 0 {
        clip.fill(0.0);
        return;
    }
    let n = clip.len();
    for i in 0..len {
        let gain = 0.5 - 0.5 * (std::f32::consts::PI * i as f32 / len as f32).cos();
        clip[i] *= gain;
        clip[n - 1 - i] *= gain;
    }
}

/// Whole samples in `duration` at `rate_hz`.
pub fn samples_in(duration: Duration, rate_hz: u32) -> usize {
    (duration.as_micros() * u128::from(rate_hz) / 1_000_000) as usize
}

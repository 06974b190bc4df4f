//! Finding prepared audio in what a call heard: normalised cross-correlation
//! over a window of start positions, at 8 kHz (Opus is brought down to it).
//!
//! Pure functions on sample slices, so they are tested on made-up signals.
//! The heard audio is placed by RTP timestamp from the first packet, and the
//! line sends a programme's frames back to back, so the prepared audio
//! appears in it unchanged but for the codec (exactly, for G.711) at a
//! position known to within the press's round trip: a narrow window.

#![cfg_attr(not(test), deny(clippy::disallowed_methods))]

use std::ops::Range;

/// The rate comparisons are made at.
pub const RATE_HZ: u32 = 8_000;

/// Below this a match is not the audio looked for: speech or music against
/// itself scores above 0.95 through G.711 and about 0.9 through Opus; two
/// different recordings, or a recording against the apology, stay under 0.3.
pub const MIN_MATCH: f32 = 0.6;

/// An RMS below this (−60 dBFS) is silence.
pub const SILENCE_RMS: f32 = 0.001;

/// Where `template` fits `heard` best, and how well (−1 to 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    pub start: usize,
    pub score: f32,
}

/// The best normalised cross-correlation of `template` in `heard`, trying
/// each start in `starts` (clipped to where the whole template fits). A
/// silent template or a silent stretch scores 0.
pub fn best_match(heard: &[f32], template: &[f32], starts: Range<usize>) -> Match {
    let mut best = Match {
        start: starts.start,
        score: 0.0,
    };
    let n = template.len();
    if n == 0 || heard.len() < n {
        return best;
    }
    let last = starts.end.min(heard.len() - n + 1);
    let template_energy = energy(template);
    if template_energy == 0.0 || starts.start >= last {
        return best;
    }
    // The window's energy slides along with it: O(1) per start.
    let mut window_energy = energy(&heard[starts.start..starts.start + n]);
    for start in starts.start..last {
        if start > starts.start {
            let gone = f64::from(heard[start - 1]);
            let come = f64::from(heard[start + n - 1]);
            window_energy = (window_energy - gone * gone + come * come).max(0.0);
        }
        if window_energy <= f64::EPSILON {
            continue;
        }
        let dot = f64::from(dot(&heard[start..start + n], template));
        let score = (dot / (template_energy * window_energy).sqrt()) as f32;
        if score > best.score {
            best = Match { start, score };
        }
    }
    best
}

/// Eight lanes summed apart, so the compiler can use vector instructions
/// (a single running float sum has to be kept in order).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for lane in 0..8 {
            lanes[lane] += x[lane] * y[lane];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

fn energy(samples: &[f32]) -> f64 {
    samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum()
}

/// Root mean square of `samples` (0 for none).
pub fn rms(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    (energy(samples) / samples.len() as f64).sqrt() as f32
}

/// `samples` at `rate_hz` brought to [`RATE_HZ`]: G.711 as it is; Opus's
/// 48 kHz by averaging each six samples, a low-pass that keeps the speech
/// band, applied alike to the heard and the prepared audio.
pub fn to_comparison_rate(samples: &[f32], rate_hz: u32) -> Vec<f32> {
    let factor = (rate_hz / RATE_HZ).max(1) as usize;
    if factor == 1 {
        return samples.to_vec();
    }
    samples
        .chunks_exact(factor)
        .map(|chunk| chunk.iter().sum::<f32>() / factor as f32)
        .collect()
}

/// Samples in `duration` at [`RATE_HZ`].
pub fn samples_in(duration: std::time::Duration) -> usize {
    (duration.as_secs_f64() * f64::from(RATE_HZ)).round() as usize
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A sweep with a little noise, its pitch set by `seed`: no lag looks
    /// like another, nor one seed like another.
    pub(in crate::self_test) fn programme(seconds: f32, seed: u32) -> Vec<f32> {
        let n = (seconds * RATE_HZ as f32) as usize;
        let mut state = seed;
        (0..n)
            .map(|i| {
                let t = i as f32 / RATE_HZ as f32;
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let noise = (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
                0.4 * (2.0 * std::f32::consts::PI * (100.0 + 170.0 * seed as f32 + 300.0 * t) * t)
                    .sin()
                    + 0.05 * noise
            })
            .collect()
    }

    #[test]
    fn finds_the_template_where_it_was_placed_even_scaled() {
        let source = programme(0.5, 1);
        let mut heard = vec![0.0; 1_000];
        heard.extend(source.iter().map(|s| s * 0.5));
        heard.extend(vec![0.0; 500]);
        let found = best_match(&heard, &source[..1_600], 0..2_000);
        assert_eq!(found.start, 1_000);
        assert!(found.score > 0.999, "{found:?}");
    }

    #[test]
    fn other_audio_scores_low_and_a_window_that_misses_finds_nothing() {
        let source = programme(0.5, 1);
        let other = programme(0.5, 2);
        let heard: Vec<f32> = other.iter().map(|s| -s * 0.8).collect();
        let found = best_match(&heard, &source[..1_600], 0..2_000);
        assert!(found.score < MIN_MATCH, "{found:?}");
        // The right audio, looked for where it is not.
        let mut heard = vec![0.0; 3_000];
        heard.extend(&source);
        let missed = best_match(&heard, &source[..800], 0..1_000);
        assert!(missed.score < MIN_MATCH, "{missed:?}");
    }

    #[test]
    fn silence_scores_zero_and_short_input_is_no_match() {
        let source = programme(0.2, 3);
        let silent = vec![0.0; 4_000];
        assert_eq!(best_match(&silent, &source, 0..4_000).score, 0.0);
        assert_eq!(best_match(&source, &silent[..100], 0..100).score, 0.0);
        assert_eq!(best_match(&source[..10], &source, 0..10).score, 0.0);
        assert_eq!(best_match(&source, &source[..10], 5_000..6_000).score, 0.0);
        assert_eq!(rms(&silent), 0.0);
        assert!(rms(&source) > SILENCE_RMS);
    }

    #[test]
    fn opus_rate_audio_comes_down_to_the_comparison_rate() {
        let high: Vec<f32> = (0..48_000).map(|i| (i % 6) as f32).collect();
        let low = to_comparison_rate(&high, 48_000);
        assert_eq!(low.len(), 8_000);
        assert!(low.iter().all(|&s| (s - 2.5).abs() < 1e-6));
        assert_eq!(to_comparison_rate(&[0.5; 10], 8_000), vec![0.5; 10]);
        assert_eq!(samples_in(std::time::Duration::from_millis(250)), 2_000);
    }
}

//! In-band DTMF: key tones in the caller's audio (ITU-T Q.23/Q.24), for
//! trunks that pass only tones. Sans-IO: feed 8 kHz samples, get keys.
//!
//! A Goertzel filter per DTMF frequency over blocks of 205 samples
//! (25.6 ms at 8 kHz, the classic size whose bins fall near all eight
//! frequencies). A key is reported when one row and one column tone
//! dominate for two blocks in a row (≥ 40 ms, Q.24's minimum), with the
//! twist between them bounded, and not again until a block without it:
//! speech and music rarely hold two pure tones that long.

// No clock reads or global randomness outside tests: `now` is an input
// (clippy.toml).
#![cfg_attr(not(test), deny(clippy::disallowed_methods))]

use super::dtmf::Key;

/// Samples per analysis block at 8 kHz.
pub const BLOCK: usize = 205;
const RATE_HZ: f32 = 8_000.0;
const ROWS_HZ: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLUMNS_HZ: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];
/// Below this block energy (mean square, full scale 1.0) nothing is a key:
/// about −40 dBFS.
const MIN_ENERGY: f32 = 1e-4;
/// The two tones must carry most of the block's energy.
const MIN_TONE_SHARE: f32 = 0.6;
/// Each winning tone must beat the runner-up in its group by this (≈ 8 dB).
const MIN_PEAK_RATIO: f32 = 6.0;
/// Normal and reverse twist limits (Q.24: 8 dB and 4 dB; a little slack).
const MAX_TWIST: f32 = 10.0;

/// Finds key tones in a stream of 8 kHz samples.
#[derive(Debug, Default)]
pub struct InBandDetector {
    block: Vec<f32>,
    /// The key heard in the last block, if any.
    candidate: Option<Key>,
    /// The key already reported and still held.
    reported: Option<Key>,
    /// Blocks that went through the filters: what listening has cost.
    blocks_analysed: u64,
}

impl InBandDetector {
    /// Feeds one packet's samples (any count); returns the keys that began
    /// in them. A packet too quiet to hold a key is not analysed: it ends
    /// any key being heard, as silence would.
    pub fn handle_samples(&mut self, samples: &[f32]) -> Vec<Key> {
        if is_quiet(samples) {
            self.hear_silence();
            return Vec::new();
        }
        let mut keys = Vec::new();
        for &sample in samples {
            self.block.push(sample);
            if self.block.len() == BLOCK {
                let heard = analyse(&self.block);
                self.blocks_analysed += 1;
                self.block.clear();
                if heard.is_some() && heard == self.candidate && self.reported != heard {
                    keys.extend(heard);
                    self.reported = heard;
                }
                if heard.is_none() {
                    self.reported = None;
                }
                self.candidate = heard;
            }
        }
        keys
    }

    /// A stretch in which the caller sent nothing worth decoding (silence,
    /// Opus DTX): any key being heard has ended, and the next block starts
    /// with the next audio.
    pub fn hear_silence(&mut self) {
        self.block.clear();
        self.candidate = None;
        self.reported = None;
    }

    pub fn blocks_analysed(&self) -> u64 {
        self.blocks_analysed
    }
}

/// Whether samples are below the level any key is heard at.
fn is_quiet(samples: &[f32]) -> bool {
    let energy: f32 = samples.iter().map(|x| x * x).sum();
    energy < MIN_ENERGY * samples.len() as f32
}

/// Goertzel power of `freq_hz` in `block`.
fn goertzel(block: &[f32], freq_hz: f32) -> f32 {
    let coefficient = 2.0 * (2.0 * std::f32::consts::PI * freq_hz / RATE_HZ).cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &x in block {
        let s0 = x + coefficient * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coefficient * s1 * s2
}

/// The strongest tone of a group, and whether it clearly beats the rest.
fn strongest(powers: &[f32; 4]) -> Option<(usize, f32)> {
    let (best, &power) = powers
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))?;
    let runner_up = powers
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != best)
        .map(|(_, p)| *p)
        .fold(0.0f32, f32::max);
    (power > runner_up * MIN_PEAK_RATIO).then_some((best, power))
}

/// The key one block holds, if it holds exactly one.
fn analyse(block: &[f32]) -> Option<Key> {
    let energy: f32 = block.iter().map(|x| x * x).sum();
    if energy / (block.len() as f32) < MIN_ENERGY {
        return None;
    }
    let rows = ROWS_HZ.map(|f| goertzel(block, f));
    let columns = COLUMNS_HZ.map(|f| goertzel(block, f));
    let (row, row_power) = strongest(&rows)?;
    let (column, column_power) = strongest(&columns)?;
    if row_power > column_power * MAX_TWIST || column_power > row_power * MAX_TWIST {
        return None;
    }
    // Goertzel power of a sine of amplitude a over N samples is (a·N/2)²;
    // the block's energy of that sine is a²·N/2, so power·2/N is comparable.
    let tone_energy = (row_power + column_power) * 2.0 / block.len() as f32;
    if tone_energy < energy * MIN_TONE_SHARE {
        return None;
    }
    Key::from_char(KEYS[row][column])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `key` as two tones for `ms`, then `gap_ms` of silence, at 8 kHz.
    fn tone(key: char, ms: usize, gap_ms: usize, level: f32) -> Vec<f32> {
        let (row, column) = (0..4)
            .flat_map(|r| (0..4).map(move |c| (r, c)))
            .find(|&(r, c)| KEYS[r][c] == key)
            .unwrap();
        let n = ms * 8;
        let mut out: Vec<f32> = (0..n)
            .map(|i| {
                let t = i as f32 / RATE_HZ;
                level * (2.0 * std::f32::consts::PI * ROWS_HZ[row] * t).sin()
                    + level * (2.0 * std::f32::consts::PI * COLUMNS_HZ[column] * t).sin()
            })
            .collect();
        out.extend(std::iter::repeat_n(0.0, gap_ms * 8));
        out
    }

    fn keys(samples: &[f32]) -> String {
        let mut detector = InBandDetector::default();
        // Fed in odd-sized chunks, as RTP frames of 160 samples would be.
        samples
            .chunks(160)
            .flat_map(|chunk| detector.handle_samples(chunk))
            .map(Key::as_char)
            .collect()
    }

    #[test]
    fn every_key_is_heard_once() {
        let mut samples = Vec::new();
        for key in "123A456B789C*0#D".chars() {
            samples.extend(tone(key, 100, 60, 0.2));
        }
        assert_eq!(keys(&samples), "123A456B789C*0#D");
    }

    #[test]
    fn a_long_press_is_one_key_and_quiet_tones_still_count() {
        let mut samples = tone('5', 1_000, 100, 0.2);
        samples.extend(tone('5', 80, 100, 0.02));
        assert_eq!(keys(&samples), "55");
    }

    #[test]
    fn too_short_or_single_tones_and_sweeps_are_not_keys() {
        // 20 ms is below Q.24's minimum duration.
        assert_eq!(keys(&tone('1', 20, 100, 0.2)), "");
        // One tone alone (a dial tone, a whistle).
        let single: Vec<f32> = (0..8_000)
            .map(|i| 0.3 * (2.0 * std::f32::consts::PI * 770.0 * i as f32 / RATE_HZ).sin())
            .collect();
        assert_eq!(keys(&single), "");
        // A sweep across the DTMF band, as music or speech glides.
        let sweep: Vec<f32> = (0..16_000)
            .map(|i| {
                let t = i as f32 / RATE_HZ;
                0.3 * (2.0 * std::f32::consts::PI * (600.0 * t + 250.0 * t * t)).sin()
            })
            .collect();
        assert_eq!(keys(&sweep), "");
        // Loud noise.
        let mut seed = 0x1234_5678u32;
        let noise: Vec<f32> = (0..16_000)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                (seed as f32 / u32::MAX as f32 - 0.5) * 0.8
            })
            .collect();
        assert_eq!(keys(&noise), "");
    }

    #[test]
    fn silence_costs_no_analysis_and_ends_a_key() {
        let mut detector = InBandDetector::default();
        let hush = vec![0.001f32; 160];
        for _ in 0..500 {
            assert!(detector.handle_samples(&hush).is_empty());
        }
        assert_eq!(detector.blocks_analysed(), 0);
        // A key, a silent packet, the same key again: two presses.
        let press = tone('9', 100, 0, 0.2);
        let heard: Vec<Key> = press
            .chunks(160)
            .chain(std::iter::once(&hush[..]))
            .chain(press.chunks(160))
            .flat_map(|chunk| detector.handle_samples(chunk))
            .collect();
        assert_eq!(heard.len(), 2);
        assert!(detector.blocks_analysed() > 0);
    }

    #[test]
    fn a_key_over_background_noise_is_heard() {
        let mut seed = 0x9e37_79b9u32;
        let mut samples = tone('7', 120, 100, 0.2);
        for s in &mut samples {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            *s += (seed as f32 / u32::MAX as f32 - 0.5) * 0.05;
        }
        assert_eq!(keys(&samples), "7");
    }
}

//! Converts a mono stream from the file's rate to the codec's rate and cuts it
//! into 20 ms frames (`a=ptime:20`, RFC 3551 §4.5): 160 samples at 8 kHz,
//! 960 at 48 kHz.
//!
//! rubato's `Fft` resampler with `FixedSync::Output` does the work: the rates
//! are fixed per file, it is fast (thousands of times realtime) and it
//! anti-aliases well (crates.md §6). Its FFT block delays the signal by
//! `output_delay()` samples; those are dropped at the start and the tail is
//! flushed with silence by [`Resampler::finish`], so sample `n` of the input
//! lands at sample `n · to / from` of the output. Equal rates skip rubato.
//!
//! Call order: [`Resampler::push`] decoded samples, drain with
//! [`Resampler::pop_frame`] until it returns `false`, repeat; at the end of
//! the input call [`Resampler::finish`] once and drain again (the last frame
//! is padded with zeros).

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler as _};

/// Frames per second at `a=ptime:20`.
const FRAMES_PER_SECOND: u32 = 50;

/// Consumed input is dropped from the front of the queues once this many
/// samples have piled up (keeps memory flat without shifting on every frame).
const COMPACT_AFTER: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    /// A rate of 0 Hz, or a target rate that is not a whole number of
    /// samples per 20 ms.
    #[error("cannot resample {from_hz} Hz to {to_hz} Hz in 20 ms frames")]
    InvalidRate { from_hz: u32, to_hz: u32 },
    #[error("cannot build a {from_hz} Hz to {to_hz} Hz resampler: {source}")]
    Construction {
        from_hz: u32,
        to_hz: u32,
        source: rubato::ResamplerConstructionError,
    },
}

/// Streaming mono resampler that emits whole 20 ms frames at the target rate.
pub struct Resampler {
    from_hz: u32,
    to_hz: u32,
    frame_len: usize,
    /// `None` when the rates are equal: samples pass straight through.
    fft: Option<Box<Fft<f32>>>,
    /// Pushed input not yet consumed by rubato: `input[in_pos..]`.
    input: Vec<f32>,
    in_pos: usize,
    /// Resampled output (delay already removed) not yet popped: `output[out_pos..]`.
    output: Vec<f32>,
    out_pos: usize,
    /// rubato writes one chunk here; the part after the delay goes to `output`.
    chunk: Vec<f32>,
    /// Output samples of rubato's start-up delay still to be dropped.
    delay_left: usize,
    input_total: u64,
    /// Output samples produced after dropping the delay.
    produced_total: u64,
    /// Output samples handed out by `pop_frame` (padding excluded).
    emitted_total: u64,
    finished: bool,
}

impl Resampler {
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self, ResampleError> {
        if from_hz == 0 || to_hz == 0 || !to_hz.is_multiple_of(FRAMES_PER_SECOND) {
            return Err(ResampleError::InvalidRate { from_hz, to_hz });
        }
        let frame_len = (to_hz / FRAMES_PER_SECOND) as usize;
        let fft = if from_hz == to_hz {
            None
        } else {
            let fft = Fft::<f32>::new(
                from_hz as usize,
                to_hz as usize,
                frame_len,
                1,
                FixedSync::Output,
            )
            .map_err(|source| ResampleError::Construction {
                from_hz,
                to_hz,
                source,
            })?;
            Some(Box::new(fft))
        };
        let delay_left = fft.as_ref().map_or(0, |f| f.output_delay());
        let chunk_len = fft.as_ref().map_or(0, |f| f.output_frames_max());
        Ok(Resampler {
            from_hz,
            to_hz,
            frame_len,
            fft,
            input: Vec::new(),
            in_pos: 0,
            output: Vec::new(),
            out_pos: 0,
            chunk: vec![0.0; chunk_len],
            delay_left,
            input_total: 0,
            produced_total: 0,
            emitted_total: 0,
            finished: false,
        })
    }

    pub fn from_hz(&self) -> u32 {
        self.from_hz
    }

    pub fn to_hz(&self) -> u32 {
        self.to_hz
    }

    /// Samples in one 20 ms output frame.
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// Queues input samples (mono, at `from_hz`). Ignored after `finish`.
    pub fn push(&mut self, samples: &[f32]) {
        if self.finished {
            return;
        }
        self.input_total += samples.len() as u64;
        if self.fft.is_some() {
            self.input.extend_from_slice(samples);
        } else {
            self.output.extend_from_slice(samples);
            self.produced_total += samples.len() as u64;
        }
    }

    /// Writes the next 20 ms frame into `out[..frame_len()]` and returns
    /// `true`, or returns `false` when more input is needed (or, after
    /// `finish`, when everything has been handed out). `out` must hold at
    /// least `frame_len()` samples; a shorter buffer gets nothing.
    pub fn pop_frame(&mut self, out: &mut [f32]) -> bool {
        let frame_len = self.frame_len;
        let Some(out) = out.get_mut(..frame_len) else {
            return false;
        };
        loop {
            if self.real_available() >= frame_len {
                out.copy_from_slice(&self.output[self.out_pos..self.out_pos + frame_len]);
                self.out_pos += frame_len;
                self.emitted_total += frame_len as u64;
                self.compact();
                return true;
            }
            if !self.step() {
                break;
            }
        }
        let real = self.real_available();
        if self.finished && real > 0 {
            // The last, partial frame: real samples then silence.
            out[..real].copy_from_slice(&self.output[self.out_pos..self.out_pos + real]);
            out[real..].fill(0.0);
            self.emitted_total += real as u64;
            self.output.clear();
            self.out_pos = 0;
            return true;
        }
        false
    }

    /// Marks the end of the input: the remaining samples (and rubato's
    /// delay line) are flushed by the following `pop_frame` calls.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// Output samples the input accounts for: `ceil(input · to / from)`.
    fn expected_total(&self) -> u64 {
        (self.input_total * u64::from(self.to_hz)).div_ceil(u64::from(self.from_hz))
    }

    /// Queued output that is signal, not the flush's trailing padding.
    fn real_available(&self) -> usize {
        let queued = self.output.len() - self.out_pos;
        if self.finished {
            let left = self.expected_total().saturating_sub(self.emitted_total);
            queued.min(usize::try_from(left).unwrap_or(usize::MAX))
        } else {
            queued
        }
    }

    /// Runs rubato over one chunk if there is enough input (or, after
    /// `finish`, while output is still owed). Returns whether it ran.
    fn step(&mut self) -> bool {
        let expected = self.expected_total();
        let Some(fft) = self.fft.as_mut() else {
            return false;
        };
        let needed = fft.input_frames_next();
        let available = self.input.len() - self.in_pos;
        let partial_len = if available >= needed {
            None
        } else if self.finished && self.produced_total < expected {
            Some(available)
        } else {
            return false;
        };
        let take = available.min(needed);
        let out_len = fft.output_frames_next();
        if self.chunk.len() < out_len {
            self.chunk.resize(out_len, 0.0);
        }
        let input = &self.input[self.in_pos..self.in_pos + take];
        let adapter_in =
            InterleavedSlice::new(input, 1, take).expect("invariant: mono slice of `take` samples");
        let mut adapter_out = InterleavedSlice::new_mut(&mut self.chunk[..out_len], 1, out_len)
            .expect("invariant: chunk holds output_frames_next samples");
        let indexing = Indexing {
            partial_len,
            ..Indexing::default()
        };
        let (read, written) = fft
            .process_into_buffer(&adapter_in, &mut adapter_out, Some(&indexing))
            .expect("invariant: buffers sized from input_frames_next/output_frames_next");
        self.in_pos += read.min(take);
        let skip = self.delay_left.min(written);
        self.delay_left -= skip;
        self.output.extend_from_slice(&self.chunk[skip..written]);
        self.produced_total += (written - skip) as u64;
        true
    }

    fn compact(&mut self) {
        if self.in_pos >= COMPACT_AFTER {
            self.input.drain(..self.in_pos);
            self.in_pos = 0;
        }
        if self.out_pos >= COMPACT_AFTER {
            self.output.drain(..self.out_pos);
            self.out_pos = 0;
        }
    }
}

/// Resamples a whole clip into 20 ms frames at `to_hz` (last one padded).
pub fn resample_clip(samples: &[f32], from_hz: u32, to_hz: u32) -> Result<Vec<f32>, ResampleError> {
    let mut resampler = Resampler::new(from_hz, to_hz)?;
    resampler.push(samples);
    resampler.finish();
    let mut frame = vec![0.0; resampler.frame_len()];
    let mut out = Vec::new();
    while resampler.pop_frame(&mut frame) {
        out.extend_from_slice(&frame);
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sine(freq_hz: f64, rate_hz: u32, seconds: f64, amplitude: f64) -> Vec<f32> {
        let n = (f64::from(rate_hz) * seconds).round() as usize;
        (0..n)
            .map(|i| {
                (amplitude
                    * (2.0 * std::f64::consts::PI * freq_hz * i as f64 / f64::from(rate_hz)).sin())
                    as f32
            })
            .collect()
    }

    pub(crate) fn rms(samples: &[f32]) -> f64 {
        (samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len() as f64).sqrt()
    }

    /// Frequency from upward zero crossings, linearly interpolated.
    pub(crate) fn frequency_hz(samples: &[f32], rate_hz: u32) -> f64 {
        let mut crossings = Vec::new();
        for i in 1..samples.len() {
            let (a, b) = (samples[i - 1], samples[i]);
            if a < 0.0 && b >= 0.0 {
                crossings.push((i - 1) as f64 + f64::from(a / (a - b)));
            }
        }
        let (first, last) = (crossings[0], crossings[crossings.len() - 1]);
        (crossings.len() - 1) as f64 * f64::from(rate_hz) / (last - first)
    }

    fn tone_survives(from_hz: u32, to_hz: u32) {
        let input = sine(1000.0, from_hz, 1.0, 0.5);
        let output = resample_clip(&input, from_hz, to_hz).unwrap();
        let frame = (to_hz / 50) as usize;
        assert_eq!(output.len() % frame, 0);
        assert_eq!(output.len(), 50 * frame, "one second gives 50 frames");
        // Skip the edges, where the filter rings against silence.
        let middle = &output[output.len() / 10..output.len() * 9 / 10];
        let f = frequency_hz(middle, to_hz);
        assert!((f - 1000.0).abs() < 2.0, "{from_hz}->{to_hz}: {f} Hz");
        let (rin, rout) = (rms(&input), rms(middle));
        assert!(
            (rout / rin - 1.0).abs() < 0.05,
            "{from_hz}->{to_hz}: rms {rin} -> {rout}"
        );
    }

    #[test]
    fn tone_44k1_to_8k() {
        tone_survives(44_100, 8_000);
    }

    #[test]
    fn tone_44k1_to_48k() {
        tone_survives(44_100, 48_000);
    }

    #[test]
    fn tone_odd_rate_to_8k() {
        // 11.025 kHz → 8 kHz has an FFT block of 320 output samples: two
        // frames per rubato step, which the queue must split.
        tone_survives(11_025, 8_000);
        tone_survives(16_000, 48_000);
    }

    #[test]
    fn aliasing_is_suppressed() {
        // 5 kHz cannot exist at 8 kHz; it must not fold back to 3 kHz.
        let input = sine(5000.0, 44_100, 0.5, 0.5);
        let output = resample_clip(&input, 44_100, 8_000).unwrap();
        assert!(rms(&output) < 0.01, "rms {}", rms(&output));
    }

    fn onset_index(samples: &[f32]) -> usize {
        samples
            .iter()
            .position(|s| s.abs() > 0.25)
            .expect("click present")
    }

    fn onset_aligned(from_hz: u32, to_hz: u32) {
        // Silence, then a 1 kHz tone burst starting at exactly 0.5 s.
        let mut input = vec![0.0f32; from_hz as usize / 2];
        input.extend(sine(1000.0, from_hz, 0.3, 0.8));
        input.extend(vec![0.0f32; from_hz as usize / 5]);
        let output = resample_clip(&input, from_hz, to_hz).unwrap();
        let t_in = onset_index(&input) as f64 / f64::from(from_hz);
        let t_out = onset_index(&output) as f64 / f64::from(to_hz);
        assert!(
            (t_out - t_in).abs() <= 0.001,
            "{from_hz}->{to_hz}: onset {t_in} s -> {t_out} s"
        );
    }

    #[test]
    fn onset_stays_within_one_millisecond() {
        onset_aligned(44_100, 8_000);
        onset_aligned(44_100, 48_000);
        onset_aligned(48_000, 8_000);
        onset_aligned(22_050, 48_000);
        onset_aligned(8_000, 8_000);
    }

    #[test]
    fn streaming_equals_whole_clip() {
        let input = sine(440.0, 44_100, 0.7, 0.5);
        let whole = resample_clip(&input, 44_100, 8_000).unwrap();
        let mut r = Resampler::new(44_100, 8_000).unwrap();
        let mut frame = vec![0.0; 160];
        let mut streamed = Vec::new();
        // Odd-sized pushes, as decoders deliver them.
        for piece in input.chunks(1152) {
            r.push(piece);
            while r.pop_frame(&mut frame) {
                streamed.extend_from_slice(&frame);
            }
        }
        r.finish();
        while r.pop_frame(&mut frame) {
            streamed.extend_from_slice(&frame);
        }
        assert_eq!(streamed.len(), whole.len());
        assert!(
            streamed
                .iter()
                .zip(&whole)
                .all(|(a, b)| (a - b).abs() < 1e-6)
        );
        // 0.7 s = 35 frames exactly.
        assert_eq!(streamed.len(), 35 * 160);
    }

    #[test]
    fn passthrough_pads_last_frame() {
        let input: Vec<f32> = (0..500).map(|i| i as f32 / 1000.0).collect();
        let out = resample_clip(&input, 8_000, 8_000).unwrap();
        assert_eq!(out.len(), 4 * 160);
        assert_eq!(&out[..500], &input[..]);
        assert!(out[500..].iter().all(|&s| s == 0.0));
    }

    #[test]
    fn no_frame_before_enough_input() {
        let mut r = Resampler::new(44_100, 8_000).unwrap();
        let mut frame = vec![0.0; 160];
        r.push(&[0.1; 100]);
        assert!(!r.pop_frame(&mut frame));
        r.finish();
        assert!(r.pop_frame(&mut frame), "the tail comes out after finish");
        assert!(!r.pop_frame(&mut frame));
    }

    #[test]
    fn bad_rates_are_errors() {
        assert!(matches!(
            Resampler::new(0, 8_000),
            Err(ResampleError::InvalidRate { .. })
        ));
        assert!(matches!(
            Resampler::new(44_100, 8_001),
            Err(ResampleError::InvalidRate { .. })
        ));
    }
}

//! Decoder → resampler → leveller → encoder, one 20 ms payload at a time:
//! the work of a track's opening and of its background thread.

use std::sync::Arc;

use crate::media::Codec;
use crate::media::decode::{DecodeError, Decoder};
use crate::media::encode::{FrameEncoder, encoder_for};
use crate::media::level::memory::LoudnessMemory;
use crate::media::level::{LevelReport, Leveller, LoudnessSettings, Lufs};
use crate::media::resample::Resampler;

/// How a track is levelled, and where its measured loudness goes.
pub(super) struct Levelling<K> {
    pub settings: LoudnessSettings,
    /// Measured on an earlier pass: a static gain from the first sample.
    pub known: Option<Lufs>,
    pub memory: Arc<LoudnessMemory<K>>,
    pub key: K,
}

pub(super) struct Pipeline<K> {
    pub decoder: Decoder,
    resampler: Resampler,
    leveller: Leveller,
    encoder: Box<dyn FrameEncoder>,
    memory: Arc<LoudnessMemory<K>>,
    key: K,
    pcm: Vec<f32>,
    resampled: Vec<f32>,
    frame: Vec<f32>,
    pub payload: Vec<u8>,
    input_done: bool,
    leveller_flushed: bool,
}

impl<K: std::hash::Hash + Eq + Clone> Pipeline<K> {
    pub fn new(
        decoder: Decoder,
        codec: Codec,
        levelling: Levelling<K>,
    ) -> Result<Pipeline<K>, DecodeError> {
        let path = decoder.path().to_path_buf();
        let rate_hz = codec.sample_rate_hz();
        let unsupported = |reason: String| DecodeError::Unsupported {
            path: path.clone(),
            reason,
        };
        let resampler = Resampler::new(decoder.sample_rate_hz(), rate_hz)
            .map_err(|e| unsupported(e.to_string()))?;
        let leveller = Leveller::new(rate_hz, levelling.settings, levelling.known)
            .map_err(|e| unsupported(e.to_string()))?;
        let encoder = encoder_for(codec).map_err(|source| DecodeError::Encode {
            path: path.clone(),
            source,
        })?;
        Ok(Pipeline {
            frame: vec![0.0; resampler.frame_len()],
            resampled: vec![0.0; resampler.frame_len()],
            decoder,
            resampler,
            leveller,
            encoder,
            memory: levelling.memory,
            key: levelling.key,
            pcm: Vec::new(),
            payload: Vec::new(),
            input_done: false,
            leveller_flushed: false,
        })
    }

    /// Makes the next payload in `self.payload`; `Ok(false)` at the end,
    /// when the source's loudness has been remembered.
    pub fn next_frame(&mut self) -> Result<bool, DecodeError> {
        loop {
            if self.leveller.pop_frame(&mut self.frame) {
                self.encoder
                    .encode(&self.frame, &mut self.payload)
                    .map_err(|source| DecodeError::Encode {
                        path: self.decoder.path().to_path_buf(),
                        source,
                    })?;
                return Ok(true);
            }
            if self.resampler.pop_frame(&mut self.resampled) {
                self.leveller.push(&self.resampled);
                continue;
            }
            if self.input_done {
                if !self.leveller_flushed {
                    // The look-ahead still holds the last few milliseconds.
                    self.leveller.finish();
                    self.leveller_flushed = true;
                    continue;
                }
                if let Some(measured) = self.leveller.measured() {
                    self.memory.remember(self.key.clone(), measured);
                }
                return Ok(false);
            }
            self.pcm.clear();
            if self.decoder.next_chunk(&mut self.pcm)? {
                self.resampler.push(&self.pcm);
            } else {
                self.resampler.finish();
                self.input_done = true;
            }
        }
    }

    /// What levelling has done so far (all of it once `next_frame` ended).
    pub fn level_report(&self) -> LevelReport {
        self.leveller.report()
    }
}

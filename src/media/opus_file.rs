//! Decodes the Opus packets of an Ogg Opus file (RFC 7845) that symphonia's
//! Ogg demuxer hands out: symphonia 0.6 demuxes Opus but has no Opus decoder
//! (crates.md §5), so libopus (audiopus) decodes them here.
//!
//! RFC 7845 §5.1: the `OpusHead` packet (the track's `extra_data`) gives the
//! channel count, the pre-skip and an output gain. Channel mapping family 0
//! (mono or stereo, one stream) is supported; surround (multistream) is not.
//! Pre-skip and end trimming arrive as each packet's `trim_start`/`trim_end`
//! (the demuxer derives them from granule positions, RFC 7845 §4), or, where
//! the demuxer gives none, the pre-skip is dropped here.

use audiopus::coder::Decoder as LibOpusDecoder;
use audiopus::{Channels, SampleRate};

/// The longest Opus packet lasts 120 ms (RFC 6716 §3.2.5): 5760 samples per
/// channel at 48 kHz.
const MAX_PACKET_FRAMES: usize = 5760;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpusHeadError {
    #[error("missing or short OpusHead header")]
    Missing,
    #[error("unsupported OpusHead version {0}")]
    Version(u8),
    #[error("{channels} channels with mapping family {family} (only mono/stereo family 0)")]
    Mapping { channels: u8, family: u8 },
}

/// The fields of `OpusHead` this decoder needs (RFC 7845 §5.1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpusHead {
    pub channels: u8,
    pub pre_skip: u16,
    /// Q7.8 dB, to be applied to the decoded output.
    pub output_gain_q8: i16,
}

impl OpusHead {
    pub fn parse(bytes: &[u8]) -> Result<OpusHead, OpusHeadError> {
        if bytes.len() < 19 || &bytes[..8] != b"OpusHead" {
            return Err(OpusHeadError::Missing);
        }
        // Versions 0–15 are compatible with version 1 (RFC 7845 §5.1).
        if bytes[8] > 15 {
            return Err(OpusHeadError::Version(bytes[8]));
        }
        let channels = bytes[9];
        let family = bytes[18];
        if family != 0 || !(1..=2).contains(&channels) {
            return Err(OpusHeadError::Mapping { channels, family });
        }
        Ok(OpusHead {
            channels,
            pre_skip: u16::from_le_bytes([bytes[10], bytes[11]]),
            output_gain_q8: i16::from_le_bytes([bytes[16], bytes[17]]),
        })
    }

    /// The linear factor of the output gain.
    pub fn gain(&self) -> f32 {
        10f32.powf(f32::from(self.output_gain_q8) / 256.0 / 20.0)
    }
}

/// libopus decoding of one Ogg Opus track into mono f32 at 48 kHz.
pub struct OpusPacketDecoder {
    decoder: LibOpusDecoder,
    channels: usize,
    gain: f32,
    /// Pre-skip still to drop if the demuxer did not mark it on packets.
    skip_left: usize,
    pcm: Vec<f32>,
}

impl OpusPacketDecoder {
    pub fn new(head: OpusHead) -> Result<Self, audiopus::Error> {
        let channels = if head.channels == 2 {
            Channels::Stereo
        } else {
            Channels::Mono
        };
        Ok(OpusPacketDecoder {
            decoder: LibOpusDecoder::new(SampleRate::Hz48000, channels)?,
            channels: usize::from(head.channels),
            gain: head.gain(),
            skip_left: usize::from(head.pre_skip),
            pcm: vec![0.0; MAX_PACKET_FRAMES * usize::from(head.channels)],
        })
    }

    /// Decodes one packet, drops `trim_start` frames from its start and
    /// `trim_end` from its end, and appends the rest mixed to mono to `out`.
    /// Returns the number of frames appended.
    pub fn decode(
        &mut self,
        data: &[u8],
        trim_start: usize,
        trim_end: usize,
        out: &mut Vec<f32>,
    ) -> Result<usize, audiopus::Error> {
        let frames = self
            .decoder
            .decode_float(Some(data), &mut self.pcm[..], false)?;
        // The demuxer's trim_start already includes the pre-skip when it
        // knows it; only fall back to our own count when it marks nothing.
        let start = if trim_start > 0 {
            self.skip_left = 0;
            trim_start
        } else {
            let skip = self.skip_left.min(frames);
            self.skip_left -= skip;
            skip
        };
        let end = frames.saturating_sub(trim_end);
        if start >= end {
            return Ok(0);
        }
        let pcm = &self.pcm[start * self.channels..end * self.channels];
        if self.channels == 1 {
            out.extend(pcm.iter().map(|s| s * self.gain));
        } else {
            let g = self.gain * 0.5;
            out.extend(pcm.chunks_exact(2).map(|lr| (lr[0] + lr[1]) * g));
        }
        Ok(end - start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(channels: u8, pre_skip: u16, gain: i16, family: u8) -> Vec<u8> {
        let mut h = b"OpusHead".to_vec();
        h.push(1);
        h.push(channels);
        h.extend(pre_skip.to_le_bytes());
        h.extend(48_000u32.to_le_bytes());
        h.extend(gain.to_le_bytes());
        h.push(family);
        h
    }

    #[test]
    fn parses_opus_head() {
        let h = OpusHead::parse(&head(2, 312, 256, 0)).unwrap();
        assert_eq!(h.channels, 2);
        assert_eq!(h.pre_skip, 312);
        // +1 dB.
        assert!((h.gain() - 1.122).abs() < 0.001);
        assert_eq!(OpusHead::parse(b"OpusHea"), Err(OpusHeadError::Missing));
        assert_eq!(
            OpusHead::parse(&head(6, 312, 0, 1)),
            Err(OpusHeadError::Mapping {
                channels: 6,
                family: 1
            })
        );
        assert_eq!(
            OpusHead::parse(&head(0, 312, 0, 0)),
            Err(OpusHeadError::Mapping {
                channels: 0,
                family: 0
            })
        );
    }
}

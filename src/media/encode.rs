//! Encodes one 20 ms frame of mono PCM (at the codec's rate, from
//! [`super::resample`]) into one RTP payload: G.711 µ-law / A-law (RFC 3551
//! §4.5.14, 160 bytes) or Opus (RFC 6716 coded as RFC 7587 describes, 960
//! samples at 48 kHz).
//!
//! Each source is encoded once per codec and the payloads shared by every
//! call (see [`super::track`]), so the encoder may spend CPU on quality.

use audiopus::coder::Encoder as OpusEncoder;
use audiopus::{Application, Bitrate, Channels, SampleRate};

use super::Codec;
use super::g711;

/// Opus bitrate: speech and hymns in mono are transparent-enough here, and a
/// 32 kbps packet (~80 bytes) is half a G.711 one.
const OPUS_BITRATE_BPS: i32 = 32_000;
/// Loss the encoder plans for. In-band FEC is only emitted when this is
/// non-zero; 10 % costs a few kbps of the budget on lossy links' behalf.
const OPUS_EXPECTED_LOSS_PERCENT: u8 = 10;
/// Largest Opus packet we accept from the encoder (RFC 6716 §3.2.1 caps a
/// frame at 1275 bytes).
const OPUS_MAX_PACKET: usize = 1500;

#[derive(Debug, Clone, thiserror::Error)]
pub enum EncodeError {
    #[error("a {codec} frame is {expected} samples, got {got}")]
    FrameLength {
        codec: Codec,
        expected: usize,
        got: usize,
    },
    #[error("cannot set up the opus encoder ({setting}): {source}")]
    OpusSetup {
        setting: &'static str,
        source: audiopus::Error,
    },
    #[error("opus encoding failed: {source}")]
    Opus { source: audiopus::Error },
}

/// Turns one 20 ms PCM frame into one RTP payload.
pub trait FrameEncoder: Send {
    /// Encodes `pcm` (exactly `codec().samples_per_frame()` mono samples in
    /// [-1, 1] at the codec's rate; louder samples are clipped) and
    /// *replaces* the contents of `out` with the payload.
    fn encode(&mut self, pcm: &[f32], out: &mut Vec<u8>) -> Result<(), EncodeError>;

    /// The codec this encoder produces.
    fn codec(&self) -> Codec;
}

/// A fresh encoder for `codec`.
pub fn encoder_for(codec: Codec) -> Result<Box<dyn FrameEncoder>, EncodeError> {
    Ok(match codec {
        Codec::Pcmu | Codec::Pcma => Box::new(G711Encoder { codec }),
        Codec::Opus => Box::new(OpusFrameEncoder::new()?),
    })
}

/// Converts a float sample to 16-bit, clipping; symphonia scales 16-bit
/// input by 1/32768, so this is its exact inverse. NaN becomes 0.
pub fn f32_to_i16(sample: f32) -> i16 {
    (sample * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

fn check_len(codec: Codec, pcm: &[f32]) -> Result<(), EncodeError> {
    let expected = codec.samples_per_frame() as usize;
    if pcm.len() == expected {
        Ok(())
    } else {
        Err(EncodeError::FrameLength {
            codec,
            expected,
            got: pcm.len(),
        })
    }
}

struct G711Encoder {
    codec: Codec,
}

impl FrameEncoder for G711Encoder {
    fn encode(&mut self, pcm: &[f32], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        check_len(self.codec, pcm)?;
        out.clear();
        let law = if self.codec == Codec::Pcmu {
            g711::ulaw_encode
        } else {
            g711::alaw_encode
        };
        out.extend(pcm.iter().map(|&s| law(f32_to_i16(s))));
        Ok(())
    }

    fn codec(&self) -> Codec {
        self.codec
    }
}

/// Opus at 48 kHz mono.
///
/// `Application::Audio` rather than `Voip`: the recordings are services with
/// hymns, organ and congregational singing as well as speech, and `Voip`
/// tunes the encoder for speech intelligibility at music's expense. Latency is
/// no concern for pre-encoded audio. In-band FEC is on so a softphone can
/// rebuild a lost packet from the next one (it applies to the SILK/hybrid
/// layers the encoder picks for speech).
struct OpusFrameEncoder {
    encoder: OpusEncoder,
    scratch: [u8; OPUS_MAX_PACKET],
}

impl OpusFrameEncoder {
    fn new() -> Result<Self, EncodeError> {
        let setup = |setting| move |source| EncodeError::OpusSetup { setting, source };
        let mut encoder = OpusEncoder::new(SampleRate::Hz48000, Channels::Mono, Application::Audio)
            .map_err(setup("create"))?;
        encoder
            .set_bitrate(Bitrate::BitsPerSecond(OPUS_BITRATE_BPS))
            .map_err(setup("bitrate"))?;
        encoder.set_inband_fec(true).map_err(setup("inband fec"))?;
        encoder
            .set_packet_loss_perc(OPUS_EXPECTED_LOSS_PERCENT)
            .map_err(setup("packet loss"))?;
        Ok(OpusFrameEncoder {
            encoder,
            scratch: [0; OPUS_MAX_PACKET],
        })
    }
}

impl FrameEncoder for OpusFrameEncoder {
    fn encode(&mut self, pcm: &[f32], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        check_len(Codec::Opus, pcm)?;
        let len = self
            .encoder
            .encode_float(pcm, &mut self.scratch)
            .map_err(|source| EncodeError::Opus { source })?;
        out.clear();
        out.extend_from_slice(&self.scratch[..len]);
        Ok(())
    }

    fn codec(&self) -> Codec {
        Codec::Opus
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::resample::tests::sine;

    #[test]
    fn g711_frames_are_160_bytes_and_round_trip() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut enc = encoder_for(codec).unwrap();
            assert_eq!(enc.codec(), codec);
            let pcm = sine(1000.0, 8000, 0.02, 0.5);
            let mut out = vec![1, 2, 3];
            enc.encode(&pcm, &mut out).unwrap();
            assert_eq!(out.len(), 160, "payload replaces the old contents");
            let decode = if codec == Codec::Pcmu {
                g711::ulaw_decode
            } else {
                g711::alaw_decode
            };
            let (mut signal, mut noise) = (0.0, 0.0);
            for (&x, &c) in pcm.iter().zip(&out) {
                let y = f32::from(decode(c)) / 32768.0;
                signal += f64::from(x).powi(2);
                noise += f64::from(x - y).powi(2);
            }
            let snr = 10.0 * (signal / noise).log10();
            assert!(snr > 30.0, "{codec}: {snr:.1} dB");
        }
    }

    #[test]
    fn silence_and_clipping() {
        let mut enc = encoder_for(Codec::Pcmu).unwrap();
        let mut out = Vec::new();
        enc.encode(&[0.0; 160], &mut out).unwrap();
        assert!(out.iter().all(|&c| c == 0xFF));
        let mut loud = [3.0f32; 160];
        loud[1] = -3.0;
        loud[2] = f32::NAN;
        enc.encode(&loud, &mut out).unwrap();
        assert_eq!(&out[..3], &[0x80, 0x00, 0xFF]);
        assert_eq!(f32_to_i16(1.0), 32767);
        assert_eq!(f32_to_i16(-1.0), -32768);
        assert_eq!(f32_to_i16(0.5), 16384);
    }

    #[test]
    fn wrong_frame_length_is_an_error() {
        let mut enc = encoder_for(Codec::Pcma).unwrap();
        let err = enc.encode(&[0.0; 159], &mut Vec::new()).unwrap_err();
        assert!(matches!(
            err,
            EncodeError::FrameLength {
                expected: 160,
                got: 159,
                ..
            }
        ));
        let mut opus = encoder_for(Codec::Opus).unwrap();
        assert!(opus.encode(&[0.0; 160], &mut Vec::new()).is_err());
    }

    #[test]
    fn opus_round_trip_correlates() {
        use audiopus::coder::Decoder as OpusDecoder;
        // A two-tone signal with a slow amplitude swell, 1 s at 48 kHz.
        let a = sine(440.0, 48_000, 1.0, 0.3);
        let b = sine(1250.0, 48_000, 1.0, 0.2);
        let input: Vec<f32> = a
            .iter()
            .zip(&b)
            .enumerate()
            .map(|(i, (x, y))| (x + y) * (0.5 + 0.5 * (i as f32 / 48_000.0)))
            .collect();
        let mut enc = encoder_for(Codec::Opus).unwrap();
        let mut dec = OpusDecoder::new(SampleRate::Hz48000, Channels::Mono).unwrap();
        let mut payload = Vec::new();
        let mut decoded = Vec::new();
        let mut pcm = [0i16; 960];
        for frame in input.chunks(960) {
            enc.encode(frame, &mut payload).unwrap();
            assert!(payload.len() < 200, "~32 kbps: {} bytes", payload.len());
            let n = dec.decode(Some(&payload[..]), &mut pcm[..], false).unwrap();
            assert_eq!(n, 960);
            decoded.extend(pcm.iter().map(|&s| f32::from(s) / 32768.0));
        }
        // Align for the codec's look-ahead (6.5 ms at 48 kHz is 312 samples;
        // search a little around it).
        let (best_lag, best) = (0..1000)
            .map(|lag| {
                (
                    lag,
                    correlation(&input[..input.len() - lag], &decoded[lag..]),
                )
            })
            .max_by(|x, y| x.1.total_cmp(&y.1))
            .unwrap();
        assert!(best > 0.9, "correlation {best:.3} at lag {best_lag}");
        assert!(best_lag < 500, "lag {best_lag}");
    }

    fn correlation(x: &[f32], y: &[f32]) -> f64 {
        let n = x.len().min(y.len());
        let (mut xy, mut xx, mut yy) = (0.0, 0.0, 0.0);
        for i in 0..n {
            let (a, b) = (f64::from(x[i]), f64::from(y[i]));
            xy += a * b;
            xx += a * a;
            yy += b * b;
        }
        xy / (xx * yy).sqrt()
    }
}

//! Turns received RTP payloads into a recording aligned to the sender's
//! clock: each packet's samples go at the position its RTP timestamp gives,
//! relative to the first packet (RFC 3550 §5.1), and gaps stay silent. Loss
//! and jitter therefore move nothing: what follows a lost packet is exactly
//! where the sender put it, which is what a correlation against the source
//! needs.
//!
//! A new SSRC, or a timestamp that disagrees with the arrival time by more
//! than [`MAX_SKEW`], starts a new anchor at the arrival position instead:
//! RFC 3550 lets a sender pick a fresh random timestamp base for a new
//! source, and a hostile jump must not make us allocate gigabytes.
//!
//! Decoding: G.711 with the project's own tables (8 kHz), Opus with libopus
//! through `audiopus`, mono at 48 kHz (RFC 7587: the RTP clock is always
//! 48 kHz, so one timestamp tick is one output sample for every codec here).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use audiopus::coder::Decoder as OpusDecoder;
use audiopus::{Channels, SampleRate};
use rtp_rs::RtpReader;

use crate::media::Codec;
use crate::media::g711::{alaw_decode, ulaw_decode};

use super::ReceivedPacket;

/// How far a packet's timestamp position may stray from its arrival
/// position before we stop trusting the timestamp. Far above any real
/// jitter, far below a random re-base.
pub const MAX_SKEW: Duration = Duration::from_secs(2);

/// RFC 5761 §4: payload types 72–76 on the RTP port are multiplexed RTCP.
const RTCP_MUX_TYPES: std::ops::RangeInclusive<u8> = 72..=76;

/// The longest Opus packet (RFC 6716: 120 ms) at 48 kHz.
const OPUS_MAX_SAMPLES: usize = 5_760;

/// Decodes one codec's payloads to PCM in [-1, 1].
pub enum FrameDecoder {
    Pcmu,
    Pcma,
    Opus {
        decoder: Box<OpusDecoder>,
        scratch: Vec<i16>,
    },
}

impl FrameDecoder {
    pub fn new(codec: Codec) -> Result<Self, audiopus::Error> {
        Ok(match codec {
            Codec::Pcmu => FrameDecoder::Pcmu,
            Codec::Pcma => FrameDecoder::Pcma,
            Codec::Opus => FrameDecoder::Opus {
                decoder: Box::new(OpusDecoder::new(SampleRate::Hz48000, Channels::Mono)?),
                scratch: vec![0; OPUS_MAX_SAMPLES],
            },
        })
    }

    /// Replaces `out` with the decoded samples of `payload`. A corrupt Opus
    /// packet is an error for the caller to count; it never panics.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<f32>) -> Result<(), audiopus::Error> {
        out.clear();
        match self {
            FrameDecoder::Pcmu => out.extend(payload.iter().map(|&b| to_f32(ulaw_decode(b)))),
            FrameDecoder::Pcma => out.extend(payload.iter().map(|&b| to_f32(alaw_decode(b)))),
            FrameDecoder::Opus { decoder, scratch } => {
                let n = decoder.decode(Some(payload), &mut scratch[..], false)?;
                out.extend(scratch[..n.min(scratch.len())].iter().map(|&s| to_f32(s)));
            }
        }
        Ok(())
    }
}

fn to_f32(sample: i16) -> f32 {
    f32::from(sample) / 32_768.0
}

/// Where the current stream's timestamps land in the recording.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    ssrc: u32,
    /// The stream's previous timestamp, and its extended value relative to
    /// the anchor packet (A.1-style extension so a 2³² wrap is continuous).
    last_ts: u32,
    last_extended: i64,
    /// Sample index of the anchor packet.
    origin: i64,
}

/// The call's audio as heard, at the codec's rate.
#[derive(Debug, Clone)]
pub struct Recording {
    rate_hz: u32,
    samples: Vec<f32>,
    first_arrival: Option<Instant>,
    anchor: Option<Anchor>,
    /// How often the timestamp could not be trusted and arrival time was used.
    pub reanchors: u32,
}

impl Recording {
    pub fn new(rate_hz: u32) -> Self {
        Recording {
            rate_hz,
            samples: Vec::new(),
            first_arrival: None,
            anchor: None,
            reanchors: 0,
        }
    }

    pub fn rate_hz(&self) -> u32 {
        self.rate_hz
    }

    pub fn samples(&self) -> &[f32] {
        &self.samples
    }

    pub fn into_samples(self) -> Vec<f32> {
        self.samples
    }

    /// Writes `pcm` (decoded from the packet with `ssrc`/`timestamp` that
    /// arrived at `arrival`) at its timestamp position, growing the
    /// recording with silence as needed. Samples before the start are cut.
    pub fn place(&mut self, ssrc: u32, timestamp: u32, arrival: Instant, pcm: &[f32]) {
        let first_arrival = *self.first_arrival.get_or_insert(arrival);
        let arrival_position = (arrival
            .saturating_duration_since(first_arrival)
            .as_secs_f64()
            * f64::from(self.rate_hz)) as i64;
        let max_skew = (MAX_SKEW.as_secs_f64() * f64::from(self.rate_hz)) as i64;

        let position = match self.anchor {
            Some(mut anchor) if anchor.ssrc == ssrc => {
                let extended =
                    anchor.last_extended + i64::from(timestamp.wrapping_sub(anchor.last_ts) as i32);
                let position = anchor.origin + extended;
                if (position - arrival_position).abs() <= max_skew {
                    anchor.last_ts = timestamp;
                    anchor.last_extended = extended;
                    self.anchor = Some(anchor);
                    position
                } else {
                    self.reanchor(ssrc, timestamp, arrival_position)
                }
            }
            Some(_) => self.reanchor(ssrc, timestamp, arrival_position),
            None => {
                self.anchor = Some(Anchor {
                    ssrc,
                    last_ts: timestamp,
                    last_extended: 0,
                    origin: 0,
                });
                0
            }
        };
        self.write_at(position, pcm);
    }

    fn reanchor(&mut self, ssrc: u32, timestamp: u32, arrival_position: i64) -> i64 {
        self.reanchors += 1;
        self.anchor = Some(Anchor {
            ssrc,
            last_ts: timestamp,
            last_extended: 0,
            origin: arrival_position,
        });
        arrival_position
    }

    fn write_at(&mut self, position: i64, pcm: &[f32]) {
        let skip = usize::try_from(-position).unwrap_or(0).min(pcm.len());
        let pcm = &pcm[skip..];
        let start = usize::try_from(position.max(0)).unwrap_or(usize::MAX);
        let Some(end) = start.checked_add(pcm.len()) else {
            return;
        };
        if self.samples.len() < end {
            self.samples.resize(end, 0.0);
        }
        self.samples[start..end].copy_from_slice(pcm);
    }
}

/// Received RTP: the packet log, and the recording of our codec's packets.
pub(crate) struct MediaIn {
    pub payload_type: Option<u8>,
    decoder: FrameDecoder,
    pub recording: Recording,
    pub packets: Vec<ReceivedPacket>,
    pcm: Vec<f32>,
    pub undecodable: u64,
    pub invalid: u64,
}

impl MediaIn {
    /// Ready to record `codec`; packets of other types are only logged
    /// until `payload_type` is known.
    pub fn new(codec: Codec, payload_type: Option<u8>) -> Result<Self, audiopus::Error> {
        Ok(MediaIn {
            payload_type,
            decoder: FrameDecoder::new(codec)?,
            recording: Recording::new(codec.sample_rate_hz()),
            packets: Vec::new(),
            pcm: Vec::new(),
            undecodable: 0,
            invalid: 0,
        })
    }

    /// Logs one datagram from the RTP socket and records it if it is ours.
    pub fn handle(&mut self, datagram: &[u8], source: SocketAddr, arrival: Instant) {
        let reader = match RtpReader::new(datagram) {
            Ok(reader) if !RTCP_MUX_TYPES.contains(&reader.payload_type()) => reader,
            _ => {
                self.invalid += 1;
                return;
            }
        };
        let packet = ReceivedPacket {
            arrival,
            source,
            ssrc: reader.ssrc(),
            sequence: u16::from(reader.sequence_number()),
            timestamp: reader.timestamp(),
            marker: reader.mark(),
            payload_type: reader.payload_type(),
            payload_len: reader.payload().len(),
        };
        self.packets.push(packet);
        if Some(packet.payload_type) != self.payload_type {
            return; // telephone-event, comfort noise, or a type we never offered
        }
        match self.decoder.decode(reader.payload(), &mut self.pcm) {
            Ok(()) => self
                .recording
                .place(packet.ssrc, packet.timestamp, arrival, &self.pcm),
            Err(_) => self.undecodable += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Duration = Duration::from_millis(20);

    fn frame(value: f32) -> Vec<f32> {
        vec![value; 160]
    }

    #[test]
    fn packets_land_at_their_timestamp_and_loss_stays_silent() {
        let t0 = Instant::now();
        let mut rec = Recording::new(8_000);
        rec.place(1, 1_000, t0, &frame(0.1));
        // ts 1160 (packet 2) lost; packet 3 arrives late but goes at 320.
        rec.place(
            1,
            1_320,
            t0 + FRAME * 2 + Duration::from_millis(7),
            &frame(0.3),
        );
        assert_eq!(rec.samples().len(), 480);
        assert!(rec.samples()[..160].iter().all(|&s| s == 0.1));
        assert!(rec.samples()[160..320].iter().all(|&s| s == 0.0));
        assert!(rec.samples()[320..].iter().all(|&s| s == 0.3));
        assert_eq!(rec.reanchors, 0);
    }

    #[test]
    fn reordered_packet_fills_its_own_slot() {
        let t0 = Instant::now();
        let mut rec = Recording::new(8_000);
        rec.place(1, 0, t0, &frame(0.1));
        rec.place(1, 320, t0 + FRAME, &frame(0.3));
        rec.place(1, 160, t0 + FRAME * 2, &frame(0.2));
        assert_eq!(rec.samples()[100], 0.1);
        assert_eq!(rec.samples()[200], 0.2);
        assert_eq!(rec.samples()[400], 0.3);
    }

    #[test]
    fn timestamp_wrap_is_continuous() {
        let t0 = Instant::now();
        let mut rec = Recording::new(8_000);
        rec.place(1, u32::MAX - 159, t0, &frame(0.1));
        rec.place(1, 0, t0 + FRAME, &frame(0.2));
        rec.place(1, 160, t0 + FRAME * 2, &frame(0.3));
        assert_eq!(rec.samples().len(), 480);
        assert_eq!(rec.samples()[170], 0.2);
        assert_eq!(rec.reanchors, 0);
    }

    #[test]
    fn packet_older_than_the_first_is_cut_at_zero() {
        let t0 = Instant::now();
        let mut rec = Recording::new(8_000);
        rec.place(1, 1_000, t0, &frame(0.1));
        rec.place(1, 900, t0 + FRAME, &frame(0.2));
        assert_eq!(rec.samples().len(), 160);
        assert_eq!(
            rec.samples()[0],
            0.2,
            "the tail of the early packet overlaps"
        );
        assert_eq!(rec.samples()[60], 0.1);
    }

    #[test]
    fn new_ssrc_is_placed_by_arrival_time() {
        let t0 = Instant::now();
        let mut rec = Recording::new(8_000);
        rec.place(1, 0, t0, &frame(0.1));
        rec.place(2, 987_654, t0 + Duration::from_millis(500), &frame(0.2));
        assert_eq!(rec.samples().len(), 4_000 + 160);
        assert_eq!(rec.samples()[4_000], 0.2);
        assert_eq!(rec.samples()[2_000], 0.0);
        assert_eq!(rec.reanchors, 1);
        // The new stream then follows its own timestamps.
        rec.place(
            2,
            987_654 + 160,
            t0 + Duration::from_millis(520),
            &frame(0.3),
        );
        assert_eq!(rec.samples()[4_200], 0.3);
    }

    #[test]
    fn absurd_timestamp_jump_does_not_allocate_hours() {
        let t0 = Instant::now();
        let mut rec = Recording::new(48_000);
        rec.place(7, 0, t0, &[0.1; 960]);
        rec.place(7, 0x7000_0000, t0 + FRAME, &[0.2; 960]);
        assert_eq!(rec.samples().len(), 960 * 2);
        assert_eq!(rec.reanchors, 1);
    }

    #[test]
    fn g711_decoders_map_silence_codes_to_near_zero() {
        let mut out = Vec::new();
        FrameDecoder::new(Codec::Pcmu)
            .unwrap()
            .decode(&[0xFF; 160], &mut out)
            .unwrap();
        assert_eq!(out.len(), 160);
        assert!(out.iter().all(|s| s.abs() < 0.001));
        FrameDecoder::new(Codec::Pcma)
            .unwrap()
            .decode(&[0xD5, 0xAA], &mut out)
            .unwrap();
        assert!(out[0].abs() < 0.001);
        assert!(
            out[1] > 0.5,
            "0xAA is a loud positive A-law code: {}",
            out[1]
        );
    }

    #[test]
    fn opus_round_trip_decodes_20ms_at_48k() {
        use audiopus::Application;
        use audiopus::coder::Encoder;
        let encoder = Encoder::new(SampleRate::Hz48000, Channels::Mono, Application::Voip).unwrap();
        let tone: Vec<i16> = (0..960)
            .map(|i| ((i as f32 * 440.0 * std::f32::consts::TAU / 48_000.0).sin() * 8_000.0) as i16)
            .collect();
        let mut packet = [0u8; 400];
        let len = encoder.encode(&tone, &mut packet).unwrap();
        let mut decoder = FrameDecoder::new(Codec::Opus).unwrap();
        let mut out = Vec::new();
        decoder.decode(&packet[..len], &mut out).unwrap();
        assert_eq!(out.len(), 960);
        assert!(
            decoder.decode(&[], &mut out).is_err(),
            "empty payload is an error, not a panic"
        );
    }
}

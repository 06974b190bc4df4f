//! What the test client sends: one RTP packet every 20 ms from its RTP port
//! to the answered media address. Real phones always send, and the line
//! latches its media destination onto our source address (symmetric RTP,
//! RFC 4961), so a silent client would test the wrong thing.
//!
//! Sans-IO: [`RtpSender::poll_packet`] is given `now` and returns the packet
//! due, if any; [`RtpSender::next_due`] says when to call it next. Packet `k`
//! is due at `start + k · 20 ms` (absolute, so delays do not accumulate);
//! if the caller falls more than [`MAX_CATCH_UP`] frames behind, the missed
//! frames are skipped (timestamp still advances) instead of burst out.
//!
//! The audio comes from an [`AudioSource`], encoded by our own
//! [`FrameEncoder`]. Silence today; in-band DTMF later is another source
//! (tones), and RFC 4733 events will be a second packet kind sharing this
//! SSRC and sequence space (RFC 4733 §2.1) — hence the sequence, timestamp
//! and marker bookkeeping live here, not in the source.

use std::time::Instant;

use audiopus::coder::Encoder as OpusEncoder;
use audiopus::{Application, Channels, SampleRate};
use rtp_rs::{RtpPacketBuilder, Seq};

use crate::media::g711::{alaw_encode_into, ulaw_encode_into};
use crate::media::{Codec, FRAME_DURATION};

/// Frames we may send late in a row before skipping ahead.
pub const MAX_CATCH_UP: u32 = 5;

/// Largest Opus packet we accept from the encoder (RFC 7587 recommends
/// staying well under the MTU; silence is a few bytes).
const OPUS_MAX_PACKET: usize = 1_275;

/// Produces the PCM of each 20 ms frame we send.
pub trait AudioSource: Send {
    /// Fills `frame` (one frame at the codec rate) with the next audio.
    fn fill(&mut self, frame: &mut [i16]);
}

/// Digital silence.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silence;

impl AudioSource for Silence {
    fn fill(&mut self, frame: &mut [i16]) {
        frame.fill(0);
    }
}

/// Encodes PCM frames for one codec. Independent of the line's encoder on
/// purpose: the client must not share the code it is testing beyond G.711's
/// tables.
pub enum FrameEncoder {
    Pcmu,
    Pcma,
    Opus(Box<OpusEncoder>),
}

impl FrameEncoder {
    pub fn new(codec: Codec) -> Result<Self, audiopus::Error> {
        Ok(match codec {
            Codec::Pcmu => FrameEncoder::Pcmu,
            Codec::Pcma => FrameEncoder::Pcma,
            Codec::Opus => FrameEncoder::Opus(Box::new(OpusEncoder::new(
                SampleRate::Hz48000,
                Channels::Mono,
                Application::Voip,
            )?)),
        })
    }

    /// Replaces `out` with the encoded frame. µ-law silence is 0xFF, A-law 0xD5.
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), audiopus::Error> {
        out.clear();
        match self {
            FrameEncoder::Pcmu => ulaw_encode_into(pcm, out),
            FrameEncoder::Pcma => alaw_encode_into(pcm, out),
            FrameEncoder::Opus(encoder) => {
                out.resize(OPUS_MAX_PACKET, 0);
                let n = encoder.encode(pcm, &mut out[..])?;
                out.truncate(n);
            }
        }
        Ok(())
    }
}

/// Paces and packetises our outgoing audio.
pub struct RtpSender {
    ssrc: u32,
    payload_type: u8,
    sequence: u16,
    timestamp: u32,
    frame_ticks: u32,
    /// Marker on the first packet: RFC 3551 §4.1, start of a talkspurt.
    marker_next: bool,
    start: Instant,
    /// Index of the next frame due (`start + index · 20 ms`).
    index: u32,
    encoder: FrameEncoder,
    source: Box<dyn AudioSource>,
    pcm: Vec<i16>,
    payload: Vec<u8>,
    /// Packets built so far.
    pub sent: u64,
}

impl RtpSender {
    /// A sender for `codec` using the negotiated `payload_type`; the first
    /// packet is due at `start`. SSRC, first sequence number and timestamp
    /// are random (RFC 3550 §5.1).
    pub fn new(
        codec: Codec,
        payload_type: u8,
        source: Box<dyn AudioSource>,
        start: Instant,
    ) -> Result<Self, audiopus::Error> {
        Ok(RtpSender {
            ssrc: rand::random(),
            payload_type,
            sequence: rand::random(),
            timestamp: rand::random(),
            frame_ticks: codec.samples_per_frame(),
            marker_next: true,
            start,
            index: 0,
            encoder: FrameEncoder::new(codec)?,
            source,
            pcm: vec![0; codec.samples_per_frame() as usize],
            payload: Vec::new(),
            sent: 0,
        })
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Follows a payload type changed by a re-INVITE (dynamic types such as
    /// Opus may be renumbered); SSRC, sequence and timestamp carry on.
    pub fn set_payload_type(&mut self, payload_type: u8) {
        self.payload_type = payload_type;
    }

    /// When the next packet is due.
    pub fn next_due(&self) -> Instant {
        self.start + FRAME_DURATION * self.index
    }

    /// The packet due at `now`, if one is; call again until `None`.
    pub fn poll_packet(&mut self, now: Instant) -> Result<Option<Vec<u8>>, audiopus::Error> {
        if now < self.next_due() {
            return Ok(None);
        }
        let behind = frames_between(self.next_due(), now);
        if behind > MAX_CATCH_UP {
            // Stalled (debugger, overloaded host): the sender's clock keeps
            // running, so the timestamp jumps with it rather than bursting.
            self.index += behind;
            self.timestamp = self.timestamp.wrapping_add(self.frame_ticks * behind);
        }
        self.source.fill(&mut self.pcm);
        self.encoder.encode(&self.pcm, &mut self.payload)?;
        let packet = RtpPacketBuilder::new()
            .payload_type(self.payload_type)
            .ssrc(self.ssrc)
            .sequence(Seq::from(self.sequence))
            .timestamp(self.timestamp)
            .marked(self.marker_next)
            .payload(&self.payload)
            .build()
            .expect("payload type < 128 and no CSRCs: the header always builds");
        self.marker_next = false;
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(self.frame_ticks);
        self.index += 1;
        self.sent += 1;
        Ok(Some(packet))
    }
}

/// Whole frames from `from` to `to`.
fn frames_between(from: Instant, to: Instant) -> u32 {
    let elapsed = to.saturating_duration_since(from);
    u32::try_from(elapsed.as_nanos() / FRAME_DURATION.as_nanos()).unwrap_or(u32::MAX / 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtp_rs::RtpReader;

    fn frames(n: u32) -> std::time::Duration {
        FRAME_DURATION * n
    }

    fn read(packet: &[u8]) -> (u16, u32, bool, u8, Vec<u8>) {
        let r = RtpReader::new(packet).unwrap();
        (
            u16::from(r.sequence_number()),
            r.timestamp(),
            r.mark(),
            r.payload_type(),
            r.payload().to_vec(),
        )
    }

    #[test]
    fn pcmu_silence_is_paced_every_20ms_with_marker_first() {
        let t0 = Instant::now();
        let mut sender = RtpSender::new(Codec::Pcmu, 0, Box::new(Silence), t0).unwrap();
        let first = sender.poll_packet(t0).unwrap().expect("due at start");
        assert!(
            sender.poll_packet(t0).unwrap().is_none(),
            "one packet per frame"
        );
        assert_eq!(sender.next_due(), t0 + frames(1));
        let second = sender.poll_packet(t0 + frames(1)).unwrap().unwrap();
        let (seq1, ts1, m1, pt, payload) = read(&first);
        let (seq2, ts2, m2, _, _) = read(&second);
        assert!(m1 && !m2);
        assert_eq!(pt, 0);
        assert_eq!(payload, vec![0xFF; 160]);
        assert_eq!(seq2, seq1.wrapping_add(1));
        assert_eq!(ts2, ts1.wrapping_add(160));
    }

    #[test]
    fn pcma_silence_is_0xd5() {
        let t0 = Instant::now();
        let mut sender = RtpSender::new(Codec::Pcma, 8, Box::new(Silence), t0).unwrap();
        let (_, _, _, pt, payload) = read(&sender.poll_packet(t0).unwrap().unwrap());
        assert_eq!(pt, 8);
        assert_eq!(payload, vec![0xD5; 160]);
    }

    #[test]
    fn opus_silence_is_a_small_packet_with_960_tick_steps() {
        let t0 = Instant::now();
        let mut sender = RtpSender::new(Codec::Opus, 111, Box::new(Silence), t0).unwrap();
        let (_, ts1, _, pt, payload) = read(&sender.poll_packet(t0).unwrap().unwrap());
        let (_, ts2, _, _, _) = read(&sender.poll_packet(t0 + frames(1)).unwrap().unwrap());
        assert_eq!(pt, 111);
        assert!(
            !payload.is_empty() && payload.len() < 100,
            "{}",
            payload.len()
        );
        assert_eq!(ts2, ts1.wrapping_add(960));
    }

    #[test]
    fn small_delays_catch_up_and_long_stalls_skip() {
        let t0 = Instant::now();
        let mut sender = RtpSender::new(Codec::Pcmu, 0, Box::new(Silence), t0).unwrap();
        let late = t0 + frames(3);
        let mut burst = Vec::new();
        while let Some(p) = sender.poll_packet(late).unwrap() {
            burst.push(read(&p));
        }
        assert_eq!(burst.len(), 4, "frames 0..=3 were due");
        let stalled = t0 + frames(100);
        let (seq, ts, _, _, _) = read(&sender.poll_packet(stalled).unwrap().unwrap());
        assert_eq!(seq, burst[3].0.wrapping_add(1), "sequence stays contiguous");
        assert_eq!(
            ts,
            burst[3].1.wrapping_add(160 * 97),
            "timestamp follows the clock"
        );
        assert!(sender.poll_packet(stalled).unwrap().is_none());
    }
}

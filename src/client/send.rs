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
//! [`FrameEncoder`]. Key presses ([`RtpSender::press`]) start at the next
//! frame slot, one at a time, in order:
//! - in-band: the Q.23 dual tone is mixed into the source's audio;
//! - RFC 4733: telephone-event packets share this SSRC, sequence space and
//!   clock (§2.1), one per slot, all stamped with the slot where the event
//!   began; they replace the audio packets (the phone mutes while it
//!   signals, §2.6), unless the press also goes in-band, when both go so
//!   the far end gets the same press twice. The audio timestamp advances
//!   through the event, so audio resumes where the clock is.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use audiopus::coder::Encoder as OpusEncoder;
use audiopus::{Application, Channels, SampleRate};
use rtp_rs::{RtpPacketBuilder, Seq};

use super::dtmf::{EventPackets, Key, KeyChannel, Tone};
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

/// A key press for the RTP stream: as telephone-events, as a tone, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPress {
    pub key: Key,
    /// Send RFC 4733 events with this (negotiated) payload type.
    pub event_payload_type: Option<u8>,
    /// Mix the dual tone into the audio.
    pub tone: bool,
    pub duration: Duration,
}

/// The RFC 4733 event being sent.
struct ActiveEvent {
    packets: EventPackets,
    payload_type: u8,
    /// The RTP timestamp of the slot the event began in (§2.5.1.2).
    timestamp: u32,
    /// Audio packets still go out beside the events (the press is in-band too).
    with_audio: bool,
}

/// Paces and packetises our outgoing audio.
pub struct RtpSender {
    ssrc: u32,
    payload_type: u8,
    sequence: u16,
    timestamp: u32,
    frame_ticks: u32,
    rate_hz: u32,
    /// Marker on the first packet: RFC 3551 §4.1, start of a talkspurt.
    marker_next: bool,
    start: Instant,
    /// Index of the next frame due (`start + index · 20 ms`).
    index: u32,
    encoder: FrameEncoder,
    source: Box<dyn AudioSource>,
    pcm: Vec<i16>,
    payload: Vec<u8>,
    /// Presses waiting for the one in progress to finish.
    presses: VecDeque<RtpPress>,
    event: Option<ActiveEvent>,
    tone: Option<Tone>,
    /// Packets of the current slot not yet returned (audio and event).
    outbox: VecDeque<Vec<u8>>,
    /// Presses whose first packet was just built, for [`Self::poll_started`].
    started: VecDeque<(Key, KeyChannel)>,
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
            rate_hz: codec.sample_rate_hz(),
            marker_next: true,
            start,
            index: 0,
            encoder: FrameEncoder::new(codec)?,
            source,
            pcm: vec![0; codec.samples_per_frame() as usize],
            payload: Vec::new(),
            presses: VecDeque::new(),
            event: None,
            tone: None,
            outbox: VecDeque::new(),
            started: VecDeque::new(),
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

    /// Sends `press` from the next free frame slot: at once, or after the
    /// presses already queued.
    pub fn press(&mut self, press: RtpPress) {
        self.presses.push_back(press);
    }

    /// A press whose first packet the last [`Self::poll_packet`] built, once
    /// per way it goes (RFC 4733 and in-band may both).
    pub fn poll_started(&mut self) -> Option<(Key, KeyChannel)> {
        self.started.pop_front()
    }

    /// When the next packet is due.
    pub fn next_due(&self) -> Instant {
        self.start + FRAME_DURATION * self.index
    }

    /// The packet due at `now`, if one is; call again until `None`.
    pub fn poll_packet(&mut self, now: Instant) -> Result<Option<Vec<u8>>, audiopus::Error> {
        if let Some(packet) = self.outbox.pop_front() {
            return Ok(Some(packet));
        }
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
        self.start_press();
        let event = self.event.as_mut().and_then(|event| {
            let packet = event.packets.next_packet();
            Some((
                event.payload_type,
                event.timestamp,
                event.with_audio,
                packet?,
            ))
        });
        if self.event.as_ref().is_some_and(|e| e.packets.is_done()) {
            // Cleared now, so the next press may start in the very next slot.
            self.event = None;
        }
        // The source runs on even while events replace its packets, so it
        // stays in step with the clock.
        self.source.fill(&mut self.pcm);
        if event.is_none_or(|(_, _, with_audio, _)| with_audio) {
            if let Some(tone) = &mut self.tone {
                tone.mix_into(&mut self.pcm);
            }
            self.encoder.encode(&self.pcm, &mut self.payload)?;
            let packet = self.build(self.payload_type, self.timestamp, self.marker_next);
            self.marker_next = false;
            self.outbox.push_back(packet);
        }
        if self.tone.as_ref().is_some_and(Tone::is_done) {
            self.tone = None;
        }
        if let Some((payload_type, timestamp, _, (marker, payload))) = event {
            self.payload.clear();
            self.payload.extend_from_slice(&payload);
            let packet = self.build(payload_type, timestamp, marker);
            self.outbox.push_back(packet);
        }
        self.timestamp = self.timestamp.wrapping_add(self.frame_ticks);
        self.index += 1;
        Ok(self.outbox.pop_front())
    }

    /// Begins the next queued press if none is in progress.
    fn start_press(&mut self) {
        if self.event.is_some() || self.tone.is_some() {
            return;
        }
        let Some(press) = self.presses.pop_front() else {
            return;
        };
        if let Some(payload_type) = press.event_payload_type {
            self.event = Some(ActiveEvent {
                packets: EventPackets::new(press.key, press.duration, self.frame_ticks),
                payload_type,
                timestamp: self.timestamp,
                with_audio: press.tone,
            });
            self.started.push_back((press.key, KeyChannel::Rfc4733));
        }
        if press.tone {
            let samples = (press.duration.as_secs_f64() * f64::from(self.rate_hz)).round();
            self.tone = Some(Tone::new(press.key, self.rate_hz, samples as u32));
            self.started.push_back((press.key, KeyChannel::InBand));
        }
    }

    /// One packet with the next sequence number and this payload.
    fn build(&mut self, payload_type: u8, timestamp: u32, marker: bool) -> Vec<u8> {
        let packet = RtpPacketBuilder::new()
            .payload_type(payload_type)
            .ssrc(self.ssrc)
            .sequence(Seq::from(self.sequence))
            .timestamp(timestamp)
            .marked(marker)
            .payload(&self.payload)
            .build()
            .expect("payload type < 128 and no CSRCs: the header always builds");
        self.sequence = self.sequence.wrapping_add(1);
        self.sent += 1;
        packet
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

    fn press(key: char, event: Option<u8>, tone: bool) -> RtpPress {
        RtpPress {
            key: Key::from_char(key).unwrap(),
            event_payload_type: event,
            tone,
            duration: Duration::from_millis(100),
        }
    }

    /// Every packet of `slots` frame slots from `t0`, with the presses
    /// reported as started in each slot.
    fn run(sender: &mut RtpSender, t0: Instant, slots: u32) -> Vec<(u32, Vec<u8>)> {
        let mut out = Vec::new();
        for slot in 0..slots {
            while let Some(p) = sender.poll_packet(t0 + frames(slot)).unwrap() {
                out.push((slot, p));
            }
        }
        out
    }

    #[test]
    fn events_replace_audio_then_audio_resumes_on_the_clock() {
        let t0 = Instant::now();
        let mut sender = RtpSender::new(Codec::Pcmu, 0, Box::new(Silence), t0).unwrap();
        let before = read(&sender.poll_packet(t0).unwrap().unwrap());
        sender.press(press('2', Some(101), false));
        let slots = run(&mut sender, t0 + frames(1), 9);
        let packets: Vec<_> = slots.iter().map(|(_, p)| read(p)).collect();
        assert_eq!(
            sender.poll_started(),
            Some((Key::Digit(2), KeyChannel::Rfc4733))
        );
        assert_eq!(sender.poll_started(), None);
        assert_eq!(
            packets.len(),
            9,
            "one packet per slot: events replace audio"
        );
        for (k, (seq, _, _, _, _)) in packets.iter().enumerate() {
            assert_eq!(*seq, before.0.wrapping_add(1 + k as u16), "contiguous");
        }
        let events = &packets[..7];
        for (k, (_, ts, marker, pt, payload)) in events.iter().enumerate() {
            assert_eq!(*pt, 101);
            assert_eq!(*ts, before.1.wrapping_add(160), "the event's start");
            assert_eq!(*marker, k == 0);
            let e = crate::media::rtp::TelephoneEvent::parse(payload).unwrap();
            let duration = 160 * (k as u16 + 1).min(5);
            assert_eq!(
                (e.event, e.end, e.volume, e.duration),
                (2, k >= 4, 10, duration)
            );
        }
        let (_, ts, marker, pt, payload) = &packets[7];
        assert_eq!((*pt, *marker), (0, false));
        assert_eq!(
            *ts,
            before.1.wrapping_add(160 * 8),
            "audio follows the clock"
        );
        assert_eq!(payload, &vec![0xFF; 160]);
        assert_eq!(sender.sent, 10);
    }

    #[test]
    fn presses_queue_one_after_another() {
        let t0 = Instant::now();
        let mut sender = RtpSender::new(Codec::Pcmu, 0, Box::new(Silence), t0).unwrap();
        sender.press(press('1', Some(101), false));
        sender.press(press('#', Some(101), false));
        let packets: Vec<_> = run(&mut sender, t0, 15)
            .iter()
            .map(|(_, p)| read(p))
            .collect();
        let codes: Vec<(u8, u32)> = packets
            .iter()
            .filter(|p| p.3 == 101 && p.2)
            .map(|p| (p.4[0], p.1))
            .collect();
        assert_eq!(codes.len(), 2, "two events, each marked once");
        assert_eq!((codes[0].0, codes[1].0), (1, 11));
        assert_eq!(
            codes[1].1,
            codes[0].1.wrapping_add(7 * 160),
            "second after the first's 7 slots"
        );
    }

    #[test]
    fn tone_goes_in_the_audio_and_beside_events() {
        let t0 = Instant::now();
        let mut sender = RtpSender::new(Codec::Pcmu, 0, Box::new(Silence), t0).unwrap();
        sender.press(press('5', Some(101), true));
        let slots = run(&mut sender, t0, 8);
        let mut started = Vec::new();
        while let Some(s) = sender.poll_started() {
            started.push(s);
        }
        assert_eq!(
            started,
            vec![
                (Key::Digit(5), KeyChannel::Rfc4733),
                (Key::Digit(5), KeyChannel::InBand)
            ]
        );
        let packets: Vec<_> = slots.iter().map(|(_, p)| read(p)).collect();
        assert_eq!(packets.iter().filter(|p| p.3 == 101).count(), 7);
        let audio: Vec<_> = packets.iter().filter(|p| p.3 == 0).collect();
        assert_eq!(audio.len(), 8, "audio keeps flowing");
        for pair in packets.windows(2) {
            assert_eq!(pair[1].0, pair[0].0.wrapping_add(1));
        }
        let samples: Vec<f32> = audio
            .iter()
            .flat_map(|p| p.4.iter())
            .map(|&code| f32::from(crate::media::g711::ulaw_decode(code)) / 32_768.0)
            .collect();
        let heard = crate::media::inband::InBandDetector::default().handle_samples(&samples);
        assert_eq!(heard, vec![Key::Digit(5)]);
        assert!(samples[800..].iter().all(|s| s.abs() < 0.01), "100 ms only");
    }
}

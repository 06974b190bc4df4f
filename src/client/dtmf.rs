//! Key presses the test client sends, each of the three ways a phone or
//! trunk may: RFC 4733 telephone-events in the RTP stream, SIP INFO in the
//! dialog, and in-band tones mixed into the audio (ITU-T Q.23).
//!
//! This module holds what is pure: the press schedule and its parsing from
//! the command line, the RFC 4733 §2.3 payload, the INFO bodies and the
//! dual-tone generator. [`super::send::RtpSender`] puts events and tones on
//! the wire; the session sends the INFO and decides when each press is due.

use std::f32::consts::TAU;
use std::time::{Duration, Instant};

use crate::media::FRAME_DURATION;

pub use crate::media::dtmf::{Key, KeyChannel};

/// Default length of a tone or event: long enough for any detector (Q.24
/// asks for 40 ms), short enough for a quick sequence.
pub const DEFAULT_DURATION: Duration = Duration::from_millis(100);

/// RFC 4733 §2.3.4 volume: -10 dBm0, a typical keypad level.
pub const EVENT_VOLUME: u8 = 10;

/// Peak of each of the two tones, as a fraction of full scale: two tones at
/// 0.25 sum to at most half scale, leaving room for the audio beneath and
/// about -10 dBm0 each on G.711 (whose 0 dBm0 is ~0.7 of full scale).
pub const TONE_AMPLITUDE: f32 = 0.25;

/// Q.23 row (low group) frequencies.
const ROWS_HZ: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
/// Q.23 column (high group) frequencies.
const COLUMNS_HZ: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];

/// One key press to send: `at` after our ACK of the 2xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfPress {
    pub at: Duration,
    pub key: Key,
}

/// One press as it left, one entry per way it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfSent {
    pub key: Key,
    pub via: KeyChannel,
    /// When its first RTP packet or the INFO was handed to the socket.
    pub at: Instant,
    /// The INFO's final status (408 when its transaction timed out); `None`
    /// for RTP ways, or while no final response has come.
    pub info_status: Option<u16>,
}

/// The body of a SIP INFO carrying a press.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InfoType {
    /// `application/dtmf-relay`, `Signal=2\r\nDuration=100\r\n`: what most
    /// PBXs and trunks send, so the default.
    #[default]
    DtmfRelay,
    /// `application/dtmf` with the bare key as its body.
    Dtmf,
}

impl InfoType {
    pub fn content_type(self) -> &'static str {
        match self {
            InfoType::DtmfRelay => "application/dtmf-relay",
            InfoType::Dtmf => "application/dtmf",
        }
    }

    /// The body for `key` held for `duration` (whole milliseconds).
    pub fn body(self, key: Key, duration: Duration) -> String {
        match self {
            InfoType::DtmfRelay => format!(
                "Signal={}\r\nDuration={}\r\n",
                key.as_char(),
                duration.as_millis()
            ),
            InfoType::Dtmf => key.as_char().to_string(),
        }
    }
}

/// Bad `--dtmf` input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtmfError {
    #[error("{0:?} is not a keypad key: use 0-9, *, #, A-D")]
    NotAKey(char),
    #[error("no keys given")]
    NoKeys,
    #[error("{0:?} is not a dtmf way: use rfc4733, info or inband")]
    UnknownVia(String),
    #[error("{0:?} is not a sip info type: use dtmf-relay or dtmf")]
    UnknownInfoType(String),
}

/// The keys of `text`, e.g. `"2*5"`: only what a keypad shows (0-9, *, #,
/// A-D), so a typo never dials something unintended.
pub fn parse_keys(text: &str) -> Result<Vec<Key>, DtmfError> {
    let keys = text
        .chars()
        .map(|c| {
            // `Key::from_char` also takes a-d (for INFO bodies); a script should not.
            let key = Key::from_char(c).filter(|_| !c.is_ascii_lowercase());
            key.ok_or(DtmfError::NotAKey(c))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(DtmfError::NoKeys);
    }
    Ok(keys)
}

/// Keys to press, parsed from text such as `"2*5"` ([`parse_keys`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySequence(pub Vec<Key>);

impl std::str::FromStr for KeySequence {
    type Err = DtmfError;

    fn from_str(text: &str) -> Result<Self, DtmfError> {
        parse_keys(text).map(KeySequence)
    }
}

/// A way to send presses by its command-line name.
pub fn parse_via(name: &str) -> Result<KeyChannel, DtmfError> {
    match name.trim().to_ascii_lowercase().as_str() {
        "rfc4733" | "rfc2833" => Ok(KeyChannel::Rfc4733),
        "info" | "sip-info" | "sipinfo" => Ok(KeyChannel::SipInfo),
        "inband" | "in-band" => Ok(KeyChannel::InBand),
        _ => Err(DtmfError::UnknownVia(name.to_owned())),
    }
}

/// An INFO body type by its command-line name.
pub fn parse_info_type(name: &str) -> Result<InfoType, DtmfError> {
    match name.trim().to_ascii_lowercase().as_str() {
        "dtmf-relay" | "application/dtmf-relay" => Ok(InfoType::DtmfRelay),
        "dtmf" | "application/dtmf" => Ok(InfoType::Dtmf),
        _ => Err(DtmfError::UnknownInfoType(name.to_owned())),
    }
}

/// `keys` pressed one by one: the first `delay` after the answer, then one
/// every `interval`.
pub fn schedule(keys: &[Key], delay: Duration, interval: Duration) -> Vec<DtmfPress> {
    keys.iter()
        .zip(0u32..)
        .map(|(&key, k)| DtmfPress {
            at: delay + interval.saturating_mul(k),
            key,
        })
        .collect()
}

/// The RFC 4733 §3.2 event code of `key` (0-9, * = 10, # = 11, A-D = 12-15).
pub fn event_code(key: Key) -> u8 {
    match key {
        Key::Digit(d) => d.min(9),
        Key::Star => 10,
        Key::Hash => 11,
        Key::Letter(c) => 12 + (c.to_ascii_uppercase() as u8).saturating_sub(b'A').min(3),
    }
}

/// An RFC 4733 §2.3 payload: `event(8) E(1) R(1) volume(6) duration(16)`.
/// The R bit is sent as zero (§2.3.3).
pub fn event_payload(code: u8, end: bool, volume: u8, duration: u16) -> [u8; 4] {
    let [d0, d1] = duration.to_be_bytes();
    let flags = if end { 0x80 } else { 0 } | (volume & 0x3f);
    [code, flags, d0, d1]
}

/// The end packet is sent this many times (RFC 4733 §2.5.1.4), so a lost
/// one does not cut the event's duration.
pub const END_PACKETS: u32 = 3;

/// The packets of one RFC 4733 event, one per 20 ms slot (§2.5): updates
/// whose duration grows by a frame each, then the end packet three times.
/// All share the event's start timestamp, which the sender adds.
#[derive(Debug, Clone)]
pub struct EventPackets {
    code: u8,
    /// Slots the event lasts (its duration in frames, at least one).
    frames: u32,
    frame_ticks: u32,
    /// The next slot to send, from 0.
    slot: u32,
}

impl EventPackets {
    /// `key` held for `duration`, rounded up to whole frames of
    /// `frame_ticks` timestamp units and capped at what the 16-bit
    /// duration field holds (1.3 s at 48 kHz); longer events would need
    /// §2.5.2.3 segments, which a test client has no use for.
    pub fn new(key: Key, duration: Duration, frame_ticks: u32) -> Self {
        let frame_ticks = frame_ticks.max(1);
        let wanted = duration
            .as_nanos()
            .div_ceil(FRAME_DURATION.as_nanos())
            .max(1);
        let fits = u32::from(u16::MAX) / frame_ticks;
        EventPackets {
            code: event_code(key),
            frames: u32::try_from(wanted).unwrap_or(u32::MAX).min(fits).max(1),
            frame_ticks,
            slot: 0,
        }
    }

    /// True once the last end packet has gone.
    pub fn is_done(&self) -> bool {
        self.slot >= self.frames + END_PACKETS - 1
    }

    /// The next slot's (marker, payload); `None` once the last end packet
    /// has gone.
    pub fn next_packet(&mut self) -> Option<(bool, [u8; 4])> {
        if self.is_done() {
            return None;
        }
        let end = self.slot + 1 >= self.frames;
        let elapsed = (self.slot + 1).min(self.frames);
        // `new` capped `frames` so that this fits.
        let duration = u16::try_from(elapsed * self.frame_ticks).unwrap_or(u16::MAX);
        // §2.5.1.1: the marker is set on the first packet of the event only.
        let marker = self.slot == 0;
        self.slot += 1;
        Some((
            marker,
            event_payload(self.code, end, EVENT_VOLUME, duration),
        ))
    }
}

/// The Q.23 row and column frequencies of `key`.
pub fn frequencies_hz(key: Key) -> (f32, f32) {
    let (row, column) = match key.as_char() {
        '1' => (0, 0),
        '2' => (0, 1),
        '3' => (0, 2),
        'A' => (0, 3),
        '4' => (1, 0),
        '5' => (1, 1),
        '6' => (1, 2),
        'B' => (1, 3),
        '7' => (2, 0),
        '8' => (2, 1),
        '9' => (2, 2),
        'C' => (2, 3),
        '*' => (3, 0),
        '0' => (3, 1),
        '#' => (3, 2),
        _ => (3, 3), // 'D'; `Key` holds nothing else
    };
    (ROWS_HZ[row], COLUMNS_HZ[column])
}

/// A dual tone being generated, a frame at a time, at the codec rate.
#[derive(Debug, Clone)]
pub struct Tone {
    low_step: f32,
    high_step: f32,
    /// Sample index since the tone began; phase is derived from it so long
    /// tones do not drift.
    position: u32,
    remaining: u32,
}

impl Tone {
    /// `key`'s tone for `samples` samples at `rate_hz`.
    pub fn new(key: Key, rate_hz: u32, samples: u32) -> Self {
        let (low, high) = frequencies_hz(key);
        let rate = rate_hz.max(1) as f32;
        Tone {
            low_step: TAU * low / rate,
            high_step: TAU * high / rate,
            position: 0,
            remaining: samples,
        }
    }

    pub fn is_done(&self) -> bool {
        self.remaining == 0
    }

    /// Adds the tone to `frame` (saturating), for as many samples as remain.
    pub fn mix_into(&mut self, frame: &mut [i16]) {
        let amplitude = TONE_AMPLITUDE * f32::from(i16::MAX);
        for sample in frame.iter_mut() {
            if self.remaining == 0 {
                break;
            }
            let t = self.position as f32;
            let value = amplitude * ((self.low_step * t).sin() + (self.high_step * t).sin());
            *sample = sample.saturating_add(value as i16);
            self.position += 1;
            self.remaining -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::rtp::TelephoneEvent;

    #[test]
    fn keys_parse_and_reject_anything_else() {
        let keys = parse_keys("2*5#AD0").unwrap();
        let chars: String = keys.iter().map(|k| k.as_char()).collect();
        assert_eq!(chars, "2*5#AD0");
        assert_eq!(parse_keys("a"), Err(DtmfError::NotAKey('a')));
        assert_eq!(parse_keys("2x"), Err(DtmfError::NotAKey('x')));
        assert_eq!(parse_keys("1 2"), Err(DtmfError::NotAKey(' ')));
        assert_eq!(parse_keys("E"), Err(DtmfError::NotAKey('E')));
        assert_eq!(parse_keys(""), Err(DtmfError::NoKeys));
    }

    #[test]
    fn schedule_spaces_presses_after_the_delay() {
        let keys = parse_keys("2*5").unwrap();
        let presses = schedule(&keys, Duration::from_secs(3), Duration::from_millis(500));
        let at: Vec<u128> = presses.iter().map(|p| p.at.as_millis()).collect();
        assert_eq!(at, vec![3_000, 3_500, 4_000]);
        assert_eq!(presses[1].key, Key::Star);
    }

    #[test]
    fn event_codes_round_trip_through_the_line_parser() {
        for c in "0123456789*#ABCD".chars() {
            let key = Key::from_char(c).unwrap();
            assert_eq!(Key::from_event(event_code(key)), Some(key), "{c}");
        }
    }

    #[test]
    fn event_payload_reads_back() {
        let payload = event_payload(10, true, EVENT_VOLUME, 800);
        let event = TelephoneEvent::parse(&payload).unwrap();
        assert_eq!(
            (event.event, event.end, event.volume, event.duration),
            (10, true, 10, 800)
        );
        assert_eq!(event_payload(2, false, 10, 160), [2, 10, 0, 160]);
    }

    #[test]
    fn event_of_100ms_grows_per_frame_then_ends_three_times() {
        let mut packets = EventPackets::new(Key::Digit(2), DEFAULT_DURATION, 160);
        let mut seen = Vec::new();
        while let Some((marker, payload)) = packets.next_packet() {
            let e = TelephoneEvent::parse(&payload).unwrap();
            assert_eq!((e.event, e.volume), (2, EVENT_VOLUME));
            seen.push((marker, e.end, e.duration));
        }
        assert_eq!(
            seen,
            vec![
                (true, false, 160),
                (false, false, 320),
                (false, false, 480),
                (false, false, 640),
                (false, true, 800),
                (false, true, 800),
                (false, true, 800),
            ]
        );
    }

    #[test]
    fn short_and_long_events_stay_in_range() {
        let mut short = EventPackets::new(Key::Star, Duration::from_millis(5), 160);
        assert_eq!(
            short.next_packet().map(|(m, p)| (m, p[1] & 0x80, p[3])),
            Some((true, 0x80, 160))
        );
        assert_eq!(std::iter::from_fn(|| short.next_packet()).count(), 2);
        let mut long = EventPackets::new(Key::Hash, Duration::from_secs(10), 960);
        let last = std::iter::from_fn(|| long.next_packet()).last().unwrap().1;
        let duration = TelephoneEvent::parse(&last).unwrap().duration;
        assert_eq!(duration, 68 * 960, "capped at whole frames under 65536");
    }

    #[test]
    fn info_bodies() {
        let ms = Duration::from_millis(100);
        assert_eq!(
            InfoType::DtmfRelay.body(Key::Digit(2), ms),
            "Signal=2\r\nDuration=100\r\n"
        );
        assert_eq!(InfoType::Dtmf.body(Key::Hash, ms), "#");
        assert_eq!(InfoType::Dtmf.content_type(), "application/dtmf");
        assert_eq!(parse_info_type("DTMF"), Ok(InfoType::Dtmf));
        assert!(parse_info_type("text").is_err());
    }

    #[test]
    fn vias_by_name() {
        assert_eq!(parse_via("rfc4733"), Ok(KeyChannel::Rfc4733));
        assert_eq!(parse_via(" INFO "), Ok(KeyChannel::SipInfo));
        assert_eq!(parse_via("inband"), Ok(KeyChannel::InBand));
        assert!(matches!(parse_via("fax"), Err(DtmfError::UnknownVia(_))));
    }

    #[test]
    fn tone_is_heard_by_the_line_detector_for_every_key() {
        for c in "0123456789*#ABCD".chars() {
            let key = Key::from_char(c).unwrap();
            let mut tone = Tone::new(key, 8_000, 800);
            let mut pcm = vec![0i16; 1_600];
            tone.mix_into(&mut pcm);
            assert!(tone.is_done());
            assert_eq!(pcm[900], 0, "silent after its duration");
            let peak = pcm.iter().map(|s| s.unsigned_abs()).max().unwrap();
            assert!((15_000..=16_400).contains(&peak), "{c}: {peak}");
            let samples: Vec<f32> = pcm.iter().map(|&s| f32::from(s) / 32_768.0).collect();
            let heard = crate::media::inband::InBandDetector::default().handle_samples(&samples);
            assert_eq!(heard, vec![key], "{c}");
        }
    }
}

//! Key presses from the caller's keypad, sans-IO.
//!
//! [`Rfc4733Detector`] turns RFC 4733 `telephone-event` RTP packets into
//! digits: all packets of one event share its RTP timestamp (§2.5.1.3), so
//! an event counts once however many updates and end packets arrive
//! (the end packet is sent three times, §2.5.1.4), and a reordered or
//! repeated packet of an event already counted is ignored.
//!
//! [`KeyDeduplicator`] merges the ways a trunk may send the same press
//! (RFC 4733, SIP INFO, in-band tones): a digit repeated by a *different*
//! way within [`SAME_PRESS_WINDOW`] is the same press, not a second one.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::media::rtp::TelephoneEvent;

/// How many recent event timestamps are remembered: far more than can be in
/// flight at once, so a late duplicate is always recognised.
const RECENT_EVENTS: usize = 16;

/// A press reported two ways (say RFC 4733 and in-band) arrives within
/// this window; two real presses of one key are further apart.
pub const SAME_PRESS_WINDOW: Duration = Duration::from_millis(300);

/// No keypad presses faster: ITU-T Q.24 asks at least 40 ms of tone and
/// 40 ms of pause of a digit. Events closer together (RFC 4733 events with
/// a new timestamp in every packet) are a sender's flood, not a caller.
pub const MIN_PRESS_INTERVAL: Duration = Duration::from_millis(80);

/// A keypad key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    Digit(u8),
    Star,
    Hash,
    /// A–D, on some phones.
    Letter(char),
}

impl Key {
    /// The key of RFC 4733 §3.2 event codes 0–15; `None` for other events
    /// (flash, tones).
    pub fn from_event(event: u8) -> Option<Key> {
        match event {
            0..=9 => Some(Key::Digit(event)),
            10 => Some(Key::Star),
            11 => Some(Key::Hash),
            12..=15 => Some(Key::Letter((b'A' + event - 12) as char)),
            _ => None,
        }
    }

    /// The key of a character (`application/dtmf` bodies, test scripts).
    pub fn from_char(c: char) -> Option<Key> {
        match c {
            '0'..='9' => Some(Key::Digit(c as u8 - b'0')),
            '*' => Some(Key::Star),
            '#' => Some(Key::Hash),
            'A'..='D' | 'a'..='d' => Some(Key::Letter(c.to_ascii_uppercase())),
            _ => None,
        }
    }

    pub fn as_char(self) -> char {
        match self {
            Key::Digit(d) => (b'0' + d) as char,
            Key::Star => '*',
            Key::Hash => '#',
            Key::Letter(c) => c,
        }
    }
}

/// Counts each RFC 4733 event once, at its first packet (so a press cuts
/// a prompt off at once, not when the key is released).
#[derive(Debug, Default)]
pub struct Rfc4733Detector {
    /// (SSRC, RTP timestamp) of recent events.
    recent: VecDeque<(u32, u32)>,
}

impl Rfc4733Detector {
    /// One telephone-event packet: `Some(key)` when it starts a new event.
    pub fn handle_packet(&mut self, ssrc: u32, timestamp: u32, payload: &[u8]) -> Option<Key> {
        let event = TelephoneEvent::parse(payload).ok()?;
        let id = (ssrc, timestamp);
        if self.recent.contains(&id) {
            return None; // an update, an end packet, or a repeat
        }
        if self.recent.len() == RECENT_EVENTS {
            self.recent.pop_front();
        }
        self.recent.push_back(id);
        Key::from_event(event.event)
    }
}

/// The key in a SIP INFO body: `application/dtmf-relay` (`Signal=5`, the
/// Cisco form most trunks send) or `application/dtmf` (the bare key, as
/// draft-kaplan-dispatch-info-dtmf-package describes). `None` for any
/// other content or an unreadable body.
pub fn key_from_info(content_type: &str, body: &[u8]) -> Option<Key> {
    let media_type = content_type.split(';').next()?.trim();
    let body = std::str::from_utf8(body).ok()?;
    if media_type.eq_ignore_ascii_case("application/dtmf-relay") {
        body.lines().find_map(|line| {
            let (name, value) = line.split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("signal") {
                return None;
            }
            key_from_signal(value.trim())
        })
    } else if media_type.eq_ignore_ascii_case("application/dtmf") {
        key_from_signal(body.trim())
    } else {
        None
    }
}

/// One key as a signal value: the character, or its RFC 4733 event code
/// (some gateways send `Signal=10` for star and `11` for hash).
fn key_from_signal(value: &str) -> Option<Key> {
    let mut chars = value.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Key::from_char(c),
        _ => value.parse::<u8>().ok().and_then(Key::from_event),
    }
}

/// Which way a press arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Rfc4733,
    SipInfo,
    InBand,
}

impl Via {
    /// How logs name it.
    pub fn name(self) -> &'static str {
        match self {
            Via::Rfc4733 => "rfc4733",
            Via::SipInfo => "sip-info",
            Via::InBand => "in-band",
        }
    }
}

/// Lets each press through once, whichever ways it arrives.
#[derive(Debug, Default)]
pub struct KeyDeduplicator {
    last: Option<(Key, Via, Instant)>,
}

impl KeyDeduplicator {
    /// `Some(key)` for a new press; `None` when `key` is a press already
    /// reported another way moments ago.
    pub fn handle_key(&mut self, key: Key, via: Via, now: Instant) -> Option<Key> {
        if let Some((last_key, last_via, at)) = self.last {
            let since = now.saturating_duration_since(at);
            let same_press = last_key == key && last_via != via && since < SAME_PRESS_WINDOW;
            if same_press || since < MIN_PRESS_INTERVAL {
                return None;
            }
        }
        self.last = Some((key, via, now));
        Some(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RFC 4733 payload: event, end bit, volume 10, duration.
    fn event(code: u8, end: bool, duration: u16) -> Vec<u8> {
        let [d0, d1] = duration.to_be_bytes();
        vec![code, if end { 0x80 | 10 } else { 10 }, d0, d1]
    }

    #[test]
    fn one_event_counts_once_however_many_packets() {
        let mut detector = Rfc4733Detector::default();
        let mut keys = Vec::new();
        // Start, two updates, then the end packet three times (§2.5.1.4).
        for (end, duration) in [
            (false, 160),
            (false, 320),
            (false, 480),
            (true, 640),
            (true, 640),
            (true, 640),
        ] {
            keys.extend(detector.handle_packet(7, 1000, &event(2, end, duration)));
        }
        assert_eq!(keys, [Key::Digit(2)]);
    }

    #[test]
    fn two_presses_of_the_same_key_are_two_events() {
        let mut detector = Rfc4733Detector::default();
        let first = detector.handle_packet(7, 1000, &event(5, true, 800));
        let second = detector.handle_packet(7, 5000, &event(5, false, 160));
        assert_eq!((first, second), (Some(Key::Digit(5)), Some(Key::Digit(5))));
    }

    #[test]
    fn reordered_and_late_packets_do_not_repeat_a_press() {
        let mut detector = Rfc4733Detector::default();
        let mut keys = Vec::new();
        // Event A's end arrives before its start; then B; then a late A update.
        keys.extend(detector.handle_packet(1, 100, &event(1, true, 800)));
        keys.extend(detector.handle_packet(1, 100, &event(1, false, 160)));
        keys.extend(detector.handle_packet(1, 9000, &event(11, false, 160)));
        keys.extend(detector.handle_packet(1, 100, &event(1, false, 480)));
        assert_eq!(keys, [Key::Digit(1), Key::Hash]);
    }

    #[test]
    fn non_keys_and_garbage_are_ignored() {
        let mut detector = Rfc4733Detector::default();
        assert_eq!(
            detector.handle_packet(1, 1, &event(16, false, 160)),
            None,
            "flash"
        );
        assert_eq!(detector.handle_packet(1, 2, &[1, 2]), None, "short payload");
        assert_eq!(
            detector.handle_packet(1, 3, &event(10, false, 160)),
            Some(Key::Star)
        );
        assert_eq!(
            detector.handle_packet(1, 4, &event(15, false, 160)),
            Some(Key::Letter('D'))
        );
    }

    #[test]
    fn a_press_sent_two_ways_counts_once() {
        let t0 = Instant::now();
        let mut keys = KeyDeduplicator::default();
        assert_eq!(
            keys.handle_key(Key::Digit(2), Via::Rfc4733, t0),
            Some(Key::Digit(2))
        );
        // The same press, in-band, 40 ms later: not a second press.
        let t1 = t0 + Duration::from_millis(40);
        assert_eq!(keys.handle_key(Key::Digit(2), Via::InBand, t1), None);
        // Pressed again a second later: a new press.
        let t2 = t0 + Duration::from_secs(1);
        assert_eq!(
            keys.handle_key(Key::Digit(2), Via::InBand, t2),
            Some(Key::Digit(2))
        );
        // Two quick presses the same way are two presses.
        let t3 = t2 + Duration::from_millis(150);
        assert_eq!(
            keys.handle_key(Key::Digit(2), Via::InBand, t3),
            Some(Key::Digit(2))
        );
    }

    #[test]
    fn keys_from_info_bodies() {
        let relay = "application/dtmf-relay";
        assert_eq!(
            key_from_info(relay, b"Signal=5\r\nDuration=160\r\n"),
            Some(Key::Digit(5))
        );
        assert_eq!(
            key_from_info("Application/DTMF-Relay; x=y", b"signal = *\nduration=100"),
            Some(Key::Star)
        );
        assert_eq!(key_from_info(relay, b"Signal=11\r\n"), Some(Key::Hash));
        assert_eq!(key_from_info(relay, b"Duration=160\r\n"), None);
        assert_eq!(key_from_info(relay, b"Signal=x\r\n"), None);
        assert_eq!(key_from_info(relay, &[0xff, 0xfe]), None);
        assert_eq!(
            key_from_info("application/dtmf", b"2\r\n"),
            Some(Key::Digit(2))
        );
        assert_eq!(key_from_info("application/dtmf", b"#"), Some(Key::Hash));
        assert_eq!(key_from_info("application/sdp", b"Signal=5"), None);
    }

    #[test]
    fn keys_from_characters() {
        let keys: Vec<Option<Key>> = "0*#a9x".chars().map(Key::from_char).collect();
        assert_eq!(
            keys,
            [
                Some(Key::Digit(0)),
                Some(Key::Star),
                Some(Key::Hash),
                Some(Key::Letter('A')),
                Some(Key::Digit(9)),
                None
            ]
        );
        assert_eq!(Key::Star.as_char(), '*');
    }

    #[test]
    fn presses_faster_than_a_keypad_are_not_presses() {
        let mut keys = KeyDeduplicator::default();
        let t0 = Instant::now();
        let mut counted = 0;
        // An event with a new timestamp every 20 ms packet, for a second.
        for i in 0..50u32 {
            let at = t0 + Duration::from_millis(20) * i;
            counted += keys
                .handle_key(Key::Digit(i as u8 % 10), Via::Rfc4733, at)
                .is_some() as u32;
        }
        assert_eq!(counted, 13, "one every 80 ms at most");
        // A quick real caller, 100 ms apart, is heard in full.
        let mut keys = KeyDeduplicator::default();
        let presses = (0..5u32)
            .filter_map(|i| {
                keys.handle_key(
                    Key::Digit(1),
                    Via::Rfc4733,
                    t0 + Duration::from_millis(100) * i,
                )
            })
            .count();
        assert_eq!(presses, 5);
    }
}

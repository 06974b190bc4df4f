//! The caller's keypad as the media path hears it, sans-IO: which key,
//! and which channel brought it.
//!
//! [`Rfc4733Detector`] turns RFC 4733 `telephone-event` RTP packets into
//! keys: all packets of one event share its RTP timestamp (§2.5.1.3), so
//! an event counts once however many updates and end packets arrive
//! (the end packet is sent three times, §2.5.1.4), and a reordered or
//! repeated packet of an event already counted is ignored. In-band tones
//! are heard by [`super::inband`].

// No clock reads or global randomness outside tests: `now` is an input
// (clippy.toml).
#![cfg_attr(not(test), deny(clippy::disallowed_methods))]

use std::collections::VecDeque;

use super::rtp::TelephoneEvent;

/// How many recent event timestamps are remembered: far more than can be in
/// flight at once, so a late duplicate is always recognised.
const RECENT_EVENTS: usize = 16;

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

/// Which way a press arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChannel {
    Rfc4733,
    SipInfo,
    InBand,
}

impl KeyChannel {
    /// How logs name it.
    pub fn name(self) -> &'static str {
        match self {
            KeyChannel::Rfc4733 => "rfc4733",
            KeyChannel::SipInfo => "sip-info",
            KeyChannel::InBand => "in-band",
        }
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
}

//! Key presses as the call hears them, sans-IO.
//!
//! [`KeyDeduplicator`] merges the ways a trunk may send the same press
//! (RFC 4733, SIP INFO, in-band tones): a digit repeated by a *different*
//! way within [`SAME_PRESS_WINDOW`] is the same press, not a second one.
//! [`key_from_info`] reads the key in a SIP INFO body.

use std::time::{Duration, Instant};

use crate::media::dtmf::{Key, KeyChannel};

/// A press reported two ways (say RFC 4733 and in-band) arrives within
/// this window; two real presses of one key are further apart.
pub const SAME_PRESS_WINDOW: Duration = Duration::from_millis(300);

/// No keypad presses faster: ITU-T Q.24 asks at least 40 ms of tone and
/// 40 ms of pause of a digit. Events closer together (RFC 4733 events with
/// a new timestamp in every packet) are a sender's flood, not a caller.
pub const MIN_PRESS_INTERVAL: Duration = Duration::from_millis(80);

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

/// Lets each press through once, whichever ways it arrives.
#[derive(Debug, Default)]
pub struct KeyDeduplicator {
    last: Option<(Key, KeyChannel, Instant)>,
}

impl KeyDeduplicator {
    /// `Some(key)` for a new press; `None` when `key` is a press already
    /// reported another way moments ago.
    pub fn handle_key(&mut self, key: Key, channel: KeyChannel, now: Instant) -> Option<Key> {
        if let Some((last_key, last_channel, at)) = self.last {
            let since = now.saturating_duration_since(at);
            let same_press =
                last_key == key && last_channel != channel && since < SAME_PRESS_WINDOW;
            if same_press || since < MIN_PRESS_INTERVAL {
                return None;
            }
        }
        self.last = Some((key, channel, now));
        Some(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_press_sent_two_ways_counts_once() {
        let t0 = Instant::now();
        let mut keys = KeyDeduplicator::default();
        assert_eq!(
            keys.handle_key(Key::Digit(2), KeyChannel::Rfc4733, t0),
            Some(Key::Digit(2))
        );
        // The same press, in-band, 40 ms later: not a second press.
        let t1 = t0 + Duration::from_millis(40);
        assert_eq!(keys.handle_key(Key::Digit(2), KeyChannel::InBand, t1), None);
        // Pressed again a second later: a new press.
        let t2 = t0 + Duration::from_secs(1);
        assert_eq!(
            keys.handle_key(Key::Digit(2), KeyChannel::InBand, t2),
            Some(Key::Digit(2))
        );
        // Two quick presses the same way are two presses.
        let t3 = t2 + Duration::from_millis(150);
        assert_eq!(
            keys.handle_key(Key::Digit(2), KeyChannel::InBand, t3),
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
    fn presses_faster_than_a_keypad_are_not_presses() {
        let mut keys = KeyDeduplicator::default();
        let t0 = Instant::now();
        let mut counted = 0;
        // An event with a new timestamp every 20 ms packet, for a second.
        for i in 0..50u32 {
            let at = t0 + Duration::from_millis(20) * i;
            counted += keys
                .handle_key(Key::Digit(i as u8 % 10), KeyChannel::Rfc4733, at)
                .is_some() as u32;
        }
        assert_eq!(counted, 13, "one every 80 ms at most");
        // A quick real caller, 100 ms apart, is heard in full.
        let mut keys = KeyDeduplicator::default();
        let presses = (0..5u32)
            .filter_map(|i| {
                keys.handle_key(
                    Key::Digit(1),
                    KeyChannel::Rfc4733,
                    t0 + Duration::from_millis(100) * i,
                )
            })
            .count();
        assert_eq!(presses, 5);
    }
}

//! Strict RTP: whose packets a stream accepts, sans-IO.
//!
//! Symmetric RTP (RFC 4961) sends to where the caller's RTP comes from,
//! which NAT needs; taken naively it lets anyone who sends one packet to
//! the port take the caller's audio (and press keys in their call). Like
//! Asterisk's `strictrtp` with learning, a stream accepts:
//!
//! - packets from the address the SDP named, at any time (it locks at once);
//! - in the first [`LEARNING`] after the stream starts (or the SDP moves the
//!   media), a new source once it has sent [`PROBATION`] packets of one
//!   SSRC in sequence (RFC 3550 §A.1's probation), then locks on it;
//! - after the lock, a move of the locked SSRC with its sequence going on
//!   (a NAT rebinding mid-call).
//!
//! Everything else is dropped before anything looks at it: no latching, no
//! keys, no in-band listening. A stranger who learns the caller's SSRC and
//! sequence could still move the stream; that residual risk is Asterisk's
//! too, and bounded to one call.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long a new source may be learnt after the stream (or its SDP
/// address) starts: long enough for a phone behind NAT to send its first
/// packets, short enough that a scanner arriving later cannot.
pub const LEARNING: Duration = Duration::from_secs(5);
/// Packets in sequence from one SSRC before a new source is believed.
pub const PROBATION: u8 = 3;
/// How far a moved SSRC's sequence may jump and still be the same stream.
const MAX_SEQUENCE_JUMP: u16 = 100;

/// What to do with one received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// From the caller. `moved`: the caller is now at this address, and
    /// the stream sends there.
    Accept { moved: bool },
    /// From someone else (or a new source still on probation).
    Drop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Locked {
    source: SocketAddr,
    ssrc: u32,
    last_sequence: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Candidate {
    source: SocketAddr,
    ssrc: u32,
    last_sequence: u16,
    seen: u8,
}

/// One stream's lock on its caller's media source.
#[derive(Debug, Clone)]
pub struct SourceLock {
    /// What the SDP said; `None` while on hold with `c=0.0.0.0`.
    expected: Option<SocketAddr>,
    locked: Option<Locked>,
    candidate: Option<Candidate>,
    learn_until: Instant,
}

impl SourceLock {
    pub fn new(expected: Option<SocketAddr>, now: Instant) -> Self {
        SourceLock {
            expected,
            locked: None,
            candidate: None,
            learn_until: now + LEARNING,
        }
    }

    /// The SDP moved the media (a re-INVITE): learn afresh.
    pub fn reset(&mut self, expected: Option<SocketAddr>, now: Instant) {
        *self = SourceLock::new(expected, now);
    }

    /// Where the caller's RTP comes from, once known.
    pub fn locked_source(&self) -> Option<SocketAddr> {
        self.locked.map(|l| l.source)
    }

    /// One packet of `ssrc`/`sequence` from `from`.
    pub fn handle(&mut self, from: SocketAddr, ssrc: u32, sequence: u16, now: Instant) -> Verdict {
        if let Some(locked) = &mut self.locked {
            if locked.source == from {
                locked.ssrc = ssrc;
                locked.last_sequence = sequence;
                return Verdict::Accept { moved: false };
            }
            let continues =
                sequence.wrapping_sub(locked.last_sequence).wrapping_sub(1) < MAX_SEQUENCE_JUMP;
            if locked.ssrc == ssrc && continues {
                *locked = Locked {
                    source: from,
                    ssrc,
                    last_sequence: sequence,
                };
                return Verdict::Accept { moved: true };
            }
            return Verdict::Drop;
        }
        if Some(from) == self.expected {
            self.lock(from, ssrc, sequence);
            return Verdict::Accept { moved: false };
        }
        if now >= self.learn_until {
            return Verdict::Drop;
        }
        let candidate = match self.candidate {
            Some(c)
                if c.source == from
                    && c.ssrc == ssrc
                    && sequence == c.last_sequence.wrapping_add(1) =>
            {
                Candidate {
                    last_sequence: sequence,
                    seen: c.seen + 1,
                    ..c
                }
            }
            // A new would-be source, or the same one out of sequence:
            // its probation starts again.
            _ => Candidate {
                source: from,
                ssrc,
                last_sequence: sequence,
                seen: 1,
            },
        };
        if candidate.seen >= PROBATION {
            self.lock(from, ssrc, sequence);
            return Verdict::Accept {
                moved: Some(from) != self.expected,
            };
        }
        self.candidate = Some(candidate);
        Verdict::Drop
    }

    /// Whether an RTCP (or other non-RTP) packet from `from` is the
    /// caller's: from the locked source's host, or the SDP's before a lock.
    pub fn is_caller_host(&self, from: SocketAddr) -> bool {
        match (self.locked, self.expected) {
            (Some(locked), _) => locked.source.ip() == from.ip(),
            (None, Some(expected)) => expected.ip() == from.ip(),
            (None, None) => false,
        }
    }

    fn lock(&mut self, source: SocketAddr, ssrc: u32, sequence: u16) {
        self.locked = Some(Locked {
            source,
            ssrc,
            last_sequence: sequence,
        });
        self.candidate = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    const SDP: &str = "192.0.2.5:4000";
    const STRANGER: &str = "198.51.100.66:5000";

    #[test]
    fn the_sdp_source_locks_at_once_and_strangers_are_dropped() {
        let t0 = Instant::now();
        let mut lock = SourceLock::new(Some(addr(SDP)), t0);
        assert_eq!(
            lock.handle(addr(SDP), 7, 100, t0),
            Verdict::Accept { moved: false }
        );
        // A stranger, even within the learning time, even in sequence.
        for seq in 0..10 {
            assert_eq!(lock.handle(addr(STRANGER), 9, seq, t0), Verdict::Drop);
        }
        assert_eq!(lock.locked_source(), Some(addr(SDP)));
        assert!(!lock.is_caller_host(addr(STRANGER)));
        assert!(lock.is_caller_host(addr("192.0.2.5:4001")));
    }

    #[test]
    fn a_caller_behind_nat_is_learnt_in_the_first_seconds() {
        let t0 = Instant::now();
        let nat = addr("203.0.113.7:61000");
        let mut lock = SourceLock::new(Some(addr("10.0.0.5:4000")), t0);
        let ms = Duration::from_millis;
        assert_eq!(lock.handle(nat, 42, 1, t0 + ms(300)), Verdict::Drop);
        assert_eq!(lock.handle(nat, 42, 2, t0 + ms(320)), Verdict::Drop);
        assert_eq!(
            lock.handle(nat, 42, 3, t0 + ms(340)),
            Verdict::Accept { moved: true }
        );
        assert_eq!(lock.locked_source(), Some(nat));
        // Locked now: someone else cannot take it over.
        for seq in 10..20 {
            assert_eq!(
                lock.handle(addr(STRANGER), 5, seq, t0 + ms(400)),
                Verdict::Drop
            );
        }
    }

    #[test]
    fn out_of_sequence_probation_starts_again_and_learning_ends() {
        let t0 = Instant::now();
        let mut lock = SourceLock::new(Some(addr(SDP)), t0);
        let stranger = addr(STRANGER);
        assert_eq!(lock.handle(stranger, 1, 10, t0), Verdict::Drop);
        assert_eq!(lock.handle(stranger, 1, 50, t0), Verdict::Drop);
        assert_eq!(lock.handle(stranger, 2, 51, t0), Verdict::Drop);
        assert_eq!(lock.locked_source(), None);
        // After the learning time, a new source is never learnt...
        let late = t0 + LEARNING;
        for seq in 0..10 {
            assert_eq!(lock.handle(stranger, 3, seq, late), Verdict::Drop);
        }
        // ...but the SDP's own address still is.
        assert_eq!(
            lock.handle(addr(SDP), 4, 0, late),
            Verdict::Accept { moved: false }
        );
    }

    #[test]
    fn the_locked_ssrc_may_move_when_its_nat_rebinds() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(600);
        let mut lock = SourceLock::new(Some(addr(SDP)), t0);
        lock.handle(addr(SDP), 77, 1000, t0);
        let rebound = addr("192.0.2.5:4444");
        assert_eq!(
            lock.handle(rebound, 77, 1001, later),
            Verdict::Accept { moved: true }
        );
        assert_eq!(lock.locked_source(), Some(rebound));
        // Another SSRC from elsewhere, or the same SSRC far out of sequence.
        assert_eq!(lock.handle(addr(STRANGER), 78, 1002, later), Verdict::Drop);
        assert_eq!(
            lock.handle(addr(STRANGER), 77, 30_000, later),
            Verdict::Drop
        );
        // A re-INVITE that moves the media opens learning again.
        lock.reset(Some(addr("192.0.2.9:6000")), later);
        assert_eq!(lock.locked_source(), None);
        assert_eq!(
            lock.handle(addr("192.0.2.9:6000"), 1, 1, later),
            Verdict::Accept { moved: false }
        );
    }

    #[test]
    fn on_hold_without_an_address_only_learning_admits_a_source() {
        let t0 = Instant::now();
        let mut lock = SourceLock::new(None, t0);
        assert!(!lock.is_caller_host(addr(SDP)));
        for seq in 0..PROBATION as u16 {
            lock.handle(addr(SDP), 1, seq, t0);
        }
        assert_eq!(lock.locked_source(), Some(addr(SDP)));
    }
}

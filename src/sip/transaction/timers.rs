//! The transaction timers in one table: RFC 3261 Table 4 and RFC 6026 §8
//! (Timer L), plus the 2xx retransmission that §13.3.1.4 leaves unnamed.

use std::time::{Duration, Instant};

use super::Timers;

/// Timer D on unreliable transports: Table 4 asks for "> 32 s", long enough
/// to absorb the server's retransmissions of a failure response.
pub(super) const TIMER_D: Duration = Duration::from_secs(32);

/// Every timer a transaction can run. Each machine uses a few of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// INVITE client, Calling: retransmit the INVITE (T1, doubling, no cap).
    A,
    /// INVITE client, Calling: give up waiting for any response (64·T1).
    B,
    /// INVITE client, Completed: absorb retransmitted failures (32 s, 0 reliable).
    D,
    /// Non-INVITE client: retransmit the request (T1 doubling to T2; T2 in Proceeding).
    E,
    /// Non-INVITE client: give up waiting for a final response (64·T1).
    F,
    /// INVITE server, Completed: retransmit the failure response (T1 doubling to T2).
    G,
    /// INVITE server, Completed: give up waiting for the ACK (64·T1).
    H,
    /// INVITE server, Confirmed: absorb retransmitted ACKs (T4, 0 reliable).
    I,
    /// Non-INVITE server, Completed: absorb retransmitted requests (64·T1, 0 reliable).
    J,
    /// Non-INVITE client, Completed: absorb retransmitted responses (T4, 0 reliable).
    K,
    /// INVITE server, Accepted (RFC 6026): absorb INVITE and 2xx/ACK retransmissions
    /// (64·T1); without an ACK by then the session is dead (§13.3.1.4).
    L,
    /// INVITE server, Accepted: retransmit the 2xx (T1 doubling to T2) until the ACK
    /// (§13.3.1.4, unnamed there).
    Retransmit2xx,
}

impl Timer {
    const COUNT: usize = 12;

    /// The first value of this timer from Table 4, or `None` when this
    /// transport does not use it.
    fn initial(self, config: &Timers, reliable: bool) -> Option<Duration> {
        let give_up = config.give_up();
        let unless_reliable = |d| if reliable { Duration::ZERO } else { d };
        match self {
            // Retransmissions only make up for loss, which a reliable transport
            // doesn't have (§17.1.1.2, §17.1.2.2, §17.2.1).
            Timer::A | Timer::E | Timer::G => (!reliable).then_some(config.t1),
            // A 2xx travels end to end: a later hop may be UDP even when ours is
            // TCP, so it is retransmitted on every transport (§13.3.1.4).
            Timer::Retransmit2xx => Some(config.t1),
            Timer::B | Timer::F | Timer::H | Timer::L => Some(give_up),
            Timer::J => Some(unless_reliable(give_up)),
            Timer::D => Some(unless_reliable(TIMER_D)),
            Timer::I | Timer::K => Some(unless_reliable(config.t4)),
        }
    }
}

/// The deadline of each timer, with the values that arm them.
#[derive(Debug, Clone)]
pub(super) struct TimerTable {
    config: Timers,
    reliable: bool,
    deadlines: [Option<Instant>; Timer::COUNT],
}

impl TimerTable {
    pub(super) fn new(config: Timers, reliable: bool) -> Self {
        TimerTable {
            config,
            reliable,
            deadlines: [None; Timer::COUNT],
        }
    }

    pub(super) fn config(&self) -> &Timers {
        &self.config
    }

    /// Arms `timer` at `now` plus its Table 4 value and returns that value;
    /// `None` (timer left stopped) when this transport doesn't use it.
    pub(super) fn start(&mut self, timer: Timer, now: Instant) -> Option<Duration> {
        let value = timer.initial(&self.config, self.reliable)?;
        self.set_after(timer, now, value);
        Some(value)
    }

    /// Arms `timer` to fire `after` from `now`. A deadline past what `Instant`
    /// can hold (absurd configured timers) means never, not a panic.
    pub(super) fn set_after(&mut self, timer: Timer, now: Instant, after: Duration) {
        self.deadlines[timer as usize] = now.checked_add(after);
    }

    pub(super) fn stop(&mut self, timer: Timer) {
        self.deadlines[timer as usize] = None;
    }

    pub(super) fn stop_all(&mut self) {
        self.deadlines = [None; Timer::COUNT];
    }

    /// Whether `timer` is armed and due at `now`.
    pub(super) fn is_expired(&self, timer: Timer, now: Instant) -> bool {
        self.deadlines[timer as usize].is_some_and(|at| at <= now)
    }

    /// The earliest armed deadline.
    pub(super) fn next_timeout(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    #[cfg(test)]
    pub(super) fn get(&self, timer: Timer) -> Option<Instant> {
        self.deadlines[timer as usize]
    }
}

/// Retransmission back-off: the interval doubles, capped at T2 when a cap
/// applies (Timers E, G and the 2xx; not Timer A).
pub(super) fn doubled(interval: Duration, cap: Option<Duration>) -> Duration {
    let next = interval.saturating_mul(2);
    cap.map_or(next, |cap| next.min(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_4_values_unreliable_and_reliable() {
        let config = Timers::default();
        let udp = |t: Timer| t.initial(&config, false);
        let tcp = |t: Timer| t.initial(&config, true);
        let ms = Duration::from_millis;
        for t in [Timer::A, Timer::E, Timer::G, Timer::Retransmit2xx] {
            assert_eq!(udp(t), Some(ms(500)), "{t:?}");
        }
        for t in [Timer::B, Timer::F, Timer::H, Timer::J, Timer::L] {
            assert_eq!(udp(t), Some(ms(32_000)), "{t:?}");
        }
        assert_eq!(udp(Timer::D), Some(ms(32_000)));
        assert_eq!(udp(Timer::I), Some(ms(5_000)));
        assert_eq!(udp(Timer::K), Some(ms(5_000)));

        for t in [Timer::A, Timer::E, Timer::G] {
            assert_eq!(tcp(t), None, "{t:?}");
        }
        for t in [Timer::D, Timer::I, Timer::J, Timer::K] {
            assert_eq!(tcp(t), Some(Duration::ZERO), "{t:?}");
        }
        for t in [Timer::B, Timer::F, Timer::H, Timer::L] {
            assert_eq!(tcp(t), Some(ms(32_000)), "{t:?}");
        }
        assert_eq!(tcp(Timer::Retransmit2xx), Some(ms(500)));
    }

    #[test]
    fn next_timeout_is_the_earliest_and_expiry_is_inclusive() {
        let t0 = Instant::now();
        let mut table = TimerTable::new(Timers::default(), false);
        assert_eq!(table.next_timeout(), None);
        table.start(Timer::H, t0);
        table.start(Timer::G, t0);
        assert_eq!(table.next_timeout(), Some(t0 + Duration::from_millis(500)));
        assert!(!table.is_expired(Timer::G, t0 + Duration::from_millis(499)));
        assert!(table.is_expired(Timer::G, t0 + Duration::from_millis(500)));
        table.stop(Timer::G);
        assert_eq!(table.next_timeout(), Some(t0 + Duration::from_secs(32)));
        table.stop_all();
        assert_eq!(table.next_timeout(), None);
    }

    #[test]
    fn absurd_durations_never_fire_instead_of_panicking() {
        let t0 = Instant::now();
        let huge = Timers {
            t1: Duration::MAX,
            t2: Duration::MAX,
            t4: Duration::MAX,
        };
        let mut table = TimerTable::new(huge, false);
        assert_eq!(table.start(Timer::B, t0), Some(Duration::MAX));
        assert_eq!(table.get(Timer::B), None);
        assert_eq!(doubled(Duration::MAX, None), Duration::MAX);
    }

    #[test]
    fn doubling_respects_the_cap() {
        let s = Duration::from_secs;
        assert_eq!(doubled(s(1), Some(s(4))), s(2));
        assert_eq!(doubled(s(2), Some(s(4))), s(4));
        assert_eq!(doubled(s(4), Some(s(4))), s(4));
        assert_eq!(doubled(s(4), None), s(8));
    }
}

//! Is anyone still there? Sans-IO timing of a stream's media timeouts.
//!
//! A call whose far end has gone, without a BYE, must still end:
//!
//! - **Held** with nothing from the caller: a call held (`sendonly`,
//!   `inactive`, `c=0.0.0.0`) sends nothing, so nothing shows it is
//!   abandoned but silence from the caller. After `hold_timeout` of both,
//!   it ends. Phones and trunks that hold keep sending RTCP (or keep-alive
//!   RTP), which counts.
//! - **Unreachable**: the caller's address answers our packets with ICMP
//!   errors (port or host unreachable) and nothing has come from the caller
//!   for `unreachable_timeout`. Errors must keep coming: one stray error is
//!   not a gone caller.
//!
//! The defaults are far beyond what a working trunk or phone produces.

use std::time::{Duration, Instant};

/// ICMP errors further apart than this are not one outage: Linux limits
/// them to about one a second per destination.
const ICMP_GAP: Duration = Duration::from_secs(5);

/// Why a stream's media timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaTimeout {
    /// Held, with nothing from the caller for the hold timeout.
    Held,
    /// The caller's address answers with ICMP errors; nothing heard.
    Unreachable,
}

impl MediaTimeout {
    /// A stable code for logs and metrics.
    pub fn code(self) -> &'static str {
        match self {
            MediaTimeout::Held => "media.hold_timeout",
            MediaTimeout::Unreachable => "media.unreachable",
        }
    }
}

impl std::fmt::Display for MediaTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MediaTimeout::Held => "held with nothing from the caller",
            MediaTimeout::Unreachable => "the caller's address answers with ICMP errors",
        })
    }
}

/// The limits, from the engine's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub hold: Duration,
    pub unreachable: Duration,
}

/// One stream's view of its caller.
#[derive(Debug, Clone)]
pub struct Liveness {
    last_heard: Instant,
    held_since: Option<Instant>,
    /// First and latest ICMP error of the current run of them.
    icmp: Option<(Instant, Instant)>,
    fired: bool,
}

impl Liveness {
    pub fn new(held: bool, now: Instant) -> Self {
        Liveness {
            last_heard: now,
            held_since: held.then_some(now),
            icmp: None,
            fired: false,
        }
    }

    /// A packet came from the caller.
    pub fn handle_heard(&mut self, now: Instant) {
        self.last_heard = now;
        self.icmp = None;
    }

    /// An ICMP error came back for what we sent.
    pub fn handle_icmp_error(&mut self, now: Instant) {
        self.icmp = match self.icmp {
            Some((first, last)) if now.saturating_duration_since(last) < ICMP_GAP => {
                Some((first, now))
            }
            _ => Some((now, now)),
        };
    }

    /// The call was put on hold (`true`) or taken off it.
    pub fn handle_held(&mut self, held: bool, now: Instant) {
        match (held, self.held_since) {
            (true, None) => self.held_since = Some(now),
            (false, _) => self.held_since = None,
            (true, Some(_)) => {}
        }
    }

    /// A timeout that has just passed; each stream times out once.
    pub fn poll_timeout(&mut self, now: Instant, limits: Timeouts) -> Option<MediaTimeout> {
        if self.fired {
            return None;
        }
        let silent_since = |since: Instant| {
            let from = since.max(self.last_heard);
            now.saturating_duration_since(from)
        };
        let timeout = if self
            .held_since
            .is_some_and(|held| silent_since(held) >= limits.hold)
        {
            Some(MediaTimeout::Held)
        } else if let Some((first, last)) = self.icmp
            && now.saturating_duration_since(last) < ICMP_GAP
            && silent_since(first) >= limits.unreachable
        {
            Some(MediaTimeout::Unreachable)
        } else {
            None
        };
        self.fired = timeout.is_some();
        timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Timeouts = Timeouts {
        hold: Duration::from_secs(600),
        unreachable: Duration::from_secs(30),
    };

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_silent_held_call_times_out_once_and_rtcp_keeps_it() {
        let t0 = Instant::now();
        let mut live = Liveness::new(false, t0);
        assert_eq!(live.poll_timeout(t0 + secs(3600), LIMITS), None, "not held");
        live.handle_held(true, t0 + secs(3600));
        live.handle_heard(t0 + secs(3900)); // an RTCP report while held
        assert_eq!(live.poll_timeout(t0 + secs(4499), LIMITS), None);
        assert_eq!(
            live.poll_timeout(t0 + secs(4500), LIMITS),
            Some(MediaTimeout::Held)
        );
        assert_eq!(live.poll_timeout(t0 + secs(9999), LIMITS), None, "once");
    }

    #[test]
    fn taking_the_call_off_hold_stops_the_clock() {
        let t0 = Instant::now();
        let mut live = Liveness::new(true, t0);
        live.handle_held(false, t0 + secs(500));
        assert_eq!(live.poll_timeout(t0 + secs(5000), LIMITS), None);
        live.handle_held(true, t0 + secs(5000));
        assert_eq!(live.poll_timeout(t0 + secs(5599), LIMITS), None);
        assert!(live.poll_timeout(t0 + secs(5600), LIMITS).is_some());
    }

    #[test]
    fn icmp_errors_that_go_on_make_the_caller_unreachable() {
        let t0 = Instant::now();
        let mut live = Liveness::new(false, t0);
        for s in 0..=30 {
            live.handle_icmp_error(t0 + secs(s));
            let verdict = live.poll_timeout(t0 + secs(s), LIMITS);
            assert_eq!(verdict.is_some(), s == 30, "at {s} s");
        }
    }

    #[test]
    fn a_stray_error_or_a_caller_still_heard_is_not_gone() {
        let t0 = Instant::now();
        let mut live = Liveness::new(false, t0);
        // One error, then none: no timeout however long after.
        live.handle_icmp_error(t0);
        assert_eq!(live.poll_timeout(t0 + secs(60), LIMITS), None);
        // Errors with the caller's packets among them: a route flap.
        let mut live = Liveness::new(false, t0);
        for s in 0..120 {
            live.handle_icmp_error(t0 + secs(s));
            if s % 20 == 0 {
                live.handle_heard(t0 + secs(s));
            }
            assert_eq!(live.poll_timeout(t0 + secs(s), LIMITS), None, "at {s} s");
        }
        // Errors 10 s apart are separate events, not an outage.
        let mut live = Liveness::new(false, t0);
        for s in (0..120).step_by(10) {
            live.handle_icmp_error(t0 + secs(s));
            assert_eq!(live.poll_timeout(t0 + secs(s), LIMITS), None);
        }
    }
}

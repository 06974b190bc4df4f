//! INVITE server transaction: RFC 3261 §17.2.1 with RFC 6026's Accepted
//! state, plus the 2xx retransmission of §13.3.1.4.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::timers::{Timer, TimerTable, doubled};
use super::{Outbox, ServerEvent, StatusClass, Timers, Transmit, classify};

/// One received INVITE, from our 100 Trying to the last absorbed ACK.
///
/// ```text
///                         new(), then respond(100)
///                                   |
///                                   v
///                            +------------+
///      INVITE again: resend  |            |  respond(1xx): send
///      the last response     | Proceeding |
///      (none before the 100) |            |
///                            +------------+
///            respond(300-699): send; |   | respond(2xx): send; start
///            start G, H              |   | Retransmit2xx, L
///                    +---------------+   +----------------+
///                    v                                    v
///   Timer G: resend  +-----------+        +----------+  Retransmit2xx: resend 2xx
///   INVITE: resend   | Completed |        | Accepted |  INVITE: resend 2xx
///                    +-----------+        +----------+  first ACK: Acked, stop
///       ACK: start I   |       |               |        resending; more: absorbed
///                      v       |               |
///   ACK, INVITE: +-----------+ | Timer H:      | Timer L: AckTimedOut (no ACK)
///   absorbed     | Confirmed | | Terminated    |   or Terminated (ACKed)
///                +-----------+ |               |
///          Timer I:    |       |               |
///          Terminated  v       v               v
///                    +------------------------------+
///                    |          Terminated          |
///                    +------------------------------+
/// ```
///
/// Retransmitting the 2xx is the UAS core's duty in RFC 3261 (§13.3.1.4), not
/// the transaction's. It lives here so that all of one INVITE's timers sit in
/// one table and one `poll_timeout`: the 2xx resend, its 64·T1 ACK deadline
/// (which is Timer L's value too, so Timer L serves both) and the absorption
/// of retransmitted INVITEs.
///
/// Call order: [`new`](Self::new), then `respond(100, …)` at once; feed
/// `respond` / `handle_retransmission` / `handle_ack` / `handle_timeout`, then
/// drain [`poll_transmit`](Self::poll_transmit), then read
/// [`poll_timeout`](Self::poll_timeout).
#[derive(Debug)]
pub struct InviteServer {
    state: State,
    timers: TimerTable,
    outbox: Outbox,
    /// Status and bytes of the last response, resent on every retransmission.
    last_response: Option<(u16, Vec<u8>)>,
    /// Current interval of Timer G or Retransmit2xx (only one runs at a time).
    interval: Duration,
    ack_received: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

impl InviteServer {
    /// A transaction for an INVITE that just arrived. It sends nothing until
    /// the caller's first `respond`, which should be the 100 Trying.
    pub fn new(destination: SocketAddr, reliable: bool, timers: Timers, now: Instant) -> Self {
        let _ = now; // No timer runs in Proceeding.
        InviteServer {
            state: State::Proceeding,
            timers: TimerTable::new(timers, reliable),
            outbox: Outbox::new(destination, reliable),
            last_response: None,
            interval: timers.t1,
            ack_received: false,
        }
    }

    /// Sends a response. 1xx keeps Proceeding; 2xx moves to Accepted and is
    /// retransmitted until the ACK; 300–699 moves to Completed and is
    /// retransmitted by Timer G. Once a final response went out, later ones
    /// are discarded (§17.2.1), except a repeated 2xx in Accepted, which
    /// RFC 6026 lets the TU send. Status codes outside 100–699 are ignored.
    pub fn respond(&mut self, status: u16, payload: Vec<u8>, now: Instant) {
        let Some(class) = classify(status) else {
            return;
        };
        match (self.state, class) {
            (State::Proceeding, StatusClass::Provisional)
            | (State::Accepted, StatusClass::Success) => {}
            (State::Proceeding, StatusClass::Success) => {
                self.state = State::Accepted;
                if let Some(interval) = self.timers.start(Timer::Retransmit2xx, now) {
                    self.interval = interval;
                }
                self.timers.start(Timer::L, now);
            }
            (State::Proceeding, StatusClass::Failure) => {
                self.state = State::Completed;
                if let Some(interval) = self.timers.start(Timer::G, now) {
                    self.interval = interval;
                }
                self.timers.start(Timer::H, now);
            }
            _ => return,
        }
        self.outbox.send(payload.clone());
        self.last_response = Some((status, payload));
    }

    /// A retransmission of the INVITE arrived: resend the last response, if
    /// any. Confirmed and Terminated absorb it.
    pub fn handle_retransmission(&mut self, now: Instant) {
        let _ = now;
        if matches!(
            self.state,
            State::Proceeding | State::Completed | State::Accepted
        ) {
            self.resend_last_response();
        }
    }

    /// An ACK for this INVITE arrived. Returns `Acked` for the first ACK of a
    /// 2xx; an ACK of a failure response is the transaction's business alone
    /// (§17.2.1) and returns `None`, as do repeats.
    pub fn handle_ack(&mut self, now: Instant) -> Option<ServerEvent> {
        match self.state {
            State::Completed => {
                self.ack_received = true;
                self.state = State::Confirmed;
                self.timers.stop(Timer::G);
                self.timers.stop(Timer::H);
                self.timers.start(Timer::I, now);
                None
            }
            State::Accepted if !self.ack_received => {
                self.ack_received = true;
                // Timer L keeps running: it absorbs stray INVITEs and ACKs.
                self.timers.stop(Timer::Retransmit2xx);
                Some(ServerEvent::Acked)
            }
            _ => None,
        }
    }

    /// Fires the timers due at `now`; see the type's diagram.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<ServerEvent> {
        let (give_up, resend) = match self.state {
            State::Completed => (Timer::H, Some(Timer::G)),
            State::Accepted => (Timer::L, Some(Timer::Retransmit2xx)),
            State::Confirmed => (Timer::I, None),
            State::Proceeding | State::Terminated => return None,
        };
        if self.timers.is_expired(give_up, now) {
            let lost_2xx = self.state == State::Accepted && !self.ack_received;
            self.terminate();
            return Some(if lost_2xx {
                ServerEvent::AckTimedOut
            } else {
                ServerEvent::Terminated
            });
        }
        if let Some(resend) = resend
            && self.timers.is_expired(resend, now)
        {
            self.resend_last_response();
            let t2 = self.timers.config().t2;
            self.interval = doubled(self.interval, Some(t2));
            self.timers.set_after(resend, now, self.interval);
        }
        None
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout); `None` when no
    /// timer runs (Proceeding, Terminated).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_timeout()
    }

    /// The status of the last response sent.
    pub fn last_status(&self) -> Option<u16> {
        self.last_response.as_ref().map(|(status, _)| *status)
    }

    /// Whether an ACK arrived for our final response: tells, after
    /// `Terminated`, whether Timer H gave up on it.
    pub fn ack_received(&self) -> bool {
        self.ack_received
    }

    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    fn resend_last_response(&mut self) {
        if let Some((_, payload)) = &self.last_response {
            self.outbox.send(payload.clone());
        }
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.timers.stop_all();
    }
}

#[cfg(test)]
mod tests {
    use super::super::harness::{Step, destination, drain, ms, run, step};
    use super::*;

    const TRYING: &[u8] = b"SIP/2.0 100 Trying";
    const OK: &[u8] = b"SIP/2.0 200 OK";
    const BUSY: &[u8] = b"SIP/2.0 486 Busy Here";

    fn server(reliable: bool, t0: Instant) -> InviteServer {
        let mut server = InviteServer::new(destination(), reliable, Timers::default(), t0);
        server.respond(100, TRYING.to_vec(), t0);
        assert_eq!(drain(&mut server), [TRYING]);
        server
    }

    /// The instants (ms since t0) of steps that sent `payload`.
    fn sent_at(steps: &[Step<ServerEvent>], payload: &[u8]) -> Vec<u128> {
        steps
            .iter()
            .filter(|s| s.sent.iter().any(|p| p == payload))
            .map(|s| s.at.as_millis())
            .collect()
    }

    #[test]
    fn unacked_2xx_is_retransmitted_with_backoff_then_ack_times_out() {
        let t0 = Instant::now();
        let mut server = server(false, t0);
        server.respond(200, OK.to_vec(), t0);
        assert_eq!(drain(&mut server), [OK]);
        assert_eq!(server.last_status(), Some(200));

        let steps = run(&mut server, t0);
        // Intervals 0.5, 1, 2, 4, 4, … then 64·T1 = 32 s.
        let resends = [
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
        ];
        assert_eq!(sent_at(&steps, OK), resends);
        assert!(steps.iter().all(|s| s.sent.len() <= 1));
        let last = steps.last().expect("Timer L fires");
        assert_eq!(last.at, ms(32_000));
        assert_eq!(last.event, Some(ServerEvent::AckTimedOut));
        let events: Vec<_> = steps.iter().filter_map(|s| s.event).collect();
        assert_eq!(events, [ServerEvent::AckTimedOut]);
        assert!(server.is_terminated());
        assert_eq!(server.poll_timeout(), None);
        assert!(!server.ack_received());
    }

    #[test]
    fn ack_stops_2xx_retransmission_and_accepted_absorbs_until_timer_l() {
        let t0 = Instant::now();
        let mut server = server(false, t0);
        server.respond(200, OK.to_vec(), t0);
        drain(&mut server);
        assert_eq!(step(&mut server, t0).map(|s| s.at), Some(ms(500)));
        assert_eq!(step(&mut server, t0).map(|s| s.at), Some(ms(1500)));
        drain(&mut server);

        assert_eq!(server.handle_ack(t0 + ms(2000)), Some(ServerEvent::Acked));
        assert_eq!(
            server.handle_ack(t0 + ms(2100)),
            None,
            "ACK repeats absorbed"
        );
        assert_eq!(server.poll_timeout(), Some(t0 + ms(32_000)), "only Timer L");

        // A late INVITE retransmission still gets the 2xx, and no event.
        server.handle_retransmission(t0 + ms(5000));
        assert_eq!(drain(&mut server), [OK]);

        let steps = run(&mut server, t0);
        assert_eq!(
            steps,
            [Step {
                at: ms(32_000),
                event: Some(ServerEvent::Terminated),
                sent: vec![],
            }]
        );
        assert!(server.is_terminated());
        assert!(server.ack_received());
    }

    #[test]
    fn invite_retransmission_resends_the_last_response_only() {
        let t0 = Instant::now();
        let mut server = InviteServer::new(destination(), false, Timers::default(), t0);
        server.handle_retransmission(t0);
        assert_eq!(
            drain(&mut server),
            Vec::<Vec<u8>>::new(),
            "nothing to resend yet"
        );

        server.respond(100, TRYING.to_vec(), t0);
        drain(&mut server);
        server.handle_retransmission(t0 + ms(100));
        assert_eq!(drain(&mut server), [TRYING]);

        server.respond(200, OK.to_vec(), t0 + ms(200));
        drain(&mut server);
        server.handle_retransmission(t0 + ms(300));
        server.handle_retransmission(t0 + ms(400));
        assert_eq!(drain(&mut server), [OK, OK]);

        assert_eq!(server.handle_ack(t0 + ms(500)), Some(ServerEvent::Acked));
        server.handle_retransmission(t0 + ms(600));
        assert_eq!(drain(&mut server), [OK]);
        assert_eq!(server.handle_ack(t0 + ms(700)), None);
    }

    #[test]
    fn final_response_after_final_is_discarded() {
        let t0 = Instant::now();
        let mut server = server(false, t0);
        server.respond(200, OK.to_vec(), t0);
        server.respond(486, BUSY.to_vec(), t0);
        server.respond(180, b"SIP/2.0 180 Ringing".to_vec(), t0);
        assert_eq!(drain(&mut server), [OK]);
        assert_eq!(server.last_status(), Some(200));
        // RFC 6026 lets the TU pass the 2xx again in Accepted.
        server.respond(200, OK.to_vec(), t0);
        assert_eq!(drain(&mut server), [OK]);
        // Not a status code: ignored.
        server.respond(99, b"junk".to_vec(), t0);
        server.respond(700, b"junk".to_vec(), t0);
        assert_eq!(drain(&mut server), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn unacked_failure_is_retransmitted_by_timer_g_until_timer_h() {
        let t0 = Instant::now();
        let mut server = server(false, t0);
        server.respond(486, BUSY.to_vec(), t0);
        assert_eq!(drain(&mut server), [BUSY]);

        let steps = run(&mut server, t0);
        let resends = [
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
        ];
        assert_eq!(sent_at(&steps, BUSY), resends);
        let last = steps.last().expect("Timer H fires");
        assert_eq!(
            (last.at, last.event),
            (ms(32_000), Some(ServerEvent::Terminated))
        );
        assert!(server.is_terminated());
        assert!(!server.ack_received(), "Timer H gave up without an ACK");
    }

    #[test]
    fn ack_of_failure_confirms_then_timer_i_terminates() {
        let t0 = Instant::now();
        let mut server = server(false, t0);
        server.respond(486, BUSY.to_vec(), t0);
        drain(&mut server);
        let first = step(&mut server, t0).expect("Timer G");
        assert_eq!((first.at, first.sent), (ms(500), vec![BUSY.to_vec()]));

        assert_eq!(
            server.handle_ack(t0 + ms(1000)),
            None,
            "not passed to the TU"
        );
        assert_eq!(server.poll_timeout(), Some(t0 + ms(6000)), "Timer I = T4");
        server.handle_retransmission(t0 + ms(1100));
        assert_eq!(server.handle_ack(t0 + ms(1200)), None);
        assert_eq!(
            drain(&mut server),
            Vec::<Vec<u8>>::new(),
            "Confirmed absorbs"
        );

        let steps = run(&mut server, t0);
        assert_eq!(
            steps,
            [Step {
                at: ms(6000),
                event: Some(ServerEvent::Terminated),
                sent: vec![],
            }]
        );
        assert!(server.ack_received());
    }

    #[test]
    fn reliable_failure_arms_no_timer_g_and_timer_i_is_zero() {
        let t0 = Instant::now();
        let mut server = server(true, t0);
        server.respond(486, BUSY.to_vec(), t0);
        drain(&mut server);
        assert_eq!(server.timers.get(Timer::G), None);
        assert_eq!(server.poll_timeout(), Some(t0 + ms(32_000)), "only Timer H");

        server.handle_ack(t0 + ms(700));
        assert_eq!(server.poll_timeout(), Some(t0 + ms(700)), "Timer I = 0");
        assert_eq!(
            server.handle_timeout(t0 + ms(700)),
            Some(ServerEvent::Terminated)
        );
        assert_eq!(server.poll_timeout(), None);
    }

    #[test]
    fn reliable_failure_without_ack_sends_once_then_timer_h() {
        let t0 = Instant::now();
        let mut server = server(true, t0);
        server.respond(503, b"SIP/2.0 503".to_vec(), t0);
        drain(&mut server);
        let steps = run(&mut server, t0);
        assert_eq!(
            steps,
            [Step {
                at: ms(32_000),
                event: Some(ServerEvent::Terminated),
                sent: vec![],
            }]
        );
    }

    #[test]
    fn reliable_transport_still_retransmits_2xx_end_to_end() {
        // §13.3.1.4: a later hop may be UDP.
        let t0 = Instant::now();
        let mut server = server(true, t0);
        server.respond(200, OK.to_vec(), t0);
        drain(&mut server);
        let first = step(&mut server, t0).expect("2xx resend");
        assert_eq!((first.at, first.sent), (ms(500), vec![OK.to_vec()]));
    }

    #[test]
    fn early_timeout_does_nothing_and_late_one_gives_up_once() {
        let t0 = Instant::now();
        let mut server = server(false, t0);
        server.respond(486, BUSY.to_vec(), t0);
        drain(&mut server);

        assert_eq!(server.handle_timeout(t0 + ms(499)), None);
        assert_eq!(drain(&mut server), Vec::<Vec<u8>>::new());
        assert_eq!(server.poll_timeout(), Some(t0 + ms(500)));

        // Woken long after both G and H were due: H wins, no resend.
        assert_eq!(
            server.handle_timeout(t0 + ms(100_000)),
            Some(ServerEvent::Terminated)
        );
        assert_eq!(drain(&mut server), Vec::<Vec<u8>>::new());
        assert_eq!(server.handle_timeout(t0 + ms(200_000)), None);
        assert_eq!(server.poll_timeout(), None);
    }

    #[test]
    fn late_wakeup_resends_once_and_backs_off_from_now() {
        let t0 = Instant::now();
        let mut server = server(false, t0);
        server.respond(200, OK.to_vec(), t0);
        drain(&mut server);
        // Due at 0.5 s, woken at 2 s: one resend, not a burst.
        assert_eq!(server.handle_timeout(t0 + ms(2000)), None);
        assert_eq!(drain(&mut server), [OK]);
        assert_eq!(server.poll_timeout(), Some(t0 + ms(3000)));
    }

    #[test]
    fn proceeding_has_no_timer() {
        let t0 = Instant::now();
        let mut server = server(false, t0);
        assert_eq!(server.poll_timeout(), None);
        assert_eq!(server.handle_timeout(t0 + ms(60_000)), None);
        assert_eq!(server.handle_ack(t0), None, "ACK before a final response");
        assert!(!server.is_terminated());
    }
}

//! Non-INVITE server transaction (RFC 3261 §17.2.2): answers BYE, OPTIONS,
//! INFO and the like, and absorbs their retransmissions.

use std::net::SocketAddr;
use std::time::Instant;

use super::timers::{Timer, TimerTable};
use super::{Outbox, ServerEvent, StatusClass, Timers, Transmit, classify};

/// One received non-INVITE request.
///
/// ```text
///                          new()
///                            |
///   request again:           v
///   absorbed           +----------+
///                      |  Trying  |
///                      +----------+
///       respond(1xx): send |    | respond(200-699): send; start J
///                          v    +-------------------------+
///   respond(1xx): send +------------+                     |
///   request again:     | Proceeding |                     |
///   resend it          +------------+                     |
///                respond(200-699): send; start J          |
///                          |                              v
///                          |                       +-----------+ request again:
///                          +---------------------->| Completed | resend final;
///                                                  +-----------+ respond: discarded
///                                                        | Timer J (64·T1, 0 reliable):
///                                                        v Terminated
///                                                  +------------+
///                                                  | Terminated |
///                                                  +------------+
/// ```
///
/// Call order: [`new`](Self::new); feed `respond` / `handle_retransmission` /
/// `handle_timeout`, then drain [`poll_transmit`](Self::poll_transmit), then
/// read [`poll_timeout`](Self::poll_timeout).
#[derive(Debug)]
pub struct NonInviteServer {
    state: State,
    timers: TimerTable,
    outbox: Outbox,
    /// The last response, resent when the request is retransmitted.
    last_response: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

impl NonInviteServer {
    /// A transaction for a request that just arrived; nothing is sent until
    /// the caller responds.
    pub fn new(destination: SocketAddr, reliable: bool, timers: Timers, now: Instant) -> Self {
        let _ = now; // No timer runs in Trying.
        NonInviteServer {
            state: State::Trying,
            timers: TimerTable::new(timers, reliable),
            outbox: Outbox::new(destination, reliable),
            last_response: None,
        }
    }

    /// Sends a response: 1xx → Proceeding, 200–699 → Completed. After the
    /// final response, others are discarded (§17.2.2); so are status codes
    /// outside 100–699.
    pub fn respond(&mut self, status: u16, payload: Vec<u8>, now: Instant) {
        let Some(class) = classify(status) else {
            return;
        };
        if !matches!(self.state, State::Trying | State::Proceeding) {
            return;
        }
        if class == StatusClass::Provisional {
            self.state = State::Proceeding;
        } else {
            self.state = State::Completed;
            self.timers.start(Timer::J, now);
        }
        self.outbox.send(payload.clone());
        self.last_response = Some(payload);
    }

    /// The request was retransmitted: resend the last response. In Trying
    /// there is none yet and the retransmission is absorbed.
    pub fn handle_retransmission(&mut self, now: Instant) {
        let _ = now;
        if matches!(self.state, State::Proceeding | State::Completed)
            && let Some(payload) = &self.last_response
        {
            self.outbox.send(payload.clone());
        }
    }

    /// Fires Timer J when due: `Terminated`.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<ServerEvent> {
        if self.state == State::Completed && self.timers.is_expired(Timer::J, now) {
            self.state = State::Terminated;
            self.timers.stop_all();
            return Some(ServerEvent::Terminated);
        }
        None
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout): Timer J in
    /// Completed, else `None`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_timeout()
    }

    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }
}

#[cfg(test)]
mod tests {
    use super::super::harness::{Step, destination, drain, ms, run};
    use super::*;

    const TRYING: &[u8] = b"SIP/2.0 100 Trying";
    const OK: &[u8] = b"SIP/2.0 200 OK";

    fn server(reliable: bool, t0: Instant) -> NonInviteServer {
        NonInviteServer::new(destination(), reliable, Timers::default(), t0)
    }

    #[test]
    fn final_response_is_resent_on_retransmission_until_timer_j() {
        let t0 = Instant::now();
        let mut server = server(false, t0);
        assert_eq!(server.poll_timeout(), None);
        server.respond(200, OK.to_vec(), t0);
        assert_eq!(drain(&mut server), [OK]);
        server.handle_retransmission(t0 + ms(400));
        assert_eq!(drain(&mut server), [OK]);
        server.respond(500, b"SIP/2.0 500".to_vec(), t0 + ms(500));
        assert_eq!(
            drain(&mut server),
            Vec::<Vec<u8>>::new(),
            "second final discarded"
        );

        assert_eq!(server.handle_timeout(t0 + ms(31_999)), None);
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
        server.handle_retransmission(t0 + ms(33_000));
        assert_eq!(
            drain(&mut server),
            Vec::<Vec<u8>>::new(),
            "Terminated absorbs"
        );
    }

    #[test]
    fn trying_absorbs_and_proceeding_resends_the_provisional() {
        let t0 = Instant::now();
        let mut server = server(false, t0);
        server.handle_retransmission(t0);
        assert_eq!(drain(&mut server), Vec::<Vec<u8>>::new());
        server.respond(100, TRYING.to_vec(), t0);
        server.handle_retransmission(t0 + ms(100));
        assert_eq!(drain(&mut server), [TRYING, TRYING]);
        assert_eq!(server.poll_timeout(), None, "no timer in Proceeding");
        server.respond(200, OK.to_vec(), t0 + ms(200));
        server.handle_retransmission(t0 + ms(300));
        assert_eq!(drain(&mut server), [OK, OK]);
    }

    #[test]
    fn reliable_timer_j_is_zero() {
        let t0 = Instant::now();
        let mut server = server(true, t0);
        server.respond(200, OK.to_vec(), t0 + ms(10));
        drain(&mut server);
        assert_eq!(server.poll_timeout(), Some(t0 + ms(10)));
        assert_eq!(
            server.handle_timeout(t0 + ms(10)),
            Some(ServerEvent::Terminated)
        );
        assert_eq!(server.poll_timeout(), None);
        assert_eq!(server.handle_timeout(t0 + ms(20)), None, "once");
    }
}

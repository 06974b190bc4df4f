//! INVITE client transaction (RFC 3261 §17.1.1), used by our SIP test client
//! to place calls.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::timers::{Timer, TimerTable, doubled};
use super::{ClientEvent, Outbox, StatusClass, Timers, Transmit, classify};

/// One INVITE we sent.
///
/// ```text
///                          new(): send INVITE; start A, B
///                            |
///   Timer A: resend;         v
///   A = 2A (no cap)    +----------+  Timer B: TimedOut
///                      | Calling  |-----------------------------+
///                      +----------+                             |
///       1xx: Provisional; |    | 2xx: Final ------------------->|
///       stop A, B         v    |                                |
///   1xx: Provisional +------------+  2xx: Final --------------->|
///                    | Proceeding |                             |
///                    +------------+                             |
///    300-699: Final; start D |  | 300-699: Final; start D       |
///                            v  v                               |
///   send_failure_ack: +-----------+                             |
///   send ACK (once)   | Completed |                             |
///   300-699 again:    +-----------+                             |
///   resend ACK              | Timer D (32 s, 0 reliable):       |
///                           v Terminated                        |
///                     +------------+                            |
///                     | Terminated |<---------------------------+
///                     +------------+
/// ```
///
/// The ACK for a 2xx is a new transaction of the TU's (§13.2.2.4), so a 2xx
/// ends this one at once. Timer B only guards Calling (§17.1.1.2, Figure 5):
/// once the far end rings, how long to wait is the TU's choice (CANCEL).
///
/// Call order: [`new`](Self::new) queues the INVITE; feed `handle_response`
/// / `handle_timeout`; after `Final(300..=699)` call
/// [`send_failure_ack`](Self::send_failure_ack) straight away; then drain
/// [`poll_transmit`](Self::poll_transmit), then read
/// [`poll_timeout`](Self::poll_timeout).
#[derive(Debug)]
pub struct InviteClient {
    state: State,
    timers: TimerTable,
    outbox: Outbox,
    request: Vec<u8>,
    /// Current Timer A interval.
    interval: Duration,
    /// The ACK of our failure response, resent on its retransmissions.
    ack: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Calling,
    Proceeding,
    Completed,
    Terminated,
}

impl InviteClient {
    /// Starts the transaction: the INVITE is queued at once.
    pub fn new(
        request: Vec<u8>,
        destination: SocketAddr,
        reliable: bool,
        timers: Timers,
        now: Instant,
    ) -> Self {
        let mut client = InviteClient {
            state: State::Calling,
            timers: TimerTable::new(timers, reliable),
            outbox: Outbox::new(destination, reliable),
            request,
            interval: timers.t1,
            ack: None,
        };
        client.outbox.send(client.request.clone());
        if let Some(interval) = client.timers.start(Timer::A, now) {
            client.interval = interval;
        }
        client.timers.start(Timer::B, now);
        client
    }

    /// A response to our INVITE arrived. 1xx → `Provisional` (every one);
    /// 2xx → `Final` and Terminated; 300–699 → `Final` once, then each
    /// retransmission resends our ACK and returns `None`. Status codes outside
    /// 100–699 are ignored.
    pub fn handle_response(&mut self, status: u16, now: Instant) -> Option<ClientEvent> {
        let class = classify(status)?;
        match (self.state, class) {
            (State::Calling | State::Proceeding, StatusClass::Provisional) => {
                self.state = State::Proceeding;
                self.timers.stop(Timer::A);
                self.timers.stop(Timer::B);
                Some(ClientEvent::Provisional(status))
            }
            (State::Calling | State::Proceeding, StatusClass::Success) => {
                self.terminate();
                Some(ClientEvent::Final(status))
            }
            (State::Calling | State::Proceeding, StatusClass::Failure) => {
                self.state = State::Completed;
                self.timers.stop(Timer::A);
                self.timers.stop(Timer::B);
                self.timers.start(Timer::D, now);
                Some(ClientEvent::Final(status))
            }
            (State::Completed, StatusClass::Failure) => {
                if let Some(ack) = &self.ack {
                    self.outbox.send(ack.clone());
                }
                None
            }
            _ => None,
        }
    }

    /// Sends the ACK of the failure response (§17.1.1.3), built by the caller.
    /// Only in Completed and only once; later calls are ignored.
    pub fn send_failure_ack(&mut self, ack: Vec<u8>, now: Instant) {
        let _ = now;
        if self.state == State::Completed && self.ack.is_none() {
            self.outbox.send(ack.clone());
            self.ack = Some(ack);
        }
    }

    /// Fires the timers due at `now`; see the type's diagram.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<ClientEvent> {
        match self.state {
            State::Calling => {
                if self.timers.is_expired(Timer::B, now) {
                    self.terminate();
                    return Some(ClientEvent::TimedOut);
                }
                if self.timers.is_expired(Timer::A, now) {
                    self.outbox.send(self.request.clone());
                    // §17.1.1.2: "reset the timer with a value of 2*T1", no cap;
                    // Timer B ends the doubling.
                    self.interval = doubled(self.interval, None);
                    self.timers.set_after(Timer::A, now, self.interval);
                }
                None
            }
            State::Completed if self.timers.is_expired(Timer::D, now) => {
                self.terminate();
                Some(ClientEvent::Terminated)
            }
            State::Proceeding | State::Completed | State::Terminated => None,
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout): `None` in
    /// Proceeding and once terminated.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_timeout()
    }

    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.timers.stop_all();
    }
}

#[cfg(test)]
mod tests {
    use super::super::harness::{Step, destination, drain, ms, run};
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:service@192.0.2.10 SIP/2.0";
    const ACK: &[u8] = b"ACK sip:service@192.0.2.10 SIP/2.0";

    fn client(reliable: bool, t0: Instant) -> InviteClient {
        let mut client = InviteClient::new(
            INVITE.to_vec(),
            destination(),
            reliable,
            Timers::default(),
            t0,
        );
        assert_eq!(drain(&mut client), [INVITE], "INVITE sent at once");
        client
    }

    #[test]
    fn timer_a_doubles_without_cap_until_timer_b() {
        let t0 = Instant::now();
        let mut client = client(false, t0);
        let steps = run(&mut client, t0);
        let resends: Vec<_> = steps
            .iter()
            .filter(|s| s.sent == [INVITE])
            .map(|s| s.at.as_millis())
            .collect();
        assert_eq!(resends, [500, 1500, 3500, 7500, 15500, 31500]);
        let events: Vec<_> = steps
            .iter()
            .filter_map(|s| s.event.map(|e| (s.at, e)))
            .collect();
        assert_eq!(events, [(ms(32_000), ClientEvent::TimedOut)]);
        assert!(client.is_terminated());
        assert_eq!(client.poll_timeout(), None);
    }

    #[test]
    fn provisional_stops_retransmission_and_2xx_terminates() {
        let t0 = Instant::now();
        let mut client = client(false, t0);
        assert_eq!(
            client.handle_response(100, t0 + ms(200)),
            Some(ClientEvent::Provisional(100))
        );
        assert_eq!(
            client.handle_response(180, t0 + ms(300)),
            Some(ClientEvent::Provisional(180))
        );
        assert_eq!(client.poll_timeout(), None, "A and B stopped");
        assert_eq!(client.handle_timeout(t0 + ms(60_000)), None);
        assert_eq!(drain(&mut client), Vec::<Vec<u8>>::new());

        assert_eq!(
            client.handle_response(200, t0 + ms(5000)),
            Some(ClientEvent::Final(200))
        );
        assert!(client.is_terminated());
        assert_eq!(client.handle_response(200, t0 + ms(5500)), None, "TU's now");
    }

    #[test]
    fn failure_is_acked_and_the_ack_resent_until_timer_d() {
        let t0 = Instant::now();
        let mut client = client(false, t0);
        assert_eq!(
            client.handle_response(486, t0 + ms(1000)),
            Some(ClientEvent::Final(486))
        );
        client.send_failure_ack(ACK.to_vec(), t0 + ms(1000));
        client.send_failure_ack(ACK.to_vec(), t0 + ms(1000));
        assert_eq!(drain(&mut client), [ACK], "ACK sent once");

        assert_eq!(client.handle_response(486, t0 + ms(1500)), None);
        assert_eq!(
            drain(&mut client),
            [ACK],
            "retransmitted 486 gets the ACK again"
        );
        assert_eq!(client.handle_response(200, t0 + ms(1600)), None);
        assert_eq!(drain(&mut client), Vec::<Vec<u8>>::new());

        let steps = run(&mut client, t0);
        assert_eq!(
            steps,
            [Step {
                at: ms(33_000),
                event: Some(ClientEvent::Terminated),
                sent: vec![],
            }]
        );
    }

    #[test]
    fn failure_after_provisional_starts_timer_d() {
        let t0 = Instant::now();
        let mut client = client(false, t0);
        client.handle_response(183, t0 + ms(100));
        assert_eq!(
            client.handle_response(603, t0 + ms(2000)),
            Some(ClientEvent::Final(603))
        );
        assert_eq!(client.poll_timeout(), Some(t0 + ms(34_000)));
    }

    #[test]
    fn reliable_arms_no_timer_a_and_timer_d_is_zero() {
        let t0 = Instant::now();
        let mut client = client(true, t0);
        assert_eq!(client.poll_timeout(), Some(t0 + ms(32_000)), "only Timer B");
        assert_eq!(
            client.handle_response(480, t0 + ms(50)),
            Some(ClientEvent::Final(480))
        );
        client.send_failure_ack(ACK.to_vec(), t0 + ms(50));
        assert_eq!(drain(&mut client), [ACK]);
        assert_eq!(client.poll_timeout(), Some(t0 + ms(50)));
        assert_eq!(
            client.handle_timeout(t0 + ms(50)),
            Some(ClientEvent::Terminated)
        );
    }

    #[test]
    fn early_timeout_does_nothing() {
        let t0 = Instant::now();
        let mut client = client(false, t0);
        assert_eq!(client.handle_timeout(t0 + ms(499)), None);
        assert_eq!(drain(&mut client), Vec::<Vec<u8>>::new());
        assert_eq!(client.poll_timeout(), Some(t0 + ms(500)));
    }

    #[test]
    fn ack_outside_completed_is_ignored() {
        let t0 = Instant::now();
        let mut client = client(false, t0);
        client.send_failure_ack(ACK.to_vec(), t0);
        assert_eq!(drain(&mut client), Vec::<Vec<u8>>::new());
    }
}

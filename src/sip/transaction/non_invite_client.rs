//! Non-INVITE client transaction (RFC 3261 §17.1.2): sends REGISTER, BYE and
//! the like, retransmits them over UDP and reports the final response once.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::timers::{Timer, TimerTable, doubled};
use super::{ClientEvent, Outbox, StatusClass, Timers, Transmit, classify};

/// One request we sent.
///
/// ```text
///                          new(): send; start E, F
///                            |
///   Timer E: resend;         v
///   E = min(2E, T2)    +----------+  Timer F: TimedOut
///                      |  Trying  |-----------------------------+
///                      +----------+                             |
///        1xx: Provisional |    | 200-699: Final; start K        |
///                         v    +--------------------+           |
///   Timer E: resend; +------------+                 |           |
///   E = T2           | Proceeding |---------------------------->|
///   1xx: Provisional +------------+  Timer F: TimedOut          |
///             200-699: Final; start K               |           |
///                         |                         v           |
///                         |                  +-----------+      |
///                         +----------------->| Completed |      |
///                                            +-----------+      |
///                          responses absorbed      | Timer K:   |
///                                                  v Terminated |
///                                            +------------+     |
///                                            | Terminated |<----+
///                                            +------------+
/// ```
///
/// On a reliable transport Timer E is not armed and Timer K is zero.
///
/// Call order: [`new`](Self::new) queues the request; feed `handle_response`
/// / `handle_timeout`, then drain [`poll_transmit`](Self::poll_transmit),
/// then read [`poll_timeout`](Self::poll_timeout).
#[derive(Debug)]
pub struct NonInviteClient {
    state: State,
    timers: TimerTable,
    outbox: Outbox,
    request: Vec<u8>,
    /// Current Timer E interval.
    interval: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

impl NonInviteClient {
    /// Starts the transaction: the request is queued at once.
    pub fn new(
        request: Vec<u8>,
        destination: SocketAddr,
        reliable: bool,
        timers: Timers,
        now: Instant,
    ) -> Self {
        let mut client = NonInviteClient {
            state: State::Trying,
            timers: TimerTable::new(timers, reliable),
            outbox: Outbox::new(destination, reliable),
            request,
            interval: timers.t1,
        };
        client.outbox.send(client.request.clone());
        if let Some(interval) = client.timers.start(Timer::E, now) {
            client.interval = interval;
        }
        client.timers.start(Timer::F, now);
        client
    }

    /// A response to our request arrived. 1xx → `Provisional` (every one);
    /// 200–699 → `Final` the first time, then retransmissions are absorbed.
    /// Status codes outside 100–699 are ignored.
    pub fn handle_response(&mut self, status: u16, now: Instant) -> Option<ClientEvent> {
        let class = classify(status)?;
        if !matches!(self.state, State::Trying | State::Proceeding) {
            return None;
        }
        if class == StatusClass::Provisional {
            // Timer E keeps its deadline; from its next firing it uses T2.
            self.state = State::Proceeding;
            return Some(ClientEvent::Provisional(status));
        }
        self.state = State::Completed;
        self.timers.stop(Timer::E);
        self.timers.stop(Timer::F);
        self.timers.start(Timer::K, now);
        Some(ClientEvent::Final(status))
    }

    /// Fires the timers due at `now`; see the type's diagram.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<ClientEvent> {
        match self.state {
            State::Trying | State::Proceeding => {
                if self.timers.is_expired(Timer::F, now) {
                    self.terminate();
                    return Some(ClientEvent::TimedOut);
                }
                if self.timers.is_expired(Timer::E, now) {
                    self.outbox.send(self.request.clone());
                    let t2 = self.timers.config().t2;
                    // §17.1.2.2: doubling up to T2 while Trying; once a
                    // provisional came, the far end is alive: every T2.
                    self.interval = match self.state {
                        State::Trying => doubled(self.interval, Some(t2)),
                        _ => t2,
                    };
                    self.timers.set_after(Timer::E, now, self.interval);
                }
                None
            }
            State::Completed if self.timers.is_expired(Timer::K, now) => {
                self.terminate();
                Some(ClientEvent::Terminated)
            }
            State::Completed | State::Terminated => None,
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout); `None` once
    /// terminated.
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
    use super::super::harness::{Step, destination, drain, ms, run, step};
    use super::*;

    const BYE: &[u8] = b"BYE sip:alice@192.0.2.10 SIP/2.0";

    fn client(reliable: bool, t0: Instant) -> NonInviteClient {
        let mut client =
            NonInviteClient::new(BYE.to_vec(), destination(), reliable, Timers::default(), t0);
        assert_eq!(drain(&mut client), [BYE], "request sent at once");
        client
    }

    fn resend_times(steps: &[Step<ClientEvent>]) -> Vec<u128> {
        steps
            .iter()
            .filter(|s| s.sent == [BYE])
            .map(|s| s.at.as_millis())
            .collect()
    }

    #[test]
    fn timer_e_backs_off_to_t2_until_timer_f_times_out_once() {
        let t0 = Instant::now();
        let mut client = client(false, t0);
        let steps = run(&mut client, t0);
        let resends = [
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
        ];
        assert_eq!(resend_times(&steps), resends);
        let events: Vec<_> = steps
            .iter()
            .filter_map(|s| s.event.map(|e| (s.at, e)))
            .collect();
        assert_eq!(events, [(ms(32_000), ClientEvent::TimedOut)]);
        assert!(client.is_terminated());
        assert_eq!(client.poll_timeout(), None);
        assert_eq!(client.handle_timeout(t0 + ms(40_000)), None);
        assert_eq!(
            client.handle_response(200, t0 + ms(40_000)),
            None,
            "too late"
        );
    }

    #[test]
    fn provisional_switches_timer_e_to_t2() {
        let t0 = Instant::now();
        let mut client = client(false, t0);
        assert_eq!(step(&mut client, t0).map(|s| s.at), Some(ms(500)));
        assert_eq!(
            client.handle_response(100, t0 + ms(700)),
            Some(ClientEvent::Provisional(100))
        );
        assert_eq!(
            client.handle_response(180, t0 + ms(800)),
            Some(ClientEvent::Provisional(180))
        );
        let steps = run(&mut client, t0);
        // E keeps its 1.5 s deadline, then every T2; F still gives up at 32 s.
        let resends = [1500, 5500, 9500, 13500, 17500, 21500, 25500, 29500];
        assert_eq!(resend_times(&steps), resends);
        let last = steps.last().expect("Timer F");
        assert_eq!(
            (last.at, last.event),
            (ms(32_000), Some(ClientEvent::TimedOut))
        );
    }

    #[test]
    fn final_response_reported_once_then_timer_k() {
        let t0 = Instant::now();
        let mut client = client(false, t0);
        assert_eq!(
            client.handle_response(200, t0 + ms(1000)),
            Some(ClientEvent::Final(200))
        );
        assert_eq!(client.handle_response(200, t0 + ms(1200)), None);
        assert_eq!(client.handle_response(100, t0 + ms(1300)), None);
        assert_eq!(client.poll_timeout(), Some(t0 + ms(6000)), "Timer K = T4");
        let steps = run(&mut client, t0);
        assert_eq!(
            steps,
            [Step {
                at: ms(6000),
                event: Some(ClientEvent::Terminated),
                sent: vec![],
            }]
        );
    }

    #[test]
    fn reliable_arms_no_timer_e_and_timer_k_is_zero() {
        let t0 = Instant::now();
        let mut client = client(true, t0);
        assert_eq!(client.poll_timeout(), Some(t0 + ms(32_000)), "only Timer F");
        assert_eq!(client.handle_timeout(t0 + ms(500)), None, "early: nothing");
        assert_eq!(drain(&mut client), Vec::<Vec<u8>>::new());
        assert_eq!(
            client.handle_response(401, t0 + ms(80)),
            Some(ClientEvent::Final(401))
        );
        assert_eq!(client.poll_timeout(), Some(t0 + ms(80)));
        assert_eq!(
            client.handle_timeout(t0 + ms(80)),
            Some(ClientEvent::Terminated)
        );
        assert!(client.is_terminated());
    }

    #[test]
    fn reliable_timeout_sends_nothing_more() {
        let t0 = Instant::now();
        let mut client = client(true, t0);
        let steps = run(&mut client, t0);
        assert_eq!(
            steps,
            [Step {
                at: ms(32_000),
                event: Some(ClientEvent::TimedOut),
                sent: vec![],
            }]
        );
    }

    #[test]
    fn invalid_status_is_ignored() {
        let t0 = Instant::now();
        let mut client = client(false, t0);
        assert_eq!(client.handle_response(0, t0), None);
        assert_eq!(client.handle_response(1000, t0), None);
        assert!(!client.is_terminated());
        assert_eq!(client.poll_timeout(), Some(t0 + ms(500)));
    }
}

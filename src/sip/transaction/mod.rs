//! SIP transactions (RFC 3261 §17, with RFC 6026's Accepted state): the four
//! state machines that make one request and its responses survive a lossy
//! transport, by retransmitting, absorbing duplicates and giving up in time.
//!
//! They are sans-IO and parser-free: they see already-serialised messages as
//! bytes and responses as status codes, take `now` as an argument, queue what
//! to send and say when to wake. Matching a message to its transaction is the
//! caller's job, with a [`TransactionKey`] (§17.1.3, §17.2.3).
//!
//! | machine | RFC | role |
//! |---|---|---|
//! | [`InviteServer`] | §17.2.1, RFC 6026 §7.1, §13.3.1.4 | answering calls |
//! | [`NonInviteServer`] | §17.2.2 | BYE, OPTIONS, INFO… received |
//! | [`NonInviteClient`] | §17.1.2 | REGISTER, BYE… sent |
//! | [`InviteClient`] | §17.1.1 | our SIP test client placing calls |
//!
//! Call order, the same for all four:
//!
//! 1. feed one input: `new`, `respond`, `handle_response`, `handle_ack`,
//!    `handle_retransmission`, `handle_timeout`; act on the event it returns;
//! 2. drain `poll_transmit` until `None` and send each [`Transmit`];
//! 3. read `poll_timeout` and call `handle_timeout(now)` at or after that
//!    instant. Early calls do nothing; late ones fire every timer that is due
//!    (a give-up timer wins over a retransmission due at the same time).
//!
//! `handle_timeout` returns `Terminated` whenever a timer ends the transaction,
//! unless a more telling event says so (`AckTimedOut`, `TimedOut`). After any
//! call, `is_terminated()` says whether the machine can be dropped; once it is,
//! `poll_timeout` is `None`.
//!
//! Timer values follow RFC 3261 Table 4 (see `timers.rs`). On a reliable
//! transport (TCP) the retransmission timers A, E and G are not armed and D, I,
//! J and K are zero, so `poll_timeout` asks to be woken at once.

mod invite_client;
mod invite_server;
mod key;
mod non_invite_client;
mod non_invite_server;
mod timers;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use super::Transmit;

pub use invite_client::InviteClient;
pub use invite_server::InviteServer;
pub use key::{MAGIC_COOKIE, Role, TransactionKey};
pub use non_invite_client::NonInviteClient;
pub use non_invite_server::NonInviteServer;

/// RTT estimate (RFC 3261 Table 4).
pub const T1: Duration = Duration::from_millis(500);
/// Longest retransmit interval for non-INVITE requests and INVITE responses.
pub const T2: Duration = Duration::from_secs(4);
/// Longest time a message stays in the network.
pub const T4: Duration = Duration::from_secs(5);

/// The three base values every other timer derives from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}
impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: T1,
            t2: T2,
            t4: T4,
        }
    }
}

impl Timers {
    /// 64·T1, the give-up time of Timers B, F, H, J and L.
    pub fn give_up(&self) -> Duration {
        self.t1.saturating_mul(64)
    }
}

/// What a server transaction tells its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerEvent {
    /// The ACK for our 2xx arrived (first time only): the call is up.
    Acked,
    /// No ACK for our 2xx within 64·T1: the caller should send BYE
    /// (§13.3.1.4). The transaction has terminated.
    AckTimedOut,
    /// A timer ended the transaction. From `InviteServer` with no ACK seen
    /// (`ack_received() == false`) it is Timer H giving up: worth a log line.
    Terminated,
}

/// What a client transaction tells its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientEvent {
    /// A 1xx response, passed up every time one arrives.
    Provisional(u16),
    /// The final response, passed up once.
    Final(u16),
    /// No final response (non-INVITE, Timer F) or no response at all
    /// (INVITE, Timer B): the transaction has terminated.
    TimedOut,
    /// Timer K or D ended the transaction.
    Terminated,
}

/// What kind of response a status code is; `None` outside 100–699.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusClass {
    Provisional,
    Success,
    Failure,
}

fn classify(status: u16) -> Option<StatusClass> {
    match status {
        100..=199 => Some(StatusClass::Provisional),
        200..=299 => Some(StatusClass::Success),
        300..=699 => Some(StatusClass::Failure),
        _ => None,
    }
}

/// Messages waiting for the driver, all to the transaction's one destination.
#[derive(Debug)]
struct Outbox {
    destination: SocketAddr,
    transport: super::Transport,
    queue: VecDeque<Transmit>,
}

impl Outbox {
    fn new(destination: SocketAddr, reliable: bool) -> Self {
        Outbox {
            destination,
            transport: super::Transport::from_reliable(reliable),
            queue: VecDeque::new(),
        }
    }

    fn send(&mut self, payload: Vec<u8>) {
        self.queue.push_back(Transmit {
            destination: self.destination,
            payload,
            transport: self.transport,
        });
    }

    fn pop(&mut self) -> Option<Transmit> {
        self.queue.pop_front()
    }
}

/// Virtual-clock harness shared by the machines' tests: jump to
/// `poll_timeout`, fire, record what went out (after quinn-proto's
/// `tests/util.rs`).
#[cfg(test)]
mod harness {
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    use super::*;

    pub(super) fn destination() -> SocketAddr {
        "192.0.2.10:5060".parse().expect("literal socket address")
    }

    pub(super) fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The part of a machine's API the harness drives.
    pub(super) trait Machine {
        type Event;
        fn next_wake(&self) -> Option<Instant>;
        fn fire(&mut self, now: Instant) -> Option<Self::Event>;
        fn transmit(&mut self) -> Option<Transmit>;
    }

    macro_rules! machine {
        ($ty:ty, $event:ty) => {
            impl Machine for $ty {
                type Event = $event;
                fn next_wake(&self) -> Option<Instant> {
                    self.poll_timeout()
                }
                fn fire(&mut self, now: Instant) -> Option<$event> {
                    self.handle_timeout(now)
                }
                fn transmit(&mut self) -> Option<Transmit> {
                    self.poll_transmit()
                }
            }
        };
    }
    machine!(InviteServer, ServerEvent);
    machine!(NonInviteServer, ServerEvent);
    machine!(NonInviteClient, ClientEvent);
    machine!(InviteClient, ClientEvent);

    /// Drains everything queued, checking each goes to [`destination`].
    pub(super) fn drain<M: Machine>(machine: &mut M) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| machine.transmit())
            .map(|t| {
                assert_eq!(t.destination, destination());
                t.payload
            })
            .collect()
    }

    /// One wake-up: when (since `t0`), the event, and what was sent.
    #[derive(Debug, PartialEq, Eq)]
    pub(super) struct Step<E> {
        pub at: Duration,
        pub event: Option<E>,
        pub sent: Vec<Vec<u8>>,
    }

    /// Jumps the clock to the machine's next wake-up and fires it; `None`
    /// when it asks for none.
    pub(super) fn step<M: Machine>(machine: &mut M, t0: Instant) -> Option<Step<M::Event>> {
        let now = machine.next_wake()?;
        let event = machine.fire(now);
        Some(Step {
            at: now - t0,
            event,
            sent: drain(machine),
        })
    }

    /// Steps until the machine stops asking to wake; a hundred steps means a
    /// timer that never stops, which is a bug.
    pub(super) fn run<M: Machine>(machine: &mut M, t0: Instant) -> Vec<Step<M::Event>> {
        let steps: Vec<_> = std::iter::from_fn(|| step(machine, t0)).take(100).collect();
        assert!(steps.len() < 100, "timers never stop");
        steps
    }
}

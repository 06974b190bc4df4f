//! SIP over UDP and TCP (RFC 3261 §18): sip/'s only I/O.
//!
//! [`SipTransport`] owns the UDP socket and a TCP listener on the same
//! `[sip] listen` address, and every TCP connection, inbound or outbound.
//! [`recv`](SipTransport::recv) yields datagrams, framed TCP messages and
//! connection events; [`send`](SipTransport::send) puts a [`Transmit`] on
//! the wire and never waits for a TCP connect.
//!
//! - §18.3: TCP messages are framed by Content-Length ([`super::framing`]);
//!   a stream that cannot be framed is closed.
//! - §18.2.2: a response goes back on the connection its request came in
//!   on, so connections are kept in one map keyed by peer address whichever
//!   side opened them. The same map gives connection reuse: calls from a
//!   trunk arrive on the connection the line's registration opened, and
//!   their responses and BYEs leave on it.
//! - RFC 5626 §4.4.1: a CRLFCRLF ping gets a CRLF pong at once; pongs on our
//!   own connections are reported for the registration's keep-alive.
//!
//! One tokio task per connection reads (through a
//! [`StreamFramer`](super::framing::StreamFramer)) and
//! writes (from a queue, so `send` never blocks on a slow peer), and reports
//! to the transport on one bounded channel: per connection, messages and its
//! closing arrive in order, and a peer flooding us is slowed by TCP flow
//! control rather than buffered. Reconnection backoff is the registration's
//! job: a dropped outgoing connection is forgotten, the next send dials again.
//!
//! Binding refuses to start when the UDP or TCP port is taken, because a
//! second process on the same UDP port would silently steal half the calls.

// I/O: reads the clock for idle connections and its quiet log (the rest of
// sip/ takes `now` as an input).
#![allow(clippy::disallowed_methods)]

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::JoinHandle;

use super::framing::{FramingError, KeepAliveRole};
use super::{Transmit, Transport};
use crate::log_summary::{LogSummary, Verdict};
use connection::{Link, Report, dial};

mod connection;

/// Largest datagram we read: RFC 3261 §18.1.1 keeps UDP messages well under
/// this, but a hostile peer may send up to 64 KiB.
pub const MAX_DATAGRAM: usize = 65_535;
/// How long dialling a TCP peer may take before the send is reported failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection without traffic either way for this long is closed; its
/// peer reconnects when it needs to. Traffic is whole messages and
/// keep-alives, not stray bytes. The registration's own connection carries
/// a keep-alive every `[trunk] keepalive` (25 s) and a refresh every few
/// minutes, so it stays; one dialled for a BYE closes once idle.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Messages queued for one connection; more means the peer is not reading.
const OUTBOX_CAPACITY: usize = 256;
/// Reports from all connections waiting for `recv`.
const REPORT_CAPACITY: usize = 64;
/// Inbound connections beyond this are refused, so a flood of idle
/// connections cannot use up our file descriptors.
const MAX_INBOUND: usize = 1024;
/// Inbound connections from one address: a trunk or a phone needs one or
/// two; more is a flood that must not crowd out everyone else.
const MAX_INBOUND_PER_SOURCE: usize = 16;
/// Connections the line dials (its registration, in-dialog requests to a
/// TCP caller): a caller's Contact must not make it open connections
/// without bound.
const MAX_OUTBOUND: usize = 256;
/// Pause after a failed accept (e.g. out of file descriptors), so the
/// loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// With port 0, tries to find a port free for both UDP and TCP.
const PORT_ATTEMPTS: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot listen for SIP on {addr}: {source} (is another SIP service using the port?)")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error(
        "cannot listen for SIP over TCP on {addr}: {source} (is another SIP service using the port?)"
    )]
    BindTcp { addr: SocketAddr, source: io::Error },
    #[error("the SIP socket on {addr} failed: {source}")]
    Receive { addr: SocketAddr, source: io::Error },
}

/// One SIP message off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub payload: Vec<u8>,
    /// The peer; for TCP, also the key of the connection a reply reuses.
    pub source: SocketAddr,
    pub transport: Transport,
}

/// What [`SipTransport::recv`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    Message(Incoming),
    Event(TransportEvent),
}

/// Who opened a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Accepted on the listen address.
    Inbound,
    /// Dialled by [`SipTransport::send`].
    Outbound,
}

/// Why a TCP connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed it.
    PeerClosed,
    /// No traffic for the idle timeout (inbound connections only).
    Idle,
    /// The stream could not be framed (RFC 3261 §18.3).
    Framing(FramingError),
    /// Reading or writing failed.
    Io(io::ErrorKind),
    /// A write did not finish in time, or too many messages were queued.
    NotReading,
    /// The same peer opened a new connection, which is used from now on.
    Replaced,
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("the peer closed it"),
            CloseReason::Idle => f.write_str("idle too long"),
            CloseReason::Framing(error) => write!(f, "unframeable: {error}"),
            CloseReason::Io(kind) => write!(f, "{kind}"),
            CloseReason::NotReading => f.write_str("the peer stopped reading"),
            CloseReason::Replaced => f.write_str("replaced by a newer connection"),
        }
    }
}

impl std::fmt::Display for TransportEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportEvent::Connected { peer, .. } => write!(f, "connected to {peer}"),
            TransportEvent::Closed { peer, reason, .. } => {
                write!(f, "connection with {peer} closed: {reason}")
            }
            TransportEvent::Failed {
                destination,
                transport,
                error,
            } => write!(
                f,
                "cannot send to {destination} over {}: {error}",
                transport.via_token()
            ),
            TransportEvent::Pong { peer } => write!(f, "keep-alive answered by {peer}"),
        }
    }
}

/// Connection news for the layers above, chiefly the registration: it
/// re-registers at once when its connection closes and backs off on failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportEvent {
    Connected {
        peer: SocketAddr,
        origin: Origin,
    },
    Closed {
        peer: SocketAddr,
        origin: Origin,
        reason: CloseReason,
    },
    /// A message could not be sent: dialling failed, or a connection ended
    /// with messages still queued for it.
    Failed {
        destination: SocketAddr,
        transport: Transport,
        error: io::ErrorKind,
    },
    /// A CRLF pong on a connection we opened (RFC 5626 §4.4.1).
    Pong {
        peer: SocketAddr,
    },
}

/// UDP socket, TCP listener and TCP connections on one address.
pub struct SipTransport {
    udp: UdpSocket,
    listener: TcpListener,
    local: SocketAddr,
    buf: Vec<u8>,
    connections: HashMap<SocketAddr, Connection>,
    next_id: u64,
    reports_tx: mpsc::Sender<Report>,
    reports: mpsc::Receiver<Report>,
    /// Events raised by `send`, handed out by the next `recv`.
    pending: VecDeque<TransportEvent>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    /// Refused connections, logged once a minute per address.
    quiet: LogSummary,
}

/// The transport's handle on one connection task.
struct Connection {
    /// Tells this connection from a later one to the same peer, whose
    /// reports must not be confused with the dead one's.
    id: u64,
    origin: Origin,
    outbox: mpsc::Sender<Vec<u8>>,
    task: JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What one `recv` wait produced.
enum Step {
    Datagram(io::Result<(usize, SocketAddr)>),
    Accepted(io::Result<(TcpStream, SocketAddr)>),
    Report(Option<Report>),
}

impl SipTransport {
    /// Binds UDP and TCP on `addr`. With port 0, both get the same port.
    pub async fn bind(addr: SocketAddr) -> Result<Self, TransportError> {
        let mut attempt = 1;
        loop {
            // std/tokio do not set SO_REUSEADDR on UDP sockets, so a port held
            // by another process makes this fail instead of sharing traffic.
            let udp = UdpSocket::bind(addr)
                .await
                .map_err(|source| TransportError::Bind { addr, source })?;
            let local = udp
                .local_addr()
                .map_err(|source| TransportError::Bind { addr, source })?;
            match listen_tcp(local) {
                Ok(listener) => return Ok(SipTransport::new(udp, listener, local)),
                // The port the system chose for UDP may be taken for TCP.
                Err(source)
                    if addr.port() == 0
                        && source.kind() == io::ErrorKind::AddrInUse
                        && attempt < PORT_ATTEMPTS =>
                {
                    attempt += 1;
                }
                Err(source) => {
                    return Err(TransportError::BindTcp {
                        addr: local,
                        source,
                    });
                }
            }
        }
    }

    fn new(udp: UdpSocket, listener: TcpListener, local: SocketAddr) -> Self {
        let (reports_tx, reports) = mpsc::channel(REPORT_CAPACITY);
        SipTransport {
            udp,
            listener,
            local,
            buf: vec![0; MAX_DATAGRAM],
            connections: HashMap::new(),
            next_id: 0,
            reports_tx,
            reports,
            pending: VecDeque::new(),
            connect_timeout: CONNECT_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            quiet: LogSummary::default(),
        }
    }

    /// The address bound for both UDP and TCP.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    /// For connections dialled from now on.
    pub fn set_connect_timeout(&mut self, timeout: Duration) {
        self.connect_timeout = timeout;
    }

    /// For connections accepted from now on.
    pub fn set_idle_timeout(&mut self, timeout: Duration) {
        self.idle_timeout = timeout;
    }

    /// Whether a TCP connection to or from `peer` is open (or being dialled).
    pub fn is_connected(&self, peer: SocketAddr) -> bool {
        self.connections.contains_key(&canonical(peer))
    }

    /// TCP connections open or being dialled.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// Waits for the next message or connection event. Cancel-safe: nothing
    /// is lost when a `select!` drops it.
    pub async fn recv(&mut self) -> Result<Received, TransportError> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(Received::Event(event));
            }
            let summaries_due = self.quiet.poll_timeout();
            let step = tokio::select! {
                received = self.udp.recv_from(&mut self.buf) => Step::Datagram(received),
                accepted = self.listener.accept() => Step::Accepted(accepted),
                report = self.reports.recv() => Step::Report(report),
                () = connection::sleep_until(summaries_due.map(Into::into)) => {
                    self.flush_summaries();
                    continue;
                }
            };
            let received = match step {
                Step::Datagram(Ok((len, source))) => Some(Received::Message(Incoming {
                    payload: self.buf[..len].to_vec(),
                    source,
                    transport: Transport::Udp,
                })),
                Step::Datagram(Err(error)) => {
                    // Some systems report an ICMP error for an earlier send
                    // here; it concerns that peer, not the socket.
                    if matches!(
                        error.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionRefused
                    ) {
                        tracing::debug!(%error, "ICMP error on the SIP socket");
                        None
                    } else {
                        return Err(TransportError::Receive {
                            addr: self.local,
                            source: error,
                        });
                    }
                }
                Step::Accepted(Ok((stream, peer))) => self.accepted(stream, peer),
                Step::Accepted(Err(error)) => {
                    tracing::warn!(%error, "cannot accept a SIP connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    None
                }
                // Never `None`: the transport holds a sender itself.
                Step::Report(report) => report.and_then(|report| self.reported(report)),
            };
            if let Some(received) = received {
                return Ok(received);
            }
        }
    }

    /// Sends one message. Never waits for a TCP connect: the message is
    /// queued on the connection to `destination`, dialling it if there is
    /// none. Failures arrive later from [`recv`](Self::recv) as
    /// [`TransportEvent::Failed`].
    pub async fn send(&mut self, transmit: &Transmit) {
        match transmit.transport {
            Transport::Udp => {
                if let Err(error) = self
                    .udp
                    .send_to(&transmit.payload, transmit.destination)
                    .await
                {
                    // UDP is lossy anyway and the transactions retransmit;
                    // the event lets a registration back off sooner.
                    tracing::debug!(destination = %transmit.destination, %error, "SIP send failed");
                    self.pending.push_back(TransportEvent::Failed {
                        destination: transmit.destination,
                        transport: Transport::Udp,
                        error: error.kind(),
                    });
                }
            }
            Transport::Tcp => self.send_tcp(transmit.destination, transmit.payload.clone()),
        }
    }

    fn send_tcp(&mut self, destination: SocketAddr, payload: Vec<u8>) {
        let peer = canonical(destination);
        let payload = match self.connections.get(&peer) {
            None => payload,
            Some(connection) => match connection.outbox.try_send(payload) {
                Ok(()) => return,
                // The connection ended and its report is still on the way:
                // dial again, as after a reported close.
                Err(TrySendError::Closed(payload)) => {
                    self.connections.remove(&peer);
                    payload
                }
                Err(TrySendError::Full(_)) => {
                    tracing::warn!(%peer, "SIP peer is not reading: closing the connection");
                    if let Some(connection) = self.connections.remove(&peer) {
                        self.pending.push_back(TransportEvent::Closed {
                            peer,
                            origin: connection.origin,
                            reason: CloseReason::NotReading,
                        });
                    }
                    self.pending.push_back(TransportEvent::Failed {
                        destination,
                        transport: Transport::Tcp,
                        error: io::ErrorKind::WouldBlock,
                    });
                    return;
                }
            },
        };
        let outbound = self
            .connections
            .values()
            .filter(|c| c.origin == Origin::Outbound)
            .count();
        if outbound >= MAX_OUTBOUND {
            self.note_refusal("SIP connection not dialled: too many open", peer);
            self.pending.push_back(TransportEvent::Failed {
                destination,
                transport: Transport::Tcp,
                error: io::ErrorKind::ResourceBusy,
            });
            return;
        }
        let (outbox, queue) = mpsc::channel(OUTBOX_CAPACITY);
        outbox
            .try_send(payload)
            .expect("a new outbox has room for its first message");
        let id = self.take_id();
        let task = tokio::spawn(dial(
            id,
            peer,
            self.connect_timeout,
            self.idle_timeout,
            queue,
            self.reports_tx.clone(),
        ));
        let connection = Connection {
            id,
            origin: Origin::Outbound,
            outbox,
            task,
        };
        self.connections.insert(peer, connection);
    }

    /// Logs a refused connection once a minute per kind and address.
    fn note_refusal(&mut self, kind: &'static str, peer: SocketAddr) {
        // The transport is I/O: its clock is the real one.
        let now = std::time::Instant::now();
        if self.quiet.note(kind, peer.ip(), now) == Verdict::Log {
            tracing::warn!(%peer, "{kind}");
        }
    }

    /// Logs the summaries of refusals whose minute is over.
    fn flush_summaries(&mut self) {
        for summary in self.quiet.poll_summaries(std::time::Instant::now()) {
            tracing::warn!("{summary}");
        }
    }

    fn take_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn accepted(&mut self, stream: TcpStream, peer: SocketAddr) -> Option<Received> {
        let peer = canonical(peer);
        let (mut inbound, mut from_peer) = (0, 0);
        for (addr, connection) in &self.connections {
            if connection.origin == Origin::Inbound {
                inbound += 1;
                from_peer += usize::from(addr.ip() == peer.ip());
            }
        }
        if inbound >= MAX_INBOUND {
            self.note_refusal("SIP connection refused: too many open", peer);
            return None;
        }
        if from_peer >= MAX_INBOUND_PER_SOURCE {
            self.note_refusal("SIP connection refused: too many from one address", peer);
            return None;
        }
        let (outbox, queue) = mpsc::channel(OUTBOX_CAPACITY);
        let id = self.take_id();
        let link = Link {
            id,
            peer,
            role: KeepAliveRole::Server,
            idle_timeout: Some(self.idle_timeout),
            queue,
            reports: self.reports_tx.clone(),
        };
        let task = tokio::spawn(link.serve(stream));
        let connection = Connection {
            id,
            origin: Origin::Inbound,
            outbox,
            task,
        };
        tracing::debug!(%peer, "SIP connection accepted");
        let connected = TransportEvent::Connected {
            peer,
            origin: Origin::Inbound,
        };
        // One connection per address: a new one from the same address (a
        // peer that binds its connections to its SIP port) replaces the old.
        match self.connections.insert(peer, connection) {
            Some(replaced) => {
                self.pending.push_back(connected);
                Some(Received::Event(TransportEvent::Closed {
                    peer,
                    origin: replaced.origin,
                    reason: CloseReason::Replaced,
                }))
            }
            None => Some(Received::Event(connected)),
        }
    }

    /// Turns a connection report into what `recv` returns, if anything.
    fn reported(&mut self, report: Report) -> Option<Received> {
        let event = match report {
            Report::Message { peer, payload } => {
                return Some(Received::Message(Incoming {
                    payload,
                    source: peer,
                    transport: Transport::Tcp,
                }));
            }
            Report::Pong { peer } => TransportEvent::Pong { peer },
            Report::Connected { id, peer } => {
                self.current(id, peer)?;
                TransportEvent::Connected {
                    peer,
                    origin: Origin::Outbound,
                }
            }
            Report::Closed {
                id,
                peer,
                reason,
                unsent,
            } => {
                let origin = self.current(id, peer)?.origin;
                self.connections.remove(&peer);
                if unsent > 0 {
                    self.pending.push_back(TransportEvent::Failed {
                        destination: peer,
                        transport: Transport::Tcp,
                        error: io::ErrorKind::NotConnected,
                    });
                }
                TransportEvent::Closed {
                    peer,
                    origin,
                    reason,
                }
            }
            Report::DialFailed { id, peer, error } => {
                if self.current(id, peer).is_some() {
                    self.connections.remove(&peer);
                }
                TransportEvent::Failed {
                    destination: peer,
                    transport: Transport::Tcp,
                    error,
                }
            }
        };
        Some(Received::Event(event))
    }

    /// The connection to `peer` if it is still the one numbered `id`.
    fn current(&self, id: u64, peer: SocketAddr) -> Option<&Connection> {
        self.connections.get(&peer).filter(|c| c.id == id)
    }
}

/// One key per peer: an IPv4 peer seen on a dual-stack socket as
/// `::ffff:a.b.c.d` is the same peer as `a.b.c.d`.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// A TCP listener on `addr`. SO_REUSEADDR only lets us rebind while old
/// connections linger in TIME_WAIT after a restart; it does not let two
/// listeners share the port.
fn listen_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

#[cfg(test)]
mod tests;

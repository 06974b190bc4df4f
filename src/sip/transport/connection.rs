//! One TCP connection's task: dials (for outbound connections), reads and
//! frames (RFC 3261 §18.3), answers RFC 5626 §4.4.1 pings, writes what the
//! transport queues, closes when idle, and reports it all to the transport.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::CloseReason;
use crate::sip::framing::{Frame, KeepAliveRole, StreamFramer};

/// A write that cannot finish in this long means the peer stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const READ_CHUNK: usize = 16 * 1024;
/// An accepted connection must frame its first message (or keep-alive)
/// within this: a real client sends at once.
const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// RFC 5626 §4.4.1 pong.
const PONG: &[u8] = b"\r\n";

/// What a connection task tells the transport.
#[derive(Debug)]
pub(super) enum Report {
    Message {
        peer: SocketAddr,
        payload: Vec<u8>,
    },
    Connected {
        id: u64,
        peer: SocketAddr,
    },
    Closed {
        id: u64,
        peer: SocketAddr,
        reason: CloseReason,
        /// Messages still queued, lost.
        unsent: usize,
    },
    DialFailed {
        id: u64,
        peer: SocketAddr,
        error: io::ErrorKind,
    },
    Pong {
        peer: SocketAddr,
    },
}

/// Dials `peer`, then serves the connection; messages queued meanwhile are
/// sent once it is up.
pub(super) async fn dial(
    id: u64,
    peer: SocketAddr,
    connect_timeout: Duration,
    idle_timeout: Duration,
    queue: mpsc::Receiver<Vec<u8>>,
    reports: mpsc::Sender<Report>,
) {
    let error = match tokio::time::timeout(connect_timeout, TcpStream::connect(peer)).await {
        Ok(Ok(stream)) => {
            tracing::debug!(%peer, "SIP connection opened");
            if reports.send(Report::Connected { id, peer }).await.is_ok() {
                let link = Link {
                    id,
                    peer,
                    role: KeepAliveRole::Client,
                    idle_timeout: Some(idle_timeout),
                    queue,
                    reports,
                };
                link.serve(stream).await;
            }
            return;
        }
        Ok(Err(error)) => error.kind(),
        Err(_elapsed) => io::ErrorKind::TimedOut,
    };
    tracing::debug!(%peer, %error, "cannot open a SIP connection");
    // Err only when the transport is gone, and then nobody is listening.
    let _ = reports.send(Report::DialFailed { id, peer, error }).await;
}

/// A connection task's end of things.
pub(super) struct Link {
    pub(super) id: u64,
    pub(super) peer: SocketAddr,
    pub(super) role: KeepAliveRole,
    pub(super) idle_timeout: Option<Duration>,
    pub(super) queue: mpsc::Receiver<Vec<u8>>,
    pub(super) reports: mpsc::Sender<Report>,
}

/// How a connection's loop ended.
enum Ending {
    Closed(CloseReason),
    /// The transport dropped its end: nobody to report to.
    Abandoned,
}

impl Link {
    /// Reads and writes until the connection ends, then reports that.
    pub(super) async fn serve(mut self, mut stream: TcpStream) {
        // SIP messages are written whole; waiting to coalesce them only adds
        // latency to call setup.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(peer = %self.peer, %error, "cannot set TCP_NODELAY");
        }
        let reason = match self.exchange(&mut stream).await {
            Ending::Closed(reason) => reason,
            Ending::Abandoned => return,
        };
        match &reason {
            CloseReason::Framing(error) => {
                tracing::debug!(peer = %self.peer, %error, "closing a SIP connection that cannot be framed");
            }
            reason => tracing::debug!(peer = %self.peer, %reason, "SIP connection closed"),
        }
        self.queue.close();
        let mut unsent = 0;
        while self.queue.try_recv().is_ok() {
            unsent += 1;
        }
        let report = Report::Closed {
            id: self.id,
            peer: self.peer,
            reason,
            unsent,
        };
        // Err only when the transport is gone, and then nobody is listening.
        let _ = self.reports.send(report).await;
    }

    async fn exchange(&mut self, stream: &mut TcpStream) -> Ending {
        let mut framer = StreamFramer::new(self.role);
        let mut chunk = vec![0; READ_CHUNK];
        // Only whole frames (and our own sends) count as traffic: bytes
        // that never make a message, sent slowly, must not keep a
        // connection (and its buffer) alive. A peer that has framed nothing
        // yet gets a shorter time than an established one.
        let mut last_traffic = Instant::now();
        let mut framed_any = false;
        loop {
            let idle_deadline = self.idle_timeout.map(|idle| {
                let idle = if framed_any {
                    idle
                } else {
                    idle.min(FIRST_MESSAGE_TIMEOUT)
                };
                last_traffic + idle
            });
            tokio::select! {
                read = stream.read(&mut chunk) => {
                    let len = match read {
                        Ok(0) => return Ending::Closed(CloseReason::PeerClosed),
                        Ok(len) => len,
                        Err(error) => return Ending::Closed(CloseReason::Io(error.kind())),
                    };
                    framer.push(&chunk[..len]);
                    loop {
                        let frame = match framer.next_frame() {
                            Ok(Some(frame)) => frame,
                            Ok(None) => break,
                            Err(error) => return Ending::Closed(CloseReason::Framing(error)),
                        };
                        last_traffic = Instant::now();
                        framed_any = true;
                        let report = match frame {
                            Frame::Message(payload) => Report::Message { peer: self.peer, payload },
                            Frame::Ping => match write(stream, PONG).await {
                                Ok(()) => continue,
                                Err(reason) => return Ending::Closed(reason),
                            },
                            // Only a pong to our own ping means anything.
                            Frame::Pong if self.role == KeepAliveRole::Client => {
                                Report::Pong { peer: self.peer }
                            }
                            Frame::Pong => continue,
                        };
                        if self.reports.send(report).await.is_err() {
                            return Ending::Abandoned;
                        }
                    }
                }
                queued = self.queue.recv() => {
                    let Some(payload) = queued else {
                        return Ending::Abandoned;
                    };
                    if let Err(reason) = write(stream, &payload).await {
                        return Ending::Closed(reason);
                    }
                    last_traffic = Instant::now();
                }
                () = sleep_until(idle_deadline) => return Ending::Closed(CloseReason::Idle),
            }
        }
    }
}

async fn write(stream: &mut TcpStream, bytes: &[u8]) -> Result<(), CloseReason> {
    match tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(CloseReason::Io(error.kind())),
        Err(_elapsed) => Err(CloseReason::NotReading),
    }
}

/// Sleeps until `deadline`, or forever without one.
pub(super) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

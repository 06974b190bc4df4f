//! One media thread: a `mio::Poll` over its streams' sockets, a heap of
//! next-send instants, and the commands channel.
//!
//! Each turn: poll (for socket input and commands) until ~1 ms before the
//! earliest deadline, sleep the rest (epoll timeouts are whole milliseconds;
//! `nanosleep` is good to ~60 µs), then handle every slot due. Per packet
//! there is no allocation and no syscall: the packets of every slot due in
//! a turn are written into a [`SendBatch`] and handed to the kernel in one
//! io_uring submission (see `batch` for why not `sendmmsg`).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

use super::super::rtcp::{self, NtpTimestamp};
use super::super::rtp::{self, RtpHeader};
use super::batch::{PACKET_ROOM, SendBatch};
use super::icmp::{drain_icmp_errors, is_icmp_error, receive_icmp_errors};
use super::keys::KeyListener;
use super::liveness::{Liveness, Timeouts};
use super::playout::{Action, Playout};
use super::source_lock::{SourceLock, Verdict};
use super::stats::WorkerStats;
use super::{Control, MediaEvent, Shared, Staged, StreamId, StreamParams};
use crate::media::dtmf::{Key, KeyChannel};
use crate::media::ports::PortLease;

pub(super) const WAKER: Token = Token(usize::MAX);

/// Slots due this soon are sent now: 0.25 ms early is inaudible, and it
/// saves a sleep per packet when many streams are due close together.
const EARLY: Duration = Duration::from_micros(250);
/// Within this of a deadline, sleep rather than poll: epoll would round
/// the timeout up to the next millisecond.
const FINE: Duration = Duration::from_micros(1500);
/// Datagrams read from one socket per turn, so a flood cannot starve the
/// clock; the rest are read next turn.
const READS_PER_TURN: usize = 16;
/// Large enough for any RTP packet we send or receive (Opus tops out at
/// 1275 bytes a frame); bigger datagrams are truncated, and we only parse
/// their headers.
const DATAGRAM_MAX: usize = PACKET_ROOM;

pub(super) struct NewStream {
    pub params: StreamParams,
    pub programme: Staged,
}

pub(super) enum Command {
    Add(Box<NewStream>),
    Update {
        id: StreamId,
        remote_rtp: SocketAddr,
        remote_rtcp: SocketAddr,
        sending: bool,
    },
    Control {
        id: StreamId,
        control: Control,
    },
    Remove(StreamId),
    Shutdown,
}

struct Stream {
    id: StreamId,
    rtp: UdpSocket,
    rtcp: UdpSocket,
    /// Where RTP and RTCP go now: from SDP, or latched (symmetric RTP).
    remote_rtp: SocketAddr,
    remote_rtcp: SocketAddr,
    /// What the last SDP said, to tell a re-INVITE that moves the media
    /// from one that only changes direction.
    sdp_rtp: SocketAddr,
    sdp_rtcp: SocketAddr,
    playout: Playout,
    /// RFC 7022 random CNAME: `das-` and 12 hex digits.
    cname: [u8; 16],
    next_report: Instant,
    /// `None` when the call listens for no keys.
    keys: Option<Box<KeyListener>>,
    /// Strict RTP: whose packets are the caller's.
    lock: SourceLock,
    /// Whether the caller seems gone.
    liveness: Liveness,
    /// Logged the first stranger already (once per stream).
    stranger_logged: bool,
    /// Whether `remote_rtp` and `remote_rtcp` may be sent to at all.
    destination_ok: bool,
    /// Returns the port pair when the stream goes; declared last, so the
    /// sockets above are closed first.
    _lease: Option<PortLease>,
}

/// Only one host's unicast address, with a port, is ever sent to: never a
/// group, a broadcast or "nowhere" (`0.0.0.0` means hold).
fn may_send_to(destination: SocketAddr) -> bool {
    destination.port() != 0 && crate::sdp::is_one_host(destination.ip())
}

/// The address the SDP named, `None` for hold (`0.0.0.0`).
fn expected_source(remote_rtp: SocketAddr) -> Option<SocketAddr> {
    may_send_to(remote_rtp).then_some(remote_rtp)
}

impl Stream {
    /// Handles one RTP packet: dropped unless it is the caller's (strict
    /// RTP); then following the caller's source (symmetric RTP, for NAT)
    /// and key presses (pushed onto `keys`).
    fn handle_rtp(
        &mut self,
        header: &RtpHeader<'_>,
        from: SocketAddr,
        now: Instant,
        stats: &WorkerStats,
        keys: &mut Vec<(Key, KeyChannel)>,
    ) {
        match self.lock.handle(from, header.ssrc.0, header.sequence, now) {
            Verdict::Drop => {
                WorkerStats::count(&stats.strangers);
                if !self.stranger_logged {
                    self.stranger_logged = true;
                    tracing::info!(stream = self.id.0, %from, caller = %self.lock.locked_source().map_or("not yet known".to_owned(), |a| a.to_string()), "RTP from someone not the caller ignored");
                }
                return;
            }
            Verdict::Accept { moved } => {
                if moved && from != self.remote_rtp {
                    tracing::debug!(stream = self.id.0, %from, sdp = %self.remote_rtp, "following the caller's rtp source");
                    self.remote_rtp = from;
                    if let Some(port) = from.port().checked_add(1) {
                        self.remote_rtcp = SocketAddr::new(from.ip(), port);
                    }
                    self.destination_ok = may_send_to(from);
                    WorkerStats::count(&stats.latches);
                }
            }
        }
        self.liveness.handle_heard(now);
        if let Some(listener) = &mut self.keys {
            listener.handle(header, keys);
        }
    }
}

pub(super) struct Worker {
    index: usize,
    poll: Poll,
    commands: Receiver<Command>,
    shared: Arc<Shared>,
    stats: Arc<WorkerStats>,
    events: tokio::sync::mpsc::UnboundedSender<MediaEvent>,
    /// Streams by slot; a slot's sockets are tokens `2·slot` (RTP) and
    /// `2·slot + 1` (RTCP).
    slots: Vec<Option<Stream>>,
    /// Bumped when a slot is freed, so stale heap entries are skipped.
    generations: Vec<u32>,
    free: Vec<usize>,
    ids: HashMap<StreamId, usize>,
    timers: BinaryHeap<Reverse<(Instant, usize, u32)>>,
    /// Sockets with datagrams possibly still queued (epoll is
    /// edge-triggered: we must read until `WouldBlock`).
    readable: Vec<Token>,
    frame: Vec<u8>,
    /// RTCP packets are written here and sent at once (a few per stream
    /// a minute); RTP goes through `batch`.
    packet: Box<[u8]>,
    datagram: Box<[u8]>,
    /// Keys heard in one datagram (scratch).
    keys: Vec<(Key, KeyChannel)>,
    /// This turn's RTP packets, sent together.
    batch: SendBatch,
}

impl Worker {
    pub fn new(
        index: usize,
        poll: Poll,
        commands: Receiver<Command>,
        shared: Arc<Shared>,
        events: tokio::sync::mpsc::UnboundedSender<MediaEvent>,
    ) -> Worker {
        Worker {
            index,
            poll,
            commands,
            stats: shared.workers[index].clone(),
            shared,
            events,
            slots: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            ids: HashMap::new(),
            timers: BinaryHeap::new(),
            readable: Vec::new(),
            frame: Vec::with_capacity(DATAGRAM_MAX),
            packet: vec![0; DATAGRAM_MAX].into_boxed_slice(),
            datagram: vec![0; DATAGRAM_MAX].into_boxed_slice(),
            keys: Vec::new(),
            batch: SendBatch::new(),
        }
    }

    pub fn run(mut self) {
        crate::media::priority::raise_this_thread(self.index == 0);
        if self.index == 0 {
            tracing::debug!(
                io_uring = self.batch.uses_io_uring(),
                "media threads send each turn's RTP in one batch"
            );
        }
        let mut events = Events::with_capacity(256);
        loop {
            let timeout = self.poll_timeout(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != io::ErrorKind::Interrupted
            {
                tracing::error!(worker = self.index, error = %e, "media poll failed; stopping");
                self.shutdown();
                return;
            }
            let mut stop = false;
            for event in events.iter() {
                if event.token() == WAKER {
                    stop |= self.handle_commands();
                } else {
                    // A token still pending from last turn may appear twice;
                    // the second read just finds `WouldBlock`. Cheaper than
                    // a search per event with thousands of callers sending.
                    self.readable.push(event.token());
                }
            }
            if stop {
                self.shutdown();
                return;
            }
            self.read_sockets();
            self.sleep_until_due();
            self.handle_due();
        }
    }

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.readable.is_empty() {
            return Some(Duration::ZERO);
        }
        let Reverse((due, _, _)) = self.timers.peek()?;
        let left = due.saturating_duration_since(now);
        if left <= FINE {
            Some(Duration::ZERO)
        } else {
            // Rounded up to whole ms by mio, this still wakes before `due`.
            Some(left - Duration::from_millis(1))
        }
    }

    fn sleep_until_due(&self) {
        let Some(Reverse((due, _, _))) = self.timers.peek() else {
            return;
        };
        let left = due.saturating_duration_since(Instant::now());
        if left > EARLY && left <= FINE && self.readable.is_empty() {
            std::thread::sleep(left);
        }
    }

    fn handle_due(&mut self) {
        loop {
            let now = Instant::now();
            let Some(&Reverse((due, slot, generation))) = self.timers.peek() else {
                break;
            };
            if due > now + EARLY {
                break;
            }
            self.timers.pop();
            if self.generations[slot] == generation && self.slots[slot].is_some() {
                self.handle_slot(slot, now);
            }
        }
        self.flush_sends();
    }

    /// Sends the batched packets; a failed send is counted, and an ICMP
    /// error tells its stream's liveness that nobody may be listening.
    fn flush_sends(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let now = Instant::now();
        let (sent, failures) = self.batch.flush();
        self.stats
            .packets_sent
            .fetch_add(sent as u64, Ordering::Relaxed);
        for failure in failures {
            WorkerStats::count(&self.stats.send_errors);
            if is_icmp_error(&failure.error)
                && let Some(stream) = self.slots[failure.slot].as_mut()
            {
                drain_icmp_errors(&stream.rtp);
                stream.liveness.handle_icmp_error(now);
            }
        }
    }

    fn handle_slot(&mut self, slot: usize, now: Instant) {
        if self.batch.is_full() {
            self.flush_sends();
        }
        let stream = self.slots[slot]
            .as_mut()
            .expect("handle_due checked the slot is occupied");
        let tick = stream
            .playout
            .handle_timeout(now, &mut self.frame, self.batch.next_buffer());
        if tick.caught_up {
            WorkerStats::count(&self.stats.catch_ups);
        }
        if tick.underrun {
            WorkerStats::count(&self.stats.underruns);
        }
        if let Some(ended) = tick.ended {
            let _ = self.events.send(MediaEvent::Played {
                id: stream.id,
                tag: ended.tag,
                failed: ended.failed,
            });
        }
        match tick.action {
            Action::Finished => {
                self.finish(slot, true);
                return;
            }
            Action::Send { len } if stream.destination_ok => {
                self.stats.record_lateness(tick.lateness);
                // Sent with the turn's other packets; a full socket buffer
                // or an unreachable caller loses the packet, the stream
                // goes on.
                self.batch
                    .commit(slot, stream.rtp.as_raw_fd(), stream.remote_rtp, len);
                if now >= stream.next_report {
                    send_report(stream, false, now, &mut self.packet, &self.stats);
                    stream.next_report = now + report_interval(self.shared.config.report_interval);
                }
            }
            Action::Send { .. } | Action::Silent | Action::Waiting => {}
        }
        let limits = Timeouts {
            hold: self.shared.config.hold_timeout,
            unreachable: self.shared.config.unreachable_timeout,
        };
        if let Some(reason) = stream.liveness.poll_timeout(now, limits) {
            let _ = self.events.send(MediaEvent::Timeout {
                id: stream.id,
                reason,
            });
        }
        let wake = stream.playout.next_wake();
        self.timers
            .push(Reverse((wake, slot, self.generations[slot])));
    }

    /// Reads queued datagrams, up to a budget per socket per turn.
    fn read_sockets(&mut self) {
        let mut pending = std::mem::take(&mut self.readable);
        pending.retain(|&token| {
            let slot = token.0 / 2;
            let Some(Some(stream)) = self.slots.get_mut(slot) else {
                return false;
            };
            let on_rtp_socket = token.0 % 2 == 0;
            for _ in 0..READS_PER_TURN {
                let socket = if on_rtp_socket {
                    &stream.rtp
                } else {
                    &stream.rtcp
                };
                let now = Instant::now();
                let (len, from) = match socket.recv_from(&mut self.datagram) {
                    Ok(received) => received,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                    // The ICMP errors the RTP socket asked for (IP_RECVERR):
                    // the caller's address answers that nobody is there.
                    Err(e) if is_icmp_error(&e) => {
                        drain_icmp_errors(socket);
                        stream.liveness.handle_icmp_error(now);
                        continue;
                    }
                    Err(_) => continue,
                };
                let datagram = &self.datagram[..len];
                // RTCP from the caller (RR, BYE) on either port is not
                // acted on (the call core learns of hang-ups from SIP), but
                // it shows the caller is there.
                if !on_rtp_socket || rtcp::is_rtcp(datagram) {
                    if stream.lock.is_caller_host(from) {
                        stream.liveness.handle_heard(now);
                    }
                    continue;
                }
                if let Ok(header) = rtp::parse(datagram) {
                    stream.handle_rtp(&header, from, now, &self.stats, &mut self.keys);
                    for (key, channel) in self.keys.drain(..) {
                        let id = stream.id;
                        let _ = self.events.send(MediaEvent::Key { id, key, channel });
                    }
                }
            }
            true
        });
        self.readable = pending;
    }

    /// Drains the commands; true on shutdown.
    fn handle_commands(&mut self) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(Command::Add(stream)) => self.add(*stream),
                Ok(Command::Update {
                    id,
                    remote_rtp,
                    remote_rtcp,
                    sending,
                }) => {
                    if let Some(stream) = self.ids.get(&id).and_then(|&s| self.slots[s].as_mut()) {
                        // New SDP addresses replace a latched source (the
                        // caller's next RTP latches afresh if it differs);
                        // the same ones, as in a hold re-INVITE from behind
                        // NAT, keep it.
                        let now = Instant::now();
                        if (remote_rtp, remote_rtcp) != (stream.sdp_rtp, stream.sdp_rtcp) {
                            stream.sdp_rtp = remote_rtp;
                            stream.sdp_rtcp = remote_rtcp;
                            stream.remote_rtp = remote_rtp;
                            stream.remote_rtcp = remote_rtcp;
                            stream.destination_ok =
                                may_send_to(remote_rtp) && may_send_to(remote_rtcp);
                            // New media, new caller source to learn.
                            stream.lock.reset(expected_source(remote_rtp), now);
                        }
                        stream.playout.set_sending(sending);
                        stream.liveness.handle_held(!sending, now);
                    }
                }
                Ok(Command::Control { id, control }) => {
                    if let Some(stream) = self.ids.get(&id).and_then(|&s| self.slots[s].as_mut()) {
                        let playout = &mut stream.playout;
                        match control {
                            Control::Play { tag, programme } => playout.play(programme, tag),
                            Control::SeekBy(frames) => playout.seek(Some(frames)),
                            Control::Restart => playout.seek(None),
                            Control::Pause => playout.set_paused(true),
                            Control::Resume => playout.set_paused(false),
                        }
                    }
                }
                Ok(Command::Remove(id)) => {
                    if let Some(&slot) = self.ids.get(&id) {
                        self.finish(slot, false);
                    }
                }
                Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => return true,
                Err(TryRecvError::Empty) => return false,
            }
        }
    }

    fn add(&mut self, new: NewStream) {
        let NewStream { params, programme } = new;
        let id = params.id;
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.generations.push(0);
            self.slots.len() - 1
        });
        let now = Instant::now();
        match self.register(slot, params, programme, now) {
            Ok(stream) => {
                self.slots[slot] = Some(stream);
                self.ids.insert(id, slot);
                self.timers
                    .push(Reverse((now, slot, self.generations[slot])));
            }
            Err(e) => {
                tracing::error!(stream = id.0, error = %e, "cannot register media sockets");
                self.free.push(slot);
                self.release(id);
                let _ = self.events.send(MediaEvent::Finished { id });
            }
        }
    }

    fn register(
        &mut self,
        slot: usize,
        params: StreamParams,
        programme: Staged,
        now: Instant,
    ) -> io::Result<Stream> {
        let StreamParams {
            id,
            sockets,
            remote_rtp,
            remote_rtcp,
            codec,
            payload_type,
            sending,
            steering,
            telephone_event,
            keys,
        } = params;
        sockets.rtp.set_nonblocking(true)?;
        sockets.rtcp.set_nonblocking(true)?;
        let lease = sockets.lease;
        if let Err(error) = receive_icmp_errors(&sockets.rtp) {
            tracing::debug!(%error, "cannot ask for ICMP errors on an RTP socket");
        }
        let mut rtp = UdpSocket::from_std(sockets.rtp);
        let mut rtcp = UdpSocket::from_std(sockets.rtcp);
        let registry = self.poll.registry();
        registry.register(&mut rtp, Token(2 * slot), Interest::READABLE)?;
        registry.register(&mut rtcp, Token(2 * slot + 1), Interest::READABLE)?;
        let packetizer = rtp::Packetizer::new(payload_type, codec.samples_per_frame());
        let interval = self.shared.config.report_interval;
        let mut playout = Playout::new(
            programme,
            packetizer,
            codec.clock_rate_hz(),
            sending,
            self.shared.config.catch_up_window,
            now,
        );
        if let Some(steering) = steering {
            playout = playout.with_comfort(steering.comfort, steering.tag);
        }
        Ok(Stream {
            id,
            rtp,
            rtcp,
            remote_rtp,
            remote_rtcp,
            sdp_rtp: remote_rtp,
            sdp_rtcp: remote_rtcp,
            playout,
            keys: KeyListener::new(keys, codec, payload_type, telephone_event).map(Box::new),
            lock: SourceLock::new(expected_source(remote_rtp), now),
            liveness: Liveness::new(!sending, now),
            stranger_logged: false,
            destination_ok: may_send_to(remote_rtp) && may_send_to(remote_rtcp),
            _lease: lease,
            cname: random_cname(),
            // RFC 3550 §6.2: the first report after half an interval.
            next_report: now + report_interval(interval) / 2,
        })
    }

    /// Ends a stream: BYE if it ever sent, sockets closed, slot freed.
    fn finish(&mut self, slot: usize, emit: bool) {
        // Packets still batched for this stream's socket go before it
        // closes (the fd number could otherwise be another socket's).
        self.flush_sends();
        let Some(mut stream) = self.slots[slot].take() else {
            return;
        };
        self.generations[slot] = self.generations[slot].wrapping_add(1);
        self.free.push(slot);
        self.ids.remove(&stream.id);
        // RFC 3550 §6.3.7: no BYE from a participant that never sent.
        if stream.playout.packetizer().packets_sent() > 0 {
            send_report(
                &mut stream,
                true,
                Instant::now(),
                &mut self.packet,
                &self.stats,
            );
        }
        let registry = self.poll.registry();
        // Closing the sockets removes them from epoll anyway.
        let _ = registry.deregister(&mut stream.rtp);
        let _ = registry.deregister(&mut stream.rtcp);
        if emit {
            self.release(stream.id);
            let _ = self.events.send(MediaEvent::Finished { id: stream.id });
        } else {
            self.stats.streams.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Forgets a stream the engine handle still routes to this worker.
    fn release(&self, id: StreamId) {
        let mut routes = self.shared.routes();
        if routes.get(&id) == Some(&self.index) {
            routes.remove(&id);
        }
        drop(routes);
        self.stats.streams.fetch_sub(1, Ordering::Relaxed);
    }

    fn shutdown(&mut self) {
        for slot in 0..self.slots.len() {
            if let Some(id) = self.slots[slot].as_ref().map(|s| s.id) {
                self.finish(slot, false);
                self.shared.routes().remove(&id);
            }
        }
    }
}

/// Sends SR + SDES (+ BYE) to the caller's RTCP address.
fn send_report(stream: &mut Stream, bye: bool, now: Instant, buf: &mut [u8], stats: &WorkerStats) {
    if !stream.destination_ok {
        return;
    }
    let info = stream.playout.sender_info(now, NtpTimestamp::now());
    let ssrc = stream.playout.packetizer().ssrc();
    match rtcp::write_compound(ssrc, &info, &stream.cname, bye, buf) {
        Ok(len) => {
            if stream
                .rtcp
                .send_to(&buf[..len], stream.remote_rtcp)
                .is_err()
            {
                WorkerStats::count(&stats.send_errors);
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot build rtcp report"),
    }
}

/// The mean interval randomised to 0.5–1.5 times (RFC 3550 §6.3.1).
fn report_interval(mean: Duration) -> Duration {
    mean.mul_f64(rand::random_range(0.5..1.5))
}

fn random_cname() -> [u8; 16] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut cname = *b"das-000000000000";
    let bits: u64 = rand::random();
    for (i, c) in cname[4..].iter_mut().enumerate() {
        *c = HEX[((bits >> (4 * i)) & 0xf) as usize];
    }
    cname
}

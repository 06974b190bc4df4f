//! The RTP packets one media thread sends in a turn, handed to the kernel
//! together: one `io_uring_enter` for every call whose slot is due, instead
//! of one `sendto` each.
//!
//! Why io_uring and not `sendmmsg`: `sendmmsg` sends many datagrams on
//! *one* socket, but every call here has its own RTP socket, so each
//! caller's packets come from the port its SDP named (RFC 3264 §5.1;
//! symmetric RTP, RFC 4961), which strict RTP and NAT latching depend on.
//! Sharing one socket among calls to use `sendmmsg` would break that.
//! io_uring batches sends across sockets. Where io_uring is refused
//! (seccomp in containers, `kernel.io_uring_disabled`), every packet goes
//! by its own `sendto`, as before.
//!
//! Packets are written straight into the batch's arena (no copy, no
//! allocation per packet); the message headers are built at the flush and
//! live until the kernel has completed every send. Sends never wait: a
//! full socket buffer fails the send (`MSG_DONTWAIT`), the packet is lost
//! and the stream goes on.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use io_uring::{IoUring, opcode, types};

/// Packets per batch: a turn with more due flushes as it goes.
pub(super) const BATCH: usize = 256;
/// Room for one packet (the worker's datagram size).
pub(super) const PACKET_ROOM: usize = 2048;

/// A send that failed, for the stream in `slot`.
#[derive(Debug)]
pub(super) struct Failure {
    pub slot: usize,
    pub error: io::Error,
}

struct Queued {
    slot: usize,
    fd: RawFd,
    to: SocketAddr,
    len: usize,
}

/// How the batch reaches the kernel.
enum Sender {
    Ring(Box<IoUring>),
    /// One `sendto` per packet.
    Plain,
}

pub(super) struct SendBatch {
    arena: Box<[u8]>,
    queued: Vec<Queued>,
    addresses: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::msghdr>,
    sender: Sender,
    failures: Vec<Failure>,
}

// The raw pointers inside the scratch headers are rebuilt at every flush
// and point only into the batch itself.
unsafe impl Send for SendBatch {}

impl SendBatch {
    /// A batch through io_uring when the kernel allows it.
    pub fn new() -> SendBatch {
        let sender = match IoUring::new(BATCH as u32) {
            Ok(ring) => Sender::Ring(Box::new(ring)),
            Err(error) => {
                tracing::debug!(%error, "io_uring unavailable; RTP is sent packet by packet");
                Sender::Plain
            }
        };
        SendBatch::with_sender(sender)
    }

    /// A batch that sends packet by packet (`sendmsg`).
    #[cfg(test)]
    pub fn plain() -> SendBatch {
        SendBatch::with_sender(Sender::Plain)
    }

    fn with_sender(sender: Sender) -> SendBatch {
        SendBatch {
            arena: vec![0; BATCH * PACKET_ROOM].into_boxed_slice(),
            queued: Vec::with_capacity(BATCH),
            addresses: (0..BATCH).map(|_| zeroed()).collect(),
            iovecs: (0..BATCH).map(|_| zeroed()).collect(),
            headers: (0..BATCH).map(|_| zeroed()).collect(),
            sender,
            failures: Vec::new(),
        }
    }

    pub fn uses_io_uring(&self) -> bool {
        matches!(self.sender, Sender::Ring(_))
    }

    pub fn is_full(&self) -> bool {
        self.queued.len() == BATCH
    }

    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// Where to write the next packet. Call [`SendBatch::flush`] first
    /// when the batch is full.
    pub fn next_buffer(&mut self) -> &mut [u8] {
        let start = self.queued.len().min(BATCH - 1) * PACKET_ROOM;
        &mut self.arena[start..start + PACKET_ROOM]
    }

    /// Queues the `len` bytes just written at [`SendBatch::next_buffer`],
    /// to go from socket `fd` to `to`.
    pub fn commit(&mut self, slot: usize, fd: RawFd, to: SocketAddr, len: usize) {
        debug_assert!(!self.is_full(), "flush a full batch before writing");
        self.queued.push(Queued {
            slot,
            fd,
            to,
            len: len.min(PACKET_ROOM),
        });
    }

    /// Sends every queued packet; returns how many went, and the failures
    /// (valid until the next flush). The sockets must still be open.
    pub fn flush(&mut self) -> (usize, &[Failure]) {
        self.failures.clear();
        let count = self.queued.len();
        if count == 0 {
            return (0, &self.failures);
        }
        for (index, queued) in self.queued.iter().enumerate() {
            let address_len = write_sockaddr(&queued.to, &mut self.addresses[index]);
            self.iovecs[index] = libc::iovec {
                iov_base: self.arena[index * PACKET_ROOM..].as_mut_ptr().cast(),
                iov_len: queued.len,
            };
            let header = &mut self.headers[index];
            header.msg_name = (&raw mut self.addresses[index]).cast();
            header.msg_namelen = address_len;
            header.msg_iov = &raw mut self.iovecs[index];
            header.msg_iovlen = 1;
            header.msg_control = std::ptr::null_mut();
            header.msg_controllen = 0;
            header.msg_flags = 0;
        }
        let sent = match &mut self.sender {
            Sender::Ring(ring) => {
                match send_on_ring(ring, &self.queued, &self.headers, &mut self.failures) {
                    Ok(sent) => sent,
                    Err(error) => {
                        // The ring itself failed (not one send): carry on
                        // without it rather than lose every packet.
                        tracing::warn!(%error, "io_uring failed; RTP is sent packet by packet from now on");
                        self.sender = Sender::Plain;
                        self.failures.clear();
                        send_plain(&self.queued, &self.headers, &mut self.failures)
                    }
                }
            }
            Sender::Plain => send_plain(&self.queued, &self.headers, &mut self.failures),
        };
        self.queued.clear();
        (sent, &self.failures)
    }
}

/// An all-zero C struct.
fn zeroed<T: Zeroable>() -> T {
    // SAFETY: `Zeroable` is implemented only for C structs of integers and
    // raw pointers, for which all-zero is valid (null, zero length).
    unsafe { std::mem::zeroed() }
}

/// C structs whose all-zero value is valid.
trait Zeroable {}
impl Zeroable for libc::sockaddr_storage {}
impl Zeroable for libc::iovec {}
impl Zeroable for libc::msghdr {}

/// One submission for the whole batch; waits only for sends the kernel
/// could not finish inline (never for buffer space: `MSG_DONTWAIT`).
fn send_on_ring(
    ring: &mut IoUring,
    queued: &[Queued],
    headers: &[libc::msghdr],
    failures: &mut Vec<Failure>,
) -> io::Result<usize> {
    {
        let mut submission = ring.submission();
        for (index, queued) in queued.iter().enumerate() {
            let entry = opcode::SendMsg::new(types::Fd(queued.fd), &raw const headers[index])
                .flags(libc::MSG_DONTWAIT as u32)
                .build()
                .user_data(index as u64);
            // SAFETY: the header, its iovec, address and packet bytes live
            // in the batch, untouched until every completion is reaped
            // below; the fd is an open socket of a live stream.
            unsafe { submission.push(&entry) }
                .map_err(|_| io::Error::other("submission queue full"))?;
        }
    }
    let mut completed = 0;
    let mut sent = 0;
    while completed < queued.len() {
        match ring.submit_and_wait(queued.len() - completed) {
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        }
        for completion in ring.completion() {
            completed += 1;
            let index = completion.user_data() as usize;
            if completion.result() >= 0 {
                sent += 1;
            } else if let Some(queued) = queued.get(index) {
                failures.push(Failure {
                    slot: queued.slot,
                    error: io::Error::from_raw_os_error(-completion.result()),
                });
            }
        }
    }
    Ok(sent)
}

fn send_plain(queued: &[Queued], headers: &[libc::msghdr], failures: &mut Vec<Failure>) -> usize {
    let mut sent = 0;
    for (index, queued) in queued.iter().enumerate() {
        // SAFETY: the header points at this batch's address, iovec and
        // packet, all initialised above.
        let result = unsafe { libc::sendmsg(queued.fd, &headers[index], libc::MSG_DONTWAIT) };
        if result >= 0 {
            sent += 1;
        } else {
            failures.push(Failure {
                slot: queued.slot,
                error: io::Error::last_os_error(),
            });
        }
    }
    sent
}

/// `address` as a C socket address in `out`; returns its length.
fn write_sockaddr(address: &SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match address {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for
            // sockaddr_in.
            unsafe { std::ptr::write((out as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { std::ptr::write((out as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    use super::*;

    /// Packets from three senders to two receivers, `rounds` times, through
    /// `batch`: each arrives whole, from its own sender's port.
    fn sends_across_sockets(mut batch: SendBatch, rounds: usize) {
        let receivers: Vec<UdpSocket> = (0..2)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        for receiver in &receivers {
            receiver
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
        }
        let senders: Vec<UdpSocket> = (0..3)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let mut expected = Vec::new();
        for round in 0..rounds {
            for (slot, sender) in senders.iter().enumerate() {
                if batch.is_full() {
                    let (_, failures) = batch.flush();
                    assert!(failures.is_empty(), "{failures:?}");
                }
                let to = receivers[slot % 2].local_addr().unwrap();
                let payload = [slot as u8, round as u8, 0xAB];
                batch.next_buffer()[..3].copy_from_slice(&payload);
                batch.commit(slot, sender.as_raw_fd(), to, 3);
                expected.push((slot % 2, sender.local_addr().unwrap(), payload));
            }
        }
        let (sent, failures) = batch.flush();
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(sent, (3 * rounds) % BATCH);
        let mut buf = [0u8; 64];
        for (receiver, from, payload) in expected {
            let (len, source) = receivers[receiver].recv_from(&mut buf).unwrap();
            assert_eq!(source, from, "each packet leaves from its call's own port");
            assert_eq!(&buf[..len], payload);
        }
    }

    #[test]
    fn a_batch_goes_out_from_each_calls_own_socket() {
        let batch = SendBatch::new();
        eprintln!("io_uring in use: {}", batch.uses_io_uring());
        sends_across_sockets(batch, 3);
    }

    #[test]
    fn packet_by_packet_when_io_uring_is_refused() {
        sends_across_sockets(SendBatch::plain(), 3);
    }

    #[test]
    fn more_than_a_batch_flushes_as_it_goes() {
        sends_across_sockets(SendBatch::new(), BATCH / 3 + 5);
    }

    #[test]
    fn a_failed_send_names_its_stream_and_the_others_still_go() {
        for mut batch in [SendBatch::new(), SendBatch::plain()] {
            let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
            receiver
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            let v4 = UdpSocket::bind("127.0.0.1:0").unwrap();
            // An IPv6 destination from an IPv4 socket cannot be sent to.
            batch.next_buffer()[0] = 1;
            batch.commit(4, v4.as_raw_fd(), "[::1]:9".parse().unwrap(), 1);
            batch.next_buffer()[0] = 2;
            batch.commit(5, v4.as_raw_fd(), receiver.local_addr().unwrap(), 1);
            let (sent, failures) = batch.flush();
            assert_eq!(sent, 1);
            assert_eq!(failures.len(), 1);
            assert_eq!(failures[0].slot, 4);
            let mut buf = [0u8; 8];
            let (len, _) = receiver.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..len], [2]);
        }
    }
}

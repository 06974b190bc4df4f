//! ICMP errors on a stream's RTP socket: how the engine learns that a
//! caller's address has nobody there. On Linux an unconnected UDP socket is
//! told nothing of them unless it asks (`IP_RECVERR`); then each error is
//! reported once by the next receive or send, and queued on the socket's
//! error queue, which must be drained.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

/// `IP_RECVERR` / `IPV6_RECVERR`: report ICMP errors for what this socket
/// sends (RFC 1122 §4.1.3.3 leaves it to the application).
pub(super) fn receive_icmp_errors(socket: &std::net::UdpSocket) -> io::Result<()> {
    let (level, name) = match socket.local_addr()? {
        SocketAddr::V4(_) => (libc::SOL_IP, libc::IP_RECVERR),
        SocketAddr::V6(_) => (libc::SOL_IPV6, libc::IPV6_RECVERR),
    };
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor and a c_int option of its size.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Takes the ICMP errors queued on a socket with `IP_RECVERR` (their
/// content is not needed: one socket talks to one caller), so the queue
/// does not fill; returns how many there were.
pub(super) fn drain_icmp_errors(socket: &impl AsRawFd) -> usize {
    let mut drained = 0;
    // Bounded: the queue holds at most a socket buffer's worth.
    while drained < 64 {
        let mut buf = [0u8; 64];
        let mut control = [0u8; 256];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: msghdr is plain data; zeroed is a valid empty header.
        let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
        header.msg_iov = &mut iov;
        header.msg_iovlen = 1;
        header.msg_control = control.as_mut_ptr().cast();
        header.msg_controllen = control.len() as _;
        // SAFETY: the header points at buffers that outlive the call.
        let read = unsafe {
            libc::recvmsg(
                socket.as_raw_fd(),
                &mut header,
                libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
            )
        };
        if read < 0 {
            break;
        }
        drained += 1;
    }
    drained
}

/// An error that means an ICMP message came back for what was sent.
pub(super) fn is_icmp_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}

//! RTP/RTCP port pairs from the configured range: RTP on an even port and
//! RTCP on the next odd one (RFC 3550 §11; RFC 3264 §5.1 lets SDP name only
//! the RTP port, implying RTCP at +1).
//!
//! The cursor rotates through the range, so a port freed by a call that just
//! ended is not handed to the next call at once: late packets of the old call
//! would otherwise reach the new one. Ports another process holds are skipped
//! (std does not set `SO_REUSEADDR`, so a bind to a taken port fails rather
//! than sharing it).

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Mutex;

use crate::config::PortRange;

/// A bound pair, both non-blocking, ready for the media engine.
#[derive(Debug)]
pub struct RtpSockets {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    /// The RTP port, for the SDP `m=` line; RTCP is `port + 1`.
    pub port: u16,
}

#[derive(Debug)]
pub struct PortAllocator {
    ip: IpAddr,
    /// The even RTP ports that have an odd partner inside the range.
    first: u32,
    pairs: u32,
    /// Index of the pair to try next.
    cursor: Mutex<u32>,
}

impl PortAllocator {
    pub fn new(ip: IpAddr, range: PortRange) -> Self {
        // Port 0 would mean "any port" to bind: start at 2 at the lowest.
        // In u32: rounding 65535 up to even must not overflow.
        let first = u32::from(range.first.max(2)).next_multiple_of(2);
        let last = u32::from(range.last);
        let pairs = if last > first {
            (last - first).div_ceil(2)
        } else {
            0
        };
        PortAllocator {
            ip,
            first,
            pairs,
            cursor: Mutex::new(0),
        }
    }

    /// How many pairs the range holds, free or not.
    pub fn capacity(&self) -> usize {
        self.pairs as usize
    }

    /// Binds the next free pair after the cursor. Fails with `AddrInUse`
    /// when every pair in the range is taken, or with the bind error when
    /// binding cannot work at all (the address is not local, permission).
    pub fn allocate(&self) -> io::Result<RtpSockets> {
        // Hold the lock across the binds so two calls never race for the
        // same pair; a bind is a few µs and calls arrive far slower.
        let mut cursor = self
            .cursor
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for step in 0..self.pairs {
            let index = (*cursor + step) % self.pairs;
            let port = u16::try_from(self.first + 2 * index)
                .expect("pairs only counts ports up to the range's u16 end");
            match self.bind_pair(port) {
                Ok(sockets) => {
                    *cursor = (index + 1) % self.pairs;
                    return Ok(sockets);
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "no free rtp port pair on {} in {}-{}",
                self.ip,
                self.first,
                (self.first + 2 * self.pairs).saturating_sub(1)
            ),
        ))
    }

    fn bind_pair(&self, port: u16) -> io::Result<RtpSockets> {
        let rtp = UdpSocket::bind(SocketAddr::new(self.ip, port))?;
        // Dropping `rtp` on a failed RTCP bind frees the even port again.
        let rtcp = UdpSocket::bind(SocketAddr::new(self.ip, port + 1))?;
        rtp.set_nonblocking(true)?;
        rtcp.set_nonblocking(true)?;
        Ok(RtpSockets { rtp, rtcp, port })
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    /// A range of `pairs` pairs no other socket holds, found by probing from
    /// a base that differs per test so parallel tests do not collide.
    fn free_range(base: u16, pairs: u16) -> PortRange {
        let mut first = base;
        loop {
            let all_free =
                (first..first + 2 * pairs).all(|p| UdpSocket::bind((LOCALHOST, p)).is_ok());
            if all_free {
                return PortRange {
                    first,
                    last: first + 2 * pairs - 1,
                };
            }
            first += 2 * pairs;
        }
    }

    #[test]
    fn pairs_are_even_and_odd_and_rotate_before_reuse() {
        let range = free_range(41_000, 3);
        let ports = PortAllocator::new(LOCALHOST, range);
        assert_eq!(ports.capacity(), 3);
        let a = ports.allocate().unwrap();
        assert_eq!(a.port, range.first);
        assert_eq!(a.rtp.local_addr().unwrap().port(), a.port);
        assert_eq!(a.rtcp.local_addr().unwrap().port(), a.port + 1);
        let first = a.port;
        drop(a);
        // The freed pair is not handed out again straight away.
        let b = ports.allocate().unwrap();
        assert_eq!(b.port, first + 2);
        let c = ports.allocate().unwrap();
        assert_eq!(c.port, first + 4);
        // Wrapped round: the first pair is free again.
        let d = ports.allocate().unwrap();
        assert_eq!(d.port, first);
        let err = ports.allocate().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        drop(c);
        assert_eq!(ports.allocate().unwrap().port, first + 4);
    }

    #[test]
    fn skips_ports_taken_by_others() {
        let range = free_range(42_000, 2);
        // Someone else holds the first pair's RTCP port.
        let _squatter = UdpSocket::bind((LOCALHOST, range.first + 1)).unwrap();
        let ports = PortAllocator::new(LOCALHOST, range);
        let a = ports.allocate().unwrap();
        assert_eq!(a.port, range.first + 2);
        assert!(ports.allocate().is_err());
    }

    #[test]
    fn odd_bounds_and_empty_ranges() {
        // 40001..40006 holds even ports 40002 and 40004 with partners.
        let ports = PortAllocator::new(
            LOCALHOST,
            PortRange {
                first: 40_001,
                last: 40_006,
            },
        );
        assert_eq!(ports.capacity(), 2);
        // 40002 has no partner inside 40000..=40002.
        let ports = PortAllocator::new(
            LOCALHOST,
            PortRange {
                first: 40_000,
                last: 40_002,
            },
        );
        assert_eq!(ports.capacity(), 1);
        let empty = PortAllocator::new(LOCALHOST, PortRange { first: 5, last: 4 });
        assert_eq!(empty.capacity(), 0);
        assert_eq!(
            empty.allocate().unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        );
        let top = PortAllocator::new(
            LOCALHOST,
            PortRange {
                first: 65_535,
                last: 65_535,
            },
        );
        assert_eq!(top.capacity(), 0);
    }

    #[test]
    fn unusable_address_is_an_error_not_a_spin() {
        // TEST-NET-1 is never a local address.
        let ports = PortAllocator::new(
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            PortRange {
                first: 40_000,
                last: 40_099,
            },
        );
        let err = ports.allocate().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrNotAvailable);
    }
}

//! RTP/RTCP port pairs from the configured range: RTP on an even port and
//! RTCP on the next odd one (RFC 3550 §11; RFC 3264 §5.1 lets SDP name only
//! the RTP port, implying RTCP at +1).
//!
//! Free pairs wait in a queue: a call takes the one at the front, and a
//! pair comes back at the end when its sockets are dropped (the
//! [`PortLease`] in [`RtpSockets`] sees to it). So a port freed by a call
//! that just ended is not handed to the next call at once (late packets of
//! the old call would reach the new one), and a full range refuses in O(1)
//! instead of trying to bind every pair. Ports another process holds are
//! moved to the back (std does not set `SO_REUSEADDR`, so a bind to a taken
//! port fails rather than sharing it); an allocation tries a few at most.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::PortRange;

/// Pairs an allocation tries before giving up: bounded, so a range full of
/// other processes' ports costs a few binds, not thousands.
const MAX_ATTEMPTS: usize = 8;

/// A bound pair, both non-blocking, ready for the media engine.
#[derive(Debug)]
pub struct RtpSockets {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    /// The RTP port, for the SDP `m=` line; RTCP is `port + 1`.
    pub port: u16,
    /// Gives the pair back when dropped; keep it as long as the sockets
    /// (`None` for sockets not from an allocator, as in tests).
    pub lease: Option<PortLease>,
}

/// Returns its pair to the allocator's free queue when dropped.
#[derive(Debug)]
pub struct PortLease {
    index: u32,
    free: Arc<Mutex<VecDeque<u32>>>,
}

impl Drop for PortLease {
    fn drop(&mut self) {
        lock(&self.free).push_back(self.index);
    }
}

#[derive(Debug)]
pub struct PortAllocator {
    ip: IpAddr,
    /// The even RTP ports that have an odd partner inside the range.
    first: u32,
    pairs: u32,
    /// Indices of the pairs not leased, in the order they are handed out.
    free: Arc<Mutex<VecDeque<u32>>>,
}

fn lock(free: &Mutex<VecDeque<u32>>) -> MutexGuard<'_, VecDeque<u32>> {
    // Pushes and pops are whole: the queue is consistent after a panic.
    free.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
            free: Arc::new(Mutex::new((0..pairs).collect())),
        }
    }

    /// How many pairs the range holds, free or not.
    pub fn capacity(&self) -> usize {
        self.pairs as usize
    }

    /// Pairs not leased now (some may be held by other processes).
    pub fn available(&self) -> usize {
        lock(&self.free).len()
    }

    /// Binds the pair at the front of the free queue. Fails with `AddrInUse`
    /// at once when none is free or the few tried are all taken by others,
    /// or with the bind error when binding cannot work at all (the address
    /// is not local, permission).
    pub fn allocate(&self) -> io::Result<RtpSockets> {
        // Held across the binds so two calls never race for the same
        // pair; a bind is a few µs.
        let mut free = lock(&self.free);
        for _ in 0..MAX_ATTEMPTS.min(free.len()) {
            let Some(index) = free.pop_front() else {
                break;
            };
            let port = u16::try_from(self.first + 2 * index)
                .expect("pairs only counts ports up to the range's u16 end");
            match self.bind_pair(port) {
                Ok((rtp, rtcp)) => {
                    return Ok(RtpSockets {
                        rtp,
                        rtcp,
                        port,
                        lease: Some(PortLease {
                            index,
                            free: Arc::clone(&self.free),
                        }),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => free.push_back(index),
                Err(e) => {
                    free.push_front(index);
                    return Err(e);
                }
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

    fn bind_pair(&self, port: u16) -> io::Result<(UdpSocket, UdpSocket)> {
        let rtp = UdpSocket::bind(SocketAddr::new(self.ip, port))?;
        // Dropping `rtp` on a failed RTCP bind frees the even port again.
        let rtcp = UdpSocket::bind(SocketAddr::new(self.ip, port + 1))?;
        rtp.set_nonblocking(true)?;
        rtcp.set_nonblocking(true)?;
        Ok((rtp, rtcp))
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
        assert_eq!(ports.available(), 0);
        drop(c);
        assert_eq!(ports.available(), 1);
        assert_eq!(ports.allocate().unwrap().port, first + 4);
    }

    #[test]
    fn a_refusal_tries_a_few_pairs_however_large_the_range() {
        let range = free_range(43_000, 20);
        let ports = PortAllocator::new(LOCALHOST, range);
        // Another process holds every RTP port of the range.
        let mut squatters: Vec<Option<UdpSocket>> = (0..20)
            .map(|i| Some(UdpSocket::bind((LOCALHOST, range.first + 2 * i)).unwrap()))
            .collect();
        assert_eq!(
            ports.allocate().unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        );
        // Only the first MAX_ATTEMPTS pairs were tried (and moved to the
        // back): with pairs 0 and 8 free again, pair 8 is next, not 0.
        squatters[0] = None;
        squatters[MAX_ATTEMPTS] = None;
        let got = ports.allocate().unwrap();
        assert_eq!(got.port, range.first + 2 * MAX_ATTEMPTS as u16);
        assert_eq!(ports.available(), 19);
        drop(got);
        assert_eq!(ports.available(), 20);
        drop(squatters);
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
        // The squatted pair went to the back of the queue, still free.
        assert_eq!(ports.available(), 1);
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

//! `bench --kernel-floor`: what this machine's kernel charges for one RTP
//! packet on loopback with no media engine around it: a bare loop sending
//! 172-byte datagrams (a 20 ms G.711 frame with its RTP header) from one
//! socket per call to a receiver that never reads, as the end-to-end bench's
//! sipp does. The line's CPU per packet cannot go below this; the README
//! compares its figures with it.

use std::net::UdpSocket;

use std::time::Duration;

/// An RTP header and 160 bytes of G.711.
const DATAGRAM: usize = 172;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FloorReport {
    pub sockets: usize,
    pub packets: usize,
    /// CPU per packet with `send_to` on unconnected sockets (the line's way).
    pub unconnected_us: f64,
    /// And with `send` on sockets connected to the receiver.
    pub connected_us: f64,
}

impl FloorReport {
    pub fn summary(&self) -> String {
        format!(
            "kernel floor  {packets} datagrams of {DATAGRAM} bytes from {sockets} sockets on loopback: \
             {unconnected:.2} µs of CPU per packet with send_to, {connected:.2} µs connected",
            packets = self.packets,
            sockets = self.sockets,
            unconnected = self.unconnected_us,
            connected = self.connected_us,
        )
    }
}

/// Sends `packets` datagrams round-robin from `sockets` sockets, twice
/// (unconnected, then connected), and times each pass's CPU.
pub fn run(sockets: usize, packets: usize) -> std::io::Result<FloorReport> {
    let receiver = UdpSocket::bind("127.0.0.1:0")?;
    let to = receiver.local_addr()?;
    let senders = (0..sockets.max(1))
        .map(|_| {
            let socket = UdpSocket::bind("127.0.0.1:0")?;
            socket.set_nonblocking(true)?;
            Ok(socket)
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let datagram = [0x80u8; DATAGRAM];
    let unconnected = cpu_per_packet(packets, |i| {
        let _ = senders[i % senders.len()].send_to(&datagram, to);
    });
    for socket in &senders {
        socket.connect(to)?;
    }
    let connected = cpu_per_packet(packets, |i| {
        let _ = senders[i % senders.len()].send(&datagram);
    });
    Ok(FloorReport {
        sockets: senders.len(),
        packets,
        unconnected_us: unconnected,
        connected_us: connected,
    })
}

/// µs of this process's CPU per call of `send` over `packets` calls.
fn cpu_per_packet(packets: usize, mut send: impl FnMut(usize)) -> f64 {
    let before = thread_cpu();
    for i in 0..packets {
        send(i);
    }
    let spent = thread_cpu().saturating_sub(before);
    spent.as_secs_f64() * 1e6 / packets.max(1) as f64
}

/// This thread's CPU so far (user and system, to the nanosecond).
fn thread_cpu() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we own.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } == 0;
    if !ok {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_run_reports_a_plausible_cost() {
        let report = run(8, 20_000).expect("loopback sockets");
        assert_eq!((report.sockets, report.packets), (8, 20_000));
        assert!(report.unconnected_us >= 0.0 && report.unconnected_us < 1_000.0);
        assert!(report.connected_us >= 0.0 && report.connected_us < 1_000.0);
        assert!(report.summary().contains("20000 datagrams"));
    }
}

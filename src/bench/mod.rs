//! `dial-a-service bench`: how much the line costs and what callers get.
//!
//! Media only (this file): `bench --calls N` plays one service to N calls
//! through the real media path (shared track, pacer threads, one RTP socket
//! pair per call) to receivers on loopback, printing CPU per call, memory
//! per call and the lateness of packet sends. Lateness is a packet's send
//! time minus its schedule (t0 + k·20 ms), the figure the Asterisk
//! comparison in the README uses.
//!
//! End to end ([`e2e`]): `bench --through-sip` runs the real line as a
//! child, calls it with sipp, and measures from outside what callers get
//! ([`rtp_report`]) and what it costs the line ([`procfs`]).
//!
//! Kernel floor ([`floor`]): `bench --kernel-floor` times bare loopback
//! sends, the cost per packet no media engine can go below.

pub mod e2e;
pub mod floor;
mod peers;
mod procfs;
pub mod report;
pub mod rtp_report;
pub mod setup;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::PortRange;
use crate::media::Codec;
use crate::media::decode::DecodeError;
use crate::media::pacer::{EngineConfig, EngineStats, MediaEngine, StreamId, StreamSpec};
use crate::media::ports::PortAllocator;
use crate::media::track::{Playlist, TrackCache, TrackStatus};

/// Calls that share one receiving socket (and thread).
const CALLS_PER_RECEIVER: usize = 250;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub calls: usize,
    /// How long to measure, after every call has started.
    pub seconds: f64,
    pub codec: Codec,
    pub audio: PathBuf,
    pub workers: usize,
    /// RTP ports for the calls (two per call).
    pub rtp_ports: PortRange,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot prepare the benchmark audio: {0}")]
    Audio(#[from] DecodeError),
    #[error("benchmark I/O failed: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone)]
pub struct BenchReport {
    pub calls: usize,
    pub codec: Codec,
    pub workers: usize,
    pub measured: Duration,
    /// CPU of the media threads during the measurement, in seconds.
    pub media_cpu: Duration,
    pub packets_sent: u64,
    pub packets_received: u64,
    pub rss_per_call_kib: f64,
    pub stats: EngineStats,
}

impl BenchReport {
    /// Percent of one core per call.
    pub fn cpu_percent_per_call(&self) -> f64 {
        100.0 * self.media_cpu.as_secs_f64()
            / self.measured.as_secs_f64()
            / self.calls.max(1) as f64
    }

    pub fn cpu_per_packet(&self) -> Duration {
        let packets = (self.calls as f64 * self.measured.as_secs_f64() * 50.0).max(1.0);
        Duration::from_secs_f64(self.media_cpu.as_secs_f64() / packets)
    }

    pub fn summary(&self) -> String {
        let lost = self.packets_sent.saturating_sub(self.packets_received);
        format!(
            "calls {calls} ({codec}, {workers} media threads), measured {secs:.1} s\n\
             CPU per call     {cpu:.4} % of one core ({per_packet:.1} µs per packet)\n\
             memory per call  {rss:.1} KiB RSS\n\
             send lateness    p50 {p50:?}  p99 {p99:?}  max {max:?}\n\
             packets          sent {sent}, received {received} ({lost} not received), catch-ups {catch}, underruns {under}, send errors {errors}",
            calls = self.calls,
            codec = self.codec,
            workers = self.workers,
            secs = self.measured.as_secs_f64(),
            cpu = self.cpu_percent_per_call(),
            per_packet = self.cpu_per_packet().as_secs_f64() * 1e6,
            rss = self.rss_per_call_kib,
            p50 = self.stats.lateness.quantile(0.5),
            p99 = self.stats.lateness.quantile(0.99),
            max = self.stats.lateness.max(),
            sent = self.packets_sent,
            received = self.packets_received,
            catch = self.stats.catch_ups,
            under = self.stats.underruns,
            errors = self.stats.send_errors,
        )
    }
}

/// Runs the benchmark; blocks for about `seconds` plus the ramp-up.
pub fn run(options: &BenchOptions) -> Result<BenchReport, BenchError> {
    let cache = TrackCache::new(2);
    let track = cache.open(&options.audio, options.codec)?;
    // Let the decoder finish so its thread does not compete with the
    // measurement: decoding is a one-off per service, not a per-call cost.
    while matches!(track.status(), TrackStatus::Decoding { .. }) {
        std::thread::sleep(Duration::from_millis(20));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let receivers = spawn_receivers(options.calls.div_ceil(CALLS_PER_RECEIVER), &stop, &received)?;

    let (events_tx, _events) = tokio::sync::mpsc::unbounded_channel();
    let engine = MediaEngine::start_with(
        EngineConfig {
            workers: options.workers.max(1),
            ..EngineConfig::default()
        },
        events_tx,
    )?;
    let allocator = PortAllocator::new(IpAddr::V4(Ipv4Addr::LOCALHOST), options.rtp_ports);
    let rss_before = rss_kib();

    // Calls arrive at random moments, so their 20 ms phases spread out:
    // add them evenly over one second.
    let ramp = Duration::from_secs(1);
    let ramp_start = Instant::now();
    for i in 0..options.calls {
        let due = ramp_start + ramp.mul_f64(i as f64 / options.calls.max(1) as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let sockets = allocator.allocate()?;
        let remote = receivers[i / CALLS_PER_RECEIVER].1;
        engine.add(StreamSpec {
            id: StreamId(i as u64),
            sockets,
            remote_rtp: remote,
            remote_rtcp: SocketAddr::new(remote.ip(), remote.port() + 1),
            codec: options.codec,
            payload_type: crate::media::rtp::PayloadType(
                options.codec.static_payload_type().unwrap_or(111),
            ),
            playlist: Playlist {
                items: vec![track.clone()],
                on_failure: None,
            },
            sending: true,
        });
    }
    std::thread::sleep(Duration::from_millis(500));
    let rss_after = rss_kib();

    let cpu_before = media_thread_cpu();
    let sent_before = engine.stats().packets_sent;
    let received_before = received.load(Ordering::Relaxed);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(options.seconds));
    let measured = started.elapsed();
    let media_cpu = media_thread_cpu().saturating_sub(cpu_before);
    let stats = engine.stats();
    // Packets in flight at the end arrive within a few milliseconds.
    std::thread::sleep(Duration::from_millis(50));
    let packets_received = received.load(Ordering::Relaxed) - received_before;

    for id in 0..options.calls {
        engine.remove(StreamId(id as u64));
    }
    drop(engine);
    stop.store(true, Ordering::Relaxed);
    for (handle, _) in receivers {
        let _ = handle.join();
    }

    Ok(BenchReport {
        calls: options.calls,
        codec: options.codec,
        workers: options.workers.max(1),
        measured,
        media_cpu,
        packets_sent: stats.packets_sent - sent_before,
        packets_received: packets_received.min(stats.packets_sent - sent_before),
        rss_per_call_kib: rss_after.saturating_sub(rss_before) as f64 / options.calls.max(1) as f64,
        stats,
    })
}

type Receiver = (std::thread::JoinHandle<()>, SocketAddr);

/// Sockets that count what arrives, each with an RTCP sink on port + 1.
fn spawn_receivers(
    count: usize,
    stop: &Arc<AtomicBool>,
    received: &Arc<AtomicU64>,
) -> std::io::Result<Vec<Receiver>> {
    let mut out = Vec::new();
    let mut port = 39_000u16;
    while out.len() < count {
        port += 2;
        let (Ok(rtp), Ok(rtcp)) = (
            UdpSocket::bind(("127.0.0.1", port)),
            UdpSocket::bind(("127.0.0.1", port + 1)),
        ) else {
            continue;
        };
        rtp.set_read_timeout(Some(Duration::from_millis(100)))?;
        let addr = rtp.local_addr()?;
        let stop = stop.clone();
        let received = received.clone();
        let handle = std::thread::Builder::new()
            .name("bench-recv".into())
            .spawn(move || {
                let _rtcp = rtcp;
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if rtp.recv_from(&mut buf).is_ok() {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })?;
        out.push((handle, addr));
    }
    Ok(out)
}

/// User + system CPU of this process's `media-*` threads (Linux /proc).
fn media_thread_cpu() -> Duration {
    let ticks_per_second = 100.0; // USER_HZ, fixed at 100 on Linux
    let mut ticks = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            // The name is in parentheses and may contain spaces.
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            if !stat[open + 1..close].starts_with("media-") {
                continue;
            }
            let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
            // utime and stime are fields 14 and 15 of stat(5); 12 and 13 here.
            let utime: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0);
            let stime: u64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
            ticks += utime + stime;
        }
    }
    Duration::from_secs_f64(ticks as f64 / ticks_per_second)
}

/// Resident memory of the process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

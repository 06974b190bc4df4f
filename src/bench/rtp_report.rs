//! What callers got, from captured RTP headers (sans-IO): per stream and
//! overall, packets, loss (sequence gaps), gaps in arrival over 40 ms,
//! arrival lateness against the stream's ideal schedule, and clock drift.
//!
//! The ideal schedule of a stream is "packet with timestamp `ts` arrives at
//! `anchor + (ts − ts0) / clock rate`" (RFC 3550 §5.1: the timestamp is the
//! sampling instant). The anchor is the stream's earliest packet relative to
//! that schedule (the smallest `arrival − media time`), not simply its first
//! arrival: a first packet that was itself late would otherwise make every
//! later on-time packet look early. So lateness is ≥ 0, and 0 for the packet
//! that was the most on time; a stream sent perfectly has lateness 0 throughout.
//!
//! Drift is the least-squares slope of arrival against media time, in parts
//! per million away from 1: a sender whose clock runs 0.1 % fast gives
//! −1000 ppm (its packets come sooner than their timestamps say). Drift
//! shows in lateness too (the schedule is the sender's clock); on one
//! machine's loopback it is ~0 and lateness is the sender's jitter alone.

use std::collections::BTreeMap;
use std::time::Duration;

/// A gap in arrival longer than this is one a caller can hear (two 20 ms
/// packets missing or bunched).
pub const AUDIBLE_GAP: Duration = Duration::from_millis(40);

/// A gap in sequence numbers wider than this is a sender that started
/// numbering afresh, not that many packets lost.
const REORDER_WINDOW: i64 = 3000;

/// The RTP stream a packet belongs to: the sender's UDP port and its SSRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct StreamKey {
    pub src_port: u16,
    pub ssrc: u32,
}

/// One captured RTP packet's header fields and when it arrived.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CapturedPacket {
    /// Arrival time, from any fixed origin (the capture's epoch times).
    pub arrival: Duration,
    pub stream: StreamKey,
    pub seq: u16,
    pub timestamp: u32,
}

/// The figures of one stream.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StreamReport {
    pub stream: StreamKey,
    pub packets: u64,
    /// Sequence numbers between the first and the last that never came.
    pub lost: u64,
    /// Packets whose sequence number came twice.
    pub duplicates: u64,
    /// Arrival gaps between consecutive packets over [`AUDIBLE_GAP`].
    pub gaps_over_40ms: u64,
    #[serde(serialize_with = "as_ms")]
    pub max_gap: Duration,
    #[serde(serialize_with = "as_ms")]
    pub lateness_max: Duration,
    /// Slope of arrival against media time, in ppm away from 1.
    pub drift_ppm: f64,
    /// From the first arrival to the last.
    #[serde(serialize_with = "as_ms")]
    pub duration: Duration,
}

/// Every stream, and the lateness of all their packets together.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RtpReport {
    pub streams: Vec<StreamReport>,
    pub packets: u64,
    pub lost: u64,
    pub gaps_over_40ms: u64,
    #[serde(serialize_with = "as_ms")]
    pub lateness_p50: Duration,
    #[serde(serialize_with = "as_ms")]
    pub lateness_p99: Duration,
    #[serde(serialize_with = "as_ms")]
    pub lateness_max: Duration,
    /// The largest drift of any stream, by magnitude, in ppm.
    pub worst_drift_ppm: f64,
}

fn as_ms<S: serde::Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(value.as_secs_f64() * 1e3)
}

/// Analyses `packets` (any order, any mix of streams) whose timestamps run
/// at `clock_rate_hz` (8000 for G.711, 48000 for Opus).
pub fn analyse(packets: &[CapturedPacket], clock_rate_hz: u32) -> RtpReport {
    let mut by_stream: BTreeMap<StreamKey, Vec<CapturedPacket>> = BTreeMap::new();
    for packet in packets {
        by_stream.entry(packet.stream).or_default().push(*packet);
    }
    let mut all_lateness = Vec::with_capacity(packets.len());
    let streams: Vec<StreamReport> = by_stream
        .into_values()
        .map(|mut stream| {
            stream.sort_by_key(|p| p.arrival);
            analyse_stream(&stream, clock_rate_hz, &mut all_lateness)
        })
        .collect();
    all_lateness.sort_unstable();
    RtpReport {
        packets: streams.iter().map(|s| s.packets).sum(),
        lost: streams.iter().map(|s| s.lost).sum(),
        gaps_over_40ms: streams.iter().map(|s| s.gaps_over_40ms).sum(),
        lateness_p50: quantile(&all_lateness, 0.5),
        lateness_p99: quantile(&all_lateness, 0.99),
        lateness_max: all_lateness.last().copied().unwrap_or_default(),
        worst_drift_ppm: streams.iter().map(|s| s.drift_ppm).fold(0.0, |worst, d| {
            if d.abs() > worst.abs() { d } else { worst }
        }),
        streams,
    }
}

/// The nearest-rank quantile of sorted values.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// One stream's packets in arrival order; pushes each packet's lateness
/// onto `all_lateness`.
fn analyse_stream(
    stream: &[CapturedPacket],
    clock_rate_hz: u32,
    all_lateness: &mut Vec<Duration>,
) -> StreamReport {
    let key = stream[0].stream;
    let clock = f64::from(clock_rate_hz.max(1));
    let first_arrival = stream[0].arrival;

    // Unwrapped sequence numbers and timestamps: each step is taken as the
    // signed 16/32-bit difference from the previous packet.
    let mut seqs = Vec::with_capacity(stream.len());
    // (media time, arrival), both in seconds from the first packet.
    let mut points = Vec::with_capacity(stream.len());
    let (mut seq, mut ts) = (i64::from(stream[0].seq), i64::from(stream[0].timestamp));
    let (mut last_seq, mut last_ts) = (stream[0].seq, stream[0].timestamp);
    let mut gaps_over_40ms = 0;
    let mut max_gap = Duration::ZERO;
    for (i, packet) in stream.iter().enumerate() {
        if i > 0 {
            seq += i64::from(packet.seq.wrapping_sub(last_seq) as i16);
            ts += i64::from(packet.timestamp.wrapping_sub(last_ts) as i32);
            let gap = packet.arrival.saturating_sub(stream[i - 1].arrival);
            max_gap = max_gap.max(gap);
            if gap > AUDIBLE_GAP {
                gaps_over_40ms += 1;
            }
        }
        (last_seq, last_ts) = (packet.seq, packet.timestamp);
        seqs.push(seq);
        points.push((
            (ts - i64::from(stream[0].timestamp)) as f64 / clock,
            (packet.arrival - first_arrival).as_secs_f64(),
        ));
    }

    let (lost, duplicates) = loss(&seqs);
    let offsets: Vec<f64> = points
        .iter()
        .map(|(media, arrival)| arrival - media)
        .collect();
    let anchor = offsets.iter().copied().fold(f64::INFINITY, f64::min);
    let mut lateness_max = Duration::ZERO;
    for offset in offsets {
        let late = Duration::from_secs_f64((offset - anchor).max(0.0));
        lateness_max = lateness_max.max(late);
        all_lateness.push(late);
    }

    StreamReport {
        stream: key,
        packets: stream.len() as u64,
        lost,
        duplicates,
        gaps_over_40ms,
        max_gap,
        lateness_max,
        drift_ppm: drift_ppm(&points),
        duration: stream[stream.len() - 1].arrival - first_arrival,
    }
}

/// (lost, duplicates) from unwrapped sequence numbers in arrival order.
fn loss(seqs: &[i64]) -> (u64, u64) {
    let mut sorted = seqs.to_vec();
    sorted.sort_unstable();
    let before = sorted.len();
    sorted.dedup();
    let duplicates = (before - sorted.len()) as u64;
    let (Some(first), Some(last)) = (sorted.first(), sorted.last()) else {
        return (0, 0);
    };
    // A jump this large is a restarted sender, not thousands lost: then
    // count the gaps between neighbours, each up to the reorder window.
    if last - first > REORDER_WINDOW * 16 {
        let lost = sorted
            .windows(2)
            .map(|w| (w[1] - w[0] - 1).clamp(0, REORDER_WINDOW) as u64)
            .sum();
        return (lost, duplicates);
    }
    ((last - first + 1) as u64 - sorted.len() as u64, duplicates)
}

/// The least-squares slope of arrival on media time, as ppm away from 1;
/// 0 for fewer than two distinct media times.
fn drift_ppm(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (x, y) in points {
        sxy += (x - mean_x) * (y - mean_y);
        sxx += (x - mean_x) * (x - mean_x);
    }
    if sxx == 0.0 {
        return 0.0;
    }
    (sxy / sxx - 1.0) * 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORT: u16 = 40_000;
    const PTIME: Duration = Duration::from_millis(20);

    /// `count` packets of 20 ms at 8 kHz, the k-th arriving at `arrival(k)`.
    fn stream(count: u32, arrival: impl Fn(u32) -> Duration) -> Vec<CapturedPacket> {
        (0..count)
            .map(|k| CapturedPacket {
                arrival: Duration::from_secs(1_700_000_000) + arrival(k),
                stream: StreamKey {
                    src_port: PORT,
                    ssrc: 0x1234,
                },
                seq: 65_500u16.wrapping_add(k as u16),
                timestamp: u32::MAX - 800 + k * 160,
            })
            .collect()
    }

    #[test]
    fn a_perfect_stream_has_no_loss_no_lateness_no_drift() {
        let packets = stream(500, |k| PTIME * k);
        let report = analyse(&packets, 8000);
        assert_eq!(report.streams.len(), 1);
        assert_eq!(report.packets, 500);
        assert_eq!(report.lost, 0, "sequence and timestamp wrap are not loss");
        assert_eq!(report.gaps_over_40ms, 0);
        assert!(report.lateness_max < Duration::from_micros(1), "{report:?}");
        assert!(report.worst_drift_ppm.abs() < 0.01, "{report:?}");
        assert_eq!(report.streams[0].max_gap, PTIME);
        assert_eq!(report.streams[0].duration, PTIME * 499);
    }

    #[test]
    fn a_lost_packet_is_one_loss_and_one_audible_gap() {
        let mut packets = stream(100, |k| PTIME * k);
        packets.remove(50);
        let report = analyse(&packets, 8000);
        assert_eq!(report.lost, 1);
        assert_eq!(report.streams[0].duplicates, 0);
        // 40 ms between 49 and 51 is not over 40 ms; two lost would be.
        assert_eq!(report.gaps_over_40ms, 0);
        packets.remove(50);
        let report = analyse(&packets, 8000);
        assert_eq!(report.lost, 2);
        assert_eq!(report.gaps_over_40ms, 1);
        assert_eq!(report.streams[0].max_gap, PTIME * 3);
    }

    #[test]
    fn a_late_burst_shows_in_lateness_and_gaps_but_not_loss() {
        // Packets 100..105 are held back and all arrive with packet 105.
        let packets = stream(300, |k| {
            if (100..105).contains(&k) {
                PTIME * 105
            } else {
                PTIME * k
            }
        });
        let report = analyse(&packets, 8000);
        assert_eq!(report.lost, 0);
        assert_eq!(report.gaps_over_40ms, 1, "one 120 ms silence");
        assert_eq!(report.streams[0].max_gap, PTIME * 6);
        assert_eq!(report.lateness_max, PTIME * 5, "packet 100 was 100 ms late");
        assert_eq!(report.lateness_p50, Duration::ZERO);
        assert!(report.worst_drift_ppm.abs() < 2000.0);
    }

    #[test]
    fn a_late_first_packet_does_not_make_the_rest_early() {
        let packets = stream(200, |k| if k == 0 { PTIME / 2 } else { PTIME * k });
        let report = analyse(&packets, 8000);
        assert_eq!(report.lateness_max, PTIME / 2);
        assert_eq!(report.lateness_p99, Duration::ZERO);
    }

    #[test]
    fn a_clock_running_fast_is_negative_drift() {
        // The sender's 20 ms are 19.99 ms of ours: 500 ppm fast.
        let packets = stream(3000, |k| Duration::from_micros(19_990) * k);
        let report = analyse(&packets, 8000);
        let drift = report.streams[0].drift_ppm;
        assert!((drift + 500.0).abs() < 1.0, "drift {drift}");
        assert_eq!(report.worst_drift_ppm, drift);
        // The schedule is the sender's clock: against its latest packet
        // (the most on time) the first 3000 were 0.01 ms a packet earlier.
        let expected = Duration::from_micros(10) * 2999;
        assert!(report.lateness_max.abs_diff(expected) < Duration::from_micros(5));
    }

    #[test]
    fn duplicates_and_reordering_are_not_loss() {
        let mut packets = stream(50, |k| PTIME * k);
        packets.swap(10, 11);
        let copy = packets[20];
        packets.insert(21, copy);
        let report = analyse(&packets, 8000);
        assert_eq!(report.lost, 0);
        assert_eq!(report.streams[0].duplicates, 1);
    }

    #[test]
    fn streams_are_kept_apart_and_lateness_pooled() {
        let mut packets = stream(100, |k| PTIME * k);
        let other: Vec<_> = stream(100, |k| PTIME * k + Duration::from_millis(7))
            .into_iter()
            .map(|mut p| {
                p.stream.src_port = PORT + 16;
                p
            })
            .collect();
        packets.extend(other);
        packets.remove(30);
        let report = analyse(&packets, 8000);
        assert_eq!(report.streams.len(), 2);
        assert_eq!(report.packets, 199);
        assert_eq!(report.lost, 1);
        assert_eq!(report.streams[0].lost, 1);
        assert_eq!(report.streams[1].lost, 0);
        assert!(report.lateness_max < Duration::from_micros(1));
    }

    #[test]
    fn nothing_captured_is_an_empty_report() {
        let report = analyse(&[], 8000);
        assert!(report.streams.is_empty());
        assert_eq!(report.packets, 0);
        assert_eq!(report.lateness_max, Duration::ZERO);
    }
}

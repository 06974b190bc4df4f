//! What the test client measures about the RTP it received: loss, duplicates,
//! reordering, interarrival jitter and pacing, computed by one pure function
//! from the list of packets so tests can feed it synthetic streams.
//!
//! Follows RFC 3550: sequence numbers are extended past 65535 as in A.1, loss
//! is "expected − received" as in A.3 (6.4.1), and interarrival jitter is the
//! running estimate of A.8 (`J += (|D| − J) / 16`) in the stream's RTP clock.
//! One deliberate difference from A.3: a duplicate does not count as received,
//! so duplicates cannot hide loss; they are reported on their own.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One RTP packet as it arrived, before any decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedPacket {
    /// When the datagram was read from the socket.
    pub arrival: Instant,
    /// Where it came from (symmetric RTP: should be the answered address).
    pub source: SocketAddr,
    pub ssrc: u32,
    pub sequence: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload_type: u8,
    pub payload_len: usize,
}

/// Statistics of one SSRC.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamStats {
    pub ssrc: u32,
    /// Datagrams received, duplicates included.
    pub packets: u64,
    /// Extended highest sequence number − lowest + 1 (RFC 3550 A.3).
    pub expected: u64,
    /// Sequence numbers never received.
    pub lost: u64,
    pub duplicates: u64,
    /// Packets that arrived after one with a higher sequence number.
    pub out_of_order: u64,
    /// RFC 3550 A.8 interarrival jitter after the last packet.
    pub jitter: Duration,
    /// Every packet had the sequence number after its predecessor's.
    pub seq_contiguous: bool,
    /// Consecutive audio packets advanced the timestamp by exactly one frame.
    pub ts_step_consistent: bool,
    /// The first packet had the marker bit (RFC 3551 §4.1: start of a talkspurt).
    pub marker_first: bool,
}

/// Statistics of everything received during a call. With no packets every
/// boolean is `false`, so "no audio" never passes as "perfect audio".
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RtpStats {
    pub packets: u64,
    /// Distinct SSRCs in order of first appearance.
    pub ssrcs: Vec<u32>,
    /// Sum over the streams.
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    /// The worst stream's A.8 jitter.
    pub jitter: Duration,
    /// Mean gap between consecutive arrivals (all streams).
    pub mean_interarrival: Option<Duration>,
    pub max_interarrival: Option<Duration>,
    /// True when every stream is contiguous.
    pub seq_contiguous: bool,
    pub ts_step_consistent: bool,
    pub marker_first: bool,
    pub streams: Vec<StreamStats>,
}

impl RtpStats {
    /// Computes the statistics of `packets`, given in arrival order.
    ///
    /// `clock_rate_hz` is the RTP clock of the codec (8000 for G.711, 48000
    /// for Opus); `frame_ticks` the timestamp step of one packet (160 or 960
    /// for 20 ms). Packets whose payload type differs from their stream's
    /// first packet (telephone-event) are counted but skipped by the
    /// timestamp-step check, since RFC 4733 events repeat their start time.
    pub fn from_packets(packets: &[ReceivedPacket], clock_rate_hz: u32, frame_ticks: u32) -> Self {
        let Some(first) = packets.first() else {
            return RtpStats::default();
        };
        let mut trackers: Vec<Tracker> = Vec::new();
        for packet in packets {
            let index = match trackers.iter().position(|t| t.ssrc == packet.ssrc) {
                Some(index) => index,
                None => {
                    trackers.push(Tracker::new(packet));
                    trackers.len() - 1
                }
            };
            trackers[index].add(packet, first.arrival, clock_rate_hz, frame_ticks);
        }
        let streams: Vec<StreamStats> = trackers
            .into_iter()
            .map(|t| t.finish(clock_rate_hz))
            .collect();

        let gaps = packets
            .windows(2)
            .map(|pair| pair[1].arrival.saturating_duration_since(pair[0].arrival));
        let max_interarrival = gaps.clone().max();
        let mean_interarrival = (packets.len() > 1).then(|| {
            let total: Duration = gaps.sum();
            total / (packets.len() as u32 - 1)
        });

        RtpStats {
            packets: packets.len() as u64,
            ssrcs: streams.iter().map(|s| s.ssrc).collect(),
            lost: streams.iter().map(|s| s.lost).sum(),
            duplicates: streams.iter().map(|s| s.duplicates).sum(),
            out_of_order: streams.iter().map(|s| s.out_of_order).sum(),
            jitter: streams.iter().map(|s| s.jitter).max().unwrap_or_default(),
            mean_interarrival,
            max_interarrival,
            seq_contiguous: streams.iter().all(|s| s.seq_contiguous),
            ts_step_consistent: streams.iter().all(|s| s.ts_step_consistent),
            marker_first: streams.iter().all(|s| s.marker_first),
            streams,
        }
    }

    /// The jitter in milliseconds, for printing and for test thresholds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter.as_secs_f64() * 1000.0
    }

    /// Lost packets as a fraction of those expected (0 when nothing was expected).
    pub fn loss_fraction(&self) -> f64 {
        let expected: u64 = self.streams.iter().map(|s| s.expected).sum();
        if expected == 0 {
            0.0
        } else {
            self.lost as f64 / expected as f64
        }
    }
}

/// Running state for one SSRC.
struct Tracker {
    ssrc: u32,
    packets: u64,
    /// Extended sequence numbers seen (A.1: the high bits count wraps).
    seen: HashSet<i64>,
    min_seq: i64,
    max_seq: i64,
    duplicates: u64,
    out_of_order: u64,
    contiguous: bool,
    first_payload_type: u8,
    marker_first: bool,
    ts_consistent: bool,
    /// Extended sequence number, timestamp and payload type of the previous arrival.
    previous: Option<(i64, u32, u8)>,
    /// Extended timestamp of the previous arrival, relative to the first.
    ts_extended: i64,
    previous_transit: Option<f64>,
    /// A.8 jitter in timestamp units.
    jitter: f64,
}

impl Tracker {
    fn new(first: &ReceivedPacket) -> Self {
        let seq = i64::from(first.sequence);
        Tracker {
            ssrc: first.ssrc,
            packets: 0,
            seen: HashSet::new(),
            min_seq: seq,
            max_seq: seq,
            duplicates: 0,
            out_of_order: 0,
            contiguous: true,
            first_payload_type: first.payload_type,
            marker_first: first.marker,
            ts_consistent: true,
            previous: None,
            ts_extended: 0,
            previous_transit: None,
            jitter: 0.0,
        }
    }

    fn add(&mut self, packet: &ReceivedPacket, t0: Instant, clock_rate_hz: u32, frame_ticks: u32) {
        self.packets += 1;
        // A.1: the 16-bit difference to the highest number so far, taken as
        // signed, places the packet on the right side of a 65535 → 0 wrap.
        let delta = packet.sequence.wrapping_sub(self.max_seq as u16) as i16;
        let seq = self.max_seq + i64::from(delta);
        if !self.seen.insert(seq) {
            self.duplicates += 1;
            self.contiguous = false;
        } else if seq < self.max_seq {
            self.out_of_order += 1;
            self.contiguous = false;
        } else if self.packets > 1 && seq != self.max_seq + 1 {
            self.contiguous = false;
        }
        self.min_seq = self.min_seq.min(seq);
        self.max_seq = self.max_seq.max(seq);

        if let Some((previous_seq, previous_ts, previous_pt)) = self.previous {
            let audio = packet.payload_type == self.first_payload_type
                && previous_pt == self.first_payload_type;
            if audio
                && seq == previous_seq + 1
                && packet.timestamp.wrapping_sub(previous_ts) != frame_ticks
            {
                self.ts_consistent = false;
            }
            self.ts_extended += i64::from(packet.timestamp.wrapping_sub(previous_ts) as i32);
        }
        self.previous = Some((seq, packet.timestamp, packet.payload_type));

        // A.8: transit = arrival (in RTP units) − timestamp; only differences
        // of transit matter, so both may start from any origin.
        let arrival =
            packet.arrival.saturating_duration_since(t0).as_secs_f64() * f64::from(clock_rate_hz);
        let transit = arrival - self.ts_extended as f64;
        if let Some(previous) = self.previous_transit {
            let d = (transit - previous).abs();
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.previous_transit = Some(transit);
    }

    fn finish(self, clock_rate_hz: u32) -> StreamStats {
        let expected = (self.max_seq - self.min_seq + 1) as u64;
        let unique = self.seen.len() as u64;
        StreamStats {
            ssrc: self.ssrc,
            packets: self.packets,
            expected,
            lost: expected.saturating_sub(unique),
            duplicates: self.duplicates,
            out_of_order: self.out_of_order,
            jitter: Duration::from_secs_f64(self.jitter.max(0.0) / f64::from(clock_rate_hz.max(1))),
            seq_contiguous: self.contiguous,
            ts_step_consistent: self.ts_consistent,
            marker_first: self.marker_first,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 4000);
    const FRAME: Duration = Duration::from_millis(20);

    fn packet(t0: Instant, at: Duration, seq: u16, ts: u32) -> ReceivedPacket {
        ReceivedPacket {
            arrival: t0 + at,
            source: SOURCE,
            ssrc: 0x1234,
            sequence: seq,
            timestamp: ts,
            marker: false,
            payload_type: 0,
            payload_len: 160,
        }
    }

    /// `n` G.711 packets, 20 ms apart, starting at `seq0`/`ts0`, marker on the first.
    fn paced(t0: Instant, n: u32, seq0: u16, ts0: u32) -> Vec<ReceivedPacket> {
        let mut packets: Vec<_> = (0..n)
            .map(|k| {
                packet(
                    t0,
                    FRAME * k,
                    seq0.wrapping_add(k as u16),
                    ts0.wrapping_add(160 * k),
                )
            })
            .collect();
        packets[0].marker = true;
        packets
    }

    #[test]
    fn perfectly_paced_stream_is_clean_with_zero_jitter() {
        let t0 = Instant::now();
        let stats = RtpStats::from_packets(&paced(t0, 500, 100, 9_000), 8_000, 160);
        assert_eq!(stats.packets, 500);
        assert_eq!(stats.ssrcs, vec![0x1234]);
        assert_eq!(
            (stats.lost, stats.duplicates, stats.out_of_order),
            (0, 0, 0)
        );
        assert!(stats.jitter_ms() < 1e-6, "jitter {}", stats.jitter_ms());
        assert!(stats.seq_contiguous && stats.ts_step_consistent && stats.marker_first);
        assert_eq!(stats.mean_interarrival, Some(FRAME));
        assert_eq!(stats.max_interarrival, Some(FRAME));
        assert_eq!(stats.streams[0].expected, 500);
    }

    #[test]
    fn no_packets_is_not_a_clean_stream() {
        let stats = RtpStats::from_packets(&[], 8_000, 160);
        assert_eq!(stats.packets, 0);
        assert!(!stats.seq_contiguous && !stats.ts_step_consistent && !stats.marker_first);
        assert_eq!(stats.mean_interarrival, None);
    }

    #[test]
    fn dropped_packets_are_counted_as_lost() {
        let t0 = Instant::now();
        let mut packets = paced(t0, 50, 0, 0);
        packets.remove(30);
        packets.remove(10);
        let stats = RtpStats::from_packets(&packets, 8_000, 160);
        assert_eq!(stats.lost, 2);
        assert_eq!(stats.streams[0].expected, 50);
        assert!(!stats.seq_contiguous);
        assert!(
            stats.ts_step_consistent,
            "gaps are loss, not a timestamp fault"
        );
        assert!((stats.loss_fraction() - 0.04).abs() < 1e-9);
        assert_eq!(stats.max_interarrival, Some(FRAME * 2));
    }

    #[test]
    fn reordered_packet_is_out_of_order_not_lost() {
        let t0 = Instant::now();
        let mut packets = paced(t0, 10, 0, 0);
        packets.swap(4, 5);
        let stats = RtpStats::from_packets(&packets, 8_000, 160);
        assert_eq!(stats.out_of_order, 1);
        assert_eq!(stats.lost, 0);
        assert!(!stats.seq_contiguous);
    }

    #[test]
    fn duplicate_does_not_hide_loss() {
        let t0 = Instant::now();
        let mut packets = paced(t0, 10, 0, 0);
        let again = packets[3];
        packets.remove(7);
        packets.insert(5, again);
        let stats = RtpStats::from_packets(&packets, 8_000, 160);
        assert_eq!(stats.duplicates, 1);
        assert_eq!(stats.lost, 1);
        assert_eq!(stats.packets, 10);
    }

    #[test]
    fn sequence_and_timestamp_wrap_around_is_continuous() {
        let t0 = Instant::now();
        let packets = paced(t0, 20, 65_530, u32::MAX - 800);
        let stats = RtpStats::from_packets(&packets, 8_000, 160);
        assert_eq!(stats.lost, 0);
        assert_eq!(stats.out_of_order, 0);
        assert_eq!(stats.streams[0].expected, 20);
        assert!(stats.seq_contiguous && stats.ts_step_consistent);
        assert!(stats.jitter_ms() < 1e-6);
    }

    #[test]
    fn loss_across_the_wrap_is_counted_once() {
        let t0 = Instant::now();
        let mut packets = paced(t0, 20, 65_530, 0);
        packets.remove(6); // sequence 0
        let stats = RtpStats::from_packets(&packets, 8_000, 160);
        assert_eq!(stats.lost, 1);
        assert_eq!(stats.streams[0].expected, 20);
    }

    #[test]
    fn alternating_10ms_offsets_give_the_a8_recurrence() {
        // Every other packet arrives 10 ms late: |D| = 80 ticks at 8 kHz for
        // every pair, so J_n = 80 · (1 − (15/16)^n) ticks.
        let t0 = Instant::now();
        let mut packets = paced(t0, 200, 0, 0);
        for p in packets.iter_mut().skip(1).step_by(2) {
            p.arrival += Duration::from_millis(10);
        }
        let first_two = RtpStats::from_packets(&packets[..2], 8_000, 160);
        assert!(
            (first_two.jitter_ms() - 0.625).abs() < 1e-6,
            "{}",
            first_two.jitter_ms()
        );
        let all = RtpStats::from_packets(&packets, 8_000, 160);
        let expected_ticks = 80.0 * (1.0 - (15.0f64 / 16.0).powi(199));
        let expected_ms = expected_ticks / 8.0;
        assert!(
            (all.jitter_ms() - expected_ms).abs() < 1e-6,
            "{}",
            all.jitter_ms()
        );
        assert!(all.seq_contiguous, "late arrival is jitter, not disorder");
    }

    #[test]
    fn opus_clock_jitter_is_in_milliseconds() {
        let t0 = Instant::now();
        let mut packets: Vec<_> = (0..2)
            .map(|k| packet(t0, FRAME * k, k as u16, 960 * k))
            .collect();
        packets[1].arrival += Duration::from_millis(8);
        let stats = RtpStats::from_packets(&packets, 48_000, 960);
        // |D| = 8 ms, J = 8/16 ms.
        assert!(
            (stats.jitter_ms() - 0.5).abs() < 1e-6,
            "{}",
            stats.jitter_ms()
        );
        assert!(stats.ts_step_consistent);
    }

    #[test]
    fn wrong_timestamp_step_and_missing_marker_are_reported() {
        let t0 = Instant::now();
        let mut packets = paced(t0, 10, 0, 0);
        packets[0].marker = false;
        packets[6].timestamp += 80;
        let stats = RtpStats::from_packets(&packets, 8_000, 160);
        assert!(!stats.ts_step_consistent);
        assert!(!stats.marker_first);
        assert!(stats.seq_contiguous);
    }

    #[test]
    fn telephone_event_packets_skip_the_step_check() {
        let t0 = Instant::now();
        let mut packets = paced(t0, 10, 0, 0);
        for p in &mut packets[4..7] {
            p.payload_type = 101;
            p.timestamp = 640; // RFC 4733: every packet of an event carries its start
        }
        let stats = RtpStats::from_packets(&packets, 8_000, 160);
        assert!(stats.ts_step_consistent);
    }

    #[test]
    fn a_second_ssrc_is_a_separate_stream() {
        let t0 = Instant::now();
        let mut packets = paced(t0, 10, 0, 0);
        let mut second = paced(t0 + FRAME * 10, 10, 5_000, 77_000);
        for p in &mut second {
            p.ssrc = 0x9999;
        }
        packets.extend(second);
        let stats = RtpStats::from_packets(&packets, 8_000, 160);
        assert_eq!(stats.ssrcs, vec![0x1234, 0x9999]);
        assert_eq!(
            stats.lost, 0,
            "a new SSRC's sequence is not a jump of the old one"
        );
        assert_eq!(stats.streams.len(), 2);
        assert!(stats.seq_contiguous);
    }
}

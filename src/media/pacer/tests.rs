//! The engine end to end over real UDP sockets on 127.0.0.1.

use std::collections::HashMap;
use std::net::{Ipv4Addr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use super::super::Codec;
use super::super::ports::RtpSockets;
use super::super::rtcp::{self, PT_BYE, PT_SDES, PT_SR};
use super::super::rtp::{self, Ssrc};
use super::super::track::FrameRead;
use super::*;

const MS: Duration = Duration::from_millis(1);

/// In-memory frames; `Pending` until `ready_at`; `Failed` after the last
/// frame when `fails`.
struct Frames {
    frames: Vec<Vec<u8>>,
    ready_at: Option<Instant>,
    fails: bool,
}

impl FrameSource for Frames {
    fn read_frame(&self, index: usize, out: &mut Vec<u8>) -> FrameRead {
        if self.ready_at.is_some_and(|t| Instant::now() < t) {
            return FrameRead::Pending;
        }
        match self.frames.get(index) {
            Some(frame) => {
                out.clear();
                out.extend_from_slice(frame);
                FrameRead::Ready
            }
            None if self.fails => FrameRead::Failed,
            None => FrameRead::End,
        }
    }
}

/// `n` frames of `size` bytes; frame i is filled with `base + i`.
fn frames(base: u8, n: usize, size: usize) -> Arc<Frames> {
    Arc::new(Frames {
        frames: (0..n)
            .map(|i| vec![base.wrapping_add(i as u8); size])
            .collect(),
        ready_at: None,
        fails: false,
    })
}

fn programme(items: Vec<Arc<Frames>>, on_failure: Option<Arc<Frames>>) -> Programme {
    Programme {
        items: items
            .into_iter()
            .map(|f| f as Arc<dyn FrameSource>)
            .collect(),
        on_failure: on_failure.map(|f| f as Arc<dyn FrameSource>),
    }
}

fn localhost_socket() -> UdpSocket {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    socket.set_read_timeout(Some(10 * MS)).unwrap();
    socket
}

/// The caller's side: where our RTP and RTCP should arrive.
struct Caller {
    rtp: UdpSocket,
    rtcp: UdpSocket,
}

impl Caller {
    fn new() -> Caller {
        Caller {
            rtp: localhost_socket(),
            rtcp: localhost_socket(),
        }
    }

    fn params(&self, id: u64, codec: Codec, payload_type: u8) -> StreamParams {
        let rtp = localhost_socket();
        let rtcp = localhost_socket();
        StreamParams {
            id: StreamId(id),
            sockets: RtpSockets {
                port: rtp.local_addr().unwrap().port(),
                rtp,
                rtcp,
                lease: None,
            },
            remote_rtp: self.rtp.local_addr().unwrap(),
            remote_rtcp: self.rtcp.local_addr().unwrap(),
            codec,
            payload_type: PayloadType(payload_type),
            sending: true,
            steering: None,
            telephone_event: None,
            keys: KeyListening::default(),
        }
    }
}

#[derive(Debug, Clone)]
struct Received {
    at: Instant,
    ssrc: Ssrc,
    seq: u16,
    ts: u32,
    pt: u8,
    marker: bool,
    payload: Vec<u8>,
}

/// RTP packets arriving at `socket` until `count` or `within` has passed.
fn receive(socket: &UdpSocket, count: usize, within: Duration) -> Vec<Received> {
    let end = Instant::now() + within;
    let mut buf = [0u8; 2048];
    let mut out = Vec::new();
    while out.len() < count && Instant::now() < end {
        let Ok(len) = socket.recv(&mut buf) else {
            continue;
        };
        let at = Instant::now();
        let h = rtp::parse(&buf[..len]).expect("the engine sends valid rtp");
        out.push(Received {
            at,
            ssrc: h.ssrc,
            seq: h.sequence,
            ts: h.timestamp,
            pt: h.payload_type.0,
            marker: h.marker,
            payload: h.payload.to_vec(),
        });
    }
    out
}

/// RTCP packet types (per compound) arriving until one contains `until`.
fn receive_rtcp(socket: &UdpSocket, until: u8, within: Duration) -> Vec<(Instant, Vec<u8>)> {
    let end = Instant::now() + within;
    let mut buf = [0u8; 2048];
    let mut out = Vec::new();
    while Instant::now() < end {
        let Ok(len) = socket.recv(&mut buf) else {
            continue;
        };
        out.push((Instant::now(), buf[..len].to_vec()));
        if types(&buf[..len]).contains(&until) {
            break;
        }
    }
    out
}

fn types(datagram: &[u8]) -> Vec<u8> {
    rtcp::packets(datagram)
        .map(|p| p.expect("the engine sends valid rtcp").0.packet_type)
        .collect()
}

fn engine(config: EngineConfig) -> (MediaEngine, UnboundedReceiver<MediaEvent>) {
    let (tx, rx) = unbounded_channel();
    (MediaEngine::start_with(config, tx).unwrap(), rx)
}

fn next_event(rx: &mut UnboundedReceiver<MediaEvent>, within: Duration) -> Option<MediaEvent> {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if let Ok(event) = rx.try_recv() {
            return Some(event);
        }
        std::thread::sleep(MS);
    }
    None
}

/// Contiguous sequence numbers and timestamps stepping by `step`.
fn assert_contiguous(packets: &[Received], step: u32) {
    for pair in packets.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq.wrapping_add(1), "{pair:?}");
        assert_eq!(pair[1].ts, pair[0].ts.wrapping_add(step), "{pair:?}");
        assert_eq!(pair[1].ssrc, pair[0].ssrc);
    }
}

#[test]
fn a_stream_arrives_in_order_on_time_then_finishes_with_bye() {
    let (engine, mut events) = engine(EngineConfig::default());
    let caller = Caller::new();
    let n = 50;
    engine.add_programme(
        caller.params(1, Codec::Pcmu, 0),
        programme(vec![frames(0, n, 160)], None),
    );
    let got = receive(&caller.rtp, n, 2000 * MS);
    assert_eq!(got.len(), n);
    assert_contiguous(&got, 160);
    assert!(got[0].marker);
    assert!(
        got[1..].iter().all(|p| !p.marker),
        "marker only on the first"
    );
    assert!(got.iter().all(|p| p.pt == 0));
    let payloads: Vec<_> = got.iter().map(|p| p.payload.clone()).collect();
    let expected: Vec<_> = (0..n).map(|i| vec![i as u8; 160]).collect();
    assert_eq!(payloads, expected);
    let mean = (got[n - 1].at - got[0].at) / (n as u32 - 1);
    assert!(
        mean >= 19 * MS && mean <= 21 * MS,
        "mean inter-arrival {mean:?}"
    );

    assert_eq!(
        next_event(&mut events, 500 * MS),
        Some(MediaEvent::Finished { id: StreamId(1) })
    );
    let rtcp = receive_rtcp(&caller.rtcp, PT_BYE, 500 * MS);
    let (_, bye) = rtcp.last().expect("an rtcp bye");
    assert_eq!(types(bye), vec![PT_SR, PT_SDES, PT_BYE]);
    // The BYE's SSRC (last 4 bytes) is the stream's.
    assert_eq!(bye[bye.len() - 4..], got[0].ssrc.0.to_be_bytes());
    assert!(
        receive(&caller.rtp, 1, 100 * MS).is_empty(),
        "nothing after the end"
    );
    let stats = engine.stats();
    assert_eq!(stats.packets_sent, n as u64);
    assert_eq!(stats.streams_active, 0);
    assert_eq!(stats.lateness.count(), n as u64);
}

#[test]
fn playlist_items_continue_one_rtp_stream() {
    let (engine, mut events) = engine(EngineConfig::default());
    let caller = Caller::new();
    let items = vec![frames(0, 5, 80), frames(100, 5, 80)];
    engine.add_programme(caller.params(2, Codec::Opus, 111), programme(items, None));
    let got = receive(&caller.rtp, 10, 1000 * MS);
    assert_eq!(got.len(), 10);
    // Opus: 960 ticks of the 48 kHz clock per 20 ms.
    assert_contiguous(&got, 960);
    assert!(got.iter().all(|p| p.pt == 111));
    assert_eq!(got.iter().filter(|p| p.marker).count(), 1);
    let firsts: Vec<u8> = got.iter().map(|p| p.payload[0]).collect();
    assert_eq!(firsts, vec![0, 1, 2, 3, 4, 100, 101, 102, 103, 104]);
    assert_eq!(
        next_event(&mut events, 500 * MS),
        Some(MediaEvent::Finished { id: StreamId(2) })
    );
}

#[test]
fn a_failed_item_switches_to_on_failure() {
    let (engine, mut events) = engine(EngineConfig::default());
    let caller = Caller::new();
    let failing = Arc::new(Frames {
        frames: vec![vec![1; 160], vec![2; 160]],
        ready_at: None,
        fails: true,
    });
    engine.add_programme(
        caller.params(3, Codec::Pcmu, 0),
        programme(vec![failing, frames(50, 3, 160)], Some(frames(200, 3, 160))),
    );
    let got = receive(&caller.rtp, 10, 500 * MS);
    let firsts: Vec<u8> = got.iter().map(|p| p.payload[0]).collect();
    assert_eq!(firsts, vec![1, 2, 200, 201, 202]);
    assert_contiguous(&got, 160);
    assert!(next_event(&mut events, 500 * MS).is_some());
}

#[test]
fn a_pending_start_waits_for_the_first_frame() {
    let (engine, _events) = engine(EngineConfig::default());
    let caller = Caller::new();
    let added = Instant::now();
    let late = Arc::new(Frames {
        frames: vec![vec![7; 160]; 3],
        ready_at: Some(added + 150 * MS),
        fails: false,
    });
    engine.add_programme(
        caller.params(4, Codec::Pcmu, 0),
        programme(vec![late], None),
    );
    let got = receive(&caller.rtp, 3, 1000 * MS);
    assert_eq!(got.len(), 3);
    let waited = got[0].at - added;
    assert!(
        // Not before the frame is ready; the upper bound only guards
        // against waiting for something else (a loaded CI box is slow).
        waited >= 150 * MS && waited < 400 * MS,
        "first packet after {waited:?}"
    );
    assert!(got[0].marker);
    assert_contiguous(&got, 160);
    // t0 is the first frame's send time: the next two follow at 20 ms.
    let spacing = (got[2].at - got[0].at) / 2;
    // Loose: a loaded 2-core box delays a wake-up now and then.
    assert!(spacing >= 15 * MS && spacing <= 60 * MS, "{spacing:?}");
    assert_eq!(
        engine.stats().underruns,
        0,
        "waiting at the start is no underrun"
    );
}

#[test]
fn remove_stops_at_once_and_sends_bye() {
    let (engine, mut events) = engine(EngineConfig::default());
    let caller = Caller::new();
    engine.add_programme(
        caller.params(5, Codec::Pcmu, 0),
        programme(vec![frames(0, 500, 160)], None),
    );
    assert_eq!(receive(&caller.rtp, 5, 1000 * MS).len(), 5);
    // Read both ports while removing, so arrival times are real.
    let rtp_socket = caller.rtp.try_clone().unwrap();
    let rtcp_socket = caller.rtcp.try_clone().unwrap();
    let rtp_reader = std::thread::spawn(move || receive(&rtp_socket, 100, 300 * MS));
    let rtcp_reader = std::thread::spawn(move || receive_rtcp(&rtcp_socket, PT_BYE, 300 * MS));
    let removed = Instant::now();
    engine.remove(StreamId(5));
    let after = rtp_reader.join().unwrap();
    assert!(after.len() <= 2, "{} packets after remove", after.len());
    assert!(after.iter().all(|p| p.at - removed < 100 * MS));
    let rtcp = rtcp_reader.join().unwrap();
    let (at, bye) = rtcp.last().expect("an rtcp bye");
    assert_eq!(types(bye), vec![PT_SR, PT_SDES, PT_BYE]);
    assert!(*at - removed < 100 * MS, "bye after {:?}", *at - removed);
    assert_eq!(
        next_event(&mut events, 100 * MS),
        None,
        "remove emits no Finished"
    );
    assert_eq!(engine.stats().streams_active, 0);
}

#[test]
fn hold_sends_nothing_and_resumes_from_the_same_frame_marked() {
    let (engine, _events) = engine(EngineConfig::default());
    let caller = Caller::new();
    let params = caller.params(6, Codec::Pcmu, 0);
    let (rtp, rtcp) = (params.remote_rtp, params.remote_rtcp);
    engine.add_programme(params, programme(vec![frames(0, 200, 160)], None));
    let before = receive(&caller.rtp, 5, 1000 * MS);
    engine.update(StreamId(6), rtp, rtcp, false);
    let held_at = Instant::now();
    // Drain what was in flight, then expect silence.
    let in_flight = receive(&caller.rtp, 100, 60 * MS);
    assert!(in_flight.len() <= 2);
    assert!(
        receive(&caller.rtp, 1, 200 * MS).is_empty(),
        "held: nothing sent"
    );
    engine.update(StreamId(6), rtp, rtcp, true);
    let held = held_at.elapsed();
    let after = receive(&caller.rtp, 3, 500 * MS);
    let last = in_flight.last().unwrap_or(&before[4]);
    let resumed = &after[0];
    assert_eq!(
        resumed.payload[0],
        last.payload[0] + 1,
        "no frame missed on hold"
    );
    assert_eq!(resumed.seq, last.seq.wrapping_add(1));
    assert!(resumed.marker);
    // The timestamp kept running through the hold.
    let slots = resumed.ts.wrapping_sub(last.ts) / 160;
    let expected = (held.as_millis() / 20) as u32;
    assert!(slots.abs_diff(expected) <= 3, "{slots} slots vs {expected}");
    assert_contiguous(&after, 160);
}

#[test]
fn latches_onto_the_callers_rtp_source() {
    let (engine, _events) = engine(EngineConfig::default());
    let caller = Caller::new();
    let params = caller.params(7, Codec::Pcmu, 0);
    let our_rtp = params.sockets.rtp.local_addr().unwrap();
    let (sdp_rtp, sdp_rtcp) = (params.remote_rtp, params.remote_rtcp);
    engine.add_programme(params, programme(vec![frames(0, 200, 160)], None));
    assert_eq!(receive(&caller.rtp, 3, 1000 * MS).len(), 3);
    // The caller's real (NATed) address sends RTP to us; RTCP and garbage
    // from elsewhere do not move the stream.
    let stranger = localhost_socket();
    stranger
        .send_to(&[0x80, 201, 0, 1, 0, 0, 0, 9], our_rtp)
        .unwrap();
    stranger.send_to(b"not rtp", our_rtp).unwrap();
    std::thread::sleep(50 * MS);
    assert!(
        !receive(&caller.rtp, 2, 100 * MS).is_empty(),
        "still at the SDP address"
    );
    // In its first seconds the stream learns a new source that sends a
    // few packets in sequence (strict RTP's probation).
    let nat = localhost_socket();
    let mut packet = [0u8; 172];
    let mut p = rtp::Packetizer::new(rtp::PayloadType(0), 160);
    for _ in 0..source_lock::PROBATION {
        let len = p.write_packet(&[0xff; 160], &mut packet).unwrap();
        nat.send_to(&packet[..len], our_rtp).unwrap();
    }
    let switched = Instant::now();
    let at_nat = receive(&nat, 3, 500 * MS);
    assert_eq!(at_nat.len(), 3);
    assert!(at_nat[0].at - switched < 200 * MS);
    // Drain what left before the switch, then nothing more at the old one.
    std::thread::sleep(30 * MS);
    while caller.rtp.recv(&mut [0u8; 2048]).is_ok() {}
    assert!(receive(&caller.rtp, 1, 100 * MS).is_empty());
    assert_eq!(engine.stats().latches, 1);

    // A re-INVITE with the same SDP (hold, resume) keeps the latched source…
    engine.update(StreamId(7), sdp_rtp, sdp_rtcp, true);
    std::thread::sleep(30 * MS);
    assert!(receive(&caller.rtp, 1, 100 * MS).is_empty());
    assert!(!receive(&nat, 2, 100 * MS).is_empty());
    // …one with a new address moves the stream there.
    let moved = Caller::new();
    let (rtp, rtcp) = (
        moved.rtp.local_addr().unwrap(),
        moved.rtcp.local_addr().unwrap(),
    );
    engine.update(StreamId(7), rtp, rtcp, true);
    assert_eq!(receive(&moved.rtp, 2, 200 * MS).len(), 2);
}

#[test]
fn sender_reports_arrive_on_the_rtcp_port() {
    let config = EngineConfig {
        report_interval: 300 * MS,
        ..EngineConfig::default()
    };
    let (engine, _events) = engine(config);
    let caller = Caller::new();
    let started = Instant::now();
    engine.add_programme(
        caller.params(8, Codec::Pcmu, 0),
        programme(vec![frames(0, 200, 160)], None),
    );
    // The first report comes after 0.25–0.75 of the interval, then every 0.5–1.5.
    let rtcp = receive_rtcp(&caller.rtcp, PT_SR, 1000 * MS);
    let (at, sr) = rtcp.last().expect("an rtcp report");
    assert!(
        *at - started <= 450 * MS,
        "first SR after {:?}",
        *at - started
    );
    assert_eq!(types(sr), vec![PT_SR, PT_SDES]);
    // Everything sent so far is still queued: read it in order.
    let rtp = receive(&caller.rtp, 100, 300 * MS);
    let ssrc = u32::from_be_bytes(sr[4..8].try_into().unwrap());
    assert_eq!(Ssrc(ssrc), rtp[0].ssrc);
    // The SR's RTP timestamp reads the same clock as the packets.
    let sr_ts = u32::from_be_bytes(sr[16..20].try_into().unwrap());
    let packets = u32::from_be_bytes(sr[20..24].try_into().unwrap());
    let octets = u32::from_be_bytes(sr[24..28].try_into().unwrap());
    assert_eq!(octets, packets * 160);
    // Sent right after packet `packets - 1`, so at about its timestamp.
    let last_ts = rtp[packets as usize - 1].ts;
    let ahead = sr_ts.wrapping_sub(last_ts);
    // Within a frame or two: a loaded machine may build the report a little
    // after the packet's slot.
    assert!(
        ahead < 3 * 160,
        "sr ts {sr_ts} vs the last packet's {last_ts}"
    );
    // The NTP time is now-ish.
    let ntp = u32::from_be_bytes(sr[8..12].try_into().unwrap());
    let wall = rtcp::NtpTimestamp::now().seconds();
    assert!(wall.wrapping_sub(ntp) <= 2);
    // CNAME item.
    let sdes = &sr[28..];
    assert_eq!(&sdes[8..10], &[1, 16]);
    assert!(sdes[10..26].starts_with(b"das-"));
    let more = receive_rtcp(&caller.rtcp, PT_SR, 1000 * MS);
    assert!(
        more.iter().any(|(_, d)| types(d)[0] == PT_SR),
        "reports repeat"
    );
}

#[test]
fn two_hundred_streams_at_once_arrive_complete() {
    let (engine, mut events) = engine(EngineConfig {
        workers: 2,
        ..EngineConfig::default()
    });
    let n = 50;
    let streams = 200;
    let receivers = 8;
    let callers: Vec<Caller> = (0..receivers).map(|_| Caller::new()).collect();
    let readers: Vec<_> = callers
        .iter()
        .map(|c| {
            let socket = c.rtp.try_clone().unwrap();
            std::thread::spawn(move || receive(&socket, n * streams / receivers, 3000 * MS))
        })
        .collect();
    for id in 0..streams {
        let caller = &callers[id % receivers];
        engine.add_programme(
            caller.params(id as u64, Codec::Pcmu, 0),
            programme(vec![frames(id as u8, n, 160)], None),
        );
    }
    let mut by_ssrc: HashMap<Ssrc, Vec<Received>> = HashMap::new();
    for reader in readers {
        for p in reader.join().unwrap() {
            by_ssrc.entry(p.ssrc).or_default().push(p);
        }
    }
    assert_eq!(by_ssrc.len(), streams);
    for packets in by_ssrc.values() {
        assert_eq!(packets.len(), n);
        assert_contiguous(packets, 160);
        let base = packets[0].payload[0];
        assert!(
            packets
                .iter()
                .enumerate()
                .all(|(i, p)| p.payload[0] == base.wrapping_add(i as u8))
        );
    }
    let mut finished = 0;
    while next_event(&mut events, 500 * MS).is_some() {
        finished += 1;
    }
    assert_eq!(finished, streams);
    let stats = engine.stats();
    assert_eq!(stats.packets_sent, (n * streams) as u64);
    assert_eq!(stats.streams_active, 0);
    eprintln!("200 streams: {stats}");
}

mod strict;

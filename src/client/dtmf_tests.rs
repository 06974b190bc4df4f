//! Key presses from the client against the scripted UAS of
//! [`super::loopback_tests`]: RFC 4733 packets checked byte by byte, INFO
//! bodies and content types, in-band tones through the line's own detector,
//! and one press sent all three ways counted once by the line's merger.

use std::time::{Duration, Instant};

use rtp_rs::RtpReader;
use tokio::net::UdpSocket;
use tokio::time::timeout;

use super::loopback_tests::{FakeUas, Received, STEP};
use super::*;
use crate::call::keys::KeyDeduplicator;
use crate::media::dtmf::Rfc4733Detector;
use crate::media::inband::InBandDetector;
use crate::media::rtp::TelephoneEvent;

/// One RTP packet we received, parsed.
#[derive(Debug, Clone)]
struct Packet {
    arrival: Instant,
    sequence: u16,
    timestamp: u32,
    marker: bool,
    payload_type: u8,
    ssrc: u32,
    payload: Vec<u8>,
}

/// Every RTP packet arriving at `socket` for `window`.
async fn collect_rtp(socket: &UdpSocket, window: Duration) -> Vec<Packet> {
    let until = tokio::time::Instant::now() + window;
    let mut packets = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(Ok((len, _))) = tokio::time::timeout_at(until, socket.recv_from(&mut buf)).await {
        let r = RtpReader::new(&buf[..len]).unwrap();
        packets.push(Packet {
            arrival: Instant::now(),
            sequence: u16::from(r.sequence_number()),
            timestamp: r.timestamp(),
            marker: r.mark(),
            payload_type: r.payload_type(),
            ssrc: r.ssrc(),
            payload: r.payload().to_vec(),
        });
    }
    packets
}

/// The PCMU audio among `packets`, decoded to [-1, 1].
fn pcmu_samples(packets: &[Packet]) -> Vec<f32> {
    packets
        .iter()
        .filter(|p| p.payload_type == 0)
        .flat_map(|p| p.payload.iter())
        .map(|&code| f32::from(crate::media::g711::ulaw_decode(code)) / 32_768.0)
        .collect()
}

/// Options for a PCMU call to `uas` that presses `keys` from `delay`, one
/// every 300 ms, and hangs up after `seconds`.
fn options(uas: &FakeUas, keys: &str, delay_ms: u64, vias: &[KeyChannel]) -> CallOptions {
    let mut opts = CallOptions::new(uas.uri(), Codec::Pcmu);
    let keys = parse_keys(keys).unwrap();
    opts.dtmf = schedule(
        &keys,
        Duration::from_millis(delay_ms),
        Duration::from_millis(300),
    );
    opts.dtmf_via = vias.to_vec();
    opts.seconds = Some(Duration::from_millis(900));
    opts.linger = Duration::from_millis(50);
    opts
}

/// Answers our BYE and returns the report.
async fn finish(
    uas: &FakeUas,
    call: tokio::task::JoinHandle<Result<CallReport, ClientError>>,
) -> CallReport {
    let bye = uas.recv().await;
    assert_eq!(bye.method(), "BYE", "{}", bye.text);
    uas.send(&bye.response("200 OK", None, "", ""), bye.from)
        .await;
    timeout(STEP, call).await.unwrap().unwrap().unwrap()
}

#[tokio::test]
async fn rfc4733_event_packets_byte_by_byte() {
    let uas = FakeUas::new().await;
    let call = tokio::spawn(place_call(options(&uas, "2", 200, &[KeyChannel::Rfc4733])));
    let (_invite, ack) = uas.answer().await;
    assert_eq!(ack.method(), "ACK");
    let packets = collect_rtp(&uas.rtp, Duration::from_millis(600)).await;
    let report = finish(&uas, call).await;

    for pair in packets.windows(2) {
        assert_eq!(
            pair[1].sequence,
            pair[0].sequence.wrapping_add(1),
            "one sequence space for audio and events"
        );
        assert_eq!(pair[1].ssrc, pair[0].ssrc);
    }
    let first = packets.iter().position(|p| p.payload_type == 101).unwrap();
    let events = &packets[first..first + 7];
    let before = &packets[first - 1];
    let after = &packets[first + 7];
    assert_eq!(before.payload_type, 0);
    assert_eq!(after.payload_type, 0, "exactly seven event packets");
    assert_eq!(packets.iter().filter(|p| p.payload_type == 101).count(), 7);
    let start = before.timestamp.wrapping_add(160);
    for (k, packet) in events.iter().enumerate() {
        assert_eq!(packet.payload_type, 101);
        assert_eq!(packet.marker, k == 0, "marker on the first only");
        assert_eq!(packet.timestamp, start, "one timestamp: the event's start");
        let e = TelephoneEvent::parse(&packet.payload).unwrap();
        let duration = 160 * (k as u16 + 1).min(5);
        assert_eq!(e.event, 2);
        assert_eq!(e.volume, 10);
        assert_eq!(e.end, k >= 4, "packet {k}");
        assert_eq!(e.duration, duration, "packet {k}");
        assert_eq!(packet.payload.len(), 4);
        assert_eq!(packet.payload[1] & 0x40, 0, "R bit clear");
    }
    assert_eq!(
        after.timestamp,
        start.wrapping_add(7 * 160),
        "audio resumes on the clock"
    );
    assert!(!after.marker);
    assert_eq!(after.payload, vec![0xFF; 160]);

    assert_eq!(report.dtmf_sent.len(), 1);
    let sent = report.dtmf_sent[0];
    assert_eq!(
        (sent.key, sent.via, sent.info_status),
        (Key::Digit(2), KeyChannel::Rfc4733, None)
    );
    let after_answer = sent.at - report.answered_at.unwrap();
    assert!(
        after_answer >= Duration::from_millis(200) && after_answer < Duration::from_millis(300),
        "{after_answer:?}"
    );
    // The press left with its first packet: within a few ms of its arrival here.
    let gap = events[0].arrival.saturating_duration_since(sent.at);
    assert!(gap < Duration::from_millis(15), "{gap:?}");
    assert!(!report.dtmf_inband_fallback);
}

/// Receives our INFO and answers it with `status`.
async fn answer_info(uas: &FakeUas, status: &str) -> Received {
    let info = uas.recv().await;
    assert_eq!(info.method(), "INFO", "{}", info.text);
    uas.send(&info.response(status, None, "", ""), info.from)
        .await;
    info
}

/// [`answer_info`], with the INFO's arrival time.
async fn answer_info_at(uas: &FakeUas) -> (Received, Instant) {
    let info = answer_info(uas, "200 OK").await;
    (info, Instant::now())
}

#[tokio::test]
async fn info_carries_dtmf_relay_and_its_status_is_recorded() {
    let uas = FakeUas::new().await;
    let call = tokio::spawn(place_call(options(&uas, "2#", 100, &[KeyChannel::SipInfo])));
    let (invite, _ack) = uas.answer().await;
    let first = answer_info(&uas, "200 OK").await;
    let second = answer_info(&uas, "415 Unsupported Media Type").await;
    let report = finish(&uas, call).await;

    assert_eq!(first.header("Content-Type"), "application/dtmf-relay");
    assert_eq!(first.body(), "Signal=2\r\nDuration=100\r\n");
    assert_eq!(first.header("Content-Length"), "24");
    assert_eq!(second.body(), "Signal=#\r\nDuration=100\r\n");
    assert_eq!(first.header("CSeq"), "2 INFO");
    assert_eq!(second.header("CSeq"), "3 INFO");
    assert_eq!(first.header("Call-ID"), invite.header("Call-ID"));
    assert!(first.header("To").contains("tag=uas1"), "in the dialog");

    let sent: Vec<(char, KeyChannel, Option<u16>)> = report
        .dtmf_sent
        .iter()
        .map(|s| (s.key.as_char(), s.via, s.info_status))
        .collect();
    assert_eq!(
        sent,
        vec![
            ('2', KeyChannel::SipInfo, Some(200)),
            ('#', KeyChannel::SipInfo, Some(415))
        ]
    );
    let spacing = report.dtmf_sent[1].at - report.dtmf_sent[0].at;
    assert!(
        spacing >= Duration::from_millis(280) && spacing < Duration::from_millis(400),
        "{spacing:?}"
    );
}

#[tokio::test]
async fn info_as_application_dtmf() {
    let uas = FakeUas::new().await;
    let mut opts = options(&uas, "*", 100, &[KeyChannel::SipInfo]);
    opts.dtmf_info_type = InfoType::Dtmf;
    opts.dtmf_duration = Duration::from_millis(250);
    let call = tokio::spawn(place_call(opts));
    uas.answer().await;
    let info = answer_info(&uas, "200 OK").await;
    let report = finish(&uas, call).await;
    assert_eq!(info.header("Content-Type"), "application/dtmf");
    assert_eq!(info.body(), "*");
    assert_eq!(report.dtmf_sent[0].info_status, Some(200));
}

#[tokio::test]
async fn inband_tone_is_detected_by_the_line() {
    let uas = FakeUas::new().await;
    let call = tokio::spawn(place_call(options(&uas, "2*", 100, &[KeyChannel::InBand])));
    uas.answer().await;
    let packets = collect_rtp(&uas.rtp, Duration::from_millis(700)).await;
    let report = finish(&uas, call).await;
    assert!(packets.iter().all(|p| p.payload_type == 0), "audio only");
    let heard = InBandDetector::default().handle_samples(&pcmu_samples(&packets));
    assert_eq!(heard, vec![Key::Digit(2), Key::Star]);
    let vias: Vec<KeyChannel> = report.dtmf_sent.iter().map(|s| s.via).collect();
    assert_eq!(vias, vec![KeyChannel::InBand, KeyChannel::InBand]);
}

#[tokio::test]
async fn without_telephone_event_rfc4733_falls_back_to_inband() {
    let uas = FakeUas::new().await;
    let call = tokio::spawn(place_call(options(&uas, "7", 100, &[KeyChannel::Rfc4733])));
    let sdp = format!(
        "v=0\r\no=- 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n",
        uas.rtp.local_addr().unwrap().port()
    );
    uas.answer_with(&sdp).await;
    let packets = collect_rtp(&uas.rtp, Duration::from_millis(500)).await;
    let report = finish(&uas, call).await;
    assert_eq!(report.telephone_event, None);
    assert!(report.dtmf_inband_fallback);
    assert!(packets.iter().all(|p| p.payload_type == 0));
    let heard = InBandDetector::default().handle_samples(&pcmu_samples(&packets));
    assert_eq!(heard, vec![Key::Digit(7)]);
    assert_eq!(report.dtmf_sent[0].via, KeyChannel::InBand);
    assert!(report.summary().contains("RFC 4733 sent in-band"));
}

#[tokio::test]
async fn one_press_all_three_ways_is_one_press_to_the_line() {
    let uas = FakeUas::new().await;
    let vias = [KeyChannel::Rfc4733, KeyChannel::SipInfo, KeyChannel::InBand];
    let call = tokio::spawn(place_call(options(&uas, "5", 150, &vias)));
    uas.answer().await;
    let (packets, (info, info_at)) = tokio::join!(
        collect_rtp(&uas.rtp, Duration::from_millis(600)),
        answer_info_at(&uas),
    );
    let report = finish(&uas, call).await;
    assert_eq!(info.body(), "Signal=5\r\nDuration=100\r\n");

    let mut sent: Vec<KeyChannel> = report.dtmf_sent.iter().map(|s| s.via).collect();
    sent.sort_by_key(|via| *via as u8);
    assert_eq!(
        sent,
        vec![KeyChannel::Rfc4733, KeyChannel::SipInfo, KeyChannel::InBand]
    );
    assert!(report.dtmf_sent.iter().all(|s| s.key == Key::Digit(5)));
    let spread = report.dtmf_sent.iter().map(|s| s.at).max().unwrap()
        - report.dtmf_sent.iter().map(|s| s.at).min().unwrap();
    assert!(spread < Duration::from_millis(25), "at once: {spread:?}");

    // The line's own detectors and merger: each way sees the press, the
    // merger lets it through once.
    let mut rfc4733 = Rfc4733Detector::default();
    let mut inband = InBandDetector::default();
    let mut merger = KeyDeduplicator::default();
    let mut keys = Vec::new();
    let mut by_way = Vec::new();
    for packet in &packets {
        let heard: Vec<(Key, KeyChannel)> = if packet.payload_type == 101 {
            rfc4733
                .handle_packet(packet.ssrc, packet.timestamp, &packet.payload)
                .map(|key| (key, KeyChannel::Rfc4733))
                .into_iter()
                .collect()
        } else {
            inband
                .handle_samples(&pcmu_samples(std::slice::from_ref(packet)))
                .into_iter()
                .map(|key| (key, KeyChannel::InBand))
                .collect()
        };
        for (key, via) in heard {
            by_way.push(via);
            keys.extend(merger.handle_key(key, via, packet.arrival));
        }
    }
    by_way.push(KeyChannel::SipInfo);
    keys.extend(merger.handle_key(Key::Digit(5), KeyChannel::SipInfo, info_at));
    assert_eq!(by_way.len(), 3, "{by_way:?}");
    assert_eq!(keys, vec![Key::Digit(5)], "counted once");
    // Audio and events in one sequence space.
    for pair in packets.windows(2) {
        assert_eq!(pair[1].sequence, pair[0].sequence.wrapping_add(1));
    }
}

#[tokio::test]
async fn unanswered_info_is_retransmitted_then_recorded_as_408() {
    let uas = FakeUas::new().await;
    let mut opts = options(&uas, "9", 50, &[KeyChannel::SipInfo]);
    // Timer F = 64·T1 = 320 ms, well before the hang-up.
    opts.timers.t1 = Duration::from_millis(5);
    opts.timers.t2 = Duration::from_millis(40);
    let call = tokio::spawn(place_call(opts));
    uas.answer().await;
    let first = uas.recv().await;
    assert_eq!(first.method(), "INFO");
    let again = uas.recv().await;
    assert_eq!(again.text, first.text, "Timer E resends the same INFO");
    // Ignore every INFO until the BYE, which we answer.
    let bye = loop {
        let request = uas.recv().await;
        if request.method() == "BYE" {
            break request;
        }
        assert_eq!(request.method(), "INFO");
    };
    uas.send(&bye.response("200 OK", None, "", ""), bye.from)
        .await;
    let report = timeout(STEP, call).await.unwrap().unwrap().unwrap();
    assert_eq!(report.dtmf_sent[0].info_status, Some(408));
    assert!(
        report.summary().contains("9 (info → 408)"),
        "{}",
        report.summary()
    );
}

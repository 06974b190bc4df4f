//! What a hostile sender on the internet tries, against the real binary on
//! loopback: each finding of the hardening work as a regression test.
//! Other loopback addresses (127.0.0.2, …) stand for other hosts.

use crate::common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::Line;
use common::raw_uac::{RawUac, status_of, to_tag};

const SECOND: Duration = Duration::from_secs(1);

/// The datagram that once panicked the SIP thread: a multi-byte character
/// across byte 4 of the start line.
const UTF8_START_LINE: &[u8] = b"abc\xc3\xa9 sip:x SIP/2.0\r\n\r\n";

/// The line still answers an OPTIONS from a fresh caller.
fn answers_options(line: &Line) -> bool {
    let uac = RawUac::new(line.sip);
    (0..3).any(|i| {
        uac.send(&uac.request("OPTIONS", &format!("z9hG4bK-alive{i}"), 1, ""));
        uac.wait_for_status(200, SECOND).is_some()
    })
}

#[test]
fn a_multibyte_start_line_over_udp_and_tcp_does_not_stop_the_line() {
    let mut line = Line::start(&[]);
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(UTF8_START_LINE, line.sip).unwrap();
    let mut tcp = TcpStream::connect(line.sip).unwrap();
    tcp.write_all(UTF8_START_LINE).unwrap();
    // Every multi-byte character at every position of a real request.
    let uac = RawUac::new(line.sip);
    let request = uac.request("OPTIONS", "z9hG4bK-utf8", 1, "");
    for ch in ["é", "€", "\u{2028}", "😀"] {
        for position in (0..request.len()).step_by(7) {
            let mut bytes = request.as_bytes()[..position].to_vec();
            bytes.extend_from_slice(ch.as_bytes());
            bytes.extend_from_slice(&request.as_bytes()[position..]);
            udp.send_to(&bytes, line.sip).unwrap();
        }
    }
    std::thread::sleep(SECOND / 2);
    assert!(line.is_running(), "{}", line.log_text());
    assert!(answers_options(&line), "{}", line.log_text());
}

#[test]
fn answers_go_to_the_sender_whatever_its_via_says() {
    let line = Line::start(&[]);
    // Someone else, on another loopback address, who must hear nothing.
    let victim = UdpSocket::bind("127.0.0.2:0").unwrap();
    victim.set_read_timeout(Some(SECOND / 2)).unwrap();
    let victim_addr = victim.local_addr().unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    sender.set_read_timeout(Some(SECOND)).unwrap();

    // rport: the source port; the Via and `received` name the victim.
    let lying = |branch: &str, via_params: &str| {
        format!(
            "OPTIONS sip:service@{line} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {victim_addr};branch={branch}{via_params}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:x@{victim_addr}>;tag=1\r\nTo: <sip:service@{line}>\r\n\
             Call-ID: lying-{branch}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            line = line.sip
        )
    };
    sender
        .send_to(
            lying("z9hG4bK-l1", ";rport;received=127.0.0.2").as_bytes(),
            line.sip,
        )
        .unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = sender.recv_from(&mut buf).expect("the answer comes back");
    assert_eq!(status_of(&String::from_utf8_lossy(&buf[..n])), Some(200));

    // No rport: the sender's IP, the Via's port. A listener there gets it.
    let same_host = UdpSocket::bind("127.0.0.1:0").unwrap();
    same_host.set_read_timeout(Some(SECOND)).unwrap();
    let via_port = same_host.local_addr().unwrap().port();
    let no_rport = lying("z9hG4bK-l2", ";received=127.0.0.2")
        .replace(&victim_addr.to_string(), &format!("127.0.0.2:{via_port}"));
    sender.send_to(no_rport.as_bytes(), line.sip).unwrap();
    let (n, _) = same_host.recv_from(&mut buf).expect("to the sender's IP");
    assert_eq!(status_of(&String::from_utf8_lossy(&buf[..n])), Some(200));
    assert!(
        victim.recv_from(&mut buf).is_err(),
        "nothing may reach 127.0.0.2, which sent nothing"
    );
}

#[test]
fn refusals_are_sent_once_and_never_name_the_product() {
    let line = Line::start(&[]);
    let uac = RawUac::new(line.sip);
    // No common codec: 488, once, not retransmitted by Timer G.
    uac.send(&uac.request("INVITE", "z9hG4bK-488", 1, &uac.offer("18")));
    let got = uac.receive_for(5 * SECOND);
    let statuses: Vec<_> = got.iter().filter_map(|(_, m)| status_of(m)).collect();
    assert_eq!(statuses, vec![488], "{got:?}");
    for method in ["OPTIONS", "REGISTER", "MESSAGE"] {
        uac.send(&uac.request(method, &format!("z9hG4bK-{method}"), 2, ""));
        let got = uac.receive_for(SECOND);
        assert_eq!(got.len(), 1, "{method}: {got:?}");
        let answer = &got[0].1.to_ascii_lowercase();
        assert!(
            !answer.contains("server:") && !answer.contains("user-agent:"),
            "{answer}"
        );
        assert!(!answer.contains("dial-a-service/"), "{answer}");
    }
}

/// A line behind a trunk (a dead registrar on loopback: registration
/// fails, which does not matter here) trusting only 10.0.0.0/8.
fn trusting_line(untrusted: &str, trust: Option<&str>) -> Line {
    let registrar = common::free_udp_port();
    let mut env = vec![
        ("DAS_TRUNK_REGISTRAR", format!("sip:127.0.0.1:{registrar}")),
        ("DAS_TRUNK_USERNAME", "stmarys".to_owned()),
        ("DAS_TRUNK_PASSWORD", "secret".to_owned()),
        ("DAS_TRUNK_UNTRUSTED", untrusted.to_owned()),
    ];
    if let Some(trust) = trust {
        env.push(("DAS_TRUNK_TRUST", trust.to_owned()));
    }
    Line::start(&env)
}

/// Every kind of request an untrusted scanner sends.
fn probes(uac: &RawUac) -> Vec<String> {
    let mut probes: Vec<String> = ["INVITE", "OPTIONS", "REGISTER", "MESSAGE", "BYE", "CANCEL"]
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let body = if *m == "INVITE" {
                uac.offer("0")
            } else {
                String::new()
            };
            uac.request(m, &format!("z9hG4bK-probe{i}"), 1, &body)
        })
        .collect();
    probes.push(
        uac.request("INVITE", "z9hG4bK-req", 1, &uac.offer("0"))
            .replacen("Max-Forwards", "Require: 100rel\r\nMax-Forwards", 1),
    );
    // An INVITE in a dialog that does not exist (once answered 481).
    probes.push(
        uac.request("INVITE", "z9hG4bK-tag", 1, &uac.offer("0"))
            .replacen(
                &format!("To: <sip:service@{}>", uac.line),
                &format!("To: <sip:service@{}>;tag=stale", uac.line),
                1,
            ),
    );
    probes
}

#[test]
fn untrusted_ignore_answers_nothing_to_any_method() {
    let line = trusting_line("ignore", Some("10.0.0.0/8"));
    assert!(
        line.log_text()
            .contains("calls are taken only from the trusted networks"),
        "the start log says who may call:\n{}",
        line.log_text()
    );
    let uac = RawUac::new(line.sip);
    for probe in probes(&uac) {
        uac.send(&probe);
    }
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(UTF8_START_LINE, line.sip).unwrap();
    let mut tcp = TcpStream::connect(line.sip).unwrap();
    tcp.write_all(probes(&uac)[1].as_bytes()).unwrap();
    tcp.set_read_timeout(Some(2 * SECOND)).unwrap();
    let got = uac.receive_for(2 * SECOND);
    assert!(got.is_empty(), "{got:?}");
    let mut buf = [0u8; 1024];
    assert!(
        !matches!(tcp.read(&mut buf), Ok(n) if n > 0),
        "nothing over TCP either"
    );
}

#[test]
fn untrusted_reject_answers_each_request_with_one_403() {
    let line = trusting_line("reject", Some("10.0.0.0/8"));
    let uac = RawUac::new(line.sip);
    let probes = probes(&uac);
    for probe in &probes {
        uac.send(probe);
    }
    let got = uac.receive_for(5 * SECOND);
    let statuses: Vec<_> = got.iter().filter_map(|(_, m)| status_of(m)).collect();
    assert_eq!(statuses, vec![403; probes.len()], "{got:?}");
}

#[test]
fn with_a_trunk_and_no_trust_only_the_trunk_may_call() {
    // The trunk is on 127.0.0.1; a caller on 127.0.0.2 is someone else.
    let line = trusting_line("reject", None);
    assert!(
        line.log_text()
            .contains("calls are taken only from the trunk's address"),
        "{}",
        line.log_text()
    );
    let stranger = RawUac::new_on(line.sip, "127.0.0.2");
    stranger.send(&stranger.request("INVITE", "z9hG4bK-direct", 1, &stranger.offer("0")));
    assert!(stranger.wait_for_status(403, 2 * SECOND).is_some());
}

#[test]
fn a_flood_from_one_address_cannot_take_every_port() {
    // Twenty port pairs; setups from one address are capped at five.
    let base = 30_000 + (std::process::id() % 200) as u16 * 100;
    let line = Line::start(&[
        ("DAS_MEDIA_RTP_PORTS", format!("{base}-{}", base + 39)),
        ("DAS_SIP_MAX_SETUPS_PER_SOURCE", "5".to_owned()),
        // The rate limit is tried on its own below.
        ("DAS_SIP_MAX_CALL_RATE_PER_SOURCE", "1000".to_owned()),
        ("DAS_SIP_ANSWER_DELAY", "20s".to_owned()),
    ]);
    let flooder = RawUac::new_on(line.sip, "127.0.0.3");
    for i in 0..40 {
        let mut invite =
            flooder.request("INVITE", &format!("z9hG4bK-f{i}"), 1, &flooder.offer("0"));
        invite = invite.replace(&flooder.call_id, &format!("flood-{i}"));
        flooder.send(&invite);
    }
    let got = flooder.receive_for(2 * SECOND);
    let ringing = got
        .iter()
        .filter(|(_, m)| status_of(m) == Some(180))
        .count();
    let busy: Vec<_> = got
        .iter()
        .filter(|(_, m)| status_of(m) == Some(503))
        .collect();
    assert_eq!(ringing, 5, "{got:?}");
    assert_eq!(busy.len(), 35);
    assert!(busy[0].1.contains("Retry-After:"), "{}", busy[0].1);
    // Someone else still gets through, and is rung.
    let caller = RawUac::new(line.sip);
    caller.send(&caller.request("INVITE", "z9hG4bK-real", 1, &caller.offer("0")));
    assert!(caller.wait_for_status(180, 2 * SECOND).is_some());
    // The flood's refusals were logged once, then summarised.
    let refusals = line.log_count("too many calls being set up from one address");
    assert_eq!(refusals, 1, "{}", line.log_text());
}

#[test]
fn calls_from_one_address_faster_than_a_person_dials_get_503() {
    let line = Line::start(&[]);
    let flooder = RawUac::new_on(line.sip, "127.0.0.4");
    // Calls that complete at once: each is answered, ACKed and hung up.
    let mut answered = 0;
    let mut busy = 0;
    for i in 0..20 {
        let mut uac = RawUac::new_on(line.sip, "127.0.0.4");
        uac.call_id = format!("fast-{i}");
        uac.send(&uac.request("INVITE", &format!("z9hG4bK-fast{i}"), 1, &uac.offer("0")));
        for (_, message) in uac.receive_for(SECOND / 5) {
            match status_of(&message) {
                Some(200) => {
                    answered += 1;
                    uac.to_tag = to_tag(&message);
                    uac.send(&uac.request("ACK", &format!("z9hG4bK-fast{i}a"), 1, ""));
                    uac.send(&uac.request("BYE", &format!("z9hG4bK-fast{i}b"), 2, ""));
                }
                Some(503) => busy += 1,
                _ => {}
            }
        }
    }
    // A burst of twice the default two a second, then about two a second.
    assert!((4..=14).contains(&answered), "{answered} answered");
    assert_eq!(answered + busy, 20, "{answered} answered, {busy} busy");
    assert_eq!(
        line.log_count("calls coming too fast from one address"),
        1,
        "{}",
        line.log_text()
    );
    // Someone else is not slowed down by it.
    let caller = RawUac::new(line.sip);
    caller.send(&caller.request("INVITE", "z9hG4bK-other", 1, &caller.offer("0")));
    assert!(caller.wait_for_status(200, 2 * SECOND).is_some());
    drop(flooder);
}

#[test]
fn tcp_junk_is_cut_off_and_cannot_hold_connections() {
    let line = Line::start(&[]);
    // A body far past the 64 KiB cap: closed at once, not buffered.
    let mut big = TcpStream::connect(line.sip).unwrap();
    let header = format!(
        "INVITE sip:service@{} SIP/2.0\r\nContent-Length: 1048576\r\n\r\n",
        line.sip
    );
    let started = Instant::now();
    big.write_all(header.as_bytes()).unwrap();
    big.set_read_timeout(Some(5 * SECOND)).unwrap();
    let mut buf = [0u8; 64];
    assert!(matches!(big.read(&mut buf), Ok(0) | Err(_)), "closed");
    assert!(started.elapsed() < 2 * SECOND, "{:?}", started.elapsed());

    // Sixteen connections from one address, and no more.
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(TcpStream::connect(line.sip).unwrap());
    }
    std::thread::sleep(SECOND / 2);
    let mut closed = 0;
    for stream in &mut held {
        stream.set_read_timeout(Some(SECOND / 10)).unwrap();
        if matches!(stream.read(&mut buf), Ok(0)) {
            closed += 1;
        }
    }
    assert_eq!(
        closed, 4,
        "connections past 16 from one address are refused"
    );
    drop(held);
    // Their closing reaches the line's transport a moment later.
    std::thread::sleep(SECOND);

    // A header trickled one byte at a time never frames a message, and the
    // trickle does not keep the connection open (30 s for a first message).
    let mut slow = TcpStream::connect(line.sip).unwrap();
    slow.set_read_timeout(Some(SECOND / 10)).unwrap();
    let trickle = b"OPTIONS sip:service@127.0.0.1 SIP/2.0\r\nX-Slow: ";
    let started = Instant::now();
    let mut i = 0;
    let closed_after = loop {
        let byte = [trickle.get(i).copied().unwrap_or(b'a')];
        i += 1;
        if slow.write_all(&byte).is_err() || matches!(slow.read(&mut buf), Ok(0)) {
            break started.elapsed();
        }
        assert!(started.elapsed() < 45 * SECOND, "still open after 45 s");
        std::thread::sleep(SECOND / 2);
    };
    assert!(
        closed_after >= 29 * SECOND,
        "closed too early: {closed_after:?}"
    );
    assert!(answers_options(&line));
}

#[test]
fn a_huge_offer_costs_milliseconds_and_gets_a_small_answer() {
    let line = Line::start(&[]);
    let uac = RawUac::new(line.sip);
    // 60 KB of media lines in one datagram: refused, briefly, at once.
    let mut offer = uac.offer("0");
    while offer.len() < 60_000 {
        offer.push_str("m=video 0 RTP/AVP 96 97 98 99\r\n");
    }
    let started = Instant::now();
    uac.send(&uac.request("INVITE", "z9hG4bK-huge", 1, &offer));
    let answer = uac.wait_for_status(488, 2 * SECOND).expect("488");
    assert!(started.elapsed() < SECOND / 5, "{:?}", started.elapsed());
    assert!(answer.len() < 1500, "{} bytes", answer.len());
    // A mebibyte over TCP: the connection is closed at the size cap.
    let mut tcp = TcpStream::connect(line.sip).unwrap();
    let mut body = uac.offer("0");
    while body.len() < 1 << 20 {
        body.push_str("a=x-filler:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    let invite = uac
        .request("INVITE", "z9hG4bK-mib", 1, &body)
        .replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    let started = Instant::now();
    let _ = tcp.write_all(invite.as_bytes());
    tcp.set_read_timeout(Some(5 * SECOND)).unwrap();
    let mut buf = [0u8; 64];
    assert!(matches!(tcp.read(&mut buf), Ok(0) | Err(_)));
    assert!(started.elapsed() < SECOND, "{:?}", started.elapsed());
    assert!(answers_options(&line));
}

#[test]
fn an_abandoned_call_ends_at_max_call_duration() {
    let line = Line::start(&[("DAS_LINE_MAX_CALL_DURATION", "1m".to_owned())]);
    let mut uac = RawUac::new(line.sip);
    let inactive = uac.offer("0").replace("a=sendrecv", "a=inactive");
    uac.send(&uac.request("INVITE", "z9hG4bK-abandon", 1, &inactive));
    let ok = uac.wait_for_status(200, 2 * SECOND).expect("answered");
    let answered = Instant::now();
    uac.to_tag = to_tag(&ok);
    uac.send(&uac.request("ACK", "z9hG4bK-abandon-ack", 1, ""));
    // The caller goes silent. The BYE comes at the limit, not before.
    let bye = uac
        .receive_for(70 * SECOND)
        .into_iter()
        .find(|(_, m)| m.starts_with("BYE "))
        .expect("a BYE within 70 s");
    let after = bye.0 - answered;
    assert!(after >= 59 * SECOND && after <= 62 * SECOND, "{after:?}");
    assert_eq!(
        line.log_count("code=\"call.max_duration\""),
        1,
        "{}",
        line.log_text()
    );
}

/// An answered call from `uac` (offer tweaked by `edit`), ACKed: when, and
/// the line's RTP address from its answer.
fn answered(
    line: &Line,
    uac: &mut RawUac,
    edit: impl Fn(String) -> String,
) -> (Instant, std::net::SocketAddr) {
    let offer = edit(uac.offer("0"));
    let invite = uac.request("INVITE", "z9hG4bK-call", 1, &offer);
    let ok = (0..5)
        .find_map(|_| {
            uac.send(&invite);
            uac.wait_for_status(200, SECOND)
        })
        .unwrap_or_else(|| panic!("answered\n{}", line.log_text()));
    uac.to_tag = to_tag(&ok);
    uac.send(&uac.request("ACK", "z9hG4bK-call-ack", 1, ""));
    let port = ok
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|rest| rest.split(' ').next()?.parse().ok())
        .expect("an m=audio line in the answer");
    (
        Instant::now(),
        std::net::SocketAddr::new(line.sip.ip(), port),
    )
}

/// An RTP packet: PCMU silence, or (with `key`) an RFC 4733 event (PT 101).
fn rtp_packet(ssrc: u32, seq: u16, key: Option<u8>) -> Vec<u8> {
    let pt = if key.is_some() { 101 } else { 0 };
    let mut packet = vec![0x80, pt];
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    packet.extend_from_slice(&ssrc.to_be_bytes());
    match key {
        Some(event) => packet.extend_from_slice(&[event, 10, 0, 160]),
        None => packet.extend_from_slice(&[0xff; 160]),
    }
    packet
}

#[test]
fn a_strangers_rtp_and_keys_change_nothing_and_a_nat_move_is_followed() {
    let line = Line::start(&[]);
    let mut uac = RawUac::new(line.sip);
    let (_, ours) = answered(&line, &mut uac, |offer| offer);
    assert!(uac.count_rtp_for(SECOND / 2) > 5, "the service plays");
    // The caller's own packet locks the stream on its address.
    uac.rtp.send_to(&rtp_packet(7, 1, None), ours).unwrap();
    // A stranger on another host sends audio and presses 2, in sequence.
    let stranger = UdpSocket::bind("127.0.0.2:0").unwrap();
    stranger.set_read_timeout(Some(SECOND / 2)).unwrap();
    for seq in 0..30 {
        let key = (seq % 3 == 0).then_some(2);
        stranger.send_to(&rtp_packet(99, seq, key), ours).unwrap();
    }
    assert!(
        uac.count_rtp_for(SECOND) > 30,
        "the audio stays with the caller"
    );
    assert!(
        stranger.recv_from(&mut [0u8; 2048]).is_err(),
        "none for the stranger"
    );
    assert_eq!(
        line.log_count("caller pressed a key"),
        0,
        "{}",
        line.log_text()
    );
    assert!(line.log_count("RTP from someone not the caller ignored") >= 1);

    // Another call, whose caller is behind NAT: its RTP comes from another
    // port than the SDP says, in the first second. The line follows it.
    let mut natted = RawUac::new(line.sip);
    natted.call_id.push_str("-nat");
    let (_, ours) = answered(&line, &mut natted, |offer| offer);
    let outside = UdpSocket::bind("127.0.0.1:0").unwrap();
    outside.set_read_timeout(Some(SECOND)).unwrap();
    for seq in 1..=5 {
        outside.send_to(&rtp_packet(42, seq, None), ours).unwrap();
    }
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + 2 * SECOND;
    let mut at_outside = 0;
    while Instant::now() < deadline && at_outside < 10 {
        if outside.recv_from(&mut buf).is_ok() {
            at_outside += 1;
        }
    }
    assert_eq!(at_outside, 10, "the audio follows the caller's NAT address");
}

#[test]
fn an_abandoned_held_call_ends_at_the_hold_timeout() {
    let line = Line::start(&[("DAS_MEDIA_HOLD_TIMEOUT", "10s".to_owned())]);
    // The three ways to hold, as three callers at once.
    std::thread::scope(|scope| {
        for (i, hold) in ["a=sendonly", "a=inactive", "c=0.0.0.0"].iter().enumerate() {
            let line = &line;
            scope.spawn(move || {
                let mut uac = RawUac::new(line.sip);
                uac.call_id.push_str(&format!("-hold{i}"));
                let (started, _) = answered(line, &mut uac, |offer| {
                    if hold.starts_with("c=") {
                        offer.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0")
                    } else {
                        offer.replace("a=sendrecv", hold)
                    }
                });
                // The caller sends nothing at all from now on.
                let bye = uac
                    .receive_for(15 * SECOND)
                    .into_iter()
                    .find(|(_, m)| m.starts_with("BYE "))
                    .unwrap_or_else(|| panic!("{hold}: no BYE\n{}", line.log_text()));
                let after = bye.0 - started;
                assert!(
                    after >= 9 * SECOND && after < 12 * SECOND,
                    "{hold}: {after:?}"
                );
            });
        }
    });
    assert_eq!(
        line.log_count("code=\"media.hold_timeout\""),
        3,
        "{}",
        line.log_text()
    );
}

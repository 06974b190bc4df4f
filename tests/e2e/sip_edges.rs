//! Protocol edge cases against the real binary over real UDP: CANCEL, BYE
//! mid-service, retransmitted INVITE, lost ACK, no common codec, garbage.

use crate::common;

use std::time::{Duration, Instant};

use common::Line;
use common::raw_uac::{RawUac, status_of, to_tag};

const SECOND: Duration = Duration::from_secs(1);

fn answered_call(line: &Line) -> RawUac {
    let mut uac = RawUac::new(line.sip);
    // Retransmit like a real UAC (Timer A): UDP may drop the first INVITE
    // when the line's receive buffer is full.
    let invite = uac.request("INVITE", "z9hG4bK-ans", 1, &uac.offer("0"));
    let ok = (0..8)
        .find_map(|_| {
            uac.send(&invite);
            uac.wait_for_status(200, Duration::from_millis(500))
        })
        .expect("200 OK");
    uac.to_tag = to_tag(&ok);
    uac.send(&uac.request("ACK", "z9hG4bK-ans-ack", 1, ""));
    uac
}

#[test]
fn cancel_before_the_answer_gets_200_and_487() {
    let line = Line::start(&[("DAS_SIP_ANSWER_DELAY", "3s".into())]);
    let uac = RawUac::new(line.sip);
    uac.send(&uac.request("INVITE", "z9hG4bK-c1", 1, &uac.offer("0")));
    assert!(uac.wait_for_status(180, 2 * SECOND).is_some(), "ringing");
    uac.send(&uac.request("CANCEL", "z9hG4bK-c1", 1, ""));
    let messages = uac.receive_for(SECOND);
    let statuses: Vec<(u16, bool)> = messages
        .iter()
        .filter_map(|(_, m)| status_of(m).map(|s| (s, m.contains("CANCEL"))))
        .collect();
    assert!(
        statuses.contains(&(200, true)),
        "200 to the CANCEL: {statuses:?}"
    );
    assert!(
        statuses.contains(&(487, false)),
        "487 to the INVITE: {statuses:?}"
    );
    let terminated = messages
        .iter()
        .find(|(_, m)| status_of(m) == Some(487))
        .unwrap();
    let mut uac = uac;
    uac.to_tag = to_tag(&terminated.1);
    uac.send(&uac.request("ACK", "z9hG4bK-c1", 1, ""));
    // Never answered after all, and no media.
    let later = uac.receive_for(4 * SECOND);
    assert!(
        later.iter().all(|(_, m)| status_of(m) != Some(200)),
        "{later:?}"
    );
    assert_eq!(uac.count_rtp_for(Duration::from_millis(200)), 0);
}

#[test]
fn bye_from_the_caller_stops_media_within_100ms() {
    let line = Line::start(&[]);
    let uac = answered_call(&line);
    assert!(uac.count_rtp_for(SECOND) > 30, "media flows");
    let sent_at = Instant::now();
    uac.send(&uac.request("BYE", "z9hG4bK-bye1", 2, ""));
    // Collect RTP arrivals until a quiet half second.
    let mut last_rtp = None;
    let mut buf = [0u8; 2048];
    uac.rtp
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    while uac.rtp.recv_from(&mut buf).is_ok() {
        last_rtp = Some(Instant::now());
    }
    if let Some(last) = last_rtp {
        let after = last.saturating_duration_since(sent_at);
        assert!(
            after < Duration::from_millis(100),
            "RTP still arriving {after:?} after BYE"
        );
    }
    assert!(
        uac.wait_for_status(200, SECOND).is_some()
            || line.log_count("code=\"call.caller_hung_up\"") > 0
    );
}

#[test]
fn retransmitted_invite_is_one_call() {
    let line = Line::start(&[]);
    let uac = RawUac::new(line.sip);
    let invite = uac.request("INVITE", "z9hG4bK-rt", 1, &uac.offer("0"));
    uac.send(&invite);
    std::thread::sleep(Duration::from_millis(100));
    uac.send(&invite);
    uac.send(&invite);
    let messages = uac.receive_for(Duration::from_millis(600));
    let oks: Vec<_> = messages
        .iter()
        .filter(|(_, m)| status_of(m) == Some(200))
        .collect();
    assert!(!oks.is_empty());
    // Every 200 belongs to the same dialog.
    let tags: std::collections::HashSet<_> = oks.iter().map(|(_, m)| to_tag(m)).collect();
    assert_eq!(tags.len(), 1, "one dialog, not {}", tags.len());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(line.log_count("incoming call"), 1, "{}", line.log_text());
}

#[test]
fn lost_ack_retransmits_the_200_until_the_ack_arrives() {
    let line = Line::start(&[]);
    let mut uac = RawUac::new(line.sip);
    uac.send(&uac.request("INVITE", "z9hG4bK-la", 1, &uac.offer("0")));
    let messages = uac.receive_for(Duration::from_millis(1_800));
    let oks: Vec<Instant> = messages
        .iter()
        .filter(|(_, m)| status_of(m) == Some(200))
        .map(|(t, _)| *t)
        .collect();
    // Sent at 0, then T1 = 0.5 s, then 1.5 s.
    assert!(oks.len() >= 3, "200 retransmitted: {} copies", oks.len());
    let gap1 = oks[1] - oks[0];
    let gap2 = oks[2] - oks[1];
    assert!(
        gap1 >= Duration::from_millis(400) && gap1 <= Duration::from_millis(800),
        "{gap1:?}"
    );
    assert!(
        gap2 >= Duration::from_millis(900) && gap2 <= Duration::from_millis(1_500),
        "{gap2:?}"
    );
    uac.to_tag = to_tag(
        &messages
            .iter()
            .find(|(_, m)| status_of(m) == Some(200))
            .unwrap()
            .1,
    );
    uac.send(&uac.request("ACK", "z9hG4bK-la-ack", 1, ""));
    assert!(uac.count_rtp_for(SECOND) > 30, "media starts after the ACK");
    let after = uac.receive_for(Duration::from_millis(2_500));
    assert!(
        after.iter().all(|(_, m)| status_of(m) != Some(200)),
        "no 200 after the ACK"
    );
}

#[test]
fn no_common_codec_is_488() {
    let line = Line::start(&[]);
    let uac = RawUac::new(line.sip);
    uac.send(&uac.request("INVITE", "z9hG4bK-488", 1, &uac.offer("18 9")));
    assert!(uac.wait_for_status(488, 2 * SECOND).is_some());
}

#[test]
fn a_burst_of_malformed_datagrams_then_a_normal_call() {
    let line = Line::start(&[]);
    let junk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut seed = 0x2545_f491_u32;
    for i in 0..500 {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let datagram: Vec<u8> = match i % 4 {
            0 => (0..(seed % 1400) as usize)
                .map(|k| (seed as usize).wrapping_mul(k + 1) as u8)
                .collect(),
            1 => b"INVITE sip:x SIP/2.0\r\nVia: nonsense\r\n\r\n".to_vec(),
            2 => format!(
                "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: {}\r\n\r\n",
                seed
            )
            .into_bytes(),
            _ => b"SIP/2.0 999 What\r\nCall-ID: x\r\n\r\n".to_vec(),
        };
        let _ = junk.send_to(&datagram, line.sip);
    }
    let uac = answered_call(&line);
    assert!(
        uac.count_rtp_for(SECOND) > 30,
        "the line still plays after the burst"
    );
}

#[test]
fn reinvite_holds_resumes_and_moves_the_media() {
    let line = Line::start(&[]);
    let uac = answered_call(&line);
    assert!(
        uac.count_rtp_for(Duration::from_millis(500)) > 15,
        "media flows"
    );

    // Hold: the caller will only send; the line answers recvonly and goes quiet.
    let hold = uac.offer("0").replace("a=sendrecv", "a=sendonly");
    uac.send(&uac.request("INVITE", "z9hG4bK-hold", 2, &hold));
    let ok = uac
        .wait_for_status(200, 2 * SECOND)
        .expect("200 to the hold");
    assert!(ok.contains("a=recvonly"), "{ok}");
    uac.send(&uac.request("ACK", "z9hG4bK-hold-ack", 2, ""));
    let _ = uac.count_rtp_for(Duration::from_millis(100)); // in flight
    assert_eq!(
        uac.count_rtp_for(Duration::from_millis(500)),
        0,
        "silent on hold"
    );

    // Resume on a new media port: the audio follows.
    let moved = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let new_port = moved.local_addr().unwrap().port();
    let resume = uac.offer("0").replace(
        &format!("m=audio {} ", uac.rtp_port()),
        &format!("m=audio {new_port} "),
    );
    uac.send(&uac.request("INVITE", "z9hG4bK-resume", 3, &resume));
    let ok = uac
        .wait_for_status(200, 2 * SECOND)
        .expect("200 to the resume");
    assert!(ok.contains("a=sendrecv"), "{ok}");
    uac.send(&uac.request("ACK", "z9hG4bK-resume-ack", 3, ""));
    moved
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + SECOND;
    let mut arrived = 0;
    while Instant::now() < deadline {
        if moved.recv_from(&mut buf).is_ok() {
            arrived += 1;
        }
    }
    assert!(
        arrived > 30,
        "media follows the new address: {arrived} packets"
    );
}

//! A real third-party caller: sipp dials the line, listens and receives the
//! line's BYE; tshark confirms one clean RTP stream (no loss, no sequence
//! or timestamp errors).

use crate::common;

use std::process::Command;

use common::capture::{Capture, rtp_streams};
use common::{Parish, ThreeServices, free_udp_port, have_tool, repo};
use dial_a_service::media::g711::ulaw_decode;

#[test]
fn sipp_calls_hears_one_clean_stream_and_gets_the_bye() {
    sipp_call("u1");
}

/// The same call with SIP over TCP (RFC 3261 §18): the line accepts the
/// connection on `[sip] listen`, answers on it, and sends its BYE on it.
#[test]
fn sipp_calls_over_tcp() {
    sipp_call("t1");
}

fn sipp_call(transport_mode: &str) {
    if !have_tool("sipp") || !have_tool("tshark") || !have_tool("espeak-ng") || !have_tool("sox") {
        return;
    }
    let parish = Parish::new("Short", "A short service for sipp.", 4.0);
    let dir = &parish.dir;
    let line = parish.line();

    let media_port = free_udp_port() & !1;
    let sipp_port = free_udp_port();
    let capture = Capture::start(dir.path(), &[media_port]);
    let output = Command::new("sipp")
        .current_dir(dir.path())
        .args([
            "-sf",
            repo().join("tests/sipp/uac_listen.xml").to_str().unwrap(),
            "-t",
            transport_mode,
            "-m",
            "1",
            "-i",
            "127.0.0.1",
            "-p",
            &sipp_port.to_string(),
            "-mp",
            &media_port.to_string(),
            "-timeout",
            "40s",
            "-timeout_error",
            "-trace_err",
            "-error_file",
            dir.path().join("sipp-errors.log").to_str().unwrap(),
            "-nostdin",
        ])
        .arg(line.sip.to_string())
        .output()
        .expect("run sipp");
    let pcap = capture.stop();
    let sipp_out = String::from_utf8_lossy(&output.stdout).into_owned();
    let errors = std::fs::read_to_string(dir.path().join("sipp-errors.log")).unwrap_or_default();
    assert!(
        output.status.success(),
        "sipp failed ({:?}):\n{errors}\n{sipp_out}",
        output.status
    );
    assert!(
        line.log_count("code=\"call.finished\"") >= 1,
        "the line hung up by itself:\n{}",
        line.log_text()
    );
    let expected = if transport_mode == "t1" {
        "transport=\"TCP\""
    } else {
        "transport=\"UDP\""
    };
    assert_eq!(
        line.log_count(expected),
        1,
        "the call came over {expected}:\n{}",
        line.log_text()
    );

    let (streams, text) = rtp_streams(&pcap, media_port);
    let to_sipp: Vec<_> = streams
        .iter()
        .filter(|s| s.dst_port == media_port)
        .collect();
    assert_eq!(to_sipp.len(), 1, "one RTP stream to sipp:\n{text}");
    let stream = to_sipp[0];
    assert!(stream.packets >= 190, "about 4 s of 20 ms packets:\n{text}");
    assert_eq!(stream.lost, 0, "no loss:\n{text}");
    assert!(!stream.problem, "no sequence or timestamp errors:\n{text}");
    assert!(stream.max_delta_ms < 40.0, "no gap over 40 ms:\n{text}");
}

/// A real peer presses the key: sipp plays its RFC 4733 recording of "2"
/// during the menu, and the capture shows the second service arriving
/// within 100 ms of the event, and nothing else after it.
#[test]
fn sipp_presses_2_by_rfc4733_and_the_capture_holds_the_second_service() {
    if !have_tool("sipp") || !have_tool("tshark") || !have_tool("espeak-ng") || !have_tool("sox") {
        return;
    }
    let parish = ThreeServices::new(6.0);
    let dir = parish.dir.path();
    let pcap = std::path::Path::new("/usr/share/sip-tester/dtmf_2833_2.pcap");
    std::fs::copy(pcap, dir.join("dtmf_2833_2.pcap")).expect("sip-tester ships dtmf_2833_2.pcap");
    let line = parish.line(&[]);

    let media_port = free_udp_port() & !1;
    let sipp_port = free_udp_port();
    let capture = Capture::start(dir, &[media_port]);
    let output = Command::new("sipp")
        .current_dir(dir)
        .args([
            "-sf",
            repo().join("tests/sipp/uac_dtmf.xml").to_str().unwrap(),
        ])
        .args(["-m", "1", "-i", "127.0.0.1", "-p", &sipp_port.to_string()])
        .args([
            "-mp",
            &media_port.to_string(),
            "-timeout",
            "120s",
            "-timeout_error",
        ])
        .arg("-nostdin")
        .arg(line.sip.to_string())
        .output()
        .expect("run sipp");
    let capture = capture.stop();
    assert!(
        output.status.success(),
        "sipp failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        line.log_text()
    );
    assert_eq!(
        line.log_count("caller pressed a key"),
        1,
        "{}",
        line.log_text()
    );

    let packets = rtp_packets(&capture, media_port);
    let event = packets
        .iter()
        .find(|p| p.to_port != media_port && p.payload_type == 101)
        .expect("sipp's telephone-event packets are in the capture");
    assert_eq!(event.payload.first(), Some(&2), "the event is key 2");
    let ours: Vec<&RtpPacket> = packets.iter().filter(|p| p.to_port == media_port).collect();
    let switch = ours
        .iter()
        .find(|p| p.marker && p.time > event.time)
        .expect("new audio after the key");
    let barge_in = switch.time - event.time;
    assert!(
        barge_in < 0.1,
        "the menu went on {barge_in:.3} s after the key"
    );

    // What sipp heard from the key on, decoded from the capture.
    let after: Vec<f32> = ours
        .iter()
        .filter(|p| p.time >= switch.time)
        .flat_map(|p| {
            p.payload
                .iter()
                .map(|&c| f32::from(ulaw_decode(c)) / 32768.0)
        })
        .collect();
    let scores: Vec<f32> = (1..=3).map(|k| parish.score_samples(&after, k)).collect();
    eprintln!("capture after the key vs services 1-3: {scores:?}");
    assert!(
        scores[1] >= 0.9,
        "service 2 was not what sipp heard: {scores:?}"
    );
    assert!(scores[1] > scores[0] && scores[1] > scores[2], "{scores:?}");
}

struct RtpPacket {
    time: f64,
    to_port: u16,
    payload_type: u8,
    marker: bool,
    payload: Vec<u8>,
}

/// Every RTP packet to or from `port` in a capture, in order.
fn rtp_packets(capture: &std::path::Path, port: u16) -> Vec<RtpPacket> {
    let output = Command::new("tshark")
        .args(["-r", capture.to_str().unwrap()])
        .args(["-d", &format!("udp.port=={port},rtp"), "-Y", "rtp"])
        .args(["-T", "fields", "-E", "separator=;"])
        .args([
            "-e",
            "frame.time_relative",
            "-e",
            "udp.dstport",
            "-e",
            "rtp.p_type",
        ])
        .args(["-e", "rtp.marker", "-e", "rtp.payload"])
        .output()
        .expect("run tshark");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(';').collect();
            let [time, to_port, payload_type, marker, payload] = fields[..] else {
                return None;
            };
            let hex: String = payload.chars().filter(|c| c.is_ascii_hexdigit()).collect();
            let payload = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .ok()?;
            Some(RtpPacket {
                time: time.parse().ok()?,
                to_port: to_port.parse().ok()?,
                payload_type: payload_type.parse().ok()?,
                marker: marker == "1" || marker == "True",
                payload,
            })
        })
        .collect()
}

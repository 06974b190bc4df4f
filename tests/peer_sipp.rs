//! A real third-party caller: sipp dials the line, listens and receives the
//! line's BYE; tshark confirms one clean RTP stream (no loss, no sequence
//! or timestamp errors).

mod common;

use std::process::Command;

use common::capture::{Capture, rtp_streams};
use common::{Parish, free_udp_port, have_tool, repo};

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
        line.log_count("ContentFinished") >= 1,
        "the line hung up by itself:\n{}",
        line.log_text()
    );
    let expected = if transport_mode == "t1" {
        "transport=Tcp"
    } else {
        "transport=Udp"
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

//! `dial-a-service bench --through-sip` at a small load: 200 sipp calls for
//! 20 s, and 100 more set up at 50 a second meanwhile, with the JSON report
//! checked for sanity, not speed (CI machines vary): every call up and none
//! failed, every sampled stream captured with packets and no loss, every
//! extra call timed to its first RTP packet, the line's CPU and memory
//! measured.

use crate::common;

use std::process::Command;

use common::{have_tool, repo};

const CALLS: u64 = 200;
const SETUP_CALLS: u64 = 100;

#[test]
fn bench_through_sip_sets_up_every_call_and_captures_every_sampled_stream() {
    if !have_tool("sipp") || !have_tool("tshark") || !have_tool("dumpcap") {
        return;
    }
    let mut command = Command::new(env!("CARGO_BIN_EXE_dial-a-service"));
    // The line the bench starts gets a config of its own; the tests'
    // DAS_ knobs are no keys of it.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("DAS_") {
            command.env_remove(name);
        }
    }
    let output = command
        .current_dir(repo())
        .args(["bench", "--through-sip", "--calls", &CALLS.to_string()])
        .args(["--seconds", "20", "--sample", "8", "--json"])
        .args([
            "--setup-calls",
            &SETUP_CALLS.to_string(),
            "--setup-rate",
            "50",
        ])
        .output()
        .expect("run dial-a-service bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the bench passed its own sanity checks ({:?}):\n{stderr}\n{stdout}",
        output.status
    );
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("the report is JSON ({e}):\n{stdout}\n{stderr}"));
    let at = |pointer: &str| {
        report
            .pointer(pointer)
            .unwrap_or_else(|| panic!("{pointer} in the report:\n{stdout}"))
            .clone()
    };

    assert_eq!(at("/problems"), serde_json::json!([]), "{stdout}");
    assert_eq!(at("/calls_up"), CALLS, "{stdout}");
    assert_eq!(at("/calls_at_end"), CALLS, "{stdout}");
    assert_eq!(at("/sipp_successful"), CALLS, "{stdout}");
    assert_eq!(at("/sipp_failed"), 0, "{stdout}");
    assert_eq!(at("/sipp_exit"), 0, "{stdout}");
    assert_eq!(
        at("/setup/count"),
        CALLS,
        "an INVITE-to-200 time per call: {stdout}"
    );

    // Ports taken in pairs from 40000: one call in eight is 25 of 200,
    // fewer only where another process held a pair.
    let sampled = at("/sampled_ports");
    let sampled = sampled.as_array().expect("sampled_ports is an array");
    assert!(
        (20..=25).contains(&sampled.len()),
        "about one call in eight sampled: {stdout}"
    );
    let streams = at("/rtp/streams");
    let streams = streams.as_array().expect("streams is an array");
    for port in sampled {
        let stream = streams
            .iter()
            .find(|s| s["stream"]["src_port"] == *port)
            .unwrap_or_else(|| panic!("the sampled call on port {port} was captured: {stdout}"));
        // 20 s of 20 ms packets at least, and none missing.
        assert!(
            stream["packets"].as_u64().expect("packets") >= 1000,
            "{stream}"
        );
        assert_eq!(stream["lost"], 0, "{stream}");
    }
    assert_eq!(at("/rtp/lost"), 0, "{stdout}");

    // The extra calls: each answered, and each one's first RTP packet
    // found after its ACK.
    assert_eq!(at("/setup_load/answered"), SETUP_CALLS, "{stdout}");
    assert_eq!(at("/setup_load/without_rtp"), 0, "{stdout}");
    assert_eq!(at("/setup_load/sipp_failed"), 0, "{stdout}");
    assert_eq!(at("/setup_load/invite_to_200/count"), SETUP_CALLS);
    assert_eq!(at("/setup_load/ack_to_first_rtp/count"), SETUP_CALLS);
    assert!(at("/setup_load/ack_to_first_rtp/max_ms").as_f64() > Some(0.0));

    for figure in [
        "/loaded/cpu_seconds",
        "/loaded/cores",
        "/loaded/percent_of_a_core_per_call",
        "/loaded/cpu_per_packet_us",
        "/rss_idle_kib",
        "/rss_loaded_kib",
        "/rss_end_kib",
    ] {
        let value = at(figure).as_f64().expect("a number");
        assert!(value > 0.0, "{figure} is {value}: {stdout}");
    }
}

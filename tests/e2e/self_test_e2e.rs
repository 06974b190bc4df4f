//! The line's calls to itself (`[self_test] interval`), against the real
//! binary: with a service that plays, the self-test passes and says so on
//! `/healthz`, `/metrics` and the status page, without being counted as a
//! caller, on a line that takes calls only from a network loopback is not
//! in; once the service's file is replaced by garbage and nothing
//! plays, `das_self_test_ok` is 0, `/healthz` is 503 and one log line says
//! what was wrong.

use crate::admin_http::{get, scrape, value};
use crate::common;

use std::time::Duration;

use dial_a_service::client::{CallOptions, place_call};
use dial_a_service::media::Codec;

use common::{Line, Parish, have_tool};

fn tools() -> bool {
    have_tool("espeak-ng") && have_tool("sox") && have_tool("ffmpeg")
}

/// The `self_test` check of `/healthz`, and the whole answer's status.
fn health(admin: std::net::SocketAddr) -> (u16, serde_json::Value) {
    let answer = get(admin, "/healthz");
    let json: serde_json::Value = serde_json::from_str(&answer.body).expect("JSON health");
    let check = json["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "self_test")
        .cloned()
        .unwrap_or_else(|| panic!("no self_test check in {json}"));
    (answer.status, check)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_line_calls_itself_and_says_so_when_its_service_no_longer_plays() {
    if !tools() {
        return;
    }
    let parish = Parish::new(
        "Evensong",
        "The line hears itself. Let us pray for all who call.",
        10.0,
    );
    let logs = tempfile::tempdir().unwrap();
    let calls_log = logs.path().join("calls.jsonl");
    let mut env = parish.env();
    env.push(("DAS_SELF_TEST_INTERVAL", "10s".to_owned()));
    env.push(("DAS_LOG_CALLS", calls_log.display().to_string()));
    // Calls only from a provider's network: the self-test's own socket
    // still gets in, a caller on this machine does not.
    env.push(("DAS_SIP_TRUST", "192.0.2.0/24".to_owned()));
    let line = Line::start(&env);
    let admin = line.admin.expect("the admin listener is on");
    let mut stranger = CallOptions::new(line.uri(), Codec::Pcmu);
    stranger.answer_timeout = Duration::from_secs(5);
    let refused = place_call(stranger).await.expect("the call is placed");
    assert_eq!(refused.final_status, 403, "{}", refused.summary());

    // The first self-test runs five seconds after the start.
    line.wait_for_log("self-test passed", 1, Duration::from_secs(40))
        .await;
    let passed = line
        .log_text()
        .lines()
        .find(|l| l.contains("self-test passed"))
        .unwrap()
        .to_owned();
    assert!(passed.contains("heard the greeting (match"), "{passed}");
    assert!(passed.contains("and Evensong (match"), "{passed}");
    let (status, check) = health(admin);
    assert_eq!(status, 200, "{check}");
    assert_eq!(check["ok"], true);
    let metrics = scrape(admin);
    assert_eq!(value(&metrics, "das_self_test_ok", &[]), Some(1.0));
    // The line's own call is no caller: no play, no call counted...
    assert_eq!(value(&metrics, "das_service_plays_total", &[]), None);
    let calls: f64 = metrics
        .samples
        .iter()
        .filter(|s| s.metric == "das_calls_total")
        .filter_map(|s| match s.value {
            prometheus_parse::Value::Counter(v) => Some(v),
            _ => None,
        })
        .sum();
    assert_eq!(calls, 0.0);
    // ...and its record in the call log says what it was.
    let log = std::fs::read_to_string(&calls_log).unwrap_or_default();
    let first = log
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no record:\n{log}"));
    assert!(first.contains("\"self_test\":true"), "{first}");
    let page = get(admin, "/");
    assert!(
        page.body.contains("<span class=\"ok\">Passed</span>"),
        "{}",
        page.body
    );

    // The service's file turns to garbage: nothing plays.
    let garbage: Vec<u8> = (0..64_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(parish.audio_dir().join("service.mp3"), garbage).unwrap();
    line.wait_for_log("self-test failed", 1, Duration::from_secs(40))
        .await;
    let failed: Vec<String> = line
        .log_text()
        .lines()
        .filter(|l| l.contains("self-test failed"))
        .map(str::to_owned)
        .collect();
    assert_eq!(failed.len(), 1, "one line per failed self-test: {failed:?}");
    let failed = &failed[0];
    assert!(failed.contains("WARN"), "{failed}");
    let reasons = ["no service plays", "cannot be played", "was not heard"];
    assert!(
        reasons.iter().any(|r| failed.contains(r)),
        "the line says what was wrong: {failed}"
    );
    let (status, check) = health(admin);
    assert_eq!(status, 503, "{check}");
    assert_eq!(check["ok"], false);
    assert_eq!(value(&scrape(admin), "das_self_test_ok", &[]), Some(0.0));
    let page = get(admin, "/");
    let said = page
        .body
        .split("<p id=\"self-test\">")
        .nth(1)
        .unwrap_or_else(|| panic!("no self-test paragraph: {}", page.body));
    assert!(
        said.starts_with("<span class=\"bad\">Failed</span>"),
        "{said}"
    );
    assert!(reasons.iter().any(|r| said.contains(r)), "{said}");
}

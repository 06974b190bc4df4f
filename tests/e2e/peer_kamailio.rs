//! The line behind a real SIP trunk: Kamailio (`tests/kamailio/trunk.cfg`)
//! demands digest authentication for REGISTER and routes
//! `INVITE sip:line@<kamailio>` to the registered contact.

use crate::common;

use std::time::{Duration, Instant};

use dial_a_service::client::{CallOptions, HangUp, place_call};
use dial_a_service::media::Codec;

use common::kamailio::{Kamailio, free_udp_tcp_port, run_sipp, sipp_command};
use common::{Line, Parish, audio, have_tool};

const USER: &str = "line";
const PASSWORD: &str = "s3cret-Passw0rd";

fn tools() -> bool {
    have_tool("kamailio")
        && have_tool("sipp")
        && have_tool("espeak-ng")
        && have_tool("sox")
        && have_tool("ffmpeg")
}

fn parish() -> Parish {
    Parish::new(
        "Trunk service",
        "Welcome to the service, reached through the parish's telephone provider.",
        4.0,
    )
}

fn line_behind(
    trunk: &Kamailio,
    parish: &Parish,
    transport: &str,
    password: &str,
    expires: &str,
    extra: &[(&'static str, String)],
) -> Line {
    let mut env = parish.env();
    env.extend_from_slice(extra);
    env.extend([
        ("DAS_TRUNK_REGISTRAR", trunk.registrar_uri()),
        ("DAS_TRUNK_USERNAME", USER.to_owned()),
        ("DAS_TRUNK_PASSWORD", password.to_owned()),
        ("DAS_TRUNK_TRANSPORT", transport.to_owned()),
        ("DAS_TRUNK_EXPIRES", expires.to_owned()),
    ]);
    Line::start(&env)
}

/// Our test client calls `sip:line@kamailio` and must hear the service.
async fn call_through(trunk: &Kamailio, parish: &Parish) {
    let report = place_call(CallOptions::new(trunk.user_uri(USER), Codec::Pcmu))
        .await
        .expect("the call through the trunk completes");
    assert_eq!(report.final_status, 200, "{}", report.summary());
    assert!(
        matches!(report.hung_up_by, HangUp::FarEnd),
        "{}",
        report.summary()
    );
    let played = audio::reference(&parish.service_wav, 8_000);
    let score = audio::correlation(&report.samples, &played, 8_000, 10.0);
    assert!(
        score >= 0.9,
        "what the caller heard through the trunk ({score:.3})"
    );
}

fn sipp_call_through(trunk: &Kamailio, dir: &std::path::Path) {
    let mut command = sipp_command(
        dir,
        "caller",
        "uac_via_proxy.xml",
        trunk.addr(),
        free_udp_tcp_port(),
    );
    command.args(["-s", USER, "-mp", &(free_udp_tcp_port() & !1).to_string()]);
    let run = run_sipp(command, dir, "caller");
    assert!(run.success(), "sipp through the trunk:\n{}", run.report());
}

fn run_blocking<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

#[test]
fn registers_over_udp_takes_calls_and_refreshes_on_time() {
    if !tools() {
        return;
    }
    let trunk = Kamailio::start(USER, PASSWORD);
    let parish = parish();
    let line = line_behind(&trunk, &parish, "udp", PASSWORD, "20s", &[]);
    let first = trunk
        .wait_for_contact(USER, Duration::from_secs(10))
        .unwrap_or_else(|| {
            panic!(
                "the line registered:\n{}\n{}",
                line.log_text(),
                trunk.log_text()
            )
        });
    assert_eq!(first.transport(), "udp");

    run_blocking(call_through(&trunk, &parish));
    sipp_call_through(&trunk, parish.dir.path());

    // Refreshed by 85 % of the 20 s granted: a later CSeq before it expires.
    let refreshed = trunk.wait_for_contacts(USER, Duration::from_secs(19), |contacts| {
        contacts.iter().any(|c| c.cseq > first.cseq)
    });
    assert!(
        refreshed.is_some(),
        "refreshed before expiry:\n{}",
        line.log_text()
    );

    // SIGTERM: the line unregisters (Expires: 0) before it exits.
    let mut line = line;
    line.stop();
    assert!(
        trunk.contacts(USER).is_empty(),
        "unregistered at shutdown:\n{}",
        trunk.log_text()
    );
}

/// Also the JSON log: every line an object with the fields as keys, at
/// debug level, and never the password or anything of the digest answer.
#[test]
fn registers_over_tcp_and_takes_calls_on_that_connection() {
    if !tools() {
        return;
    }
    let trunk = Kamailio::start(USER, PASSWORD);
    let parish = parish();
    let line = line_behind(
        &trunk,
        &parish,
        "tcp",
        PASSWORD,
        "20s",
        &[("DAS_LOG_FORMAT", "json".to_owned())],
    );
    let contact = trunk
        .wait_for_contact(USER, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("the line registered over TCP:\n{}", line.log_text()));
    assert_eq!(contact.transport(), "tcp");
    run_blocking(call_through(&trunk, &parish));
    let refreshed = trunk.wait_for_contacts(USER, Duration::from_secs(19), |contacts| {
        contacts.iter().any(|c| c.cseq > contact.cseq)
    });
    assert!(
        refreshed.is_some(),
        "refreshed over TCP before expiry:\n{}",
        line.log_text()
    );

    let events: Vec<serde_json::Value> = line
        .log
        .lock()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a JSON log line ({e}): {l}")))
        .collect();
    let with = |message: &str| {
        events
            .iter()
            .filter(|e| {
                e["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message))
            })
            .collect::<Vec<_>>()
    };
    let incoming = with("incoming call");
    assert!(
        incoming.len() == 1 && incoming[0]["transport"] == "TCP",
        "the call came over TCP: {incoming:?}"
    );
    let answered = with("call answered");
    assert!(
        answered.len() == 1
            && answered[0]["call"].is_string()
            && answered[0]["codec"] == "pcmu"
            && answered[0]["level"] == "INFO",
        "the answer as one object with its fields: {answered:?}"
    );
    assert_eq!(with("call ended").len(), 1, "one line for the end");
    // A refresh changes nothing, so it logs nothing.
    assert_eq!(
        with("registered with the trunk").len(),
        1,
        "one line on registering"
    );
    let text = line.log_text();
    for secret in [PASSWORD, "response=", "Authorization", "nonce="] {
        assert!(!text.contains(secret), "the log shows {secret:?}:\n{text}");
    }
}

#[test]
fn a_restarted_trunk_gets_the_registration_back() {
    restarted_trunk("udp");
}

/// Over TCP the dropped connection itself tells the line to register again.
#[test]
fn a_restarted_trunk_gets_the_registration_back_over_tcp() {
    restarted_trunk("tcp");
}

fn restarted_trunk(transport: &str) {
    if !tools() {
        return;
    }
    let mut trunk = Kamailio::start(USER, PASSWORD);
    let parish = parish();
    let _line = line_behind(&trunk, &parish, transport, PASSWORD, "12s", &[]);
    assert!(
        trunk
            .wait_for_contact(USER, Duration::from_secs(10))
            .is_some()
    );
    trunk.stop();
    std::thread::sleep(Duration::from_secs(3));
    trunk.start_again();
    let started = Instant::now();
    // The refresh (≤ 85 % of 12 s), or the backoff after failures, brings it back.
    assert!(
        trunk
            .wait_for_contact(USER, Duration::from_secs(20))
            .is_some(),
        "registered again after the restart"
    );
    eprintln!("registered again {:?} after the restart", started.elapsed());
}

#[test]
fn a_wrong_password_backs_off_with_one_clear_log_line() {
    wrong_password("udp");
}

#[test]
fn a_wrong_password_over_tcp_backs_off_too() {
    wrong_password("tcp");
}

fn wrong_password(transport: &str) {
    if !tools() {
        return;
    }
    let trunk = Kamailio::start(USER, PASSWORD);
    let parish = parish();
    let line = line_behind(&trunk, &parish, transport, "not-the-password", "60s", &[]);
    std::thread::sleep(Duration::from_secs(8));
    assert!(trunk.contacts(USER).is_empty(), "never registered");
    let attempts = trunk.log_count("wrong password");
    // Backoff 2 s, 4 s, …: three tries in 8 s at most, each answering a
    // cached challenge and then a fresh one.
    assert!(
        (1..=6).contains(&attempts),
        "backing off, not hammering: {attempts} attempts"
    );
    assert_eq!(
        line.log_count("trunk.auth_rejected"),
        1,
        "one clear log line:\n{}",
        line.log_text()
    );
    assert_eq!(
        line.log_count("not-the-password"),
        0,
        "the password is never logged"
    );
}

/// `check` pings the trunk with OPTIONS over its transport and names
/// silence plainly; it never registers (a running line keeps its binding).
#[test]
fn check_pings_the_trunk_and_says_when_it_is_silent() {
    if !tools() {
        return;
    }
    let trunk = Kamailio::start(USER, PASSWORD);
    let parish = parish();
    for transport in ["udp", "tcp"] {
        let mut env = parish.env();
        env.extend([
            ("DAS_TRUNK_REGISTRAR", trunk.registrar_uri()),
            ("DAS_TRUNK_USERNAME", USER.to_owned()),
            ("DAS_TRUNK_PASSWORD", PASSWORD.to_owned()),
            ("DAS_TRUNK_TRANSPORT", transport.to_owned()),
        ]);
        let (ok, text) = common::run_check(&env);
        assert!(ok, "{text}");
        assert!(
            text.contains("answered OPTIONS with 200")
                && text.contains(&format!("over {}", transport.to_uppercase())),
            "{text}"
        );
    }
    assert!(trunk.contacts(USER).is_empty(), "check does not register");

    // A port where nothing answers (bound, so no ICMP error either).
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut env = parish.env();
    env.extend([
        (
            "DAS_TRUNK_REGISTRAR",
            format!("sip:127.0.0.1:{}", silent.local_addr().unwrap().port()),
        ),
        ("DAS_TRUNK_USERNAME", USER.to_owned()),
        ("DAS_TRUNK_PASSWORD", PASSWORD.to_owned()),
        // 16 T1: 1.6 s.
        ("DAS_SIP_T1", "100ms".to_owned()),
    ]);
    let started = Instant::now();
    let (ok, text) = common::run_check(&env);
    assert!(!ok, "{text}");
    assert!(
        text.contains("no answer to OPTIONS within 1.6 s") && text.contains("[trunk] registrar"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let mut buffer = [0u8; 2048];
    silent.set_nonblocking(true).unwrap();
    let mut sends = 0;
    while silent.recv(&mut buffer).is_ok() {
        sends += 1;
    }
    assert_eq!(sends, 5, "sent at 0, 1, 3, 7 and 15 T1");
}

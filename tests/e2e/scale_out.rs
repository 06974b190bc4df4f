//! Scale-out without containers: Kamailio with the repository's dispatcher
//! config (`deploy/kamailio/`, the `scale` profile of docker-compose.yml)
//! in front of two lines on loopback. Calls through it spread over both
//! lines; with one line stopped, new calls go to the other and none fails
//! (failover on the INVITE's timeout first, then OPTIONS probing marks the
//! stopped line inactive).

use crate::common;

use std::time::Duration;

use dial_a_service::client::{CallOptions, CallReport, HangUp, place_call};
use dial_a_service::media::Codec;

use common::dispatcher::{self, Dispatcher};
use common::{Line, Parish, have_tool};

/// Calls placed at once through the proxy, before and after a line stops.
/// Six a line at once: more than a line takes from one untrusted address
/// (a burst of 4), so the proxy must be trusted.
const CALLS: usize = 12;
/// How long each call listens before hanging up: the greeting and the
/// first of the service are enough to know which line answered, and that
/// it played.
const LISTEN: Duration = Duration::from_secs(3);

fn tools() -> bool {
    have_tool("kamailio")
        && have_tool("kamcmd")
        && have_tool("espeak-ng")
        && have_tool("sox")
        && have_tool("ffmpeg")
}

/// A line as the `scale` profile runs it: behind the proxy every call comes
/// from one address, which the line trusts (docker-compose.yml, `line-2`),
/// so its per-address limits (left at their defaults) do not count it.
fn line_behind_proxy(parish: &Parish) -> Line {
    let mut env = parish.env();
    env.push(("DAS_SIP_TRUST", "127.0.0.1".to_owned()));
    Line::start(&env)
}

async fn calls_through(proxy: &Dispatcher, n: usize) -> Vec<CallReport> {
    let calls = (0..n).map(|_| {
        let mut options = CallOptions::new(proxy.uri(), Codec::Pcmu);
        options.seconds = Some(LISTEN);
        tokio::spawn(place_call(options))
    });
    let mut reports = Vec::new();
    for call in calls.collect::<Vec<_>>() {
        reports.push(
            call.await
                .expect("the call task")
                .expect("the call through the proxy completes"),
        );
    }
    reports
}

fn assert_answered_and_heard(reports: &[CallReport], proxy: &Dispatcher) {
    for report in reports {
        assert_eq!(
            report.final_status,
            200,
            "{}\n--- kamailio ---\n{}",
            report.summary(),
            proxy.log_text()
        );
        assert!(
            matches!(report.hung_up_by, HangUp::Us),
            "the call lasted until we hung up: {}",
            report.summary()
        );
        // 3 s of 20 ms packets, most of them there (the first after the ACK).
        assert!(
            report.packets.len() >= 120,
            "RTP from the line that answered: {}",
            report.summary()
        );
        assert!(report.stats.seq_contiguous, "{}", report.summary());
    }
}

#[test]
fn the_dispatcher_config_is_valid() {
    if !have_tool("kamailio") {
        return;
    }
    let (ok, output) = dispatcher::check_config();
    assert!(
        ok,
        "kamailio -c rejects deploy/kamailio/kamailio.cfg:\n{output}"
    );
}

#[test]
fn calls_spread_over_two_lines_and_fail_over_when_one_stops() {
    if !tools() {
        return;
    }
    let parish = Parish::new(
        "Scaled service",
        "Welcome to the service, answered by one of several lines.",
        6.0,
    );
    let mut first = line_behind_proxy(&parish);
    let second = line_behind_proxy(&parish);
    let proxy = Dispatcher::start(&[first.sip, second.sip], 1);
    // Both probed and answering OPTIONS: active ("A") and probing ("P").
    assert!(
        proxy.wait_for(Duration::from_secs(10), |d| d.len() == 2
            && d.iter().all(|(_, flags)| flags.starts_with('A'))),
        "both lines active: {:?}\n{}",
        proxy.destinations(),
        proxy.log_text()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let reports = runtime.block_on(calls_through(&proxy, CALLS));
    assert_answered_and_heard(&reports, &proxy);
    let (on_first, on_second) = (
        first.log_count("call answered"),
        second.log_count("call answered"),
    );
    eprintln!("before the stop: {on_first} calls on the first line, {on_second} on the second");
    assert_eq!(on_first + on_second, CALLS, "every call answered once");
    assert!(
        on_first >= 1 && on_second >= 1,
        "calls spread over both lines ({on_first} and {on_second})"
    );

    // One line goes away (as `docker stop` or a crash would take it); the
    // next calls come at once, before any probe has noticed.
    first.stop();
    let reports = runtime.block_on(calls_through(&proxy, CALLS));
    assert_answered_and_heard(&reports, &proxy);
    assert_eq!(
        first.log_count("call answered"),
        on_first,
        "no call reached the stopped line"
    );
    assert_eq!(
        second.log_count("call answered"),
        on_second + CALLS,
        "every new call went to the line still up"
    );

    // And probing has marked the stopped line inactive ("I"), so later
    // calls do not even wait for its time-out.
    let stopped = format!("sip:{}", first.sip);
    assert!(
        proxy.wait_for(Duration::from_secs(5), |d| d
            .iter()
            .any(|(uri, flags)| *uri == stopped && flags.starts_with('I'))),
        "the stopped line is inactive: {:?}",
        proxy.destinations()
    );
    let reports = runtime.block_on(calls_through(&proxy, 2));
    assert_answered_and_heard(&reports, &proxy);
    assert_eq!(second.log_count("call answered"), on_second + CALLS + 2);
}

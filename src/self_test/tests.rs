//! Judging made-up calls against made-up plans: what passes, and that each
//! way of failing says what was wrong.

use std::time::Duration;

use super::compare::samples_in;
use super::compare::tests::programme as audio;
use super::plan::ServiceExpected;
use super::*;

/// A greeting of 0.3 s, the service expected at 0.5 s (templates short:
/// these tests run unoptimised).
fn plan(greeting: &[f32], service: &[f32]) -> Plan {
    Plan {
        press: None,
        greeting: greeting[..samples_in(Duration::from_millis(200))].to_vec(),
        service: ServiceExpected {
            label: "Choral Evensong".to_owned(),
            at: Duration::from_millis(500),
            template: service[..samples_in(Duration::from_millis(200))].to_vec(),
            silent: false,
        },
        listen: Duration::from_secs(1),
    }
}

/// `parts` one after another, each starting `at` from the first packet.
fn heard(parts: &[(Duration, &[f32])]) -> Vec<f32> {
    let mut out = Vec::new();
    for (at, part) in parts {
        out.resize(samples_in(*at), 0.0);
        out.extend_from_slice(part);
    }
    out
}

#[test]
fn the_greeting_then_the_service_where_the_flow_puts_it_passes() {
    let (greeting, service) = (audio(0.5, 1), audio(1.0, 2));
    let plan = plan(&greeting, &service);
    // The service came 120 ms after the flow's estimate (the press's way).
    let call = heard(&[
        (
            Duration::ZERO,
            &greeting[..samples_in(Duration::from_millis(300))],
        ),
        (Duration::from_millis(620), &service),
    ]);
    let passed = judge(&plan, &call).unwrap();
    assert!(
        passed.greeting > 0.99 && passed.service_match > 0.99,
        "{passed:?}"
    );
    assert!(passed.to_string().contains("Choral Evensong"), "{passed}");
}

#[test]
fn the_apology_instead_of_the_service_fails_naming_the_service() {
    let (greeting, service, apology) = (audio(0.5, 1), audio(1.0, 2), audio(1.0, 3));
    let plan = plan(&greeting, &service);
    let call = heard(&[
        (
            Duration::ZERO,
            &greeting[..samples_in(Duration::from_millis(300))],
        ),
        (Duration::from_millis(500), &apology),
    ]);
    let failure = judge(&plan, &call).unwrap_err();
    assert_eq!(failure.code(), "self_test.service");
    let said = failure.to_string();
    assert!(said.starts_with("Choral Evensong was not heard"), "{said}");
}

#[test]
fn a_call_cut_short_or_silent_or_without_the_greeting_fails() {
    let (greeting, service) = (audio(0.5, 1), audio(1.0, 2));
    let plan = plan(&greeting, &service);
    // The line hung up after the greeting.
    let short = heard(&[(
        Duration::ZERO,
        &greeting[..samples_in(Duration::from_millis(300))],
    )]);
    assert_eq!(
        judge(&plan, &short).unwrap_err().code(),
        "self_test.service"
    );
    assert_eq!(judge(&plan, &[]).unwrap_err(), Failure::NoAudio);
    let silent = vec![0.0; samples_in(Duration::from_secs(2))];
    assert_eq!(
        judge(&plan, &silent).unwrap_err().code(),
        "self_test.greeting"
    );
    // Something else at the start.
    let other = heard(&[
        (Duration::ZERO, &audio(0.3, 4)),
        (Duration::from_millis(500), &service),
    ]);
    let failure = judge(&plan, &other).unwrap_err();
    assert!(
        failure
            .to_string()
            .starts_with("the greeting was not heard"),
        "{failure}"
    );
}

#[test]
fn a_service_that_opens_in_silence_expects_silence() {
    let greeting = audio(0.5, 1);
    let mut plan = plan(&greeting, &audio(1.0, 2));
    plan.service.template = vec![0.0; samples_in(Duration::from_millis(200))];
    plan.service.silent = true;
    let start = &greeting[..samples_in(Duration::from_millis(300))];
    let quiet = heard(&[
        (Duration::ZERO, start),
        (Duration::from_millis(500), &[0.0; 2_000]),
    ]);
    assert!(judge(&plan, &quiet).is_ok());
    let loud = heard(&[
        (Duration::ZERO, start),
        (Duration::from_millis(500), &audio(0.3, 5)),
    ]);
    assert_eq!(judge(&plan, &loud).unwrap_err().code(), "self_test.service");
}

#[test]
fn the_status_keeps_the_last_verdict() {
    let status = SelfTestStatus::new(Duration::from_secs(900));
    assert!(status.last().is_none());
    let failed = Verdict {
        at: chrono::Utc::now(),
        outcome: Err(Failure::NothingPlays("the schedule is empty".to_owned())),
    };
    assert!(status.record(failed.clone()).is_none());
    assert!(!status.last().unwrap().ok());
    assert_eq!(
        failed.detail(),
        "no service plays; callers hear the apology: the schedule is empty"
    );
    let passed = Verdict {
        outcome: Ok(Passed {
            service: "the service of 1 November 2026".to_owned(),
            greeting: 0.99,
            service_match: 0.98,
        }),
        ..failed.clone()
    };
    assert_eq!(status.record(passed), Some(failed));
    assert!(status.last().unwrap().ok());
}

#[test]
fn a_wildcard_listener_is_dialled_on_loopback() {
    assert_eq!(
        dialled("0.0.0.0:5060".parse().unwrap()),
        "127.0.0.1:5060".parse().unwrap()
    );
    assert_eq!(
        dialled("[::]:5070".parse().unwrap()),
        "[::1]:5070".parse().unwrap()
    );
    assert_eq!(
        dialled("192.0.2.7:5060".parse().unwrap()),
        "192.0.2.7:5060".parse().unwrap()
    );
}

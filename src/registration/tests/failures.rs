//! Failures: backoff growth, jitter and cap, Retry-After, transport errors, TCP.

use super::*;

#[test]
fn failures_back_off_with_jitter_up_to_the_cap() {
    let max = secs(60);
    let mut h = Harness::new(RegistrationConfig {
        backoff_max: max,
        ..config()
    });
    let _ = h.register();
    let sent_at = h.now;

    // No answer: Timer F (64·T1) gives up, with retransmissions before.
    let resends = h.time_out();
    assert_eq!(h.now - sent_at, secs(32));
    assert!(resends >= 5, "Timer E resent {resends} times");
    assert_eq!(h.failure_code(), Some("trunk.timeout"));
    let events = h.events();
    assert!(
        matches!(
            &events[..],
            [RegistrationEvent::Failing {
                failure: RegistrationFailure::Timeout,
                ..
            }]
        ),
        "{events:?}"
    );
    let failing_since = h.now;

    // Each retry waits twice as long (±20 %); a new reason is a new event, the same
    // reason again is not.
    let mut nominal = secs(2);
    let script: [(u16, Option<&str>); 8] = [
        (0, None),
        (403, Some("trunk.forbidden")),
        (503, Some("trunk.server_error")),
        (503, None),
        (503, None),
        (404, Some("trunk.not_found")),
        (404, None),
        (404, None),
    ];
    for (status, new_event) in script {
        let wait = h.retry_in();
        assert!(
            wait >= nominal.mul_f64(0.8) && wait <= nominal.mul_f64(1.2).min(max),
            "{wait:?} for nominal {nominal:?}"
        );
        let retry = h.next_register();
        assert_eq!(h.sent(), Vec::<Vec<u8>>::new());
        nominal = (nominal * 2).min(max);
        if status == 0 {
            // Time out once more: the same failure, no new event.
            h.time_out();
            assert_eq!(h.events(), []);
            continue;
        }
        assert!(h.reply(&retry, status, &[]));
        let events = h.events();
        match new_event {
            Some(code) => assert!(
                matches!(&events[..], [RegistrationEvent::Failing { failure, .. }] if failure.code() == code),
                "{events:?}"
            ),
            None => assert_eq!(events, [], "the same failure again is not logged again"),
        }
        assert!(matches!(h.registration.status(),
            RegistrationStatus::Failing { since, .. } if *since == failing_since));
    }
    // The cap holds.
    assert!(h.retry_in() <= max && h.retry_in() >= max.mul_f64(0.8));

    // Success resets the backoff, and says how long it had been failing.
    let retry = h.next_register();
    h.accept(&retry, 300);
    let events = h.events();
    assert!(
        matches!(&events[..], [RegistrationEvent::Registered {
        failing_since: Some(since), ..
    }] if *since == failing_since),
        "{events:?}"
    );
    let refresh = h.next_register();
    assert!(h.reply(&refresh, 500, &[]));
    let wait = h.retry_in();
    assert!(
        wait >= secs(2).mul_f64(0.8) && wait <= secs(2).mul_f64(1.2),
        "{wait:?}"
    );
    // The binding made before still holds, and the status says so.
    assert!(matches!(
        h.registration.status(),
        RegistrationStatus::Failing {
            bound_until: Some(_),
            ..
        }
    ));
}

#[test]
fn retry_after_is_honoured_within_the_cap() {
    let mut h = Harness::new(RegistrationConfig {
        backoff_max: secs(120),
        ..config()
    });
    let first = h.register();
    assert!(h.reply(&first, 503, &[("Retry-After", "90")]));
    assert_eq!(h.retry_in(), secs(90));
    let second = h.next_register();
    assert!(h.reply(&second, 503, &[("Retry-After", "3600")]));
    assert_eq!(h.retry_in(), secs(120));
}

#[test]
fn transport_errors() {
    // In flight: unreachable, with backoff.
    let mut h = Harness::new(config());
    let _ = h.register();
    h.registration.handle_transport_error(h.now);
    assert_eq!(h.failure_code(), Some("trunk.unreachable"));
    assert!(h.sent().is_empty());
    assert!(h.retry_in() >= secs(1));

    // Registered over TCP and the connection dropped: register again over a new one.
    let mut h = registered(
        RegistrationConfig {
            transport: Transport::Tcp,
            ..config()
        },
        300,
    );
    h.now += secs(30);
    h.registration.handle_transport_error(h.now);
    let again = h.register();
    assert_eq!(
        header(&again, "Contact"),
        Some("<sip:stmarys@192.0.2.5:5060;transport=tcp>")
    );
    assert!(message::top_via(&again.headers).unwrap().transport == "TCP");
    h.accept(&again, 300);
    assert!(matches!(
        h.registration.status(),
        RegistrationStatus::Registered { .. }
    ));
}

#[test]
fn a_new_destination_takes_effect_from_the_next_register() {
    let mut h = Harness::new(config());
    let first = h.register();
    assert!(h.reply(&first, 503, &[]));
    assert!(h.registration.poll_timeout().unwrap() > h.now);
    h.registration.set_destination(addr("198.51.100.99:5060"));
    let retry = h.next_register();
    assert_eq!(cseq(&retry), cseq(&first) + 1);
    assert_eq!(
        h.registration.config.destination,
        addr("198.51.100.99:5060")
    );
}

#[test]
fn over_tcp_nothing_is_retransmitted_and_timer_f_still_fires() {
    let mut h = Harness::new(RegistrationConfig {
        transport: Transport::Tcp,
        ..config()
    });
    let _ = h.register();
    h.advance();
    assert!(h.sent().is_empty());
    assert_eq!(h.at(), secs(32));
    assert_eq!(h.failure_code(), Some("trunk.timeout"));
}

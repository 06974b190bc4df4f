//! Shutdown and matching: Expires: 0, late and foreign responses.

use super::*;

#[test]
fn unregister_sends_expires_zero_and_finishes_on_the_answer() {
    let mut h = registered(
        RegistrationConfig {
            keepalive: secs(10),
            ..config()
        },
        300,
    );
    h.now += secs(3);
    h.registration.unregister(h.now);
    assert!(matches!(
        h.registration.status(),
        RegistrationStatus::Unregistering { .. }
    ));
    let bye = h.register();
    assert_eq!(header(&bye, "Expires"), Some("0"));
    assert_eq!(
        header(&bye, "Contact"),
        Some("<sip:stmarys@192.0.2.5:5060>")
    );
    assert!(header(&bye, "Authorization").is_some());
    // The registrar's nonce aged meanwhile: answered.
    assert!(h.reply(&bye, 401, &[("WWW-Authenticate", MD5)]));
    let bye = h.register();
    assert_eq!(header(&bye, "Expires"), Some("0"));
    assert!(h.reply(&bye, 200, &[]));
    assert_eq!(
        h.events(),
        [RegistrationEvent::Unregistered { confirmed: true }]
    );
    assert!(h.registration.is_finished());
    assert_eq!(h.registration.status(), &RegistrationStatus::Unregistered);
    assert_eq!(h.registration.poll_timeout(), None, "no more keep-alives");

    // No answer: finished when Timer F gives up.
    let mut h = registered(config(), 300);
    h.registration.unregister(h.now);
    let _ = h.register();
    let resent = h.time_out();
    assert!(resent > 0);
    assert!(h.registration.is_finished());
    assert_eq!(
        h.events(),
        [RegistrationEvent::Unregistered { confirmed: false }]
    );

    // Never registered: nothing to remove, finished at once.
    let mut h = Harness::new(config());
    let first = h.register();
    assert!(h.reply(&first, 403, &[]));
    h.events();
    h.registration.unregister(h.now);
    assert!(h.sent().is_empty());
    assert!(h.registration.is_finished());
    assert_eq!(
        h.events(),
        [RegistrationEvent::Unregistered { confirmed: false }]
    );
}

#[test]
fn unregister_while_registering_sends_it_anyway() {
    // The REGISTER in flight may have been accepted: remove what it may have bound.
    let mut h = Harness::new(config());
    let first = h.register();
    h.registration.unregister(h.now);
    let bye = h.register();
    assert_eq!(header(&bye, "Expires"), Some("0"));
    // The late answer to the abandoned REGISTER is absorbed, not acted on.
    assert!(h.reply(&first, 200, &[]));
    assert!(matches!(
        h.registration.status(),
        RegistrationStatus::Unregistering { .. }
    ));
}

#[test]
fn responses_of_others_are_left_alone() {
    let mut h = Harness::new(config());
    let first = h.register();
    let mut other = first.clone();
    other
        .headers
        .retain(|h| !matches!(h, rsip::Header::CallId(_)));
    other.headers.push(make_header("Call-ID", "someone-else"));
    assert!(!h.reply(&other, 200, &[]));
    let mut bye = first.clone();
    bye.headers.retain(|h| !matches!(h, rsip::Header::CSeq(_)));
    bye.headers.push(make_header("CSeq", "1 BYE"));
    assert!(!h.reply(&bye, 200, &[]));
    assert!(matches!(
        h.registration.status(),
        RegistrationStatus::Registering { .. }
    ));
    // A provisional is ours and changes nothing.
    assert!(h.reply(&first, 100, &[]));
    assert_eq!(h.events(), []);
}

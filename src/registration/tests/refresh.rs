//! Refreshing: the 85 % rule, what the registrar grants, 423 Interval Too Brief.

use super::*;

#[test]
fn digest_challenge_then_refresh_at_85_percent() {
    let mut h = Harness::new(config());
    assert_eq!(
        h.registration.status(),
        &RegistrationStatus::Registering { since: h.t0 }
    );
    let first = h.register();
    assert_eq!(first.uri.to_string(), "sip:sip.example.com");
    let via = message::top_via(&first.headers).unwrap();
    assert_eq!((via.host.as_str(), via.port), ("192.0.2.5", Some(5060)));
    assert_eq!(via.rport, Some(None), "rport asked for (RFC 3581)");
    assert!(via.branch.as_deref().unwrap().starts_with("z9hG4bK"));
    assert_eq!(header(&first, "To"), Some("<sip:stmarys@sip.example.com>"));
    assert!(
        header(&first, "From")
            .unwrap()
            .starts_with("<sip:stmarys@sip.example.com>;tag=")
    );
    assert_eq!(
        header(&first, "Contact"),
        Some("<sip:stmarys@192.0.2.5:5060>")
    );
    assert_eq!(header(&first, "Expires"), Some("300"));
    assert_eq!(header(&first, "Allow"), Some(crate::sip::methods::ALLOW));
    assert_eq!(header(&first, "User-Agent"), Some("dial-a-service-test"));
    assert_eq!(header(&first, "Authorization"), None);
    assert_eq!(header(&first, "Route"), None);

    assert!(h.reply(&first, 401, &[("WWW-Authenticate", MD5)]));
    assert_eq!(h.events(), [], "a challenge is not a change of state");
    let second = h.register();
    let answered = h.answered();
    assert_eq!(answered.len(), 1);
    assert_eq!(
        answered[0].realm, "sip.example.com",
        "realm from the challenge"
    );
    assert_eq!(answered[0].qop, ["auth"]);
    assert_eq!(
        header(&second, "Authorization"),
        Some(
            r#"Digest username="stmarys", realm="sip.example.com", nonce="n1", uri="sip:sip.example.com", method=REGISTER"#
        )
    );
    assert_eq!(header(&second, "Call-ID"), header(&first, "Call-ID"));
    assert_eq!(header(&second, "From"), header(&first, "From"));
    assert_eq!(cseq(&second), cseq(&first) + 1);
    assert_ne!(branch(&second), branch(&first));

    let sent_at = h.now;
    h.accept(&second, 60);
    let until = sent_at + secs(60);
    assert_eq!(
        h.events(),
        [RegistrationEvent::Registered {
            until,
            contact: "<sip:stmarys@192.0.2.5:5060>".into(),
            public: None,
            failing_since: None,
        }]
    );
    assert!(matches!(h.registration.status(),
        RegistrationStatus::Registered { until: u, .. } if *u == until));
    // A retransmitted 200 is ours but changes nothing.
    assert!(h.reply(&second, 200, &[]));
    assert_eq!(h.events(), []);

    // The refresh goes at 85 % of the 60 s granted, answering the cached challenge.
    let refresh = h.next_register();
    assert_eq!(h.now - sent_at, secs(51));
    assert!(
        header(&refresh, "Authorization")
            .unwrap()
            .contains(r#"nonce="n1""#)
    );
    assert_eq!(header(&refresh, "Call-ID"), header(&first, "Call-ID"));
    assert_eq!(cseq(&refresh), cseq(&second) + 1);
    let refreshed_at = h.now;
    h.accept(&refresh, 60);
    assert_eq!(
        h.events(),
        [],
        "a refresh that changes nothing is not logged"
    );
    assert!(matches!(h.registration.status(),
        RegistrationStatus::Registered { until, .. } if *until == refreshed_at + secs(60)));
}

#[test]
fn expires_header_or_request_decides_when_contact_has_no_expiry() {
    let mut h = Harness::new(config());
    let first = h.register();
    let sent_at = h.now;
    assert!(h.reply(&first, 200, &[("Expires", "100")]));
    let _ = h.next_register();
    assert_eq!(h.now - sent_at, secs(85));

    // Nothing said at all: what we asked for (300 s).
    let mut h = Harness::new(config());
    let first = h.register();
    let sent_at = h.now;
    assert!(h.reply(&first, 200, &[]));
    let _ = h.next_register();
    assert_eq!(h.now - sent_at, secs(255));

    // A 200 that binds us for 0 s did not register us.
    let mut h = Harness::new(config());
    let first = h.register();
    h.accept(&first, 0);
    assert_eq!(h.failure_code(), Some("trunk.not_bound"));
}

#[test]
fn interval_too_brief_retries_at_once_with_min_expires() {
    let mut h = Harness::new(RegistrationConfig {
        expires: secs(60),
        ..config()
    });
    let first = h.register();
    assert_eq!(header(&first, "Expires"), Some("60"));
    assert!(h.reply(&first, 423, &[("Min-Expires", "120")]));
    let second = h.register();
    assert_eq!(header(&second, "Expires"), Some("120"));
    assert_eq!(h.events(), []);
    let sent_at = h.now;
    h.accept(&second, 120);
    assert_eq!(h.events().len(), 1);
    let refresh = h.next_register();
    assert_eq!(h.now - sent_at, secs(102));
    assert_eq!(
        header(&refresh, "Expires"),
        Some("120"),
        "the raised expiry stays"
    );

    // A Min-Expires no higher than what we asked for cannot be satisfied.
    assert!(h.reply(&refresh, 423, &[("Min-Expires", "120")]));
    assert_eq!(h.failure_code(), Some("trunk.interval_too_brief"));
    assert!(h.sent().is_empty());
}

//! NAT: the address the registrar saw, external_address, keep-alives.

use super::*;

#[test]
fn nat_address_from_received_and_rport_corrects_the_contact() {
    let mut h = Harness::new(config());
    h.seen_from = addr("203.0.113.9:40000");
    let first = h.register();
    assert!(h.reply(&first, 401, &[("WWW-Authenticate", MD5)]));
    let second = h.register();
    h.accept(&second, 300);
    // Registered at an unreachable address: at once again, with the one seen.
    assert_eq!(h.events(), []);
    let corrected = h.register();
    // The unreachable binding goes in the same request.
    let contacts: Vec<&str> = message::header_values(&corrected.headers, "Contact").collect();
    assert_eq!(
        contacts,
        [
            "<sip:stmarys@192.0.2.5:5060>;expires=0",
            "<sip:stmarys@203.0.113.9:40000>"
        ]
    );
    assert_eq!(header(&corrected, "Expires"), Some("300"));
    let via = message::top_via(&corrected.headers).unwrap();
    assert_eq!((via.host.as_str(), via.port), ("203.0.113.9", Some(40000)));
    assert_eq!(header(&corrected, "Call-ID"), header(&first, "Call-ID"));
    assert!(
        header(&corrected, "Authorization").is_some(),
        "cached challenge answered"
    );
    // The registrar's nonce aged: the answer to its new challenge still removes the old.
    assert!(h.reply(
        &corrected,
        401,
        &[("WWW-Authenticate", &MD5.replace("n1", "n2"))]
    ));
    let corrected = h.register();
    assert_eq!(
        message::header_values(&corrected.headers, "Contact").count(),
        2
    );
    h.accept(&corrected, 300);
    let public = Some(addr("203.0.113.9:40000"));
    let events = h.events();
    assert!(
        matches!(&events[..], [RegistrationEvent::Registered { contact, public: p, .. }]
        if contact == "<sip:stmarys@203.0.113.9:40000>" && *p == public),
        "{events:?}"
    );
    assert_eq!(h.registration.public_addr(), public);

    // Refreshes keep the learned address and do not correct again.
    let refresh = h.next_register();
    assert_eq!(
        header(&refresh, "Contact"),
        Some("<sip:stmarys@203.0.113.9:40000>")
    );
    h.accept(&refresh, 300);
    assert_eq!(h.sent(), Vec::<Vec<u8>>::new());

    // A NAT that maps each request differently is corrected once per refresh, no more.
    h.seen_from = addr("203.0.113.9:40001");
    let refresh = h.next_register();
    h.accept(&refresh, 300);
    let again = h.register();
    assert_eq!(
        message::header_values(&again.headers, "Contact").collect::<Vec<_>>(),
        [
            "<sip:stmarys@203.0.113.9:40000>;expires=0",
            "<sip:stmarys@203.0.113.9:40001>"
        ]
    );
    h.seen_from = addr("203.0.113.9:40002");
    h.accept(&again, 300);
    assert!(h.sent().is_empty(), "no second correction in one refresh");
    assert!(matches!(
        h.registration.status(),
        RegistrationStatus::Registered { .. }
    ));
}

#[test]
fn external_address_is_advertised_and_nothing_is_learned() {
    let mut h = Harness::new(RegistrationConfig {
        public: Some("203.0.113.7".parse().unwrap()),
        ..config()
    });
    h.seen_from = addr("203.0.113.7:61000");
    let first = h.register();
    assert_eq!(
        header(&first, "Contact"),
        Some("<sip:stmarys@203.0.113.7:5060>")
    );
    h.accept(&first, 300);
    assert!(h.sent().is_empty());
    assert_eq!(h.registration.public_addr(), Some(addr("203.0.113.7:5060")));
}

#[test]
fn keepalives_every_interval_while_registered() {
    let mut h = Harness::new(RegistrationConfig {
        keepalive: secs(10),
        ..config()
    });
    // None while not registered.
    let first = h.register();
    assert!(h.reply(&first, 503, &[]));
    let retry = h.next_register();
    let registered_at = h.now + Duration::from_millis(40);
    h.accept(&retry, 60);
    let mut pings = Vec::new();
    for _ in 0..5 {
        assert_eq!(h.advance_until_sent(), [KEEPALIVE]);
        pings.push(h.now - registered_at);
    }
    assert_eq!(pings, [secs(10), secs(20), secs(30), secs(40), secs(50)]);
    // The refresh (at 51 s from its request) keeps the NAT open too: pings restart after.
    let refresh = h.next_register();
    let refreshed_at = h.now;
    h.accept(&refresh, 60);
    assert_eq!(h.advance_until_sent(), [KEEPALIVE]);
    assert_eq!(h.now - refreshed_at, secs(10));

    // Failing stops them: over 2 + 4 + 8 s of retries only REGISTERs go out.
    let mut sent = h.advance_until_sent();
    while sent == [KEEPALIVE] {
        sent = h.advance_until_sent();
    }
    let refresh = match message::parse(&sent[0]).unwrap() {
        rsip::SipMessage::Request(r) => r,
        rsip::SipMessage::Response(_) => unreachable!("we send requests"),
    };
    assert_eq!(h.now - refreshed_at, secs(51));
    assert!(h.reply(&refresh, 500, &[]));
    for _ in 0..3 {
        let retry = h.next_register();
        assert!(h.reply(&retry, 500, &[]));
    }
    // 2 + 4 + 8 s of backoff, each up to 20 % shorter by jitter: ≥ 11.2 s.
    assert!(h.now - refreshed_at >= secs(51) + Duration::from_millis(11_200));
}

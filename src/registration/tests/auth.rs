//! Digest challenges: 401 and 407, stale nonces, wrong passwords, real digests.

use super::*;

#[test]
fn proxy_challenge_gets_proxy_authorization_then_both() {
    let mut h = Harness::new(RegistrationConfig {
        route: Some("sip:proxy.example.com".into()),
        destination: addr("198.51.100.20:5060"),
        ..config()
    });
    let first = h.register();
    assert_eq!(header(&first, "Route"), Some("<sip:proxy.example.com;lr>"));
    assert_eq!(
        first.uri.to_string(),
        "sip:sip.example.com",
        "Request-URI stays"
    );
    let proxy = r#"Digest realm="proxy.example.com", nonce="p1", algorithm=MD5, qop="auth""#;
    assert!(h.reply(&first, 407, &[("Proxy-Authenticate", proxy)]));
    let second = h.register();
    assert!(
        header(&second, "Proxy-Authorization")
            .unwrap()
            .contains(r#"realm="proxy.example.com""#)
    );
    assert_eq!(header(&second, "Authorization"), None);

    // Then the registrar behind it challenges too: both answers go.
    assert!(h.reply(&second, 401, &[("WWW-Authenticate", MD5)]));
    let third = h.register();
    assert!(
        header(&third, "Proxy-Authorization")
            .unwrap()
            .contains(r#"nonce="p1""#)
    );
    assert!(
        header(&third, "Authorization")
            .unwrap()
            .contains(r#"realm="sip.example.com""#)
    );
    h.accept(&third, 300);
    assert_eq!(h.events().len(), 1);
    assert!(matches!(
        h.registration.status(),
        RegistrationStatus::Registered { .. }
    ));
}

/// The parameters of an `Authorization` value, quotes removed.
fn digest_params(value: &str) -> std::collections::HashMap<String, String> {
    let params = value.strip_prefix("Digest ").expect("a Digest answer");
    params
        .split(", ")
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim_matches('"').to_owned()))
        .collect()
}

fn md5_hex(text: &str) -> String {
    use md5::Digest as _;
    md5::Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn real_digest_answers_are_what_a_registrar_checks() {
    let digest = || {
        Box::new(Digest::new(Credentials {
            username: "8832001".into(),
            password: "s3cret".into(),
        }))
    };
    let mut h = Harness::with_authorizer(config(), digest());
    let first = h.register();
    assert!(h.reply(&first, 401, &[("WWW-Authenticate", MD5)]));
    let second = h.register();
    let check = |request: &rsip::Request, nc: &str| {
        let p = digest_params(header(request, "Authorization").expect("an answer"));
        assert_eq!(p["username"], "8832001");
        assert_eq!(p["realm"], "sip.example.com");
        assert_eq!(p["uri"], "sip:sip.example.com");
        assert_eq!(p["nc"], nc);
        // What the registrar computes from the password it holds (RFC 7616 §3.4.1).
        let ha1 = md5_hex("8832001:sip.example.com:s3cret");
        let ha2 = md5_hex("REGISTER:sip:sip.example.com");
        let expected = md5_hex(&format!("{ha1}:n1:{nc}:{}:auth:{ha2}", p["cnonce"]));
        assert_eq!(p["response"], expected);
    };
    check(&second, "00000001");
    h.accept(&second, 60);
    // The refresh reuses the nonce with the next count.
    let refresh = h.next_register();
    check(&refresh, "00000002");

    // Offered SHA-256 beside MD5, the stronger is answered.
    let mut h = Harness::with_authorizer(config(), digest());
    let first = h.register();
    let sha = r#"Digest realm="sip.example.com", nonce="s1", algorithm=SHA-256, qop="auth""#;
    let offers = [("WWW-Authenticate", MD5), ("WWW-Authenticate", sha)];
    assert!(h.reply(&first, 401, &offers));
    let second = h.register();
    let p = digest_params(header(&second, "Authorization").unwrap());
    assert_eq!(p["algorithm"], "SHA-256");
    assert_eq!(p["nonce"], "s1");
}

#[test]
fn stale_nonce_is_answered_again_without_a_failure() {
    let mut h = Harness::new(config());
    let first = h.register();
    assert!(h.reply(&first, 401, &[("WWW-Authenticate", MD5)]));
    let second = h.register();
    let stale =
        r#"Digest realm="sip.example.com", nonce="n2", algorithm=MD5, qop="auth", stale=true"#;
    assert!(h.reply(&second, 401, &[("WWW-Authenticate", stale)]));
    let third = h.register();
    assert!(
        header(&third, "Authorization")
            .unwrap()
            .contains(r#"nonce="n2""#)
    );
    h.accept(&third, 300);
    let events = h.events();
    assert!(
        matches!(&events[..], [RegistrationEvent::Registered { .. }]),
        "{events:?}"
    );

    // A registrar that says stale forever is not answered forever.
    let mut h = Harness::new(config());
    let mut request = h.register();
    for _ in 0..10 {
        if !h.reply(&request, 401, &[("WWW-Authenticate", stale)]) || h.failure_code().is_some() {
            break;
        }
        request = h.register();
    }
    assert_eq!(h.failure_code(), Some("trunk.auth_rejected"));
}

#[test]
fn wrong_password_fails_once_with_auth_rejected() {
    let mut h = Harness::new(config());
    for round in 0..3 {
        let first = if round == 0 {
            h.register()
        } else {
            h.next_register()
        };
        assert!(h.reply(&first, 401, &[("WWW-Authenticate", MD5)]));
        let second = h.register();
        assert!(header(&second, "Authorization").is_some());
        // Asterisk sends a new nonce every time: still a rejection.
        let again = MD5.replace("n1", &format!("n{}", round + 5));
        assert!(h.reply(&second, 401, &[("WWW-Authenticate", &again)]));
        assert_eq!(h.failure_code(), Some("trunk.auth_rejected"));
        assert!(h.sent().is_empty(), "no REGISTER before the backoff");
        let events = h.events();
        if round == 0 {
            assert!(
                matches!(
                    &events[..],
                    [RegistrationEvent::Failing {
                        failure: RegistrationFailure::AuthRejected { status: 401 },
                        ..
                    }]
                ),
                "{events:?}"
            );
        } else {
            assert_eq!(events, [], "one event, not one per attempt");
        }
    }
}

#[test]
fn a_refresh_whose_cached_nonce_aged_is_answered_once() {
    let mut h = registered(config(), 60);
    let refresh = h.next_register();
    assert!(
        header(&refresh, "Authorization")
            .unwrap()
            .contains(r#"nonce="n1""#)
    );
    // The nonce expired and this registrar does not bother with stale=true.
    let fresh = MD5.replace("n1", "n9");
    assert!(h.reply(&refresh, 401, &[("WWW-Authenticate", &fresh)]));
    let answer = h.register();
    assert!(
        header(&answer, "Authorization")
            .unwrap()
            .contains(r#"nonce="n9""#)
    );
    h.accept(&answer, 60);
    assert_eq!(h.events(), []);
    assert!(matches!(
        h.registration.status(),
        RegistrationStatus::Registered { .. }
    ));
}

#[test]
fn a_challenge_without_a_usable_header_fails() {
    let mut h = Harness::new(config());
    let first = h.register();
    assert!(h.reply(&first, 401, &[]));
    assert_eq!(h.failure_code(), Some("trunk.bad_challenge"));
    let second = h.next_register();
    assert!(h.reply(&second, 401, &[("WWW-Authenticate", "Basic realm=\"x\"")]));
    assert_eq!(h.failure_code(), Some("trunk.bad_challenge"));
}

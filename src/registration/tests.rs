//! The registration state machine against a scripted registrar, under a virtual clock:
//! every wait is a jump to `poll_timeout`, so a 5-minute backoff costs nothing.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::sip::auth::{Algorithm, AuthError, Challenge, Credentials};
use crate::sip::message::{header_value, make_header};

const US: &str = "192.0.2.5:5060";
const REGISTRAR: &str = "198.51.100.10:5060";
const MD5: &str = r#"Digest realm="sip.example.com", nonce="n1", algorithm=MD5, qop="auth""#;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("literal socket address")
}

fn config() -> RegistrationConfig {
    RegistrationConfig {
        registrar_uri: "sip:sip.example.com".into(),
        aor: "sip:stmarys@sip.example.com".into(),
        contact_user: "stmarys".into(),
        local: addr(US),
        public: None,
        destination: addr(REGISTRAR),
        route: None,
        transport: Transport::Udp,
        expires: secs(300),
        keepalive: Duration::ZERO,
        backoff_max: secs(300),
        timers: Timers::default(),
        user_agent: "dial-a-service-test".into(),
    }
}

/// Parses the `Digest k=v, k="v"` challenges of these tests, standing in for
/// `sip::auth`, and answers with a header naming the challenge it answers.
struct FakeDigest {
    answered: Arc<Mutex<Vec<Challenge>>>,
}

impl Authorizer for FakeDigest {
    fn choose(&self, values: &[&str]) -> Result<Challenge, AuthError> {
        // The real choice (SHA-256 first) is sip::auth's and tested there.
        let value = values.first().ok_or(AuthError::NoChallenge)?;
        let params = value
            .strip_prefix("Digest ")
            .ok_or(AuthError::NoChallenge)?;
        let mut challenge = Challenge {
            realm: String::new(),
            nonce: String::new(),
            opaque: None,
            algorithm: Algorithm::Md5,
            qop: Vec::new(),
            stale: false,
        };
        for param in params.split(", ") {
            let (name, value) = param.split_once('=').ok_or(AuthError::NoChallenge)?;
            let value = value.trim_matches('"').to_owned();
            match name {
                "realm" => challenge.realm = value,
                "nonce" => challenge.nonce = value,
                "qop" => challenge.qop = vec![value],
                "stale" => challenge.stale = value == "true",
                "algorithm" if value == "SHA-256" => challenge.algorithm = Algorithm::Sha256,
                "algorithm" if value == "MD5-sess" => challenge.algorithm = Algorithm::Md5Sess,
                _ => {}
            }
        }
        Ok(challenge)
    }

    fn authorize(
        &mut self,
        challenge: &Challenge,
        method: &str,
        uri: &str,
    ) -> Result<String, AuthError> {
        self.answered.lock().unwrap().push(challenge.clone());
        Ok(format!(
            r#"Digest username="stmarys", realm="{}", nonce="{}", uri="{uri}", method={method}"#,
            challenge.realm, challenge.nonce
        ))
    }
}

/// The machine, the clock, and the registrar's side of the conversation.
struct Harness {
    registration: Registration,
    t0: Instant,
    now: Instant,
    /// Where the registrar sees our requests come from (a NAT changes it).
    seen_from: SocketAddr,
    answered: Arc<Mutex<Vec<Challenge>>>,
}

impl Harness {
    fn new(config: RegistrationConfig) -> Harness {
        let answered = Arc::new(Mutex::new(Vec::new()));
        let authorizer = Box::new(FakeDigest {
            answered: answered.clone(),
        });
        Harness {
            answered,
            ..Harness::with_authorizer(config, authorizer)
        }
    }

    fn with_authorizer(config: RegistrationConfig, authorizer: Box<dyn Authorizer>) -> Harness {
        let t0 = Instant::now();
        Harness {
            seen_from: config.local,
            registration: Registration::new(config, authorizer, t0),
            t0,
            now: t0,
            answered: Arc::default(),
        }
    }

    fn at(&self) -> Duration {
        self.now - self.t0
    }

    /// Everything queued, checked to go to the registrar.
    fn sent(&mut self) -> Vec<Vec<u8>> {
        let (destination, transport) = (
            self.registration.config.destination,
            self.registration.config.transport,
        );
        std::iter::from_fn(|| self.registration.poll_transmit())
            .map(|t| {
                assert_eq!(t.destination, destination);
                assert_eq!(t.transport, transport);
                t.payload
            })
            .collect()
    }

    /// The one REGISTER that must have been sent just now.
    fn register(&mut self) -> rsip::Request {
        let sent = self.sent();
        assert_eq!(sent.len(), 1, "expected one REGISTER at {:?}", self.at());
        match message::parse(&sent[0]).expect("our REGISTER parses") {
            rsip::SipMessage::Request(r) if r.method == rsip::Method::Register => r,
            other => panic!("not a REGISTER: {other}"),
        }
    }

    /// Jumps to the next wake-up and fires it; checks there is no busy loop.
    fn advance(&mut self) {
        let next = self.registration.poll_timeout().expect("a wake-up");
        assert!(next >= self.now, "wake-up in the past");
        self.now = next;
        self.registration.handle_timeout(self.now);
        if let Some(after) = self.registration.poll_timeout() {
            assert!(after > self.now, "busy loop at {:?}", self.at());
        }
    }

    /// Lets the REGISTER in flight go unanswered until Timer F; returns how many times
    /// it was resent meanwhile.
    fn time_out(&mut self) -> usize {
        let mut resent = 0;
        while matches!(
            self.registration.phase,
            Phase::Registering(_) | Phase::Unregistering(_)
        ) {
            self.advance();
            resent += self.sent().len();
        }
        resent
    }

    /// Advances until something is sent; returns it.
    fn advance_until_sent(&mut self) -> Vec<Vec<u8>> {
        for _ in 0..100 {
            self.advance();
            let sent = self.sent();
            if !sent.is_empty() {
                return sent;
            }
        }
        panic!("nothing sent in 100 wake-ups");
    }

    fn next_register(&mut self) -> rsip::Request {
        let sent = self.advance_until_sent();
        assert_eq!(sent.len(), 1);
        match message::parse(&sent[0]).expect("our REGISTER parses") {
            rsip::SipMessage::Request(r) => r,
            rsip::SipMessage::Response(_) => panic!("we sent a response"),
        }
    }

    /// The registrar answers `request` after `delay`, as RFC 3581 says: `received` and
    /// `rport` stamped with where it saw the request from.
    fn reply(&mut self, request: &rsip::Request, status: u16, headers: &[(&str, &str)]) -> bool {
        self.now += Duration::from_millis(40);
        let mut request = request.clone();
        message::stamp_received(&mut request, self.seen_from);
        let mut response = message::response(&request, status, Some("registrar"));
        for (name, value) in headers {
            response.headers.push(make_header(name, *value));
        }
        // Round trip through the wire format, as the driver would see it.
        let bytes = message::to_bytes(&rsip::SipMessage::Response(response));
        let rsip::SipMessage::Response(response) = message::parse(&bytes).unwrap() else {
            unreachable!("a status line")
        };
        self.registration.handle_response(&response, self.now)
    }

    /// The 200 a registrar sends: the Contact bound, with the granted expiry (one the
    /// request removed with `;expires=0` is gone).
    fn accept(&mut self, request: &rsip::Request, granted: u32) {
        let bound = message::header_values(&request.headers, "Contact")
            .find(|c| !c.ends_with(";expires=0"))
            .expect("a Contact to bind");
        let contact = format!("{bound};expires={granted}");
        assert!(self.reply(request, 200, &[("Contact", &contact)]));
    }

    fn events(&mut self) -> Vec<RegistrationEvent> {
        std::iter::from_fn(|| self.registration.poll_event()).collect()
    }

    fn answered(&self) -> Vec<Challenge> {
        std::mem::take(&mut *self.answered.lock().unwrap())
    }

    fn failure_code(&self) -> Option<&'static str> {
        match self.registration.status() {
            RegistrationStatus::Failing { failure, .. } => Some(failure.code()),
            _ => None,
        }
    }

    /// Seconds from now until the retry, for a machine that is failing.
    fn retry_in(&self) -> Duration {
        match self.registration.status() {
            RegistrationStatus::Failing { retry_at, .. } => *retry_at - self.now,
            other => panic!("not failing: {other:?}"),
        }
    }
}

fn header<'a>(request: &'a rsip::Request, name: &str) -> Option<&'a str> {
    header_value(&request.headers, name)
}

fn cseq(request: &rsip::Request) -> u32 {
    message::cseq(&request.headers).unwrap().0
}

fn branch(request: &rsip::Request) -> String {
    message::top_via(&request.headers).unwrap().branch.unwrap()
}

/// Registers through a 401, the way every test that needs a binding starts.
fn registered(config: RegistrationConfig, granted: u32) -> Harness {
    let mut h = Harness::new(config);
    let first = h.register();
    assert!(h.reply(&first, 401, &[("WWW-Authenticate", MD5)]));
    let second = h.register();
    h.accept(&second, granted);
    assert!(matches!(
        h.registration.status(),
        RegistrationStatus::Registered { .. }
    ));
    h.events();
    h.answered();
    h
}

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
    assert_eq!(header(&first, "Allow"), Some(crate::endpoint::ALLOW));
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
    assert!(h.now - refreshed_at > secs(51 + 12));
}

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

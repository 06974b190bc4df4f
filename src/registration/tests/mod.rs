//! The registration state machine against a scripted registrar, under a virtual clock:
//! every wait is a jump to `poll_timeout`, so a 5-minute backoff costs nothing.

mod auth;
mod failures;
mod nat;
mod refresh;
mod unregister;

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
        user_agent: Some("dial-a-service-test".into()),
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
        _rng: &mut dyn rand::RngCore,
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
            registration: Registration::new(config, authorizer, rand::random(), t0),
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

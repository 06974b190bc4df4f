//! Randomness is an input: two endpoints with the same `rng_seed`, fed the
//! same datagrams at the same instants, send the same bytes; another seed
//! changes every tag, branch, Call-ID, session id and cnonce.

use super::*;
use crate::registration::{Digest, RegistrationConfig};
use crate::sip::auth::Credentials;

const REGISTRAR: &str = "127.0.0.1:5080";

fn registration() -> RegistrationConfig {
    RegistrationConfig {
        registrar_uri: "sip:trunk.example".into(),
        aor: "sip:line@trunk.example".into(),
        contact_user: "line".into(),
        local: LINE.parse().unwrap(),
        public: None,
        destination: REGISTRAR.parse().unwrap(),
        route: None,
        transport: Transport::Udp,
        expires: Duration::from_secs(300),
        keepalive: Duration::ZERO,
        backoff_max: Duration::from_secs(300),
        timers: Timers::default(),
        user_agent: None,
    }
}

/// A 401 with a `qop` challenge to the REGISTER just sent, so the next one
/// carries a cnonce.
fn challenge(register: &str) -> Vec<u8> {
    let copy = |name: &str| {
        register
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .to_owned()
    };
    format!(
        "SIP/2.0 401 Unauthorized\r\n{}\r\n{}\r\n{};tag=registrar\r\n{}\r\n{}\r\n\
         WWW-Authenticate: Digest realm=\"trunk.example\", nonce=\"n1\", qop=\"auth\"\r\n\
         Content-Length: 0\r\n\r\n",
        copy("Via:"),
        copy("From:"),
        copy("To:"),
        copy("Call-ID:"),
        copy("CSeq:"),
    )
    .into_bytes()
}

/// Everything one endpoint sends for a scripted session that starts at `t0`:
/// a registration answering a challenge, a call answered and hung up by us,
/// a stateless answer and an answer to an unparsable request.
fn session(seed: [u8; 32], t0: Instant) -> Vec<String> {
    let mut h = Harness::with_config(EndpointConfig {
        rng_seed: Some(seed),
        ..config(Duration::ZERO)
    });
    h.now = t0;
    h.sources.push(REGISTRAR.parse().unwrap());
    let credentials = Credentials {
        username: "line".into(),
        password: "secret".into(),
    };
    h.ep.register(registration(), Box::new(Digest::new(credentials)), t0);
    h.drain();
    let first = h.sent.last().unwrap().1.clone();
    h.feed_from(&challenge(&first), REGISTRAR.parse().unwrap());

    let mut uac = Uac::new("call-seeded");
    h.feed(&uac.request("INVITE", "z9hG4bK-s1", 1, &offer("0")));
    let ok = h.sent.last().unwrap().1.clone();
    uac.to_tag = Some(to_tag_of(&ok));
    h.feed(&uac.request("ACK", "z9hG4bK-s1a", 1, ""));
    let call = match h.actions[0] {
        Action::StartMedia { call, .. } => call,
        _ => unreachable!("the ACK starts media"),
    };
    h.now += Duration::from_secs(5);
    h.ep.handle_media_ended(call, EndReason::ContentFinished, h.now);
    h.drain();
    h.feed(&Uac::new("call-options").request("OPTIONS", "z9hG4bK-s2", 1, ""));
    h.feed(b"INVITE sip:service@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-s3\r\nFrom: <sip:c@x>;tag=1\r\nTo: <sip:s@x>\r\nCall-ID: broken\r\nCSeq: x INVITE\r\nContent-Length: 0\r\n\r\n");
    h.take_sent()
}

#[test]
fn the_same_seed_and_inputs_send_the_same_bytes() {
    let t0 = Instant::now();
    let one = session([7; 32], t0);
    let statuses = Harness::statuses(&one);
    assert_eq!(statuses, vec![100, 200, 200, 400], "{one:#?}");
    assert_eq!(one.iter().filter(|m| m.starts_with("REGISTER ")).count(), 2);
    assert!(one.iter().any(|m| m.contains("cnonce=")));
    assert!(one.iter().any(|m| m.starts_with("BYE ")));
    assert_eq!(one, session([7; 32], t0));

    let other = session([8; 32], t0);
    assert_eq!(Harness::statuses(&other), statuses);
    // A 100 Trying carries nothing of ours (no To-tag, §8.2.6.1).
    for (a, b) in one
        .iter()
        .zip(&other)
        .filter(|(a, _)| !a.starts_with("SIP/2.0 100"))
    {
        assert_ne!(a, b, "a new seed draws new ids for every message");
    }
}

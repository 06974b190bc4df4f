//! SDP offer/answer (RFC 3264, RFC 8866): `sdp::parse` on an offer, then
//! `sdp::answer` with a codec list, `sdp::accept_answer` as if the body
//! were an answer to our offer, and our own offer and answer read back.
//!
//! Input: one byte choosing the line's codecs and their order, then the
//! body (not UTF-8: read lossily, as a body that reached the parser could
//! not be, but the parser must not care).
//!
//! Invariant: the answer we write is SDP we read ourselves, agreeing on
//! the codec and payload type we chose.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dial_a_service::media::Codec;
use dial_a_service::sdp::{self, LocalMedia};
use libfuzzer_sys::fuzz_target;

/// The line's codecs: every non-empty ordered pick the config allows.
fn codecs(choice: u8) -> Vec<Codec> {
    const ORDERS: [[Codec; 3]; 6] = [
        [Codec::Pcmu, Codec::Pcma, Codec::Opus],
        [Codec::Pcmu, Codec::Opus, Codec::Pcma],
        [Codec::Pcma, Codec::Pcmu, Codec::Opus],
        [Codec::Pcma, Codec::Opus, Codec::Pcmu],
        [Codec::Opus, Codec::Pcmu, Codec::Pcma],
        [Codec::Opus, Codec::Pcma, Codec::Pcmu],
    ];
    let order = ORDERS[usize::from(choice) % ORDERS.len()];
    let take = 1 + usize::from(choice / 6) % 3;
    order[..take].to_vec()
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, body)) = data.split_first() else {
        return;
    };
    let codecs = codecs(choice);
    let text = String::from_utf8_lossy(body);
    let local = LocalMedia {
        address: if choice & 0x80 == 0 {
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))
        } else {
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 10))
        },
        rtp_port: 20_000,
        session_id: 1,
        session_version: 1,
    };
    let Ok(offer) = sdp::parse(&text) else {
        return;
    };
    for media in &offer.media {
        for pt in media.payload_types() {
            let _ = (media.codec_of(pt), media.fmtp(pt));
        }
        let _ = media.telephone_event(8_000);
    }
    let _ = sdp::accept_answer(&offer, &codecs);
    if let Ok((negotiated, answer)) = sdp::answer(&offer, &codecs, &local) {
        let read = sdp::parse(&answer)
            .unwrap_or_else(|e| panic!("our answer does not parse: {e}\n{answer}"));
        let accepted = sdp::accept_answer(&read, &codecs)
            .unwrap_or_else(|e| panic!("our answer is not acceptable: {e}\n{answer}"));
        assert_eq!(
            (accepted.codec, accepted.payload_type),
            (negotiated.codec, negotiated.payload_type),
            "{answer}"
        );
    }
    let ours = sdp::offer(&codecs, &local);
    sdp::parse(&ours).expect("our offer parses");
});

//! The caller's media packets: `media::rtp::parse`, RFC 4733
//! `TelephoneEvent::parse`, RTCP (`media::rtcp::packets`, `parse_header`),
//! and the key path a stream's listener runs (`Rfc4733Detector`, in-band
//! G.711 tones, SIP INFO bodies, `KeyDeduplicator`).
//!
//! Input: packets, each a 16-bit length and its bytes, in arrival order;
//! the first byte of each also says how much virtual time passed.
//!
//! Invariants: RTCP packets lie inside the datagram, word-aligned; a
//! telephone-event packet seen again never counts twice; a press reported
//! another way within the window is let through once; what our
//! packetizer and RTCP writer produce reads back.

#![no_main]

use std::time::{Duration, Instant};

use dial_a_service::call::keys::{self, KeyDeduplicator};
use dial_a_service::media::dtmf::{KeyChannel, Rfc4733Detector};
use dial_a_service::media::g711;
use dial_a_service::media::inband::InBandDetector;
use dial_a_service::media::rtcp::{self, NtpTimestamp, SenderInfo};
use dial_a_service::media::rtp::{self, Packetizer, PayloadType, TelephoneEvent};
use dial_a_service_fuzz::script::Script;
use libfuzzer_sys::fuzz_target;

/// The telephone-event payload type the fake call negotiated.
const TELEPHONE_EVENT: u8 = 101;

fn rtcp_checks(datagram: &[u8]) {
    let _ = rtcp::is_rtcp(datagram);
    let _ = rtcp::parse_header(datagram);
    let mut total = 0;
    for packet in rtcp::packets(datagram) {
        let Ok((header, bytes)) = packet else {
            break;
        };
        assert_eq!(header.len, bytes.len());
        assert!(header.len >= 4 && header.len % 4 == 0, "{header:?}");
        total += header.len;
    }
    assert!(total <= datagram.len());
}

/// What our own writers make of the packet's numbers reads back.
fn round_trip(header: &rtp::RtpHeader<'_>) {
    let pt = PayloadType(header.payload_type.0 & 0x7f);
    let mut packetizer =
        Packetizer::with_initial(pt, 160, header.ssrc, header.sequence, header.timestamp);
    let mut out = vec![0u8; rtp::HEADER_LEN + header.payload.len()];
    let len = packetizer
        .write_packet(header.payload, &mut out)
        .expect("the buffer fits the payload");
    let back = rtp::parse(&out[..len]).expect("our packet reads back");
    assert_eq!(
        (
            back.ssrc,
            back.sequence,
            back.timestamp,
            back.payload_type,
            back.payload
        ),
        (
            header.ssrc,
            header.sequence,
            header.timestamp,
            pt,
            header.payload
        )
    );
    let info = SenderInfo {
        ntp: NtpTimestamp(u64::from(header.timestamp) << 20),
        rtp_timestamp: header.timestamp,
        packet_count: u32::from(header.sequence),
        octet_count: header.payload.len() as u32,
    };
    let cname = &header.payload[..header.payload.len().min(rtcp::MAX_CNAME_LEN)];
    let mut out = [0u8; 512];
    let len = rtcp::write_compound(header.ssrc, &info, cname, header.marker, &mut out)
        .expect("a compound packet fits 512 bytes");
    let kinds: Vec<u8> = rtcp::packets(&out[..len])
        .map(|p| p.expect("our rtcp reads back").0.packet_type)
        .collect();
    let mut expected = vec![rtcp::PT_SR, rtcp::PT_SDES];
    if header.marker {
        expected.push(rtcp::PT_BYE);
    }
    assert_eq!(kinds, expected);
}

fuzz_target!(|data: &[u8]| {
    let mut script = Script::new(data);
    let t0 = Instant::now();
    let mut now = t0;
    let mut detector = Rfc4733Detector::default();
    let mut inband = InBandDetector::default();
    let mut dedup = KeyDeduplicator::default();
    let mut last_key = None;
    while !script.is_empty() {
        let datagram = script.chunk();
        now += Duration::from_millis(u64::from(datagram.first().copied().unwrap_or(0)) * 4);
        rtcp_checks(datagram);
        // A SIP INFO body: `application/dtmf-relay`, then `application/dtmf`.
        let _ = keys::key_from_info("application/dtmf-relay", datagram);
        let _ = keys::key_from_info("Application/DTMF; x=1", datagram);
        let Ok(header) = rtp::parse(datagram) else {
            continue;
        };
        round_trip(&header);
        let mut keys = Vec::new();
        match header.payload_type.0 {
            TELEPHONE_EVENT => {
                let _ = TelephoneEvent::parse(header.payload);
                let key = detector.handle_packet(header.ssrc.0, header.timestamp, header.payload);
                // §2.5.1.4: the same event again (the end sent thrice) is one press.
                let again = detector.handle_packet(header.ssrc.0, header.timestamp, header.payload);
                assert_eq!(again, None, "an event counted twice");
                keys.extend(key.map(|k| (k, KeyChannel::Rfc4733)));
            }
            pt @ (0 | 8) => {
                let samples: Vec<f32> = header
                    .payload
                    .iter()
                    .map(|&c| {
                        let s = if pt == 0 {
                            g711::ulaw_decode(c)
                        } else {
                            g711::alaw_decode(c)
                        };
                        f32::from(s) / 32768.0
                    })
                    .collect();
                keys.extend(
                    inband
                        .handle_samples(&samples)
                        .into_iter()
                        .map(|k| (k, KeyChannel::InBand)),
                );
            }
            _ => {}
        }
        for (key, via) in keys {
            let first = dedup.handle_key(key, via, now);
            // The same press by another way moments later is swallowed.
            let other = if via == KeyChannel::SipInfo {
                KeyChannel::Rfc4733
            } else {
                KeyChannel::SipInfo
            };
            if first.is_some() {
                assert_eq!(
                    dedup.handle_key(key, other, now),
                    None,
                    "a press let through twice"
                );
            }
            last_key = Some(key);
        }
    }
    let _ = last_key.map(|k| k.as_char());
});

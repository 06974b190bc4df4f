//! Offer/answer against SDP as real peers write it.

use super::*;
use crate::media::rtp::PayloadType;

/// baresip 3.x with its default module set (opus, g711), caller side.
const BARESIP: &str = "v=0\r\n\
o=- 2337190127 3912370519 IN IP4 192.168.1.20\r\n\
s=-\r\n\
c=IN IP4 192.168.1.20\r\n\
t=0 0\r\n\
m=audio 10060 RTP/AVP 111 0 8 101\r\n\
b=AS:96\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 stereo=1;sprop-stereo=1\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=sendrecv\r\n\
a=label:1\r\n\
a=ssrc:2463461178 cname:c3a0e8b5-c0f4-4a7e-b0e5-98e7f0b6e4bd\r\n\
a=rtcp-rsize\r\n\
a=ptime:20\r\n";

/// Linphone desktop: several telephone-event clocks, static PT 0/8 without rtpmap.
const LINPHONE: &str = "v=0\r\n\
o=alice 2345 678 IN IP4 10.0.0.5\r\n\
s=Talk\r\n\
c=IN IP4 10.0.0.5\r\n\
t=0 0\r\n\
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r\n\
m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 useinbandfec=1\r\n\
a=rtpmap:97 speex/16000\r\n\
a=fmtp:97 vbr=on\r\n\
a=rtpmap:98 speex/8000\r\n\
a=fmtp:98 vbr=on\r\n\
a=fmtp:18 annexb=yes\r\n\
a=rtpmap:101 telephone-event/48000\r\n\
a=rtpmap:99 telephone-event/16000\r\n\
a=rtpmap:100 telephone-event/8000\r\n\
a=rtcp-fb:* trr-int 1000\r\n\
a=rtcp-fb:* ccm tmmbr\r\n";

/// An Asterisk trunk, G.711 only with A-law first, LF line ends.
const ASTERISK: &str = "v=0
o=- 1715090000 1715090000 IN IP4 203.0.113.5
s=Asterisk
c=IN IP4 203.0.113.5
t=0 0
m=audio 12050 RTP/AVP 8 0 3 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:3 GSM/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:150
a=sendrecv
";

/// A Cisco gateway: session-level c= only, no rtpmap for PT 0.
const CISCO: &str = "v=0\r\n\
o=CiscoSystemsSIP-GW-UserAgent 4212 2331 IN IP4 198.51.100.7\r\n\
s=SIP Call\r\n\
c=IN IP4 198.51.100.7\r\n\
t=0 0\r\n\
m=audio 16384 RTP/AVP 0 101 19\r\n\
c=IN IP4 198.51.100.8\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=rtpmap:19 CN/8000\r\n\
a=ptime:20\r\n";

const IPV6: &str = "v=0\r\n\
o=- 1 1 IN IP6 2001:db8::20\r\n\
s=-\r\n\
c=IN IP6 2001:db8::20\r\n\
t=0 0\r\n\
m=audio 40000 RTP/AVP 0\r\n\
a=rtcp:40005 IN IP6 2001:db8::21\r\n";

fn local() -> LocalMedia {
    LocalMedia {
        address: "192.0.2.1".parse().unwrap(),
        rtp_port: 20000,
        session_id: 42,
        session_version: 7,
    }
}

fn answer_lines(text: &str, codecs: &[Codec]) -> (Negotiated, Vec<String>) {
    let (negotiated, body) = answer(&parse(text).unwrap(), codecs, &local()).unwrap();
    assert!(body.ends_with("\r\n"));
    let lines = body.split("\r\n").filter(|l| !l.is_empty());
    (negotiated, lines.map(str::to_owned).collect())
}

#[test]
fn baresip_gets_opus_first_with_its_payload_type() {
    let (n, lines) = answer_lines(BARESIP, &Codec::ALL);
    assert_eq!(n.codec, Codec::Opus);
    assert_eq!(n.payload_type, PayloadType(111));
    // Only 8 kHz events were offered: the fallback picks them for Opus.
    assert_eq!(n.telephone_event, Some(PayloadType(101)));
    assert_eq!(n.remote_rtp, Some("192.168.1.20:10060".parse().unwrap()));
    assert_eq!(n.remote_rtcp, Some("192.168.1.20:10061".parse().unwrap()));
    assert_eq!(n.local_direction, Direction::SendRecv);
    assert_eq!(
        lines,
        [
            "v=0",
            "o=dial-a-service 42 7 IN IP4 192.0.2.1",
            "s=dial-a-service",
            "c=IN IP4 192.0.2.1",
            "t=0 0",
            "m=audio 20000 RTP/AVP 111 101",
            "a=rtpmap:111 opus/48000/2",
            "a=fmtp:111 useinbandfec=1;stereo=0;sprop-stereo=0",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-15",
            "a=ptime:20",
            "a=sendrecv",
        ]
    );
}

#[test]
fn configured_list_filters_but_caller_order_decides() {
    // We list PCMA before PCMU, but baresip prefers PCMU: the caller's order wins.
    let (n, lines) = answer_lines(BARESIP, &[Codec::Pcma, Codec::Pcmu]);
    assert_eq!((n.codec, n.payload_type), (Codec::Pcmu, PayloadType(0)));
    assert!(lines.contains(&"m=audio 20000 RTP/AVP 0 101".to_owned()));
    assert!(lines.contains(&"a=rtpmap:0 PCMU/8000".to_owned()));
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("opus") || l.contains("PCMA"))
    );
}

#[test]
fn linphone_opus_takes_48k_events_and_static_pcmu_needs_no_rtpmap() {
    let (n, lines) = answer_lines(LINPHONE, &Codec::ALL);
    assert_eq!((n.codec, n.payload_type), (Codec::Opus, PayloadType(96)));
    assert_eq!(n.telephone_event, Some(PayloadType(101)));
    assert!(lines.contains(&"a=rtpmap:101 telephone-event/48000".to_owned()));
    // Linphone sent no fmtp for its events: the answer says which we take.
    assert!(lines.contains(&"a=fmtp:101 0-16".to_owned()));

    // G.711 only: PT 0 has no rtpmap in the offer, and the 8 kHz events are PT 100.
    let (n, lines) = answer_lines(LINPHONE, &[Codec::Pcmu]);
    assert_eq!((n.codec, n.payload_type), (Codec::Pcmu, PayloadType(0)));
    assert_eq!(n.telephone_event, Some(PayloadType(100)));
    assert!(lines.contains(&"m=audio 20000 RTP/AVP 0 100".to_owned()));
    assert!(lines.contains(&"a=rtpmap:100 telephone-event/8000".to_owned()));
}

#[test]
fn asterisk_lf_only_prefers_pcma() {
    let (n, lines) = answer_lines(ASTERISK, &Codec::ALL);
    assert_eq!((n.codec, n.payload_type), (Codec::Pcma, PayloadType(8)));
    assert_eq!(n.telephone_event, Some(PayloadType(101)));
    assert!(lines.contains(&"m=audio 20000 RTP/AVP 8 101".to_owned()));
}

#[test]
fn cisco_media_level_connection_wins() {
    let (n, _) = answer_lines(CISCO, &Codec::ALL);
    assert_eq!((n.codec, n.payload_type), (Codec::Pcmu, PayloadType(0)));
    assert_eq!(n.remote_rtp, Some("198.51.100.8:16384".parse().unwrap()));
}

#[test]
fn ipv6_offer_and_rtcp_attribute_with_address() {
    let (n, _) = answer_lines(IPV6, &Codec::ALL);
    assert_eq!(n.remote_rtp, Some("[2001:db8::20]:40000".parse().unwrap()));
    // RTCP goes to the media host only: the attribute's port is taken,
    // its other address is not.
    assert_eq!(n.remote_rtcp, Some("[2001:db8::20]:40005".parse().unwrap()));

    let local6 = LocalMedia {
        address: "2001:db8::1".parse().unwrap(),
        ..local()
    };
    let (_, body) = answer(&parse(IPV6).unwrap(), &Codec::ALL, &local6).unwrap();
    assert!(body.contains("o=dial-a-service 42 7 IN IP6 2001:db8::1\r\n"));
    assert!(body.contains("c=IN IP6 2001:db8::1\r\n"));
}

#[test]
fn rtcp_attribute_port_only_uses_connection_address() {
    let text = ASTERISK.replace("a=ptime:20", "a=rtcp:12999");
    let (n, _) = answer_lines(&text, &Codec::ALL);
    assert_eq!(n.remote_rtcp, Some("203.0.113.5:12999".parse().unwrap()));
}

#[test]
fn directions_are_reversed_and_media_level_wins() {
    for (attr, ours) in [
        ("sendonly", Direction::RecvOnly),
        ("recvonly", Direction::SendOnly),
        ("inactive", Direction::Inactive),
        ("sendrecv", Direction::SendRecv),
    ] {
        let text = ASTERISK.replace("a=sendrecv", &format!("a={attr}"));
        let (n, lines) = answer_lines(&text, &Codec::ALL);
        assert_eq!(n.local_direction, ours, "offer a={attr}");
        assert_eq!(lines.last().unwrap(), &format!("a={}", ours.attribute()));
    }
    // Session-level sendonly, no media-level attribute.
    let text = CISCO.replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n");
    assert_eq!(
        answer_lines(&text, &Codec::ALL).0.local_direction,
        Direction::RecvOnly
    );
    // Session-level inactive overridden by media-level sendrecv.
    let text = ASTERISK.replace("t=0 0\n", "t=0 0\na=inactive\n");
    assert_eq!(
        answer_lines(&text, &Codec::ALL).0.local_direction,
        Direction::SendRecv
    );
}

#[test]
fn old_style_hold_means_we_do_not_send() {
    let text = ASTERISK.replace("c=IN IP4 203.0.113.5", "c=IN IP4 0.0.0.0");
    let (n, lines) = answer_lines(&text, &Codec::ALL);
    assert_eq!(n.remote_rtp, None);
    assert_eq!(n.remote_rtcp, None);
    assert_eq!(n.local_direction, Direction::RecvOnly);
    assert!(!n.local_direction.sends());
    assert_eq!(lines.last().unwrap(), "a=recvonly");

    let text = text.replace("a=sendrecv", "a=recvonly");
    assert_eq!(
        answer_lines(&text, &Codec::ALL).0.local_direction,
        Direction::Inactive
    );
}

#[test]
fn video_is_rejected_in_place() {
    let text = "v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n\
m=video 5004 RTP/AVP 96 97\r\na=rtpmap:96 H264/90000\r\na=rtpmap:97 VP8/90000\r\n\
m=audio 5006 RTP/AVP 0\r\n\
m=video 0 RTP/AVP 98\r\n";
    let (n, lines) = answer_lines(text, &Codec::ALL);
    assert_eq!(n.remote_rtp, Some("10.0.0.9:5006".parse().unwrap()));
    let m_lines: Vec<&String> = lines.iter().filter(|l| l.starts_with("m=")).collect();
    assert_eq!(
        m_lines,
        [
            "m=video 0 RTP/AVP 96 97",
            "m=audio 20000 RTP/AVP 0",
            "m=video 0 RTP/AVP 98"
        ]
    );
    // The only thing after the audio section's attributes is the rejected video line.
    assert!(!lines.iter().any(|l| l.contains("H264")));
}

#[test]
fn a_second_audio_stream_is_rejected() {
    let text = format!("{ASTERISK}m=audio 12060 RTP/AVP 0\n");
    let (n, lines) = answer_lines(&text, &Codec::ALL);
    assert_eq!(n.remote_rtp, Some("203.0.113.5:12050".parse().unwrap()));
    assert_eq!(lines.last().unwrap(), "m=audio 0 RTP/AVP 0");
}

#[test]
fn no_common_codec_is_the_488_path() {
    let text = ASTERISK.replace("RTP/AVP 8 0 3 101", "RTP/AVP 3 101");
    let err = answer(&parse(&text).unwrap(), &Codec::ALL, &local()).unwrap_err();
    assert_eq!(err, SdpError::NoCommonCodec);
    // Opus in stereo-less or wrong-rate form is not Opus (RFC 7587 §7).
    let text = BARESIP
        .replace("RTP/AVP 111 0 8 101", "RTP/AVP 111 101")
        .replace("opus/48000/2", "opus/48000");
    let err = answer(&parse(&text).unwrap(), &Codec::ALL, &local()).unwrap_err();
    assert_eq!(err, SdpError::NoCommonCodec);
}

#[test]
fn codec_names_are_case_insensitive() {
    let text = BARESIP.replace("opus/48000/2", "OPUS/48000/2");
    assert_eq!(answer_lines(&text, &Codec::ALL).0.codec, Codec::Opus);
    let text = ASTERISK
        .replace("RTP/AVP 8 0 3 101", "RTP/AVP 98")
        .replace("a=rtpmap:3 GSM/8000", "a=rtpmap:98 pcmu/8000");
    assert_eq!(
        answer_lines(&text, &Codec::ALL).0.payload_type,
        PayloadType(98)
    );
}

#[test]
fn audio_problems_are_typed() {
    let no_audio = "v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n\
m=video 5004 RTP/AVP 96\r\n";
    let offer = parse(no_audio).unwrap();
    assert_eq!(
        answer(&offer, &Codec::ALL, &local()).unwrap_err(),
        SdpError::NoAudio
    );
    let text = ASTERISK.replace("m=audio 12050", "m=audio 0");
    let offer = parse(&text).unwrap();
    assert_eq!(
        answer(&offer, &Codec::ALL, &local()).unwrap_err(),
        SdpError::AudioDisabled { line: 6 }
    );
    let text = ASTERISK.replace("RTP/AVP", "RTP/SAVP");
    let offer = parse(&text).unwrap();
    assert!(matches!(
        answer(&offer, &Codec::ALL, &local()),
        Err(SdpError::UnsupportedTransport { line: 6, .. })
    ));
    let text = ASTERISK.replace("c=IN IP4 203.0.113.5\n", "");
    let offer = parse(&text).unwrap();
    assert_eq!(
        answer(&offer, &Codec::ALL, &local()).unwrap_err(),
        SdpError::MissingConnection { line: 5 }
    );
}

#[test]
fn malformed_lines_name_their_line() {
    let cases = [
        ("hello\r\n", SdpError::NotSdp { line: 1 }),
        ("", SdpError::NotSdp { line: 1 }),
        ("v=1\r\n", SdpError::NotSdp { line: 1 }),
        ("v=0\r\nnonsense\r\n", SdpError::MalformedLine { line: 2 }),
        ("v=0\r\n\r\n=x\r\n", SdpError::MalformedLine { line: 3 }),
        (
            "v=0\r\nm=audio x RTP/AVP 0\r\n",
            SdpError::BadMedia {
                line: 2,
                text: "audio x RTP/AVP 0".into(),
            },
        ),
        (
            "v=0\r\nm=audio 4000 RTP/AVP\r\n",
            SdpError::BadMedia {
                line: 2,
                text: "audio 4000 RTP/AVP".into(),
            },
        ),
        (
            "v=0\r\nc=IN IP4 ::1\r\n",
            SdpError::BadConnection {
                line: 2,
                text: "IN IP4 ::1".into(),
            },
        ),
        (
            "v=0\r\nc=IN IP4 sip.example.com\r\n",
            SdpError::BadConnection {
                line: 2,
                text: "IN IP4 sip.example.com".into(),
            },
        ),
        (
            "v=0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n",
            SdpError::BadAttribute {
                line: 3,
                attribute: "rtpmap",
                text: "0 PCMU".into(),
            },
        ),
        (
            "v=0\r\nm=audio 4000 RTP/AVP 0\r\na=rtcp:99999\r\n",
            SdpError::BadAttribute {
                line: 3,
                attribute: "rtcp",
                text: "99999".into(),
            },
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(parse(text).unwrap_err(), expected, "{text:?}");
    }
    assert_eq!(
        SdpError::MalformedLine { line: 2 }.to_string(),
        "line 2: expected \"<letter>=<value>\""
    );
}

#[test]
fn lenient_about_what_does_not_matter() {
    // Unknown line types and attributes, a bad fmtp, multicast TTL, port count,
    // non-numeric formats and blank lines are all tolerated.
    let text = "v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nz=0 0\r\nx-foo=bar\r\n\
c=IN IP4 224.2.1.1/127\r\nt=0 0\r\n\r\n\
m=audio 5000/2 RTP/AVP 0 abc 200\r\na=fmtp:garbage\r\na=unknown:thing\r\na=ptime:x\r\n";
    // "x-foo=bar" is not "<letter>=": that one is an error; drop it and it parses.
    assert_eq!(
        parse(text).unwrap_err(),
        SdpError::MalformedLine { line: 5 }
    );
    let offer = parse(&text.replace("x-foo=bar\r\n", "")).unwrap();
    let media = &offer.media[0];
    assert_eq!(media.port, 5000);
    assert_eq!(media.payload_types().collect::<Vec<_>>(), [PayloadType(0)]);
    // A multicast group is parsed, but never streamed to.
    assert_eq!(
        answer(&offer, &Codec::ALL, &local()).unwrap_err(),
        SdpError::NotUnicast {
            address: "224.2.1.1".parse().unwrap()
        }
    );
    let unicast = parse(
        &text
            .replace("x-foo=bar\r\n", "")
            .replace("224.2.1.1/127", "192.0.2.5"),
    )
    .unwrap();
    let (n, _) = answer(&unicast, &Codec::ALL, &local()).unwrap();
    assert_eq!(n.remote_rtp, Some("192.0.2.5:5000".parse().unwrap()));
    assert_eq!(n.telephone_event, None);
}

#[test]
fn offer_lists_configured_codecs_in_order_and_round_trips() {
    let text = offer(&[Codec::Opus, Codec::Pcmu, Codec::Pcma], &local());
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        &lines[5..],
        [
            "m=audio 20000 RTP/AVP 111 0 8 101 110",
            "a=rtpmap:111 opus/48000/2",
            "a=fmtp:111 useinbandfec=1;stereo=0;sprop-stereo=0",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-16",
            "a=rtpmap:110 telephone-event/48000",
            "a=fmtp:110 0-16",
            "a=ptime:20",
            "a=sendrecv",
        ]
    );
    let g711 = offer(&[Codec::Pcma], &local());
    assert!(g711.contains("m=audio 20000 RTP/AVP 8 101\r\n"));
    assert!(!g711.contains("48000"));

    // Our own offer answered by ourselves, with a G.711-only configuration.
    let ours = parse(&text).unwrap();
    let (n, body) = answer(&ours, &[Codec::Pcma], &local()).unwrap();
    assert_eq!(
        (n.codec, n.payload_type, n.telephone_event),
        (Codec::Pcma, PayloadType(8), Some(PayloadType(101)))
    );
    let back = accept_answer(&parse(&body).unwrap(), &Codec::ALL).unwrap();
    assert_eq!(back.codec, Codec::Pcma);
    assert_eq!(back.telephone_event, Some(PayloadType(101)));
    assert_eq!(back.remote_rtp, Some("192.0.2.1:20000".parse().unwrap()));
    assert_eq!(back.local_direction, Direction::SendRecv);
}

#[test]
fn accept_answer_needs_a_codec_we_offered() {
    let answer_text = ASTERISK.replace("a=sendrecv", "a=recvonly");
    let n = accept_answer(&parse(&answer_text).unwrap(), &[Codec::Pcmu]).unwrap();
    assert_eq!((n.codec, n.payload_type), (Codec::Pcmu, PayloadType(0)));
    assert_eq!(n.local_direction, Direction::SendOnly);
    let err = accept_answer(&parse(&answer_text).unwrap(), &[Codec::Opus]).unwrap_err();
    assert_eq!(err, SdpError::NoCommonCodec);
}

#[test]
fn hostile_input_never_panics() {
    // Every prefix and a handful of single-character corruptions of each fixture: parse
    // and answer may fail, but only with an error.
    for fixture in [BARESIP, LINPHONE, ASTERISK, CISCO, IPV6] {
        let chars: Vec<(usize, char)> = fixture.char_indices().collect();
        for &(at, _) in &chars {
            let prefix = &fixture[..at];
            if let Ok(offer) = parse(prefix) {
                let _ = answer(&offer, &Codec::ALL, &local());
                let _ = accept_answer(&offer, &Codec::ALL);
            }
            for replacement in ["", " ", "=", "\n", "/", ":", "é", "99999"] {
                let mutated = format!("{prefix}{replacement}{}", &fixture[at + 1..]);
                if let Ok(offer) = parse(&mutated) {
                    let _ = answer(&offer, &Codec::ALL, &local());
                }
            }
        }
    }
}

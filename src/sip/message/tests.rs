use super::*;
use std::net::SocketAddr;

fn request(text: &str) -> rsip::Request {
    match parse(text.as_bytes()).expect("fixture parses") {
        SipMessage::Request(r) => r,
        SipMessage::Response(_) => panic!("fixture is a request"),
    }
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("test address")
}

const COMPACT_INVITE: &str = "INVITE sip:svc@192.0.2.10 SIP/2.0\n\
    v: SIP/2.0/UDP [2001:db8::1]:5062;branch=z9hG4bKa;rport, SIP/2.0/TCP p.example.com;branch=z9hG4bKb\n\
    f: \"Bob, Jr\" <sip:bob@example.com>;tag=f1\n\
    t: <sip:svc@192.0.2.10>\n\
    i: abc@host\n\
    CSeq : 2\n  INVITE\n\
    m: <sip:bob@[2001:db8::1]:5062>;+sip.instance=\"<urn:uuid:1>\"\n\
    Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\n\
    c: application/sdp\n\
    l: 4\n\
    \n\
    v=0\nextra";

#[test]
fn compact_folded_lf_message_parses_into_long_untyped_headers() {
    let invite = request(COMPACT_INVITE);
    assert_eq!(invite.method, Method::Invite);
    assert_eq!(
        invite.body, b"v=0\n",
        "cut to Content-Length, extra bytes ignored"
    );
    assert_eq!(call_id(&invite.headers).unwrap(), "abc@host");
    assert_eq!(cseq(&invite.headers).unwrap(), (2, Method::Invite));
    assert_eq!(from_tag(&invite.headers).as_deref(), Some("f1"));
    assert_eq!(to_tag(&invite.headers), None);
    assert_eq!(header_value(&invite.headers, "i"), Some("abc@host"));
    assert_eq!(
        header_value(&invite.headers, "content-type"),
        Some("application/sdp")
    );
    assert_eq!(
        contact_uri(&invite.headers).as_deref(),
        Some("sip:bob@[2001:db8::1]:5062")
    );
    assert!(
        invite
            .headers
            .iter()
            .any(|h| matches!(h, Header::CallId(_))),
        "compact i: becomes rsip's Call-ID header"
    );
    let vias: Vec<_> = invite
        .headers
        .iter()
        .filter(|h| matches!(h, Header::Via(_)))
        .collect();
    assert_eq!(vias.len(), 2, "comma-joined Via split into two headers");
    assert_eq!(
        record_routes(&invite.headers),
        ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    );
}

#[test]
fn ipv6_via_is_read_leniently() {
    let invite = request(COMPACT_INVITE);
    let via = top_via(&invite.headers).unwrap();
    assert_eq!(
        via,
        Via {
            transport: "UDP".into(),
            host: "2001:db8::1".into(),
            port: Some(5062),
            branch: Some("z9hG4bKa".into()),
            received: None,
            rport: Some(None),
        }
    );
    let odd =
        Via::parse("SIP / 2.0 / tcp  host.example.com : 5070 ; RPORT = 1234 ;Received= 10.0.0.1")
            .unwrap();
    assert_eq!(
        (odd.transport.as_str(), odd.host.as_str(), odd.port),
        ("TCP", "host.example.com", Some(5070))
    );
    assert_eq!(
        (odd.rport, odd.received.as_deref()),
        (Some(Some(1234)), Some("10.0.0.1"))
    );
    assert!(Via::parse("SIP/2.0/UDP [not-v6]:5060").is_err());
    assert!(Via::parse(";").is_err());
}

fn stamped(via: &str, source: &str) -> (String, Via) {
    let mut req = request(&format!(
        "OPTIONS sip:a@b SIP/2.0\r\nVia: {via}\r\nVia: SIP/2.0/UDP second;branch=z9hG4bK2\r\n\
         From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n"
    ));
    stamp_received(&mut req, addr(source));
    let values: Vec<_> = header_values(&req.headers, "Via").collect();
    assert_eq!(
        values[1], "SIP/2.0/UDP second;branch=z9hG4bK2",
        "only the top Via changes"
    );
    (values[0].to_string(), top_via(&req.headers).unwrap())
}

#[test]
fn rfc3581_stamping_and_response_destination() {
    // RFC 3581 §4 example: rport requested from behind a NAT.
    let (value, via) = stamped(
        "SIP/2.0/UDP 10.1.1.1:4540;rport;branch=z9hG4bKa",
        "192.0.2.1:9988",
    );
    assert_eq!(
        value,
        "SIP/2.0/UDP 10.1.1.1:4540;rport=9988;branch=z9hG4bKa;received=192.0.2.1"
    );
    assert_eq!(
        response_destination(&via, addr("192.0.2.1:9988")),
        addr("192.0.2.1:9988")
    );

    // rport present and no NAT: received is still added (RFC 3581 §4).
    let (value, via) = stamped(
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa;rport",
        "192.0.2.1:5060",
    );
    assert_eq!(
        value,
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa;rport=5060;received=192.0.2.1"
    );
    assert_eq!(
        response_destination(&via, addr("192.0.2.1:5060")),
        addr("192.0.2.1:5060")
    );

    // No rport, sent-by differs: received only (RFC 3261 §18.2.1); the reply
    // goes to the received IP and the sent-by port (§18.2.2).
    let (value, via) = stamped(
        "SIP/2.0/UDP pc.example.com:5070;branch=z9hG4bKa",
        "192.0.2.7:40000",
    );
    assert_eq!(
        value,
        "SIP/2.0/UDP pc.example.com:5070;branch=z9hG4bKa;received=192.0.2.7"
    );
    assert_eq!(
        response_destination(&via, addr("192.0.2.7:40000")),
        addr("192.0.2.7:5070")
    );

    // Sent-by is the source IP, no rport: nothing added; default port 5060.
    let (value, via) = stamped("SIP/2.0/UDP 192.0.2.7;branch=z9hG4bKa", "192.0.2.7:40000");
    assert_eq!(value, "SIP/2.0/UDP 192.0.2.7;branch=z9hG4bKa");
    assert_eq!(
        response_destination(&via, addr("192.0.2.7:40000")),
        addr("192.0.2.7:5060")
    );

    // A lying Via (someone else's host, a `received` and an `rport` of the
    // client's own): the answer still goes back to the sender.
    let lying = Via::parse(
        "SIP/2.0/UDP 198.51.100.1:5060;received=198.51.100.9;rport=7777;branch=z9hG4bKa",
    )
    .unwrap();
    assert_eq!(
        response_destination(&lying, addr("192.0.2.7:40000")),
        addr("192.0.2.7:40000")
    );
    let lying =
        Via::parse("SIP/2.0/UDP 198.51.100.1:5090;received=198.51.100.9;branch=z9hG4bKa").unwrap();
    assert_eq!(
        response_destination(&lying, addr("192.0.2.7:40000")),
        addr("192.0.2.7:5090")
    );

    // IPv6 source written without brackets in received.
    let (value, _) = stamped(
        "SIP/2.0/UDP [2001:db8::9]:5060;branch=z9hG4bKa;rport",
        "[2001:db8::1]:6000",
    );
    assert!(
        value.ends_with(";rport=6000;received=2001:db8::1"),
        "{value}"
    );
}

#[test]
fn response_destination_of_unstamped_vias() {
    let via = |text: &str| Via::parse(text).unwrap();
    let source = addr("198.51.100.1:7000");
    assert_eq!(
        response_destination(&via("SIP/2.0/UDP h;rport"), source),
        source
    );
    assert_eq!(
        response_destination(&via("SIP/2.0/UDP h:5080;received=203.0.113.5"), source),
        addr("198.51.100.1:5080"),
        "a client's own received is not believed"
    );
    assert_eq!(
        response_destination(&via("SIP/2.0/UDP host.example.com:5090"), source),
        addr("198.51.100.1:5090"),
        "a host name falls back to the source IP"
    );
    assert_eq!(
        response_destination(&via("SIP/2.0/UDP [2001:db8::2]"), source),
        addr("198.51.100.1:5060"),
        "the sender's IP, whatever the Via says"
    );
    assert_eq!(
        response_destination(&via("SIP/2.0/TLS 203.0.113.9"), source),
        addr("198.51.100.1:5061")
    );
}

#[test]
fn response_copies_vias_in_order_and_record_route_for_dialogs() {
    let invite = request(COMPACT_INVITE);
    let ok = response(&invite, 200, Some("t9"));
    let text = String::from_utf8(to_bytes(&SipMessage::Response(ok.clone()))).unwrap();
    let expected = "SIP/2.0 200 OK\r\n\
        Via: SIP/2.0/UDP [2001:db8::1]:5062;branch=z9hG4bKa;rport\r\n\
        Via: SIP/2.0/TCP p.example.com;branch=z9hG4bKb\r\n\
        From: \"Bob, Jr\" <sip:bob@example.com>;tag=f1\r\n\
        To: <sip:svc@192.0.2.10>;tag=t9\r\n\
        Call-ID: abc@host\r\n\
        CSeq: 2 INVITE\r\n\
        Record-Route: <sip:p1.example.com;lr>\r\n\
        Record-Route: <sip:p2.example.com;lr>\r\n\
        Content-Length: 0\r\n\r\n";
    assert_eq!(text, expected);
    assert_eq!(to_tag(&ok.headers).as_deref(), Some("t9"));

    let ringing = response(&invite, 180, Some("t9"));
    assert_eq!(record_routes(&ringing.headers).len(), 2);
    let busy = response(&invite, 486, Some("t9"));
    assert!(
        record_routes(&busy.headers).is_empty(),
        "no Record-Route outside 101-299"
    );
    let trying = response(&invite, 100, None);
    assert_eq!(to_tag(&trying.headers), None);

    let mut options = request(
        "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nRecord-Route: <sip:p;lr>\r\n\
         From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: x\r\nCSeq: 5 OPTIONS\r\n\r\n",
    );
    let ok = response(&options, 200, Some("ignored"));
    assert!(
        record_routes(&ok.headers).is_empty(),
        "OPTIONS creates no dialog"
    );
    assert_eq!(
        to_tag(&ok.headers).as_deref(),
        Some("2"),
        "an existing To tag is kept"
    );
    set_body(
        &mut options.headers,
        &mut options.body,
        "text/plain",
        b"hello".to_vec(),
    );
    assert_eq!(content_type(&options.headers), Some("text/plain"));
    assert_eq!(header_value(&options.headers, "Content-Length"), Some("5"));
}

#[test]
fn to_bytes_round_trips_binary_bodies_and_raw_uris() {
    let mut req = request(
        "MESSAGE tel:+1-201-555-0123 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
         From: <tel:+1-201-555-0100>;tag=1\r\nTo: <tel:+1-201-555-0123>\r\nCall-ID: x\r\n\
         CSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(req.uri.to_string(), "tel:+1-201-555-0123");
    assert_eq!(uri_host_port(&req.uri.to_string()), None, "not a sip: URI");
    let binary = vec![0u8, 0x0d, 0xff, b'\n', 0x80];
    set_body(
        &mut req.headers,
        &mut req.body,
        "application/octet-stream",
        binary.clone(),
    );
    let bytes = to_bytes(&SipMessage::Request(req));
    let SipMessage::Request(back) = parse(&bytes).unwrap() else {
        panic!("a request")
    };
    assert_eq!(back.body, binary);
    assert_eq!(back.uri.to_string(), "tel:+1-201-555-0123");
    assert_eq!(header_values(&back.headers, "Content-Length").count(), 1);
}

#[test]
fn uri_host_port_ignores_user_params_and_headers() {
    let hp = |uri: &str| uri_host_port(uri);
    assert_eq!(
        hp("sip:alice@example.com:5070;transport=udp"),
        Some(("example.com".into(), Some(5070)))
    );
    assert_eq!(
        hp("<sips:[2001:db8::1]:5061;lr>"),
        Some(("2001:db8::1".into(), Some(5061)))
    );
    assert_eq!(
        hp("sip:user;par=u%40x@192.0.2.1?subject=a"),
        Some(("192.0.2.1".into(), None))
    );
    assert_eq!(hp("SIP:host"), Some(("host".into(), None)));
    assert_eq!(hp("sip:host:99999"), None);
    assert_eq!(hp("mailto:a@b"), None);
}

#[test]
fn unparsable_requests_get_400_501_or_505() {
    let base = "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\n\
                Call-ID: x1\r\nCSeq: 1 INVITE\r\n";
    let answer = |start: &str, extra: &str| {
        answer_unparsable(
            format!("{start}\r\n{base}{extra}\r\n").as_bytes(),
            &mut rand::rng(),
        )
        .map(|a| String::from_utf8(a).unwrap())
    };
    let bad = answer("INVITE sip:a@b SIP/2.0", "Content-Length: 99\r\n").unwrap();
    assert!(
        bad.starts_with("SIP/2.0 400 Bad Request (sip.content_length_mismatch)\r\n"),
        "{bad}"
    );
    assert!(bad.contains("Call-ID: x1\r\n") && bad.contains("CSeq: 1 INVITE\r\n"));
    assert!(
        bad.contains("To: <sip:c@d>;tag="),
        "the 400 carries a To tag"
    );
    let SipMessage::Response(parsed) = parse(bad.as_bytes()).unwrap() else {
        panic!("a response")
    };
    assert_eq!(parsed.status_code.code(), 400);

    assert!(
        answer("FOO sip:a@b SIP/2.0", "")
            .unwrap()
            .starts_with("SIP/2.0 501 ")
    );
    assert!(
        answer("INVITE sip:a@b SIP/3.0", "")
            .unwrap()
            .starts_with("SIP/2.0 505 ")
    );
    assert_eq!(
        answer("ACK sip:a@b SIP/2.0", "Content-Length: 99\r\n"),
        None
    );
    assert_eq!(answer("SIP/2.0 200 OK", "Content-Length: 99\r\n"), None);
    assert_eq!(
        answer("INVITE sip:a@b SIP/2.0", ""),
        None,
        "it parses: nothing to answer"
    );
    assert_eq!(
        answer_unparsable(
            b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 9\r\n\r\n",
            &mut rand::rng()
        ),
        None
    );
    assert_eq!(
        request_line_method(b"\r\nINVITE sip:a@b SIP/2.0\r\n"),
        Some("INVITE")
    );
    assert_eq!(request_line_method(b"SIP/2.0 200 OK\r\n"), None);
}

#[test]
fn generated_ids_are_random_and_well_formed() {
    let rng = &mut rand::rng();
    let (a, b) = (new_branch(rng), new_branch(rng));
    assert!(a.starts_with("z9hG4bK") && a.len() >= 7 + 16 && a != b);
    assert!(normalise::is_token(&new_tag(rng)) && new_tag(rng).len() >= 16);
    assert_ne!(new_call_id(rng), new_call_id(rng));
    assert_eq!(reason_phrase(481), "Call/Transaction Does Not Exist");
}

/// A multi-byte character across byte 4 of the start line once panicked
/// the SIP thread (a `str` sliced at 4): now it is a bad request.
#[test]
fn multibyte_utf8_in_the_start_line_is_rejected_without_panicking() {
    for start in [
        "abc\u{e9} sip:x SIP/2.0",
        "SI\u{20ac} 200 OK",
        "INVITE sip:\u{e9}@x SIP/2.0",
        "INVITE sip:x@y SI\u{1f600}",
        "\u{2028}INVITE sip:x SIP/2.0",
    ] {
        let datagram = format!(
            "{start}\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\n\
             To: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        assert!(parse(datagram.as_bytes()).is_err(), "{start:?}");
        if let Some(reply) = answer_unparsable(datagram.as_bytes(), &mut rand::rng()) {
            assert!(reply.starts_with(b"SIP/2.0 400"), "{start:?}");
        }
        let bare = format!("{start}\r\n\r\n");
        assert!(parse(bare.as_bytes()).is_err());
        assert_eq!(answer_unparsable(bare.as_bytes(), &mut rand::rng()), None);
    }
}

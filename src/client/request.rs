//! The requests only a UAC builds outside a dialog: the INVITE itself
//! (RFC 3261 §8.1.1, §13.2.1), the ACK for a non-2xx final response, which
//! belongs to the INVITE transaction (§17.1.1.3), and CANCEL (§9.1). Requests
//! inside the dialog (2xx ACK, BYE) come from `sip::dialog::Dialog`.

use std::net::SocketAddr;

use rsip::{Header, Headers, Method, Request, Response, Uri, Version};

/// The CSeq of our one INVITE; the dialog counts on from it.
pub const INVITE_CSEQ: u32 = 1;

/// Sent in `User-Agent` so logs and captures tell the test client apart.
pub const USER_AGENT: &str = "dial-a-service-test-client";

/// Who we are on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    /// The bound SIP socket address.
    pub sip: SocketAddr,
    /// The user part of our From and Contact.
    pub user: String,
}

impl Local {
    /// `host:port` for Via sent-by, with IPv6 in brackets (RFC 3261 §25.1).
    pub fn sent_by(&self) -> String {
        self.sip.to_string()
    }

    /// Our Contact URI (bare, no angle brackets).
    pub fn contact_uri(&self) -> String {
        format!("sip:{}@{}", self.user, self.sent_by())
    }
}

/// The identifiers that make our INVITE unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteIds {
    pub call_id: String,
    pub from_tag: String,
    pub branch: String,
}

/// An INVITE to `target` carrying `sdp`.
pub fn invite(target: &Uri, local: &Local, ids: &InviteIds, sdp: &str) -> Request {
    let mut headers = Headers::default();
    headers.push(via(local, &ids.branch));
    headers.push(Header::MaxForwards(rsip::headers::MaxForwards::default()));
    headers.push(Header::From(rsip::headers::From::from(format!(
        "<sip:{}@{}>;tag={}",
        local.user,
        local.sent_by(),
        ids.from_tag
    ))));
    headers.push(Header::To(rsip::headers::To::from(format!("<{target}>"))));
    headers.push(Header::CallId(rsip::headers::CallId::from(
        ids.call_id.clone(),
    )));
    headers.push(Header::CSeq(rsip::headers::CSeq::from(format!(
        "{INVITE_CSEQ} INVITE"
    ))));
    headers.push(Header::Contact(rsip::headers::Contact::from(format!(
        "<{}>",
        local.contact_uri()
    ))));
    // The methods we answer inside the dialog: the line's own.
    headers.push(Header::Allow(rsip::headers::Allow::from(
        crate::sip::methods::ALLOW.to_owned(),
    )));
    headers.push(Header::UserAgent(rsip::headers::UserAgent::from(
        USER_AGENT.to_owned(),
    )));
    headers.push(Header::ContentType(rsip::headers::ContentType::from(
        "application/sdp".to_owned(),
    )));
    headers.push(Header::ContentLength(rsip::headers::ContentLength::from(
        sdp.len() as u32,
    )));
    Request {
        method: Method::Invite,
        uri: target.clone(),
        version: Version::V2,
        headers,
        body: sdp.as_bytes().to_vec(),
    }
}

/// The ACK for a non-2xx final `response` to `invite` (§17.1.1.3): same
/// Request-URI, top Via, From, Call-ID, Route and CSeq number as the INVITE,
/// the response's To (with its tag), no body.
pub fn failure_ack(invite: &Request, response: &Response) -> Request {
    let mut headers = copy_for_same_transaction(invite);
    if let Some(to) = response.headers.iter().find(|h| matches!(h, Header::To(_))) {
        headers.push(to.clone());
    }
    finish(invite, Method::Ack, headers)
}

/// CANCEL for a pending `invite` (§9.1): everything identifying the
/// transaction is copied, so the UAS matches it to the INVITE.
pub fn cancel(invite: &Request) -> Request {
    let mut headers = copy_for_same_transaction(invite);
    if let Some(to) = invite.headers.iter().find(|h| matches!(h, Header::To(_))) {
        headers.push(to.clone());
    }
    finish(invite, Method::Cancel, headers)
}

fn via(local: &Local, branch: &str) -> Header {
    // rport (RFC 3581) so a NAT between us and the line cannot lose responses.
    Header::Via(rsip::headers::Via::from(format!(
        "SIP/2.0/UDP {};branch={branch};rport",
        local.sent_by()
    )))
}

/// Top Via, From, Call-ID and Route of `invite`, in that order.
fn copy_for_same_transaction(invite: &Request) -> Headers {
    let mut headers = Headers::default();
    if let Some(via) = invite.headers.iter().find(|h| matches!(h, Header::Via(_))) {
        headers.push(via.clone());
    }
    headers.push(Header::MaxForwards(rsip::headers::MaxForwards::default()));
    for header in invite.headers.iter() {
        if matches!(
            header,
            Header::From(_) | Header::CallId(_) | Header::Route(_)
        ) {
            headers.push(header.clone());
        }
    }
    headers
}

fn finish(invite: &Request, method: Method, mut headers: Headers) -> Request {
    headers.push(Header::CSeq(rsip::headers::CSeq::from(format!(
        "{INVITE_CSEQ} {method}"
    ))));
    headers.push(Header::UserAgent(rsip::headers::UserAgent::from(
        USER_AGENT.to_owned(),
    )));
    headers.push(Header::ContentLength(
        rsip::headers::ContentLength::default(),
    ));
    Request {
        method,
        uri: invite.uri.clone(),
        version: Version::V2,
        headers,
        body: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsip::prelude::*;

    fn local() -> Local {
        Local {
            sip: "127.0.0.1:40000".parse().unwrap(),
            user: "tester".into(),
        }
    }

    fn ids() -> InviteIds {
        InviteIds {
            call_id: "abc123@test".into(),
            from_tag: "ftag".into(),
            branch: "z9hG4bKbranch1".into(),
        }
    }

    fn reparse(request: &Request) -> Request {
        let text = request.to_string();
        match rsip::SipMessage::try_from(text.as_str()).unwrap() {
            rsip::SipMessage::Request(r) => r,
            rsip::SipMessage::Response(_) => panic!("built a response"),
        }
    }

    fn target() -> Uri {
        Uri::try_from("sip:service@127.0.0.1:5060").unwrap()
    }

    #[test]
    fn invite_carries_identifiers_sdp_and_contact() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n";
        let invite = reparse(&invite(&target(), &local(), &ids(), sdp));
        assert_eq!(invite.method, Method::Invite);
        assert_eq!(invite.uri.to_string(), "sip:service@127.0.0.1:5060");
        let via = invite.via_header().unwrap().typed().unwrap();
        assert_eq!(via.branch().unwrap().to_string(), "z9hG4bKbranch1");
        assert_eq!(
            invite
                .from_header()
                .unwrap()
                .tag()
                .unwrap()
                .unwrap()
                .to_string(),
            "ftag"
        );
        assert!(invite.to_header().unwrap().tag().unwrap().is_none());
        assert_eq!(invite.call_id_header().unwrap().value(), "abc123@test");
        let cseq = invite.cseq_header().unwrap().typed().unwrap();
        assert_eq!((cseq.seq, cseq.method), (1, Method::Invite));
        let contact = invite.contact_header().unwrap().typed().unwrap();
        assert_eq!(contact.uri.to_string(), "sip:tester@127.0.0.1:40000");
        assert_eq!(invite.body, sdp.as_bytes());
        let text = invite.to_string();
        assert!(
            text.contains(&format!("Content-Length: {}\r\n", sdp.len())),
            "{text}"
        );
        assert!(text.contains("Content-Type: application/sdp\r\n"), "{text}");
    }

    #[test]
    fn failure_ack_reuses_branch_and_takes_the_to_tag() {
        let invite = invite(&target(), &local(), &ids(), "");
        let response_text = "SIP/2.0 486 Busy Here\r\n\
            Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKbranch1;rport=40000\r\n\
            From: <sip:tester@127.0.0.1:40000>;tag=ftag\r\n\
            To: <sip:service@127.0.0.1:5060>;tag=line-tag\r\n\
            Call-ID: abc123@test\r\n\
            CSeq: 1 INVITE\r\n\
            Content-Length: 0\r\n\r\n";
        let rsip::SipMessage::Response(response) =
            rsip::SipMessage::try_from(response_text).unwrap()
        else {
            panic!("fixture is a response");
        };
        let ack = reparse(&failure_ack(&invite, &response));
        assert_eq!(ack.method, Method::Ack);
        assert_eq!(ack.uri, invite.uri);
        let branch = ack.via_header().unwrap().typed().unwrap().branch().cloned();
        assert_eq!(branch.unwrap().to_string(), "z9hG4bKbranch1");
        assert_eq!(
            ack.to_header().unwrap().tag().unwrap().unwrap().to_string(),
            "line-tag"
        );
        let cseq = ack.cseq_header().unwrap().typed().unwrap();
        assert_eq!((cseq.seq, cseq.method), (1, Method::Ack));
        assert!(ack.body.is_empty());
    }

    #[test]
    fn cancel_matches_the_invite_transaction() {
        let invite = invite(&target(), &local(), &ids(), "v=0\r\n");
        let cancel = reparse(&cancel(&invite));
        assert_eq!(cancel.method, Method::Cancel);
        assert_eq!(cancel.uri, invite.uri);
        assert_eq!(
            cancel.via_header().unwrap().to_string(),
            invite.via_header().unwrap().to_string()
        );
        assert!(cancel.to_header().unwrap().tag().unwrap().is_none());
        let cseq = cancel.cseq_header().unwrap().typed().unwrap();
        assert_eq!((cseq.seq, cseq.method), (1, Method::Cancel));
        assert_eq!(cancel.call_id_header().unwrap().value(), "abc123@test");
    }

    #[test]
    fn opus_offer_in_the_invite_parses_back_to_our_media() {
        use crate::media::Codec;
        use crate::sdp::{self, LocalMedia};
        let media = LocalMedia {
            address: "127.0.0.1".parse().unwrap(),
            rtp_port: 40_002,
            session_id: 42,
            session_version: 1,
        };
        let offer = sdp::offer(&[Codec::Opus], &media);
        let invite = reparse(&invite(&target(), &local(), &ids(), &offer));
        let text = std::str::from_utf8(&invite.body).unwrap();
        assert!(text.contains("m=audio 40002 RTP/AVP"), "{text}");
        assert!(text.contains("opus/48000/2"), "{text}");
        assert!(text.contains("telephone-event/48000"), "{text}");
        // The far end answering our own offer back agrees on Opus.
        let parsed = sdp::parse(text).unwrap();
        let negotiated = sdp::accept_answer(&parsed, &[Codec::Opus]).unwrap();
        assert_eq!(negotiated.codec, Codec::Opus);
        assert_eq!(
            negotiated.remote_rtp,
            Some("127.0.0.1:40002".parse().unwrap())
        );
        assert!(negotiated.telephone_event.is_some());
        assert!(sdp::accept_answer(&parsed, &[Codec::Pcmu]).is_err());
    }

    #[test]
    fn ipv6_sent_by_is_bracketed() {
        let local = Local {
            sip: "[::1]:5070".parse().unwrap(),
            user: "u".into(),
        };
        assert_eq!(local.sent_by(), "[::1]:5070");
        assert_eq!(local.contact_uri(), "sip:u@[::1]:5070");
    }
}

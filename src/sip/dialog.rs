//! Dialog state (RFC 3261 §12), sans-IO: the id, both CSeq counters, the
//! local and remote URIs, the remote target and the route set, and building
//! the requests sent inside a dialog (BYE, re-INVITE, the ACK to a 2xx).
//!
//! Call order as UAS: `Dialog::new_uas` when answering an INVITE; for each
//! later request, look the dialog up by `Dialog::uas_id_of`, then
//! `check_remote_cseq` (500 on error), `update_remote_target` on a
//! re-INVITE; build our own requests with `request`. As UAC: `new_uac` on the
//! 2xx, `ack` for it, `request` for the rest.
//!
//! Header values are kept as text (the From/To values with their tags, the
//! Record-Route entries) so that peers' odd but valid forms survive.

use rand::Rng;
use rsip::{Headers, Method};

use super::Transport;
use super::message::{self, MessageError};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DialogError {
    #[error(transparent)]
    Message(#[from] MessageError),
    #[error("no contact uri in the {0}")]
    MissingContact(&'static str),
    #[error("no {0} tag")]
    MissingTag(&'static str),
    #[error("cseq {cseq} is lower than the last remote cseq {last}")]
    CSeqOutOfOrder { cseq: u32, last: u32 },
}

#[derive(Debug, Clone)]
pub struct Dialog {
    pub id: DialogId,
    pub local_seq: u32,
    /// `None` until the peer sends a request in the dialog (UAC side).
    pub remote_seq: Option<u32>,
    /// Our From value in requests, with our tag (name-addr text).
    pub local_uri: String,
    /// Our To value in requests, with the peer's tag.
    pub remote_uri: String,
    /// Where requests go: the peer's Contact URI.
    pub remote_target: String,
    /// The transport of the dialog's requests (the Via token).
    pub transport: Transport,
    /// Route entries as header values (`<sip:proxy;lr>`), in the order our
    /// requests must list them.
    pub route_set: Vec<String>,
}

impl Dialog {
    /// The dialog a UAS creates by answering `invite` with To tag `local_tag`
    /// (RFC 3261 §12.1.1); its CSeq starts at a number drawn from `rng`.
    pub fn new_uas(
        invite: &rsip::Request,
        local_tag: &str,
        rng: &mut (impl Rng + ?Sized),
    ) -> Result<Dialog, DialogError> {
        let headers = &invite.headers;
        let (remote_seq, _) = message::cseq(headers)?;
        let to = header(headers, "To")?;
        let local_uri = match message::to_tag(headers) {
            Some(_) => to.to_string(),
            None => format!("{to};tag={local_tag}"),
        };
        Ok(Dialog {
            id: DialogId {
                call_id: message::call_id(headers)?,
                local_tag: local_tag.to_string(),
                // A From without a tag (RFC 2543 peers) leaves the tag empty.
                remote_tag: message::from_tag(headers).unwrap_or_default(),
            },
            // Random and below 2^31 (RFC 3261 §8.1.1.5), so that it can grow.
            local_seq: rng.random::<u32>() >> 1,
            remote_seq: Some(remote_seq),
            transport: Transport::Udp,
            local_uri,
            remote_uri: header(headers, "From")?.to_string(),
            remote_target: message::contact_uri(headers)
                .ok_or(DialogError::MissingContact("request"))?,
            route_set: message::record_routes(headers),
        })
    }

    /// The dialog a UAC creates from a 2xx (or tagged 1xx) to its `invite`
    /// (RFC 3261 §12.1.2): the route set is Record-Route reversed.
    pub fn new_uac(
        invite: &rsip::Request,
        response: &rsip::Response,
    ) -> Result<Dialog, DialogError> {
        let (local_seq, _) = message::cseq(&invite.headers)?;
        let mut route_set = message::record_routes(&response.headers);
        route_set.reverse();
        Ok(Dialog {
            id: DialogId {
                call_id: message::call_id(&invite.headers)?,
                local_tag: message::from_tag(&invite.headers)
                    .ok_or(DialogError::MissingTag("from"))?,
                remote_tag: message::to_tag(&response.headers)
                    .ok_or(DialogError::MissingTag("to"))?,
            },
            local_seq,
            remote_seq: None,
            transport: Transport::Udp,
            local_uri: header(&invite.headers, "From")?.to_string(),
            remote_uri: header(&response.headers, "To")?.to_string(),
            remote_target: message::contact_uri(&response.headers)
                .ok_or(DialogError::MissingContact("response"))?,
            route_set,
        })
    }

    /// The id of the dialog a request belongs to, seen from our UAS side:
    /// our tag is the To tag. `None` for a request outside any dialog.
    pub fn uas_id_of(request: &rsip::Request) -> Option<DialogId> {
        Some(DialogId {
            call_id: message::call_id(&request.headers).ok()?,
            local_tag: message::to_tag(&request.headers)?,
            remote_tag: message::from_tag(&request.headers).unwrap_or_default(),
        })
    }

    /// RFC 3261 §12.2.2: a CSeq lower than the last one is out of order (the
    /// caller answers 500); equal is allowed (ACK, CANCEL share the number).
    pub fn check_remote_cseq(&mut self, cseq: u32) -> Result<(), DialogError> {
        if let Some(last) = self.remote_seq
            && cseq < last
        {
            return Err(DialogError::CSeqOutOfOrder { cseq, last });
        }
        self.remote_seq = Some(cseq);
        Ok(())
    }

    /// A new request inside the dialog (RFC 3261 §12.2.1.1), CSeq one higher.
    pub fn request(
        &mut self,
        method: Method,
        via_sent_by: &str,
        branch: &str,
        local_contact: &str,
    ) -> rsip::Request {
        self.local_seq = self.local_seq.wrapping_add(1);
        self.build(
            method,
            self.local_seq,
            via_sent_by,
            branch,
            Some(local_contact),
        )
    }

    /// The ACK for a 2xx to our INVITE (RFC 3261 §13.2.2.4): the INVITE's CSeq
    /// number, a new branch, routed like any request in the dialog.
    pub fn ack(&self, invite_cseq: u32, via_sent_by: &str, branch: &str) -> rsip::Request {
        self.build(Method::Ack, invite_cseq, via_sent_by, branch, None)
    }

    /// The URI the request is sent towards: the first route, else the target.
    pub fn next_hop_uri(&self) -> &str {
        self.route_set
            .first()
            .and_then(|route| message::addr_uri(route))
            .unwrap_or(&self.remote_target)
    }

    /// Target refresh: a re-INVITE (or its 2xx) carries a new Contact.
    pub fn update_remote_target(&mut self, contact_uri: String) {
        self.remote_target = contact_uri;
    }

    fn build(
        &self,
        method: Method,
        seq: u32,
        via_sent_by: &str,
        branch: &str,
        local_contact: Option<&str>,
    ) -> rsip::Request {
        // Loose routing keeps the target as Request-URI; a strict router
        // (no `lr`) takes the Request-URI and the target goes last in Route.
        let first_route = self.route_set.first().and_then(|r| message::addr_uri(r));
        let strict = first_route.is_some_and(|uri| !has_lr(uri));
        let (request_uri, routes) = match first_route {
            Some(uri) if strict => {
                let mut routes = self.route_set[1..].to_vec();
                routes.push(format!("<{}>", self.remote_target));
                (uri.to_string(), routes)
            }
            _ => (self.remote_target.clone(), self.route_set.clone()),
        };
        let mut headers = vec![
            message::make_header(
                "Via",
                format!(
                    "SIP/2.0/{} {via_sent_by};branch={branch};rport",
                    self.transport.via_token()
                ),
            ),
            message::make_header("Max-Forwards", "70"),
            message::make_header("From", self.local_uri.as_str()),
            message::make_header("To", self.remote_uri.as_str()),
            message::make_header("Call-ID", self.id.call_id.as_str()),
            message::make_header("CSeq", format!("{seq} {method}")),
        ];
        headers.extend(routes.into_iter().map(|r| message::make_header("Route", r)));
        if let Some(contact) = local_contact {
            let contact = if contact.starts_with('<') {
                contact.to_string()
            } else {
                format!("<{contact}>")
            };
            headers.push(message::make_header("Contact", contact));
        }
        headers.push(message::make_header("Content-Length", "0"));
        rsip::Request {
            method,
            uri: message::uri_from_str(&request_uri),
            version: rsip::Version::V2,
            headers: headers.into(),
            body: Vec::new(),
        }
    }
}

fn header<'a>(headers: &'a Headers, name: &'static str) -> Result<&'a str, DialogError> {
    Ok(message::header_value(headers, name).ok_or(MessageError::MissingHeader(name))?)
}

/// Whether a route URI carries the `lr` parameter (RFC 3261 §16.12.1.1).
fn has_lr(uri: &str) -> bool {
    let host_part = uri.rsplit_once('@').map_or(uri, |(_, host)| host);
    host_part
        .split(['?'])
        .next()
        .unwrap_or_default()
        .split(';')
        .skip(1)
        .any(|p| {
            p.trim().eq_ignore_ascii_case("lr") || p.trim().to_ascii_lowercase().starts_with("lr=")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::rsip::SipMessage;

    fn request(text: &str) -> rsip::Request {
        match message::parse(text.as_bytes()).expect("fixture parses") {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => panic!("fixture is a request"),
        }
    }

    fn response(text: &str) -> rsip::Response {
        match message::parse(text.as_bytes()).expect("fixture parses") {
            SipMessage::Response(r) => r,
            SipMessage::Request(_) => panic!("fixture is a response"),
        }
    }

    const INVITE: &str = "INVITE sip:service@192.0.2.10 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.5:5060;branch=z9hG4bK1\r\n\
        Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
        Record-Route: <sip:p3.example.com;lr>\r\n\
        From: \"Alice\" <sip:alice@example.com>;tag=a1\r\n\
        To: <sip:service@192.0.2.10>\r\n\
        Call-ID: c1@example.com\r\n\
        CSeq: 314 INVITE\r\n\
        Contact: <sip:alice@[2001:db8::5]:5062;transport=udp>\r\n\
        Max-Forwards: 69\r\n\
        Content-Length: 0\r\n\r\n";

    #[test]
    fn uas_dialog_takes_contact_record_route_in_order_and_cseq() {
        let invite = request(INVITE);
        let dialog = Dialog::new_uas(&invite, "b2", &mut rand::rng()).unwrap();
        assert_eq!(
            dialog.id,
            DialogId {
                call_id: "c1@example.com".into(),
                local_tag: "b2".into(),
                remote_tag: "a1".into()
            }
        );
        assert_eq!(dialog.remote_seq, Some(314));
        assert!(dialog.local_seq < 1 << 31);
        assert_eq!(dialog.local_uri, "<sip:service@192.0.2.10>;tag=b2");
        assert_eq!(
            dialog.remote_uri,
            "\"Alice\" <sip:alice@example.com>;tag=a1"
        );
        assert_eq!(
            dialog.remote_target,
            "sip:alice@[2001:db8::5]:5062;transport=udp"
        );
        assert_eq!(
            dialog.route_set,
            [
                "<sip:p1.example.com;lr>",
                "<sip:p2.example.com;lr>",
                "<sip:p3.example.com;lr>"
            ]
        );
        assert_eq!(dialog.next_hop_uri(), "sip:p1.example.com;lr");
    }

    #[test]
    fn uac_dialog_reverses_record_route() {
        let invite = request(INVITE);
        let ok = response(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.5:5060;branch=z9hG4bK1\r\n\
             Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
             From: \"Alice\" <sip:alice@example.com>;tag=a1\r\nTo: <sip:service@192.0.2.10>;tag=b2\r\n\
             Call-ID: c1@example.com\r\nCSeq: 314 INVITE\r\nContact: <sip:svc@192.0.2.10:5070>\r\n\r\n",
        );
        let dialog = Dialog::new_uac(&invite, &ok).unwrap();
        assert_eq!(dialog.id.local_tag, "a1");
        assert_eq!(dialog.id.remote_tag, "b2");
        assert_eq!(dialog.local_seq, 314);
        assert_eq!(dialog.remote_seq, None);
        assert_eq!(dialog.remote_target, "sip:svc@192.0.2.10:5070");
        assert_eq!(
            dialog.route_set,
            ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]
        );
        assert_eq!(dialog.remote_uri, "<sip:service@192.0.2.10>;tag=b2");

        let ack = dialog.ack(314, "192.0.2.5:5060", "z9hG4bKack");
        assert_eq!(ack.method, Method::Ack);
        assert_eq!(message::cseq(&ack.headers).unwrap(), (314, Method::Ack));
        assert_eq!(
            message::top_via(&ack.headers).unwrap().branch.as_deref(),
            Some("z9hG4bKack")
        );
        assert_eq!(ack.uri.to_string(), "sip:svc@192.0.2.10:5070");
        assert_eq!(
            message::header_value(&ack.headers, "Route"),
            Some("<sip:p2.example.com;lr>")
        );

        let missing_tag = response(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=a1\r\n\
             To: <sip:c@d>\r\nCall-ID: c1\r\nCSeq: 314 INVITE\r\nContact: <sip:c@d>\r\n\r\n",
        );
        assert!(matches!(
            Dialog::new_uac(&invite, &missing_tag),
            Err(DialogError::MissingTag("to"))
        ));
    }

    #[test]
    fn in_dialog_request_uses_loose_route_set_and_next_cseq() {
        let mut dialog = Dialog::new_uas(&request(INVITE), "b2", &mut rand::rng()).unwrap();
        dialog.local_seq = 7;
        let bye = dialog.request(
            Method::Bye,
            "192.0.2.10:5060",
            "z9hG4bKbye",
            "sip:svc@192.0.2.10:5060",
        );
        assert_eq!(dialog.local_seq, 8);
        assert_eq!(
            bye.uri.to_string(),
            "sip:alice@[2001:db8::5]:5062;transport=udp"
        );
        let bytes = message::to_bytes(&SipMessage::Request(bye));
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.starts_with("BYE sip:alice@[2001:db8::5]:5062;transport=udp SIP/2.0\r\n"),
            "{text}"
        );
        for line in [
            "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKbye;rport\r\n",
            "Max-Forwards: 70\r\n",
            "From: <sip:service@192.0.2.10>;tag=b2\r\n",
            "To: \"Alice\" <sip:alice@example.com>;tag=a1\r\n",
            "Call-ID: c1@example.com\r\n",
            "CSeq: 8 BYE\r\n",
            "Route: <sip:p1.example.com;lr>\r\nRoute: <sip:p2.example.com;lr>\r\nRoute: <sip:p3.example.com;lr>\r\n",
            "Contact: <sip:svc@192.0.2.10:5060>\r\n",
            "Content-Length: 0\r\n\r\n",
        ] {
            assert!(text.contains(line), "{line} missing in {text}");
        }
        // What we send, we can read back.
        let SipMessage::Request(back) = message::parse(&bytes).unwrap() else {
            panic!("a request")
        };
        // The peer, as UAS, sees our dialog with the tags swapped.
        let theirs = Dialog::uas_id_of(&back).unwrap();
        assert_eq!(
            (theirs.local_tag.as_str(), theirs.remote_tag.as_str()),
            ("a1", "b2")
        );
        assert_eq!(message::from_tag(&back.headers).as_deref(), Some("b2"));
    }

    #[test]
    fn strict_router_takes_the_request_uri() {
        let mut dialog = Dialog::new_uas(&request(INVITE), "b2", &mut rand::rng()).unwrap();
        dialog.route_set = vec![
            "<sip:strict.example.com>".into(),
            "<sip:p2.example.com;lr>".into(),
        ];
        let bye = dialog.request(Method::Bye, "h", "z9hG4bK2", "sip:me@h");
        assert_eq!(bye.uri.to_string(), "sip:strict.example.com");
        let routes: Vec<_> = message::header_values(&bye.headers, "Route").collect();
        assert_eq!(
            routes,
            [
                "<sip:p2.example.com;lr>",
                "<sip:alice@[2001:db8::5]:5062;transport=udp>"
            ]
        );
    }

    #[test]
    fn remote_cseq_must_not_go_backwards() {
        let mut dialog = Dialog::new_uas(&request(INVITE), "b2", &mut rand::rng()).unwrap();
        assert!(
            dialog.check_remote_cseq(314).is_ok(),
            "ACK shares the INVITE's number"
        );
        assert!(dialog.check_remote_cseq(315).is_ok());
        assert!(matches!(
            dialog.check_remote_cseq(300),
            Err(DialogError::CSeqOutOfOrder {
                cseq: 300,
                last: 315
            })
        ));
        assert_eq!(dialog.remote_seq, Some(315));
    }

    #[test]
    fn uas_id_of_needs_a_to_tag_and_target_refreshes() {
        let mut dialog = Dialog::new_uas(&request(INVITE), "b2", &mut rand::rng()).unwrap();
        assert_eq!(Dialog::uas_id_of(&request(INVITE)), None);
        let bye = request(
            "BYE sip:service@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.5;branch=z9hG4bK9\r\n\
             From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:service@192.0.2.10>;tag=b2\r\n\
             Call-ID: c1@example.com\r\nCSeq: 315 BYE\r\n\r\n",
        );
        assert_eq!(Dialog::uas_id_of(&bye), Some(dialog.id.clone()));
        dialog.update_remote_target("sip:alice@192.0.2.99".into());
        assert_eq!(dialog.next_hop_uri(), "sip:p1.example.com;lr");
        dialog.route_set.clear();
        assert_eq!(dialog.next_hop_uri(), "sip:alice@192.0.2.99");
    }
}

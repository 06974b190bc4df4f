//! The REGISTER request on the wire (RFC 3261 §10.2) and what its responses tell us:
//! the expiry granted to our Contact (§10.2.4), Min-Expires (§10.2.8), Retry-After
//! (§21.5.4), and the address the registrar saw us at (RFC 3581 §4).
//!
//! Requests are written as text rather than through rsip's builders: every header is
//! ours, so the bytes are exactly what we mean (rsip reorders nothing here, but its
//! typed layer fails on IPv6 and `SHA-256`, see `sip::message`).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rsip::Headers;

use crate::sip::Transport;
use crate::sip::message::{self, addr_uri, header_param, header_values, uri_host_port};
use crate::sip::methods::ALLOW;

/// Everything that varies between the REGISTERs of one registration.
pub(super) struct Register<'a> {
    pub request_uri: &'a str,
    pub aor: &'a str,
    pub from_tag: &'a str,
    pub call_id: &'a str,
    pub cseq: u32,
    pub branch: &'a str,
    /// Our address in Via and Contact.
    pub contact: SocketAddr,
    /// An earlier Contact of ours to unbind in the same request (NAT correction).
    pub removes: Option<SocketAddr>,
    pub contact_user: &'a str,
    pub transport: Transport,
    pub route: Option<&'a str>,
    /// Zero removes the binding.
    pub expires: u32,
    pub user_agent: Option<&'a str>,
    /// `(name, value)`: `Authorization` / `Proxy-Authorization`.
    pub credentials: &'a [(&'static str, String)],
}

impl Register<'_> {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut text = String::with_capacity(600);
        // `write!` to a String cannot fail.
        let mut line = |args: std::fmt::Arguments| {
            let _ = text.write_fmt(args);
            text.push_str("\r\n");
        };
        line(format_args!("REGISTER {} SIP/2.0", self.request_uri));
        // `rport` asks the registrar to say which address and port it saw us at, and
        // to answer there: the way through a NAT (RFC 3581 §3).
        line(format_args!(
            "Via: SIP/2.0/{} {};branch={};rport",
            self.transport.via_token(),
            self.contact,
            self.branch
        ));
        line(format_args!("Max-Forwards: 70"));
        if let Some(route) = self.route {
            line(format_args!("Route: {}", route_entry(route)));
        }
        line(format_args!("From: <{}>;tag={}", self.aor, self.from_tag));
        line(format_args!("To: <{}>", self.aor));
        line(format_args!("Call-ID: {}", self.call_id));
        line(format_args!("CSeq: {} REGISTER", self.cseq));
        let contact = contact_value(self.contact_user, self.contact, self.transport);
        match self.removes {
            // §10.2.1: one request may remove one binding and add another.
            Some(old) => line(format_args!(
                "Contact: {};expires=0, {contact}",
                contact_value(self.contact_user, old, self.transport)
            )),
            None => line(format_args!("Contact: {contact}")),
        }
        line(format_args!("Expires: {}", self.expires));
        line(format_args!("Allow: {ALLOW}"));
        if let Some(user_agent) = self.user_agent {
            line(format_args!("User-Agent: {user_agent}"));
        }
        for (name, value) in self.credentials {
            line(format_args!("{name}: {value}"));
        }
        line(format_args!("Content-Length: 0"));
        text.push_str("\r\n");
        text.into_bytes()
    }
}

/// `<sip:user@host:port>`, with `;transport=tcp` over TCP (UDP is the default, §19.1.1).
pub(super) fn contact_value(user: &str, addr: SocketAddr, transport: Transport) -> String {
    let param = match transport {
        Transport::Udp => "",
        Transport::Tcp => ";transport=tcp",
    };
    format!("<sip:{user}@{addr}{param}>")
}

/// The outbound proxy as a loose-routing Route entry (RFC 3261 §8.1.2, §16.12).
fn route_entry(uri: &str) -> String {
    let uri = uri.trim().trim_start_matches('<').trim_end_matches('>');
    let has_lr = uri
        .split(';')
        .skip(1)
        .any(|p| p.trim().eq_ignore_ascii_case("lr") || p.trim().starts_with("lr="));
    if has_lr {
        format!("<{uri}>")
    } else {
        format!("<{uri};lr>")
    }
}

/// How long the registrar bound our contact for: the `expires` parameter of our own
/// Contact in the 200 (it lists every binding of the AoR, maybe other phones'), else the
/// `Expires` header, else what we asked for (§10.2.4).
pub(super) fn granted_expiry(
    headers: &Headers,
    user: &str,
    contact: SocketAddr,
    requested: u32,
) -> u32 {
    let ours = header_values(headers, "Contact")
        .find(|value| addr_uri(value).is_some_and(|uri| is_our_contact(uri, user, contact)));
    ours.and_then(|value| header_param(value, "expires").flatten())
        .and_then(|e| e.trim().parse().ok())
        .or_else(|| seconds(headers, "Expires"))
        .unwrap_or(requested)
}

/// Compares by user, host and port: registrars may add or reorder URI parameters,
/// change case, or write the port we left implicit.
fn is_our_contact(uri: &str, user: &str, contact: SocketAddr) -> bool {
    let Some((host, port)) = uri_host_port(uri) else {
        return false;
    };
    let uri_user = uri
        .split_once(':')
        .and_then(|(_, rest)| rest.rsplit_once('@'))
        .map(|(user, _)| user.split(';').next().unwrap_or(user));
    let same_host = host
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.to_canonical() == contact.ip().to_canonical());
    uri_user == Some(user) && same_host && port.unwrap_or(5060) == contact.port()
}

/// A header holding a number of seconds (Expires, Min-Expires); Retry-After may carry a
/// comment and parameters after the number (§20.33).
pub(super) fn seconds(headers: &Headers, name: &str) -> Option<u32> {
    let value = message::header_value(headers, name)?;
    let digits: &str = value
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap_or("");
    digits.parse().ok()
}

pub(super) fn retry_after(headers: &Headers) -> Option<Duration> {
    seconds(headers, "Retry-After").map(|s| Duration::from_secs(s.into()))
}

/// The address the registrar saw the request come from: `received` and `rport` of our
/// Via in its response (RFC 3581 §4). `None` when it said neither.
pub(super) fn observed_address(headers: &Headers, sent_from: SocketAddr) -> Option<SocketAddr> {
    let via = message::top_via(headers).ok()?;
    let received = via
        .received
        .as_deref()
        .and_then(|r| r.parse::<IpAddr>().ok());
    let rport = via.rport.flatten();
    if received.is_none() && rport.is_none() {
        return None;
    }
    Some(SocketAddr::new(
        received.unwrap_or(sent_from.ip()),
        rport.unwrap_or(sent_from.port()),
    ))
}

/// Whether the Contact must change to what the registrar saw. Over UDP the NAT's
/// mapping is our address, port included. Over TCP the registrar reaches us through our
/// connection, whose source port is ephemeral: only a different IP means a NAT (then the
/// connection is the only way in and we advertise it, as Kamailio's `fix_nated_contact`
/// would); a different port alone is just the connection's port.
pub(super) fn needs_correction(
    observed: SocketAddr,
    contact: SocketAddr,
    transport: Transport,
) -> bool {
    let same_ip = observed.ip().to_canonical() == contact.ip().to_canonical();
    match transport {
        Transport::Udp => !same_ip || observed.port() != contact.port(),
        Transport::Tcp => !same_ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::parse;

    fn headers(text: &str) -> Headers {
        let raw = format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.5:5060;branch=z9hG4bKx;rport\r\n\
             From: <sip:u@r>;tag=1\r\nTo: <sip:u@r>;tag=2\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n\
             {text}Content-Length: 0\r\n\r\n"
        );
        match parse(raw.as_bytes()).unwrap() {
            rsip::SipMessage::Response(r) => r.headers,
            rsip::SipMessage::Request(_) => unreachable!("a status line"),
        }
    }

    #[test]
    fn granted_expiry_prefers_our_contact_then_expires_header() {
        let us: SocketAddr = "192.0.2.5:5060".parse().unwrap();
        let h = headers(
            "Contact: <sip:u@198.51.100.1:5060>;expires=900, \
             <sip:u@192.0.2.5;transport=udp>;expires=120\r\nExpires: 300\r\n",
        );
        assert_eq!(granted_expiry(&h, "u", us, 600), 120);
        let h = headers("Contact: <sip:u@198.51.100.1>;expires=900\r\nExpires: 300\r\n");
        assert_eq!(granted_expiry(&h, "u", us, 600), 300);
        assert_eq!(granted_expiry(&headers(""), "u", us, 600), 600);
        // Another user at our address is not us.
        let h = headers("Contact: <sip:v@192.0.2.5:5060>;expires=5\r\n");
        assert_eq!(granted_expiry(&h, "u", us, 600), 600);
        let v6: SocketAddr = "[2001:db8::5]:5070".parse().unwrap();
        let h = headers("Contact: <sip:u@[2001:DB8::5]:5070>;expires=60\r\n");
        assert_eq!(granted_expiry(&h, "u", v6, 600), 60);
    }

    #[test]
    fn observed_address_reads_received_and_rport() {
        let sent: SocketAddr = "192.0.2.5:5060".parse().unwrap();
        let h = headers("");
        assert_eq!(observed_address(&h, sent), None, "bare rport says nothing");
        let raw = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.5:5060;branch=z9hG4bKx;\
                   received=203.0.113.9;rport=40000\r\nFrom: <sip:u@r>;tag=1\r\n\
                   To: <sip:u@r>\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n\r\n";
        let rsip::SipMessage::Response(r) = parse(raw.as_bytes()).unwrap() else {
            unreachable!("a status line")
        };
        let seen = observed_address(&r.headers, sent).unwrap();
        assert_eq!(seen, "203.0.113.9:40000".parse().unwrap());
        assert!(needs_correction(seen, sent, Transport::Udp));
        let same_ip: SocketAddr = "192.0.2.5:40000".parse().unwrap();
        assert!(needs_correction(same_ip, sent, Transport::Udp));
        assert!(!needs_correction(same_ip, sent, Transport::Tcp));
        assert!(needs_correction(seen, sent, Transport::Tcp));
        assert!(!needs_correction(sent, sent, Transport::Udp));
    }

    #[test]
    fn numbers_and_routes() {
        let h = headers("Retry-After: 120 (maintenance);duration=3600\r\nMin-Expires: 60\r\n");
        assert_eq!(retry_after(&h), Some(Duration::from_secs(120)));
        assert_eq!(seconds(&h, "Min-Expires"), Some(60));
        assert_eq!(seconds(&h, "Expires"), None);
        assert_eq!(route_entry("sip:proxy.example"), "<sip:proxy.example;lr>");
        assert_eq!(route_entry("<sip:p.example;lr>"), "<sip:p.example;lr>");
        let v6: SocketAddr = "[2001:db8::5]:5070".parse().unwrap();
        assert_eq!(
            contact_value("u", v6, Transport::Tcp),
            "<sip:u@[2001:db8::5]:5070;transport=tcp>"
        );
    }
}

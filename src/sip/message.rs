//! rsip glue: parse datagrams into `rsip` messages, read the headers the
//! endpoint needs, and build responses.
//!
//! Parsing runs `normalise` first (folding, compact names, comma lists,
//! Content-Length framing) and then builds the `rsip` types from clean header
//! values, every header untyped: rsip's typed layer fails on IPv6, `tel:` URIs,
//! `SHA-256` and quoted `<>` in params, so the accessors here read the raw
//! values with small lenient parsers instead. A Request-URI rsip cannot
//! round-trip (`tel:`, unknown schemes) is kept verbatim in a raw `Uri`.
//!
//! RFC 3261 §7 (messages), §8.2.6 (building responses), §18.2.1 and RFC 3581
//! §4 (`received`/`rport`), §18.2.2 (where responses go), §20.42 (Via);
//! RFC 4475 decides what counts as invalid.

use std::net::{IpAddr, SocketAddr};

use rand::Rng;
pub use rsip;
use rsip::headers::UntypedHeader;
use rsip::{Header, Headers, Method, SipMessage};

use super::normalise::{self, StartLine, same_name, split_list};
use super::transaction::MAGIC_COOKIE;

mod values;
pub use super::normalise::request_line_method;
pub use values::{addr_uri, header_param, uri_host_port};
use values::{set_param, valid_name_addr};

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("empty datagram")]
    Empty,
    #[error("message is not valid UTF-8")]
    NotUtf8,
    #[error("bad start line {0:?}")]
    BadStartLine(String),
    #[error("unsupported sip version {0:?}")]
    UnsupportedVersion(String),
    #[error("unknown method {0:?}")]
    UnknownMethod(String),
    #[error("bad request-uri {0:?}")]
    BadRequestUri(String),
    #[error("bad status code {0:?}")]
    BadStatusCode(String),
    #[error("malformed header line {0:?}")]
    BadHeaderLine(String),
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("bad {name} header {value:?}")]
    BadHeader { name: &'static str, value: String },
    #[error("content-length {declared} exceeds the {actual} body bytes")]
    ContentLengthMismatch { declared: usize, actual: usize },
    #[error("cseq method {cseq} does not match request method {method}")]
    CSeqMismatch { method: String, cseq: String },
}

impl MessageError {
    /// Stable code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "sip.empty",
            Self::NotUtf8 => "sip.not_utf8",
            Self::BadStartLine(_) => "sip.bad_start_line",
            Self::UnsupportedVersion(_) => "sip.unsupported_version",
            Self::UnknownMethod(_) => "sip.unknown_method",
            Self::BadRequestUri(_) => "sip.bad_request_uri",
            Self::BadStatusCode(_) => "sip.bad_status_code",
            Self::BadHeaderLine(_) => "sip.bad_header_line",
            Self::MissingHeader(_) => "sip.missing_header",
            Self::BadHeader { .. } => "sip.bad_header",
            Self::ContentLengthMismatch { .. } => "sip.content_length_mismatch",
            Self::CSeqMismatch { .. } => "sip.cseq_mismatch",
        }
    }
}

/// The top Via of a message, parsed leniently (IPv6, odd spacing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Upper case, e.g. `UDP`.
    pub transport: String,
    /// Sent-by host; an IPv6 literal without its brackets.
    pub host: String,
    pub port: Option<u16>,
    pub branch: Option<String>,
    pub received: Option<String>,
    /// `None`: no rport; `Some(None)`: `;rport` without a value; `Some(Some(p))`.
    pub rport: Option<Option<u16>>,
}

impl Via {
    /// Parses one Via value (the first, if comma-joined) per RFC 3261 §20.42,
    /// allowing LWS around `/`, `;`, `=` and `:` (RFC 4475 §3.1.1.1).
    pub fn parse(value: &str) -> Result<Via, MessageError> {
        values::parse_via(value)
    }

    pub(crate) fn default_port(&self) -> u16 {
        if self.transport == "TLS" { 5061 } else { 5060 }
    }
}

macro_rules! known_headers {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// An untyped rsip header for a long-form name; rsip parses on demand.
        pub fn make_header(name: &str, value: impl Into<String>) -> Header {
            let value = value.into();
            $(if name.eq_ignore_ascii_case($name) {
                return Header::$variant(rsip::headers::$variant::new(value));
            })*
            Header::Other(name.to_string(), value)
        }

        /// The name (canonical for known headers) and raw value of a header.
        pub fn header_parts(header: &Header) -> (&str, &str) {
            match header {
                $(Header::$variant(h) => ($name, h.value()),)*
                Header::Other(name, value) => (name.as_str(), value.as_str()),
            }
        }
    };
}

known_headers! {
    Accept => "Accept", AcceptEncoding => "Accept-Encoding", AcceptLanguage => "Accept-Language",
    AlertInfo => "Alert-Info", Allow => "Allow", AuthenticationInfo => "Authentication-Info",
    Authorization => "Authorization", CSeq => "CSeq", CallId => "Call-ID", CallInfo => "Call-Info",
    Contact => "Contact", ContentDisposition => "Content-Disposition",
    ContentEncoding => "Content-Encoding", ContentLanguage => "Content-Language",
    ContentLength => "Content-Length", ContentType => "Content-Type", Date => "Date",
    ErrorInfo => "Error-Info", Event => "Event", Expires => "Expires", From => "From",
    InReplyTo => "In-Reply-To", MaxForwards => "Max-Forwards", MimeVersion => "MIME-Version",
    MinExpires => "Min-Expires", Organization => "Organization", Priority => "Priority",
    ProxyAuthenticate => "Proxy-Authenticate", ProxyAuthorization => "Proxy-Authorization",
    ProxyRequire => "Proxy-Require", RecordRoute => "Record-Route", ReplyTo => "Reply-To",
    Require => "Require", RetryAfter => "Retry-After", Route => "Route", Server => "Server",
    Subject => "Subject", SubscriptionState => "Subscription-State", Supported => "Supported",
    Timestamp => "Timestamp", To => "To", Unsupported => "Unsupported", UserAgent => "User-Agent",
    Via => "Via", Warning => "Warning", WwwAuthenticate => "WWW-Authenticate",
}

fn is_named(header: &Header, name: &str) -> bool {
    same_name(header_parts(header).0, name)
}

/// Parses one datagram. Every header is kept (untyped); the mandatory ones
/// (Via, From, To, Call-ID, CSeq) are checked with the lenient parsers here.
pub fn parse(datagram: &[u8]) -> Result<SipMessage, MessageError> {
    let normalised = normalise::split(datagram)?;
    let start = normalise::parse_start_line(&normalised.start_line)?;
    let method = match &start {
        StartLine::Request { method, .. } => Some(parse_method(method)?),
        StartLine::Response { .. } => None,
    };
    if let Some(line) = normalised.malformed {
        return Err(MessageError::BadHeaderLine(line));
    }
    let body = normalise::frame_body(&normalised.headers, &normalised.rest)?;
    let headers: Headers = normalised
        .headers
        .into_iter()
        .map(|(name, value)| make_header(&name, value))
        .collect::<Vec<_>>()
        .into();
    validate(&headers, method)?;
    Ok(match start {
        StartLine::Request { uri, .. } => SipMessage::Request(rsip::Request {
            method: method.expect("a request start line always yields a method"),
            uri: uri_from_str(&uri),
            version: rsip::Version::V2,
            headers,
            body,
        }),
        StartLine::Response { code, reason } => SipMessage::Response(rsip::Response {
            status_code: match rsip::StatusCode::from(code) {
                rsip::StatusCode::Other(code, _) => rsip::StatusCode::Other(code, reason),
                known => known,
            },
            version: rsip::Version::V2,
            headers,
            body,
        }),
    })
}

/// Methods are case-sensitive (RFC 3261 §7.1); rsip has no extension methods.
fn parse_method(method: &str) -> Result<Method, MessageError> {
    Method::all()
        .into_iter()
        .find(|m| m.to_string() == method)
        .ok_or_else(|| MessageError::UnknownMethod(method.to_string()))
}

fn validate(headers: &Headers, method: Option<Method>) -> Result<(), MessageError> {
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        header_value(headers, name).ok_or(MessageError::MissingHeader(name))?;
    }
    for via in header_values(headers, "Via") {
        Via::parse(via)?;
    }
    call_id(headers)?;
    let (_, cseq_method) = cseq(headers)?;
    if let Some(method) = method
        && method != cseq_method
    {
        return Err(MessageError::CSeqMismatch {
            method: method.to_string(),
            cseq: cseq_method.to_string(),
        });
    }
    if let Some(max) = header_value(headers, "Max-Forwards")
        && (max.is_empty()
            || !max.bytes().all(|b| b.is_ascii_digit())
            || max.parse::<u8>().is_err())
    {
        return Err(MessageError::BadHeader {
            name: "Max-Forwards",
            value: max.to_string(),
        });
    }
    for name in ["From", "To", "Contact", "Route", "Record-Route"] {
        for value in header_values(headers, name) {
            let wildcard = name == "Contact" && value == "*";
            if !wildcard && !valid_name_addr(value) {
                return Err(MessageError::BadHeader {
                    name,
                    value: value.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// A 400 (or 501 for an unknown method, 505 for another SIP version) built
/// from the raw text of a request `parse` rejected, when it has the Via,
/// From, To, Call-ID and CSeq a response needs (RFC 3261 §8.2.6, §21.4.1),
/// tagging the To (with a tag drawn from `rng`) if it has no tag.
/// `None` for responses, ACKs, messages that parse, and the hopeless: the
/// caller counts and drops those. Send it to `response_destination` of its
/// top Via, or to the source when that cannot be read.
pub fn answer_unparsable(datagram: &[u8], rng: &mut (impl Rng + ?Sized)) -> Option<Vec<u8>> {
    let error = parse(datagram).err()?;
    let normalised = normalise::split(datagram).ok()?;
    let method = normalised.start_line.split_whitespace().next()?;
    if normalise::has_sip_version_prefix(method) || method == "ACK" {
        return None;
    }
    let first = |name: &str| {
        normalised
            .headers
            .iter()
            .find(|(n, v)| n.eq_ignore_ascii_case(name) && !v.is_empty())
            .map(|(_, v)| v.as_str())
    };
    let (from, to, call_id, cseq) = (
        first("From")?,
        first("To")?,
        first("Call-ID")?,
        first("CSeq")?,
    );
    // Any Via will do: a 505 answers a Via with another version too.
    first("Via")?;
    let (code, reason) = match error {
        MessageError::UnknownMethod(_) => (501, "Not Implemented".to_string()),
        MessageError::UnsupportedVersion(_) => (505, "Version Not Supported".to_string()),
        other => (400, format!("Bad Request ({})", other.code())),
    };
    let mut text = format!("SIP/2.0 {code} {reason}\r\n");
    for (_, via) in normalised
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("Via"))
    {
        text.push_str(&format!("Via: {via}\r\n"));
    }
    let to = match header_param(to, "tag") {
        Some(_) => to.to_string(),
        None => format!("{to};tag={}", new_tag(rng)),
    };
    text.push_str(&format!(
        "From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n"
    ));
    Some(text.into_bytes())
}

/// The Request-URI as rsip's `Uri` when rsip reproduces it exactly, else the
/// text kept whole in a raw `Uri` (a domain host with no scheme) that
/// displays unchanged: rsip fails on `tel:` and unknown schemes.
pub fn uri_from_str(text: &str) -> rsip::Uri {
    match rsip::Uri::try_from(text) {
        Ok(uri) if uri.to_string() == text => uri,
        _ => rsip::Uri {
            host_with_port: rsip::Host::Domain(rsip::Domain::new(text)).into(),
            ..Default::default()
        },
    }
}

pub fn top_via(headers: &Headers) -> Result<Via, MessageError> {
    Via::parse(header_value(headers, "Via").ok_or(MessageError::MissingHeader("Via"))?)
}

pub fn call_id(headers: &Headers) -> Result<String, MessageError> {
    let value = header_value(headers, "Call-ID").ok_or(MessageError::MissingHeader("Call-ID"))?;
    if value.is_empty() || value.contains(char::is_whitespace) {
        return Err(MessageError::BadHeader {
            name: "Call-ID",
            value: value.to_string(),
        });
    }
    Ok(value.to_string())
}

/// CSeq number and method (RFC 3261 §20.16); unknown methods are
/// `UnknownMethod`, as rsip has no extension methods.
pub fn cseq(headers: &Headers) -> Result<(u32, Method), MessageError> {
    let value = header_value(headers, "CSeq").ok_or(MessageError::MissingHeader("CSeq"))?;
    let bad = || MessageError::BadHeader {
        name: "CSeq",
        value: value.to_string(),
    };
    let mut parts = value.split_whitespace();
    let (Some(number), Some(method), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    if !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    Ok((number.parse().map_err(|_| bad())?, parse_method(method)?))
}

pub fn from_tag(headers: &Headers) -> Option<String> {
    header_param(header_value(headers, "From")?, "tag").flatten()
}

pub fn to_tag(headers: &Headers) -> Option<String> {
    header_param(header_value(headers, "To")?, "tag").flatten()
}

/// The first value of a header, matched case-insensitively and by compact
/// name; for list headers, the first comma-separated entry.
pub fn header_value<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    header_values(headers, name).next()
}

/// Every value of a header, list entries split, in order.
pub fn header_values<'a>(headers: &'a Headers, name: &str) -> impl Iterator<Item = &'a str> {
    let list = ["Via", "Contact", "Route", "Record-Route"]
        .iter()
        .any(|l| same_name(l, name));
    let name = normalise::long_name(name).to_string();
    headers
        .iter()
        .map(header_parts)
        .filter(move |(n, _)| same_name(n, &name))
        .flat_map(move |(_, value)| {
            if list {
                split_list(value)
            } else {
                vec![value.trim()]
            }
        })
}

/// The Record-Route entries in order (RFC 3261 §12.1.1).
pub fn record_routes(headers: &Headers) -> Vec<String> {
    header_values(headers, "Record-Route")
        .map(str::to_string)
        .collect()
}

pub fn content_type(headers: &Headers) -> Option<&str> {
    header_value(headers, "Content-Type")
}

/// The URI of the first Contact (inside `<>`, or a bare addr-spec).
pub fn contact_uri(headers: &Headers) -> Option<String> {
    let value = header_value(headers, "Contact")?;
    (value != "*")
        .then(|| addr_uri(value).map(str::to_string))
        .flatten()
}

/// RFC 3261 §18.2.1 and RFC 3581 §4: add `received` when the sent-by host is
/// not the source IP (always when `rport` is present) and fill an empty
/// `rport` with the source port. Only the top Via entry is touched.
pub fn stamp_received(request: &mut rsip::Request, source: SocketAddr) {
    let source_ip = source.ip().to_canonical();
    let Some(header) = request.headers.iter_mut().find(|h| is_named(h, "Via")) else {
        return;
    };
    let (name, value) = header_parts(header);
    let entries = split_list(value);
    let Some(Ok(via)) = entries.first().map(|top| Via::parse(top)) else {
        return;
    };
    let host_is_source = via
        .host
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.to_canonical() == source_ip);
    let mut top = entries[0].to_string();
    if !host_is_source || via.rport.is_some() {
        top = set_param(&top, "received", Some(&source_ip.to_string()));
    }
    if via.rport == Some(None) {
        top = set_param(&top, "rport", Some(&source.port().to_string()));
    }
    let rebuilt = std::iter::once(top.as_str())
        .chain(entries[1..].iter().copied())
        .collect::<Vec<_>>()
        .join(", ");
    *header = make_header(normalise::long_name(name), rebuilt);
}

/// Where a response goes over UDP: always the IP the request came from
/// (RFC 3261 §18.2.2 says the `received` IP, which a server sets to the
/// source; a `received` or sent-by the *client* wrote is ignored, so nobody
/// can aim our answers at a third party). The port: the source port when
/// the client asked for `rport` (RFC 3581 §4), else the sent-by port.
/// maddr is ignored.
pub fn response_destination(via: &Via, source: SocketAddr) -> SocketAddr {
    match via.rport {
        Some(_) => source,
        None => SocketAddr::new(source.ip(), via.port.unwrap_or_else(|| via.default_port())),
    }
}

/// A response per RFC 3261 §8.2.6: every Via in order, From, To (tagged with
/// `to_tag` if it has none), Call-ID, CSeq; Record-Route for 101-299 to
/// dialog-creating requests (§12.1.1); Timestamp for 100 (§8.2.6.1).
pub fn response(request: &rsip::Request, status: u16, to_tag: Option<&str>) -> rsip::Response {
    let creates_dialog = matches!(request.method, Method::Invite | Method::Subscribe);
    let mut headers = Vec::new();
    let copy = |name: &str, all: bool, out: &mut Vec<Header>| {
        let found = request.headers.iter().filter(|h| is_named(h, name));
        let found: Vec<&Header> = if all {
            found.collect()
        } else {
            found.take(1).collect()
        };
        out.extend(
            found
                .into_iter()
                .map(|h| make_header(name, header_parts(h).1)),
        );
    };
    copy("Via", true, &mut headers);
    copy("From", false, &mut headers);
    if let Some(to) = header_value(&request.headers, "To") {
        let to = match to_tag {
            Some(tag) if header_param(to, "tag").is_none() => format!("{to};tag={tag}"),
            _ => to.to_string(),
        };
        headers.push(make_header("To", to));
    }
    copy("Call-ID", false, &mut headers);
    copy("CSeq", false, &mut headers);
    if creates_dialog && (101..300).contains(&status) {
        copy("Record-Route", true, &mut headers);
    }
    if status == 100 {
        copy("Timestamp", false, &mut headers);
    }
    headers.push(make_header("Content-Length", "0"));
    rsip::Response {
        status_code: status.into(),
        version: rsip::Version::V2,
        headers: headers.into(),
        body: Vec::new(),
    }
}

/// Replaces the body, setting Content-Type and Content-Length.
pub fn set_body(headers: &mut Headers, body: &mut Vec<u8>, content_type: &str, new: Vec<u8>) {
    headers.retain(|h| !is_named(h, "Content-Type") && !is_named(h, "Content-Length"));
    headers.push(make_header("Content-Type", content_type));
    headers.push(make_header("Content-Length", new.len().to_string()));
    *body = new;
}

fn random_hex(rng: &mut (impl Rng + ?Sized), bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

// Identifiers are drawn from the caller's generator: the endpoint's seeded
// one in the sans-IO core, so a test replays the same branches and tags.

/// RFC 3261 §8.1.1.7: the magic cookie and 96 random bits.
pub fn new_branch(rng: &mut (impl Rng + ?Sized)) -> String {
    format!("{MAGIC_COOKIE}{}", random_hex(rng, 12))
}

/// RFC 3261 §19.3: at least 32 random bits; 64 here.
pub fn new_tag(rng: &mut (impl Rng + ?Sized)) -> String {
    random_hex(rng, 8)
}

/// RFC 3261 §8.1.1.4: 128 random bits.
pub fn new_call_id(rng: &mut (impl Rng + ?Sized)) -> String {
    random_hex(rng, 16)
}

/// RFC 3261 §21 reason phrases; rsip's own are CamelCase variant names.
#[rustfmt::skip]
const REASONS: &[(u16, &str)] = &[
    (100, "Trying"), (180, "Ringing"), (181, "Call Is Being Forwarded"), (182, "Queued"),
    (183, "Session Progress"), (200, "OK"), (202, "Accepted"), (300, "Multiple Choices"),
    (301, "Moved Permanently"), (302, "Moved Temporarily"), (305, "Use Proxy"),
    (380, "Alternative Service"), (400, "Bad Request"), (401, "Unauthorized"),
    (402, "Payment Required"), (403, "Forbidden"), (404, "Not Found"), (405, "Method Not Allowed"),
    (406, "Not Acceptable"), (407, "Proxy Authentication Required"), (408, "Request Timeout"),
    (410, "Gone"), (413, "Request Entity Too Large"), (414, "Request-URI Too Long"),
    (415, "Unsupported Media Type"), (416, "Unsupported URI Scheme"), (420, "Bad Extension"),
    (421, "Extension Required"), (423, "Interval Too Brief"), (480, "Temporarily Unavailable"),
    (481, "Call/Transaction Does Not Exist"), (482, "Loop Detected"), (483, "Too Many Hops"),
    (484, "Address Incomplete"), (485, "Ambiguous"), (486, "Busy Here"),
    (487, "Request Terminated"), (488, "Not Acceptable Here"), (491, "Request Pending"),
    (493, "Undecipherable"), (500, "Server Internal Error"), (501, "Not Implemented"),
    (502, "Bad Gateway"), (503, "Service Unavailable"), (504, "Server Time-out"),
    (505, "Version Not Supported"), (513, "Message Too Large"), (600, "Busy Everywhere"),
    (603, "Decline"), (604, "Does Not Exist Anywhere"), (606, "Not Acceptable"),
];

pub fn reason_phrase(code: u16) -> &'static str {
    REASONS
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("Unknown", |(_, reason)| reason)
}

/// Serialises a message byte-exactly (rsip's `Display` is lossy for binary
/// bodies and prints CamelCase reasons); Content-Length is always the body's.
pub fn to_bytes(message: &SipMessage) -> Vec<u8> {
    let (start, headers, body) = match message {
        SipMessage::Request(r) => (
            format!("{} {} SIP/2.0", r.method, r.uri),
            &r.headers,
            &r.body,
        ),
        SipMessage::Response(r) => {
            let code = r.status_code.code();
            let reason = match &r.status_code {
                rsip::StatusCode::Other(_, reason)
                    if !reason.is_empty() && !reason.contains(['\r', '\n']) =>
                {
                    reason.as_str()
                }
                _ => reason_phrase(code),
            };
            (format!("SIP/2.0 {code} {reason}"), &r.headers, &r.body)
        }
    };
    let mut out = start.into_bytes();
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers.iter().map(header_parts) {
        if !same_name(name, "Content-Length") {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests;

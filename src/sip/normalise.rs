//! The normalising pass in front of rsip: turns a datagram as real peers send
//! it into one clean `(name, value)` per header value, a checked start line
//! and a body cut to its Content-Length.
//!
//! rsip 0.4 rejects whole messages for folded lines, bare-LF line ends and a
//! space before the colon, and it never expands compact names or splits
//! comma-joined values (see `crates.md` §3). Rather than patch the text and
//! hope rsip's tokenizer agrees, this pass does the framing itself and
//! `message` builds the `rsip` types from its output. It follows:
//! - RFC 3261 §7.3.1: header folding (LWS), whitespace around the colon,
//!   comma-joined values of list headers (Via, Contact, Route, Record-Route);
//! - RFC 3261 §7.3.3 and the IANA registry: compact header names;
//! - RFC 3261 §7.5: empty lines before the start line are ignored;
//! - RFC 3261 §18.3: Content-Length frames a datagram's body; bytes beyond it
//!   are ignored, fewer bytes than declared is an error;
//! - RFC 3261 §7.1, §7.2 and §25.1: start-line syntax, as tightened by the
//!   RFC 4475 §3.1.2 torture messages (one SP between elements, no `<>`).

use super::message::MessageError;

/// A datagram split into its parts; nothing beyond the framing is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalised {
    /// The first non-empty line, untouched.
    pub start_line: String,
    /// One entry per header value, in order: long names, unfolded, trimmed,
    /// list headers split at top-level commas.
    pub headers: Vec<(String, String)>,
    /// The first header line that could not be read (no colon, bad name, a
    /// stray CR); it is left out of `headers`.
    pub malformed: Option<String>,
    /// Everything after the empty line ending the head, not yet framed.
    pub rest: Vec<u8>,
}

/// A checked start line (RFC 3261 §7.1, §7.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    Request { method: String, uri: String },
    Response { code: u16, reason: String },
}

/// Compact forms: RFC 3261 §7.3.3 (c e f i k l m s t v) and later RFCs
/// (a j d: 3841, b: 3892, o u: 6665, r: 3515, x: 4028, y n: 8224/4474).
const COMPACT: &[(char, &str)] = &[
    ('a', "Accept-Contact"),
    ('b', "Referred-By"),
    ('c', "Content-Type"),
    ('d', "Request-Disposition"),
    ('e', "Content-Encoding"),
    ('f', "From"),
    ('i', "Call-ID"),
    ('j', "Reject-Contact"),
    ('k', "Supported"),
    ('l', "Content-Length"),
    ('m', "Contact"),
    ('n', "Identity-Info"),
    ('o', "Event"),
    ('r', "Refer-To"),
    ('s', "Subject"),
    ('t', "To"),
    ('u', "Allow-Events"),
    ('v', "Via"),
    ('x', "Session-Expires"),
    ('y', "Identity"),
];

/// Headers whose comma-separated values are separate entries that are safe
/// to split (RFC 3261 §7.3.1); others (Accept, Warning, auth) are left alone.
const LIST_HEADERS: &[&str] = &["Via", "Contact", "Route", "Record-Route"];

/// The long name for a compact one; any other name is returned as given.
pub fn long_name(name: &str) -> &str {
    let mut chars = name.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        let c = c.to_ascii_lowercase();
        if let Some((_, long)) = COMPACT.iter().find(|(short, _)| *short == c) {
            return long;
        }
    }
    name
}

/// Whether two header names are the same header, counting compact forms.
pub fn same_name(a: &str, b: &str) -> bool {
    long_name(a).eq_ignore_ascii_case(long_name(b))
}

/// RFC 3261 §25.1 `token` characters.
pub fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_token_char)
}

/// Splits a datagram into start line, header entries and the rest. Lenient:
/// only an empty datagram or a head that is not UTF-8 fails, so that
/// `answer_unparsable` can still read the headers of a broken request.
pub fn split(datagram: &[u8]) -> Result<Normalised, MessageError> {
    let start = datagram
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .ok_or(MessageError::Empty)?;
    let data = &datagram[start..];
    // The head ends at the first empty line, whether it ends in CRLF or LF.
    let mut head_end = data.len();
    let mut body_start = data.len();
    let mut pos = 0;
    while let Some(offset) = data[pos..].iter().position(|b| *b == b'\n') {
        let line = &data[pos..pos + offset];
        if line.is_empty() || line == b"\r" {
            head_end = pos;
            body_start = pos + offset + 1;
            break;
        }
        pos += offset + 1;
    }
    let head = std::str::from_utf8(&data[..head_end]).map_err(|_| MessageError::NotUtf8)?;
    let mut lines = head
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line));
    let start_line = lines.next().unwrap_or_default().to_string();

    let mut malformed = None;
    let mut unfolded: Vec<String> = Vec::new();
    for line in lines.filter(|line| !line.is_empty()) {
        if line.starts_with([' ', '\t']) {
            // A continuation line (RFC 3261 §7.3.1): the fold is one SP.
            match unfolded.last_mut() {
                Some(previous) => {
                    let kept = previous.trim_end_matches([' ', '\t']).len();
                    previous.truncate(kept);
                    previous.push(' ');
                    previous.push_str(line.trim_start_matches([' ', '\t']));
                }
                None => {
                    malformed.get_or_insert_with(|| line.to_string());
                }
            }
        } else {
            unfolded.push(line.to_string());
        }
    }

    let mut headers = Vec::new();
    for line in &unfolded {
        let Some((name, value)) = line.split_once(':') else {
            malformed.get_or_insert_with(|| line.clone());
            continue;
        };
        let name = name.trim_end_matches([' ', '\t']);
        if !is_token(name) || value.contains('\r') {
            malformed.get_or_insert_with(|| line.clone());
            continue;
        }
        let name = long_name(name);
        let value = value.trim_matches([' ', '\t']);
        if LIST_HEADERS
            .iter()
            .any(|list| list.eq_ignore_ascii_case(name))
        {
            let entries = split_list(value);
            if entries.is_empty() {
                headers.push((name.to_string(), String::new()));
            }
            for entry in entries {
                headers.push((name.to_string(), entry.to_string()));
            }
        } else {
            headers.push((name.to_string(), value.to_string()));
        }
    }
    Ok(Normalised {
        start_line,
        headers,
        malformed,
        rest: data[body_start..].to_vec(),
    })
}

/// The method of a datagram that looks like a request, without parsing it.
pub fn request_line_method(datagram: &[u8]) -> Option<&str> {
    let start = datagram.iter().position(|b| !b"\r\n".contains(b))?;
    let token = datagram[start..].split(|b| *b == b' ').next()?;
    let method = std::str::from_utf8(token).ok()?;
    (is_token(method) && !method.starts_with("SIP/")).then_some(method)
}

/// Splits a header value at commas outside quoted strings and `<…>`;
/// empty entries are dropped.
pub fn split_list(value: &str) -> Vec<&str> {
    let mut entries = Vec::new();
    let mut start = 0;
    let mut scan = Scan::default();
    for (i, c) in value.char_indices() {
        if scan.step(c) && c == ',' && scan.angle == 0 {
            entries.push(&value[start..i]);
            start = i + 1;
        }
    }
    entries.push(&value[start..]);
    entries
        .into_iter()
        .map(|entry| entry.trim_matches([' ', '\t']))
        .filter(|entry| !entry.is_empty())
        .collect()
}

/// Tracks quoted strings (with `\` escapes) and `<…>` while walking a value.
#[derive(Debug, Default, Clone, Copy)]
pub struct Scan {
    pub quoted: bool,
    escaped: bool,
    pub angle: u32,
}

impl Scan {
    /// Feeds one character; true when it is outside any quoted string.
    pub fn step(&mut self, c: char) -> bool {
        if self.quoted {
            if self.escaped {
                self.escaped = false;
            } else if c == '\\' {
                self.escaped = true;
            } else if c == '"' {
                self.quoted = false;
            }
            return false;
        }
        match c {
            '"' => {
                self.quoted = true;
                return false;
            }
            '<' => self.angle += 1,
            '>' => self.angle = self.angle.saturating_sub(1),
            _ => {}
        }
        true
    }
}

/// Checks the start line strictly: one SP between the three elements
/// (RFC 4475 §3.1.2.8-10), a token method, a Request-URI without `<>`, LWS or
/// escaped headers (§3.1.2.7, §3.1.2.11), version SIP/2.0 (§3.1.2.16), a
/// three-digit status code (§3.1.2.19).
pub fn parse_start_line(line: &str) -> Result<StartLine, MessageError> {
    let bad = || MessageError::BadStartLine(line.to_string());
    if has_sip_version_prefix(line) {
        let mut parts = line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        check_version(version, line)?;
        let code = parts.next().unwrap_or_default();
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MessageError::BadStatusCode(code.to_string()));
        }
        let code: u16 = code.parse().map_err(|_| bad())?;
        if !(100..=699).contains(&code) {
            return Err(MessageError::BadStatusCode(code.to_string()));
        }
        let reason = parts.next().unwrap_or_default().to_string();
        return Ok(StartLine::Response { code, reason });
    }
    // A request line is ASCII: method token, escaped URI, version
    // (RFC 3261 §25.1). Only a response's reason phrase may carry UTF-8.
    if !line.is_ascii() {
        return Err(bad());
    }
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, uri, version] = parts[..] else {
        return Err(bad());
    };
    check_version(version, line)?;
    if !is_token(method) {
        return Err(bad());
    }
    if !valid_request_uri(uri) {
        return Err(MessageError::BadRequestUri(uri.to_string()));
    }
    Ok(StartLine::Request {
        method: method.to_string(),
        uri: uri.to_string(),
    })
}

/// Whether `text` starts with `SIP/` in any case. Compares bytes: slicing a
/// `str` at 4 would panic inside a multi-byte character.
pub(crate) fn has_sip_version_prefix(text: &str) -> bool {
    text.as_bytes()
        .get(..4)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(b"SIP/"))
}

fn check_version(version: &str, line: &str) -> Result<(), MessageError> {
    if version.eq_ignore_ascii_case("SIP/2.0") {
        Ok(())
    } else if version.len() > 4 && has_sip_version_prefix(version) {
        Err(MessageError::UnsupportedVersion(version.to_string()))
    } else {
        Err(MessageError::BadStartLine(line.to_string()))
    }
}

/// `scheme ":" …` with no whitespace, controls or `<>`, and for sip/sips no
/// `?headers` after the host (RFC 3261 §19.1.1: not allowed in a Request-URI).
fn valid_request_uri(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return false;
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    let chars_ok = !rest.is_empty()
        && !rest
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>');
    let sip = scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips");
    // The user part may hold `?` (RFC 4475 §3.1.1.2); headers follow the host.
    let host_part = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    scheme_ok && chars_ok && !(sip && host_part.contains('?'))
}

/// Cuts the body to Content-Length (RFC 3261 §18.3). Without the header the
/// whole rest of the datagram is the body, as §18.3 allows for UDP.
pub fn frame_body(headers: &[(String, String)], rest: &[u8]) -> Result<Vec<u8>, MessageError> {
    let mut declared: Option<usize> = None;
    for (_, value) in headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("Content-Length"))
    {
        let bad = || MessageError::BadHeader {
            name: "Content-Length",
            value: value.clone(),
        };
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let length: usize = value.parse().map_err(|_| bad())?;
        // Two different lengths leave no way to frame the body (RFC 4475 §3.3.9).
        if declared.is_some_and(|earlier| earlier != length) {
            return Err(bad());
        }
        declared = Some(length);
    }
    match declared {
        None => Ok(rest.to_vec()),
        Some(length) if length > rest.len() => Err(MessageError::ContentLengthMismatch {
            declared: length,
            actual: rest.len(),
        }),
        Some(length) => Ok(rest[..length].to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &Normalised) -> Vec<&str> {
        n.headers.iter().map(|(name, _)| name.as_str()).collect()
    }

    #[test]
    fn compact_names_expand_to_long_names() {
        let n = split(b"OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h\r\ni: x\r\nf: <sip:a@b>\r\nt: <sip:c@d>\r\nm: <sip:e@f>\r\nl: 0\r\nc: text/plain\r\ne: gzip\r\ns: hi\r\nk: 100rel\r\no: dialog\r\n\r\n").unwrap();
        assert_eq!(
            names(&n),
            [
                "Via",
                "Call-ID",
                "From",
                "To",
                "Contact",
                "Content-Length",
                "Content-Type",
                "Content-Encoding",
                "Subject",
                "Supported",
                "Event"
            ]
        );
        assert_eq!(long_name("V"), "Via");
        assert_eq!(long_name("X-Custom"), "X-Custom");
        assert!(same_name("i", "call-id"));
    }

    #[test]
    fn folded_lines_are_unfolded_and_colon_spacing_removed() {
        let n = split(b"INVITE sip:a@b SIP/2.0\r\nTO :\r\n sip:a@b ;  tag = 1\r\ncseq: 0009\r\n  INVITE\r\nX-Long: one\r\n\ttwo\r\n\r\n").unwrap();
        assert_eq!(
            n.headers,
            [
                ("TO".to_string(), "sip:a@b ;  tag = 1".to_string()),
                ("cseq".to_string(), "0009 INVITE".to_string()),
                ("X-Long".to_string(), "one two".to_string()),
            ]
        );
        assert_eq!(n.malformed, None);
    }

    #[test]
    fn bare_lf_line_ends_are_accepted() {
        let n =
            split(b"\r\n\nOPTIONS sip:a@b SIP/2.0\nCall-ID: x\nContent-Length: 2\n\nhi").unwrap();
        assert_eq!(n.start_line, "OPTIONS sip:a@b SIP/2.0");
        assert_eq!(
            n.headers,
            [
                ("Call-ID".into(), "x".into()),
                ("Content-Length".into(), "2".into())
            ]
        );
        assert_eq!(n.rest, b"hi");
    }

    #[test]
    fn comma_joined_list_values_split_outside_quotes_and_angles() {
        assert_eq!(
            split_list("SIP/2.0/UDP a;branch=1 , SIP/2.0/TCP [::1]:5060;branch=2,"),
            ["SIP/2.0/UDP a;branch=1", "SIP/2.0/TCP [::1]:5060;branch=2"]
        );
        assert_eq!(
            split_list(r#""Doe, \"J\"" <sip:a@b;x=1,2>;q=1, <sip:c@d>;+sip.instance="<urn:a,b>""#),
            [
                r#""Doe, \"J\"" <sip:a@b;x=1,2>;q=1"#,
                r#"<sip:c@d>;+sip.instance="<urn:a,b>""#
            ]
        );
        let n =
            split(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a, SIP/2.0/UDP b\r\nWarning: 1, 2\r\n\r\n")
                .unwrap();
        assert_eq!(names(&n), ["Via", "Via", "Warning"]);
    }

    #[test]
    fn malformed_lines_are_reported_not_fatal() {
        let n = split(b"OPTIONS sip:a@b SIP/2.0\r\n continuation first\r\nNo colon here\r\nCall-ID: x\r\n\r\n").unwrap();
        assert_eq!(n.malformed.as_deref(), Some(" continuation first"));
        assert_eq!(names(&n), ["Call-ID"]);
        assert!(matches!(split(b"\r\n\r\n"), Err(MessageError::Empty)));
        assert!(matches!(
            split(b"OPTIONS \xff SIP/2.0\r\n\r\n"),
            Err(MessageError::NotUtf8)
        ));
    }

    #[test]
    fn start_lines_are_checked_strictly() {
        assert_eq!(
            parse_start_line("INVITE sip:a@b;lr SIP/2.0").unwrap(),
            StartLine::Request {
                method: "INVITE".into(),
                uri: "sip:a@b;lr".into()
            }
        );
        assert_eq!(
            parse_start_line("SIP/2.0 100 ").unwrap(),
            StartLine::Response {
                code: 100,
                reason: String::new()
            }
        );
        assert_eq!(
            parse_start_line("SIP/2.0 180").unwrap(),
            StartLine::Response {
                code: 180,
                reason: String::new()
            }
        );
        for bad in [
            "INVITE  sip:a@b  SIP/2.0",
            "OPTIONS sip:a@b SIP/2.0  ",
            "INVITE sip:a@b; lr SIP/2.0",
            "INVITE sip:a@b",
        ] {
            assert!(
                matches!(parse_start_line(bad), Err(MessageError::BadStartLine(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_start_line("INVITE <sip:a@b> SIP/2.0"),
            Err(MessageError::BadRequestUri(_))
        ));
        assert!(matches!(
            parse_start_line("INVITE sip:a@b?Route=%3Csip:c%3E SIP/2.0"),
            Err(MessageError::BadRequestUri(_))
        ));
        assert!(parse_start_line("INVITE sip:cr?zy@b SIP/2.0").is_ok());
        assert!(parse_start_line("OPTIONS tel:+1-201-555-0123 SIP/2.0").is_ok());
        assert!(matches!(
            parse_start_line("OPTIONS sip:a@b SIP/7.0"),
            Err(MessageError::UnsupportedVersion(_))
        ));
        assert!(matches!(
            parse_start_line("SIP/2.0 4294967301 big"),
            Err(MessageError::BadStatusCode(_))
        ));
        assert!(matches!(
            parse_start_line("SIP/2.0 099 low"),
            Err(MessageError::BadStatusCode(_))
        ));
    }

    #[test]
    fn content_length_frames_the_body() {
        let cl = |v: &str| vec![("Content-Length".to_string(), v.to_string())];
        assert_eq!(frame_body(&cl("2"), b"hi and more").unwrap(), b"hi");
        assert_eq!(frame_body(&[], b"all of it").unwrap(), b"all of it");
        assert!(matches!(
            frame_body(&cl("9999"), b"short"),
            Err(MessageError::ContentLengthMismatch {
                declared: 9999,
                actual: 5
            })
        ));
        assert!(matches!(
            frame_body(&cl("-999"), b""),
            Err(MessageError::BadHeader { .. })
        ));
        let two = vec![
            ("Content-Length".to_string(), "13".to_string()),
            ("Content-Length".to_string(), "5".to_string()),
        ];
        assert!(matches!(
            frame_body(&two, b"0123456789abcdef"),
            Err(MessageError::BadHeader { .. })
        ));
    }
}

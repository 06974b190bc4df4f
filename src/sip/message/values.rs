//! Small lenient parsers of raw header values (RFC 3261 §20, §25.1): Via,
//! name-addr and addr-spec, parameters, host and port. They work on the text
//! where rsip's typed layer fails (IPv6, `tel:`, quoted `<>` in parameters),
//! accepting LWS wherever RFC 3261 allows it (RFC 4475 §3.1.1.1).

use super::{MessageError, Via};
use crate::sip::normalise::{self, Scan, split_list};

/// Parses one Via value (the first, if comma-joined) per RFC 3261 §20.42,
/// allowing LWS around `/`, `;`, `=` and `:`.
pub fn parse_via(value: &str) -> Result<Via, MessageError> {
    let bad = || MessageError::BadHeader {
        name: "Via",
        value: value.to_string(),
    };
    let entry = split_list(value).into_iter().next().ok_or_else(bad)?;
    if has_angle_outside_quotes(entry) {
        return Err(bad());
    }
    let (protocol, params) = split_params(entry);
    let mut parts = protocol.splitn(3, '/');
    let (name, version, rest) = (parts.next(), parts.next(), parts.next());
    if !name.is_some_and(|n| n.trim().eq_ignore_ascii_case("SIP"))
        || version.map(str::trim) != Some("2.0")
    {
        return Err(bad());
    }
    let rest = rest.ok_or_else(bad)?.trim();
    let (transport, sent_by) = rest.split_once([' ', '\t']).ok_or_else(bad)?;
    let sent_by: String = sent_by.chars().filter(|c| !c.is_whitespace()).collect();
    let (host, port) = split_host_port(&sent_by).ok_or_else(bad)?;
    if !normalise::is_token(transport) {
        return Err(bad());
    }
    let mut via = Via {
        transport: transport.to_ascii_uppercase(),
        host,
        port,
        branch: None,
        received: None,
        rport: None,
    };
    for (name, value) in params {
        match name.to_ascii_lowercase().as_str() {
            "branch" => via.branch = value,
            "received" => via.received = value,
            "rport" => via.rport = Some(value.and_then(|v| v.parse().ok())),
            _ => {}
        }
    }
    Ok(via)
}

/// Splits `host[:port]` or `[v6][:port]`; the host comes back bare.
pub fn split_host_port(text: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(inner) = text.strip_prefix('[') {
        let (v6, after) = inner.split_once(']')?;
        v6.parse::<std::net::Ipv6Addr>().ok()?;
        match after {
            "" => (v6, None),
            _ => (v6, Some(after.strip_prefix(':')?)),
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_:".contains(c));
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    host_ok.then(|| (host.to_string(), port))
}

/// Splits `head;p1=v1;p2` at semicolons outside quotes into the head and its
/// parameters, names and values trimmed, quotes removed from values.
pub fn split_params(text: &str) -> (&str, Vec<(String, Option<String>)>) {
    let (head, pieces) = raw_params(text);
    let params = pieces
        .into_iter()
        .map(|p| match p.split_once('=') {
            Some((n, v)) => (
                n.trim().to_string(),
                Some(v.trim().trim_matches('"').to_string()),
            ),
            None => (p.to_string(), None),
        })
        .collect();
    (head, params)
}

/// The head and each `;` parameter as written (trimmed, quotes kept),
/// split outside quoted strings and `<…>`.
fn raw_params(text: &str) -> (&str, Vec<&str>) {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut scan = Scan::default();
    for (i, c) in text.char_indices() {
        if scan.step(c) && c == ';' && scan.angle == 0 {
            pieces.push(&text[start..i]);
            start = i + 1;
        }
    }
    pieces.push(&text[start..]);
    let head = pieces[0].trim();
    let params = pieces[1..]
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .collect();
    (head, params)
}

/// Splits a From/To/Contact/Route value into its address part (`<uri>` with
/// any display name, or a bare addr-spec) and the header parameters.
pub fn split_name_addr(value: &str) -> (&str, &str) {
    let mut scan = Scan::default();
    for (i, c) in value.char_indices() {
        let outside = scan.step(c);
        if outside && c == '>' && scan.angle == 0 {
            return (&value[..=i], &value[i + 1..]);
        }
        if outside && c == ';' && scan.angle == 0 {
            return (&value[..i], &value[i..]);
        }
    }
    (value, "")
}

/// A header parameter of a name-addr/addr-spec value: `None` if absent,
/// `Some(None)` if present without a value.
pub fn header_param(value: &str, name: &str) -> Option<Option<String>> {
    let (_, params) = split_name_addr(value);
    split_params(params)
        .1
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// The URI of a name-addr (inside `<>`) or of a bare addr-spec (before `;`).
pub fn addr_uri(value: &str) -> Option<&str> {
    let (address, _) = split_name_addr(value);
    let uri = match address.rfind('<') {
        Some(open) => address[open + 1..].strip_suffix('>')?,
        None => address,
    };
    let uri = uri.trim();
    (!uri.is_empty()).then_some(uri)
}

/// RFC 3261 §20.10: a balanced quoted display name or tokens, an address
/// without LWS inside `<>` (RFC 4475 §3.1.2.14) and a bare addr-spec without
/// `?` (§3.1.2.13) or spaces.
pub fn valid_name_addr(value: &str) -> bool {
    let mut scan = Scan::default();
    value.chars().for_each(|c| {
        scan.step(c);
    });
    if scan.quoted {
        return false;
    }
    let (address, params) = split_name_addr(value);
    // Header params are tokens, hosts or quoted strings (RFC 3261 §25.1).
    if has_angle_outside_quotes(params) {
        return false;
    }
    let Some(open) = address.rfind('<') else {
        return addr_uri(value).is_some_and(|uri| !uri.contains([' ', '\t', '?']));
    };
    let display = address[..open].trim();
    let display_ok = if display.starts_with('"') {
        display.len() >= 2 && display.ends_with('"')
    } else {
        display.split_whitespace().all(normalise::is_token)
    };
    let inner = address[open + 1..].strip_suffix('>');
    display_ok && inner.is_some_and(|uri| !uri.is_empty() && !uri.contains([' ', '\t']))
}

fn has_angle_outside_quotes(text: &str) -> bool {
    let mut scan = Scan::default();
    text.chars().any(|c| scan.step(c) && (c == '<' || c == '>'))
}

/// Sets (or replaces) one parameter of a Via entry; the others are kept
/// as written (a quoted value stays quoted).
pub fn set_param(entry: &str, name: &str, value: Option<&str>) -> String {
    let (head, params) = raw_params(entry);
    let written = |name: &str| match value {
        Some(value) => format!("{name}={value}"),
        None => name.to_string(),
    };
    let mut out = head.to_string();
    let mut replaced = false;
    for param in params {
        let param_name = param.split_once('=').map_or(param, |(n, _)| n).trim();
        out.push(';');
        if param_name.eq_ignore_ascii_case(name) {
            // Its name as the client wrote it.
            replaced = true;
            out.push_str(&written(param_name));
        } else {
            out.push_str(param);
        }
    }
    if !replaced {
        out.push(';');
        out.push_str(&written(name));
    }
    out
}

/// Host (IPv6 without brackets) and port of a sip:/sips: URI; the user part
/// (which may hold `;`, `?` and `:`), params and headers are ignored.
pub fn uri_host_port(uri: &str) -> Option<(String, Option<u16>)> {
    let uri = uri.trim().trim_start_matches('<').trim_end_matches('>');
    let (scheme, rest) = uri.split_once(':')?;
    if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
        return None;
    }
    let host_part = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let end = host_part.find([';', '?']).unwrap_or(host_part.len());
    split_host_port(&host_part[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_params_are_found_outside_angle_brackets() {
        let from = r#""J Rosenberg \\\"" <sip:jdrosen@example.com;tag=inside> ; tag = 98asjd8"#;
        assert_eq!(header_param(from, "TAG"), Some(Some("98asjd8".into())));
        assert_eq!(
            header_param("sip:a@b ;   tag    = 1918181833n", "tag"),
            Some(Some("1918181833n".into()))
        );
        assert_eq!(header_param("<sip:a@b;tag=x>", "tag"), None);
        assert_eq!(header_param("<sip:a@b>;lr;q=0.5", "lr"), Some(None));
        let instance = r#"<sip:a@b>;+sip.instance="<urn:uuid:1;x>";expires=60"#;
        assert_eq!(
            header_param(instance, "+sip.instance"),
            Some(Some("<urn:uuid:1;x>".into()))
        );
        assert_eq!(header_param(instance, "expires"), Some(Some("60".into())));
    }

    #[test]
    fn addr_uri_reads_name_addr_and_addr_spec() {
        assert_eq!(
            addr_uri(r#""A <b>" <sip:a@[::1]:5060;transport=udp>;q=1"#),
            Some("sip:a@[::1]:5060;transport=udp")
        );
        assert_eq!(
            addr_uri("caller<sip:caller@example.com>;tag=323"),
            Some("sip:caller@example.com")
        );
        assert_eq!(
            addr_uri("sip:+19725552222@gw1.example.net;unknownparam"),
            Some("sip:+19725552222@gw1.example.net")
        );
        assert_eq!(
            addr_uri("<tel:+1-201-555-0123>"),
            Some("tel:+1-201-555-0123")
        );
        assert_eq!(addr_uri("<>"), None);
        assert_eq!(addr_uri("<sip:unclosed"), None);
    }

    #[test]
    fn name_addr_validation_follows_rfc4475() {
        assert!(valid_name_addr(
            r#""Quoted string \"\"" <sip:jdrosen@example.com> ; newparam = newvalue"#
        ));
        assert!(valid_name_addr(
            "token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;tag=x"
        ));
        assert!(valid_name_addr("sip:user@example.com;tag=1"));
        assert!(
            !valid_name_addr(r#""Mr. J. User <sip:j.user@example.com>"#),
            "unterminated quote"
        );
        assert!(
            !valid_name_addr("Bell, Alexander <sip:a.g.bell@example.com>"),
            "non-token display name"
        );
        assert!(
            !valid_name_addr(r#""Watson, Thomas" < sip:t.watson@example.org >"#),
            "spaces in <>"
        );
        assert!(
            !valid_name_addr("sip:user@example.com?Route=%3Csip:sip.example.com%3E"),
            "? outside <>"
        );
    }

    #[test]
    fn set_param_keeps_the_other_parameters_as_written() {
        // Found by fuzzing: the quotes were dropped, leaving a bare `<`
        // that made the stamped Via unreadable.
        let entry =
            r#"SIP/2.0/UDP [2001:db8::5]:5060;x.instance="<urn:uuid:a1;b>";branch=z9hG4bK1"#;
        let stamped = set_param(entry, "received", Some("192.0.2.99"));
        assert_eq!(
            stamped,
            r#"SIP/2.0/UDP [2001:db8::5]:5060;x.instance="<urn:uuid:a1;b>";branch=z9hG4bK1;received=192.0.2.99"#
        );
        assert!(parse_via(&stamped).is_ok());
        let open = r#"SIP/2.0/UDP [2001:db8::5]:5060;brap.instance="<urn:uuid:a1ral""#;
        assert!(parse_via(open).is_ok());
        assert!(parse_via(&set_param(open, "received", Some("192.0.2.99"))).is_ok());
    }

    #[test]
    fn set_param_replaces_or_appends() {
        assert_eq!(
            set_param("SIP/2.0/UDP h ; rport ; branch=z", "rport", Some("5")),
            "SIP/2.0/UDP h;rport=5;branch=z"
        );
        assert_eq!(
            set_param("SIP/2.0/UDP h;branch=z", "received", Some("10.0.0.1")),
            "SIP/2.0/UDP h;branch=z;received=10.0.0.1"
        );
        assert_eq!(
            set_param(
                "SIP/2.0/UDP h;Received=1.1.1.1",
                "received",
                Some("2.2.2.2")
            ),
            "SIP/2.0/UDP h;Received=2.2.2.2"
        );
    }

    #[test]
    fn host_port_splits_ipv4_names_and_bracketed_ipv6() {
        assert_eq!(
            split_host_port("192.0.2.1:5060"),
            Some(("192.0.2.1".into(), Some(5060)))
        );
        assert_eq!(
            split_host_port("[2001:db8::1]"),
            Some(("2001:db8::1".into(), None))
        );
        assert_eq!(split_host_port("[2001:db8::1]5060"), None);
        assert_eq!(split_host_port("2001:db8::1"), None, "IPv6 needs brackets");
        assert_eq!(split_host_port("host:70000"), None);
        assert_eq!(split_host_port(""), None);
    }
}

//! SDP offer/answer for the line's one audio stream.
//!
//! - Parsing follows SDP (RFC 8866, formerly RFC 4566) leniently: CRLF or bare LF, unknown
//!   line types and attributes ignored, but a broken line we rely on (`m=`, `c=`,
//!   `a=rtpmap`, `a=rtcp`) is a typed error carrying its line number.
//! - [`answer`] follows RFC 3264 §6: one `m=` line per offered `m=` line, in order, with
//!   everything but the audio stream we use rejected by port 0; the codec is the caller's
//!   first preference that we support (§6.1), with the caller's payload type numbers.
//! - Direction (RFC 3264 §6.1, §8.4): the caller's `sendonly` makes us `recvonly` and so on;
//!   an old-style hold, `c=IN IP4 0.0.0.0` (RFC 3264 §8.4, from RFC 2543), means "do not send
//!   to me".
//! - RTCP port: `a=rtcp` (RFC 3605), else RTP port + 1 (RFC 3550 §11).
//! - Codecs: G.711 by static payload type (RFC 3551), Opus only as `opus/48000/2`
//!   (RFC 7587 §7), DTMF as `telephone-event` (RFC 4733 §7) at the audio codec's clock rate.
//!
//! Addresses are taken as written: this module does no DNS, and a host name in `c=` is an
//! error rather than a lookup.

// No clock reads or global randomness outside tests: `now` and the seeded
// generator are inputs (clippy.toml).
#![cfg_attr(not(test), deny(clippy::disallowed_methods))]

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::media::Codec;
use crate::media::rtp::PayloadType;

/// Which way media flows, from the point of view of whoever wrote the SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}
impl Direction {
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether this side accepts media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The direction an answerer takes for this offered one (RFC 3264 §6.1).
    pub fn reversed(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            other => other,
        }
    }

    /// The attribute name (`a=sendrecv`…).
    pub fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_attribute(name: &str) -> Option<Direction> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// Takes away the ability to receive: what a hold address (0.0.0.0) means.
    fn without_receiving(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendOnly,
            Direction::RecvOnly => Direction::Inactive,
            other => other,
        }
    }
}

/// What was wrong with an SDP body, or why no audio can be agreed on. Every variant ends in
/// a 488 Not Acceptable Here for an offer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("not an sdp body: line {line} should be \"v=0\"")]
    NotSdp { line: usize },
    #[error("line {line}: expected \"<letter>=<value>\"")]
    MalformedLine { line: usize },
    #[error("line {line}: bad media line {text:?}")]
    BadMedia { line: usize, text: String },
    #[error("line {line}: bad connection line {text:?} (expected \"IN IP4|IP6 <address>\")")]
    BadConnection { line: usize, text: String },
    #[error("line {line}: bad a={attribute} value {text:?}")]
    BadAttribute {
        line: usize,
        attribute: &'static str,
        text: String,
    },
    #[error("no connection address for the media on line {line}")]
    MissingConnection { line: usize },
    #[error("no audio stream offered")]
    NoAudio,
    #[error("the audio stream on line {line} is disabled (port 0)")]
    AudioDisabled { line: usize },
    #[error("the audio stream on line {line} uses transport {proto:?}, not rtp/avp")]
    UnsupportedTransport { line: usize, proto: String },
    #[error("no common codec")]
    NoCommonCodec,
    #[error("the sdp body is {bytes} bytes, more than the {limit} accepted")]
    BodyTooLarge { bytes: usize, limit: usize },
    #[error("more than {limit} media streams")]
    TooManyMedia { limit: usize },
    #[error("line {line}: more than {limit} formats or attributes for one stream")]
    TooManyFormats { line: usize, limit: usize },
    #[error("the media address {address} is not one caller's (multicast or broadcast)")]
    NotUnicast { address: IpAddr },
}

impl SdpError {
    /// An offer past the size limits: refused without reading further.
    pub fn is_too_large(&self) -> bool {
        matches!(
            self,
            SdpError::BodyTooLarge { .. }
                | SdpError::TooManyMedia { .. }
                | SdpError::TooManyFormats { .. }
        )
    }
}

/// Bounds on an offer, so answering it is cheap and the answer (which must
/// repeat every `m=` line, RFC 3264 §6) is never large: a phone's offer is
/// well under 2 KiB with two or three streams; a WebRTC one with ICE
/// candidates a few KiB.
pub const MAX_SDP_BYTES: usize = 16 * 1024;
pub const MAX_MEDIA: usize = 16;
/// Formats on one `m=` line, and `rtpmap`/`fmtp` attributes of one stream
/// (there are only 128 RTP payload types).
pub const MAX_FORMATS: usize = 128;

/// A parsed session description: the parts offer/answer needs, nothing more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// Session-level `c=`, used by media without their own.
    pub connection: Option<IpAddr>,
    /// Session-level direction attribute, used by media without their own.
    pub direction: Option<Direction>,
    pub media: Vec<MediaDescription>,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// The line number of the `m=` line, for error messages.
    pub line: usize,
    /// `audio`, `video`, `application`…
    pub kind: String,
    /// 0 means the stream is disabled.
    pub port: u16,
    /// `RTP/AVP`, `RTP/SAVP`…, as written.
    pub proto: String,
    /// The format tokens as written; for RTP these are payload type numbers, in the
    /// sender's order of preference.
    pub formats: Vec<String>,
    pub connection: Option<IpAddr>,
    pub direction: Option<Direction>,
    pub rtpmaps: Vec<RtpMap>,
    /// `a=fmtp:<pt> <params>`, parameters kept as written.
    pub fmtps: Vec<(PayloadType, String)>,
    /// `a=rtcp:<port> [IN IP4|IP6 <address>]` (RFC 3605).
    pub rtcp: Option<(u16, Option<IpAddr>)>,
}

/// `a=rtpmap:<pt> <name>/<clock>[/<channels>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub payload_type: PayloadType,
    pub encoding: String,
    pub clock_rate_hz: u32,
    pub channels: Option<u8>,
}

/// Our side of the media: where we receive, and the `o=` numbers (RFC 8866 §5.2).
#[derive(Debug, Clone)]
pub struct LocalMedia {
    pub address: IpAddr,
    pub rtp_port: u16,
    pub session_id: u64,
    pub session_version: u64,
}

/// What offer/answer agreed on for the audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub codec: Codec,
    pub payload_type: PayloadType,
    /// The payload type for RFC 4733 events, if the peer offers them.
    pub telephone_event: Option<PayloadType>,
    /// Where to send RTP; `None` while the peer is on hold (0.0.0.0) or the stream is off.
    pub remote_rtp: Option<SocketAddr>,
    pub remote_rtcp: Option<SocketAddr>,
    /// Our direction: send only if `local_direction.sends()`.
    pub local_direction: Direction,
}

/// The payload types we use in our own offers (dynamic range, RFC 3551 §3).
const OFFER_OPUS_PT: u8 = 111;
const OFFER_EVENT_8K_PT: u8 = 101;
const OFFER_EVENT_48K_PT: u8 = 110;
/// Digits 0-9, *, #, A-D and flash (RFC 4733 §3.2): every event a keypad sends.
const EVENTS: &str = "0-16";
/// What we say about Opus: we send mono speech, and the caller may use in-band FEC.
const OPUS_FMTP: &str = "useinbandfec=1;stereo=0;sprop-stereo=0";

/// Parses an SDP body.
pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
    if text.len() > MAX_SDP_BYTES {
        return Err(SdpError::BodyTooLarge {
            bytes: text.len(),
            limit: MAX_SDP_BYTES,
        });
    }
    let mut session = SessionDescription {
        connection: None,
        direction: None,
        media: Vec::new(),
    };
    let mut seen_version = false;
    for (index, raw) in text.split('\n').enumerate() {
        let line = index + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.trim().is_empty() {
            continue;
        }
        if !seen_version {
            // RFC 8866 §5: v= comes first; refusing anything else keeps a non-SDP body
            // (or a body for another content type) from being taken as an empty offer.
            if raw.trim() != "v=0" {
                return Err(SdpError::NotSdp { line });
            }
            seen_version = true;
            continue;
        }
        let (kind, value) = match raw.as_bytes() {
            [kind, b'=', ..] if kind.is_ascii_alphabetic() => (*kind, &raw[2..]),
            _ => return Err(SdpError::MalformedLine { line }),
        };
        match kind {
            b'm' => {
                if session.media.len() == MAX_MEDIA {
                    return Err(SdpError::TooManyMedia { limit: MAX_MEDIA });
                }
                session.media.push(parse_media(line, value)?);
            }
            b'c' => {
                let address = parse_connection(line, value)?;
                match session.media.last_mut() {
                    Some(media) => media.connection = Some(address),
                    None => session.connection = Some(address),
                }
            }
            b'a' => parse_attribute(line, value, &mut session)?,
            // o=, s=, t=, b=, i=, k=… carry nothing offer/answer needs here.
            _ => {}
        }
    }
    if !seen_version {
        return Err(SdpError::NotSdp { line: 1 });
    }
    Ok(session)
}

fn parse_media(line: usize, value: &str) -> Result<MediaDescription, SdpError> {
    let bad = || SdpError::BadMedia {
        line,
        text: value.to_owned(),
    };
    let mut fields = value.split_ascii_whitespace();
    let kind = fields.next().ok_or_else(bad)?;
    // "<port>/<number of ports>" is legal (RFC 8866 §5.14); only the first port matters.
    let port = fields.next().ok_or_else(bad)?;
    let port = port.split('/').next().unwrap_or(port);
    let port: u16 = port.parse().map_err(|_| bad())?;
    let proto = fields.next().ok_or_else(bad)?;
    let formats: Vec<String> = fields.take(MAX_FORMATS + 1).map(str::to_owned).collect();
    if formats.is_empty() {
        return Err(bad());
    }
    if formats.len() > MAX_FORMATS {
        return Err(SdpError::TooManyFormats {
            line,
            limit: MAX_FORMATS,
        });
    }
    Ok(MediaDescription {
        line,
        kind: kind.to_owned(),
        port,
        proto: proto.to_owned(),
        formats,
        connection: None,
        direction: None,
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
        rtcp: None,
    })
}

/// `IN IP4 <addr>[/ttl[/n]]` or `IN IP6 <addr>`.
fn parse_connection(line: usize, value: &str) -> Result<IpAddr, SdpError> {
    parse_address_fields(value).ok_or_else(|| SdpError::BadConnection {
        line,
        text: value.to_owned(),
    })
}

fn parse_address_fields(value: &str) -> Option<IpAddr> {
    let mut fields = value.split_ascii_whitespace();
    let (net, addrtype, address) = (fields.next()?, fields.next()?, fields.next()?);
    if !net.eq_ignore_ascii_case("IN") {
        return None;
    }
    // Multicast addresses carry "/ttl" and "/count" suffixes.
    let address = address.split('/').next()?;
    if addrtype.eq_ignore_ascii_case("IP4") {
        address.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    } else if addrtype.eq_ignore_ascii_case("IP6") {
        address.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    } else {
        None
    }
}

fn parse_attribute(
    line: usize,
    value: &str,
    session: &mut SessionDescription,
) -> Result<(), SdpError> {
    let (name, arg) = match value.split_once(':') {
        Some((name, arg)) => (name.trim(), Some(arg.trim())),
        None => (value.trim(), None),
    };
    if let Some(direction) = Direction::from_attribute(name) {
        match session.media.last_mut() {
            Some(media) => media.direction = Some(direction),
            None => session.direction = Some(direction),
        }
        return Ok(());
    }
    // The rest are media-level attributes; at session level they mean nothing to us.
    let Some(media) = session.media.last_mut() else {
        return Ok(());
    };
    let arg = arg.unwrap_or("");
    let bad = |attribute| SdpError::BadAttribute {
        line,
        attribute,
        text: arg.chars().take(64).collect(),
    };
    if matches!(name, "rtpmap" | "fmtp")
        && media.rtpmaps.len() + media.fmtps.len() >= 2 * MAX_FORMATS
    {
        return Err(SdpError::TooManyFormats {
            line,
            limit: MAX_FORMATS,
        });
    }
    match name {
        "rtpmap" => {
            let map = parse_rtpmap(arg).ok_or_else(|| bad("rtpmap"))?;
            media.rtpmaps.push(map);
        }
        "fmtp" => {
            // A format parameter we cannot attach to a payload type is of no use, but
            // also of no harm: ignore it rather than fail the call.
            if let Some((pt, params)) = arg.split_once(' ')
                && let Some(pt) = PayloadType::parse(pt)
            {
                media.fmtps.push((pt, params.trim().to_owned()));
            }
        }
        "rtcp" => {
            let (port, rest) = match arg.split_once(' ') {
                Some((port, rest)) => (port, Some(rest)),
                None => (arg, None),
            };
            let port: u16 = port.parse().map_err(|_| bad("rtcp"))?;
            let address = match rest {
                Some(rest) => Some(parse_address_fields(rest).ok_or_else(|| bad("rtcp"))?),
                None => None,
            };
            media.rtcp = Some((port, address));
        }
        _ => {}
    }
    Ok(())
}

fn parse_rtpmap(arg: &str) -> Option<RtpMap> {
    let (pt, rest) = arg.split_once(' ')?;
    let payload_type = PayloadType::parse(pt)?;
    let mut parts = rest.trim().split('/');
    let encoding = parts.next().filter(|name| !name.is_empty())?.to_owned();
    let clock_rate_hz: u32 = parts.next()?.parse().ok()?;
    let channels = match parts.next() {
        Some(channels) => Some(channels.parse().ok()?),
        None => None,
    };
    Some(RtpMap {
        payload_type,
        encoding,
        clock_rate_hz,
        channels,
    })
}

impl MediaDescription {
    /// The payload types in order of preference; tokens that are not RTP payload type
    /// numbers are skipped.
    pub fn payload_types(&self) -> impl Iterator<Item = PayloadType> + '_ {
        self.formats.iter().filter_map(|f| PayloadType::parse(f))
    }

    pub fn rtpmap(&self, payload_type: PayloadType) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|m| m.payload_type == payload_type)
    }

    pub fn fmtp(&self, payload_type: PayloadType) -> Option<&str> {
        self.fmtps
            .iter()
            .find(|(pt, _)| *pt == payload_type)
            .map(|(_, params)| params.as_str())
    }

    /// The codec a payload type stands for, if it is one we know.
    pub fn codec_of(&self, payload_type: PayloadType) -> Option<Codec> {
        match self.rtpmap(payload_type) {
            Some(map) => codec_of_rtpmap(map),
            // Static payload types need no rtpmap (RFC 3551 §6).
            None => Codec::ALL
                .into_iter()
                .find(|c| c.static_payload_type() == Some(payload_type.0)),
        }
    }

    /// The `telephone-event` payload type at `clock_rate_hz`, else any offered one.
    pub fn telephone_event(&self, clock_rate_hz: u32) -> Option<PayloadType> {
        let events: Vec<&RtpMap> = self
            .payload_types()
            .filter_map(|pt| self.rtpmap(pt))
            .filter(|m| m.encoding.eq_ignore_ascii_case("telephone-event"))
            .collect();
        events
            .iter()
            .find(|m| m.clock_rate_hz == clock_rate_hz)
            .or_else(|| events.first())
            .map(|m| m.payload_type)
    }

    fn is_rtp_avp(&self) -> bool {
        // AVPF (RFC 4585) is AVP plus optional feedback, which a peer must cope without.
        self.proto.eq_ignore_ascii_case("RTP/AVP") || self.proto.eq_ignore_ascii_case("RTP/AVPF")
    }
}

fn codec_of_rtpmap(map: &RtpMap) -> Option<Codec> {
    let name = map.encoding.as_str();
    let mono = matches!(map.channels, None | Some(1));
    if name.eq_ignore_ascii_case("PCMU") && map.clock_rate_hz == 8_000 && mono {
        Some(Codec::Pcmu)
    } else if name.eq_ignore_ascii_case("PCMA") && map.clock_rate_hz == 8_000 && mono {
        Some(Codec::Pcma)
    } else if name.eq_ignore_ascii_case("opus")
        && map.clock_rate_hz == 48_000
        && map.channels == Some(2)
    {
        // RFC 7587 §7: always "opus/48000/2", whatever is actually sent.
        Some(Codec::Opus)
    } else {
        None
    }
}

/// Picks the audio stream offer/answer works on: the first `m=audio` that is enabled.
/// Returns its index.
fn audio_stream(session: &SessionDescription) -> Result<usize, SdpError> {
    let mut first_problem = None;
    for (index, media) in session.media.iter().enumerate() {
        if !media.kind.eq_ignore_ascii_case("audio") {
            continue;
        }
        if media.port == 0 {
            first_problem.get_or_insert(SdpError::AudioDisabled { line: media.line });
        } else if !media.is_rtp_avp() {
            // SRTP and WebRTC profiles: we have no keys to offer, so cannot take them.
            first_problem.get_or_insert(SdpError::UnsupportedTransport {
                line: media.line,
                proto: media.proto.clone(),
            });
        } else {
            return Ok(index);
        }
    }
    Err(first_problem.unwrap_or(SdpError::NoAudio))
}

/// Where and how the peer's audio stream is reached, with the codec chosen.
fn negotiated(
    session: &SessionDescription,
    media: &MediaDescription,
    codec: Codec,
    payload_type: PayloadType,
) -> Result<Negotiated, SdpError> {
    let address = media
        .connection
        .or(session.connection)
        .ok_or(SdpError::MissingConnection { line: media.line })?;
    let mut remote = media
        .direction
        .or(session.direction)
        .unwrap_or(Direction::SendRecv);
    let (remote_rtp, remote_rtcp) = if address.is_unspecified() {
        // Old-style hold: "send me nothing" (RFC 3264 §8.4).
        remote = remote.without_receiving();
        (None, None)
    } else if !is_one_host(address) {
        // A service streamed to a group, or bounced off a network's
        // broadcast address, would reach people who never called.
        return Err(SdpError::NotUnicast { address });
    } else {
        // RTCP goes to the media host only: an `a=rtcp` naming another
        // address would make the line report to a third party; its port is
        // taken (RFC 3605), its address not.
        let port = match media.rtcp {
            Some((port, _)) if port != 0 => port,
            _ => media.port.saturating_add(1),
        };
        (
            Some(SocketAddr::new(address, media.port)),
            Some(SocketAddr::new(address, port)),
        )
    };
    Ok(Negotiated {
        codec,
        payload_type,
        telephone_event: media.telephone_event(codec.clock_rate_hz()),
        remote_rtp,
        remote_rtcp,
        local_direction: remote.reversed(),
    })
}

/// Whether `address` is one host's: not multicast, nor the limited
/// broadcast address (a subnet's broadcast address cannot be told from here).
pub fn is_one_host(address: IpAddr) -> bool {
    match address.to_canonical() {
        IpAddr::V4(v4) => !(v4.is_multicast() || v4.is_broadcast() || v4.is_unspecified()),
        IpAddr::V6(v6) => !(v6.is_multicast() || v6.is_unspecified()),
    }
}

/// Answers an offer with the caller's first preferred codec that is in `codecs`.
///
/// Returns what was agreed and the answer body (CRLF line ends).
pub fn answer(
    offer: &SessionDescription,
    codecs: &[Codec],
    local: &LocalMedia,
) -> Result<(Negotiated, String), SdpError> {
    let chosen = audio_stream(offer)?;
    let media = &offer.media[chosen];
    let (codec, payload_type) = media
        .payload_types()
        .find_map(|pt| {
            media
                .codec_of(pt)
                .filter(|c| codecs.contains(c))
                .map(|c| (c, pt))
        })
        .ok_or(SdpError::NoCommonCodec)?;
    let negotiated = negotiated(offer, media, codec, payload_type)?;

    let mut body = session_header(local);
    for (index, offered) in offer.media.iter().enumerate() {
        if index != chosen {
            // Rejected: port 0, same media and formats as offered (RFC 3264 §6).
            let _ = write!(
                body,
                "m={} 0 {} {}\r\n",
                offered.kind,
                offered.proto,
                offered.formats.join(" ")
            );
            continue;
        }
        let mut formats = payload_type.to_string();
        if let Some(te) = negotiated.telephone_event {
            let _ = write!(formats, " {te}");
        }
        let _ = write!(
            body,
            "m=audio {} {} {formats}\r\n",
            local.rtp_port, media.proto
        );
        write_rtpmap(&mut body, payload_type, codec);
        if codec == Codec::Opus {
            let _ = write!(body, "a=fmtp:{payload_type} {OPUS_FMTP}\r\n");
        }
        if let Some(te) = negotiated.telephone_event {
            let clock = media.rtpmap(te).map_or(8_000, |m| m.clock_rate_hz);
            // Echo the caller's event list: every keypad digit is in any list a phone
            // offers, and some gateways dislike an answer listing events they did not.
            let events = media.fmtp(te).unwrap_or(EVENTS);
            let _ = write!(
                body,
                "a=rtpmap:{te} telephone-event/{clock}\r\na=fmtp:{te} {events}\r\n"
            );
        }
        let _ = write!(
            body,
            "a=ptime:20\r\na={}\r\n",
            negotiated.local_direction.attribute()
        );
    }
    Ok((negotiated, body))
}

/// An offer of `codecs` in order, with telephone-event, for an outgoing call.
pub fn offer(codecs: &[Codec], local: &LocalMedia) -> String {
    let payload_type = |codec: Codec| codec.static_payload_type().unwrap_or(OFFER_OPUS_PT);
    let has_opus = codecs.contains(&Codec::Opus);
    let mut formats: Vec<String> = codecs
        .iter()
        .map(|c| payload_type(*c).to_string())
        .collect();
    formats.push(OFFER_EVENT_8K_PT.to_string());
    if has_opus {
        formats.push(OFFER_EVENT_48K_PT.to_string());
    }

    let mut body = session_header(local);
    let _ = write!(
        body,
        "m=audio {} RTP/AVP {}\r\n",
        local.rtp_port,
        formats.join(" ")
    );
    for codec in codecs {
        write_rtpmap(&mut body, PayloadType(payload_type(*codec)), *codec);
        if *codec == Codec::Opus {
            let _ = write!(body, "a=fmtp:{OFFER_OPUS_PT} {OPUS_FMTP}\r\n");
        }
    }
    let _ = write!(
        body,
        "a=rtpmap:{OFFER_EVENT_8K_PT} telephone-event/8000\r\na=fmtp:{OFFER_EVENT_8K_PT} {EVENTS}\r\n"
    );
    if has_opus {
        let _ = write!(
            body,
            "a=rtpmap:{OFFER_EVENT_48K_PT} telephone-event/48000\r\na=fmtp:{OFFER_EVENT_48K_PT} {EVENTS}\r\n"
        );
    }
    body.push_str("a=ptime:20\r\na=sendrecv\r\n");
    body
}

/// Reads the answer to an [`offer`] of `offered`: the first codec in the answer that we
/// offered.
pub fn accept_answer(
    answer: &SessionDescription,
    offered: &[Codec],
) -> Result<Negotiated, SdpError> {
    let media = &answer.media[audio_stream(answer)?];
    let (codec, payload_type) = media
        .payload_types()
        .find_map(|pt| {
            media
                .codec_of(pt)
                .filter(|c| offered.contains(c))
                .map(|c| (c, pt))
        })
        .ok_or(SdpError::NoCommonCodec)?;
    negotiated(answer, media, codec, payload_type)
}

/// `v=` to `t=`: the session part shared by offers and answers.
fn session_header(local: &LocalMedia) -> String {
    let addrtype = match local.address {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    };
    format!(
        "v=0\r\no=dial-a-service {} {} IN {addrtype} {}\r\ns=dial-a-service\r\nc=IN {addrtype} {}\r\nt=0 0\r\n",
        local.session_id, local.session_version, local.address, local.address
    )
}

fn write_rtpmap(body: &mut String, payload_type: PayloadType, codec: Codec) {
    let channels = if codec == Codec::Opus { "/2" } else { "" };
    let _ = write!(
        body,
        "a=rtpmap:{payload_type} {}/{}{channels}\r\n",
        codec.encoding_name(),
        codec.clock_rate_hz()
    );
}

// The tests carry real peers' offers and would double this file.
#[cfg(test)]
mod tests;

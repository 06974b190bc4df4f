//! Framing SIP messages out of a byte stream (TCP), sans-IO.
//!
//! A stream has no datagram boundaries: one read may hold half a message or
//! three. The framer takes bytes as they arrive ([`StreamFramer::push`]) and
//! hands out whole frames ([`StreamFramer::next_frame`]): `Ok(None)` means
//! *incomplete, push more*; `Err` means *invalid, close the connection*
//! (there is no way to find the next message boundary after a bad one).
//!
//! - RFC 3261 §18.3: on a stream, Content-Length is mandatory and frames the
//!   body; the header section ends at the first empty line.
//! - RFC 3261 §7.5: CRLFs before a start line are ignored.
//! - RFC 5626 §4.4.1: a double CRLF between messages is a keep-alive *ping*,
//!   answered with a single CRLF *pong*.
//!
//! Limits bound what a hostile peer can make us buffer: 64 KiB a message,
//! 16 KiB of it headers (a SIP message with SDP is a few KiB; the line
//! accepts no SDP offer over 16 KiB anyway).
//!
//! Ping or pong? Both are made of CRLFs and TCP may split them. The side
//! that accepted the connection ([`KeepAliveRole::Server`]) receives pings, so
//! it waits for a second CRLF before deciding; a split ping is still a ping.
//! The side that opened it ([`KeepAliveRole::Client`]) sends pings and waits
//! for pongs, so a lone CRLF that ends the bytes so far is reported as a pong
//! at once (its peer may send nothing else for minutes).

use std::fmt;

use super::normalise::is_token_char;

/// Largest header section accepted (start line and headers, with the
/// empty line that ends them).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Largest body accepted: together with the headers, at most 64 KiB, the
/// most a UDP datagram could carry.
pub const MAX_BODY_BYTES: usize = 48 * 1024;

/// What the framer found in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One complete SIP message: start line, headers, and exactly
    /// Content-Length bytes of body.
    Message(Vec<u8>),
    /// A CRLFCRLF keep-alive; the transport answers with a CRLF pong.
    Ping,
    /// A single CRLF between messages: the answer to our ping.
    Pong,
}

/// Which end of the connection the framer reads for (RFC 5626 §4.4.1 roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeepAliveRole {
    /// We accepted the connection: the peer may ping us.
    #[default]
    Server,
    /// We opened the connection: we ping, the peer pongs.
    Client,
}

/// Which part of a message broke a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessagePart {
    Headers,
    Body,
}

impl fmt::Display for MessagePart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MessagePart::Headers => "header section",
            MessagePart::Body => "body",
        })
    }
}

/// Why a stream cannot be framed any further. Every variant means the
/// connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("message without content-length on a stream (rfc 3261 §18.3)")]
    MissingContentLength,
    #[error("invalid content-length {value:?}")]
    InvalidContentLength { value: String },
    #[error("conflicting content-length headers {first} and {second}")]
    ConflictingContentLength { first: usize, second: usize },
    #[error("{part} larger than {limit} bytes")]
    TooLarge { part: MessagePart, limit: usize },
    #[error("byte {byte:#04x} at offset {offset} of a message is not sip")]
    Garbage { byte: u8, offset: usize },
}

/// Longest Content-Length value quoted back in an error.
const MAX_QUOTED_VALUE: usize = 32;

/// Turns a byte stream into SIP messages and keep-alives.
///
/// Call [`push`](Self::push) with each read, then [`next_frame`](Self::next_frame)
/// until it returns `Ok(None)`. After an error the framer stays failed.
#[derive(Debug)]
pub struct StreamFramer {
    role: KeepAliveRole,
    buf: Vec<u8>,
    /// First byte of `buf` not yet handed out.
    start: usize,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Between messages, skipping keep-alive line ends; `blank_line` when
    /// one line end has been seen and the next decides ping or pong.
    Between {
        blank_line: bool,
    },
    /// Inside a header section starting at `start`; the first `scanned`
    /// bytes hold no end of headers.
    Headers {
        scanned: usize,
    },
    /// Headers done; the whole message is `len` bytes from `start`.
    Body {
        len: usize,
    },
    Failed(FramingError),
}

impl Default for StreamFramer {
    fn default() -> Self {
        StreamFramer::new(KeepAliveRole::default())
    }
}

impl StreamFramer {
    pub fn new(role: KeepAliveRole) -> Self {
        StreamFramer {
            role,
            buf: Vec::new(),
            start: 0,
            state: State::Between { blank_line: false },
        }
    }

    /// Appends bytes read from the stream. Ignored once the framer failed.
    pub fn push(&mut self, bytes: &[u8]) {
        if matches!(self.state, State::Failed(_)) {
            return;
        }
        // Drop what was handed out; offsets in `state` are relative to
        // `start`, so they stay valid.
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes pushed but not yet handed out as a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete frame; `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FramingError> {
        let result = self.step();
        if let Err(error) = &result {
            self.state = State::Failed(error.clone());
            self.buf = Vec::new();
            self.start = 0;
        }
        result
    }

    fn step(&mut self) -> Result<Option<Frame>, FramingError> {
        loop {
            match self.state {
                State::Failed(ref error) => return Err(error.clone()),
                State::Between { blank_line } => {
                    let line_end = match &self.buf[self.start..] {
                        [] | [b'\r'] => return Ok(None),
                        [b'\r', b'\n', ..] => 2,
                        [b'\n', ..] => 1,
                        _ => {
                            self.state = State::Headers { scanned: 0 };
                            if blank_line {
                                return Ok(Some(Frame::Pong));
                            }
                            continue;
                        }
                    };
                    self.start += line_end;
                    if blank_line {
                        self.state = State::Between { blank_line: false };
                        return Ok(Some(Frame::Ping));
                    }
                    if self.role == KeepAliveRole::Client && self.buffered() == 0 {
                        return Ok(Some(Frame::Pong));
                    }
                    self.state = State::Between { blank_line: true };
                }
                State::Headers { scanned } => {
                    let message = &self.buf[self.start..];
                    match find_header_end(message, scanned)? {
                        HeaderEnd::Found(header_len) => {
                            if header_len > MAX_HEADER_BYTES {
                                return Err(too_large(MessagePart::Headers));
                            }
                            let body_len = content_length(&message[..header_len])?;
                            self.state = State::Body {
                                len: header_len + body_len,
                            };
                        }
                        HeaderEnd::NotYet(scanned) => {
                            if scanned > MAX_HEADER_BYTES {
                                return Err(too_large(MessagePart::Headers));
                            }
                            self.state = State::Headers { scanned };
                            return Ok(None);
                        }
                    }
                }
                State::Body { len } => {
                    if self.buffered() < len {
                        return Ok(None);
                    }
                    let message = self.buf[self.start..self.start + len].to_vec();
                    self.start += len;
                    self.state = State::Between { blank_line: false };
                    return Ok(Some(Frame::Message(message)));
                }
            }
        }
    }
}

fn too_large(part: MessagePart) -> FramingError {
    let limit = match part {
        MessagePart::Headers => MAX_HEADER_BYTES,
        MessagePart::Body => MAX_BODY_BYTES,
    };
    FramingError::TooLarge { part, limit }
}

enum HeaderEnd {
    /// The header section, with its empty line, is this long.
    Found(usize),
    /// Not found yet; resume scanning here.
    NotYet(usize),
}

/// Looks for the empty line ending the header section from `from` on,
/// accepting CRLF or bare LF line ends, and rejects bytes no SIP header
/// section holds (so a TLS or binary client is dropped at once, not after
/// 64 KiB).
fn find_header_end(message: &[u8], from: usize) -> Result<HeaderEnd, FramingError> {
    if let Some(&first) = message.first()
        && from == 0
        && !is_token_char(char::from(first))
    {
        // A start line begins with a method (a token) or "SIP/2.0".
        return Err(FramingError::Garbage {
            byte: first,
            offset: 0,
        });
    }
    for (offset, &byte) in message.iter().enumerate().skip(from) {
        match byte {
            b'\n' => match (message.get(offset + 1), message.get(offset + 2)) {
                (Some(b'\n'), _) => return Ok(HeaderEnd::Found(offset + 2)),
                (Some(b'\r'), Some(b'\n')) => return Ok(HeaderEnd::Found(offset + 3)),
                // Undecided until the next bytes arrive: rescan this LF.
                (None, _) | (Some(b'\r'), None) => return Ok(HeaderEnd::NotYet(offset)),
                _ => {}
            },
            // TEXT-UTF8 and the rest of the RFC 3261 §25 grammar exclude
            // control characters other than HTAB and the line ends.
            b'\r' | b'\t' => {}
            0x00..=0x1f | 0x7f => return Err(FramingError::Garbage { byte, offset }),
            _ => {}
        }
    }
    Ok(HeaderEnd::NotYet(message.len()))
}

/// The body length declared by the header section (which ends with its
/// empty line). Folded header lines (§7.3.1) are joined first.
fn content_length(head: &[u8]) -> Result<usize, FramingError> {
    let mut declared: Option<usize> = None;
    let mut header: Vec<u8> = Vec::new();
    let mut check = |header: &[u8]| -> Result<(), FramingError> {
        if let Some(length) = content_length_of(header)? {
            match declared {
                Some(first) if first != length => {
                    return Err(FramingError::ConflictingContentLength {
                        first,
                        second: length,
                    });
                }
                _ => declared = Some(length),
            }
        }
        Ok(())
    };
    // Skip the start line; the empty line at the end yields empty pieces.
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            header.push(b' ');
            header.extend_from_slice(line);
            continue;
        }
        check(&header)?;
        header.clear();
        header.extend_from_slice(line);
    }
    check(&header)?;
    declared.ok_or(FramingError::MissingContentLength)
}

/// `Some(length)` when `header` is a Content-Length (or compact `l`) header.
fn content_length_of(header: &[u8]) -> Result<Option<usize>, FramingError> {
    let Some(colon) = header.iter().position(|&b| b == b':') else {
        return Ok(None);
    };
    let name = header[..colon].trim_ascii();
    if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
        return Ok(None);
    }
    let value = header[colon + 1..].trim_ascii();
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        let shown = &value[..value.len().min(MAX_QUOTED_VALUE)];
        return Err(FramingError::InvalidContentLength {
            value: String::from_utf8_lossy(shown).into_owned(),
        });
    }
    let mut length: usize = 0;
    for &digit in value {
        length = length
            .checked_mul(10)
            .and_then(|l| l.checked_add(usize::from(digit - b'0')))
            .filter(|&l| l <= MAX_BODY_BYTES)
            .ok_or_else(|| too_large(MessagePart::Body))?;
    }
    Ok(Some(length))
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:line@example.com SIP/2.0\r\n\
        Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK1\r\n\
        Call-ID: a@b\r\n\
        CSeq: 1 OPTIONS\r\n\
        Content-Length: 0\r\n\r\n";

    fn with_body(body: &[u8]) -> Vec<u8> {
        let mut message = format!(
            "INVITE sip:line@example.com SIP/2.0\r\nCall-ID: c@d\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        message.extend_from_slice(body);
        message
    }

    /// Everything the framer hands out until it needs more bytes.
    fn drain(framer: &mut StreamFramer) -> Result<Vec<Frame>, FramingError> {
        let mut frames = Vec::new();
        while let Some(frame) = framer.next_frame()? {
            frames.push(frame);
        }
        Ok(frames)
    }

    fn frame_all(role: KeepAliveRole, bytes: &[u8]) -> Result<Vec<Frame>, FramingError> {
        let mut framer = StreamFramer::new(role);
        framer.push(bytes);
        drain(&mut framer)
    }

    fn first_error(bytes: &[u8]) -> FramingError {
        frame_all(KeepAliveRole::Server, bytes).expect_err("framing must fail")
    }

    #[test]
    fn a_message_split_at_every_byte_position_is_framed_once() {
        let message = with_body(b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n");
        for cut in 0..=message.len() {
            let mut framer = StreamFramer::default();
            framer.push(&message[..cut]);
            let mut frames = drain(&mut framer).unwrap();
            if cut < message.len() {
                assert!(frames.is_empty(), "complete after only {cut} bytes");
            }
            framer.push(&message[cut..]);
            frames.extend(drain(&mut framer).unwrap());
            assert_eq!(
                frames,
                vec![Frame::Message(message.clone())],
                "cut at {cut}"
            );
            assert_eq!(framer.buffered(), 0);
        }
    }

    #[test]
    fn a_message_fed_one_byte_at_a_time_is_framed_once() {
        let message = with_body(b"hello");
        let mut framer = StreamFramer::default();
        let mut frames = Vec::new();
        for byte in &message {
            framer.push(std::slice::from_ref(byte));
            frames.extend(drain(&mut framer).unwrap());
        }
        assert_eq!(frames, vec![Frame::Message(message)]);
    }

    #[test]
    fn three_coalesced_messages_in_one_push() {
        let second = with_body(b"abc");
        let third = with_body(b"");
        let stream = [OPTIONS, &second, &third].concat();
        assert_eq!(
            frame_all(KeepAliveRole::Server, &stream).unwrap(),
            vec![
                Frame::Message(OPTIONS.to_vec()),
                Frame::Message(second),
                Frame::Message(third),
            ]
        );
    }

    #[test]
    fn a_body_containing_crlfcrlf_is_not_cut() {
        let message = with_body(b"v=0\r\n\r\n\r\n\r\nend");
        let stream = [&message[..], OPTIONS].concat();
        assert_eq!(
            frame_all(KeepAliveRole::Server, &stream).unwrap(),
            vec![Frame::Message(message), Frame::Message(OPTIONS.to_vec())]
        );
    }

    #[test]
    fn bare_lf_line_ends_and_compact_spaced_content_length() {
        let message = b"MESSAGE sip:a@b SIP/2.0\nCall-ID: x\nL :  4 \n\nbodyNEXT".to_vec();
        let frames = frame_all(KeepAliveRole::Server, &message).unwrap();
        assert_eq!(
            frames,
            vec![Frame::Message(message[..message.len() - 4].to_vec())]
        );
        let folded = b"INFO sip:a@b SIP/2.0\r\ncontent-LENGTH:\r\n  2\r\n\r\nhi";
        assert_eq!(
            frame_all(KeepAliveRole::Server, folded).unwrap(),
            vec![Frame::Message(folded.to_vec())]
        );
    }

    #[test]
    fn a_response_is_framed_like_a_request() {
        let response = b"SIP/2.0 200 OK\r\nCall-ID: x\r\nl: 0\r\n\r\n";
        assert_eq!(
            frame_all(KeepAliveRole::Client, response).unwrap(),
            vec![Frame::Message(response.to_vec())]
        );
    }

    #[test]
    fn ping_and_pong_between_messages() {
        let stream = [&b"\r\n\r\n"[..], OPTIONS, b"\r\n", OPTIONS, b"\r\n\r\n\r\n"].concat();
        assert_eq!(
            frame_all(KeepAliveRole::Server, &stream).unwrap(),
            vec![
                Frame::Ping,
                Frame::Message(OPTIONS.to_vec()),
                Frame::Pong,
                Frame::Message(OPTIONS.to_vec()),
                Frame::Ping,
            ]
        );
    }

    #[test]
    fn a_server_waits_to_tell_a_split_ping_from_a_pong() {
        let mut framer = StreamFramer::new(KeepAliveRole::Server);
        framer.push(b"\r\n");
        assert_eq!(framer.next_frame(), Ok(None));
        framer.push(b"\r");
        assert_eq!(framer.next_frame(), Ok(None));
        framer.push(b"\n");
        assert_eq!(framer.next_frame(), Ok(Some(Frame::Ping)));
        assert_eq!(framer.next_frame(), Ok(None));
    }

    #[test]
    fn a_client_reports_a_lone_crlf_as_a_pong_at_once() {
        let mut framer = StreamFramer::new(KeepAliveRole::Client);
        framer.push(b"\r\n");
        assert_eq!(framer.next_frame(), Ok(Some(Frame::Pong)));
        assert_eq!(framer.next_frame(), Ok(None));
        // The next pong, much later, is a pong again, not half a ping.
        framer.push(b"\r\n");
        assert_eq!(framer.next_frame(), Ok(Some(Frame::Pong)));
        // A whole ping in one read is still a ping.
        framer.push(b"\r\n\r\n");
        assert_eq!(framer.next_frame(), Ok(Some(Frame::Ping)));
        assert_eq!(framer.next_frame(), Ok(None));
    }

    #[test]
    fn missing_content_length_fails() {
        let message = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\nX-Content-Length: 3\r\n\r\n";
        assert_eq!(first_error(message), FramingError::MissingContentLength);
        // An HTTP client gets the same answer, not a hang.
        assert_eq!(
            first_error(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            FramingError::MissingContentLength
        );
    }

    #[test]
    fn invalid_and_negative_content_length_fail() {
        for value in ["", "abc", "-1", "+3", "1 2", "0x10", "3.0"] {
            let message = format!("OPTIONS sip:a@b SIP/2.0\r\nContent-Length: {value}\r\n\r\n");
            assert_eq!(
                first_error(message.as_bytes()),
                FramingError::InvalidContentLength {
                    value: value.to_owned()
                },
                "{value:?}"
            );
        }
    }

    #[test]
    fn conflicting_content_lengths_fail() {
        let message = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 3\r\nl: 5\r\n\r\nabcde";
        assert_eq!(
            first_error(message),
            FramingError::ConflictingContentLength {
                first: 3,
                second: 5
            }
        );
        let repeated = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 3\r\nl: 3\r\n\r\nabc";
        assert_eq!(
            frame_all(KeepAliveRole::Server, repeated).unwrap(),
            vec![Frame::Message(repeated.to_vec())]
        );
    }

    #[test]
    fn huge_content_length_fails_before_any_body_arrives() {
        let body_too_large = FramingError::TooLarge {
            part: MessagePart::Body,
            limit: MAX_BODY_BYTES,
        };
        for value in [
            (MAX_BODY_BYTES + 1).to_string(),
            "99999999999999999999999999999".to_owned(),
        ] {
            let message = format!("OPTIONS sip:a@b SIP/2.0\r\nContent-Length: {value}\r\n\r\n");
            assert_eq!(first_error(message.as_bytes()), body_too_large);
        }
        let largest = with_body(&vec![b'x'; MAX_BODY_BYTES]);
        assert_eq!(
            frame_all(KeepAliveRole::Server, &largest).unwrap(),
            vec![Frame::Message(largest)]
        );
    }

    #[test]
    fn endless_headers_fail_at_the_limit() {
        let mut framer = StreamFramer::default();
        framer.push(b"OPTIONS sip:a@b SIP/2.0\r\n");
        let line = b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        let mut result = Ok(None);
        for _ in 0..(MAX_HEADER_BYTES / line.len() + 2) {
            framer.push(line);
            result = framer.next_frame();
            if result.is_err() {
                break;
            }
        }
        assert_eq!(
            result,
            Err(FramingError::TooLarge {
                part: MessagePart::Headers,
                limit: MAX_HEADER_BYTES
            })
        );
        assert!(framer.buffered() == 0, "a failed framer keeps no buffer");
    }

    #[test]
    fn garbage_fails_and_the_framer_stays_failed() {
        // A TLS ClientHello on the plain TCP port.
        assert_eq!(
            first_error(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
            FramingError::Garbage {
                byte: 0x16,
                offset: 0
            }
        );
        assert_eq!(
            first_error(b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: \x00\r\n"),
            FramingError::Garbage {
                byte: 0,
                offset: 34
            }
        );
        let mut framer = StreamFramer::default();
        framer.push(b"\r\n\r\n\x01");
        assert_eq!(framer.next_frame(), Ok(Some(Frame::Ping)));
        let error = framer.next_frame().unwrap_err();
        framer.push(OPTIONS);
        assert_eq!(framer.next_frame(), Err(error));
    }

    #[test]
    fn random_chunking_yields_the_same_frames() {
        let mut rng = StdRng::seed_from_u64(0x51f_7c9);
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for i in 0..200 {
            match rng.random_range(0..5) {
                0 => {
                    stream.extend_from_slice(b"\r\n\r\n");
                    expected.push(Frame::Ping);
                }
                _ => {
                    let body: Vec<u8> = (0..rng.random_range(0..300))
                        .map(|_| b"ab\r\n"[rng.random_range(0..4)])
                        .collect();
                    let message = if i % 7 == 0 {
                        OPTIONS.to_vec()
                    } else {
                        with_body(&body)
                    };
                    stream.extend_from_slice(&message);
                    expected.push(Frame::Message(message));
                }
            }
        }
        for _ in 0..20 {
            let mut framer = StreamFramer::new(KeepAliveRole::Server);
            let mut frames = Vec::new();
            let mut rest = &stream[..];
            while !rest.is_empty() {
                let (chunk, tail) = rest.split_at(rng.random_range(1..=rest.len().min(700)));
                framer.push(chunk);
                frames.extend(drain(&mut framer).unwrap());
                rest = tail;
            }
            assert_eq!(frames, expected);
        }
    }

    #[test]
    fn random_and_mutated_input_never_panics() {
        let mut rng = StdRng::seed_from_u64(42);
        let valid = [&b"\r\n\r\n"[..], &with_body(b"v=0\r\n"), OPTIONS, b"\r\n"].concat();
        for _ in 0..2000 {
            let mut bytes = if rng.random_bool(0.5) {
                valid.clone()
            } else {
                (0..rng.random_range(0..200))
                    .map(|_| rng.random())
                    .collect()
            };
            for _ in 0..rng.random_range(0..4) {
                if !bytes.is_empty() {
                    let at = rng.random_range(0..bytes.len());
                    let alphabet = b"\r\n:0123456789lL -x\0";
                    bytes[at] = alphabet[rng.random_range(0..alphabet.len())];
                }
            }
            let role = if rng.random_bool(0.5) {
                KeepAliveRole::Server
            } else {
                KeepAliveRole::Client
            };
            let mut framer = StreamFramer::new(role);
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let (chunk, tail) = rest.split_at(rng.random_range(1..=rest.len()));
                framer.push(chunk);
                if drain(&mut framer).is_err() {
                    break;
                }
                rest = tail;
            }
        }
    }
}

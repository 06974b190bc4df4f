//! A TCP byte stream: `StreamFramer` fed in chunks the fuzzer chooses, with
//! either keep-alive role; every framed message is then parsed like a
//! datagram.
//!
//! Input: one byte for the role, then chunks, each one byte of length
//! (0 stands for "the rest") and that many bytes.
//!
//! Invariants: a frame keeps the documented limits (64 KiB of headers,
//! 1 MiB of body) and carries exactly its Content-Length of body; the
//! framer never holds more than one message's worth once it asks for
//! more bytes; it stays failed after an error; and for the server role
//! (which waits to tell ping from pong) the frames do not depend on how
//! the stream was cut.

#![no_main]

use dial_a_service::sip::framing::{
    Frame, FramingError, KeepAliveRole, MAX_BODY_BYTES, MAX_HEADER_BYTES, StreamFramer,
};
use dial_a_service_fuzz::script::Script;
use libfuzzer_sys::fuzz_target;

/// Frames `chunks` in order; the frames until the first error, and the error.
fn frame(role: KeepAliveRole, chunks: &[&[u8]]) -> (Vec<Frame>, Option<FramingError>) {
    let mut framer = StreamFramer::new(role);
    let mut frames = Vec::new();
    for chunk in chunks {
        framer.push(chunk);
        loop {
            match framer.next_frame() {
                Ok(Some(frame)) => {
                    check(&frame);
                    frames.push(frame);
                }
                Ok(None) => {
                    assert!(
                        framer.buffered() <= MAX_HEADER_BYTES + MAX_BODY_BYTES,
                        "{} bytes held waiting for more",
                        framer.buffered()
                    );
                    break;
                }
                Err(error) => {
                    // Failed for good: no more frames, nothing more buffered.
                    framer.push(b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n");
                    assert_eq!(framer.next_frame(), Err(error.clone()));
                    assert_eq!(framer.buffered(), 0);
                    return (frames, Some(error));
                }
            }
        }
    }
    (frames, None)
}

/// A message frame holds a header section within its limit and a body of
/// the declared length within its limit, and is handed to the parser.
fn check(frame: &Frame) {
    let Frame::Message(message) = frame else {
        return;
    };
    let head_end = message
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| i + 2)
        .into_iter()
        .chain(
            message
                .windows(3)
                .position(|w| w == b"\n\r\n")
                .map(|i| i + 3),
        )
        .min()
        .expect("a framed message has an empty line ending its headers");
    assert!(
        head_end <= MAX_HEADER_BYTES,
        "header section of {head_end} bytes"
    );
    assert!(
        message.len() - head_end <= MAX_BODY_BYTES,
        "body of {} bytes",
        message.len() - head_end
    );
    dial_a_service_fuzz::sip::exercise(message);
}

fuzz_target!(|data: &[u8]| {
    let mut script = Script::new(data);
    let role = if script.flag() {
        KeepAliveRole::Client
    } else {
        KeepAliveRole::Server
    };
    let mut chunks = Vec::new();
    while !script.is_empty() {
        let chunk = match script.byte() {
            0 => script.rest(),
            len => script.bytes(usize::from(len)),
        };
        chunks.push(chunk);
    }
    let (frames, error) = frame(role, &chunks);
    if role == KeepAliveRole::Server {
        let whole = chunks.concat();
        let (at_once, at_once_error) = frame(role, &[&whole]);
        // A limit may be noticed at a different byte when the stream is cut
        // (too large before the garbage after it), so only whether it failed
        // must agree, and the frames before.
        let n = frames.len().min(at_once.len());
        assert_eq!(frames[..n], at_once[..n], "frames depend on the cuts");
        assert_eq!(
            error.is_some(),
            at_once_error.is_some(),
            "{error:?} vs {at_once_error:?}"
        );
        if error.is_none() {
            assert_eq!(frames, at_once, "frames depend on the cuts");
        }
    }
});

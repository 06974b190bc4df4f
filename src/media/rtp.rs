//! RTP packetisation (RFC 3550 §5.1) of 20 ms frames, parsing of received
//! RTP, and the RFC 4733 §2.3 telephone-event payload.
//!
//! The packet layout comes from rtp-rs (`RtpPacketBuilder::build_into`, which
//! writes into a caller's buffer without allocating, and `RtpReader`, which
//! borrows). What rtp-rs leaves to us is the stream state: a random SSRC,
//! random initial sequence number and timestamp (RFC 3550 §5.1, to make
//! known-plaintext attacks and collisions harder), the timestamp advancing by
//! the codec clock per frame, and the marker bit on the first packet of a
//! talkspurt (RFC 3551 §4.1): the first packet, and the first after a pause.
//! rtp-rs has no RFC 4733 support; its payload is four bytes, parsed here.

use rtp_rs::{RtpPacketBuildError, RtpPacketBuilder, RtpReader, RtpReaderError, Seq};

/// The synchronisation source identifier of one RTP stream (RFC 3550 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ssrc(pub u32);

/// An RTP payload type, 0–127 (RFC 3550 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PayloadType(pub u8);

impl PayloadType {
    /// A payload type number as SDP writes it (`m=` formats, `a=rtpmap`,
    /// `a=fmtp`); `None` for anything else or above 127.
    pub fn parse(text: &str) -> Option<PayloadType> {
        text.parse::<u8>()
            .ok()
            .filter(|pt| *pt < 128)
            .map(PayloadType)
    }
}

impl std::fmt::Display for PayloadType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The RTP fixed header: 12 bytes (RFC 3550 §5.1); we send no CSRCs or
/// extensions.
pub const HEADER_LEN: usize = 12;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RtpError {
    #[error("rtp packet of {needed} bytes does not fit a buffer of {available}")]
    BufferTooSmall { needed: usize, available: usize },
    #[error("payload type {0} is outside 0-127")]
    InvalidPayloadType(u8),
    #[error("datagram of {len} bytes is not a valid rtp packet: {reason}")]
    Malformed { len: usize, reason: &'static str },
    #[error("rtp version {0} is not 2")]
    UnsupportedVersion(u8),
    #[error("telephone-event payload of {0} bytes is shorter than 4")]
    ShortTelephoneEvent(usize),
}

/// Turns frames of one stream into RTP packets.
///
/// Sequence numbers and timestamps wrap modulo 2^16 and 2^32, as RFC 3550
/// intends; a 90-minute service at 48 kHz passes 2^32 only after ~24 h, but
/// the random start can put the wrap anywhere.
#[derive(Debug, Clone)]
pub struct Packetizer {
    ssrc: Ssrc,
    payload_type: PayloadType,
    samples_per_frame: u32,
    sequence: u16,
    timestamp: u32,
    mark: bool,
    packets_sent: u32,
    octets_sent: u32,
}

impl Packetizer {
    /// A stream with random SSRC, sequence number and timestamp.
    pub fn new(payload_type: PayloadType, samples_per_frame: u32) -> Self {
        Self::with_initial(
            payload_type,
            samples_per_frame,
            Ssrc(rand::random()),
            rand::random(),
            rand::random(),
        )
    }

    /// A stream with the given starting values (tests, reproducible runs).
    pub fn with_initial(
        payload_type: PayloadType,
        samples_per_frame: u32,
        ssrc: Ssrc,
        sequence: u16,
        timestamp: u32,
    ) -> Self {
        Packetizer {
            ssrc,
            payload_type,
            samples_per_frame,
            sequence,
            timestamp,
            mark: true,
            packets_sent: 0,
            octets_sent: 0,
        }
    }

    /// Writes one frame as an RTP packet into `out`, returning its length,
    /// and steps the sequence number by one and the timestamp by one frame.
    pub fn write_packet(&mut self, payload: &[u8], out: &mut [u8]) -> Result<usize, RtpError> {
        let len = RtpPacketBuilder::new()
            .payload_type(self.payload_type.0)
            .ssrc(self.ssrc.0)
            .sequence(Seq::from(self.sequence))
            .timestamp(self.timestamp)
            .marked(self.mark)
            .payload(payload)
            .build_into(out)
            .map_err(|e| match e {
                RtpPacketBuildError::PayloadTypeInvalid => {
                    RtpError::InvalidPayloadType(self.payload_type.0)
                }
                // We set no extension, so only the size can be wrong.
                _ => RtpError::BufferTooSmall {
                    needed: HEADER_LEN + payload.len(),
                    available: out.len(),
                },
            })?;
        self.mark = false;
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(self.samples_per_frame);
        // RFC 3550 §6.4.1: the counts wrap; receivers compute differences.
        self.packets_sent = self.packets_sent.wrapping_add(1);
        self.octets_sent = self.octets_sent.wrapping_add(payload.len() as u32);
        Ok(len)
    }

    /// Sets the marker bit on the next packet: the first after a pause,
    /// so the receiver re-syncs its playout (RFC 3551 §4.1).
    pub fn mark_next(&mut self) {
        self.mark = true;
    }

    /// Advances the timestamp over `frames` frames that are not sent (hold,
    /// a decoder behind): the sequence number stays contiguous, so the
    /// receiver sees a silence rather than a loss (RFC 3550 §5.1).
    pub fn skip_frames(&mut self, frames: u32) {
        self.timestamp = self
            .timestamp
            .wrapping_add(self.samples_per_frame.wrapping_mul(frames));
    }

    pub fn ssrc(&self) -> Ssrc {
        self.ssrc
    }

    pub fn payload_type(&self) -> PayloadType {
        self.payload_type
    }

    /// The sequence number the next packet will carry.
    pub fn next_sequence(&self) -> u16 {
        self.sequence
    }

    /// The timestamp the next packet will carry.
    pub fn next_timestamp(&self) -> u32 {
        self.timestamp
    }

    pub fn samples_per_frame(&self) -> u32 {
        self.samples_per_frame
    }

    /// The sender's packet count of RFC 3550 §6.4.1.
    pub fn packets_sent(&self) -> u32 {
        self.packets_sent
    }

    /// The sender's octet count of RFC 3550 §6.4.1: payload bytes only.
    pub fn octets_sent(&self) -> u32 {
        self.octets_sent
    }
}

/// The fields of a received RTP packet; `payload` borrows the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader<'a> {
    pub ssrc: Ssrc,
    pub sequence: u16,
    pub timestamp: u32,
    pub payload_type: PayloadType,
    pub marker: bool,
    pub payload: &'a [u8],
}

/// Parses a received datagram as RTP version 2.
///
/// Does not tell RTP from RTCP: both are version 2. A caller on a shared port
/// checks [`super::rtcp::is_rtcp`] first (RFC 5761 §4).
pub fn parse(datagram: &[u8]) -> Result<RtpHeader<'_>, RtpError> {
    let reader = RtpReader::new(datagram).map_err(|e| {
        let reason = match e {
            RtpReaderError::UnsupportedVersion(v) => return RtpError::UnsupportedVersion(v),
            RtpReaderError::BufferTooShort(_) => "shorter than the fixed header",
            RtpReaderError::HeadersTruncated { .. } => "headers truncated",
            RtpReaderError::PaddingLengthInvalid(_) => "invalid padding length",
        };
        RtpError::Malformed {
            len: datagram.len(),
            reason,
        }
    })?;
    Ok(RtpHeader {
        ssrc: Ssrc(reader.ssrc()),
        sequence: u16::from(reader.sequence_number()),
        timestamp: reader.timestamp(),
        payload_type: PayloadType(reader.payload_type()),
        marker: reader.mark(),
        payload: reader.payload(),
    })
}

/// One RFC 4733 §2.3 telephone-event payload (a DTMF digit is events 0–15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub event: u8,
    /// Set on the last packets of the event (sent three times, §2.5.1.4).
    pub end: bool,
    /// Power level in -dBm0, 0–63.
    pub volume: u8,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses the first four bytes of a telephone-event payload:
    /// `event(8) E(1) R(1) volume(6) duration(16)`.
    pub fn parse(payload: &[u8]) -> Result<TelephoneEvent, RtpError> {
        let &[event, flags, d0, d1, ..] = payload else {
            return Err(RtpError::ShortTelephoneEvent(payload.len()));
        };
        Ok(TelephoneEvent {
            event,
            end: flags & 0x80 != 0,
            // The R bit (0x40) is reserved and ignored by receivers.
            volume: flags & 0x3f,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packetizer() -> Packetizer {
        Packetizer::with_initial(PayloadType(0), 160, Ssrc(0xdead_beef), 0xfffe, 0xffff_ff00)
    }

    #[test]
    fn packets_step_sequence_and_timestamp_and_mark_only_the_first() {
        let mut p = packetizer();
        let mut buf = [0u8; 200];
        let mut seen = Vec::new();
        for i in 0..3u8 {
            let len = p.write_packet(&[i; 160], &mut buf).unwrap();
            assert_eq!(len, HEADER_LEN + 160);
            let h = parse(&buf[..len]).unwrap();
            assert_eq!(h.ssrc, Ssrc(0xdead_beef));
            assert_eq!(h.payload_type, PayloadType(0));
            assert_eq!(h.payload, &[i; 160][..]);
            seen.push((h.sequence, h.timestamp, h.marker));
        }
        // Both counters wrap.
        assert_eq!(
            seen,
            vec![
                (0xfffe, 0xffff_ff00, true),
                (0xffff, 0xffff_ffa0, false),
                (0x0000, 0x0000_0040, false),
            ]
        );
        assert_eq!(p.packets_sent(), 3);
        assert_eq!(p.octets_sent(), 480);
    }

    #[test]
    fn header_bytes_match_rfc_3550_layout() {
        let mut p = Packetizer::with_initial(PayloadType(111), 960, Ssrc(0x0102_0304), 0x0a0b, 7);
        let mut buf = [0u8; 32];
        let len = p.write_packet(&[0xaa, 0xbb], &mut buf).unwrap();
        assert_eq!(
            &buf[..len],
            &[
                0x80,
                0x80 | 111,
                0x0a,
                0x0b,
                0,
                0,
                0,
                7,
                1,
                2,
                3,
                4,
                0xaa,
                0xbb
            ]
        );
        let len = p.write_packet(&[], &mut buf).unwrap();
        // No marker; timestamp + 960 (Opus, 20 ms at 48 kHz).
        assert_eq!(
            &buf[..len],
            &[0x80, 111, 0x0a, 0x0c, 0, 0, 3, 0xc7, 1, 2, 3, 4]
        );
    }

    #[test]
    fn skip_and_mark_next_resume_after_a_pause() {
        let mut p = packetizer();
        let mut buf = [0u8; 200];
        p.write_packet(&[0; 160], &mut buf).unwrap();
        p.skip_frames(10);
        p.mark_next();
        let len = p.write_packet(&[0; 160], &mut buf).unwrap();
        let h = parse(&buf[..len]).unwrap();
        assert_eq!(h.sequence, 0xffff, "skipped frames use no sequence numbers");
        assert_eq!(h.timestamp, 0xffff_ff00u32.wrapping_add(11 * 160));
        assert!(h.marker);
        assert_eq!(p.packets_sent(), 2);
    }

    #[test]
    fn errors_instead_of_panics() {
        let mut p = packetizer();
        let mut small = [0u8; 20];
        assert_eq!(
            p.write_packet(&[0; 160], &mut small),
            Err(RtpError::BufferTooSmall {
                needed: 172,
                available: 20
            })
        );
        assert_eq!(p.next_sequence(), 0xfffe, "a failed write consumes nothing");
        let mut bad = Packetizer::with_initial(PayloadType(200), 160, Ssrc(1), 0, 0);
        assert_eq!(
            bad.write_packet(&[], &mut [0u8; 20]),
            Err(RtpError::InvalidPayloadType(200))
        );
        assert!(matches!(parse(&[0x80; 5]), Err(RtpError::Malformed { .. })));
        assert_eq!(parse(&[0x40; 12]), Err(RtpError::UnsupportedVersion(1)));
        // CSRC count 15 claims 60 header bytes the datagram lacks.
        assert!(matches!(
            parse(&[0x8f; 20]),
            Err(RtpError::Malformed { .. })
        ));
    }

    #[test]
    fn random_streams_differ() {
        let a = Packetizer::new(PayloadType(0), 160);
        let b = Packetizer::new(PayloadType(0), 160);
        // 2^-80 chance of a false failure.
        assert!(
            (a.ssrc(), a.next_sequence(), a.next_timestamp())
                != (b.ssrc(), b.next_sequence(), b.next_timestamp())
        );
    }

    #[test]
    fn telephone_event_fields() {
        // Digit 5, end, volume 10, duration 800 (RFC 4733 §2.3 figure 1).
        let e = TelephoneEvent::parse(&[5, 0x80 | 0x40 | 10, 0x03, 0x20]).unwrap();
        assert_eq!(
            e,
            TelephoneEvent {
                event: 5,
                end: true,
                volume: 10,
                duration: 800
            }
        );
        let e = TelephoneEvent::parse(&[11, 63, 0, 160, 0xff]).unwrap();
        assert!(!e.end);
        assert_eq!((e.event, e.volume, e.duration), (11, 63, 160));
        assert_eq!(
            TelephoneEvent::parse(&[1, 2, 3]),
            Err(RtpError::ShortTelephoneEvent(3))
        );
    }
}

//! The little RTCP a send-only line needs (RFC 3550 §6): a compound Sender
//! Report with an SDES CNAME (§6.1: every compound packet starts with SR or
//! RR and carries a CNAME), a BYE when the stream ends (§6.6), and enough
//! parsing to recognise RTCP arriving (packet types 200–204) and ignore it.
//!
//! Hand-written: rtp-rs has no RTCP at all, and the crates that do (webrtc's
//! `rtcp`, str0m) bring a WebRTC stack for three fixed layouts we can write
//! into a caller's buffer without allocating.
//!
//! We report no reception blocks (RC = 0): the line receives only DTMF and
//! keeps no reception statistics.

use std::time::{SystemTime, UNIX_EPOCH};

use super::rtp::Ssrc;

/// RTCP packet types of RFC 3550 §12.1.
pub const PT_SR: u8 = 200;
pub const PT_RR: u8 = 201;
pub const PT_SDES: u8 = 202;
pub const PT_BYE: u8 = 203;
pub const PT_APP: u8 = 204;

/// SDES item type of the canonical name (§6.5.1).
const SDES_CNAME: u8 = 1;

/// The longest CNAME an SDES item can carry: its length is one octet.
pub const MAX_CNAME_LEN: usize = 255;

/// Bytes of an SR without report blocks: header, SSRC, 20-byte sender info.
pub const SR_LEN: usize = 28;
/// Bytes of a BYE for one SSRC without a reason.
pub const BYE_LEN: usize = 8;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RtcpError {
    #[error("rtcp packet of {needed} bytes does not fit a buffer of {available}")]
    BufferTooSmall { needed: usize, available: usize },
    #[error("cname of {0} bytes exceeds 255")]
    CnameTooLong(usize),
    #[error("rtcp header needs 4 bytes, datagram has {0}")]
    TooShort(usize),
    #[error("rtcp version {0} is not 2")]
    UnsupportedVersion(u8),
    #[error("packet type {0} is not rtcp 200-204")]
    NotRtcp(u8),
    #[error("rtcp packet claims {claimed} bytes, {available} remain")]
    Truncated { claimed: usize, available: usize },
}

/// A 64-bit NTP timestamp: seconds since 1900 in the high word, binary
/// fraction in the low word (RFC 3550 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct NtpTimestamp(pub u64);

/// Seconds from 1900-01-01 (NTP era 0) to 1970-01-01 (Unix epoch).
const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;

impl NtpTimestamp {
    /// Converts wall-clock time. Times before 1970 (a broken clock) map to
    /// the Unix epoch rather than failing: the SR still goes out.
    pub fn from_system_time(time: SystemTime) -> NtpTimestamp {
        let since_unix = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        // Era 0 ends in 2036; wrapping is what NTP does (RFC 5905 §6).
        let seconds = since_unix.as_secs().wrapping_add(NTP_UNIX_OFFSET_SECS) & 0xffff_ffff;
        let fraction = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
        NtpTimestamp((seconds << 32) | fraction)
    }

    pub fn now() -> NtpTimestamp {
        NtpTimestamp::from_system_time(SystemTime::now())
    }

    pub fn seconds(self) -> u32 {
        (self.0 >> 32) as u32
    }

    pub fn fraction(self) -> u32 {
        self.0 as u32
    }

    /// The middle 32 bits, which receivers echo as LSR (§6.4.1).
    pub fn middle32(self) -> u32 {
        (self.0 >> 16) as u32
    }
}

/// The sender information block of an SR (§6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    pub ntp: NtpTimestamp,
    /// The RTP timestamp of the same instant as `ntp`, in the media clock.
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
}

/// Writes an SR with no report blocks; returns [`SR_LEN`].
pub fn write_sender_report(
    ssrc: Ssrc,
    info: &SenderInfo,
    out: &mut [u8],
) -> Result<usize, RtcpError> {
    let out = room(out, SR_LEN)?;
    write_header(out, 0, PT_SR, SR_LEN);
    out[4..8].copy_from_slice(&ssrc.0.to_be_bytes());
    out[8..12].copy_from_slice(&info.ntp.seconds().to_be_bytes());
    out[12..16].copy_from_slice(&info.ntp.fraction().to_be_bytes());
    out[16..20].copy_from_slice(&info.rtp_timestamp.to_be_bytes());
    out[20..24].copy_from_slice(&info.packet_count.to_be_bytes());
    out[24..28].copy_from_slice(&info.octet_count.to_be_bytes());
    Ok(SR_LEN)
}

/// Writes an SDES packet with one chunk holding only the CNAME (§6.5).
pub fn write_sdes_cname(ssrc: Ssrc, cname: &[u8], out: &mut [u8]) -> Result<usize, RtcpError> {
    if cname.len() > MAX_CNAME_LEN {
        return Err(RtcpError::CnameTooLong(cname.len()));
    }
    // Header, SSRC, item type and length, text, then at least one null
    // octet ending the item list, padded to a 32-bit boundary (§6.5).
    let len = (4 + 4 + 2 + cname.len() + 1).next_multiple_of(4);
    let out = room(out, len)?;
    write_header(out, 1, PT_SDES, len);
    out[4..8].copy_from_slice(&ssrc.0.to_be_bytes());
    out[8] = SDES_CNAME;
    out[9] = cname.len() as u8;
    out[10..10 + cname.len()].copy_from_slice(cname);
    out[10 + cname.len()..].fill(0);
    Ok(len)
}

/// Writes a BYE for one SSRC, without a reason; returns [`BYE_LEN`].
pub fn write_bye(ssrc: Ssrc, out: &mut [u8]) -> Result<usize, RtcpError> {
    let out = room(out, BYE_LEN)?;
    write_header(out, 1, PT_BYE, BYE_LEN);
    out[4..8].copy_from_slice(&ssrc.0.to_be_bytes());
    Ok(BYE_LEN)
}

/// Writes the compound packet a sender sends: SR, SDES CNAME and, when the
/// stream ends, BYE last (§6.1, §6.6).
pub fn write_compound(
    ssrc: Ssrc,
    info: &SenderInfo,
    cname: &[u8],
    bye: bool,
    out: &mut [u8],
) -> Result<usize, RtcpError> {
    let mut len = write_sender_report(ssrc, info, out)?;
    len += write_sdes_cname(ssrc, cname, &mut out[len..])?;
    if bye {
        len += write_bye(ssrc, &mut out[len..])?;
    }
    Ok(len)
}

fn room(out: &mut [u8], needed: usize) -> Result<&mut [u8], RtcpError> {
    let available = out.len();
    out.get_mut(..needed)
        .ok_or(RtcpError::BufferTooSmall { needed, available })
}

/// V=2, P=0, the 5-bit count, the type, and the length in 32-bit words
/// minus one (§6.4.1).
fn write_header(out: &mut [u8], count: u8, packet_type: u8, len: usize) {
    out[0] = 0x80 | (count & 0x1f);
    out[1] = packet_type;
    out[2..4].copy_from_slice(&((len / 4 - 1) as u16).to_be_bytes());
}

/// Whether a datagram looks like RTCP rather than RTP: version 2 and a
/// packet type of 200–204 in the second octet, where RTP has marker and
/// payload type (RFC 5761 §4 uses the same test to demultiplex).
pub fn is_rtcp(datagram: &[u8]) -> bool {
    matches!(datagram, [b0, b1, _, _, ..] if b0 >> 6 == 2 && (PT_SR..=PT_APP).contains(b1))
}

/// The common header of one RTCP packet (§6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpHeader {
    pub packet_type: u8,
    /// Reception report count, source count or subtype, by packet type.
    pub count: u8,
    /// The whole packet's length in bytes, header included.
    pub len: usize,
}

/// Walks the packets of a compound RTCP datagram, stopping at the first
/// error. Yields each header with its packet's bytes.
pub fn packets(datagram: &[u8]) -> Packets<'_> {
    Packets { rest: datagram }
}

pub struct Packets<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Packets<'a> {
    type Item = Result<(RtcpHeader, &'a [u8]), RtcpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let result = parse_header(self.rest).and_then(|header| {
            let packet = self.rest.get(..header.len).ok_or(RtcpError::Truncated {
                claimed: header.len,
                available: self.rest.len(),
            })?;
            Ok((header, packet))
        });
        match &result {
            Ok((header, _)) => self.rest = &self.rest[header.len..],
            Err(_) => self.rest = &[],
        }
        Some(result)
    }
}

/// Parses the 4-byte common header at the start of `buf`.
pub fn parse_header(buf: &[u8]) -> Result<RtcpHeader, RtcpError> {
    let &[b0, packet_type, l0, l1, ..] = buf else {
        return Err(RtcpError::TooShort(buf.len()));
    };
    if b0 >> 6 != 2 {
        return Err(RtcpError::UnsupportedVersion(b0 >> 6));
    }
    if !(PT_SR..=PT_APP).contains(&packet_type) {
        return Err(RtcpError::NotRtcp(packet_type));
    }
    Ok(RtcpHeader {
        packet_type,
        count: b0 & 0x1f,
        len: (usize::from(u16::from_be_bytes([l0, l1])) + 1) * 4,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn info() -> SenderInfo {
        SenderInfo {
            ntp: NtpTimestamp(0x0102_0304_0506_0708),
            rtp_timestamp: 0x1112_1314,
            packet_count: 0x2122_2324,
            octet_count: 0x3132_3334,
        }
    }

    #[test]
    fn ntp_conversion() {
        assert_eq!(
            NtpTimestamp::from_system_time(UNIX_EPOCH),
            NtpTimestamp(2_208_988_800 << 32)
        );
        // Half a second is 2^31 of fraction; 2020-01-01T00:00:00Z is
        // 1_577_836_800 Unix seconds.
        let t = UNIX_EPOCH + Duration::from_millis(1_577_836_800_500);
        let ntp = NtpTimestamp::from_system_time(t);
        assert_eq!(ntp.seconds(), 3_786_825_600);
        assert_eq!(ntp.fraction(), 0x8000_0000);
        assert_eq!(ntp.middle32(), (3_786_825_600u32 << 16) | 0x8000);
        // One nanosecond is ~4.29 fraction units.
        let ntp = NtpTimestamp::from_system_time(UNIX_EPOCH + Duration::from_nanos(1));
        assert_eq!(ntp.fraction(), 4);
        // Era 0 wraps in February 2036.
        let after = UNIX_EPOCH + Duration::from_secs((1u64 << 32) - NTP_UNIX_OFFSET_SECS + 5);
        assert_eq!(NtpTimestamp::from_system_time(after).seconds(), 5);
    }

    #[test]
    fn sender_report_bytes() {
        let mut buf = [0xffu8; 40];
        let len = write_sender_report(Ssrc(0xa1a2_a3a4), &info(), &mut buf).unwrap();
        assert_eq!(len, 28);
        assert_eq!(
            &buf[..28],
            &[
                0x80, 200, 0, 6, // V=2, RC=0, PT=SR, 7 words
                0xa1, 0xa2, 0xa3, 0xa4, // SSRC
                1, 2, 3, 4, 5, 6, 7, 8, // NTP
                0x11, 0x12, 0x13, 0x14, // RTP timestamp
                0x21, 0x22, 0x23, 0x24, // packets
                0x31, 0x32, 0x33, 0x34, // octets
            ]
        );
    }

    #[test]
    fn sdes_cname_pads_to_a_word_with_a_terminating_null() {
        let mut buf = [0xffu8; 64];
        // 4 + 4 + 2 + 2 + 1 = 13 → 16 bytes.
        let len = write_sdes_cname(Ssrc(7), b"ab", &mut buf).unwrap();
        assert_eq!(
            &buf[..len],
            &[0x81, 202, 0, 3, 0, 0, 0, 7, 1, 2, b'a', b'b', 0, 0, 0, 0]
        );
        // 4 + 4 + 2 + 6 = 16 leaves no room for the null: a whole word more.
        let len = write_sdes_cname(Ssrc(7), b"abcdef", &mut buf).unwrap();
        assert_eq!(len, 20);
        assert_eq!(&buf[2..4], &[0, 4]);
        assert_eq!(&buf[16..20], &[0, 0, 0, 0]);
        assert_eq!(
            write_sdes_cname(Ssrc(7), &[b'x'; 256], &mut buf),
            Err(RtcpError::CnameTooLong(256))
        );
    }

    #[test]
    fn bye_bytes() {
        let mut buf = [0u8; 8];
        assert_eq!(write_bye(Ssrc(0x0102_0304), &mut buf), Ok(8));
        assert_eq!(buf, [0x81, 203, 0, 1, 1, 2, 3, 4]);
        assert_eq!(
            write_bye(Ssrc(1), &mut [0u8; 7]),
            Err(RtcpError::BufferTooSmall {
                needed: 8,
                available: 7
            })
        );
    }

    #[test]
    fn compound_round_trips_through_the_parser() {
        let mut buf = [0u8; 128];
        let len =
            write_compound(Ssrc(9), &info(), b"das-0123456789abcdef", true, &mut buf).unwrap();
        let types: Vec<_> = packets(&buf[..len])
            .map(|p| p.unwrap().0.packet_type)
            .collect();
        assert_eq!(types, vec![PT_SR, PT_SDES, PT_BYE]);
        assert!(is_rtcp(&buf[..len]));
        let len = write_compound(Ssrc(9), &info(), b"x", false, &mut buf).unwrap();
        assert_eq!(len, 28 + 12);
        assert!(matches!(
            write_compound(Ssrc(9), &info(), b"x", true, &mut [0u8; 45]),
            Err(RtcpError::BufferTooSmall { .. })
        ));
    }

    #[test]
    fn recognises_rtcp_and_rejects_rtp_and_garbage() {
        // An RR from a peer: V=2, RC=0, PT=201, length 1.
        let rr = [0x80, 201, 0, 1, 0, 0, 0, 5];
        assert!(is_rtcp(&rr));
        assert_eq!(
            packets(&rr).next(),
            Some(Ok((
                RtcpHeader {
                    packet_type: PT_RR,
                    count: 0,
                    len: 8
                },
                &rr[..]
            )))
        );
        // RTP PCMU with marker: second octet 0x80.
        assert!(!is_rtcp(&[0x80, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]));
        assert!(!is_rtcp(&[0x80, 200]));
        assert!(!is_rtcp(&[0x40, 200, 0, 1]));
        // A length running past the datagram ends the walk with an error.
        let mut walk = packets(&[0x80, 200, 0, 6, 0, 0, 0, 0]);
        assert_eq!(
            walk.next(),
            Some(Err(RtcpError::Truncated {
                claimed: 28,
                available: 8
            }))
        );
        assert_eq!(walk.next(), None);
        assert_eq!(parse_header(&[0x80, 72, 0, 0]), Err(RtcpError::NotRtcp(72)));
        assert_eq!(parse_header(&[0x80]), Err(RtcpError::TooShort(1)));
    }
}

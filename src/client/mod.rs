//! The project's own SIP test client: places one call over UDP, records what
//! it hears, and reports what happened. Integration tests use it as a
//! library ([`place_call`]); `dial-a-service call <uri>` prints its
//! [`CallReport::summary`].
//!
//! One call, in order (RFC 3261 §13, §17.1, RFC 3264, RFC 3550):
//!
//! ```text
//! bind SIP socket (ephemeral) + RTP/RTCP pair (even port)
//!   INVITE + SDP offer (one codec + telephone-event) ──► InviteClient
//!   ◄── 100/180/183                    (answer_timeout → CANCEL if ringing)
//!   ◄── 2xx ─► Dialog::new_uac, ACK to next hop (again for each 2xx resent)
//!   ◄── 3xx-6xx ─► ACK via the transaction, report the status
//!   media: send 20 ms silence (symmetric RTP), record RTP by timestamp
//!   each `dtmf` press due ─► RFC 4733 events / INFO / in-band tone
//!   ◄── BYE/OPTIONS/INFO ─► 200 (NonInviteServer), re-INVITE ─► 200 + SDP
//!   `seconds` elapsed ─► BYE via NonInviteClient, wait for its final response
//! ```
//!
//! The client reuses the project's SIP message, dialog, transaction and SDP
//! code and its G.711 tables, but packetises RTP (rtp-rs) and encodes and
//! decodes Opus (libopus) by itself, so a bug in the line's media path shows
//! up as a difference instead of cancelling out.

mod call;
#[cfg(test)]
mod cli_tests;
mod dtmf;
#[cfg(test)]
mod dtmf_tests;
#[cfg(test)]
mod loopback_tests;
mod record;
mod request;
mod send;
mod session;
mod stats;

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::media::Codec;
use crate::sip::transaction::Timers;

pub use call::{place_call, place_call_from};
pub use dtmf::{
    DtmfError, DtmfPress, DtmfSent, InfoType, Key, KeyChannel, KeySequence, parse_info_type,
    parse_keys, parse_via, schedule,
};
pub use record::{FrameDecoder, MAX_SKEW, Recording};
pub use send::{AudioSource, FrameEncoder, RtpPress, RtpSender, Silence};
pub use stats::{ReceivedPacket, RtpStats, StreamStats};

/// What call to place and how.
#[derive(Debug, Clone)]
pub struct CallOptions {
    /// The SIP URI to call, e.g. `sip:service@127.0.0.1:5060`.
    pub target: String,
    /// The address to bind and advertise (SIP, SDP `c=`).
    pub local_ip: IpAddr,
    /// The one codec offered (with telephone-event).
    pub codec: Codec,
    /// Hang up this long after the answer; `None` waits for the far end's BYE.
    pub seconds: Option<Duration>,
    /// Write what was heard to this WAV file when the call ends.
    pub record: Option<PathBuf>,
    /// How long to wait for a final response. If the far end is ringing by
    /// then we CANCEL; if it never answered at all we give up.
    pub answer_timeout: Duration,
    /// SIP timers (T1, T2, T4) for our transactions.
    pub timers: Timers,
    /// The user part of our From and Contact.
    pub from_user: String,
    /// How long to stay after the call ends to re-answer a retransmitted
    /// BYE or failure response (our 200 or ACK may have been lost).
    pub linger: Duration,
    /// Keys to press, each at its time after our ACK, in order.
    pub dtmf: Vec<DtmfPress>,
    /// How each press is sent; several send every press each way at once
    /// (to test that the line counts it once); empty sends nothing.
    pub dtmf_via: Vec<KeyChannel>,
    /// How long each tone or event lasts.
    pub dtmf_duration: Duration,
    /// The body of SIP INFO presses.
    pub dtmf_info_type: InfoType,
    /// Send the ACK, BYE, INFO and our RTP to the address called (with the
    /// answer's RTP port), whatever the answer's Contact and `c=` say: a
    /// line called from its own machine may advertise a public address
    /// that machine cannot reach (behind NAT).
    pub symmetric: bool,
}

impl CallOptions {
    /// Options for calling `target` with `codec`; everything else defaults:
    /// 127.0.0.1, no hang-up timer, no recording, 32 s answer timeout.
    pub fn new(target: impl Into<String>, codec: Codec) -> Self {
        CallOptions {
            target: target.into(),
            local_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            codec,
            seconds: None,
            record: None,
            answer_timeout: Duration::from_secs(32),
            timers: Timers::default(),
            from_user: "test-client".to_owned(),
            linger: Duration::from_millis(500),
            dtmf: Vec::new(),
            dtmf_via: vec![KeyChannel::Rfc4733],
            dtmf_duration: dtmf::DEFAULT_DURATION,
            dtmf_info_type: InfoType::default(),
            symmetric: false,
        }
    }
}

/// Who ended the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangUp {
    /// We sent BYE (the `seconds` timer, or a 2xx that crossed our CANCEL).
    Us,
    /// The far end sent BYE.
    FarEnd,
    /// The call was never established.
    Failed(CallFailure),
}

/// Why a call was never established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallFailure {
    /// A 3xx–6xx final response (486, 488, 503, ...).
    Rejected(u16),
    /// No final response: the INVITE transaction timed out (Timer B), or
    /// nothing came back at all by `answer_timeout`.
    TimedOut,
    /// We cancelled after `answer_timeout` while it was ringing (487).
    Cancelled,
}

/// Everything the client observed about one call.
#[derive(Debug, Clone)]
pub struct CallReport {
    /// The INVITE's final status; 408 when the transaction timed out
    /// (RFC 3261 §8.1.3.1 treats a timeout as 408).
    pub final_status: u16,
    /// Provisional statuses in arrival order (100, 180, 183).
    pub provisional: Vec<u16>,
    pub codec: Codec,
    /// The negotiated payload type of `codec` (`None` if not answered).
    pub payload_type: Option<u8>,
    /// The far end's telephone-event payload type, if it accepted one.
    pub telephone_event: Option<u8>,
    /// The media address of the answer (last re-INVITE wins).
    pub remote_rtp: Option<SocketAddr>,
    pub hung_up_by: HangUp,
    /// When the INVITE was first sent.
    pub started_at: Instant,
    /// When the 2xx arrived.
    pub answered_at: Option<Instant>,
    /// From sending the ACK to the first RTP packet (zero for early media).
    pub first_rtp_after_ack: Option<Duration>,
    /// When the BYE was sent or received, or the call failed.
    pub ended_at: Instant,
    /// The final status of our BYE; `None` if we did not send one or it timed out.
    pub bye_status: Option<u16>,
    /// Every RTP packet received until the BYE, in arrival order.
    pub packets: Vec<ReceivedPacket>,
    /// Packets of our codec that failed to decode (corrupt Opus).
    pub undecodable: u64,
    /// Packets that were not RTP at all.
    pub invalid_rtp: u64,
    /// What we heard, mono in [-1, 1], placed by RTP timestamp.
    pub samples: Vec<f32>,
    pub sample_rate_hz: u32,
    /// Times a timestamp jump or new SSRC forced arrival-time placement.
    pub reanchors: u32,
    pub stats: RtpStats,
    /// RTP packets we sent (RFC 4733 events included).
    pub packets_sent: u64,
    /// Each press as it left, once per way, in the order sent.
    pub dtmf_sent: Vec<DtmfSent>,
    /// RFC 4733 was asked for but the far end did not accept
    /// telephone-event, so those presses went in-band instead.
    pub dtmf_inband_fallback: bool,
}

/// Why the client could not run the call at all. A rejected or unanswered
/// call is not an error: it is a [`CallReport`] with [`HangUp::Failed`].
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("target {target:?} is not a sip uri")]
    InvalidTarget {
        target: String,
        #[source]
        source: rsip::Error,
    },
    #[error("no host and port in uri {0:?}")]
    NoHostPort(String),
    #[error("cannot resolve {host}")]
    Resolve {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{host} resolves to no address")]
    NoAddress { host: String },
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("no free even rtp port on {0} after {1} tries")]
    NoRtpPort(IpAddr, u32),
    #[error("the answer's sdp is unusable")]
    BadAnswer(#[source] crate::sdp::SdpError),
    #[error("the 2xx cannot establish a dialog")]
    Dialog(#[from] crate::sip::dialog::DialogError),
    #[error("opus codec")]
    Opus(#[from] audiopus::Error),
    #[error("writing {path}")]
    Wav {
        path: PathBuf,
        #[source]
        source: hound::Error,
    },
}

impl CallReport {
    /// How much audio was heard.
    pub fn heard(&self) -> Duration {
        Duration::from_secs_f64(self.samples.len() as f64 / f64::from(self.sample_rate_hz.max(1)))
    }

    /// How long the call lasted from answer to hang-up.
    pub fn duration(&self) -> Option<Duration> {
        self.answered_at
            .map(|answered| self.ended_at.saturating_duration_since(answered))
    }

    /// Writes the recording as 16-bit mono WAV at the codec rate.
    pub fn write_wav(&self, path: &Path) -> Result<(), ClientError> {
        let wav_error = |source| ClientError::Wav {
            path: path.to_owned(),
            source,
        };
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: self.sample_rate_hz,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::create(path, spec).map_err(wav_error)?;
        for &sample in &self.samples {
            let value = (sample * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16;
            writer.write_sample(value).map_err(wav_error)?;
        }
        writer.finalize().map_err(wav_error)
    }

    /// A few lines for a human: status, codec, audio heard, RTP quality,
    /// who hung up and when.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let ringing = if self.provisional.is_empty() {
            String::new()
        } else {
            let codes: Vec<String> = self.provisional.iter().map(u16::to_string).collect();
            format!(" after {}", codes.join(", "))
        };
        let _ = writeln!(out, "status {}{ringing}", self.final_status);
        if let Some(pt) = self.payload_type {
            let _ = write!(
                out,
                "codec {} pt {pt} at {} Hz",
                self.codec, self.sample_rate_hz
            );
            if let Some(remote) = self.remote_rtp {
                let _ = write!(out, ", media from {remote}");
            }
            out.push('\n');
        }
        let s = &self.stats;
        if self.answered_at.is_some() {
            let first = self
                .first_rtp_after_ack
                .map(|d| format!(", first RTP {} ms after ACK", d.as_millis()))
                .unwrap_or_else(|| ", no RTP received".to_owned());
            let _ = writeln!(out, "heard {:.2} s{first}", self.heard().as_secs_f64());
            let _ = writeln!(
                out,
                "packets {} from {} SSRC, lost {} ({:.1} %), duplicates {}, out of order {}",
                s.packets,
                s.ssrcs.len(),
                s.lost,
                s.loss_fraction() * 100.0,
                s.duplicates,
                s.out_of_order
            );
            let ms = |d: Option<Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
            let _ = writeln!(
                out,
                "jitter {:.2} ms, interarrival mean {:.1} ms max {:.1} ms, sent {} packets",
                s.jitter_ms(),
                ms(s.mean_interarrival),
                ms(s.max_interarrival),
                self.packets_sent
            );
        }
        if !self.dtmf_sent.is_empty() {
            let _ = writeln!(out, "{}", self.dtmf_summary());
        }
        let after = self
            .duration()
            .map(|d| format!(" after {:.2} s", d.as_secs_f64()))
            .unwrap_or_default();
        let _ = match self.hung_up_by {
            HangUp::Us => {
                let bye = self
                    .bye_status
                    .map_or_else(|| "no response".to_owned(), |c| c.to_string());
                writeln!(out, "hung up by us{after} (BYE → {bye})")
            }
            HangUp::FarEnd => writeln!(out, "hung up by the far end{after}"),
            HangUp::Failed(CallFailure::Rejected(code)) => writeln!(out, "rejected with {code}"),
            HangUp::Failed(CallFailure::TimedOut) => writeln!(out, "no answer (timed out)"),
            HangUp::Failed(CallFailure::Cancelled) => writeln!(out, "cancelled while ringing"),
        };
        out
    }
}

impl CallReport {
    /// One line: each press, how and when it left (after the answer), and
    /// the INFO's final status.
    fn dtmf_summary(&self) -> String {
        let presses: Vec<String> = self
            .dtmf_sent
            .iter()
            .map(|sent| {
                let how = match sent.via {
                    KeyChannel::Rfc4733 => "rfc4733".to_owned(),
                    KeyChannel::InBand => "inband".to_owned(),
                    KeyChannel::SipInfo => match sent.info_status {
                        Some(status) => format!("info → {status}"),
                        None => "info → no response".to_owned(),
                    },
                };
                let at = self
                    .answered_at
                    .map(|answered| sent.at.saturating_duration_since(answered))
                    .unwrap_or_default();
                format!(
                    "{} ({how}) at {:.2} s",
                    sent.key.as_char(),
                    at.as_secs_f64()
                )
            })
            .collect();
        let fallback = if self.dtmf_inband_fallback {
            " (no telephone-event in the answer: RFC 4733 sent in-band)"
        } else {
            ""
        };
        format!("dtmf sent {}{fallback}", presses.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(samples: Vec<f32>) -> CallReport {
        let now = Instant::now();
        CallReport {
            final_status: 200,
            provisional: vec![100, 180],
            codec: Codec::Pcmu,
            payload_type: Some(0),
            telephone_event: Some(101),
            remote_rtp: Some("127.0.0.1:30000".parse().unwrap()),
            hung_up_by: HangUp::FarEnd,
            started_at: now,
            answered_at: Some(now),
            first_rtp_after_ack: Some(Duration::from_millis(35)),
            ended_at: now + Duration::from_secs(3),
            bye_status: None,
            packets: Vec::new(),
            undecodable: 0,
            invalid_rtp: 0,
            samples,
            sample_rate_hz: 8_000,
            reanchors: 0,
            stats: RtpStats::default(),
            packets_sent: 150,
            dtmf_sent: Vec::new(),
            dtmf_inband_fallback: false,
        }
    }

    #[test]
    fn wav_round_trips_at_the_codec_rate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("heard.wav");
        report(vec![0.0, 0.5, -0.5, 1.5]).write_wav(&path).unwrap();
        let mut reader = hound::WavReader::open(&path).unwrap();
        assert_eq!(reader.spec().sample_rate, 8_000);
        assert_eq!(reader.spec().channels, 1);
        let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(samples, vec![0, 16_384, -16_384, 32_767]);
    }

    #[test]
    fn wav_to_a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/heard.wav");
        assert!(matches!(
            report(vec![0.0]).write_wav(&path),
            Err(ClientError::Wav { .. })
        ));
    }

    #[test]
    fn summary_names_status_codec_and_who_hung_up() {
        let text = report(vec![0.0; 16_000]).summary();
        assert!(text.contains("status 200 after 100, 180"), "{text}");
        assert!(text.contains("codec pcmu pt 0"), "{text}");
        assert!(
            text.contains("heard 2.00 s, first RTP 35 ms after ACK"),
            "{text}"
        );
        assert!(
            text.contains("hung up by the far end after 3.00 s"),
            "{text}"
        );
    }

    #[test]
    fn summary_lists_the_presses_sent() {
        let mut r = report(Vec::new());
        let answered = r.answered_at.unwrap();
        let sent = |key: char, via, ms: u64, info_status| DtmfSent {
            key: Key::from_char(key).unwrap(),
            via,
            at: answered + Duration::from_millis(ms),
            info_status,
        };
        r.dtmf_sent = vec![
            sent('2', KeyChannel::Rfc4733, 3_000, None),
            sent('2', KeyChannel::SipInfo, 3_000, Some(200)),
            sent('#', KeyChannel::InBand, 4_020, None),
        ];
        r.dtmf_inband_fallback = true;
        let text = r.summary();
        assert!(
            text.contains(
                "dtmf sent 2 (rfc4733) at 3.00 s, 2 (info → 200) at 3.00 s, # (inband) at 4.02 s"
            ),
            "{text}"
        );
        assert!(text.contains("RFC 4733 sent in-band"), "{text}");
    }

    #[test]
    fn summary_of_a_rejected_call() {
        let mut r = report(Vec::new());
        r.final_status = 486;
        r.payload_type = None;
        r.answered_at = None;
        r.hung_up_by = HangUp::Failed(CallFailure::Rejected(486));
        let text = r.summary();
        assert!(text.contains("status 486"), "{text}");
        assert!(text.contains("rejected with 486"), "{text}");
        assert!(!text.contains("jitter"), "{text}");
    }
}

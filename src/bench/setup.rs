//! Setup rate under load, for `bench --through-sip --setup-calls M
//! --setup-rate R`: while the bench's calls stream, a second sipp places M
//! more calls at R a second, each listening briefly, and a capture of its
//! SIP and of the line's first RTP packet to it gives, per call, INVITE to
//! 200 OK and ACK to the first RTP packet: what a caller in a rush waits
//! for.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::bench::peers::{self, PeerError, Processes};
use crate::bench::report::SetupTimes;

/// How long each extra call listens before hanging up: long enough to hear
/// the greeting begin, short enough that the calls in flight stay few.
pub const HOLD: Duration = Duration::from_secs(1);

const SIPP: &str = "setup-sipp";
const CAPTURE: &str = "setup-dumpcap";

/// The extra calls placed while the bench's calls stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SetupLoad {
    pub calls: usize,
    /// New calls a second.
    pub rate: u32,
}

impl SetupLoad {
    /// From the first INVITE to the last BYE, roughly.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.calls as f64 / f64::from(self.rate)) + HOLD
    }
}

/// The second sipp and its capture, running.
pub struct Running {
    load: SetupLoad,
    capture_file: PathBuf,
    capture_lines: mpsc::Receiver<String>,
    stat_file: PathBuf,
    sip_port: u16,
    media_port: u16,
    started: Instant,
}

/// The ports the second sipp uses; they must not be the line's.
pub struct Ports {
    pub sip: u16,
    pub media: u16,
}

/// Starts the capture, then sipp placing the extra calls to `line`.
pub fn start(
    processes: &mut Processes,
    dir: &Path,
    scenario: &Path,
    line: SocketAddr,
    ports: Ports,
    load: SetupLoad,
    offer: (u8, &str),
) -> Result<Running, PeerError> {
    let capture_file = dir.join("setup.pcapng");
    // Its SIP both ways, and only RTP packets with the marker bit (the
    // first of each stream, RFC 3550 §5.1): a handful per call, so the
    // capture costs nothing at any rate.
    let filter = format!(
        "udp and (port {sip} or (dst port {media} and (udp[9] & 0x80) != 0))",
        sip = ports.sip,
        media = ports.media
    );
    // Whole SIP messages (the Call-ID, the SDP answer's port).
    let capture_lines = peers::start_capture(processes, CAPTURE, &capture_file, &filter, u16::MAX)?;
    let stat_file = dir.join("setup-sipp-stat.csv");
    processes.spawn(
        SIPP,
        Command::new("sipp")
            .current_dir(dir)
            .arg("-sf")
            .arg(scenario)
            .args(["-i", "127.0.0.1", "-p", &ports.sip.to_string()])
            .args(["-mp", &ports.media.to_string()])
            .args(["-l", &load.calls.to_string()])
            .args(["-m", &load.calls.to_string()])
            .args(["-r", &load.rate.to_string(), "-rp", "1000"])
            .args(["-d", &HOLD.as_millis().to_string()])
            .args([
                "-key",
                "pt",
                &offer.0.to_string(),
                "-key",
                "rtpmap",
                offer.1,
            ])
            .args(["-trace_stat", "-fd", "1", "-stf"])
            .arg(&stat_file)
            .args(["-timeout", &format!("{}s", load.duration().as_secs() + 60)])
            .args(["-timeout_error", "-nostdin"])
            .arg(line.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(dir.join("setup-sipp.err"))
                    .map_or_else(|_| Stdio::null(), Stdio::from),
            ),
    )?;
    Ok(Running {
        load,
        capture_file,
        capture_lines,
        stat_file,
        sip_port: ports.sip,
        media_port: ports.media,
        started: Instant::now(),
    })
}

/// Waits for sipp to finish its calls, stops the capture and reads it.
pub fn finish(processes: &mut Processes, running: Running) -> Result<SetupReport, PeerError> {
    let left = (running.load.duration() + Duration::from_secs(30))
        .saturating_sub(running.started.elapsed());
    let status = processes
        .wait_exit(SIPP, left)
        .or_else(|| processes.stop(SIPP, libc::SIGTERM, Duration::from_secs(2)));
    // The last calls' BYEs and their 200s are in the capture by now.
    std::thread::sleep(Duration::from_millis(500));
    processes.stop(CAPTURE, libc::SIGINT, Duration::from_secs(10));
    while running
        .capture_lines
        .recv_timeout(Duration::from_secs(2))
        .is_ok()
    {}
    let packets =
        peers::read_setup_capture(&running.capture_file, running.sip_port, running.media_port)?;
    let stats = peers::sipp_final_stats(&running.stat_file);
    let count = |name: &str| stats.get(name).and_then(|v| v.trim().parse::<u64>().ok());
    let mut report = analyse(running.load, &packets);
    report.sipp_exit = status.and_then(|s| s.code());
    report.sipp_successful = count("SuccessfulCall(C)");
    report.sipp_failed = count("FailedCall(C)");
    Ok(report)
}

/// One captured packet of the setup load, as tshark read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupPacket {
    /// A SIP request sipp sent (INVITE, ACK, BYE).
    Request {
        at: Duration,
        call_id: String,
        method: String,
    },
    /// A response from the line; `media_port` from its SDP answer.
    Response {
        at: Duration,
        call_id: String,
        status: u16,
        cseq_method: String,
        media_port: Option<u16>,
    },
    /// An RTP packet with the marker bit from the line's port `from`.
    FirstRtp { at: Duration, from: u16 },
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SetupReport {
    pub calls: usize,
    /// New calls a second sipp was asked for.
    pub rate: u32,
    /// Calls whose INVITE the capture saw.
    pub invited: usize,
    /// Calls answered with 200 OK.
    pub answered: usize,
    /// Answered calls from which no first RTP packet came after the ACK.
    pub without_rtp: usize,
    /// Answers a second, from the first INVITE to the last 200 OK.
    pub answered_per_second: f64,
    pub invite_to_200: SetupTimes,
    pub ack_to_first_rtp: SetupTimes,
    pub sipp_exit: Option<i32>,
    pub sipp_successful: Option<u64>,
    pub sipp_failed: Option<u64>,
}

impl SetupReport {
    /// Every extra call answered and playing, none failed.
    pub fn sanity(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.answered < self.calls {
            problems.push(format!(
                "setup load: {} of {} calls answered ({} INVITEs seen)",
                self.answered, self.calls, self.invited
            ));
        }
        if self.without_rtp > 0 {
            problems.push(format!(
                "setup load: {} answered calls got no RTP after their ACK",
                self.without_rtp
            ));
        }
        if self.sipp_failed != Some(0) || self.sipp_exit != Some(0) {
            problems.push(format!(
                "setup load: sipp exited with {:?}, {:?} calls failed",
                self.sipp_exit, self.sipp_failed
            ));
        }
        problems
    }

    pub fn summary(&self) -> String {
        format!(
            "setup load    {calls} more calls at {rate}/s while those stream: {answered} answered ({per_s:.0}/s); \
             INVITE to 200 p50 {i50:.1} / p99 {i99:.1} / max {imax:.1} ms; \
             ACK to first RTP p50 {r50:.1} / p99 {r99:.1} / max {rmax:.1} ms; {without} without RTP; sipp: {failed} failed",
            calls = self.calls,
            rate = self.rate,
            answered = self.answered,
            per_s = self.answered_per_second,
            i50 = self.invite_to_200.p50_ms,
            i99 = self.invite_to_200.p99_ms,
            imax = self.invite_to_200.max_ms,
            r50 = self.ack_to_first_rtp.p50_ms,
            r99 = self.ack_to_first_rtp.p99_ms,
            rmax = self.ack_to_first_rtp.max_ms,
            without = self.without_rtp,
            failed = self.sipp_failed.map_or("?".to_owned(), |n| n.to_string()),
        )
    }
}

#[derive(Default)]
struct CallTimes {
    invite: Option<Duration>,
    answer: Option<Duration>,
    media_port: Option<u16>,
    ack: Option<Duration>,
}

/// Per call: INVITE (the first sent) to the first 200 OK, and the first
/// ACK to the first marked RTP packet from the port its answer named. A
/// port the line reused for a later call is told apart by time: only a
/// packet after this call's ACK counts.
pub fn analyse(load: SetupLoad, packets: &[SetupPacket]) -> SetupReport {
    let mut calls: HashMap<&str, CallTimes> = HashMap::new();
    let mut first_rtp: HashMap<u16, Vec<Duration>> = HashMap::new();
    for packet in packets {
        match packet {
            SetupPacket::Request {
                at,
                call_id,
                method,
            } => {
                let call = calls.entry(call_id).or_default();
                match method.as_str() {
                    "INVITE" => {
                        call.invite.get_or_insert(*at);
                    }
                    "ACK" => {
                        call.ack.get_or_insert(*at);
                    }
                    _ => {}
                }
            }
            SetupPacket::Response {
                at,
                call_id,
                status,
                cseq_method,
                media_port,
            } if *status == 200 && cseq_method == "INVITE" => {
                let call = calls.entry(call_id).or_default();
                if call.answer.is_none() {
                    call.answer = Some(*at);
                    call.media_port = *media_port;
                }
            }
            SetupPacket::Response { .. } => {}
            SetupPacket::FirstRtp { at, from } => first_rtp.entry(*from).or_default().push(*at),
        }
    }
    for times in first_rtp.values_mut() {
        times.sort_unstable();
    }

    let mut invite_to_200 = Vec::new();
    let mut ack_to_rtp = Vec::new();
    let mut without_rtp = 0;
    let (mut first_invite, mut last_answer) = (None::<Duration>, None::<Duration>);
    for call in calls.values() {
        let (Some(invite), Some(answer)) = (call.invite, call.answer) else {
            continue;
        };
        first_invite = Some(first_invite.map_or(invite, |t| t.min(invite)));
        last_answer = Some(last_answer.map_or(answer, |t| t.max(answer)));
        invite_to_200.push(answer.saturating_sub(invite));
        let rtp = call.ack.zip(call.media_port).and_then(|(ack, port)| {
            let times = first_rtp.get(&port)?;
            let i = times.partition_point(|t| *t < ack);
            times.get(i).map(|t| t.saturating_sub(ack))
        });
        match rtp {
            Some(wait) => ack_to_rtp.push(wait),
            None => without_rtp += 1,
        }
    }
    invite_to_200.sort_unstable();
    ack_to_rtp.sort_unstable();
    let answered = invite_to_200.len();
    let span = first_invite
        .zip(last_answer)
        .map_or(0.0, |(a, b)| b.saturating_sub(a).as_secs_f64());
    SetupReport {
        calls: load.calls,
        rate: load.rate,
        invited: calls.values().filter(|c| c.invite.is_some()).count(),
        answered,
        without_rtp,
        answered_per_second: if span > 0.0 {
            answered as f64 / span
        } else {
            0.0
        },
        invite_to_200: SetupTimes::from_sorted(&invite_to_200),
        ack_to_first_rtp: SetupTimes::from_sorted(&ack_to_rtp),
        sipp_exit: None,
        sipp_successful: None,
        sipp_failed: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn request(at: u64, call_id: &str, method: &str) -> SetupPacket {
        SetupPacket::Request {
            at: ms(at),
            call_id: call_id.to_owned(),
            method: method.to_owned(),
        }
    }

    fn answer(at: u64, call_id: &str, port: u16) -> SetupPacket {
        SetupPacket::Response {
            at: ms(at),
            call_id: call_id.to_owned(),
            status: 200,
            cseq_method: "INVITE".to_owned(),
            media_port: Some(port),
        }
    }

    #[test]
    fn times_each_call_from_invite_and_from_ack() {
        let load = SetupLoad {
            calls: 3,
            rate: 100,
        };
        let packets = vec![
            request(0, "a", "INVITE"),
            request(10, "b", "INVITE"),
            answer(4, "a", 40000),
            request(5, "a", "ACK"),
            SetupPacket::FirstRtp {
                at: ms(7),
                from: 40000,
            },
            // A retransmitted 200 changes nothing.
            answer(504, "a", 40000),
            answer(13, "b", 40002),
            request(14, "b", "ACK"),
            // b's port sends nothing; then "c" reuses a's port: the packet
            // before c's ACK is a's, not c's.
            request(20, "c", "INVITE"),
            answer(30, "c", 40000),
            request(31, "c", "ACK"),
            SetupPacket::FirstRtp {
                at: ms(40),
                from: 40000,
            },
            SetupPacket::Response {
                at: ms(41),
                call_id: "c".to_owned(),
                status: 200,
                cseq_method: "BYE".to_owned(),
                media_port: None,
            },
        ];
        let report = analyse(load, &packets);
        assert_eq!(report.invited, 3);
        assert_eq!(report.answered, 3);
        assert_eq!(report.without_rtp, 1, "b");
        assert_eq!(report.invite_to_200.count, 3);
        assert_eq!(report.invite_to_200.max_ms, 10.0);
        assert_eq!(report.ack_to_first_rtp.count, 2);
        assert_eq!(report.ack_to_first_rtp.p50_ms, 2.0);
        assert_eq!(report.ack_to_first_rtp.max_ms, 9.0);
        // Three answers from 0 to 30 ms.
        assert!((report.answered_per_second - 100.0).abs() < 1e-9);
        assert_eq!(report.sanity().len(), 2, "b without RTP, sipp unknown");
    }

    #[test]
    fn an_unanswered_call_is_a_problem() {
        let load = SetupLoad { calls: 2, rate: 1 };
        let report = analyse(load, &[request(0, "a", "INVITE")]);
        assert_eq!((report.invited, report.answered), (1, 0));
        assert!(report.sanity()[0].contains("0 of 2 calls answered"));
    }
}

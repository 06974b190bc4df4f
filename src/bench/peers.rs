//! The programs around the line in `bench --through-sip`: sipp as the
//! callers, dumpcap capturing a sample of the line's RTP, tshark reading the
//! capture back. Starting them, stopping them on every path (the
//! [`Processes`] guard), and reading what they wrote.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::bench::rtp_report::{CapturedPacket, StreamKey};
use crate::bench::setup::SetupPacket;

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("{tool} is not installed (Debian package {package})")]
    Missing {
        tool: &'static str,
        package: &'static str,
    },
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: &'static str,
        source: std::io::Error,
    },
    #[error("dumpcap did not start capturing within {waited:?}: {stderr}")]
    CaptureNotStarted { waited: Duration, stderr: String },
    #[error("tshark could not read the capture {file}: {stderr}")]
    ReadCapture { file: PathBuf, stderr: String },
}

/// Fails when a program the bench drives is not on the `PATH`.
pub fn require(tool: &'static str, package: &'static str) -> Result<(), PeerError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()) {
        Ok(())
    } else {
        Err(PeerError::Missing { tool, package })
    }
}

/// The child processes of one run, each killed and reaped when the guard
/// drops (an error, a panic, or the end), unless stopped before.
#[derive(Default)]
pub struct Processes {
    children: Vec<(&'static str, Child)>,
}

impl Processes {
    pub fn add(&mut self, name: &'static str, child: Child) -> u32 {
        let pid = child.id();
        self.children.push((name, child));
        pid
    }

    pub fn spawn(&mut self, name: &'static str, command: &mut Command) -> Result<u32, PeerError> {
        let child = command.spawn().map_err(|source| PeerError::Spawn {
            program: name,
            source,
        })?;
        Ok(self.add(name, child))
    }

    /// The exit status of `name` if it has exited (and is then forgotten).
    pub fn try_exited(&mut self, name: &str) -> Option<ExitStatus> {
        let i = self.children.iter().position(|(n, _)| *n == name)?;
        let status = self.children[i].1.try_wait().ok().flatten()?;
        self.children.remove(i);
        Some(status)
    }

    /// Waits up to `limit` for `name` to exit by itself.
    pub fn wait_exit(&mut self, name: &str, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_exited(name) {
                return Some(status);
            }
            if Instant::now() >= deadline || !self.children.iter().any(|(n, _)| *n == name) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` to `name`, waits up to `grace` for it to exit, then
    /// kills it.
    pub fn stop(&mut self, name: &str, signal: libc::c_int, grace: Duration) -> Option<ExitStatus> {
        let (_, child) = self.children.iter().find(|(n, _)| *n == name)?;
        let pid = libc::pid_t::try_from(child.id()).ok()?;
        // SAFETY: kill(2) on our own child, not yet reaped, so the pid is still its.
        unsafe { libc::kill(pid, signal) };
        if let Some(status) = self.wait_exit(name, grace) {
            return Some(status);
        }
        let i = self.children.iter().position(|(n, _)| *n == name)?;
        let (_, mut child) = self.children.remove(i);
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Measured here: at 100 calls a second, the first 150 ms of calls were
/// missing from a capture started when dumpcap said it was capturing.
const LIVE_AFTER_SAYING: Duration = Duration::from_secs(1);

/// dumpcap on loopback, writing the first `snap_len` bytes of each packet
/// `filter` (a kernel BPF filter) lets through; `name` in `processes`.
pub fn start_capture(
    processes: &mut Processes,
    name: &'static str,
    file: &Path,
    filter: &str,
    snap_len: u16,
) -> Result<mpsc::Receiver<String>, PeerError> {
    let mut child = Command::new("dumpcap")
        .args(["-i", "lo", "-q", "-B", "64", "-f", filter])
        .args(["-s", &snap_len.to_string(), "-w"])
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| PeerError::Spawn {
            program: "dumpcap",
            source,
        })?;
    let stderr = child.stderr.take().expect("stderr was piped");
    processes.add(name, child);
    // Capturing starts when dumpcap says so; a fixed sleep loses the first
    // packets on a busy machine. The rest of its stderr (the drop count at
    // the end) comes through the same channel.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let waited = Duration::from_secs(20);
    let deadline = Instant::now() + waited;
    let mut said = String::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("Capturing on") => {
                // It says so a moment before the socket and its filter are
                // live: packets sent at once would be missed.
                std::thread::sleep(LIVE_AFTER_SAYING);
                return Ok(rx);
            }
            Ok(line) => said.push_str(&line),
            Err(_) => break,
        }
    }
    Err(PeerError::CaptureNotStarted {
        waited,
        stderr: said,
    })
}

/// Packets dumpcap says the kernel dropped, from its closing lines
/// ("Packets received/dropped on interface 'Loopback: lo': 1000/3 (…)").
pub fn capture_drops(closing: &[String]) -> Option<u64> {
    closing.iter().find_map(|line| {
        let (_, counts) = line.split_once("received/dropped on interface")?;
        // The interface's name, in quotes, may hold ": " itself.
        let (_, counts) = counts.split_once("': ")?;
        let (_, dropped) = counts.split_whitespace().next()?.split_once('/')?;
        dropped.parse().ok()
    })
}

/// Every RTP packet in `file`, decoding UDP to `rtp_port` as RTP.
pub fn read_capture(file: &Path, rtp_port: u16) -> Result<Vec<CapturedPacket>, PeerError> {
    let decode = format!("udp.port=={rtp_port},rtp");
    let fields = tshark_fields(
        file,
        &[
            "-d",
            &decode,
            "-Y",
            "rtp",
            "-T",
            "fields",
            "-E",
            "separator=,",
            "-e",
            "frame.time_epoch",
            "-e",
            "udp.srcport",
            "-e",
            "rtp.ssrc",
            "-e",
            "rtp.seq",
            "-e",
            "rtp.timestamp",
        ],
    )?;
    Ok(fields.lines().filter_map(parse_packet_line).collect())
}

/// `tshark -r file args…`: what it printed, or why it could not read.
fn tshark_fields(file: &Path, args: &[&str]) -> Result<String, PeerError> {
    let output = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| PeerError::Spawn {
            program: "tshark",
            source,
        })?;
    if !output.status.success() {
        return Err(PeerError::ReadCapture {
            file: file.to_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The setup load's capture: sipp's SIP on `sip_port` (requests it sent,
/// the line's responses) and the marked RTP packets to `media_port`.
pub fn read_setup_capture(
    file: &Path,
    sip_port: u16,
    media_port: u16,
) -> Result<Vec<SetupPacket>, PeerError> {
    let decode = format!("udp.port=={sip_port},sip");
    let fields = tshark_fields(
        file,
        &[
            "-d",
            &decode,
            "-T",
            "fields",
            "-E",
            "separator=/t",
            "-E",
            "occurrence=f",
            "-e",
            "frame.time_epoch",
            "-e",
            "udp.srcport",
            "-e",
            "udp.dstport",
            "-e",
            "sip.Call-ID",
            "-e",
            "sip.Method",
            "-e",
            "sip.Status-Code",
            "-e",
            "sip.CSeq.method",
            "-e",
            "sdp.media.port",
        ],
    )?;
    Ok(fields
        .lines()
        .filter_map(|line| parse_setup_line(line, media_port))
        .collect())
}

/// `epoch<TAB>src<TAB>dst<TAB>call-id<TAB>method<TAB>status<TAB>cseq method<TAB>media port`.
fn parse_setup_line(line: &str, media_port: u16) -> Option<SetupPacket> {
    let fields: Vec<&str> = line.split('\t').collect();
    let field = |i: usize| fields.get(i).copied().unwrap_or("");
    let at = parse_epoch(field(0))?;
    let from: u16 = field(1).parse().ok()?;
    let to: u16 = field(2).parse().ok()?;
    if to == media_port {
        return Some(SetupPacket::FirstRtp { at, from });
    }
    let call_id = field(3).to_owned();
    if call_id.is_empty() {
        return None;
    }
    if !field(4).is_empty() {
        return Some(SetupPacket::Request {
            at,
            call_id,
            method: field(4).to_owned(),
        });
    }
    Some(SetupPacket::Response {
        at,
        call_id,
        status: field(5).parse().ok()?,
        cseq_method: field(6).to_owned(),
        media_port: field(7).parse().ok(),
    })
}

/// `1700000000.123456789,40000,0x12345678,17,2720` (tshark's fields).
fn parse_packet_line(line: &str) -> Option<CapturedPacket> {
    let mut fields = line.split(',');
    let arrival = parse_epoch(fields.next()?)?;
    let src_port = fields.next()?.parse().ok()?;
    let ssrc = fields.next()?;
    let ssrc = u32::from_str_radix(ssrc.trim_start_matches("0x"), 16).ok()?;
    Some(CapturedPacket {
        arrival,
        stream: StreamKey { src_port, ssrc },
        seq: fields.next()?.parse().ok()?,
        timestamp: fields.next()?.parse().ok()?,
    })
}

/// Seconds since the epoch with up to nine decimals, exactly (an f64 keeps
/// only about 0.2 µs at today's epoch).
fn parse_epoch(text: &str) -> Option<Duration> {
    let (secs, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = fraction.get(..fraction.len().min(9))?;
    let nanos: u32 = if digits.is_empty() {
        0
    } else {
        digits.parse::<u32>().ok()? * 10u32.pow(9 - digits.len() as u32)
    };
    Some(Duration::new(secs.parse().ok()?, nanos))
}

/// The columns of the last line of sipp's `-trace_stat` file, by name
/// ("SuccessfulCall(C)", "FailedCall(C)", …).
pub fn sipp_final_stats(stat_file: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(stat_file).unwrap_or_default();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return BTreeMap::new();
    };
    let Some(last) = lines.next_back() else {
        return BTreeMap::new();
    };
    header
        .split(';')
        .zip(last.split(';'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Every INVITE-to-200 time in sipp's `-trace_rtt` files in `dir`
/// (`<scenario>_<pid>_rtt.csv`: `date_ms;response_time_ms;rtd_no`).
pub fn sipp_setup_times(dir: &Path) -> Vec<Duration> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut times = Vec::new();
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().ends_with("_rtt.csv") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        times.extend(text.lines().filter_map(|line| {
            let ms: f64 = line.split(';').nth(1)?.trim().parse().ok()?;
            Duration::try_from_secs_f64(ms / 1e3).ok()
        }));
    }
    times.sort_unstable();
    times
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tshark_fields() {
        let packet = parse_packet_line("1700000000.000120000,40016,0x0badcafe,65535,4294967136")
            .expect("a packet");
        assert_eq!(packet.arrival, Duration::new(1_700_000_000, 120_000));
        assert_eq!(packet.stream.src_port, 40016);
        assert_eq!(packet.stream.ssrc, 0x0bad_cafe);
        assert_eq!(packet.seq, 65535);
        assert_eq!(packet.timestamp, 4_294_967_136);
        assert_eq!(parse_packet_line("1700000000.1,40016,,1,2"), None);
        assert_eq!(parse_epoch("12.5"), Some(Duration::from_millis(12_500)));
    }

    #[test]
    fn reads_the_setup_capture() {
        let rtp = parse_setup_line("1700000000.5\t40000\t6002\t\t\t\t\t", 6002);
        assert_eq!(
            rtp,
            Some(SetupPacket::FirstRtp {
                at: Duration::from_millis(1_700_000_000_500),
                from: 40000
            })
        );
        let invite = parse_setup_line("1.0\t6000\t5060\t7-1@127.0.0.1\tINVITE\t\tINVITE\t", 6002);
        assert!(matches!(invite, Some(SetupPacket::Request { method, .. }) if method == "INVITE"));
        let ok = parse_setup_line("1.0\t5060\t6000\t7-1@127.0.0.1\t\t200\tINVITE\t40000", 6002);
        assert!(matches!(
            ok,
            Some(SetupPacket::Response {
                status: 200,
                media_port: Some(40000),
                ..
            })
        ));
        assert_eq!(parse_setup_line("garbage", 6002), None);
    }

    #[test]
    fn reads_dumpcap_drops() {
        let closing = vec![
            "Packets captured: 1000".to_owned(),
            "Packets received/dropped on interface 'Loopback: lo': 1000/3 (pcap:3/dumpcap:0/flushed:0/ps_ifdrop:0) (99.7%)".to_owned(),
        ];
        assert_eq!(capture_drops(&closing), Some(3));
        assert_eq!(capture_drops(&[]), None);
    }
}

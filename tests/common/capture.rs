//! tshark on loopback: start a capture, wait until it really captures, and
//! read `-z rtp,streams` back.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct Capture {
    child: Child,
    pub file: PathBuf,
}

impl Capture {
    /// Captures UDP on `ports` into `dir/capture.pcap`.
    pub fn start(dir: &Path, ports: &[u16]) -> Capture {
        let file = dir.join("capture.pcap");
        let filter = ports
            .iter()
            .map(|p| format!("udp port {p}"))
            .collect::<Vec<_>>()
            .join(" or ");
        let mut child = Command::new("tshark")
            .args([
                "-i",
                "lo",
                "-f",
                &filter,
                "-w",
                file.to_str().unwrap(),
                "-q",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tshark");
        // A fixed sleep loses the first packets on a busy machine: wait for
        // tshark to say so (peers.md).
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("Capturing on") || line.contains("Capture started") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(20))
            .expect("tshark did not start capturing");
        std::thread::sleep(Duration::from_millis(300));
        Capture { child, file }
    }

    /// Stops the capture and waits for the file to be complete.
    pub fn stop(mut self) -> PathBuf {
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        self.file.clone()
    }
}

/// One line of `tshark -z rtp,streams`.
#[derive(Debug, Clone)]
pub struct RtpStream {
    pub src_port: u16,
    pub dst_port: u16,
    pub ssrc: String,
    pub payload: String,
    pub packets: u64,
    pub lost: i64,
    pub max_delta_ms: f64,
    pub problem: bool,
}

/// The RTP streams in a capture, decoding `rtp_port` as RTP.
pub fn rtp_streams(file: &Path, rtp_port: u16) -> (Vec<RtpStream>, String) {
    let output = Command::new("tshark")
        .args([
            "-r",
            file.to_str().unwrap(),
            "-q",
            "-d",
            &format!("udp.port=={rtp_port},rtp"),
            "-z",
            "rtp,streams",
        ])
        .output()
        .expect("run tshark");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut streams = Vec::new();
    for line in text.lines() {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let Some(i) = tokens.iter().position(|t| t.starts_with("0x")) else {
            continue;
        };
        if i < 6 || tokens.len() < i + 8 {
            continue;
        }
        let parse_f = |s: &str| s.parse::<f64>().unwrap_or(f64::NAN);
        streams.push(RtpStream {
            src_port: tokens[i - 3].parse().unwrap_or(0),
            dst_port: tokens[i - 1].parse().unwrap_or(0),
            ssrc: tokens[i].to_owned(),
            payload: tokens[i + 1].to_owned(),
            packets: tokens[i + 2].parse().unwrap_or(0),
            lost: tokens[i + 3].parse().unwrap_or(-1),
            // Columns after "Lost (x%)": min, mean, max delta.
            max_delta_ms: parse_f(tokens.get(i + 7).copied().unwrap_or("nan")),
            problem: tokens.last() == Some(&"X"),
        });
    }
    (streams, text)
}

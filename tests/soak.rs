//! A bounded soak (issue 9): calls start and end continuously against the
//! real line with junk mixed in, for `DAS_SOAK_SECONDS` (default 60); then
//! its descriptors, RTP ports and memory must be back to idle.
//!
//! The traffic comes from four loopback addresses, so that no per-source
//! limit of the line meant for one kind gets in the way of another:
//!
//! - 127.0.0.1, calls: sipp places three calls a second (`-sn uac`: ringing,
//!   three seconds of the greeting, then its BYE), and our client calls every
//!   few seconds and must hear a clean stream, every other time to the end
//!   (the line says goodbye and hangs up).
//! - 127.0.0.6, abuse: calls abandoned without an ACK, INVITEs cancelled
//!   while ringing, BYEs and INFOs for no dialog, OPTIONS, offers with no
//!   codec in common.
//! - 127.0.0.7, junk datagrams: random bytes, truncated INVITEs, UTF-8
//!   garbage, a 60 KB header, thousands of Vias, lying Content-Lengths.
//! - 127.0.0.8, junk over TCP: garbage, half-sent messages left open, a
//!   header past 64 KiB, bursts of connections past the per-source cap, and
//!   now and then a good OPTIONS that must be answered.
//!
//! At the end the line is up and answers, a last call is clean, its open
//! descriptors are within a few of idle, none of its UDP sockets is left in
//! the RTP range, its resident memory is within a margin of its value after a
//! warm-up call (which decodes and caches the service), and nothing was
//! logged at ERROR.
//!
//! For an hour: `DAS_SOAK_SECONDS=3600 cargo test --release --test soak --
//! --nocapture` (see the README).

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use common::raw_uac::{RawUac, to_tag};
use common::{Line, Parish, free_udp_port, have_tool, procfs, rtp_range};
use dial_a_service::client::{CallOptions, CallReport, HangUp, place_call};
use dial_a_service::media::Codec;

/// How long the traffic runs unless `DAS_SOAK_SECONDS` says otherwise.
const DEFAULT_SOAK: Duration = Duration::from_secs(60);
/// sipp's calls a second, and how long each listens before its BYE.
const SIPP_RATE: u32 = 3;
const SIPP_CALL_MS: u32 = 3_000;
/// A call never ACKed is held 64·T1 = 32 s: none are abandoned this close to
/// the end, so that idle can be reached soon after.
const ABANDON_QUIET: Duration = Duration::from_secs(35);
/// A speech render's pipe or the service file open while a track decodes.
const FD_MARGIN: usize = 3;
/// Allocator slack after thousands of calls on several threads.
const RSS_MARGIN_KIB: u64 = 8 * 1024;
/// How long the line may take to come back to idle once the traffic stops.
const IDLE_WITHIN: Duration = Duration::from_secs(45);

const CALLS_FROM: &str = "127.0.0.1";
const ABUSE_FROM: &str = "127.0.0.6";
const JUNK_FROM: &str = "127.0.0.7";
const TCP_FROM: &str = "127.0.0.8";

#[test]
fn calls_come_and_go_with_junk_and_the_line_returns_to_idle() {
    if !["sipp", "espeak-ng", "sox", "ffmpeg"]
        .iter()
        .all(|t| have_tool(t))
    {
        return;
    }
    let soak = std::env::var("DAS_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(DEFAULT_SOAK, Duration::from_secs);
    let parish = Parish::new(
        "Compline",
        "The Lord almighty grant us a quiet night and a perfect end.",
        4.0,
    );
    let dir = parish.dir.path();
    let (first_port, last_port) = rtp_ports();
    let mut env = parish.env();
    env.extend([
        // The default log level, as in production: an hour at debug would
        // be gigabytes.
        ("RUST_LOG", String::new()),
        ("DAS_LOG_LEVEL", "info".to_owned()),
        // Ringing for half a second, so that CANCELs meet ringing calls.
        ("DAS_SIP_ANSWER_DELAY", "500ms".to_owned()),
        // sipp's and our client's calls share 127.0.0.1: above the
        // per-address call rate (tests/e2e/hostile.rs tries that on its own).
        ("DAS_SIP_MAX_CALL_RATE_PER_SOURCE", "50".to_owned()),
        // Room for sipp's dozen calls, the abandoned ones and ours.
        ("DAS_MEDIA_RTP_PORTS", format!("{first_port}-{last_port}")),
    ]);
    let mut line = Line::start(&env);
    let pid = line.pid();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");

    // Warm up: the first call decodes and caches the greeting and service.
    let warm = runtime.block_on(listen(&line, None));
    assert_eq!(clean(&warm), Ok(()), "the warm-up call");
    std::thread::sleep(Duration::from_secs(1));
    let idle_rss = procfs::settled_rss_kib(pid, Duration::from_secs(10));
    let idle_fds = procfs::fd_count(pid);
    let idle_fd_list = procfs::fds(pid);
    eprintln!("idle after the warm-up call: {idle_rss} KiB, {idle_fds} fds");

    let started = Instant::now();
    let until = started + soak;
    let sipp_calls = SIPP_RATE * (soak.as_secs() as u32).saturating_sub(5).max(1);
    let mut sipp = Command::new("sipp")
        .current_dir(dir)
        .args(["-sn", "uac", "-i", CALLS_FROM])
        .args(["-p", &free_udp_port().to_string()])
        .args(["-mp", &(free_udp_port() & !1).to_string()])
        .args([
            "-r",
            &SIPP_RATE.to_string(),
            "-d",
            &SIPP_CALL_MS.to_string(),
        ])
        .args(["-m", &sipp_calls.to_string(), "-l", "50"])
        .args(["-recv_timeout", "10s"])
        .args(["-timeout", &format!("{}s", soak.as_secs() + 60)])
        .args(["-trace_err", "-error_file"])
        .arg(dir.join("sipp-errors.log"))
        .arg("-nostdin")
        .arg(line.sip.to_string())
        .stdout(std::fs::File::create(dir.join("sipp.out")).expect("sipp.out"))
        .stderr(std::fs::File::create(dir.join("sipp.err")).expect("sipp.err"))
        .spawn()
        .expect("start sipp");

    let target = line.sip;
    let uri = line.uri();
    let listener = std::thread::spawn(move || listen_repeatedly(&uri, until));
    let abuse = std::thread::spawn(move || abuse(target, until));
    let junk = std::thread::spawn(move || udp_junk(target, until));
    let tcp = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(tcp_junk(target, until))
    });

    // Watch the line while the traffic runs.
    let (mut peak_rss, mut peak_fds) = (0, 0);
    while Instant::now() < until && line.is_running() {
        peak_rss = peak_rss.max(procfs::rss_kib(pid));
        peak_fds = peak_fds.max(procfs::fd_count(pid));
        std::thread::sleep(Duration::from_secs(1));
    }
    let listened = listener.join().expect("listener thread");
    let abused = abuse.join().expect("abuse thread");
    let junked = junk.join().expect("junk thread");
    let tcp = tcp.join().expect("TCP thread");
    let joined = Instant::now();
    let sipp_status = wait_bounded(&mut sipp, Duration::from_secs(60));
    eprintln!(
        "traffic threads done {:.1} s, sipp {:.1} s after the end of the soak",
        joined.saturating_duration_since(until).as_secs_f64(),
        until.elapsed().as_secs_f64()
    );
    let sipp_out = std::fs::read_to_string(dir.join("sipp.out")).unwrap_or_default();
    eprintln!(
        "{:.0} s of traffic: sipp {sipp_calls} calls ({sipp_status:?}); our client {} calls; \
         {abused}; {junked} junk datagrams; {tcp}; peak {peak_rss} KiB, {peak_fds} fds",
        soak.as_secs_f64(),
        listened.calls,
    );
    eprintln!("{}", sipp_summary(&sipp_out));

    let mut failures = Vec::new();
    if !sipp_status.is_some_and(|s| s.success()) {
        let errors = std::fs::read_to_string(dir.join("sipp-errors.log")).unwrap_or_default();
        let errors: String = errors.chars().take(3_000).collect();
        failures.push(format!(
            "sipp's calls did not all succeed ({sipp_status:?}):\n{}\n{errors}",
            sipp_summary(&sipp_out)
        ));
    }
    failures.extend(listened.failures);
    if abused.cancelled * 5 < abused.cancels * 4 {
        failures.push(format!(
            "CANCEL while ringing rarely ended in 487: {abused}"
        ));
    }
    if tcp.options_answered == 0 {
        failures.push(format!("no OPTIONS over TCP was answered: {tcp}"));
    }

    // Back to idle: descriptors, RTP ports, memory.
    let rtp_range = first_port..=last_port;
    let deadline = Instant::now() + IDLE_WITHIN;
    let (mut rss, mut fds, mut rtp_sockets);
    loop {
        rss = procfs::rss_kib(pid);
        fds = procfs::fd_count(pid);
        rtp_sockets = procfs::udp_ports(pid)
            .into_iter()
            .filter(|p| rtp_range.contains(p))
            .collect::<Vec<_>>();
        let back = fds <= idle_fds + FD_MARGIN
            && rtp_sockets.is_empty()
            && rss <= idle_rss + RSS_MARGIN_KIB;
        if back || Instant::now() >= deadline || !line.is_running() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "after: {rss} KiB (idle {idle_rss}), {fds} fds (idle {idle_fds}), RTP sockets {rtp_sockets:?}, \
         {:.0} s after the traffic stopped",
        until.elapsed().as_secs_f64()
    );
    if !line.is_running() {
        failures.push(format!("the line exited:\n{}", line.log_text()));
    }
    if fds > idle_fds + FD_MARGIN {
        failures.push(format!(
            "{fds} descriptors open, {idle_fds} at idle.\nnow:\n{}\nat idle:\n{}",
            procfs::fds(pid).join("\n"),
            idle_fd_list.join("\n")
        ));
    }
    if !rtp_sockets.is_empty() {
        failures.push(format!(
            "UDP sockets still bound in the RTP range: {rtp_sockets:?}"
        ));
    }
    if rss > idle_rss + RSS_MARGIN_KIB {
        failures.push(format!(
            "resident memory {rss} KiB, {idle_rss} KiB after the warm-up call"
        ));
    }

    // Still a phone line.
    if line.is_running() {
        if !answers_options(&line) {
            failures.push("the line does not answer an OPTIONS after the soak".to_owned());
        }
        let last = runtime.block_on(listen(&line, None));
        if let Err(problem) = clean(&last) {
            failures.push(format!("the last call: {problem}"));
        }
    }
    let errors: Vec<String> = line
        .log
        .lock()
        .expect("log lock")
        .iter()
        .filter(|l| l.contains(" ERROR ") || l.contains("panicked"))
        .cloned()
        .collect();
    if !errors.is_empty() {
        failures.push(format!("errors in the log:\n{}", errors.join("\n")));
    }
    {
        // One guard: the log's mutex is not reentrant.
        let log = line.log.lock().expect("log lock");
        eprintln!(
            "the log (info) has {} lines; by kind:\n{}",
            log.len(),
            by_kind(&log)
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// This test binary's RTP ports, widened: `rtp_range` gives each test
/// process 1,000 ports and each line in it 40; this process starts one line.
fn rtp_ports() -> (u16, u16) {
    let range = rtp_range();
    let first: u16 = range
        .split('-')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port range");
    (first, first + 199)
}

/// One call from our client: to the line's goodbye, or for `seconds`.
async fn listen(line: &Line, seconds: Option<u64>) -> CallReport {
    call(&line.uri(), seconds).await
}

async fn call(uri: &str, seconds: Option<u64>) -> CallReport {
    let mut options = CallOptions::new(uri, Codec::Pcmu);
    options.seconds = seconds.map(Duration::from_secs);
    place_call(options).await.expect("the call runs")
}

/// Answered, heard, one clean stream.
fn clean(report: &CallReport) -> Result<(), String> {
    let s = &report.stats;
    if report.final_status != 200
        || matches!(report.hung_up_by, HangUp::Failed(_))
        || s.packets < 100
        || !s.seq_contiguous
        || s.lost != 0
        || s.ssrcs.len() != 1
    {
        return Err(report.summary());
    }
    Ok(())
}

struct Listened {
    calls: usize,
    failures: Vec<String>,
}

/// Our client's calls, one after another until `until`: every other one to
/// the end, the rest for three seconds.
fn listen_repeatedly(uri: &str, until: Instant) -> Listened {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut out = Listened {
        calls: 0,
        failures: Vec::new(),
    };
    // The longest call (greeting, service, goodbye) ends before `until`.
    while Instant::now() + Duration::from_secs(20) < until {
        let seconds = (out.calls % 2 == 1).then_some(3);
        let report = runtime.block_on(call(uri, seconds));
        if let Err(problem) = clean(&report) {
            out.failures
                .push(format!("our client's call {}: {problem}", out.calls + 1));
        }
        out.calls += 1;
        std::thread::sleep(Duration::from_secs(2));
    }
    out
}

#[derive(Default)]
struct Abused {
    abandoned: usize,
    cancels: usize,
    cancelled: usize,
    strays: usize,
    options: usize,
    no_codec: usize,
}

impl std::fmt::Display for Abused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} calls abandoned unACKed, {} CANCELs ({} ended in 487), {} requests for no dialog, \
             {} OPTIONS, {} offers with no common codec",
            self.abandoned, self.cancels, self.cancelled, self.strays, self.options, self.no_codec
        )
    }
}

/// Requests that are legal but lead nowhere, from [`ABUSE_FROM`].
fn abuse(line: SocketAddr, until: Instant) -> Abused {
    let mut out = Abused::default();
    let mut i = 0u32;
    while Instant::now() < until {
        let mut uac = RawUac::new_on(line, ABUSE_FROM);
        let branch = format!("z9hG4bK-abuse-{i}");
        match i % 7 {
            0 if Instant::now() + ABANDON_QUIET < until => {
                // INVITE, then silence: the line resends its 200 and gives
                // up after 64·T1.
                uac.send(&uac.request("INVITE", &branch, 1, &uac.offer("0")));
                out.abandoned += 1;
            }
            1 | 4 => {
                uac.send(&uac.request("INVITE", &branch, 1, &uac.offer("0")));
                if uac.wait_for_status(180, Duration::from_secs(2)).is_some() {
                    out.cancels += 1;
                    uac.send(&uac.request("CANCEL", &branch, 1, ""));
                    if let Some(terminated) = uac.wait_for_status(487, Duration::from_secs(2)) {
                        out.cancelled += 1;
                        uac.to_tag = to_tag(&terminated);
                        uac.send(&uac.request("ACK", &branch, 1, ""));
                    }
                }
            }
            2 | 6 => {
                uac.to_tag = Some("no-such-dialog".to_owned());
                let method = if i % 7 == 2 { "BYE" } else { "INFO" };
                uac.send(&uac.request(method, &branch, 2, ""));
                out.strays += 1;
            }
            3 => {
                uac.send(&uac.request("OPTIONS", &branch, 1, ""));
                out.options += 1;
            }
            5 => {
                uac.send(&uac.request("INVITE", &branch, 1, &uac.offer("18 9")));
                out.no_codec += 1;
            }
            _ => {}
        }
        // Read what came back, so the answers are really sent and received.
        let _ = uac.receive_for(Duration::from_millis(300));
        i += 1;
        std::thread::sleep(Duration::from_millis(400));
    }
    out
}

/// A xorshift generator: junk that is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A well-formed INVITE from `from` over `transport`, to cut up and spoil.
fn invite(line: SocketAddr, from: &str, transport: &str, i: usize) -> String {
    let sdp = "v=0\r\no=j 1 1 IN IP4 127.0.0.7\r\ns=-\r\nc=IN IP4 127.0.0.7\r\nt=0 0\r\n\
               m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    format!(
        "INVITE sip:service@{line} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {from}:5060;branch=z9hG4bK-junk-{i};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:junk@{from}>;tag=junk-{i}\r\n\
         To: <sip:service@{line}>\r\n\
         Call-ID: junk-{i}@{from}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:junk@{from}:5060>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// Junk datagrams from [`JUNK_FROM`], 50 a second.
fn udp_junk(line: SocketAddr, until: Instant) -> usize {
    let socket = UdpSocket::bind((JUNK_FROM, 0)).expect("bind junk socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(1)))
        .expect("timeout");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut sent = 0;
    let mut buf = vec![0u8; 65_535];
    while Instant::now() < until {
        let whole = invite(line, JUNK_FROM, "UDP", sent);
        let datagram: Vec<u8> = match sent % 9 {
            0 => {
                let n = 1 + rng.below(1_400);
                rng.bytes(n)
            }
            1 => whole.as_bytes()[..rng.below(whole.len())].to_vec(),
            2 => format!(
                "ÍNVÍTÉ sip:☃@{line} SIP/2.0\r\nVia: SIP/2.0/UDP {JUNK_FROM}:5060;branch=z9hG4bK-ü{sent}\r\n\
                 From: \"Ωμέγα\" <sip:ω@例え.jp>;tag=é\r\nTo: <sip:service@{line}>\r\nCall-ID: ☃{sent}\r\n\
                 CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
            )
            .into_bytes(),
            3 => whole
                .replacen("Max-Forwards: 70\r\n", &format!("X-Junk: {}\r\n", "a".repeat(60_000)), 1)
                .into_bytes(),
            4 => whole
                .replacen(
                    "Max-Forwards: 70\r\n",
                    &format!("Via: SIP/2.0/UDP {JUNK_FROM}:5060;branch=z9hG4bK-v\r\n").repeat(2_000),
                    1,
                )
                .into_bytes(),
            5 => whole
                .replacen("Content-Length: ", "Content-Length: 99999", 1)
                .into_bytes(),
            6 => {
                let mut d = b"SIP/2.0 200 OK\r\n".to_vec();
                d.extend(rng.bytes(200));
                d
            }
            7 => {
                let mut d = whole.into_bytes();
                for _ in 0..8 {
                    let at = rng.below(d.len());
                    d[at] = 0;
                }
                d
            }
            _ => String::from_utf8_lossy(&rng.bytes(600)).into_owned().into_bytes(),
        };
        let _ = socket.send_to(&datagram, line);
        // Drain the answers (400s and the like) so they do not pile up.
        while socket.recv_from(&mut buf).is_ok() {}
        sent += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    sent
}

#[derive(Default)]
struct TcpJunk {
    connections: usize,
    refused: usize,
    held: usize,
    closed_by_line: usize,
    burst_closed: usize,
    options_answered: usize,
}

impl std::fmt::Display for TcpJunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TCP: {} connections ({} refused, {} closed at once past the per-source cap), \
             {} half-messages held open, {} oversized headers cut off by the line, {} OPTIONS answered",
            self.connections,
            self.refused,
            self.burst_closed,
            self.held,
            self.closed_by_line,
            self.options_answered
        )
    }
}

async fn connect(line: SocketAddr, out: &mut TcpJunk) -> Option<tokio::net::TcpStream> {
    out.connections += 1;
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket
        .bind(format!("{TCP_FROM}:0").parse().expect("address"))
        .ok()?;
    match tokio::time::timeout(Duration::from_secs(1), socket.connect(line)).await {
        Ok(Ok(stream)) => Some(stream),
        _ => {
            out.refused += 1;
            None
        }
    }
}

/// Reads until the line closes the connection (or `wait` passes): true if
/// it closed it.
async fn closed_within(stream: &mut tokio::net::TcpStream, wait: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4_096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// Junk over TCP from [`TCP_FROM`], four connections a second.
async fn tcp_junk(line: SocketAddr, until: Instant) -> TcpJunk {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut out = TcpJunk::default();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut held: Vec<(Instant, tokio::net::TcpStream)> = Vec::new();
    let mut i = 0usize;
    while Instant::now() < until {
        held.retain(|(at, _)| at.elapsed() < Duration::from_secs(8));
        match i % 6 {
            0 => {
                if let Some(mut s) = connect(line, &mut out).await {
                    let n = 1 + rng.below(4_000);
                    let _ = s.write_all(&rng.bytes(n)).await;
                }
            }
            1 if held.len() < 6 => {
                if let Some(mut s) = connect(line, &mut out).await {
                    let whole = invite(line, TCP_FROM, "TCP", i);
                    let cut = rng.below(whole.len() / 2);
                    let _ = s.write_all(&whole.as_bytes()[..cut]).await;
                    out.held += 1;
                    held.push((Instant::now(), s));
                }
            }
            2 => {
                if let Some(mut s) = connect(line, &mut out).await {
                    let long = format!(
                        "OPTIONS sip:service@{line} SIP/2.0\r\nX-Long: {}",
                        "b".repeat(70 * 1024)
                    );
                    let _ = s.write_all(long.as_bytes()).await;
                    if closed_within(&mut s, Duration::from_secs(2)).await {
                        out.closed_by_line += 1;
                    }
                }
            }
            3 => {
                if let Some(mut s) = connect(line, &mut out).await {
                    let local = s.local_addr().expect("local addr");
                    let options = format!(
                        "OPTIONS sip:service@{line} SIP/2.0\r\n\
                         Via: SIP/2.0/TCP {local};branch=z9hG4bK-tcp-{i}\r\n\
                         Max-Forwards: 70\r\nFrom: <sip:junk@{local}>;tag=t{i}\r\n\
                         To: <sip:service@{line}>\r\nCall-ID: tcp-{i}@{TCP_FROM}\r\n\
                         CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
                    );
                    let _ = s.write_all(options.as_bytes()).await;
                    let mut buf = vec![0u8; 4_096];
                    let read = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await;
                    if let Ok(Ok(n)) = read
                        && buf[..n].starts_with(b"SIP/2.0 200")
                    {
                        out.options_answered += 1;
                    }
                }
            }
            4 => {
                // More connections at once than one address may have.
                let mut burst = Vec::new();
                for _ in 0..20 {
                    if let Some(s) = connect(line, &mut out).await {
                        burst.push(s);
                    }
                }
                for s in &mut burst {
                    if closed_within(s, Duration::from_millis(50)).await {
                        out.burst_closed += 1;
                    }
                }
                drop(burst);
            }
            5 => {
                if let Some(mut s) = connect(line, &mut out).await {
                    let lie = format!(
                        "OPTIONS sip:service@{line} SIP/2.0\r\nVia: SIP/2.0/TCP {TCP_FROM}:5060;branch=z9hG4bK-cl{i}\r\n\
                         Content-Length: 100000\r\n\r\nshort"
                    );
                    let _ = s.write_all(lie.as_bytes()).await;
                    held.push((Instant::now(), s));
                }
            }
            _ => {}
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    out
}

fn answers_options(line: &Line) -> bool {
    let uac = RawUac::new(line.sip);
    (0..4).any(|i| {
        uac.send(&uac.request("OPTIONS", &format!("z9hG4bK-end-{i}"), 1, ""));
        uac.wait_for_status(200, Duration::from_millis(500))
            .is_some()
    })
}

/// Log lines counted by message, without the time and the fields that vary.
fn by_kind(lines: &[String]) -> String {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for line in lines {
        // "2026-…Z  INFO message key=value …": the level and the message.
        let rest = line.split_once(' ').map_or(line.as_str(), |(_, r)| r);
        let kind: String = rest
            .split_whitespace()
            .take_while(|w| !w.contains('='))
            .collect::<Vec<_>>()
            .join(" ");
        *counts.entry(kind).or_default() += 1;
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    counts
        .iter()
        .map(|(kind, n)| format!("{n:>6}  {kind}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// sipp's message table and totals from its final screen.
fn sipp_summary(out: &str) -> String {
    out.lines()
        .filter(|l| {
            [
                "---------->",
                "<----------",
                "Successful call",
                "Failed call",
            ]
            .iter()
            .any(|k| l.contains(k))
        })
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits for `child` at most `limit`, then kills it (it is ours).
fn wait_bounded(
    child: &mut std::process::Child,
    limit: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

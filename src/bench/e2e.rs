//! `dial-a-service bench --through-sip`: what callers get from the whole
//! line under load. The real binary runs as a child with a config of its
//! own; sipp places N listen-only calls at a set rate and hangs each up
//! after the measurement; `/proc` gives the line's CPU and memory idle,
//! with every call up, and at the end; dumpcap captures the RTP of one call
//! in `sample` (a kernel filter on the line's source port, so the capture
//! cannot starve the line), and [`rtp_report`] turns it into loss, gaps,
//! lateness and drift.
//!
//! Sampling: the line takes RTP ports in pairs from the start of its range
//! in order (media/ports.rs), RTP on the even port. With the range starting
//! at a multiple of 2·sample, `(udp[0:2] & (2·sample − 1)) == 0` keeps the
//! RTP of every sample-th pair and no RTCP. Which calls those are is read
//! from the line's own sockets once all calls are up, so a pair skipped
//! because another process held it does not fool the check.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::bench::peers::{self, PeerError, Processes};
use crate::bench::procfs;
use crate::bench::report::{E2eReport, Measured, SetupTimes};
use crate::bench::rtp_report;
use crate::bench::setup::{self, SetupLoad};
use crate::config::PortRange;
use crate::media::Codec;

/// The sipp scenario: INVITE, ACK, listen for `-d`, BYE.
const SCENARIO: &str = include_str!("../../bench/sipp_listen_hold.xml");

/// From all calls up to the start of the measurement: the last calls' first
/// packets and the line's setup work settle.
const SETTLE: Duration = Duration::from_secs(2);
/// A line using less of a core than this has finished starting.
const QUIET: f64 = 0.05;
/// Calls hold this much beyond the measurement, so none hangs up inside it.
const HOLD_MARGIN: Duration = Duration::from_secs(4);
/// Enough of each packet for the RTP header behind IP and UDP.
const HEADERS: u16 = 96;
/// The capture of the sampled streams, in [`Processes`].
const CAPTURE: &str = "dumpcap";

#[derive(Debug, Clone)]
pub struct E2eOptions {
    pub calls: usize,
    /// How long to measure once every call is up.
    pub seconds: f64,
    pub codec: Codec,
    /// Capture one call in this many (a power of two; 1 captures all).
    pub sample: u16,
    /// New calls a second.
    pub rate: u32,
    /// The line's RTP ports; its start is rounded up to a multiple of 2·sample.
    pub rtp_ports: PortRange,
    /// The prompt library and apology the line greets with (`audio/`).
    pub library: PathBuf,
    /// Keep the work folder (config, logs, sipp's files, the capture) even
    /// when the run passed; it is always kept after a failure.
    pub keep: bool,
    /// The line to measure: another build of dial-a-service (an older
    /// commit, to compare); `None` runs this executable.
    pub line: Option<PathBuf>,
    /// The callers send back what they hear (sipp's `-rtp_echo`), so the
    /// line has audio from every caller to listen to for keys.
    pub echo: bool,
    /// The line listens for in-band key tones on every codec (`Some(true)`),
    /// on none, or as it does by default (on G.711 calls only).
    pub inband: Option<bool>,
    /// More calls set up while the others stream, timed one by one.
    pub setup: Option<SetupLoad>,
}

#[derive(Debug, thiserror::Error)]
pub enum E2eError {
    #[error("--sample must be a power of two from 1 to 4096, not {0}")]
    Sample(u16),
    #[error(
        "--calls, --rate, --setup-calls and --setup-rate must be at least 1, and --seconds at least 1"
    )]
    Load,
    #[error("the RTP ports {range} hold {pairs} aligned pairs, fewer than {calls} calls")]
    PortsTooFew {
        range: String,
        pairs: usize,
        calls: usize,
    },
    #[error("no free local port found for {0}")]
    NoFreePort(&'static str),
    #[error(
        "{0} is missing: run from the repository root, or give an audio/ with prompts/ and apology.wav"
    )]
    Library(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the benchmark audio: {0}")]
    Audio(#[from] hound::Error),
    #[error(transparent)]
    Peer(#[from] PeerError),
    #[error("the line exited ({status}) before answering; its log:\n{log}")]
    LineExited { status: String, log: String },
    #[error("the line did not answer OPTIONS on {sip} within {waited:?}; its log:\n{log}")]
    LineSilent {
        sip: SocketAddr,
        waited: Duration,
        log: String,
    },
    #[error("{source}\n(the config, the line's log and sipp's files are kept in {dir})")]
    Kept { dir: PathBuf, source: Box<E2eError> },
}

/// A folder of our own under the system's temp dir, removed at the end
/// unless kept for a look after a failure.
struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl WorkDir {
    fn new() -> Result<WorkDir, E2eError> {
        let path = std::env::temp_dir().join(format!("das-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(path.join("audio")).map_err(|source| E2eError::Write {
            path: path.clone(),
            source,
        })?;
        Ok(WorkDir { path, keep: false })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Runs the bench: blocks for the ramp, the measurement and the hang-ups.
/// The report's `problems` list what failed the sanity checks (the work
/// dir is then kept and named in `work_dir`).
pub fn run(options: &E2eOptions) -> Result<E2eReport, E2eError> {
    let (rtp, library) = prepare(options)?;
    let mut dir = WorkDir::new()?;
    match run_in(options, &dir.path, rtp, &library) {
        Ok(mut report) => {
            if options.keep || !report.problems.is_empty() {
                dir.keep = true;
                report.work_dir = Some(dir.path.clone());
            }
            Ok(report)
        }
        Err(error) => {
            dir.keep = true;
            Err(E2eError::Kept {
                dir: dir.path.clone(),
                source: Box::new(error),
            })
        }
    }
}

/// The options make sense and the tools are there, before anything starts:
/// the RTP range aligned for sampling, and the prompt library's folder.
fn prepare(options: &E2eOptions) -> Result<(PortRange, PathBuf), E2eError> {
    if !options.sample.is_power_of_two() || options.sample > 4096 {
        return Err(E2eError::Sample(options.sample));
    }
    let setup_empty = options
        .setup
        .is_some_and(|load| load.calls == 0 || load.rate == 0);
    if options.calls == 0
        || options.rate == 0
        || setup_empty
        || options.seconds.is_nan()
        || options.seconds < 1.0
    {
        return Err(E2eError::Load);
    }
    peers::require("sipp", "sip-tester")?;
    peers::require("dumpcap", "wireshark-common")?;
    peers::require("tshark", "tshark")?;
    let rtp = aligned_range(options)?;
    let library = options
        .library
        .canonicalize()
        .map_err(|_| E2eError::Library(options.library.clone()))?;
    for needed in [library.join("prompts"), library.join("apology.wav")] {
        if !needed.exists() {
            return Err(E2eError::Library(needed));
        }
    }
    Ok((rtp, library))
}

fn run_in(
    options: &E2eOptions,
    dir: &Path,
    rtp: PortRange,
    library: &Path,
) -> Result<E2eReport, E2eError> {
    let ramp = Duration::from_secs_f64(options.calls as f64 / f64::from(options.rate));
    // The setup load runs inside the measurement, with a second to spare.
    let window = Duration::from_secs_f64(options.seconds).max(
        options.setup.map_or(Duration::ZERO, |load| {
            load.duration() + Duration::from_secs(1)
        }),
    );
    // Each call listens through the ramp after it (at most), the wait for
    // the last calls, the settling and the measurement.
    let hold = ramp.mul_f64(1.5) + SETTLE + window + HOLD_MARGIN;
    let mut ports = FreePorts::outside(rtp);
    let sip_port = ports.next(4, true, "the line's SIP")?;
    let sipp_port = ports.next(2, false, "sipp's SIP")?;
    let media_port = ports.next(4, false, "sipp's media")?;
    let setup_ports = match options.setup {
        Some(_) => Some(setup::Ports {
            sip: ports.next(2, false, "the setup sipp's SIP")?,
            media: ports.next(4, false, "the setup sipp's media")?,
        }),
        None => None,
    };
    let sip = SocketAddr::from(([127, 0, 0, 1], sip_port));

    write_content(dir, hold + ramp + Duration::from_secs(60))?;
    let config = dir.join("dial-a-service.toml");
    let max_calls = options.calls + options.setup.map_or(0, |load| load.calls);
    write(
        &config,
        &line_config(sip, rtp, max_calls, options.inband, library),
    )?;
    let scenario = dir.join("sipp_listen_hold.xml");
    write(&scenario, SCENARIO)?;

    let mut processes = Processes::default();
    let line_log = dir.join("line.log");
    let line = start_line(&mut processes, options.line.as_deref(), &config, &line_log)?;
    wait_answering(&mut processes, sip, &line_log)?;

    let (idle, idle_end) = wait_quiet(line);

    let capture_file = dir.join("rtp.pcapng");
    let filter = format!(
        "udp and src host 127.0.0.1 and dst port {media_port} and src portrange {}-{} \
         and (udp[0:2] & {}) == 0",
        rtp.first,
        rtp.last,
        2 * u32::from(options.sample) - 1
    );
    let capture_lines =
        peers::start_capture(&mut processes, CAPTURE, &capture_file, &filter, HEADERS)?;

    let (pt, rtpmap) = offer(options.codec);
    let stat_file = dir.join("sipp-stat.csv");
    let mut sipp = Command::new("sipp");
    if options.echo {
        sipp.arg("-rtp_echo");
    }
    processes.spawn(
        "sipp",
        sipp.current_dir(dir)
            .arg("-sf")
            .arg(&scenario)
            .args(["-i", "127.0.0.1", "-p", &sipp_port.to_string()])
            .args(["-mp", &media_port.to_string()])
            .args(["-l", &options.calls.to_string()])
            .args(["-m", &options.calls.to_string()])
            .args(["-r", &options.rate.to_string(), "-rp", "1000"])
            .args(["-d", &hold.as_millis().to_string()])
            .args(["-key", "pt", &pt.to_string(), "-key", "rtpmap", rtpmap])
            .args(["-trace_stat", "-fd", "1", "-stf"])
            .arg(&stat_file)
            .args(["-trace_rtt", "-rtt_freq", "1"])
            .args(["-trace_err", "-error_file"])
            .arg(dir.join("sipp-errors.log"))
            .args(["-timeout", &format!("{}s", (hold + ramp).as_secs() + 60)])
            .args(["-timeout_error", "-nostdin"])
            .arg(sip.to_string())
            .stdin(Stdio::null())
            .stdout(log_file(&dir.join("sipp.out"))?)
            .stderr(log_file(&dir.join("sipp.err"))?),
    )?;
    let sipp_started = Instant::now();

    // All calls up: the line holds an RTP pair for each.
    let mut calls_up = 0;
    let up_deadline = Instant::now() + ramp.mul_f64(1.5) + Duration::from_secs(10);
    while Instant::now() < up_deadline {
        calls_up = rtp_ports(line, rtp).len();
        if calls_up >= options.calls || processes.try_exited("sipp").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(SETTLE);
    let sampled_ports: Vec<u16> = rtp_ports(line, rtp)
        .into_iter()
        .filter(|port| (port - rtp.first).is_multiple_of(2 * options.sample))
        .collect();
    let loaded = sample_line(line);
    let setup_run = match (options.setup, setup_ports) {
        (Some(load), Some(ports)) => Some(setup::start(
            &mut processes,
            dir,
            &scenario,
            sip,
            ports,
            load,
            (pt, rtpmap),
        )?),
        _ => None,
    };
    std::thread::sleep(window);
    let end = sample_line(line);
    let calls_at_end = rtp_ports(line, rtp).len();
    let setup_report = match setup_run {
        Some(running) => Some(setup::finish(&mut processes, running)?),
        None => None,
    };

    processes.stop(CAPTURE, libc::SIGINT, Duration::from_secs(10));
    // Its last lines (the drop count) come once its stderr closes.
    let mut closing = Vec::new();
    while let Ok(line) = capture_lines.recv_timeout(Duration::from_secs(2)) {
        closing.push(line);
    }
    let capture_drops = peers::capture_drops(&closing);

    let sipp_left = (hold + ramp + Duration::from_secs(30)).saturating_sub(sipp_started.elapsed());
    let sipp_status = processes
        .wait_exit("sipp", sipp_left)
        .or_else(|| processes.stop("sipp", libc::SIGTERM, Duration::from_secs(2)));
    processes.stop("line", libc::SIGTERM, Duration::from_secs(5));

    let stats = peers::sipp_final_stats(&stat_file);
    let count = |name: &str| stats.get(name).and_then(|v| v.trim().parse::<u64>().ok());
    let packets = peers::read_capture(&capture_file, media_port)?;
    let rtp_report = rtp_report::analyse(&packets, options.codec.clock_rate_hz());

    let mut report = E2eReport {
        calls: options.calls,
        codec: options.codec.config_name(),
        rate: options.rate,
        sample: options.sample,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        calls_up: calls_up.min(options.calls),
        calls_at_end,
        sipp_exit: sipp_status.and_then(|s| s.code()),
        sipp_successful: count("SuccessfulCall(C)"),
        sipp_failed: count("FailedCall(C)"),
        setup: SetupTimes::from_sorted(&peers::sipp_setup_times(dir)),
        idle: Measured::between(&idle, &idle_end, 0),
        loaded: Measured::between(&loaded, &end, calls_up),
        rss_idle_kib: idle_end.rss_kib,
        rss_loaded_kib: loaded.rss_kib,
        rss_end_kib: end.rss_kib,
        sampled_ports,
        capture_drops,
        rtp: rtp_report,
        echo: options.echo,
        inband: options.inband,
        setup_load: setup_report,
        problems: Vec::new(),
        work_dir: None,
    };
    report.problems = report.sanity();
    Ok(report)
}

/// The RTP range, its start rounded up to a multiple of 2·sample.
fn aligned_range(options: &E2eOptions) -> Result<PortRange, E2eError> {
    let step = 2 * u32::from(options.sample);
    let first = u32::from(options.rtp_ports.first).next_multiple_of(step);
    let last = u32::from(options.rtp_ports.last);
    let pairs = (last + 1).saturating_sub(first) as usize / 2;
    if pairs < options.calls || first > last {
        return Err(E2eError::PortsTooFew {
            range: options.rtp_ports.to_string(),
            pairs,
            calls: options.calls,
        });
    }
    Ok(PortRange {
        first: u16::try_from(first).expect("first ≤ last, a u16"),
        last: options.rtp_ports.last,
    })
}

/// Free local ports for the peers, outside the line's RTP range and apart
/// from each other (a probe's port may be handed out again once dropped).
struct FreePorts {
    rtp: PortRange,
    taken: Vec<std::ops::Range<u16>>,
}

impl FreePorts {
    fn outside(rtp: PortRange) -> FreePorts {
        FreePorts {
            rtp,
            taken: Vec::new(),
        }
    }

    /// `count` consecutive UDP ports from a multiple of 4 (and TCP on the
    /// first when `tcp`), free now.
    fn next(&mut self, count: u16, tcp: bool, what: &'static str) -> Result<u16, E2eError> {
        for _ in 0..200 {
            let probe = UdpSocket::bind("127.0.0.1:0").map_err(|_| E2eError::NoFreePort(what))?;
            let port = probe
                .local_addr()
                .map_err(|_| E2eError::NoFreePort(what))?
                .port()
                & !3;
            drop(probe);
            let Some(end) = port.checked_add(count) else {
                continue;
            };
            let overlaps = |range: &std::ops::Range<u16>| port < range.end && end > range.start;
            if port < 1024
                || (port <= self.rtp.last && end > self.rtp.first)
                || self.taken.iter().any(overlaps)
            {
                continue;
            }
            let udp_free = (port..end).all(|p| UdpSocket::bind(("127.0.0.1", p)).is_ok());
            if udp_free && (!tcp || std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()) {
                self.taken.push(port..end);
                return Ok(port);
            }
        }
        Err(E2eError::NoFreePort(what))
    }
}

/// The payload type and rtpmap sipp offers.
fn offer(codec: Codec) -> (u8, &'static str) {
    match codec {
        Codec::Pcmu => (0, "PCMU/8000"),
        Codec::Pcma => (8, "PCMA/8000"),
        Codec::Opus => (111, "opus/48000/2"),
    }
}

fn write(path: &Path, text: &str) -> Result<(), E2eError> {
    std::fs::write(path, text).map_err(|source| E2eError::Write {
        path: path.to_owned(),
        source,
    })
}

fn log_file(path: &Path) -> Result<std::fs::File, E2eError> {
    std::fs::File::create(path).map_err(|source| E2eError::Write {
        path: path.to_owned(),
        source,
    })
}

/// The line's config: loopback, trusting loopback (so one address's calls
/// are not held to the per-address limits), no admin listener, no calls to
/// itself (measured with the rest).
fn line_config(
    sip: SocketAddr,
    rtp: PortRange,
    calls: usize,
    inband: Option<bool>,
    library: &Path,
) -> String {
    format!(
        r#"# Written by `dial-a-service bench --through-sip`.
[sip]
listen = "{sip}"
max_calls = {max_calls}
trust = ["127.0.0.1/32"]

[media]
rtp_ports = "{rtp}"

[source]
schedule = "data.json"
audio = "audio"

[audio]
apology = "{apology}"
prompts = "{prompts}"

[line]
shutdown_grace = "2s"

{dtmf}
[cache]
dir = "cache"

[admin]
listen = ""

[self_test]
interval = 0
"#,
        max_calls = calls + calls / 10 + 10,
        dtmf = match inband {
            Some(true) =>
                "[dtmf]\nmethods = [\"rfc4733\", \"info\", \"inband\"]\ninband_opus = true\n",
            Some(false) => "[dtmf]\nmethods = [\"rfc4733\", \"info\"]\n",
            None => "",
        },
        apology = library.join("apology.wav").display(),
        prompts = library.join("prompts").display(),
    )
}

/// One service longer than `length`, its title and the church's name as
/// recordings (so no speech synthesis runs during the bench), and the
/// schedule naming them.
fn write_content(dir: &Path, length: Duration) -> Result<(), E2eError> {
    let audio = dir.join("audio");
    write_tone(&audio.join("service.wav"), length, 300.0, 3400.0)?;
    write_tone(
        &audio.join("church.wav"),
        Duration::from_secs(1),
        440.0,
        880.0,
    )?;
    write_tone(
        &audio.join("title.wav"),
        Duration::from_secs(1),
        660.0,
        990.0,
    )?;
    write(
        &dir.join("data.json"),
        r#"{ "church_name": "Bench Church", "church_name_audio": "church.wav",
  "services": [ { "title": "Bench", "title_audio": "title.wav",
    "datetime": "2024-01-07T10:00:00+0000", "file": "service.wav" } ] }
"#,
    )
}

/// 16 kHz mono: a sweep from `low_hz` to `high_hz` over 10 s, repeated;
/// real content for the encoders (silence would compress away in Opus).
fn write_tone(path: &Path, length: Duration, low_hz: f64, high_hz: f64) -> Result<(), E2eError> {
    const RATE_HZ: u32 = 16_000;
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE_HZ,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec)?;
    let period = 10.0;
    let mut phase = 0.0f64;
    let samples = (length.as_secs_f64() * f64::from(RATE_HZ)) as u64;
    for n in 0..samples {
        let t = (n as f64 / f64::from(RATE_HZ)) % period;
        let hz = low_hz + (high_hz - low_hz) * t / period;
        phase = (phase + std::f64::consts::TAU * hz / f64::from(RATE_HZ)) % std::f64::consts::TAU;
        writer.write_sample((phase.sin() * 0.3 * f64::from(i16::MAX)) as i16)?;
    }
    writer.finalize()?;
    Ok(())
}

/// `<this executable (or --line)> run --config <config>`, its log to `log`.
fn start_line(
    processes: &mut Processes,
    line: Option<&Path>,
    config: &Path,
    log: &Path,
) -> Result<u32, E2eError> {
    let exe = match line {
        Some(line) => line.to_path_buf(),
        None => std::env::current_exe().map_err(|source| PeerError::Spawn {
            program: "dial-a-service",
            source,
        })?,
    };
    let mut command = Command::new(exe);
    // The line refuses DAS_ variables that are no key of its; the config
    // file says everything.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("DAS_") {
            command.env_remove(name);
        }
    }
    let out = log_file(log)?;
    let err = out.try_clone().map_err(|source| E2eError::Write {
        path: log.to_owned(),
        source,
    })?;
    command
        .args(["run", "--config"])
        .arg(config)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    Ok(processes.spawn("line", &mut command)?)
}

/// Sends OPTIONS until the line answers.
fn wait_answering(processes: &mut Processes, sip: SocketAddr, log: &Path) -> Result<(), E2eError> {
    let read_log = || std::fs::read_to_string(log).unwrap_or_default();
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|source| PeerError::Spawn {
        program: "the OPTIONS probe",
        source,
    })?;
    let local = socket.local_addr().map_err(|source| PeerError::Spawn {
        program: "the OPTIONS probe",
        source,
    })?;
    let _ = socket.set_read_timeout(Some(Duration::from_millis(200)));
    let waited = Duration::from_secs(30);
    let deadline = Instant::now() + waited;
    let mut buf = [0u8; 4096];
    for cseq in 1.. {
        if let Some(status) = processes.try_exited("line") {
            return Err(E2eError::LineExited {
                status: status.to_string(),
                log: read_log(),
            });
        }
        if Instant::now() >= deadline {
            break;
        }
        let options = format!(
            "OPTIONS sip:{sip} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-bench-{cseq};rport\r\n\
             From: <sip:bench@{local}>;tag=bench\r\n\
             To: <sip:{sip}>\r\n\
             Call-ID: bench-{pid}@127.0.0.1\r\n\
             CSeq: {cseq} OPTIONS\r\n\
             Max-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n",
            pid = std::process::id()
        );
        let _ = socket.send_to(options.as_bytes(), sip);
        if let Ok((n, _)) = socket.recv_from(&mut buf)
            && buf[..n].starts_with(b"SIP/2.0 ")
        {
            return Ok(());
        }
    }
    Err(E2eError::LineSilent {
        sip,
        waited,
        log: read_log(),
    })
}

/// The line's CPU so far and memory now, at `at`.
#[derive(Debug, Clone, Copy)]
pub struct LineSample {
    pub at: Instant,
    pub cpu: Duration,
    pub rss_kib: u64,
}

fn sample_line(pid: u32) -> LineSample {
    LineSample {
        at: Instant::now(),
        cpu: procfs::cpu_time(pid).unwrap_or_default(),
        rss_kib: procfs::rss_kib(pid).unwrap_or_default(),
    }
}

/// Idle: once the line's start-up work (preparing the service and the
/// prompts) is done, a second of it listening with no call. Waits for a
/// second under [`QUIET`], at most a minute.
fn wait_quiet(pid: u32) -> (LineSample, LineSample) {
    let mut start = sample_line(pid);
    for _ in 0..60 {
        std::thread::sleep(Duration::from_secs(1));
        let end = sample_line(pid);
        let busy = end.cpu.saturating_sub(start.cpu).as_secs_f64()
            / end.at.duration_since(start.at).as_secs_f64();
        if busy < QUIET {
            return (start, end);
        }
        start = end;
    }
    (start, sample_line(pid))
}

/// The line's RTP ports now: even ports in its range, one per call.
fn rtp_ports(pid: u32, rtp: PortRange) -> Vec<u16> {
    procfs::udp_ports(pid)
        .into_iter()
        .filter(|port| (rtp.first..=rtp.last).contains(port) && port.is_multiple_of(2))
        .collect()
}

//! Shared helpers for the end-to-end tests: start the real binary, make test
//! audio with real tools, compare what was heard with what was played.
#![allow(dead_code)]

pub mod audio;
pub mod capture;
pub mod dispatcher;
pub mod kamailio;
pub mod origin;
pub mod procfs;
pub mod raw_uac;
pub mod watchdog;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// True when a peer program is installed. In CI (`CI` set) a missing peer
/// fails the test loudly; locally the test is skipped with a message.
pub fn have_tool(name: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("{name} is required in CI but is not installed (see .ci/run)");
        }
        eprintln!("SKIPPED: {name} is not installed; install it to run this test");
    }
    found
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Ports the tests choose themselves (SIP and admin listeners, peers) come
/// from below the kernel's ephemeral range (32768-60999 on Linux), so no
/// socket bound to port 0 elsewhere in the run (an HTTP origin, a client)
/// can take one between our check and the line binding it; and none is
/// handed out twice in a process, where many tests run at once.
const CHOSEN_PORTS: std::ops::Range<u32> = 10_000..20_000;
/// RTP ranges, also below the ephemeral range.
const RTP_PORTS: std::ops::Range<u32> = 20_000..32_760;
const RTP_RANGE_SIZE: u32 = 40;

/// The next port in [`CHOSEN_PORTS`] that `usable` accepts: a multiple of
/// four, so the three above it are nobody else's (an RTP port's RTCP
/// neighbour; sipp's `-mp` also takes the next pair, for video).
/// Processes (`cargo test` binaries) start at different places, by pid.
pub fn chosen_port(usable: impl Fn(u16) -> bool) -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = CHOSEN_PORTS.end - CHOSEN_PORTS.start;
    let start = (std::process::id() % 50) * (span / 50);
    for _ in 0..span / 4 {
        let n = NEXT.fetch_add(4, Ordering::Relaxed);
        let port = (CHOSEN_PORTS.start + (start + n) % span) as u16 & !3;
        if usable(port) {
            return port;
        }
    }
    panic!("no usable port left in {CHOSEN_PORTS:?}");
}

fn udp_free(port: u16) -> bool {
    UdpSocket::bind(("127.0.0.1", port)).is_ok()
}

fn tcp_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A free port for SIP (UDP and TCP alike, as the line listens on both),
/// or for RTP (even, with its odd neighbour free for RTCP).
pub fn free_udp_port() -> u16 {
    chosen_port(|port| udp_free(port) && udp_free(port + 1) && tcp_free(port))
}

/// A range of RTP ports that no other test in this process uses.
pub fn rtp_range() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ranges = (RTP_PORTS.end - RTP_PORTS.start) / RTP_RANGE_SIZE;
    let slot = (std::process::id() * 7 + NEXT.fetch_add(1, Ordering::Relaxed)) % ranges;
    let base = RTP_PORTS.start + slot * RTP_RANGE_SIZE;
    format!("{}-{}", base, base + RTP_RANGE_SIZE - 1)
}

/// A free TCP port on loopback (the admin listener's).
pub fn free_tcp_port() -> u16 {
    chosen_port(tcp_free)
}

/// Runs `dial-a-service <args>` in the repository as an operator would,
/// with `env` and none of the test process's own `DAS_*` variables (the
/// binary refuses unknown ones): (exited 0, stdout + stderr).
pub fn run_cli(args: &[&str], env: &[(&str, String)]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dial-a-service"));
    command.current_dir(repo()).args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("DAS_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().map(|(k, v)| (k, v)));
    let output = command.output().expect("run dial-a-service");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

/// `dial-a-service check` on the shipped config, overridden by `env`.
pub fn run_check(env: &[(&str, String)]) -> (bool, String) {
    run_cli(&["check", "--config", "config/dial-a-service.toml"], env)
}

/// The line, running as the real binary with `DAS_*` overrides.
pub struct Line {
    child: Child,
    pub sip: SocketAddr,
    /// The admin listener's address, unless `DAS_ADMIN_LISTEN` turned it off;
    /// a free port by default, so lines started in parallel never clash on 8080.
    pub admin: Option<SocketAddr>,
    pub log: Arc<Mutex<Vec<String>>>,
    /// Each line's own speech cache, so tests never share renders.
    _cache: tempfile::TempDir,
}

impl Line {
    /// Starts `dial-a-service run` on the shipped config, overridden by `env`.
    pub fn start(env: &[(&str, String)]) -> Line {
        Line::start_with_config(Path::new("config/dial-a-service.toml"), env)
    }

    /// Starts `dial-a-service run --config <config>` (relative to the
    /// repository), overridden by `env`.
    pub fn start_with_config(config: &Path, env: &[(&str, String)]) -> Line {
        let port = free_udp_port();
        let sip: SocketAddr = format!("127.0.0.1:{port}").parse().expect("socket addr");
        let cache = tempfile::tempdir().expect("cache dir");
        let admin = match env.iter().find(|(key, _)| *key == "DAS_ADMIN_LISTEN") {
            Some((_, value)) => value.parse().ok(),
            None => Some(SocketAddr::from(([127, 0, 0, 1], free_tcp_port()))),
        };
        let mut command = Command::new(env!("CARGO_BIN_EXE_dial-a-service"));
        // The tests' own knobs (DAS_SOAK_SECONDS…) are no keys of the line,
        // which refuses unknown DAS_ variables.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("DAS_") {
                command.env_remove(name);
            }
        }
        command
            .current_dir(repo())
            .args(["run", "--config"])
            .arg(config)
            .env("DAS_CACHE_DIR", cache.path())
            .env("DAS_SIP_LISTEN", sip.to_string())
            .env("DAS_MEDIA_RTP_PORTS", rtp_range())
            .env(
                "DAS_ADMIN_LISTEN",
                admin.map(|a| a.to_string()).unwrap_or_default(),
            )
            // SIGTERM hangs up at once, as `stop` expects; tests of the
            // drain set their own grace.
            .env("DAS_LINE_SHUTDOWN_GRACE", "0s")
            // The line's calls to itself would land in every test's counts
            // and logs: the tests of the self-test turn it on.
            .env("DAS_SELF_TEST_INTERVAL", "0")
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            // An empty RUST_LOG means unset: the config's `[log] level`
            // (or DAS_LOG_LEVEL) decides, as in production.
            if *key == "RUST_LOG" && value.is_empty() {
                command.env_remove(key);
            } else {
                command.env(key, value);
            }
        }
        let mut child = command.spawn().expect("start dial-a-service");
        watchdog::watch(child.id());
        let log = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let log = log.clone();
            let ready_tx = ready_tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let ready = line.contains("the line is listening");
                    // Logged before it is announced, so a test reading the
                    // log once the line is ready finds the line in it.
                    log.lock().expect("log lock").push(line);
                    if ready {
                        let _ = ready_tx.send(());
                    }
                }
            });
        }
        let mut line = Line {
            child,
            sip,
            admin,
            log,
            _cache: cache,
        };
        if ready_rx.recv_timeout(Duration::from_secs(20)).is_err() {
            let _ = line.child.kill();
            panic!("the line did not start:\n{}", line.log_text());
        }
        line
    }

    pub fn uri(&self) -> String {
        format!("sip:service@{}", self.sip)
    }

    pub fn log_text(&self) -> String {
        self.log.lock().expect("log lock").join("\n")
    }

    /// Lines of the log containing `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log
            .lock()
            .expect("log lock")
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Waits up to `limit` until the log holds `count` lines containing
    /// `needle` (the line looks at its files every two seconds); panics
    /// with the log otherwise.
    pub async fn wait_for_log(&self, needle: &str, count: usize, limit: std::time::Duration) {
        let deadline = std::time::Instant::now() + limit;
        while self.log_count(needle) < count {
            assert!(
                std::time::Instant::now() < deadline,
                "{needle:?} was not logged {count} times within {limit:?}\n{}",
                self.log_text()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The line's process id, to read its `/proc/<pid>` (memory, descriptors).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        None
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A schedule (`data.json`) in `dir` with one service per `(title, file)`,
/// the newest last, all in the past.
pub fn write_schedule(dir: &Path, services: &[(&str, &str)]) -> PathBuf {
    let entries: Vec<String> = services
        .iter()
        .enumerate()
        .map(|(i, (title, file))| {
            format!(
                r#"{{ "title": "{title}", "datetime": "2024-0{}-0{}T10:00:00+0100", "file": "{file}" }}"#,
                1 + i % 9,
                1 + i % 9
            )
        })
        .collect();
    let json = format!(
        r#"{{ "church_name": "St Test's Church", "services": [ {} ] }}"#,
        entries.join(", ")
    );
    let path = dir.join("data.json");
    std::fs::write(&path, json).expect("write schedule");
    path
}

/// Environment for a line serving `schedule` with audio from `audio_dir`.
pub fn source_env(schedule: &Path, audio_dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("DAS_SOURCE_SCHEDULE", schedule.display().to_string()),
        ("DAS_SOURCE_AUDIO", audio_dir.display().to_string()),
    ]
}

/// A parish's content in a temp dir: `audio/service.mp3` (speech over a
/// sweep, made by [`audio::make_service_wav`]) and a `data.json` listing it,
/// as the parish's old site laid them out.
pub struct Parish {
    pub dir: tempfile::TempDir,
    /// The source of the MP3, to compare what callers hear with.
    pub service_wav: PathBuf,
}

impl Parish {
    pub fn new(title: &str, text: &str, seconds: f32) -> Parish {
        let dir = tempfile::tempdir().expect("temp dir");
        let audio_dir = dir.path().join("audio");
        std::fs::create_dir(&audio_dir).expect("audio dir");
        let service_wav = audio::make_service_wav(&audio_dir, "service", text, seconds);
        audio::convert(
            &service_wav,
            &audio_dir.join("service.mp3"),
            &["-b:a", "128k"],
        );
        write_schedule(dir.path(), &[(title, "service.mp3")]);
        Parish { dir, service_wav }
    }

    pub fn schedule(&self) -> PathBuf {
        self.dir.path().join("data.json")
    }

    pub fn audio_dir(&self) -> PathBuf {
        self.dir.path().join("audio")
    }

    /// `DAS_*` variables that point a line at this content.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        source_env(&self.schedule(), &self.audio_dir())
    }

    pub fn line(&self) -> Line {
        Line::start(&self.env())
    }
}

/// Three services, each its own speech over a sweep; key 1 is the newest
/// (the last in the file).
pub struct ThreeServices {
    pub dir: tempfile::TempDir,
    /// Source audio by menu key (index 0 = key 1).
    pub by_key: Vec<PathBuf>,
}

impl ThreeServices {
    pub fn new(seconds: f32) -> ThreeServices {
        let dir = tempfile::tempdir().unwrap();
        let audio_dir = dir.path().join("audio");
        std::fs::create_dir(&audio_dir).unwrap();
        let texts = [
            (
                "oldest",
                "The oldest service: a reading from the prophet Isaiah.",
            ),
            ("middle", "The middle service: let us pray for the parish."),
            (
                "newest",
                "The newest service: welcome, and peace be with you.",
            ),
        ];
        let mut sources = Vec::new();
        for (name, text) in texts {
            let wav = audio::make_service_wav(&audio_dir, name, text, seconds);
            audio::convert(&wav, &audio_dir.join(format!("{name}.mp3")), &[]);
            sources.push(wav);
        }
        write_schedule(
            dir.path(),
            &[
                ("Oldest", "oldest.mp3"),
                ("Middle", "middle.mp3"),
                ("Newest", "newest.mp3"),
            ],
        );
        sources.reverse();
        ThreeServices {
            dir,
            by_key: sources,
        }
    }

    pub fn line(&self, extra: &[(&'static str, String)]) -> Line {
        let mut env = source_env(
            &self.dir.path().join("data.json"),
            &self.dir.path().join("audio"),
        );
        env.extend(extra.iter().cloned());
        Line::start(&env)
    }

    /// How well the recording matches the service on `key` (1-based).
    pub fn score(&self, report: &dial_a_service::client::CallReport, key: usize) -> f32 {
        self.score_samples(&report.samples, key)
    }

    /// How well 8 kHz `heard` audio matches the service on `key`, wherever
    /// in it the service starts.
    pub fn score_samples(&self, heard: &[f32], key: usize) -> f32 {
        let played = audio::reference(&self.by_key[key - 1], 8_000);
        let whole = heard.len() as f32 / 8_000.0;
        audio::correlation(heard, &played, 8_000, whole)
    }
}

//! The line in Docker, as docker-compose.yml runs it, with no registry:
//! the image is built from the repository's Dockerfile (its `prebuilt`
//! stage, on the base image `.ci/docker` imports from debootstrap, with the
//! binary `cargo test` built), started by `docker-compose up` with the
//! compose file's own settings (host networking, init, volumes, grace
//! period, healthcheck), called with our client on 127.0.0.1, asked for
//! `/healthz`, and stopped with `docker stop` during a call: the caller
//! gets BYE and the container exits 0. Also: `docker-compose config`
//! accepts both profiles.
//!
//! Needs root and a running dockerd (`.ci/docker` starts one); locally the
//! test is skipped with a message without them, in CI (`CI` set) it fails.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use dial_a_service::client::{CallOptions, CallReport, HangUp, place_call};
use dial_a_service::media::Codec;

use common::kamailio::free_udp_tcp_port;
use common::{Parish, audio, have_tool, repo, rtp_range};

/// FLIP TO `true` once the admin listener (`[admin] listen`, `GET
/// /healthz`) is merged. Until then this branch's binary has no admin
/// listener, so the test reports "/healthz not checked" when nothing
/// answers (connection refused) or the answer is 404, instead of failing.
/// Any other answer is checked as it will be: 200 passes, anything else
/// fails. This is the only place the test is lenient.
const ADMIN_LISTENER_MERGED: bool = true;

/// The base image `.ci/docker` imports (`debootstrap --variant=minbase
/// bookworm`), standing in for `debian:bookworm-slim` without a registry.
fn base_image() -> String {
    std::env::var("DAS_DOCKER_BASE").unwrap_or_else(|_| "das-base:bookworm".to_owned())
}

const SERVICE_SECONDS: f32 = 6.0;

fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// Skips locally (with a message) or fails in CI.
fn unavailable(why: &str) -> bool {
    assert!(!in_ci(), "{why} (CI runs .ci/docker first)");
    eprintln!("SKIPPED: {why}");
    false
}

fn docker_ready() -> bool {
    if !(have_tool("docker") && have_tool("docker-compose")) {
        return false;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return unavailable("docker tests need root");
    }
    if !docker(&["info"]).status.success() {
        return unavailable("dockerd is not running: start it with .ci/docker");
    }
    if !docker(&["image", "inspect", &base_image()])
        .status
        .success()
    {
        return unavailable(&format!(
            "no base image {}: make it with .ci/docker",
            base_image()
        ));
    }
    true
}

fn run(command: &mut Command) -> Output {
    command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("run {command:?}: {error}"))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn docker(args: &[&str]) -> Output {
    run(Command::new("docker").args(args))
}

/// `docker-compose` on the repository's compose file, from the repository,
/// with only the settings the test gives: a developer's `.env` (or
/// `COMPOSE_PROFILES`) must not change what is tested.
fn compose(args: &[&str]) -> Command {
    static NO_ENV: std::sync::OnceLock<tempfile::NamedTempFile> = std::sync::OnceLock::new();
    let empty = NO_ENV.get_or_init(|| tempfile::NamedTempFile::new().expect("empty env file"));
    let mut command = Command::new("docker-compose");
    command
        .current_dir(repo())
        .env_remove("COMPOSE_PROFILES")
        .arg("--env-file")
        .arg(empty.path())
        .arg("-f")
        .arg(repo().join("docker-compose.yml"))
        .args(args);
    command
}

#[test]
fn compose_accepts_both_profiles() {
    if !have_tool("docker-compose") {
        return;
    }
    // (docker-compose 1.29 lists profiled services whatever the profile.)
    let scale = run(&mut compose(&[
        "--profile",
        "scale",
        "config",
        "--services",
    ]));
    assert!(scale.status.success(), "{}", text(&scale));
    let mut services: Vec<String> = String::from_utf8_lossy(&scale.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    services.sort();
    assert_eq!(services, ["kamailio", "line", "line-2"]);

    // The whole file, resolved, as compose would run it.
    for profile in [&[][..], &["--profile", "scale"][..]] {
        let mut args = profile.to_vec();
        args.extend(["config", "-q"]);
        let output = run(&mut compose(&args));
        assert!(
            output.status.success(),
            "docker-compose {args:?}: {}",
            text(&output)
        );
    }
}

/// A build context holding what the `prebuilt` stage copies: the
/// Dockerfile, config/, audio/ and the binary this test was built with.
fn build_context() -> tempfile::TempDir {
    let context = tempfile::tempdir().expect("build context");
    for file in ["Dockerfile", ".dockerignore"] {
        std::fs::copy(repo().join(file), context.path().join(file)).expect("copy Dockerfile");
    }
    copy_dir(&repo().join("config"), &context.path().join("config"));
    copy_dir(&repo().join("audio"), &context.path().join("audio"));
    let binary = Path::new(env!("CARGO_BIN_EXE_dial-a-service"));
    let target = context.path().join("dial-a-service");
    if std::fs::hard_link(binary, &target).is_err() {
        std::fs::copy(binary, &target).expect("copy the binary");
    }
    context
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).expect("copy file");
        }
    }
}

/// One compose project; [`Drop`] takes it down with its volumes.
struct Project {
    name: String,
    env: Vec<(&'static str, String)>,
}

impl Project {
    fn compose(&self, args: &[&str]) -> Output {
        let mut command = compose(&["-p", &self.name]);
        command.args(args).envs(self.env.iter().cloned());
        run(&mut command)
    }

    /// The container of the `line` service.
    fn container(&self) -> String {
        let output = self.compose(&["ps", "-q", "line"]);
        let id = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        assert!(!id.is_empty(), "no line container: {}", text(&output));
        id
    }

    fn inspect(&self, format: &str) -> String {
        let output = docker(&["inspect", "-f", format, &self.container()]);
        assert!(output.status.success(), "{}", text(&output));
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    fn logs(&self) -> String {
        text(&docker(&["logs", &self.container()]))
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-v", "--remove-orphans", "-t", "5"]);
    }
}

/// The status line of `GET /healthz` on the admin listener, or why none came.
fn healthz(admin: SocketAddr) -> Result<String, String> {
    let mut stream = TcpStream::connect_timeout(&admin, Duration::from_secs(2))
        .map_err(|error| format!("connect {admin}: {error}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    stream
        .write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .map_err(|error| format!("send: {error}"))?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    Ok(answer.lines().next().unwrap_or_default().to_owned())
}

fn assert_clean_stream(report: &CallReport) {
    assert_eq!(report.final_status, 200, "{}", report.summary());
    let stats = &report.stats;
    assert_eq!(stats.ssrcs.len(), 1, "one SSRC: {}", report.summary());
    assert!(stats.seq_contiguous, "{}", report.summary());
    assert!(stats.ts_step_consistent, "{}", report.summary());
    assert_eq!(stats.lost, 0, "{}", report.summary());
}

#[test]
fn the_image_takes_calls_and_stops_with_bye_and_exit_0() {
    if !(docker_ready() && have_tool("espeak-ng") && have_tool("sox") && have_tool("ffmpeg")) {
        return;
    }
    let started = Instant::now();
    // One tag, kept after the test: the next run's build reuses its runtime
    // layers (apt-get) and only copies the new binary.
    let image = "dial-a-service:test".to_owned();
    let context = build_context();
    let build = docker(&[
        "build",
        // The build's RUN steps (apt-get) on the host's network: dockerd
        // runs without a bridge.
        "--network",
        "host",
        "--target",
        "prebuilt",
        "--build-arg",
        &format!("BASE={}", base_image()),
        "--build-arg",
        "PREBUILT=dial-a-service",
        "-t",
        &image,
        &context.path().display().to_string(),
    ]);
    assert!(build.status.success(), "docker build:\n{}", text(&build));
    // The previous run's image, untagged by this build.
    let _ = docker(&["image", "prune", "-f"]);
    eprintln!("image built in {:.0?}", started.elapsed());

    // The parish's content, mounted where compose mounts config/ and audio/:
    // the shipped config with this test's data.json, and the service with
    // the shipped prompts and apology.
    let parish = Parish::new(
        "Container service",
        "Welcome to the service, played from a container.",
        SERVICE_SECONDS,
    );
    let config = parish.dir.path().join("config");
    std::fs::create_dir(&config).expect("config dir");
    std::fs::copy(
        repo().join("config/dial-a-service.toml"),
        config.join("dial-a-service.toml"),
    )
    .expect("copy config");
    std::fs::copy(parish.schedule(), config.join("data.json")).expect("copy schedule");
    std::fs::copy(
        repo().join("audio/apology.wav"),
        parish.audio_dir().join("apology.wav"),
    )
    .expect("copy apology");
    copy_dir(
        &repo().join("audio/prompts"),
        &parish.audio_dir().join("prompts"),
    );

    let sip = SocketAddr::from(([127, 0, 0, 1], free_udp_tcp_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_udp_tcp_port()));
    let project = Project {
        name: format!("das-test-{}", std::process::id()),
        env: vec![
            ("DAS_IMAGE", image.clone()),
            ("CONFIG_DIR", config.display().to_string()),
            ("AUDIO_DIR", parish.audio_dir().display().to_string()),
            ("DAS_SIP_LISTEN", sip.to_string()),
            ("DAS_MEDIA_RTP_PORTS", rtp_range()),
            ("DAS_ADMIN_LISTEN", admin.to_string()),
            // The drain after `docker stop`, short for the test.
            ("DAS_LINE_SHUTDOWN_GRACE", "2s".to_owned()),
        ],
    };
    let up = project.compose(&["up", "-d", "--no-build", "line"]);
    assert!(up.status.success(), "docker-compose up:\n{}", text(&up));

    let deadline = Instant::now() + Duration::from_secs(30);
    while !project.logs().contains("the line is listening") {
        assert!(
            Instant::now() < deadline,
            "the line in the container did not start:\n{}",
            project.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The compose file's settings reached the container.
    assert_eq!(project.inspect("{{.HostConfig.NetworkMode}}"), "host");
    assert_eq!(project.inspect("{{.HostConfig.Init}}"), "true");
    assert_eq!(project.inspect("{{.Config.User}}"), "dial-a-service");
    assert_eq!(project.inspect("{{.Config.StopTimeout}}"), "120");
    assert_eq!(
        project.inspect("{{.HostConfig.RestartPolicy.Name}}"),
        "unless-stopped"
    );
    assert!(
        project
            .inspect("{{json .Config.Healthcheck.Test}}")
            .contains("/healthz")
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let uri = format!("sip:service@{sip}");

    // A whole call: the service, then the line's goodbye and BYE.
    let report = runtime
        .block_on(place_call(CallOptions::new(uri.clone(), Codec::Pcmu)))
        .expect("the call to the container completes");
    eprintln!("first call:\n{}", report.summary());
    assert_clean_stream(&report);
    assert!(
        matches!(report.hung_up_by, HangUp::FarEnd),
        "{}",
        report.summary()
    );
    let whole_call = report.heard();
    let played = audio::reference(&parish.service_wav, 8_000);
    let score = audio::correlation(&report.samples, &played, 8_000, 10.0);
    assert!(
        score >= 0.9,
        "what the caller heard from the container ({score:.3})"
    );

    // /healthz as a client reads it, then the compose file's own
    // healthcheck command, run in the container now (Docker would run it
    // every 30 s): it must pass exactly when /healthz answers 200.
    let healthy = match healthz(admin) {
        Ok(status) if status.contains(" 200 ") => {
            eprintln!("/healthz: {status}");
            true
        }
        Ok(status) if !ADMIN_LISTENER_MERGED && status.contains(" 404 ") => {
            eprintln!(
                "NOT CHECKED: /healthz answered {status:?}: the admin listener is not merged yet"
            );
            false
        }
        Err(why) if !ADMIN_LISTENER_MERGED => {
            eprintln!("NOT CHECKED: /healthz: {why}: the admin listener is not merged yet");
            false
        }
        other => panic!("GET /healthz on {admin}: {other:?}\n{}", project.logs()),
    };
    let test: Vec<String> =
        serde_json::from_str(&project.inspect("{{json .Config.Healthcheck.Test}}"))
            .expect("the healthcheck is a JSON array");
    assert_eq!(test[0], "CMD", "{test:?}");
    let mut exec = vec!["exec".to_owned(), project.container()];
    exec.extend(test[1..].iter().cloned());
    let check = docker(&exec.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        check.status.success(),
        healthy,
        "the compose healthcheck {test:?} against /healthz: {}",
        text(&check)
    );

    // `docker stop` during a call: the caller is hung up on with BYE, and
    // the line exits 0 well within the grace period.
    let call = runtime.spawn(place_call(CallOptions::new(uri, Codec::Pcmu)));
    std::thread::sleep(Duration::from_secs(3));
    let container = project.container();
    let stop_started = Instant::now();
    let stop = docker(&["stop", &container]);
    let stopped_in = stop_started.elapsed();
    assert!(stop.status.success(), "docker stop: {}", text(&stop));
    let report = runtime
        .block_on(call)
        .expect("the call task")
        .expect("the call during docker stop completes");
    eprintln!("call during docker stop:\n{}", report.summary());
    assert_clean_stream(&report);
    assert!(
        matches!(report.hung_up_by, HangUp::FarEnd),
        "the line sent BYE: {}",
        report.summary()
    );
    assert!(
        report.heard() + Duration::from_secs(2) < whole_call,
        "the call ended at the stop, not at the end of the service: {}",
        report.summary()
    );
    assert_eq!(
        project.inspect("{{.State.ExitCode}}"),
        "0",
        "{}",
        project.logs()
    );
    assert!(
        stopped_in < Duration::from_secs(10),
        "docker stop took {stopped_in:?}: SIGTERM did not reach the line"
    );
    assert!(
        project.logs().contains("line.shutdown"),
        "{}",
        project.logs()
    );
    eprintln!("docker test done in {:.0?}", started.elapsed());
}

//! Command line (clap): `run` the line, place a test `call`, `check` and
//! `menu` the content, `stats` from the call log, `bench` the media path.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::client::{InfoType, KeyChannel, KeySequence};
use crate::config::{Config, LogFormat, PortRange};
use crate::media::Codec;

#[derive(Debug, Parser)]
#[command(
    name = "dial-a-service",
    version,
    about = "A phone line that plays recorded church services"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the phone line.
    Run {
        /// The config file.
        #[arg(long, default_value = "config/dial-a-service.toml")]
        config: PathBuf,
    },
    /// Call a SIP URI, record what is heard, and print RTP statistics.
    Call {
        /// Who to call, e.g. sip:service@127.0.0.1:5060.
        uri: String,
        /// Write what was heard to this WAV file.
        #[arg(long)]
        record: Option<PathBuf>,
        /// Hang up after this many seconds (default: wait for the far end).
        #[arg(long)]
        seconds: Option<f64>,
        /// pcmu, pcma or opus.
        #[arg(long, default_value = "pcmu", value_parser = parse_codec)]
        codec: Codec,
        #[command(flatten)]
        dtmf: DtmfArgs,
    },
    /// Print, as text, what a caller would hear at a moment (now by default),
    /// and every problem found in the schedule.
    Menu {
        /// The moment, e.g. 2026-06-07T09:00:00 (local time) or with an offset.
        #[arg(long)]
        at: Option<String>,
        /// The config file.
        #[arg(long, default_value = "config/dial-a-service.toml")]
        config: PathBuf,
    },
    /// Check the config, the schedule and every audio file, as a caller would hear them.
    Check {
        /// The config file.
        #[arg(long, default_value = "config/dial-a-service.toml")]
        config: PathBuf,
    },
    /// Print calls, distinct callers and listens per service and per week,
    /// from the call log ([log] calls).
    Stats {
        /// Only calls from this day (2026-11-01, from midnight UTC) or
        /// moment (2026-11-01T09:00:00Z) on.
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// The config file.
        #[arg(long, default_value = "config/dial-a-service.toml")]
        config: PathBuf,
    },
    /// Play one service to N calls over loopback and print CPU, memory and send lateness.
    ///
    /// By default the media engine alone plays to receivers in this process.
    /// With --through-sip the real line runs as a child process, sipp places
    /// the calls, and a sample of what callers receive is captured on
    /// loopback (needs sipp, dumpcap and tshark; run from the repository
    /// root, as the line greets callers with audio/prompts and audio/apology.wav).
    Bench {
        /// Concurrent calls.
        #[arg(long, default_value_t = 100)]
        calls: usize,
        /// Seconds to measure once every call has started.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// pcmu, pcma or opus.
        #[arg(long, default_value = "pcmu", value_parser = parse_codec)]
        codec: Codec,
        /// The audio every call plays.
        #[arg(long, default_value = "audio/sample-service.mp3")]
        audio: PathBuf,
        /// Media threads (default: one per core).
        #[arg(long)]
        workers: Option<usize>,
        /// RTP ports for the calls, two per call.
        #[arg(long, default_value = "40000-59999")]
        rtp_ports: PortRange,
        /// Call the real line through SIP with sipp and measure what the
        /// callers receive (--codec pcmu, pcma or opus); --audio and
        /// --workers then do not apply.
        #[arg(long)]
        through_sip: bool,
        /// Time bare loopback sends from --calls sockets instead (no line,
        /// no media engine): this machine's kernel cost per RTP packet.
        #[arg(long, conflicts_with = "through_sip")]
        kernel_floor: bool,
        /// With --through-sip: capture the RTP of one call in this many (a
        /// power of two; 1 captures every call).
        #[arg(long, default_value_t = 8, requires = "through_sip")]
        sample: u16,
        /// With --through-sip: new calls a second until all are up.
        #[arg(long, default_value_t = 200, requires = "through_sip")]
        rate: u32,
        /// With --through-sip: print the figures as JSON.
        #[arg(long, requires = "through_sip")]
        json: bool,
        /// With --through-sip: keep the work folder (config, logs, sipp's
        /// files, the capture) and print where it is; kept anyway on failure.
        #[arg(long, requires = "through_sip")]
        keep: bool,
        /// With --through-sip: the dial-a-service executable to measure
        /// (another build, to compare with); this one by default.
        #[arg(long, requires = "through_sip")]
        line: Option<PathBuf>,
        /// With --through-sip: the callers send back the audio they hear,
        /// so the line has every caller's audio to listen to for keys.
        #[arg(long, requires = "through_sip")]
        echo: bool,
        /// With --through-sip: the line listens for in-band key tones on
        /// every codec (on) or on none (off); by default, as the line does
        /// (G.711 calls only).
        #[arg(long, value_parser = parse_on_off, requires = "through_sip")]
        inband: Option<bool>,
        /// With --through-sip: once every call is up, set up this many more
        /// (each listening a second) and time each one's INVITE to 200 OK
        /// and ACK to first RTP.
        #[arg(long, requires = "through_sip")]
        setup_calls: Option<usize>,
        /// With --setup-calls: new calls a second.
        #[arg(long, default_value_t = 500, requires = "setup_calls")]
        setup_rate: u32,
    },
}

/// Key presses for `call`.
#[derive(Debug, Clone, Args)]
pub struct DtmfArgs {
    /// Keys to press after the answer, e.g. 2 or 2*5 (0-9, *, #, A-D).
    #[arg(long = "dtmf", value_name = "KEYS")]
    pub keys: Option<KeySequence>,
    /// The first press, after the answer: 3s, 500ms, or seconds.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub dtmf_delay: Duration,
    /// Between presses.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub dtmf_interval: Duration,
    /// How each press goes: rfc4733, info or inband. Repeat or list
    /// (rfc4733,info) to send each press every way at once.
    #[arg(long, value_delimiter = ',', value_parser = parse_via)]
    pub dtmf_via: Vec<KeyChannel>,
    /// Length of each tone or event.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub dtmf_duration: Duration,
    /// Body of SIP INFO presses: dtmf-relay or dtmf.
    #[arg(long, default_value = "dtmf-relay", value_parser = parse_info_type)]
    pub dtmf_info_type: InfoType,
}

impl DtmfArgs {
    /// Sets the presses of `options`.
    pub fn apply(&self, options: &mut crate::client::CallOptions) {
        let keys = self.keys.as_ref().map_or(&[][..], |keys| &keys.0[..]);
        options.dtmf = crate::client::schedule(keys, self.dtmf_delay, self.dtmf_interval);
        if !self.dtmf_via.is_empty() {
            options.dtmf_via = self.dtmf_via.clone();
        }
        options.dtmf_duration = self.dtmf_duration;
        options.dtmf_info_type = self.dtmf_info_type;
    }
}

/// A duration read as the config reads them: seconds (3, 0.5) or with a
/// unit (3s, 500ms).
fn parse_duration(text: &str) -> Result<Duration, String> {
    use serde::de::value::{Error, StrDeserializer};
    crate::config::deserialize_duration(StrDeserializer::<Error>::new(text))
        .map_err(|error| error.to_string())
}

fn parse_via(name: &str) -> Result<KeyChannel, String> {
    crate::client::parse_via(name).map_err(|error| error.to_string())
}

fn parse_info_type(name: &str) -> Result<InfoType, String> {
    crate::client::parse_info_type(name).map_err(|error| error.to_string())
}

fn parse_codec(name: &str) -> Result<Codec, String> {
    Codec::from_config_name(name)
        .ok_or_else(|| format!("expected pcmu, pcma or opus, not {name:?}"))
}

fn parse_on_off(text: &str) -> Result<bool, String> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("expected on or off, not {text:?}")),
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => run(config),
        Command::Check { config } => check(config),
        Command::Menu { at, config } => menu(config, at),
        Command::Stats { since, config } => stats(config, since),
        Command::Call {
            uri,
            record,
            seconds,
            codec,
            dtmf,
        } => call(uri, record, seconds, codec, &dtmf),
        Command::Bench {
            calls,
            kernel_floor: true,
            ..
        } => print_summary(crate::bench::floor::run(calls, 2_000_000).map(|r| r.summary())),
        Command::Bench {
            calls,
            seconds,
            codec,
            rtp_ports,
            through_sip: true,
            sample,
            rate,
            json,
            keep,
            line,
            echo,
            inband,
            setup_calls,
            setup_rate,
            ..
        } => bench_through_sip(
            crate::bench::e2e::E2eOptions {
                calls,
                seconds,
                codec,
                sample,
                rate,
                rtp_ports,
                library: PathBuf::from("audio"),
                keep,
                line,
                echo,
                inband,
                setup: setup_calls.map(|calls| crate::bench::setup::SetupLoad {
                    calls,
                    rate: setup_rate,
                }),
            },
            json,
        ),
        Command::Bench {
            calls,
            seconds,
            codec,
            audio,
            workers,
            rtp_ports,
            through_sip: false,
            ..
        } => {
            let options = crate::bench::BenchOptions {
                calls,
                seconds,
                codec,
                audio,
                workers: workers
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
                rtp_ports,
            };
            print_summary(crate::bench::run(&options).map(|r| r.summary()))
        }
    }
}

/// A bench's summary, or why it could not run.
fn print_summary(summary: Result<String, impl std::fmt::Display>) -> ExitCode {
    match summary {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("dial-a-service bench: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `bench --through-sip`: the report, or JSON; non-zero when the run
/// failed its sanity checks.
fn bench_through_sip(options: crate::bench::e2e::E2eOptions, json: bool) -> ExitCode {
    match crate::bench::e2e::run(&options) {
        Ok(report) => {
            if json {
                match serde_json::to_string_pretty(&report) {
                    Ok(text) => println!("{text}"),
                    Err(error) => eprintln!("dial-a-service bench: {error}"),
                }
            } else {
                println!("{}", report.summary());
            }
            if report.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                for problem in &report.problems {
                    eprintln!("dial-a-service bench: FAILED: {problem}");
                }
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("dial-a-service bench: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The decoder crates log each Ogg stream they open at info; that is our
/// business to report (once, with the file), not theirs per prompt.
const QUIET_CRATES: &str = "symphonia_core=warn,symphonia_format_ogg=warn,symphonia_bundle_mp3=warn,symphonia_format_isomp4=warn,symphonia_format_riff=warn";

fn init_logging(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{QUIET_CRATES},{level}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = match format {
        // Colours only on a terminal: log files and `docker logs` stay greppable.
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .try_init(),
        // Fields at the top level of each object, beside "message", so a
        // collector can index `call` or `code` without digging; the span
        // (e.g. `decoding` with its file) under "span".
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

fn run(path: PathBuf) -> ExitCode {
    let config = match Config::load(&path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("dial-a-service: {error}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config.log.level, config.log.format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(crate::media::priority::ordinary_this_thread)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("dial-a-service: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    // The SIP loop runs on this thread (`block_on`).
    crate::media::priority::raise_sip_thread();
    let outcome = runtime.block_on(async {
        let signals = signals();
        crate::driver::run(config, path, signals).await
    });
    match outcome {
        Ok(()) => {
            tracing::info!(code = "line.stopped", "stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!("{error}");
            eprintln!("dial-a-service: {error}");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM and SIGINT (containers and service managers stop with SIGTERM;
/// a second one hurries), and SIGHUP: reload, as daemons do, and never the
/// default of dying, which a closed SSH session would otherwise cause.
fn signals() -> tokio::sync::mpsc::UnboundedReceiver<crate::driver::Signal> {
    use crate::driver::Signal;
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    for (kind, what, name) in [
        (SignalKind::terminate(), Signal::Stop, "SIGTERM"),
        (SignalKind::interrupt(), Signal::Stop, "SIGINT"),
        (SignalKind::hangup(), Signal::Reload, "SIGHUP"),
    ] {
        let tx = tx.clone();
        match signal(kind) {
            Ok(mut stream) => {
                tokio::spawn(async move {
                    while stream.recv().await.is_some() {
                        tracing::info!(signal = name, "received {name}");
                        if tx.send(what).is_err() {
                            break;
                        }
                    }
                });
            }
            Err(error) => tracing::warn!(%error, "cannot listen for {name}"),
        }
    }
    // The listeners keep their senders: the channel never closes by itself.
    rx
}

/// Prints what the line would play now and every problem found; exits 1
/// when a caller would hear the apology.
fn check(path: PathBuf) -> ExitCode {
    let config = match Config::load(&path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("dial-a-service: {error}");
            return ExitCode::from(2);
        }
    };
    println!("config: {} is valid", path.display());
    let report = crate::check::check(&config, chrono::Utc::now());
    print!("{report}");
    if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `dial-a-service stats`: the call log summed up, in plain English.
fn stats(path: PathBuf, since: Option<String>) -> ExitCode {
    let config = match Config::load(&path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("dial-a-service: {error}");
            return ExitCode::from(2);
        }
    };
    let since = match since.as_deref().map(crate::call_log::stats::parse_since) {
        None => None,
        Some(Ok(since)) => Some(since),
        Some(Err(error)) => {
            eprintln!("dial-a-service stats: --since: {error}");
            return ExitCode::from(2);
        }
    };
    let Some(log) = &config.log.calls.path else {
        eprintln!("dial-a-service stats: the call log is off ([log] calls); nothing to count");
        return ExitCode::FAILURE;
    };
    match crate::call_log::stats::summarise_file(log, since) {
        Ok(summary) => {
            println!("From {}:", log.display());
            print!("{summary}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("dial-a-service stats: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Places one call with the built-in test client and prints its report.
fn call(
    uri: String,
    record: Option<PathBuf>,
    seconds: Option<f64>,
    codec: Codec,
    dtmf: &DtmfArgs,
) -> ExitCode {
    init_logging("warn", LogFormat::Text);
    let mut options = crate::client::CallOptions::new(uri, codec);
    options.record = record;
    dtmf.apply(&mut options);
    options.seconds = match seconds.map(std::time::Duration::try_from_secs_f64) {
        None => None,
        Some(Ok(duration)) => Some(duration),
        Some(Err(_)) => {
            eprintln!("dial-a-service call: --seconds must be a positive number");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("dial-a-service call: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crate::client::place_call(options)) {
        Ok(report) => {
            println!("{}", report.summary());
            match report.hung_up_by {
                crate::client::HangUp::Failed(_) => ExitCode::FAILURE,
                _ => ExitCode::SUCCESS,
            }
        }
        Err(error) => {
            eprintln!("dial-a-service call: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `dial-a-service menu`: the menu as text at a moment, then the schedule's problems.
fn menu(path: PathBuf, at: Option<String>) -> ExitCode {
    let config = match Config::load(&path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("dial-a-service: {error}");
            return ExitCode::from(2);
        }
    };
    let timezone = config.line.timezone;
    let now = match at.as_deref().map(|text| parse_moment(text, timezone)) {
        None => chrono::Utc::now(),
        Some(Ok(moment)) => moment,
        Some(Err(problem)) => {
            eprintln!("dial-a-service menu: --at: {problem}");
            return ExitCode::from(2);
        }
    };
    // The menu comes from the same content and the same question as a
    // call's; a fetched source is what the line serves from its cache.
    let prompts = crate::prompts::Prompts::load(&config.audio.prompts, &[], None);
    let offered = crate::check::offered(&config, prompts);
    let at = now
        .with_timezone(&timezone)
        .format("%A %-d %B %Y, %H:%M %Z");
    match &offered.origin {
        crate::check::Origin::LocalFile(_) => println!("At {at}:"),
        crate::check::Origin::Cache {
            source,
            fetched_at: Some(fetched),
            ..
        } => println!(
            "At {at} (from {source}, fetched {}):",
            fetched.with_timezone(&timezone).format("%-d %B %Y, %H:%M")
        ),
        crate::check::Origin::Cache { source, .. } => {
            println!("At {at} (nothing from {source} has been downloaded and checked yet):")
        }
    }
    let mut ok = match offered.content.offer(now) {
        Ok(menu) => {
            println!("{}", menu.heard_text(config.line.skip_single_menu));
            true
        }
        Err(reason) => {
            println!("Callers hear the apology clip: {reason}.");
            false
        }
    };
    if let crate::check::Origin::LocalFile(path) = &offered.origin
        && let Ok(schedule) = crate::source::schedule::Schedule::load_in(path, timezone)
        && !schedule.problems.is_empty()
    {
        println!("\nProblems in {}:", path.display());
        for problem in &schedule.problems {
            println!("  {problem}");
        }
        ok = false;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A moment given on the command line: with an offset, or local in
/// `timezone` (the schedule's own rules, clock changes included).
fn parse_moment(
    text: &str,
    timezone: chrono_tz::Tz,
) -> Result<chrono::DateTime<chrono::Utc>, String> {
    crate::source::schedule::parse_datetime(text, timezone)
        .map(|moment| moment.with_timezone(&chrono::Utc))
}

//! The line's settings: a TOML file, then `DAS_<SECTION>_<KEY>` environment overrides,
//! checked into a typed [`Config`] before anything starts.
//!
//! Every key is optional and has a default (see `config/dial-a-service.toml`, which
//! explains each). Precedence: environment over file over default. A mistake anywhere
//! stops the start with a message naming the file or variable, the key (`[media]
//! rtp_ports`) and what was expected: a phone line that starts with half its settings
//! silently ignored is worse than one that does not start.
//!
//! Keys are dispatched by hand rather than by `#[serde(deny_unknown_fields)]` on derived
//! structs because serde's errors do not say which key held a bad value; the table of keys
//! here denies unknown ones just the same, and the file and the environment go through the
//! same parser per key (an environment value is read as a TOML string, so every value type
//! also accepts its text form, e.g. `max_cached_tracks = "16"`).
//!
//! Relative paths: from the file, against the file's directory (so the config and its
//! schedule can move together); from the environment, against the working directory, as
//! a shell user expects.
//!
//! Addresses: `[sip] public_address` is what Contact, Via and SDP advertise. It defaults to
//! the listen address, or to loopback (127.0.0.1 / ::1) when listening on all interfaces,
//! since there is no right guess for a public address; set it whenever `listen` is
//! `0.0.0.0` or `[::]`. With a trunk, the address the registrar sees (`received`/`rport`)
//! or `[trunk] external_address` takes over; see `config/trunk.rs` and `registration`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

use crate::media::Codec;
use crate::media::level::{DEFAULT_TARGET, Dynamics, LoudnessSettings, Lufs};

mod call;
mod log;
mod loudness;
mod secrets;
mod source;
mod suggest;
mod trunk;
use call::CallSettings;
pub use call::{
    DtmfConfig, LineConfig, MAX_CALL_CEILING, MAX_CALL_MARGIN, MaxCallDuration, SpeechConfig,
};
use log::CallLogSettings;
pub use log::{CallLogConfig, DEFAULT_CALLS_FILE, DEFAULT_CALLS_KEEP, DEFAULT_CALLS_MAX_SIZE};
use secrets::{scrub, secrets_of};
use source::SourceSettings;
pub use source::{
    CacheConfig, DEFAULT_KEEP_LATEST, DEFAULT_REFRESH_INTERVAL, Location, SourceConfig, SourceUrl,
};
use trunk::TrunkSettings;
pub use trunk::{
    DEFAULT_BACKOFF_MAX, DEFAULT_EXPIRES, DEFAULT_KEEPALIVE, IpNet, MIN_EXPIRES, Password, SipUri,
    TrunkConfig, Untrusted,
};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Named by line and column, never quoting the file: see [`ConfigError::syntax`].
    #[error("{}: line {line}, column {column}: not valid toml: {message}", file.display())]
    Syntax {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: unknown section [{section}] (known sections: {known})", file.display())]
    UnknownSection {
        file: PathBuf,
        section: String,
        known: String,
    },
    #[error("{}: `{key}` must be inside a section, like [{section}]", file.display())]
    KeyOutsideSection {
        file: PathBuf,
        key: String,
        section: String,
    },
    #[error("{}: unknown key {key} (known keys in [{section}]: {known})", file.display())]
    UnknownKey {
        file: PathBuf,
        section: String,
        key: String,
        known: String,
    },
    #[error("{}: {key}: {message}", file.display())]
    BadValue {
        file: PathBuf,
        key: String,
        message: String,
    },
    #[error("cannot read the trunk password file {}: {source}", path.display())]
    PasswordFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the trunk password file {} is empty", path.display())]
    EmptyPasswordFile { path: PathBuf },
    #[error("environment variable {variable} (for {key}): {message}")]
    BadEnv {
        variable: String,
        key: String,
        message: String,
    },
    /// A misspelt override would otherwise be ignored without a word.
    #[error("unknown environment variable {variable}{}", did_you_mean(suggestion.as_deref()))]
    UnknownEnv {
        variable: String,
        suggestion: Option<String>,
    },
}

fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion.map_or_else(
        || " (every DAS_ variable is DAS_<SECTION>_<KEY> of a key in the config file)".to_owned(),
        |s| format!(" (did you mean {s}?)"),
    )
}

/// Local UDP ports for RTP, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    const EXPECTED: &'static str = "expected a port range like \"16384-32767\" (ports 1024 to 65535, first no greater than last)";
}

impl std::str::FromStr for PortRange {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<PortRange, &'static str> {
        let (first, last) = text.split_once('-').ok_or(PortRange::EXPECTED)?;
        let port = |p: &str| p.trim().parse::<u16>().map_err(|_| PortRange::EXPECTED);
        let (first, last) = (port(first)?, port(last)?);
        // Below 1024 needs root and collides with real services.
        if first < 1024 || first > last {
            return Err(PortRange::EXPECTED);
        }
        Ok(PortRange { first, last })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub sip: SipConfig,
    pub media: MediaConfig,
    pub source: SourceConfig,
    pub audio: AudioConfig,
    pub log: LogConfig,
    pub line: LineConfig,
    pub dtmf: DtmfConfig,
    pub speech: SpeechConfig,
    pub cache: CacheConfig,
    /// The trunk to register with; `None` (no `[trunk]`): the line only listens.
    pub trunk: Option<TrunkConfig>,
    pub admin: AdminConfig,
    pub self_test: SelfTestConfig,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfTestConfig {
    /// How often the line calls itself (`[self_test] interval`); `None`: never.
    pub interval: Option<Duration>,
}

/// A self-test every quarter of an hour: a broken line is found well within
/// the time between two Sunday callers, for one short call's cost.
/// The shortest `[self_test] interval`: a self-test call lasts about ten
/// seconds (closer together, each waits for the one before).
pub const MIN_SELF_TEST_INTERVAL: Duration = Duration::from_secs(10);
pub const DEFAULT_SELF_TEST_INTERVAL: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Where `/healthz`, `/metrics` and the status page are served; `None`: nowhere.
    pub listen: Option<SocketAddr>,
}
#[derive(Debug, Clone, PartialEq)]
pub struct SipConfig {
    pub listen: SocketAddr,
    /// The address put in Contact, Via and SDP (see the module docs for the default).
    pub public_address: IpAddr,
    /// RFC 3261 T1, the round-trip estimate every SIP timer derives from.
    pub t1: Duration,
    /// How long to ring (180 Ringing) before answering; zero answers at once.
    pub answer_delay: Duration,
    /// Calls at once; `None`: as many as the RTP ports and open-file limit allow.
    pub max_calls: Option<usize>,
    /// Calls being set up (offered, not yet acknowledged) from one address,
    /// except the trunk's and trusted ones: a flood from one source cannot
    /// take every port.
    pub max_setups_per_source: usize,
    /// New calls a second from one address (trunk and trusted ones aside),
    /// with bursts of twice that.
    pub max_call_rate_per_source: f64,
    /// `Server` / `User-Agent` header value; `None` sends neither, so a
    /// scanner is not told what answers.
    pub user_agent: Option<String>,
    /// Networks that may start calls, exempt from the per-source limits: a
    /// proxy in front (Kamailio's dispatcher), with or without a trunk.
    /// `None`: see `[trunk]` for who may call.
    pub trust: Option<Vec<IpNet>>,
}
#[derive(Debug, Clone, PartialEq)]
pub struct MediaConfig {
    pub rtp_ports: PortRange,
    /// In our order of preference (used when we make the offer).
    pub codecs: Vec<Codec>,
    /// How many encoded services to keep in memory for later callers.
    pub max_cached_tracks: usize,
    /// How long a held call (`sendonly`, `inactive`, `c=0.0.0.0`) may go on
    /// with nothing at all from the caller before the line hangs up.
    pub hold_timeout: Duration,
}
#[derive(Debug, Clone, PartialEq)]
pub struct AudioConfig {
    /// Played when a service cannot be.
    pub apology: PathBuf,
    /// The prompt library: one file per word or phrase (see `audio/README.md`).
    pub prompts: PathBuf,
    /// `loudness_target` and `dynamics`: how every source is levelled.
    pub loudness: LoudnessSettings,
}
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// A `tracing` filter: `info`, or directives like `info,dial_a_service::sip=debug`.
    pub level: String,
    /// Lines for people (`text`) or for a log collector (`json`).
    pub format: LogFormat,
    /// The call log (`[log] calls` and the keys after it).
    pub calls: CallLogConfig,
}

/// How each log line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One readable line per event: time, level, message, `key=value` fields.
    #[default]
    Text,
    /// One JSON object per line, the fields as its keys (for Loki, journald
    /// forwarders, `jq`).
    Json,
}

impl LogFormat {
    const NAMES: [&str; 2] = ["text", "json"];

    fn parse(text: &str) -> Result<LogFormat, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(
                match suggest::nearest(&text.trim().to_ascii_lowercase(), Self::NAMES) {
                    Some(near) => {
                        format!("unknown log format \"{text}\" (did you mean \"{near}\"?)")
                    }
                    None => {
                        format!("unknown log format \"{text}\" (expected \"text\" or \"json\")")
                    }
                },
            ),
        }
    }
}

/// Every section and its keys: the single list that makes other keys errors, and the list
/// of environment variables looked up.
const KEYS: &[(&str, &[&str])] = &[
    (
        "sip",
        &[
            "listen",
            "public_address",
            "t1",
            "answer_delay",
            "max_calls",
            "max_setups_per_source",
            "max_call_rate_per_source",
            "user_agent",
            "trust",
        ],
    ),
    (
        "media",
        &["rtp_ports", "codecs", "max_cached_tracks", "hold_timeout"],
    ),
    ("source", source::SOURCE_KEYS),
    (
        "audio",
        &["apology", "prompts", "loudness_target", "dynamics"],
    ),
    (
        "log",
        &[
            "level",
            "format",
            "calls",
            "caller_numbers",
            "calls_max_size",
            "calls_keep",
        ],
    ),
    ("line", call::LINE_KEYS),
    ("dtmf", call::DTMF_KEYS),
    ("speech", call::SPEECH_KEYS),
    ("cache", source::CACHE_KEYS),
    ("trunk", trunk::KEYS),
    ("admin", &["listen"]),
    ("self_test", &["interval"]),
];

pub const DEFAULT_LISTEN: &str = "127.0.0.1:5060";
/// Loopback only: the status page names the registrar and the website.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_RTP_PORTS: PortRange = PortRange {
    first: 16384,
    last: 32767,
};
/// RFC 3261 §17.1.1.1's recommended T1.
pub const DEFAULT_T1: Duration = Duration::from_millis(500);
/// A parish rarely offers more than the nine a caller can choose from, plus the apology.
pub const DEFAULT_MAX_CACHED_TRACKS: usize = 16;
/// Setups in flight from one address: a caller's phone has one or two; a
/// source with more is flooding (the trunk's and trusted sources are exempt).
pub const DEFAULT_MAX_SETUPS_PER_SOURCE: usize = 10;
/// A person redials every few seconds at most; a scanner or a flood of
/// completed calls from one address runs at hundreds a second.
pub const DEFAULT_MAX_CALL_RATE_PER_SOURCE: f64 = 2.0;
/// Longer than any hold a caller means; a trunk that holds sends RTCP or
/// keep-alive RTP meanwhile, which resets it.
pub const DEFAULT_HOLD_TIMEOUT: Duration = Duration::from_secs(10 * 60);

impl SipConfig {
    /// Listening on every interface but advertising loopback (no `[sip]
    /// public_address`): callers from elsewhere would send their audio to
    /// themselves. Said at start and by `check`.
    pub fn advertised_address_problem(&self) -> Option<String> {
        (self.listen.ip().is_unspecified() && self.public_address.is_loopback()).then(|| {
            format!(
                "the line listens on every interface ({}) but tells callers to send audio to {} \
                 ([sip] public_address is not set); set public_address (DAS_SIP_PUBLIC_ADDRESS) \
                 to the address callers reach",
                self.listen, self.public_address
            )
        })
    }
}

impl Config {
    /// Reads `path`, then applies `DAS_*` variables from the process environment,
    /// refusing any `DAS_*` variable that names no key.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        check_environment(std::env::vars_os().filter_map(|(name, _)| name.into_string().ok()))?;
        Config::load_with_env(path, |name| std::env::var(name).ok())
    }

    /// As [`Config::load`], with the environment looked up through `env`.
    pub fn load_with_env(
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml_str(&text, path, env)
    }

    /// Builds a config from TOML text said to come from the file `origin`, whose directory
    /// relative paths resolve against.
    pub fn from_toml_str(
        text: &str,
        origin: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let dir = origin.parent().unwrap_or(Path::new(""));
        let table: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError::syntax(origin, text, &e))?;

        let mut settings = Settings::default();
        for (section, keys) in table {
            let known_keys = KEYS.iter().find(|(s, _)| *s == section).map(|(_, k)| *k);
            let toml::Value::Table(keys) = keys else {
                // A bare top-level key: say where it belongs if we know the name.
                let home = KEYS.iter().find(|(_, k)| k.contains(&section.as_str()));
                return Err(match home {
                    Some((home, _)) => ConfigError::KeyOutsideSection {
                        file: origin.to_owned(),
                        key: section,
                        section: (*home).to_owned(),
                    },
                    None => unknown_section(origin, section),
                });
            };
            let Some(known_keys) = known_keys else {
                return Err(unknown_section(origin, section));
            };
            // Even an empty `[trunk]` asks for registration, so it must say where.
            settings.trunk.present |= section == "trunk";
            for (key, value) in keys {
                if !known_keys.contains(&key.as_str()) {
                    return Err(ConfigError::UnknownKey {
                        file: origin.to_owned(),
                        key: format!("[{section}] {key}"),
                        section,
                        known: known_keys.join(", "),
                    });
                }
                let secrets = secrets_of(&key, &value);
                settings
                    .set(&section, &key, value, Some(dir))
                    .map_err(|message| ConfigError::BadValue {
                        file: origin.to_owned(),
                        key: format!("[{section}] {key}"),
                        message: scrub(message, &secrets),
                    })?;
            }
        }

        for (section, keys) in KEYS {
            for key in *keys {
                let variable = env_name(section, key);
                // Empty counts as unset, as a container's `VAR=` usually means "default";
                // except `DAS_ADMIN_LISTEN=`, which turns the listener off, as issue 10 asks.
                let Some(text) = env(&variable)
                    .filter(|t| !t.trim().is_empty() || (*section, *key) == ("admin", "listen"))
                else {
                    continue;
                };
                let value = toml::Value::String(text);
                let secrets = secrets_of(key, &value);
                settings
                    .set(section, key, value, None)
                    .map_err(|message| ConfigError::BadEnv {
                        variable,
                        key: format!("[{section}] {key}"),
                        message: scrub(message, &secrets),
                    })?;
            }
        }
        settings.finish(dir, origin)
    }
}

/// The levels `[log] level` takes by name.
const LOG_LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];

/// A level by name, or a tracing filter (`info,dial_a_service=debug`). A
/// bare word that is no level (`warning`) would be read by tracing as a
/// module name and silence every line of the line's own, so it is refused.
fn log_level(level: &str) -> Result<String, String> {
    let word = level.trim().to_ascii_lowercase();
    if LOG_LEVELS.contains(&word.as_str()) {
        return Ok(word);
    }
    if !level.contains(['=', ',']) {
        return Err(match suggest::nearest(&word, LOG_LEVELS) {
            Some(near) => format!("unknown log level \"{level}\" (did you mean \"{near}\"?)"),
            None => format!(
                "unknown log level \"{level}\" (expected one of {})",
                LOG_LEVELS.join(", ")
            ),
        });
    }
    tracing_subscriber::EnvFilter::try_new(level).map_err(|e| {
        format!(
            "expected a log level ({}) or tracing filter: {e}",
            LOG_LEVELS.join(", ")
        )
    })?;
    Ok(level.to_owned())
}

fn unknown_section(origin: &Path, section: String) -> ConfigError {
    let known: Vec<&str> = KEYS.iter().map(|(s, _)| *s).collect();
    ConfigError::UnknownSection {
        file: origin.to_owned(),
        section,
        known: known.join(", "),
    }
}

/// Every `DAS_` variable in `names` must be one of [`env_name`]'s: a typo
/// in a variable stops the start, as a typo in the file does.
pub fn check_environment(names: impl IntoIterator<Item = String>) -> Result<(), ConfigError> {
    let known: Vec<String> = KEYS
        .iter()
        .flat_map(|(section, keys)| keys.iter().map(|key| env_name(section, key)))
        .collect();
    for name in names {
        if name.starts_with("DAS_") && !known.contains(&name) {
            let suggestion = suggest::nearest(&name, known.iter().map(String::as_str));
            return Err(ConfigError::UnknownEnv {
                suggestion: suggestion.map(str::to_owned),
                variable: name,
            });
        }
    }
    Ok(())
}

/// `DAS_<SECTION>_<KEY>`, e.g. `DAS_MEDIA_RTP_PORTS`.
pub fn env_name(section: &str, key: &str) -> String {
    format!("DAS_{section}_{key}").to_ascii_uppercase()
}

/// What the file and environment said, before defaults.
#[derive(Default)]
struct Settings {
    listen: Option<SocketAddr>,
    public_address: Option<IpAddr>,
    t1: Option<Duration>,
    answer_delay: Option<Duration>,
    max_calls: Option<usize>,
    max_setups_per_source: Option<usize>,
    max_call_rate_per_source: Option<f64>,
    user_agent: Option<String>,
    trust: Option<Vec<IpNet>>,
    rtp_ports: Option<PortRange>,
    codecs: Option<Vec<Codec>>,
    max_cached_tracks: Option<usize>,
    hold_timeout: Option<Duration>,
    source: SourceSettings,
    apology: Option<PathBuf>,
    prompts: Option<PathBuf>,
    loudness_target: Option<Lufs>,
    dynamics: Option<Dynamics>,
    level: Option<String>,
    log_format: Option<LogFormat>,
    call_log: CallLogSettings,
    call: CallSettings,
    trunk: TrunkSettings,
    /// `Some(None)`: turned off with `""`.
    admin_listen: Option<Option<SocketAddr>>,
    /// `Some(None)`: turned off with `0`.
    self_test_interval: Option<Option<Duration>>,
}

impl Settings {
    /// Reads one value. `base` is the directory relative paths resolve against; `None`
    /// leaves them relative to the working directory.
    fn set(
        &mut self,
        section: &str,
        key: &str,
        value: toml::Value,
        base: Option<&Path>,
    ) -> Result<(), String> {
        let path = |value| {
            let path = PathBuf::from(text(value, "expected a path")?);
            Ok::<_, String>(match base {
                Some(dir) if path.is_relative() => dir.join(path),
                _ => path,
            })
        };
        match (section, key) {
            ("sip", "listen") => {
                self.listen = Some(parsed(
                    value,
                    "expected an address and port like \"127.0.0.1:5060\" or \"[::]:5060\"",
                )?);
            }
            ("sip", "public_address") => {
                self.public_address = Some(parsed(
                    value,
                    "expected an IP address like \"203.0.113.7\"",
                )?);
            }
            ("sip", "t1") => {
                let t1 = deserialize_duration(value).map_err(|e| e.message().to_owned())?;
                if t1.is_zero() {
                    // Every SIP timer is a multiple of T1: zero would resend in a busy loop.
                    return Err("expected a duration above zero, like \"500ms\"".to_owned());
                }
                self.t1 = Some(t1);
            }
            ("sip", "answer_delay") => {
                let delay = deserialize_duration(value).map_err(|e| e.message().to_owned())?;
                if delay > Duration::from_secs(60) {
                    // Trunks give up on unanswered calls after about a minute.
                    return Err("expected a duration of at most 60 seconds, like \"2s\"".to_owned());
                }
                self.answer_delay = Some(delay);
            }
            ("sip", "max_calls") => {
                self.max_calls = Some(count(
                    value,
                    "expected a whole number of calls, at least 1 (leave it out for as many as the ports allow)",
                )?);
            }
            ("sip", "max_setups_per_source") => {
                self.max_setups_per_source = Some(count(
                    value,
                    "expected a whole number of calls, at least 1",
                )?);
            }
            ("sip", "max_call_rate_per_source") => {
                let expected = "expected calls a second from 0.01 to 100000, like 2 or 0.5";
                let rate = match &value {
                    toml::Value::Integer(n) => *n as f64,
                    toml::Value::Float(n) => *n,
                    toml::Value::String(text) => {
                        text.trim().parse().map_err(|_| expected.to_owned())?
                    }
                    _ => return Err(format!("{expected}, found {}", describe(&value))),
                };
                if !(0.01..=100_000.0).contains(&rate) {
                    return Err(expected.to_owned());
                }
                self.max_call_rate_per_source = Some(rate);
            }
            ("sip", "trust") => self.trust = Some(trunk::networks(value)?),
            ("sip", "user_agent") => {
                // Empty (the default) sends no product header at all.
                self.user_agent = match value {
                    toml::Value::String(name) => Some(name.trim().to_owned()),
                    other => {
                        return Err(format!(
                            "expected a product name like \"dial-a-service\", or \"\" for none, found {}",
                            describe(&other)
                        ));
                    }
                };
            }
            ("media", "hold_timeout") => {
                self.hold_timeout = Some(duration_within(
                    value,
                    Duration::from_secs(10),
                    Duration::from_secs(24 * 3600),
                    "expected a duration from 10 s to 24 hours, like \"10m\"",
                )?);
            }
            ("media", "rtp_ports") => self.rtp_ports = Some(parsed(value, PortRange::EXPECTED)?),
            ("media", "codecs") => self.codecs = Some(codecs(value)?),
            ("media", "max_cached_tracks") => {
                self.max_cached_tracks = Some(count(
                    value,
                    "expected a whole number of tracks, at least 1",
                )?);
            }
            ("source" | "cache", key) => self.source.set(section, key, value, base)?,
            ("audio", "apology") => self.apology = Some(path(value)?),
            ("audio", "prompts") => self.prompts = Some(path(value)?),
            ("audio", "loudness_target") => {
                self.loudness_target = Some(loudness::target(value)?);
            }
            ("audio", "dynamics") => self.dynamics = Some(loudness::dynamics(value)?),
            ("log", "level") => {
                let level = text(value, "expected a log level like \"info\"")?;
                self.level = Some(log_level(&level)?);
            }
            ("log", "format") => {
                let format = text(value, "expected \"text\" or \"json\"")?;
                self.log_format = Some(LogFormat::parse(&format)?);
            }
            ("log", key) => self.call_log.set(key, value, base)?,
            ("trunk", key) => self.trunk.set(key, value, base)?,
            ("admin", "listen") => {
                let expected = "expected an address and port like \"127.0.0.1:8080\", or \"\" for no admin listener";
                self.admin_listen = Some(match &value {
                    toml::Value::String(text) if text.trim().is_empty() => None,
                    _ => Some(parsed(value, expected)?),
                });
            }
            ("self_test", "interval") => {
                const EXPECTED: &str =
                    "expected 0 (no self-test) or a duration from 10 s to 7 days, like \"15m\"";
                let interval = duration_within(
                    value,
                    Duration::ZERO,
                    Duration::from_secs(7 * 24 * 3600),
                    EXPECTED,
                )?;
                if !interval.is_zero() && interval < MIN_SELF_TEST_INTERVAL {
                    return Err(EXPECTED.to_owned());
                }
                self.self_test_interval = Some((!interval.is_zero()).then_some(interval));
            }
            ("line" | "dtmf" | "speech", key) => self.call.set(section, key, value, base)?,
            _ => unreachable!("KEYS lists only keys that Settings::set handles"),
        }
        Ok(())
    }

    /// Applies defaults; `file` is named in errors about keys missing from `[trunk]`.
    fn finish(self, config_dir: &Path, file: &Path) -> Result<Config, ConfigError> {
        let listen = self.listen.unwrap_or_else(|| {
            DEFAULT_LISTEN
                .parse()
                .expect("DEFAULT_LISTEN is a valid socket address")
        });
        let public_address = self
            .public_address
            .unwrap_or_else(|| loopback_if_wildcard(listen.ip()));
        let (source, cache) = self.source.finish(config_dir);
        let calls = self.call_log.finish(&cache.dir);
        let (line, dtmf, speech) = self.call.finish(config_dir);
        Ok(Config {
            trunk: self.trunk.finish(file)?,
            line,
            dtmf,
            speech,
            cache,
            sip: SipConfig {
                listen,
                public_address,
                t1: self.t1.unwrap_or(DEFAULT_T1),
                answer_delay: self.answer_delay.unwrap_or(Duration::ZERO),
                max_calls: self.max_calls,
                max_setups_per_source: self
                    .max_setups_per_source
                    .unwrap_or(DEFAULT_MAX_SETUPS_PER_SOURCE),
                max_call_rate_per_source: self
                    .max_call_rate_per_source
                    .unwrap_or(DEFAULT_MAX_CALL_RATE_PER_SOURCE),
                user_agent: self.user_agent.filter(|name| !name.is_empty()),
                trust: self.trust,
            },
            media: MediaConfig {
                rtp_ports: self.rtp_ports.unwrap_or(DEFAULT_RTP_PORTS),
                codecs: self.codecs.unwrap_or_else(|| Codec::ALL.to_vec()),
                max_cached_tracks: self.max_cached_tracks.unwrap_or(DEFAULT_MAX_CACHED_TRACKS),
                hold_timeout: self.hold_timeout.unwrap_or(DEFAULT_HOLD_TIMEOUT),
            },
            source,
            audio: AudioConfig {
                // The shipped layout: `config/` and `audio/` side by side.
                apology: self
                    .apology
                    .unwrap_or_else(|| config_dir.join("../audio/apology.wav")),
                prompts: self
                    .prompts
                    .unwrap_or_else(|| config_dir.join("../audio/prompts")),
                loudness: LoudnessSettings {
                    target: self.loudness_target.unwrap_or(DEFAULT_TARGET),
                    dynamics: self.dynamics.unwrap_or_default(),
                },
            },
            log: LogConfig {
                level: self.level.unwrap_or_else(|| "info".to_owned()),
                format: self.log_format.unwrap_or_default(),
                calls,
            },
            admin: AdminConfig {
                listen: self.admin_listen.unwrap_or_else(|| {
                    Some(
                        DEFAULT_ADMIN_LISTEN
                            .parse()
                            .expect("DEFAULT_ADMIN_LISTEN is a valid socket address"),
                    )
                }),
            },
            self_test: SelfTestConfig {
                interval: self
                    .self_test_interval
                    .unwrap_or(Some(DEFAULT_SELF_TEST_INTERVAL)),
            },
        })
    }
}

/// `ip`, or loopback of its family for a wildcard (`0.0.0.0`, `[::]`): an
/// address this machine reaches a listener on `ip` at.
pub fn loopback_if_wildcard(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    }
}

fn text(value: toml::Value, expected: &str) -> Result<String, String> {
    match value {
        toml::Value::String(text) if !text.trim().is_empty() => Ok(text),
        other => Err(format!("{expected}, found {}", describe(&other))),
    }
}

fn parsed<T: std::str::FromStr>(value: toml::Value, expected: &str) -> Result<T, String> {
    let found = describe(&value);
    let text = text(value, expected)?;
    text.trim()
        .parse()
        .map_err(|_| format!("{expected}, found {found}"))
}

fn count(value: toml::Value, expected: &str) -> Result<usize, String> {
    let n = match &value {
        toml::Value::Integer(n) => usize::try_from(*n).ok(),
        toml::Value::String(text) => text.trim().parse().ok(),
        _ => None,
    };
    n.filter(|n| *n >= 1)
        .ok_or_else(|| format!("{expected}, found {}", describe(&value)))
}

/// An array of names, or one comma-separated string (the form an env variable takes).
fn codecs(value: toml::Value) -> Result<Vec<Codec>, String> {
    let valid: Vec<&str> = Codec::ALL.iter().map(|c| c.config_name()).collect();
    let valid = valid.join(", ");
    let names: Vec<String> = match value {
        toml::Value::String(text) => text.split(',').map(str::to_owned).collect(),
        toml::Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                toml::Value::String(name) => Ok(name),
                other => Err(format!(
                    "expected codec names ({valid}), found {}",
                    describe(&other)
                )),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(format!(
                "expected a list of codecs like \"pcmu,pcma,opus\", found {}",
                describe(&other)
            ));
        }
    };
    let mut codecs = Vec::new();
    for name in names.iter().filter(|n| !n.trim().is_empty()) {
        let codec = Codec::from_config_name(name)
            .ok_or_else(|| format!("unknown codec {:?}; valid codecs: {valid}", name.trim()))?;
        if !codecs.contains(&codec) {
            codecs.push(codec);
        }
    }
    if codecs.is_empty() {
        return Err(format!("expected at least one codec ({valid})"));
    }
    Ok(codecs)
}

/// A duration between `min` and `max`; `expected` says so when it is not.
fn duration_within(
    value: toml::Value,
    min: Duration,
    max: Duration,
    expected: &str,
) -> Result<Duration, String> {
    let duration =
        deserialize_duration(value).map_err(|e: toml::de::Error| e.message().to_owned())?;
    if duration < min || duration > max {
        return Err(expected.to_owned());
    }
    Ok(duration)
}

fn describe(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Integer(n) => format!("the number {n}"),
        toml::Value::Float(n) => format!("the number {n}"),
        toml::Value::Boolean(b) => format!("{b}"),
        toml::Value::Datetime(d) => format!("the date {d}"),
        toml::Value::Array(_) => "an array".to_owned(),
        toml::Value::Table(_) => "a table".to_owned(),
    }
}

/// Deserialises a duration from plain seconds (`60`, `1.5`, `"60"`) or a humantime string
/// (`"90s"`, `"5m"`, `"500ms"`). Every duration key uses this one, so they all read alike;
/// it works with any serde deserializer (`#[serde(deserialize_with = "…")]`).
pub fn deserialize_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(DurationVisitor)
}

struct DurationVisitor;

impl DurationVisitor {
    fn seconds<E: de::Error>(seconds: f64) -> Result<Duration, E> {
        Duration::try_from_secs_f64(seconds).map_err(|_| {
            E::custom(format!(
                "expected a duration: {seconds} is not a usable number of seconds"
            ))
        })
    }
}

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration: seconds (60, 0.5) or with a unit (\"90s\", \"5m\", \"500ms\")")
    }

    fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<Duration, E> {
        Ok(Duration::from_secs(seconds))
    }

    fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<Duration, E> {
        u64::try_from(seconds)
            .map(Duration::from_secs)
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(seconds), &self))
    }

    fn visit_f64<E: de::Error>(self, seconds: f64) -> Result<Duration, E> {
        DurationVisitor::seconds(seconds)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        let text = text.trim();
        if let Ok(seconds) = text.parse::<f64>() {
            return DurationVisitor::seconds(seconds);
        }
        humantime::parse_duration(text)
            .map_err(|_| E::invalid_value(de::Unexpected::Str(text), &self))
    }
}

#[cfg(test)]
mod error_tests;
#[cfg(test)]
mod tests;

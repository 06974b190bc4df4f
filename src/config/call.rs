//! What a caller meets: `[line]` (time zone, church name, menu timing),
//! `[dtmf]` (which ways keys are heard) and `[speech]` (text to speech for
//! names and titles). Kept apart from `config.rs` for size; it uses the
//! same per-key parsers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{describe, duration_within, parsed, text};

pub(super) const LINE_KEYS: &[&str] = &[
    "timezone",
    "church_name",
    "menu_timeout",
    "skip_single_menu",
    "max_call_duration",
    "shutdown_grace",
    "resume",
    "resume_days",
];
pub(super) const DTMF_KEYS: &[&str] = &["methods", "inband_opus"];
pub(super) const SPEECH_KEYS: &[&str] = &["command", "voice", "rate"];

/// How long calls in progress may play on after SIGTERM: most of a
/// sermon's end, and within what service managers wait (systemd's 90 s).
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(60);
/// The "no key within 10 s after the menu".
pub const DEFAULT_MENU_TIMEOUT: Duration = Duration::from_secs(10);
/// espeak-ng's voice and pace for the shipped prompts (`audio/make-prompts.sh`),
/// so synthesised names match them.
pub const DEFAULT_VOICE: &str = "en-gb";
pub const DEFAULT_RATE: u32 = 140;
/// Two weeks: a caller who stopped last Sunday is still offered to carry
/// on the Sunday after.
pub const DEFAULT_RESUME_DAYS: u32 = 14;
/// Added to the longest service for `max_call_duration = "auto"`: the
/// greeting, the menu twice, a pause or two and some seeking back.
pub const MAX_CALL_MARGIN: Duration = Duration::from_secs(10 * 60);
/// The most `"auto"` allows, whatever a schedule says (a 24-hour vigil
/// recording should not let a stray call hold its ports for a day).
pub const MAX_CALL_CEILING: Duration = Duration::from_secs(4 * 3600);

/// How long a call may last before the line says goodbye.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaxCallDuration {
    /// The longest service the line offers plus [`MAX_CALL_MARGIN`], at
    /// most [`MAX_CALL_CEILING`] (the ceiling until durations are known).
    #[default]
    Auto,
    Fixed(Duration),
}

impl MaxCallDuration {
    /// The limit for a call answered now, given the longest service.
    pub fn limit(self, longest_service: Option<Duration>) -> Duration {
        match self {
            MaxCallDuration::Fixed(limit) => limit,
            MaxCallDuration::Auto => longest_service
                .map_or(MAX_CALL_CEILING, |longest| longest + MAX_CALL_MARGIN)
                .min(MAX_CALL_CEILING),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineConfig {
    /// Where the parish is: schedule times without an offset are local times here.
    pub timezone: chrono_tz::Tz,
    /// Greets callers with this instead of the schedule's (or feed's) name.
    pub church_name: Option<String>,
    /// Silence after the menu before it is said again (and, the second
    /// time, before the latest service plays).
    pub menu_timeout: Duration,
    /// With a single service, play it straight after the greeting.
    pub skip_single_menu: bool,
    pub max_call_duration: MaxCallDuration,
    /// After SIGTERM, new calls get 503 while calls in progress play on
    /// for at most this long; then they are hung up.
    pub shutdown_grace: Duration,
    /// Offer callers who present a number to carry on where they stopped.
    pub resume: bool,
    /// How long where a caller stopped is remembered.
    pub resume_days: u32,
}

/// Which ways the line listens for the caller's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfConfig {
    pub rfc4733: bool,
    pub info: bool,
    /// In-band tones on G.711 calls, where trunks that pass only tones are.
    pub inband: bool,
    /// In-band tones on Opus calls too (with `inband`). Off by default:
    /// decoding every Opus packet costs about 25 µs, so a thousand callers
    /// sending audio would need more than a core for it, and Opus callers
    /// (WebRTC, softphones) send keys as telephone-events (RFC 7874 §4).
    pub inband_opus: bool,
}

impl DtmfConfig {
    const EXPECTED: &'static str =
        "expected a list of ways to hear keys: \"rfc4733\", \"info\", \"inband\"";
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeechConfig {
    /// The espeak-ng program (a name on PATH or a path).
    pub command: PathBuf,
    pub voice: String,
    /// Words per minute.
    pub rate: u32,
}

/// What the file and environment said about these sections, before defaults.
#[derive(Default)]
pub(super) struct CallSettings {
    timezone: Option<chrono_tz::Tz>,
    church_name: Option<String>,
    menu_timeout: Option<Duration>,
    skip_single_menu: Option<bool>,
    max_call_duration: Option<MaxCallDuration>,
    shutdown_grace: Option<Duration>,
    resume: Option<bool>,
    resume_days: Option<u32>,
    dtmf: Option<DtmfConfig>,
    inband_opus: Option<bool>,
    command: Option<PathBuf>,
    voice: Option<String>,
    rate: Option<u32>,
}

impl CallSettings {
    pub(super) fn set(
        &mut self,
        section: &str,
        key: &str,
        value: toml::Value,
        base: Option<&Path>,
    ) -> Result<(), String> {
        match (section, key) {
            ("line", "timezone") => {
                self.timezone = Some(parsed(
                    value,
                    "expected a time zone name like \"Europe/London\" (from the IANA tz database)",
                )?);
            }
            ("line", "church_name") => {
                self.church_name = Some(
                    text(
                        value,
                        "expected the church's name as callers should hear it",
                    )?
                    .trim()
                    .to_owned(),
                );
            }
            ("line", "menu_timeout") => {
                // Shorter cuts a slow caller off; longer leaves them in silence.
                self.menu_timeout = Some(duration_within(
                    value,
                    Duration::from_secs(1),
                    Duration::from_secs(120),
                    "expected a duration from 1 s to 2 minutes, like \"10s\"",
                )?);
            }
            ("line", "skip_single_menu") => self.skip_single_menu = Some(boolean(value)?),
            ("line", "shutdown_grace") => {
                // Zero hangs up at once; a day is longer than any service.
                self.shutdown_grace = Some(duration_within(
                    value,
                    Duration::ZERO,
                    Duration::from_secs(24 * 3600),
                    "expected a duration from 0 s to 24 hours, like \"60s\"",
                )?);
            }
            ("line", "max_call_duration") => {
                let expected =
                    "expected \"auto\" or a duration from 1 minute to 24 hours, like \"2h\"";
                let auto = matches!(&value, toml::Value::String(t) if t.trim().eq_ignore_ascii_case("auto"));
                self.max_call_duration = Some(if auto {
                    MaxCallDuration::Auto
                } else {
                    MaxCallDuration::Fixed(duration_within(
                        value,
                        Duration::from_secs(60),
                        Duration::from_secs(24 * 3600),
                        expected,
                    )?)
                });
            }
            ("line", "resume") => self.resume = Some(boolean(value)?),
            ("line", "resume_days") => {
                self.resume_days = Some(integer_within(
                    value,
                    1..=365,
                    "expected a number of days from 1 to 365, like 14",
                )?);
            }
            ("dtmf", "methods") => self.dtmf = Some(methods(value)?),
            ("dtmf", "inband_opus") => self.inband_opus = Some(boolean(value)?),
            ("speech", "command") => {
                // A bare name is looked up on PATH, so it is not made relative.
                let command = PathBuf::from(text(value, "expected a program name or path")?);
                self.command = Some(match base {
                    Some(dir) if command.components().count() > 1 && command.is_relative() => {
                        dir.join(command)
                    }
                    _ => command,
                });
            }
            ("speech", "voice") => {
                self.voice = Some(text(value, "expected an espeak-ng voice like \"en-gb\"")?)
            }
            ("speech", "rate") => {
                self.rate = Some(integer_within(
                    value,
                    80..=450,
                    "expected words per minute from 80 to 450, like 140",
                )?);
            }
            _ => unreachable!("the key tables list only keys that CallSettings::set handles"),
        }
        Ok(())
    }

    pub(super) fn finish(self, _config_dir: &Path) -> (LineConfig, DtmfConfig, SpeechConfig) {
        let line = LineConfig {
            timezone: self
                .timezone
                .unwrap_or(crate::source::schedule::DEFAULT_TIMEZONE),
            church_name: self.church_name,
            menu_timeout: self.menu_timeout.unwrap_or(DEFAULT_MENU_TIMEOUT),
            skip_single_menu: self.skip_single_menu.unwrap_or(true),
            max_call_duration: self.max_call_duration.unwrap_or_default(),
            shutdown_grace: self.shutdown_grace.unwrap_or(DEFAULT_SHUTDOWN_GRACE),
            resume: self.resume.unwrap_or(true),
            resume_days: self.resume_days.unwrap_or(DEFAULT_RESUME_DAYS),
        };
        let mut dtmf = self.dtmf.unwrap_or(DtmfConfig {
            rfc4733: true,
            info: true,
            inband: true,
            inband_opus: false,
        });
        dtmf.inband_opus = self.inband_opus.unwrap_or(false);
        let speech = SpeechConfig {
            command: self.command.unwrap_or_else(|| PathBuf::from("espeak-ng")),
            voice: self.voice.unwrap_or_else(|| DEFAULT_VOICE.to_owned()),
            rate: self.rate.unwrap_or(DEFAULT_RATE),
        };
        (line, dtmf, speech)
    }
}

/// `true`/`false`, or their text (`"yes"`, `"no"`, `"1"`, `"0"`) from the environment.
pub(super) fn boolean(value: toml::Value) -> Result<bool, String> {
    let expected = "expected true or false";
    match &value {
        toml::Value::Boolean(b) => Ok(*b),
        toml::Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(true),
            "false" | "no" | "off" | "0" => Ok(false),
            _ => Err(format!("{expected}, found {}", describe(&value))),
        },
        _ => Err(format!("{expected}, found {}", describe(&value))),
    }
}

/// An array of names or one comma-separated string; an empty list turns
/// every way off (keys are then ignored and every caller hears the latest
/// service after the menu).
fn methods(value: toml::Value) -> Result<DtmfConfig, String> {
    let names: Vec<String> = match value {
        toml::Value::String(text) => text.split(',').map(str::to_owned).collect(),
        toml::Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                toml::Value::String(name) => Ok(name),
                other => Err(format!(
                    "{}, found {}",
                    DtmfConfig::EXPECTED,
                    describe(&other)
                )),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(format!(
                "{}, found {}",
                DtmfConfig::EXPECTED,
                describe(&other)
            ));
        }
    };
    let mut dtmf = DtmfConfig {
        rfc4733: false,
        info: false,
        inband: false,
        inband_opus: false,
    };
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        match name.to_ascii_lowercase().as_str() {
            "rfc4733" | "rfc2833" => dtmf.rfc4733 = true,
            "info" => dtmf.info = true,
            "inband" | "in-band" => dtmf.inband = true,
            _ => return Err(format!("unknown way {name:?}; {}", DtmfConfig::EXPECTED)),
        }
    }
    Ok(dtmf)
}

/// A whole number in `range`, from a TOML integer or its text (the form an
/// environment variable takes); `expected` says so when it is not.
fn integer_within(
    value: toml::Value,
    range: std::ops::RangeInclusive<u32>,
    expected: &str,
) -> Result<u32, String> {
    let n: u32 = match &value {
        toml::Value::Integer(n) => u32::try_from(*n).map_err(|_| expected.to_owned())?,
        _ => parsed(value, expected)?,
    };
    if !range.contains(&n) {
        return Err(expected.to_owned());
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(section: &str, key: &str, value: toml::Value) -> Result<CallSettings, String> {
        let mut settings = CallSettings::default();
        settings.set(section, key, value, Some(Path::new("/etc/das")))?;
        Ok(settings)
    }

    #[test]
    fn defaults_listen_every_way_and_wait_ten_seconds() {
        let (line, dtmf, speech) = CallSettings::default().finish(Path::new("/srv/config"));
        assert_eq!(line.menu_timeout, Duration::from_secs(10));
        assert!(line.skip_single_menu);
        assert!(line.resume);
        assert_eq!(line.resume_days, 14);
        assert!(dtmf.rfc4733 && dtmf.info && dtmf.inband && !dtmf.inband_opus);
        assert_eq!(speech.command, PathBuf::from("espeak-ng"));
        assert_eq!((speech.voice.as_str(), speech.rate), ("en-gb", 140));
        assert_eq!(line.church_name, None);
    }

    #[test]
    fn dtmf_methods_from_a_list_or_text() {
        let list = toml::Value::Array(vec!["rfc4733".into(), "inband".into()]);
        let (_, dtmf, _) = set("dtmf", "methods", list).unwrap().finish(Path::new(""));
        assert_eq!(
            dtmf,
            DtmfConfig {
                rfc4733: true,
                info: false,
                inband: true,
                inband_opus: false,
            }
        );
        let (_, dtmf, _) = set("dtmf", "inband_opus", "yes".into())
            .unwrap()
            .finish(Path::new(""));
        assert!(dtmf.inband && dtmf.inband_opus);
        let (_, dtmf, _) = set("dtmf", "methods", "info".into())
            .unwrap()
            .finish(Path::new(""));
        assert!(dtmf.info && !dtmf.rfc4733 && !dtmf.inband);
        let error = set("dtmf", "methods", "sms".into()).err().unwrap();
        assert!(error.contains("unknown way \"sms\""), "{error}");
    }

    #[test]
    fn bad_values_say_what_was_expected() {
        let error = set("line", "menu_timeout", "0s".into()).err().unwrap();
        assert!(error.contains("from 1 s to 2 minutes"), "{error}");
        let error = set("line", "skip_single_menu", "maybe".into())
            .err()
            .unwrap();
        assert!(error.contains("true or false"), "{error}");
        let error = set("speech", "rate", toml::Value::Integer(9))
            .err()
            .unwrap();
        assert!(error.contains("words per minute"), "{error}");
        assert!(set("line", "skip_single_menu", "no".into()).is_ok());
        let error = set("line", "resume_days", toml::Value::Integer(0))
            .err()
            .unwrap();
        assert!(error.contains("from 1 to 365"), "{error}");
        let (line, _, _) = set("line", "resume_days", "30".into())
            .unwrap()
            .finish(Path::new(""));
        assert_eq!(line.resume_days, 30);
        let (line, _, _) = set("line", "resume", "false".into())
            .unwrap()
            .finish(Path::new(""));
        assert!(!line.resume);
        assert!(set("speech", "rate", "160".into()).is_ok());
    }

    #[test]
    fn paths_resolve_against_the_file_but_program_names_stay_bare() {
        let (_, _, speech) = set("speech", "command", "espeak-ng".into())
            .unwrap()
            .finish(Path::new(""));
        assert_eq!(speech.command, PathBuf::from("espeak-ng"));
        let (_, _, speech) = set("speech", "command", "bin/say".into())
            .unwrap()
            .finish(Path::new(""));
        assert_eq!(speech.command, PathBuf::from("/etc/das/bin/say"));
        let (line, _, _) = set("line", "church_name", " St Anne's ".into())
            .unwrap()
            .finish(Path::new(""));
        assert_eq!(line.church_name.as_deref(), Some("St Anne's"));
    }
}

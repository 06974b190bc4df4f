//! Where the services come from: `[source]` (a schedule or podcast feed, as
//! a path or an `http(s)://` URL, its audio, how often it is fetched and how
//! its certificates are checked) and `[cache]` (where downloads and rendered
//! speech are kept). Kept apart from `config.rs` for size.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{count, duration_within, text};
use crate::source::{Redacted, redact_url};

pub(super) const SOURCE_KEYS: &[&str] = &[
    "schedule",
    "audio",
    "refresh_interval",
    "ca_file",
    "insecure_skip_verify",
];
pub(super) const CACHE_KEYS: &[&str] = &["dir", "keep_latest"];

/// The "every 5 minutes": a new service appears within minutes,
/// and a parish website is asked 288 times a day, mostly for a 304.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(300);
pub const DEFAULT_KEEP_LATEST: usize = 20;

/// A file on this machine or a resource on the web.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Path(PathBuf),
    Url(SourceUrl),
}

/// A URL as configured. Shown (`Display` and `Debug`, so in every log line,
/// error, `check` and `menu` output) without its user part, query or
/// fragment, where credentials and tokens live ([`redact_url`]); the whole
/// URL only through [`SourceUrl::as_str`], to fetch it.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceUrl(String);

impl SourceUrl {
    /// The URL as written, secrets included: for the HTTP client only.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for SourceUrl {
    fn from(url: &str) -> SourceUrl {
        SourceUrl(url.to_owned())
    }
}

impl From<String> for SourceUrl {
    fn from(url: String) -> SourceUrl {
        SourceUrl(url)
    }
}

impl fmt::Display for SourceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Redacted(&self.0).fmt(f)
    }
}

impl fmt::Debug for SourceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SourceUrl({:?})", Redacted(&self.0))
    }
}

impl Location {
    /// `http://` and `https://` are URLs (kept as written); anything else is
    /// a path, relative ones resolved against `base`.
    fn parse(text: &str, base: Option<&Path>) -> Result<Location, String> {
        let trimmed = text.trim();
        let lower = trimmed.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            if trimmed.len() <= "https://".len() || trimmed.contains(char::is_whitespace) {
                return Err(format!("{:?} is not a usable URL", redact_url(trimmed)));
            }
            return Ok(Location::Url(trimmed.into()));
        }
        if lower.contains("://") {
            return Err(format!(
                "{:?}: only http:// and https:// URLs, or a path on this machine",
                redact_url(trimmed)
            ));
        }
        let path = PathBuf::from(trimmed);
        Ok(Location::Path(match base {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path,
        }))
    }

    pub fn as_path(&self) -> Option<&Path> {
        match self {
            Location::Path(path) => Some(path),
            Location::Url(_) => None,
        }
    }

    /// The folder beside this location: `<dir>/audio` for a path,
    /// `<url dir>/audio/` for a URL (as the old line read its audio).
    fn sibling_audio(&self) -> Location {
        match self {
            Location::Path(path) => {
                Location::Path(path.parent().unwrap_or(Path::new("")).join("audio"))
            }
            Location::Url(url) => {
                let url = url.as_str();
                // Past the scheme and host, the last '/' ends the folder.
                let after_scheme = url.find("://").map_or(0, |i| i + 3);
                let without_query = url.split(['?', '#']).next().unwrap_or(url);
                let folder = match without_query[after_scheme..].rfind('/') {
                    Some(i) => &without_query[..after_scheme + i + 1],
                    None => without_query,
                };
                let folder = folder.trim_end_matches('/');
                Location::Url(format!("{folder}/audio/").into())
            }
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Path(path) => write!(f, "{}", path.display()),
            Location::Url(url) => url.fmt(f),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceConfig {
    /// The parish's `data.json` or podcast feed.
    pub schedule: Location,
    /// Where the schedule's `file` names are.
    pub audio: Location,
    /// How often a schedule URL is fetched again (a conditional GET).
    pub refresh_interval: Duration,
    /// Extra certificate authorities (PEM) for a parish with its own CA.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate: only for trying things out, and loudly logged.
    pub insecure_skip_verify: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Downloads and rendered speech live here, across restarts.
    pub dir: PathBuf,
    /// How many services' audio is kept; older downloads are deleted.
    pub keep_latest: usize,
}

/// What the file and environment said about these sections, before defaults.
#[derive(Default)]
pub(super) struct SourceSettings {
    schedule: Option<Location>,
    audio: Option<Location>,
    /// Where each was set: the file (false) or the environment (true).
    schedule_from_env: bool,
    audio_from_env: bool,
    refresh_interval: Option<Duration>,
    ca_file: Option<PathBuf>,
    insecure_skip_verify: Option<bool>,
    cache_dir: Option<PathBuf>,
    keep_latest: Option<usize>,
}

impl SourceSettings {
    pub(super) fn set(
        &mut self,
        section: &str,
        key: &str,
        value: toml::Value,
        base: Option<&Path>,
    ) -> Result<(), String> {
        let path = |value: toml::Value| {
            let path = PathBuf::from(text(value, "expected a path")?);
            Ok::<_, String>(match base {
                Some(dir) if path.is_relative() => dir.join(path),
                _ => path,
            })
        };
        match (section, key) {
            ("source", "schedule") => {
                let text = text(value, "expected a path or an http(s):// URL")?;
                self.schedule = Some(Location::parse(&text, base)?);
                self.schedule_from_env = base.is_none();
            }
            ("source", "audio") => {
                let text = text(value, "expected a folder path or an http(s):// URL")?;
                self.audio = Some(Location::parse(&text, base)?);
                self.audio_from_env = base.is_none();
            }
            ("source", "refresh_interval") => {
                // Slower than a day would miss a Sunday.
                self.refresh_interval = Some(duration_within(
                    value,
                    Duration::from_secs(1),
                    Duration::from_secs(86_400),
                    "expected a duration from 1 s to 1 day, like \"5m\"",
                )?);
            }
            ("source", "ca_file") => self.ca_file = Some(path(value)?),
            ("source", "insecure_skip_verify") => {
                self.insecure_skip_verify = Some(super::call::boolean(value)?)
            }
            ("cache", "dir") => self.cache_dir = Some(path(value)?),
            ("cache", "keep_latest") => {
                self.keep_latest = Some(count(
                    value,
                    "expected a whole number of services to keep, at least 1",
                )?)
            }
            _ => unreachable!("the key tables list only keys that SourceSettings::set handles"),
        }
        Ok(())
    }

    pub(super) fn finish(self, config_dir: &Path) -> (SourceConfig, CacheConfig) {
        let schedule_set = self.schedule.is_some();
        let schedule = self
            .schedule
            .unwrap_or_else(|| Location::Path(config_dir.join("data.json")));
        // `[source] audio` belongs to the schedule set in the same place: a
        // schedule given only in the environment (`DAS_SOURCE_SCHEDULE=https://…`
        // over the shipped file) must not be paired with the file's folder,
        // or every service would be missing and callers hear the apology.
        let audio = self
            .audio
            .filter(|_| !schedule_set || self.audio_from_env == self.schedule_from_env);
        // The parish's layout: `<root>/data.json` beside `<root>/audio/<file>`.
        let audio = audio.unwrap_or_else(|| schedule.sibling_audio());
        let source = SourceConfig {
            schedule,
            audio,
            refresh_interval: self.refresh_interval.unwrap_or(DEFAULT_REFRESH_INTERVAL),
            ca_file: self.ca_file,
            insecure_skip_verify: self.insecure_skip_verify.unwrap_or(false),
        };
        let cache = CacheConfig {
            // The shipped layout: `config/` and `cache/` side by side.
            dir: self
                .cache_dir
                .unwrap_or_else(|| config_dir.join("../cache")),
            keep_latest: self.keep_latest.unwrap_or(DEFAULT_KEEP_LATEST),
        };
        (source, cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finish(pairs: &[(&str, &str, toml::Value)]) -> Result<(SourceConfig, CacheConfig), String> {
        let mut settings = SourceSettings::default();
        for (section, key, value) in pairs {
            settings.set(section, key, value.clone(), Some(Path::new("/etc/das")))?;
        }
        Ok(settings.finish(Path::new("/etc/das")))
    }

    #[test]
    fn defaults_are_the_shipped_layout() {
        let (source, cache) = finish(&[]).unwrap();
        assert_eq!(source.schedule, Location::Path("/etc/das/data.json".into()));
        assert_eq!(source.audio, Location::Path("/etc/das/audio".into()));
        assert_eq!(source.refresh_interval, Duration::from_secs(300));
        assert!(!source.insecure_skip_verify);
        assert_eq!(cache.dir, PathBuf::from("/etc/das/../cache"));
        assert_eq!(cache.keep_latest, 20);
    }

    #[test]
    fn a_schedule_url_takes_its_audio_from_beside_it() {
        let url = "https://stmarys.example/dial/data.json".into();
        let (source, _) = finish(&[("source", "schedule", url)]).unwrap();
        assert_eq!(
            source.schedule,
            Location::Url("https://stmarys.example/dial/data.json".into())
        );
        assert_eq!(
            source.audio,
            Location::Url("https://stmarys.example/dial/audio/".into())
        );
        let feed = "HTTPS://example.org/feed?x=1".into();
        let (source, _) = finish(&[("source", "schedule", feed)]).unwrap();
        assert_eq!(
            source.audio,
            Location::Url("HTTPS://example.org/audio/".into())
        );
    }

    #[test]
    fn urls_are_shown_without_credentials_or_query() {
        let url = "https://user:secret@stmarys.example/dial/data.json?token=abc#x";
        let (source, _) = finish(&[("source", "schedule", url.into())]).unwrap();
        let Location::Url(schedule) = &source.schedule else {
            panic!("a URL: {:?}", source.schedule);
        };
        assert_eq!(schedule.as_str(), url, "fetched as written");
        for shown in [
            source.schedule.to_string(),
            format!("{:?}", source.schedule),
            format!("{source:?}"),
        ] {
            assert!(
                shown.contains("https://stmarys.example/dial/data.json"),
                "{shown}"
            );
            assert!(
                !shown.contains("secret") && !shown.contains("abc"),
                "{shown}"
            );
        }
        let error =
            finish(&[("source", "audio", "ftp://u:secret@x/a?token=abc".into())]).unwrap_err();
        assert!(error.contains("\"ftp://x/a\""), "{error}");
        let error = finish(&[("source", "audio", "https://u:secret@x/a b".into())]).unwrap_err();
        assert!(!error.contains("secret"), "{error}");
    }

    #[test]
    fn bad_values_say_what_was_expected() {
        let error = finish(&[("source", "schedule", "ftp://x/data.json".into())]).unwrap_err();
        assert!(error.contains("only http:// and https://"), "{error}");
        let error = finish(&[("source", "refresh_interval", "500ms".into())]).unwrap_err();
        assert!(error.contains("from 1 s to 1 day"), "{error}");
        let error = finish(&[("cache", "keep_latest", toml::Value::Integer(0))]).unwrap_err();
        assert!(error.contains("at least 1"), "{error}");
        let (source, _) = finish(&[
            ("source", "ca_file", "ca.pem".into()),
            ("source", "insecure_skip_verify", "yes".into()),
        ])
        .unwrap();
        assert_eq!(source.ca_file, Some(PathBuf::from("/etc/das/ca.pem")));
        assert!(source.insecure_skip_verify);
    }
}

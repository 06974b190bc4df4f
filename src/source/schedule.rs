//! The parish's schedule, `data.json`, read in the format it already publishes for its old
//! line, unchanged: `church_name`, and `services` of `{ datetime, file, title? }` (unknown
//! fields ignored, order of services irrelevant).
//!
//! Two optional fields let a parish give its own recordings of the words otherwise spoken by
//! speech synthesis: `church_name_audio` at the top and `title_audio` per service, file names
//! inside the audio folder like `file`.
//!
//! `file` and the recordings may instead be absolute `http://` or `https://` URLs (issue 5),
//! for audio kept elsewhere than beside the schedule; [`is_remote`] tells them apart. Any
//! other scheme (`file:`, `ftp:`, `javascript:`) is refused, as is a relative path that
//! climbs out of the folder.
//!
//! One broken service must not take the line down: an entry with a missing file, a bad
//! date or a wrong type is skipped and described in [`Schedule::problems`] (for the logs and
//! `check`), and callers still get every other service. Only a file that is not a schedule
//! at all (invalid JSON, no `church_name`, no `services`) is an error.
//!
//! Date-times are ISO 8601 / RFC 3339 with a numeric offset, written with or without the
//! colon (`+0100`, `+01:00`) or `Z`; a service is hidden until its time comes, so a parish
//! can upload one ahead of time.

use std::path::{Component, Path, PathBuf};

use chrono::{DateTime, FixedOffset, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::Value;
use url::Url;

use super::redact::redact_if_url;

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("cannot read schedule {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    InFile {
        path: PathBuf,
        source: Box<ScheduleError>,
    },
    #[error("schedule is not valid json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("schedule is not a json object with \"church_name\" and \"services\"")]
    NotAnObject,
    #[error("schedule has no \"{field}\"")]
    Missing { field: &'static str },
    #[error("schedule's \"{field}\" is not {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub title: Option<String>,
    pub datetime: DateTime<FixedOffset>,
    /// A relative path under the audio folder, checked to stay inside it, or an absolute
    /// http(s) URL (see [`is_remote`]).
    pub file: String,
    /// A recording of the title, under the audio folder or a URL, like `file`.
    pub title_audio: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub church_name: String,
    /// A recording of the church name, under the audio folder or a URL, like `file`.
    pub church_name_audio: Option<String>,
    /// In the order of the file; see [`Schedule::available`] for callers' order.
    pub services: Vec<Service>,
    /// One line per skipped entry, e.g. `service 3: no "file"`.
    pub problems: Vec<String>,
}

/// The time zone of the parish when none is configured.
pub const DEFAULT_TIMEZONE: Tz = chrono_tz::Europe::London;

impl Schedule {
    /// Parses with date-times without an offset read in [`DEFAULT_TIMEZONE`].
    pub fn parse(json: &str) -> Result<Schedule, ScheduleError> {
        Schedule::parse_in(json, DEFAULT_TIMEZONE)
    }

    /// Parses a `data.json`; a `datetime` without an offset is a local time
    /// in `timezone`, so nobody writes summer-time offsets by hand.
    pub fn parse_in(json: &str, timezone: Tz) -> Result<Schedule, ScheduleError> {
        let root: Value = serde_json::from_str(json)?;
        let Value::Object(root) = root else {
            return Err(ScheduleError::NotAnObject);
        };
        let church_name = match root.get("church_name") {
            None | Some(Value::Null) => {
                return Err(ScheduleError::Missing {
                    field: "church_name",
                });
            }
            Some(Value::String(name)) if !name.trim().is_empty() => name.trim().to_owned(),
            Some(_) => {
                return Err(ScheduleError::WrongType {
                    field: "church_name",
                    expected: "a non-empty string",
                });
            }
        };
        let mut problems = Vec::new();
        let church_name_audio =
            match audio_field(root.get("church_name_audio"), "church_name_audio") {
                Ok(audio) => audio,
                Err(problem) => {
                    problems.push(problem);
                    None
                }
            };
        let entries = match root.get("services") {
            None | Some(Value::Null) => return Err(ScheduleError::Missing { field: "services" }),
            Some(Value::Array(entries)) => entries,
            Some(_) => {
                return Err(ScheduleError::WrongType {
                    field: "services",
                    expected: "an array",
                });
            }
        };

        let mut services: Vec<Service> = Vec::new();
        // Where each kept service was in the file, to name the original of a duplicate.
        let mut positions: Vec<usize> = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            // Numbered from 1, as a person counts the entries in the file.
            let position = index + 1;
            match parse_service(entry, timezone) {
                Ok((service, warning)) => {
                    if let Some(warning) = warning {
                        problems.push(format!("service {position}: {warning}"));
                    }
                    let same = services
                        .iter()
                        .position(|s| s.datetime == service.datetime && s.file == service.file);
                    match same {
                        Some(earlier) => problems.push(format!(
                            "service {position}: a duplicate of service {} (same time and file)",
                            positions[earlier]
                        )),
                        None => {
                            services.push(service);
                            positions.push(position);
                        }
                    }
                }
                Err(problem) => problems.push(format!("service {position}: {problem}")),
            }
        }
        Ok(Schedule {
            church_name,
            church_name_audio,
            services,
            problems,
        })
    }

    pub fn load(path: &Path) -> Result<Schedule, ScheduleError> {
        Schedule::load_in(path, DEFAULT_TIMEZONE)
    }

    /// Reads and parses the file, local times in `timezone`.
    pub fn load_in(path: &Path, timezone: Tz) -> Result<Schedule, ScheduleError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScheduleError::Read {
            path: path.to_owned(),
            source,
        })?;
        Schedule::parse_in(&text, timezone).map_err(|source| ScheduleError::InFile {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// Services whose time has come, newest first (ties keep the file's order).
    pub fn available(&self, now: DateTime<Utc>) -> Vec<&Service> {
        let mut available: Vec<&Service> =
            self.services.iter().filter(|s| s.datetime <= now).collect();
        // A stable sort, so services at the same time stay in the file's order.
        available.sort_by_key(|s| std::cmp::Reverse(s.datetime));
        available
    }

    pub fn latest(&self, now: DateTime<Utc>) -> Option<&Service> {
        self.available(now).into_iter().next()
    }
}

/// One entry and what is wrong with an optional part of it, or what is wrong with it.
fn parse_service(entry: &Value, timezone: Tz) -> Result<(Service, Option<String>), String> {
    let Value::Object(entry) = entry else {
        return Err("is not an object with \"datetime\" and \"file\"".to_owned());
    };
    let datetime = match entry.get("datetime") {
        None | Some(Value::Null) => return Err("no \"datetime\"".to_owned()),
        Some(Value::String(text)) => parse_datetime(text, timezone)?,
        Some(other) => return Err(format!("datetime {other} is not a string")),
    };
    let file = match entry.get("file") {
        None | Some(Value::Null) => return Err("no \"file\"".to_owned()),
        Some(Value::String(file)) => audio_reference(file)
            .ok_or_else(|| format!("file {:?} {NOT_AUDIO_REFERENCE}", redact_if_url(file)))?,
        Some(other) => return Err(format!("file {other} is not a string")),
    };
    let title = match entry.get("title") {
        None | Some(Value::Null) => None,
        Some(Value::String(title)) => Some(title.trim().to_owned()).filter(|t| !t.is_empty()),
        Some(other) => return Err(format!("title {other} is not a string")),
    };
    // A bad recording of the title loses only the recording: the service itself is
    // fine, and its title is still spoken by synthesis (or the date alone is said).
    let (title_audio, warning) = match audio_field(entry.get("title_audio"), "title_audio") {
        Ok(audio) => (audio, None),
        Err(problem) => (None, Some(problem)),
    };
    let service = Service {
        title,
        datetime,
        file,
        title_audio,
    };
    Ok((service, warning))
}

/// An optional recording's file name or URL, checked like `file`; empty is none.
fn audio_field(value: Option<&Value>, field: &str) -> Result<Option<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(file)) if file.trim().is_empty() => Ok(None),
        Some(Value::String(file)) => audio_reference(file)
            .map(Some)
            .ok_or_else(|| format!("{field} {:?} {NOT_AUDIO_REFERENCE}", redact_if_url(file))),
        Some(other) => Err(format!("{field} {other} is not a string")),
    }
}

const NOT_AUDIO_REFERENCE: &str =
    "is neither a file name inside the audio folder nor an http(s) URL";

/// `file` as it is kept: a name inside the audio folder unchanged, or an absolute http(s)
/// URL in its normal form (so two spellings of one URL are one recording); `None` for
/// anything else.
fn audio_reference(file: &str) -> Option<String> {
    if let Some(url) = remote_url(file) {
        return Some(url.into());
    }
    // A name is joined to the audio folder, and later to the audio URL: nothing may climb
    // out of it, and a first segment like `javascript:x` would read as a scheme in a URL
    // (RFC 3986 §4.2), so a name with one is refused rather than guessed at.
    (is_inside(file) && !has_scheme(file)).then(|| file.to_owned())
}

/// Whether a service's `file` (or a recording) is an absolute http(s) URL to fetch, rather
/// than a name inside the audio folder.
pub fn is_remote(file: &str) -> bool {
    remote_url(file).is_some()
}

/// An absolute `http://` or `https://` URL with a host.
fn remote_url(file: &str) -> Option<Url> {
    let file = file.trim();
    // Only these two schemes: `Url::parse` alone would also take `file:`, `ftp:` and the
    // rest, which the line must never follow.
    let lower = file.get(..8).unwrap_or(file).to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &file[7..]
    } else if lower.starts_with("https://") {
        &file[8..]
    } else {
        return None;
    };
    // `Url::parse` reads `https:///x` as host `x`; a parish meant something else.
    if rest.starts_with(['/', '\\']) {
        return None;
    }
    Url::parse(file)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
}

/// Whether the text starts with `scheme:` (RFC 3986 §3.1: a letter, then letters, digits,
/// `+`, `-` or `.`).
fn has_scheme(file: &str) -> bool {
    let Some((scheme, _)) = file.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// RFC 3339 (`Z`, `+01:00`, fractional seconds), the parish's `+0100`
/// without a colon, or a local time with no offset, read in `timezone`.
pub fn parse_datetime(text: &str, timezone: Tz) -> Result<DateTime<FixedOffset>, String> {
    let text = text.trim();
    if let Ok(datetime) = DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
    {
        return Ok(datetime);
    }
    let local = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
    .ok_or_else(|| {
        format!(
            "datetime {text:?} is not a date-time, like \"2022-05-01T10:00:00\" (local time) \
                 or \"2022-05-01T10:00:00+0100\""
        )
    })?;
    match timezone.from_local_datetime(&local) {
        LocalResult::Single(datetime) => Ok(datetime.fixed_offset()),
        // The hour the clocks skip in spring.
        LocalResult::None => Err(format!(
            "datetime {text:?} does not exist in {timezone}: the clocks go forward then"
        )),
        // The hour that happens twice in autumn.
        LocalResult::Ambiguous(first, second) => Err(format!(
            "datetime {text:?} happens twice in {timezone} as the clocks go back: write {} or {}",
            first.fixed_offset().format("%Y-%m-%dT%H:%M:%S%z"),
            second.fixed_offset().format("%Y-%m-%dT%H:%M:%S%z")
        )),
    }
}

/// A non-empty relative path of plain names: no `..`, no root, no drive, no backslash.
fn is_inside(file: &str) -> bool {
    !file.trim().is_empty()
        && !file.contains('\\')
        && Path::new(file)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

#[cfg(test)]
mod tests;

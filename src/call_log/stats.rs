//! Reading the call log back and summing it up: calls, distinct callers,
//! and listens per service, overall and per ISO week (weeks start on
//! Monday, in UTC). `dial-a-service stats` prints a [`Summary`]; the status
//! page charts [`Summary::weeks`] from [`summarise_file`].
//!
//! A **listen** is a service heard for at least [`LISTEN_MIN`] (30 s) or to
//! its end: enough to tell someone who stayed from someone who flicked
//! past it in the menu.
//!
//! The files are input like any other: a line cut short by a crash, a line
//! of garbage or an over-long line is skipped and counted, never fatal, and
//! no line is held in memory beyond [`MAX_LINE`].

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};

use super::caller::ANONYMOUS;
use super::record::{CallRecord, ServiceHeard};
use super::writer::rotated;

/// Heard this long, a service counts as listened to.
pub const LISTEN_MIN_SECONDS: f64 = 30.0;
/// The longest line read; a record is well under 10 KiB.
pub const MAX_LINE: usize = 64 * 1024;
/// Rotated files looked for beyond `[log] calls_keep`'s default, so files
/// kept under a larger setting are still read.
const MAX_ROTATED: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("cannot read the call log {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0:?} is not a date: expected 2026-11-01 or a moment like 2026-11-01T09:00:00Z")]
    BadSince(String),
}

/// Records read from the log, oldest file first, and the lines skipped.
#[derive(Debug, Default)]
pub struct Records {
    pub records: Vec<CallRecord>,
    pub skipped: usize,
}

/// Listens (and calls) in one ISO week.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Week {
    pub calls: u64,
    pub distinct_callers: u64,
    /// Listens per service (see [`service_name`]).
    pub listens: BTreeMap<String, u64>,
}

/// What `stats` prints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub since: Option<DateTime<Utc>>,
    pub calls: u64,
    /// Different numbers (by their hash); withheld numbers are not counted.
    pub distinct_callers: u64,
    /// Calls from withheld numbers.
    pub withheld: u64,
    /// Listens per service (see [`service_name`]).
    pub listens: BTreeMap<String, u64>,
    /// By the Monday that starts each ISO week (UTC).
    pub weeks: BTreeMap<NaiveDate, Week>,
    /// Lines of the log that were not records (cut short, garbage).
    pub skipped_lines: usize,
}

/// Reads `path` and its rotated files (`path.1` …) and sums them up from
/// `since` on: what the status page calls for listens per service per week.
/// A missing log is an empty summary.
pub fn summarise_file(path: &Path, since: Option<DateTime<Utc>>) -> Result<Summary, StatsError> {
    let records = read_records(path)?;
    let mut summary = summarise(&records.records, since);
    summary.skipped_lines = records.skipped;
    Ok(summary)
}

/// Every record in `path`'s rotated files (oldest first) and then `path`.
pub fn read_records(path: &Path) -> Result<Records, StatsError> {
    let mut records = Records::default();
    let mut files: Vec<PathBuf> = (1..=MAX_ROTATED)
        .map(|n| rotated(path, n))
        .filter(|p| p.exists())
        .collect();
    files.reverse();
    files.push(path.to_owned());
    for file in files {
        match std::fs::File::open(&file) {
            Ok(f) => read_lines(f, &mut records).map_err(|source| StatsError::Read {
                path: file.clone(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(StatsError::Read { path: file, source }),
        }
    }
    Ok(records)
}

/// Reads records a line at a time, at most [`MAX_LINE`] bytes of each.
pub fn read_lines(input: impl Read, records: &mut Records) -> std::io::Result<()> {
    let mut input = BufReader::new(input);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut input)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if read == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') && read > MAX_LINE {
            // Over-long: skip to its end without keeping it.
            records.skipped += 1;
            skip_line(&mut input)?;
            continue;
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        match serde_json::from_slice::<CallRecord>(text) {
            Ok(record) => records.records.push(record),
            Err(_) => records.skipped += 1,
        }
    }
}

fn skip_line(input: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let buffer = input.fill_buf()?;
        if buffer.is_empty() {
            return Ok(());
        }
        match buffer.iter().position(|b| *b == b'\n') {
            Some(end) => {
                input.consume(end + 1);
                return Ok(());
            }
            None => {
                let all = buffer.len();
                input.consume(all);
            }
        }
    }
}

/// Sums up `records` that started at or after `since`; self-test calls are
/// left out.
pub fn summarise(records: &[CallRecord], since: Option<DateTime<Utc>>) -> Summary {
    let mut summary = Summary {
        since,
        ..Summary::default()
    };
    let mut callers = HashSet::new();
    let mut week_callers: BTreeMap<NaiveDate, HashSet<&str>> = BTreeMap::new();
    for record in records {
        if record.self_test || since.is_some_and(|since| record.start < since) {
            continue;
        }
        let monday = week_start(record.start);
        let week = summary.weeks.entry(monday).or_default();
        summary.calls += 1;
        week.calls += 1;
        match caller_of(record) {
            Some(caller) => {
                callers.insert(caller);
                week_callers.entry(monday).or_default().insert(caller);
            }
            None => summary.withheld += 1,
        }
        for service in record.services.iter().filter(|s| is_listen(s)) {
            let name = service_name(service);
            *summary.listens.entry(name.clone()).or_default() += 1;
            *week.listens.entry(name).or_default() += 1;
        }
    }
    summary.distinct_callers = callers.len() as u64;
    for (monday, callers) in week_callers {
        if let Some(week) = summary.weeks.get_mut(&monday) {
            week.distinct_callers = callers.len() as u64;
        }
    }
    summary
}

/// Heard for [`LISTEN_MIN_SECONDS`] or to its end.
pub fn is_listen(service: &ServiceHeard) -> bool {
    service.completed || service.heard_s >= LISTEN_MIN_SECONDS
}

/// How a service is named in the summary: its title and the day it was
/// held, e.g. `Choral Evensong (2026-05-01)`.
pub fn service_name(service: &ServiceHeard) -> String {
    match service.date.get(..10) {
        Some(day) => format!("{} ({day})", service.title),
        None => service.title.clone(),
    }
}

/// The caller's hash (or number, in a log written before hashes); `None`
/// for a withheld number.
fn caller_of(record: &CallRecord) -> Option<&str> {
    record
        .caller_hash
        .as_deref()
        .or(record.caller.as_deref())
        .filter(|c| *c != ANONYMOUS && !c.is_empty())
}

/// The Monday of `at`'s ISO week.
pub fn week_start(at: DateTime<Utc>) -> NaiveDate {
    let day = at.date_naive();
    day - Days::new(u64::from(day.weekday().num_days_from_monday()))
}

/// `--since`: a day (`2026-11-01`, from its midnight UTC) or an RFC 3339
/// moment.
pub fn parse_since(text: &str) -> Result<DateTime<Utc>, StatsError> {
    let text = text.trim();
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(day.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| StatsError::BadSince(text.to_owned()))
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.since {
            Some(since) => writeln!(f, "Calls since {}:", since.format("%-d %B %Y %H:%M UTC"))?,
            None => writeln!(f, "All calls in the log:")?,
        }
        writeln!(
            f,
            "  {} {}, {} distinct {}, {} from withheld numbers",
            self.calls,
            plural(self.calls, "call", "calls"),
            self.distinct_callers,
            plural(self.distinct_callers, "caller", "callers"),
            self.withheld
        )?;
        writeln!(
            f,
            "\nListens per service (heard for {LISTEN_MIN_SECONDS:.0} s or to the end):"
        )?;
        if self.listens.is_empty() {
            writeln!(f, "  none")?;
        }
        for (service, listens) in &self.listens {
            writeln!(f, "  {service}: {listens}")?;
        }
        writeln!(f, "\nPer week:")?;
        if self.weeks.is_empty() {
            writeln!(f, "  no calls")?;
        }
        for (monday, week) in &self.weeks {
            let iso = monday.iso_week();
            writeln!(
                f,
                "  {}-W{:02} (from Monday {}): {} {}, {} distinct {}",
                iso.year(),
                iso.week(),
                monday.format("%-d %B %Y"),
                week.calls,
                plural(week.calls, "call", "calls"),
                week.distinct_callers,
                plural(week.distinct_callers, "caller", "callers"),
            )?;
            for (service, listens) in &week.listens {
                writeln!(f, "    {service}: {listens}")?;
            }
        }
        if self.skipped_lines > 0 {
            writeln!(
                f,
                "\n({} {} of the log could not be read and {} skipped.)",
                self.skipped_lines,
                plural(self.skipped_lines as u64, "line", "lines"),
                plural(self.skipped_lines as u64, "was", "were"),
            )?;
        }
        Ok(())
    }
}

fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

#[cfg(test)]
#[path = "stats_tests.rs"]
mod tests;

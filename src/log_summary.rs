//! Quiet logs under a flood: the first event of a kind from a source in a
//! window is logged whole; the rest are counted and summarised once when the
//! window ends ("…and 1,204 more from 203.0.113.9 in the last minute").
//!
//! A scanner sends thousands of requests a minute, possibly from forged
//! addresses; a line that logs each one buries what its volunteer needs to
//! read and fills the disk. So both the sources tracked per kind and the
//! whole-event lines per kind and window are bounded: past them, events are
//! counted per kind only ("…and 40,000 more from 3,000 other sources").
//!
//! Sans-IO: the caller passes `now`, asks [`LogSummary::note`] whether to log
//! an event, and drains [`LogSummary::poll_summaries`] at
//! [`LogSummary::poll_timeout`].

#![cfg_attr(not(test), deny(clippy::disallowed_methods))]

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long one window lasts: summaries come at most this often per kind.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Whole lines per kind and window, from different sources, before every
/// further source is only counted.
const LINES_PER_KIND: usize = 5;
/// Sources remembered per kind and window (bounds memory under a forged-
/// address flood).
const SOURCES_PER_KIND: usize = 256;

/// How much of each kind is logged whole in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Whole lines for one source.
    pub lines_per_source: u32,
    /// Whole lines for the kind, all sources together.
    pub lines_per_kind: usize,
    /// Sources tracked by name; past it, events are only counted.
    pub sources_per_kind: usize,
}

impl Limits {
    /// For what strangers send: one line per source, five per kind.
    pub const FLOOD: Limits = Limits {
        lines_per_source: 1,
        lines_per_kind: LINES_PER_KIND,
        sources_per_kind: SOURCES_PER_KIND,
    };

    /// For what each of many known sources (calls) does: a few lines each,
    /// however many there are (their number is bounded elsewhere).
    pub const fn per_source(lines: u32) -> Limits {
        Limits {
            lines_per_source: lines,
            lines_per_kind: usize::MAX,
            sources_per_kind: usize::MAX,
        }
    }
}

/// What `note` says to do with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log it in full.
    Log,
    /// Counted; it appears in a later summary.
    Counted,
}

/// Who an event came from: an address, or a call.
pub trait Source: Copy + Eq + Hash + Ord + fmt::Display {}
impl<T: Copy + Eq + Hash + Ord + fmt::Display> Source for T {}

/// One summary line: `count` more events of `kind` than were logged, from
/// `source` (or from `sources` others when `source` is `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary<S = IpAddr> {
    pub kind: &'static str,
    pub source: Option<S>,
    pub count: u64,
    /// Distinct sources behind an aggregate line.
    pub sources: usize,
    pub window: Duration,
}

impl<S: Source> fmt::Display for Summary<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let minutes = self.window.as_secs().div_ceil(60).max(1);
        let period = if minutes == 1 {
            "the last minute".to_owned()
        } else {
            format!("the last {minutes} minutes")
        };
        let count = thousands(self.count);
        match self.source {
            Some(source) => write!(
                f,
                "{}: …and {count} more from {source} in {period}",
                self.kind
            ),
            None => write!(
                f,
                "{}: …and {count} more from {} other sources in {period}",
                self.kind,
                thousands(self.sources as u64)
            ),
        }
    }
}

/// `1204` as `1,204`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[derive(Debug, Default)]
struct SourceCount {
    logged: u32,
    suppressed: u64,
}

#[derive(Debug)]
struct KindWindow<S> {
    started: Instant,
    lines: usize,
    per_source: HashMap<S, SourceCount>,
    /// Suppressed events of sources past the tracking bound.
    others: u64,
    other_sources: usize,
}

/// Per kind, the window in progress. See the module docs.
#[derive(Debug)]
pub struct LogSummary<S = IpAddr> {
    limits: Limits,
    kinds: HashMap<&'static str, KindWindow<S>>,
}

impl<S> Default for LogSummary<S> {
    fn default() -> Self {
        LogSummary::new(Limits::FLOOD)
    }
}

impl<S> LogSummary<S> {
    pub fn new(limits: Limits) -> Self {
        LogSummary {
            limits,
            kinds: HashMap::new(),
        }
    }
}

impl<S: Source> LogSummary<S> {
    /// Records one event of `kind` from `source` at `now`.
    pub fn note(&mut self, kind: &'static str, source: S, now: Instant) -> Verdict {
        let window = self.kinds.entry(kind).or_insert_with(|| KindWindow {
            started: now,
            lines: 0,
            per_source: HashMap::new(),
            others: 0,
            other_sources: 0,
        });
        let limits = self.limits;
        let room = window.lines < limits.lines_per_kind;
        if let Some(count) = window.per_source.get_mut(&source) {
            if room && count.logged < limits.lines_per_source {
                count.logged += 1;
                window.lines += 1;
                return Verdict::Log;
            }
            count.suppressed += 1;
            return Verdict::Counted;
        }
        let tracked = window.per_source.len() < limits.sources_per_kind;
        if room && tracked {
            window.lines += 1;
            window.per_source.insert(
                source,
                SourceCount {
                    logged: 1,
                    suppressed: 0,
                },
            );
            return Verdict::Log;
        }
        if tracked {
            window.per_source.insert(
                source,
                SourceCount {
                    logged: 0,
                    suppressed: 1,
                },
            );
        } else {
            window.others += 1;
            window.other_sources += 1;
        }
        Verdict::Counted
    }

    /// When the earliest window ends.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.kinds.values().map(|w| w.started + WINDOW).min()
    }

    /// Summaries of every window that ended by `now`; those windows close.
    /// Sources first seen past the tracking bound are summed in one line.
    pub fn poll_summaries(&mut self, now: Instant) -> Vec<Summary<S>> {
        let mut out = Vec::new();
        self.kinds.retain(|kind, window| {
            let elapsed = now.saturating_duration_since(window.started);
            if elapsed < WINDOW {
                return true;
            }
            // The busiest repeat senders by name; everyone else in one line.
            let mut sources: Vec<(S, u64)> = window
                .per_source
                .iter()
                .filter(|(_, count)| count.suppressed > 0)
                .map(|(&source, count)| (source, count.suppressed))
                .collect();
            sources.sort_by_key(|&(ip, count)| (std::cmp::Reverse(count), ip));
            let named = sources
                .iter()
                .take(LINES_PER_KIND)
                .take_while(|&&(_, count)| count > 1)
                .count();
            for &(ip, count) in &sources[..named] {
                out.push(Summary {
                    kind,
                    source: Some(ip),
                    count,
                    sources: 1,
                    window: elapsed,
                });
            }
            let rest = &sources[named..];
            let count = rest.iter().map(|&(_, c)| c).sum::<u64>() + window.others;
            if let ([(ip, count)], 0) = (rest, window.others) {
                out.push(Summary {
                    kind,
                    source: Some(*ip),
                    count: *count,
                    sources: 1,
                    window: elapsed,
                });
            } else if count > 0 {
                out.push(Summary {
                    kind,
                    source: None,
                    count,
                    sources: rest.len() + window.other_sources,
                    window: elapsed,
                });
            }
            false
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, last))
    }

    #[test]
    fn a_flood_from_one_source_is_one_line_then_one_summary() {
        let t0 = Instant::now();
        let mut log = LogSummary::<IpAddr>::default();
        assert_eq!(log.note("call refused", ip(9), t0), Verdict::Log);
        for i in 0..1204u64 {
            let at = t0 + Duration::from_millis(i * 40);
            assert_eq!(log.note("call refused", ip(9), at), Verdict::Counted);
        }
        assert_eq!(log.poll_timeout(), Some(t0 + WINDOW));
        assert!(log.poll_summaries(t0 + WINDOW / 2).is_empty());
        let summaries = log.poll_summaries(t0 + WINDOW);
        assert_eq!(summaries.len(), 1);
        assert_eq!(
            summaries[0].to_string(),
            "call refused: …and 1,204 more from 203.0.113.9 in the last minute"
        );
        assert_eq!(log.poll_timeout(), None, "the window closed");
        // A new window logs the next one whole again.
        assert_eq!(
            log.note("call refused", ip(9), t0 + WINDOW * 2),
            Verdict::Log
        );
    }

    #[test]
    fn kinds_are_summarised_apart_and_a_quiet_window_says_nothing() {
        let t0 = Instant::now();
        let mut log = LogSummary::<IpAddr>::default();
        assert_eq!(log.note("a", ip(1), t0), Verdict::Log);
        assert_eq!(log.note("b", ip(1), t0), Verdict::Log);
        assert_eq!(log.note("b", ip(1), t0), Verdict::Counted);
        let summaries = log.poll_summaries(t0 + WINDOW);
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[0].kind, "b");
        assert_eq!(summaries[0].count, 1);
    }

    #[test]
    fn forged_sources_are_bounded_in_lines_and_memory() {
        let t0 = Instant::now();
        let mut log = LogSummary::<IpAddr>::default();
        let mut logged = 0;
        for i in 0..10_000u32 {
            let source = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            if log.note("junk", source, t0) == Verdict::Log {
                logged += 1;
            }
        }
        assert_eq!(logged, LINES_PER_KIND);
        assert!(log.kinds["junk"].per_source.len() <= SOURCES_PER_KIND);
        let summaries = log.poll_summaries(t0 + WINDOW);
        assert_eq!(summaries.len(), 1, "{summaries:?}");
        assert_eq!(summaries[0].count, 10_000 - LINES_PER_KIND as u64);
        assert_eq!(summaries[0].sources, 10_000 - LINES_PER_KIND);
        assert!(
            summaries[0]
                .to_string()
                .contains("…and 9,995 more from 9,995 other sources")
        );
    }

    #[test]
    fn known_sources_each_get_their_own_lines() {
        let t0 = Instant::now();
        let mut log = LogSummary::<u64>::new(Limits::per_source(3));
        for call in 0..1000u64 {
            for press in 0..5 {
                let verdict = log.note("key", call, t0);
                assert_eq!(verdict == Verdict::Log, press < 3, "call {call}");
            }
        }
        let summaries = log.poll_summaries(t0 + WINDOW);
        let total: u64 = summaries.iter().map(|s| s.count).sum();
        assert_eq!(total, 2000);
        assert!(summaries.len() <= LINES_PER_KIND + 1, "{summaries:?}");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}

//! Carry on where you stopped: for each caller who presents a number, the
//! service they were listening to and how far they got, so their next call
//! can offer to go on from there. Sans-IO: the book is kept in memory and
//! written to disk by the driver (`resume.json` in the cache folder).
//!
//! Numbers are never kept: a caller is known by HMAC-SHA256 of the number
//! under the install's random key (`resume.key` beside the book), so the
//! file cannot be searched for a number without the key. Withheld callers
//! are never offered anything.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::call_log::caller::Presented;

/// Less than this heard is a caller still choosing, not one to bring back.
pub const MIN_HEARD: Duration = Duration::from_secs(60);
/// Within this of the end, a caller has as good as finished.
pub const NEAR_THE_END: Duration = Duration::from_secs(120);
/// Going on starts this far before the point reached, to pick up the thread.
pub const REWIND: Duration = Duration::from_secs(10);
/// Callers remembered at most: a bound on the file, whatever calls.
const MAX_CALLERS: usize = 10_000;

/// Where one caller stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stopped {
    /// The service's file, as the schedule names it.
    pub file: String,
    /// The service's date-time, so a schedule reusing the file name for
    /// another service is not confused with it.
    pub date: DateTime<Utc>,
    /// How far into the service, in seconds.
    pub position_s: f64,
    /// When the caller hung up.
    pub at: DateTime<Utc>,
}

impl Stopped {
    pub fn position(&self) -> Duration {
        Duration::try_from_secs_f64(self.position_s).unwrap_or_default()
    }
}

/// How far one call got into its last service.
#[derive(Debug, Clone, PartialEq)]
pub struct Listened {
    pub file: String,
    pub date: DateTime<Utc>,
    pub heard: Duration,
    pub position: Duration,
    pub completed: bool,
}

/// Every remembered caller, by keyed hash.
pub struct ResumeBook {
    key: hmac::Key,
    keep: Duration,
    callers: HashMap<String, Stopped>,
    /// Changed since the driver last took a copy to write.
    dirty: bool,
}

impl ResumeBook {
    /// `key`: the install's secret; `keep`: `[line] resume_days`.
    pub fn new(key: &[u8], keep: Duration) -> ResumeBook {
        ResumeBook {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
            keep,
            callers: HashMap::new(),
            dirty: false,
        }
    }

    /// The book as read from disk (entries too old are dropped).
    pub fn with_entries(mut self, callers: HashMap<String, Stopped>, now: DateTime<Utc>) -> Self {
        self.callers = callers;
        self.forget_old(now);
        self
    }

    /// Where the caller stopped, if they present a number and stopped
    /// within the time kept.
    pub fn lookup(&self, caller: &Presented, now: DateTime<Utc>) -> Option<&Stopped> {
        let stopped = self.callers.get(&self.hash(caller)?)?;
        let age = now
            .signed_duration_since(stopped.at)
            .to_std()
            .unwrap_or_default();
        (age <= self.keep).then_some(stopped)
    }

    /// A call ended: remember where a caller stopped if they had heard
    /// more than a minute and were not near the end (`length`, when known);
    /// forget them once they have heard a service to its end.
    pub fn handle_call_end(
        &mut self,
        caller: &Presented,
        listened: Option<Listened>,
        length: Option<Duration>,
        now: DateTime<Utc>,
    ) {
        let (Some(hash), Some(listened)) = (self.hash(caller), listened) else {
            return;
        };
        let near_the_end = length.is_some_and(|length| listened.position + NEAR_THE_END >= length);
        if listened.completed || near_the_end {
            self.dirty |= self.callers.remove(&hash).is_some();
        } else if listened.heard > MIN_HEARD {
            if self.callers.len() >= MAX_CALLERS && !self.callers.contains_key(&hash) {
                self.forget_oldest();
            }
            self.callers.insert(
                hash,
                Stopped {
                    file: listened.file,
                    date: listened.date,
                    position_s: (listened.position.as_secs_f64() * 10.0).round() / 10.0,
                    at: now,
                },
            );
            self.dirty = true;
        }
        self.forget_old(now);
    }

    /// A copy to write, when something changed since the last one.
    pub fn take_changes(&mut self) -> Option<HashMap<String, Stopped>> {
        std::mem::take(&mut self.dirty).then(|| self.callers.clone())
    }

    fn forget_old(&mut self, now: DateTime<Utc>) {
        let keep = self.keep;
        let before = self.callers.len();
        self.callers.retain(|_, stopped| {
            now.signed_duration_since(stopped.at)
                .to_std()
                .map_or(true, |age| age <= keep)
        });
        self.dirty |= self.callers.len() != before;
    }

    fn forget_oldest(&mut self) {
        if let Some(oldest) = self
            .callers
            .iter()
            .min_by_key(|(_, stopped)| stopped.at)
            .map(|(hash, _)| hash.clone())
        {
            self.callers.remove(&oldest);
        }
    }

    /// 128 bits as hex; `None` for a withheld number.
    fn hash(&self, caller: &Presented) -> Option<String> {
        let Presented::Number(number) = caller else {
            return None;
        };
        let tag = hmac::sign(&self.key, number.as_bytes());
        Some(
            tag.as_ref()[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn number(n: &str) -> Presented {
        Presented::Number(n.to_owned())
    }

    fn listened(heard_s: u64, position_s: u64, completed: bool) -> Listened {
        Listened {
            file: "evensong.mp3".to_owned(),
            date: "2026-11-29T18:00:00Z".parse().unwrap(),
            heard: Duration::from_secs(heard_s),
            position: Duration::from_secs(position_s),
            completed,
        }
    }

    #[test]
    fn a_caller_past_a_minute_and_short_of_the_end_is_remembered_by_hash_only() {
        let now: DateTime<Utc> = "2026-12-06T10:00:00Z".parse().unwrap();
        let mut book = ResumeBook::new(b"key", 14 * DAY);
        let length = Some(Duration::from_secs(3600));
        book.handle_call_end(
            &number("+441134960000"),
            Some(listened(1400, 1400, false)),
            length,
            now,
        );
        let stopped = book
            .lookup(&number("+441134960000"), now)
            .expect("remembered");
        assert_eq!(stopped.position(), Duration::from_secs(1400));
        let written = book.take_changes().expect("to write");
        assert!(book.take_changes().is_none(), "written once");
        let text = serde_json::to_string(&written).unwrap();
        assert!(!text.contains("4960000"), "no number on disk: {text}");
        // Another key cannot find the caller.
        let other = ResumeBook::new(b"other", 14 * DAY).with_entries(written, now);
        assert!(other.lookup(&number("+441134960000"), now).is_none());
        assert!(book.lookup(&Presented::Withheld, now).is_none());
    }

    #[test]
    fn too_little_heard_near_the_end_or_withheld_is_not_remembered() {
        let now: DateTime<Utc> = "2026-12-06T10:00:00Z".parse().unwrap();
        let mut book = ResumeBook::new(b"key", 14 * DAY);
        let length = Some(Duration::from_secs(3600));
        let caller = number("07700900123");
        book.handle_call_end(&caller, Some(listened(50, 50, false)), length, now);
        assert!(book.lookup(&caller, now).is_none(), "a minute or less");
        book.handle_call_end(&caller, Some(listened(3500, 3500, false)), length, now);
        assert!(
            book.lookup(&caller, now).is_none(),
            "in the last two minutes"
        );
        book.handle_call_end(
            &Presented::Withheld,
            Some(listened(900, 900, false)),
            length,
            now,
        );
        assert!(book.take_changes().is_none());
        // Remembered, then heard to the end: forgotten.
        book.handle_call_end(&caller, Some(listened(900, 900, false)), length, now);
        assert!(book.lookup(&caller, now).is_some());
        book.handle_call_end(&caller, Some(listened(2700, 3600, true)), length, now);
        assert!(book.lookup(&caller, now).is_none());
    }

    #[test]
    fn callers_are_forgotten_after_the_days_kept() {
        let then: DateTime<Utc> = "2026-11-01T10:00:00Z".parse().unwrap();
        let mut book = ResumeBook::new(b"key", 14 * DAY);
        let caller = number("07700900123");
        book.handle_call_end(&caller, Some(listened(900, 900, false)), None, then);
        let in_a_week = then + chrono::Duration::days(7);
        assert!(book.lookup(&caller, in_a_week).is_some());
        let in_a_month = then + chrono::Duration::days(30);
        assert!(book.lookup(&caller, in_a_month).is_none());
        // Read back a month later: dropped, and the file is rewritten.
        let entries = book.take_changes().unwrap();
        let mut later = ResumeBook::new(b"key", 14 * DAY).with_entries(entries, in_a_month);
        assert!(later.take_changes().is_some_and(|e| e.is_empty()));
    }
}

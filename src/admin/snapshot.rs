//! The line at one moment, as plain data: what health, metrics and the
//! status page are rendered from. Gathering it (`admin::gather`) reads the
//! clocks and shared state; everything rendered from it is a pure function,
//! tested without a line.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::media::pacer::EngineStats;
use crate::observe::{CallOutcome, ListenHistory};
use crate::self_test::Verdict;

#[derive(Debug, Clone)]
pub struct LineSnapshot {
    pub now: DateTime<Utc>,
    /// Times on the page are shown here (`[line] timezone`).
    pub timezone: Tz,
    /// What a caller hears before choosing, or why they hear the apology.
    pub offer: Result<Offer, String>,
    /// `None`: no trunk is configured (calls come directly).
    pub trunk: Option<TrunkView>,
    pub source: SourceView,
    pub calls_active: usize,
    pub calls_ended: Vec<(CallOutcome, u64)>,
    /// Plays per service since the line started.
    pub plays: Vec<(String, u64)>,
    pub engine: EngineStats,
    pub history: ListenHistory,
    /// `None`: the self-test is off (`[self_test] interval = 0`).
    pub self_test: Option<SelfTestView>,
}

/// The line's calls to itself.
#[derive(Debug, Clone, PartialEq)]
pub struct SelfTestView {
    pub interval: std::time::Duration,
    /// `None` until the first has run.
    pub last: Option<Verdict>,
    /// When the self-test last woke, to test or (the line full) not.
    pub woke: Option<DateTime<Utc>>,
}

impl SelfTestView {
    /// The self-test has not woken for two intervals and a minute since its
    /// last verdict: it has stopped running, and what it last said is no
    /// news.
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        let allowed = self.interval * 2 + std::time::Duration::from_secs(60);
        let Some(verdict) = &self.last else {
            return false;
        };
        let seen = self.woke.map_or(verdict.at, |woke| woke.max(verdict.at));
        (now - seen).to_std().is_ok_and(|since| since > allowed)
    }
}

/// The menu as callers hear it now.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    /// `Menu::heard_text()`: the words, sentence by sentence.
    pub menu_text: String,
    pub services: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrunkView {
    /// The registrar as configured, e.g. `sip:sip.example.net`.
    pub registrar: String,
    pub state: TrunkState,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TrunkState {
    /// The registrar's name is being resolved (retried every 30 s).
    Resolving,
    Registering {
        since: DateTime<Utc>,
    },
    Registered {
        /// When the registration last changed: the last refresh.
        refreshed: DateTime<Utc>,
        until: DateTime<Utc>,
    },
    Failing {
        since: DateTime<Utc>,
        reason: String,
        code: &'static str,
        retry_at: DateTime<Utc>,
    },
    Unregistering,
    Unregistered,
}

impl TrunkState {
    pub fn is_up(&self) -> bool {
        matches!(self, TrunkState::Registered { .. })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SourceView {
    /// A `data.json` on this machine, read for every call.
    LocalFile { schedule: String },
    /// Fetched by the background refresher into the disk cache.
    Fetched {
        /// Redacted: no credentials, query or fragment.
        origin: String,
        last_success: Option<DateTime<Utc>>,
        /// Services published at the last good refresh.
        services: usize,
        /// Current problems, oldest first.
        problems: Vec<SourceProblem>,
        /// Failures counted by stable code since start.
        failures: Vec<(String, u64)>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourceProblem {
    /// What failed: `schedule <url>`, `audio <url>`, `disk cache`.
    pub subject: String,
    pub code: String,
    pub reason: String,
    pub since: DateTime<Utc>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::NaiveDate;

    /// A line with a hostile title, a trunk, a failing website and plays.
    pub(crate) fn sample() -> LineSnapshot {
        let now = DateTime::parse_from_rfc3339("2025-12-05T18:00:00Z")
            .unwrap()
            .to_utc();
        let minutes = |m: i64| now - chrono::Duration::minutes(m);
        LineSnapshot {
            now,
            timezone: chrono_tz::Europe::London,
            offer: Ok(Offer {
                menu_text: "Thanks for calling St Mary's.\nPress 1 for the service from Evensong <b>\"live\"</b>, Sunday the 30th of November."
                    .to_owned(),
                services: 1,
            }),
            trunk: Some(TrunkView {
                registrar: "sip:sip.example.net".to_owned(),
                state: TrunkState::Registered {
                    refreshed: minutes(3),
                    until: now + chrono::Duration::minutes(50),
                },
            }),
            source: SourceView::Fetched {
                origin: "https://stmarys.example/dial/data.json".to_owned(),
                last_success: Some(minutes(60 * 24 * 5)),
                services: 1,
                problems: vec![SourceProblem {
                    subject: "schedule https://stmarys.example/dial/data.json".to_owned(),
                    code: "source.certificate".to_owned(),
                    reason: "the certificate of stmarys.example has expired".to_owned(),
                    since: minutes(30),
                }],
                failures: vec![("source.certificate".to_owned(), 4)],
            },
            calls_active: 2,
            calls_ended: vec![
                (CallOutcome::Completed, 3),
                (CallOutcome::CallerHungUp, 1),
            ],
            plays: vec![("Evensong <b>\"live\"</b>".to_owned(), 5)],
            engine: EngineStats::default(),
            history: ListenHistory {
                weeks: vec![
                    (NaiveDate::from_ymd_opt(2025, 11, 24).unwrap(), vec![]),
                    (
                        NaiveDate::from_ymd_opt(2025, 12, 1).unwrap(),
                        vec![("Evensong <b>\"live\"</b>".to_owned(), 5)],
                    ),
                ],
            },
            self_test: Some(SelfTestView {
                woke: Some(minutes(4) - chrono::Duration::seconds(10)),
                interval: std::time::Duration::from_secs(15 * 60),
                last: Some(Verdict {
                    at: minutes(4),
                    outcome: Ok(crate::self_test::Passed {
                        service: "Evensong <b>\"live\"</b>".to_owned(),
                        greeting: 0.99,
                        service_match: 0.97,
                    }),
                }),
            }),
        }
    }

    /// [`sample`] whose last self-test heard the apology.
    pub(crate) fn self_test_failed() -> LineSnapshot {
        let mut line = sample();
        let test = line.self_test.as_mut().unwrap();
        test.last.as_mut().unwrap().outcome = Err(crate::self_test::Failure::ServiceNotHeard {
            service: "Evensong <b>\"live\"</b>".to_owned(),
            score: 0.08,
            heard: 7.5,
        });
        line
    }
}

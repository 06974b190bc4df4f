//! What the line has done, for the admin listener: calls by outcome, plays
//! per service (in all, and per week for the status page's chart), and the
//! registration as last seen. The driver writes it from events it already
//! handles; the admin task only reads, so a slow scrape never holds the SIP
//! loop for more than a copy of a small map.
//!
//! Label values are bounded here, not at exposition: outcomes are a fixed
//! enum, and service titles (chosen by whoever edits the website) are capped
//! at [`MAX_SERVICES`], the rest counted under [`OTHER_SERVICES`].

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::endpoint::EndReason;
use crate::registration::RegistrationStatus;
use crate::source::schedule::Service;

/// Distinct service labels kept; enough for months of weekly services.
pub const MAX_SERVICES: usize = 64;
/// Where plays of services past [`MAX_SERVICES`] are counted.
pub const OTHER_SERVICES: &str = "other services";
/// Weeks of plays kept for the chart.
pub const WEEKS_KEPT: usize = 8;

/// How a call ended, in few enough values to be a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CallOutcome {
    /// The service ended and the line said goodbye.
    Completed,
    CallerHungUp,
    /// The caller gave up before the answer.
    Cancelled,
    /// A limit ended it: max duration, session timer, hold.
    TimedOut,
    /// SIP or media trouble: no ACK, no usable answer, no audio path.
    Failed,
    Shutdown,
}

impl CallOutcome {
    pub const ALL: [CallOutcome; 6] = [
        CallOutcome::Completed,
        CallOutcome::CallerHungUp,
        CallOutcome::Cancelled,
        CallOutcome::TimedOut,
        CallOutcome::Failed,
        CallOutcome::Shutdown,
    ];

    pub fn of(reason: EndReason) -> CallOutcome {
        match reason {
            EndReason::ContentFinished => CallOutcome::Completed,
            EndReason::CallerHungUp => CallOutcome::CallerHungUp,
            EndReason::Cancelled => CallOutcome::Cancelled,
            EndReason::MaxDuration | EndReason::SessionExpired | EndReason::HoldTimeout => {
                CallOutcome::TimedOut
            }
            EndReason::MediaFailed
            | EndReason::AckTimedOut
            | EndReason::BadAckAnswer
            | EndReason::MediaUnreachable => CallOutcome::Failed,
            EndReason::Shutdown => CallOutcome::Shutdown,
        }
    }

    /// The `outcome` label value.
    pub fn label(self) -> &'static str {
        match self {
            CallOutcome::Completed => "completed",
            CallOutcome::CallerHungUp => "caller_hung_up",
            CallOutcome::Cancelled => "cancelled",
            CallOutcome::TimedOut => "timed_out",
            CallOutcome::Failed => "failed",
            CallOutcome::Shutdown => "shutdown",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Listens per service, week by week (weeks start on Monday, local time),
/// oldest first: the status page's chart. The call log will be its source
/// once it lands; until then [`LineState`] keeps it from this run's plays.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListenHistory {
    pub weeks: Vec<(NaiveDate, Vec<(String, u32)>)>,
}

/// The registration as the driver last saw it, with the moment it last
/// changed (a refresh moves `until`, so this is also "refreshed at").
#[derive(Debug, Clone)]
pub struct SeenRegistration {
    pub status: RegistrationStatus,
    pub changed_at: Instant,
}

#[derive(Default)]
struct Plays {
    total: BTreeMap<String, u64>,
    weekly: BTreeMap<NaiveDate, BTreeMap<String, u32>>,
}

/// Shared between the driver (writes) and the admin listener (reads).
pub struct LineState {
    timezone: Tz,
    calls_active: AtomicUsize,
    calls_ended: [AtomicU64; CallOutcome::ALL.len()],
    plays: Mutex<Plays>,
    registration: Mutex<Option<SeenRegistration>>,
}

impl LineState {
    /// `timezone` decides where a week starts.
    pub fn new(timezone: Tz) -> LineState {
        LineState {
            timezone,
            calls_active: AtomicUsize::new(0),
            calls_ended: std::array::from_fn(|_| AtomicU64::new(0)),
            plays: Mutex::default(),
            registration: Mutex::new(None),
        }
    }

    pub fn set_calls_active(&self, calls: usize) {
        self.calls_active.store(calls, Relaxed);
    }

    pub fn calls_active(&self) -> usize {
        self.calls_active.load(Relaxed)
    }

    pub fn call_ended(&self, reason: EndReason) {
        self.calls_ended[CallOutcome::of(reason).index()].fetch_add(1, Relaxed);
    }

    pub fn calls_ended(&self) -> Vec<(CallOutcome, u64)> {
        CallOutcome::ALL
            .iter()
            .map(|o| (*o, self.calls_ended[o.index()].load(Relaxed)))
            .collect()
    }

    /// A service started playing to a caller.
    pub fn service_played(&self, service: &Service, now: DateTime<Utc>) {
        let label = service_label(service, self.timezone);
        let week = week_start(now, self.timezone);
        let mut plays = self.locked_plays();
        let total_label = bounded(&plays.total, label.clone());
        *plays.total.entry(total_label).or_default() += 1;
        let week_plays = plays.weekly.entry(week).or_default();
        let week_label = bounded(week_plays, label);
        *week_plays.entry(week_label).or_default() += 1;
        while plays.weekly.len() > WEEKS_KEPT {
            plays.weekly.pop_first();
        }
    }

    /// Plays per service since the line started, by label.
    pub fn plays(&self) -> Vec<(String, u64)> {
        let plays = self.locked_plays();
        plays.total.iter().map(|(s, n)| (s.clone(), *n)).collect()
    }

    /// Plays per service for each of the last `WEEKS_KEPT` weeks up to
    /// `now`'s, empty weeks included so the chart's gaps show.
    pub fn listen_history(&self, now: DateTime<Utc>) -> ListenHistory {
        let plays = self.locked_plays();
        let this_week = week_start(now, self.timezone);
        let first = plays
            .weekly
            .keys()
            .next()
            .copied()
            .unwrap_or(this_week)
            .min(this_week);
        let mut weeks = Vec::new();
        let mut week = first;
        while week <= this_week {
            let services = plays
                .weekly
                .get(&week)
                .map(|s| s.iter().map(|(t, n)| (t.clone(), *n)).collect())
                .unwrap_or_default();
            weeks.push((week, services));
            week = week + Days::new(7);
        }
        let skip = weeks.len().saturating_sub(WEEKS_KEPT);
        ListenHistory {
            weeks: weeks.split_off(skip),
        }
    }

    /// Records the registration if it changed since last time.
    pub fn observe_registration(&self, status: Option<&RegistrationStatus>, now: Instant) {
        let mut seen = self.registration.lock().unwrap_or_else(|p| p.into_inner());
        if seen.as_ref().map(|s| &s.status) == status {
            return;
        }
        *seen = status.map(|status| SeenRegistration {
            status: status.clone(),
            changed_at: now,
        });
    }

    pub fn registration(&self) -> Option<SeenRegistration> {
        self.registration
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn locked_plays(&self) -> std::sync::MutexGuard<'_, Plays> {
        // Counters stay consistent whatever panicked while holding them.
        self.plays.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The label a service's plays are counted under: its title, or its date.
pub fn service_label(service: &Service, timezone: Tz) -> String {
    match service.title.as_deref().map(str::trim) {
        Some(title) if !title.is_empty() => title.chars().take(120).collect(),
        _ => format!(
            "the service of {}",
            service
                .datetime
                .with_timezone(&timezone)
                .format("%-d %B %Y")
        ),
    }
}

/// `label`, or [`OTHER_SERVICES`] once `map` holds [`MAX_SERVICES`] others.
fn bounded<V>(map: &BTreeMap<String, V>, label: String) -> String {
    if map.contains_key(&label) || map.len() < MAX_SERVICES {
        label
    } else {
        OTHER_SERVICES.to_owned()
    }
}

/// The Monday (local time) of `now`'s week.
pub fn week_start(now: DateTime<Utc>, timezone: Tz) -> NaiveDate {
    let local = now.with_timezone(&timezone).date_naive();
    local - Days::new(u64::from(local.weekday().num_days_from_monday()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(title: Option<&str>, at: &str) -> Service {
        Service {
            title: title.map(str::to_owned),
            datetime: DateTime::parse_from_rfc3339(at).unwrap(),
            file: "x.mp3".to_owned(),
            title_audio: None,
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn outcomes_are_counted_by_their_small_label_set() {
        let state = LineState::new(chrono_tz::Europe::London);
        state.call_ended(EndReason::ContentFinished);
        state.call_ended(EndReason::HoldTimeout);
        state.call_ended(EndReason::MaxDuration);
        let ended = state.calls_ended();
        assert_eq!(ended.len(), 6);
        assert!(ended.contains(&(CallOutcome::Completed, 1)));
        assert!(ended.contains(&(CallOutcome::TimedOut, 2)));
        assert!(ended.contains(&(CallOutcome::Failed, 0)));
    }

    #[test]
    fn plays_are_kept_per_week_and_bounded_per_service() {
        let state = LineState::new(chrono_tz::Europe::London);
        let evensong = service(Some("Evensong"), "2026-11-29T18:00:00+00:00");
        // Sunday 29 November and Monday 30 November are different weeks.
        state.service_played(&evensong, at("2026-11-29T19:00:00Z"));
        state.service_played(&evensong, at("2026-11-30T09:00:00Z"));
        state.service_played(
            &service(None, "2026-11-29T10:00:00+00:00"),
            at("2026-12-02T09:00:00Z"),
        );
        for i in 0..MAX_SERVICES + 5 {
            let s = service(Some(&format!("s{i}")), "2026-11-01T10:00:00+00:00");
            state.service_played(&s, at("2026-12-02T10:00:00Z"));
        }
        let plays = state.plays();
        assert_eq!(plays.len(), MAX_SERVICES + 1, "capped, plus the overflow");
        assert!(plays.contains(&("Evensong".to_owned(), 2)));
        assert!(plays.contains(&("the service of 29 November 2026".to_owned(), 1)));
        assert!(plays.iter().any(|(s, n)| s == OTHER_SERVICES && *n > 0));

        let history = state.listen_history(at("2026-12-03T12:00:00Z"));
        let weeks: Vec<NaiveDate> = history.weeks.iter().map(|(w, _)| *w).collect();
        assert_eq!(
            weeks,
            [
                NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
                NaiveDate::from_ymd_opt(2026, 11, 30).unwrap()
            ]
        );
        assert_eq!(history.weeks[0].1, [("Evensong".to_owned(), 1)]);
    }

    #[test]
    fn history_shows_empty_recent_weeks_and_at_most_eight() {
        let state = LineState::new(chrono_tz::Europe::London);
        let s = service(Some("Matins"), "2026-01-04T10:00:00+00:00");
        state.service_played(&s, at("2026-01-05T10:00:00Z"));
        let history = state.listen_history(at("2026-06-01T10:00:00Z"));
        assert_eq!(history.weeks.len(), WEEKS_KEPT);
        assert!(history.weeks.iter().all(|(_, s)| s.is_empty()));
        assert_eq!(
            history.weeks.last().unwrap().0,
            NaiveDate::from_ymd_opt(2026, 6, 1).unwrap()
        );
    }
}

//! One call's line in the call log, built as the call happens (sans-IO).
//!
//! Call order: [`RecordBuilder::new`] when the call is answered; then, in
//! any order, `handle_caller`, `handle_key`, `handle_play` (every programme
//! the flow starts, with its tag), `handle_pause`/`handle_resume` and
//! `handle_played` (a programme's end, with its tag); last
//! [`RecordBuilder::finish`] with why the call ended. Every input takes
//! `now`, so how long a service was heard is measured on the call's own
//! clock (media events and key presses), never guessed from wall time.
//!
//! ```text
//!            play(service)               played(tag) / play(other) / finish
//!  idle ─────────────────────► playing ────────────────────────────────────► idle
//!                              │    ▲
//!                        pause │    │ resume
//!                              ▼    │
//!                              paused   (not counted as heard)
//! ```

use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::call::flow::{Outcome, Programme, Seek};
use crate::call::resume::Listened;
use crate::endpoint::EndReason;
use crate::media::Codec;
use crate::media::dtmf::Key;

use super::caller::Presented;

/// Keys kept per call: a caller who leans on the keypad must not make a
/// line without bound.
const MAX_KEYS: usize = 64;
/// Services kept per call, for the same reason (a caller flicking through
/// the menu for hours).
const MAX_SERVICES: usize = 64;

/// One call, as written to the call log: one JSON object per line. The
/// field names are stable (README, "The call log").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// When the call was answered, RFC 3339 UTC to the second.
    #[serde(with = "rfc3339_seconds")]
    pub start: DateTime<Utc>,
    /// The caller's number as presented (From user part), or `anonymous`;
    /// only with `[log] caller_numbers = true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// A keyed hash of the number (HMAC-SHA256, the install's key), or
    /// `anonymous`: counts distinct callers without keeping numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_hash: Option<String>,
    /// From the answer to the end, in seconds (to a tenth).
    #[serde(default)]
    pub duration_s: f64,
    /// The keys pressed, in order (`"2*1"`); each press once however it came.
    #[serde(default)]
    pub keys: String,
    /// The services played, in order, with how long each was heard.
    #[serde(default)]
    pub services: Vec<ServiceHeard>,
    /// How the call ended: an [`EndReason::code`] such as `call.finished`.
    #[serde(default)]
    pub ended: String,
    /// The codec answered with: `pcmu`, `pcma` or `opus`.
    #[serde(default)]
    pub codec: String,
    /// A call the line placed to test itself: left out of `stats`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub self_test: bool,
}

/// A service as one call heard it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceHeard {
    /// The schedule's title, or its file name (a URL without its secrets).
    #[serde(default)]
    pub title: String,
    /// The service's date-time as the schedule gives it (RFC 3339).
    #[serde(default)]
    pub date: String,
    /// Seconds it played to the caller, pauses left out (to a tenth).
    #[serde(default)]
    pub heard_s: f64,
    /// It played to its end.
    #[serde(default)]
    pub completed: bool,
    /// Its audio failed and the caller heard the apology instead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
}

/// The service playing now.
#[derive(Debug)]
struct Playing {
    tag: u32,
    /// Index into `services`.
    index: usize,
    /// When the current stretch of listening began; `None` while paused.
    since: Option<Instant>,
    heard: Duration,
    /// The file and date-time, for where the caller got to.
    file: String,
    date: DateTime<Utc>,
    /// The position in the service when `heard` was `heard_at_mark` (a
    /// seek moves it; listening moves both alike).
    position_at_mark: Duration,
    heard_at_mark: Duration,
}

impl Playing {
    fn heard(&self, now: Instant) -> Duration {
        self.heard
            + self
                .since
                .map_or(Duration::ZERO, |since| now.saturating_duration_since(since))
    }

    fn position(&self, now: Instant) -> Duration {
        self.position_at_mark + self.heard(now).saturating_sub(self.heard_at_mark)
    }
}

/// Builds a [`CallRecord`] from the call's events. See the module docs.
#[derive(Debug)]
pub struct RecordBuilder {
    start: DateTime<Utc>,
    answered: Instant,
    codec: Codec,
    caller: Presented,
    keys: String,
    services: Vec<ServiceHeard>,
    playing: Option<Playing>,
    /// The last service that stopped playing, and how far it got.
    last: Option<Listened>,
    self_test: bool,
}

impl RecordBuilder {
    /// The call was answered at `start` (wall clock, for the record) and
    /// `now` (the call's clock, for durations), with `codec`.
    pub fn new(start: DateTime<Utc>, now: Instant, codec: Codec) -> RecordBuilder {
        RecordBuilder {
            start,
            answered: now,
            codec,
            caller: Presented::Withheld,
            keys: String::new(),
            services: Vec::new(),
            playing: None,
            last: None,
            self_test: false,
        }
    }

    /// The call is the line's own self-test (left out of listens).
    pub fn mark_self_test(&mut self) {
        self.self_test = true;
    }

    pub fn is_self_test(&self) -> bool {
        self.self_test
    }

    /// The caller's From header, as the INVITE presented it.
    pub fn handle_caller(&mut self, from: &str) {
        self.caller = Presented::from_header(from);
    }

    /// A key press, already counted once across the ways it can arrive.
    pub fn handle_key(&mut self, key: Key) {
        if self.keys.len() < MAX_KEYS {
            self.keys.push(key.as_char());
        }
    }

    /// The flow started `programme` (tagged `tag`), cutting off whatever
    /// played before.
    pub fn handle_play(&mut self, tag: u32, programme: &Programme, now: Instant) {
        self.stop_playing(now, false, false);
        let Some(service) = programme.service() else {
            return;
        };
        if self.services.len() >= MAX_SERVICES {
            return;
        }
        let title = service
            .title
            .clone()
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| crate::source::redact_if_url(&service.file).into_owned());
        self.services.push(ServiceHeard {
            title,
            date: service.datetime.to_rfc3339(),
            heard_s: 0.0,
            completed: false,
            failed: false,
        });
        self.playing = Some(Playing {
            tag,
            index: self.services.len() - 1,
            since: Some(now),
            heard: Duration::ZERO,
            file: service.file.clone(),
            date: service.datetime.with_timezone(&Utc),
            position_at_mark: Duration::ZERO,
            heard_at_mark: Duration::ZERO,
        });
    }

    /// The caller moved within the service playing (`4`, `6`, `0`, or the
    /// line going on from where they stopped last time).
    pub fn handle_seek(&mut self, seek: Seek, now: Instant) {
        let Some(playing) = &mut self.playing else {
            return;
        };
        let position = playing.position(now);
        playing.position_at_mark = match seek {
            Seek::Forward(by) => position + by,
            Seek::Back(by) => position.saturating_sub(by),
            Seek::Start => Duration::ZERO,
        };
        playing.heard_at_mark = playing.heard(now);
    }

    /// How far the caller got into the last service they heard, as of
    /// `now` (for carrying on next time).
    pub fn listened(&self, now: Instant) -> Option<Listened> {
        match &self.playing {
            Some(playing) => Some(Listened {
                file: playing.file.clone(),
                date: playing.date,
                heard: playing.heard(now),
                position: playing.position(now),
                completed: false,
            }),
            None => self.last.clone(),
        }
    }

    /// The caller as the INVITE presented them.
    pub fn caller(&self) -> &Presented {
        &self.caller
    }

    /// The caller paused the service (`5`).
    pub fn handle_pause(&mut self, now: Instant) {
        if let Some(playing) = &mut self.playing
            && let Some(since) = playing.since.take()
        {
            playing.heard += now.saturating_duration_since(since);
        }
    }

    /// The service goes on after a pause.
    pub fn handle_resume(&mut self, now: Instant) {
        if let Some(playing) = &mut self.playing {
            playing.since.get_or_insert(now);
        }
    }

    /// The programme tagged `tag` ended by itself; an end that crossed a
    /// key press (an older tag) is ignored, as the flow ignores it.
    pub fn handle_played(&mut self, tag: u32, outcome: Outcome, now: Instant) {
        if self.playing.as_ref().is_some_and(|p| p.tag == tag) {
            self.stop_playing(
                now,
                outcome == Outcome::Completed,
                outcome == Outcome::Failed,
            );
        }
    }

    /// The call ended at `now` because of `reason`: the record, and the
    /// caller as presented (for [`super::caller::CallerPrivacy`] to write
    /// or hash).
    pub fn finish(mut self, reason: EndReason, now: Instant) -> (CallRecord, Presented) {
        self.stop_playing(now, false, false);
        let record = CallRecord {
            start: self.start,
            caller: None,
            caller_hash: None,
            duration_s: tenths(now.saturating_duration_since(self.answered)),
            keys: self.keys,
            services: self.services,
            ended: reason.code().to_owned(),
            codec: self.codec.config_name().to_owned(),
            self_test: self.self_test,
        };
        (record, self.caller)
    }

    fn stop_playing(&mut self, now: Instant, completed: bool, failed: bool) {
        let Some(playing) = self.playing.take() else {
            return;
        };
        let heard = playing.heard(now);
        self.last = Some(Listened {
            file: playing.file.clone(),
            date: playing.date,
            heard,
            position: playing.position(now),
            completed,
        });
        if let Some(service) = self.services.get_mut(playing.index) {
            service.heard_s = tenths(heard);
            service.completed = completed;
            service.failed = failed;
        }
    }
}

/// Seconds to a tenth: enough for "how far", and short lines.
fn tenths(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 10.0).round() / 10.0
}

/// `start` as `2026-11-01T10:00:00Z`; any RFC 3339 form is read back.
mod rfc3339_seconds {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Secs, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

impl CallRecord {
    /// The record as one line of JSON, without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self)
            .expect("a CallRecord always serialises (no maps, finite numbers)")
    }

    /// `start` as written in the log.
    pub fn start_text(&self) -> String {
        self.start.to_rfc3339_opts(SecondsFormat::Secs, true)
    }
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;

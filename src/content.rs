//! What a caller hears: the latest service of the schedule, or the apology
//! clip when the schedule or its audio cannot be used, or, when even the
//! clip is unusable, a built-in gentle tone pattern.
//!
//! Content trouble never becomes a SIP error: every call is answered and
//! hears something. Each problem is logged once, when it starts, and its
//! end is logged too, so a broken file does not flood the log with a line
//! per caller.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::call::flow;
use crate::call::menu::{Menu, Phrase, Spoken};
use crate::media::Codec;
use crate::media::pacer::{FrameSource, Preparing, Programme, Staged, Unplayable};
use crate::media::track::{Track, TrackCache};
use crate::prompts::Prompts;
use crate::source::published::Published;
use crate::source::schedule::Schedule;

/// How long the start waits for names and titles to be spoken.
const SPEECH_AT_START: std::time::Duration = std::time::Duration::from_secs(10);

/// Remembers the last problem of one kind so it is logged once per change.
#[derive(Default)]
struct ProblemLog {
    last: Mutex<Option<String>>,
}

impl ProblemLog {
    /// Records the current state: `Some(problem)` or `None` when all is well.
    fn record(&self, what: &str, problem: Option<String>) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if *last == problem {
            return;
        }
        match &problem {
            Some(reason) => tracing::warn!("{what}: {reason}; callers hear the apology clip"),
            None => tracing::info!("{what}: working again"),
        }
        *last = problem;
    }
}

/// Where the schedule a call is offered comes from.
pub enum Catalogue {
    /// A `data.json` on this machine, its audio in a folder beside it. The
    /// parish edits it in place: [`Content::reload_schedule`] reads it again
    /// when it has changed, off the calls' path.
    Local { schedule: PathBuf, audio: PathBuf },
    /// Published by the background refresher from a URL or feed, its
    /// services' files already downloaded and checked.
    Published {
        published: Arc<Published>,
        /// For the log: where the refresher fetches from.
        origin: String,
    },
}

impl Catalogue {
    fn describe(&self) -> String {
        match self {
            Catalogue::Local { schedule, .. } => schedule.display().to_string(),
            Catalogue::Published { origin, .. } => origin.clone(),
        }
    }
}

/// Picks and prepares what each call plays.
pub struct Content {
    catalogue: Catalogue,
    /// Recordings of names and titles (`title_audio`) are read under here.
    audio_dir: PathBuf,
    apology: PathBuf,
    /// Schedule times without an offset are local times here.
    timezone: Tz,
    /// `[line] church_name`: said instead of the schedule's.
    church_name: Option<String>,
    tracks: TrackCache,
    /// The spoken words: prompt library, names and titles.
    prompts: Prompts,
    tones: Mutex<HashMap<Codec, Arc<Track>>>,
    schedule_problem: ProblemLog,
    audio_problem: ProblemLog,
    apology_problem: ProblemLog,
    /// The longest service on offer at the last refresh, when every one's
    /// length is known (for `max_call_duration = "auto"`).
    longest_service: Mutex<Option<std::time::Duration>>,
    /// A local schedule as last read, and the file it was read from.
    local: Mutex<Option<LocalRead>>,
}

/// A local `data.json` as read, with what it looked like on disk then.
struct LocalRead {
    stamp: Option<FileStamp>,
    schedule: Result<Arc<Schedule>, String>,
}

/// What tells an edited file from the one read before: an editor's save
/// changes the length or the modification time, a rename the inode.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode: meta.ino(),
        })
    }
}

impl Content {
    pub fn new(
        catalogue: Catalogue,
        apology: PathBuf,
        max_tracks: usize,
        prompts: Prompts,
    ) -> Self {
        let audio_dir = match &catalogue {
            Catalogue::Local { audio, .. } => audio.clone(),
            // Downloaded recordings are named by absolute paths.
            Catalogue::Published { .. } => PathBuf::new(),
        };
        Content {
            catalogue,
            audio_dir,
            apology,
            timezone: crate::source::schedule::DEFAULT_TIMEZONE,
            church_name: None,
            tracks: TrackCache::new(max_tracks),
            prompts,
            tones: Mutex::new(HashMap::new()),
            schedule_problem: ProblemLog::default(),
            audio_problem: ProblemLog::default(),
            apology_problem: ProblemLog::default(),
            longest_service: Mutex::new(None),
            local: Mutex::new(None),
        }
    }

    /// Reads a local schedule again if the file changed since it was last
    /// read (a stat otherwise); a fetched one is published by its refresher.
    /// Disk work: the driver runs it off its loop, with [`Content::refresh`].
    pub fn reload_schedule(&self) {
        let Catalogue::Local { schedule: path, .. } = &self.catalogue else {
            return;
        };
        // A missing file has no stamp, so it is looked for every time.
        let stamp = FileStamp::of(path);
        let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        if stamp.is_some() && local.as_ref().is_some_and(|read| read.stamp == stamp) {
            return;
        }
        let schedule = Schedule::load_in(path, self.timezone)
            .map(Arc::new)
            .map_err(|e| e.to_string());
        if let Ok(schedule) = &schedule {
            for problem in &schedule.problems {
                tracing::warn!(schedule = %path.display(), "{problem}");
            }
        }
        *local = Some(LocalRead { stamp, schedule });
    }

    /// The longest service offered at the last [`Content::refresh`], or
    /// `None` while any offered service's length is unknown (not yet opened).
    pub fn longest_service(&self) -> Option<std::time::Duration> {
        *self
            .longest_service
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Reads schedule times without an offset in `timezone` (`[line] timezone`).
    pub fn with_timezone(mut self, timezone: Tz) -> Self {
        self.timezone = timezone;
        self
    }

    /// Greets callers with `name` (`[line] church_name`) instead of the
    /// schedule's or feed's name.
    pub fn with_church_name(mut self, name: Option<String>) -> Self {
        self.church_name = name.filter(|n| !n.is_empty());
        self
    }

    /// Checks the schedule and the apology clip once at start, so an
    /// operator sees a problem before the first caller does. Never fails:
    /// a missing schedule may appear later.
    pub fn check_at_start(&self, codecs: &[Codec], now: DateTime<Utc>) {
        // Prepared now, the apology never keeps a caller waiting.
        for &codec in codecs {
            let _ = self.apology_track(codec);
        }
        // A local schedule's problems are logged as it is read; a
        // published one's were logged when fetched.
        self.reload_schedule();
        // What the first caller is offered; a problem is logged by `offer`.
        if let Ok(menu) = self.offer(now) {
            // Ready before the first INVITE: the greeting and menu in every
            // codec, names and titles spoken (espeak-ng takes a fraction of
            // a second each), the latest service opened.
            self.prepare_speech(&menu);
            if !self.prompts.wait_for_speech(SPEECH_AT_START) {
                tracing::info!(
                    "names and titles are still being spoken; the first callers may hear the menu without some"
                );
            }
            self.prepare_ahead(&menu, codecs);
            let latest = &menu.items[0].service;
            tracing::info!(
                church = %menu.church_name.as_ref().map_or(String::new(), |name| name.text.clone()),
                file = %crate::source::redact_if_url(&latest.file),
                "latest service: {}",
                latest.datetime
            );
        }
    }

    /// The schedule as callers would be offered it now (no disk work).
    fn load_schedule(&self) -> Result<Arc<Schedule>, String> {
        match &self.catalogue {
            Catalogue::Local { schedule, .. } => {
                match &*self.local.lock().unwrap_or_else(|e| e.into_inner()) {
                    Some(read) => read.schedule.clone(),
                    None => Err(format!("{} has not been read yet", schedule.display())),
                }
            }
            Catalogue::Published { published, origin } => published.get().ok_or_else(|| {
                format!("no schedule from {origin} has been fetched and checked yet")
            }),
        }
    }

    /// The menu a call answered at `now` is offered (fixed for the call);
    /// `None`, logged, when the schedule is unusable or offers nothing yet:
    /// the caller hears the apology. Computed from the schedule in memory:
    /// no disk work, so the SIP loop may ask.
    pub fn menu(&self, now: DateTime<Utc>) -> Option<Menu> {
        self.offer(now).ok()
    }

    /// As [`Content::menu`], saying why there is none (the status page
    /// shows the same reason the log does).
    pub fn offer(&self, now: DateTime<Utc>) -> Result<Menu, String> {
        let schedule = match self.load_schedule() {
            Ok(schedule) => schedule,
            Err(error) => {
                self.schedule_problem
                    .record("schedule", Some(error.clone()));
                return Err(error);
            }
        };
        let mut menu = Menu::at(&schedule, now, self.timezone);
        if let Some(name) = &self.church_name {
            // The schedule's recording says the schedule's name: not used.
            menu.church_name = Some(Spoken::text(name.clone()));
        }
        if menu.items.is_empty() {
            let reason = format!(
                "{} lists no service that has started yet",
                self.catalogue.describe()
            );
            self.schedule_problem
                .record("schedule", Some(reason.clone()));
            return Err(reason);
        }
        self.schedule_problem.record("schedule", None);
        Ok(menu)
    }

    /// Reads the schedule as a caller would, ahead of them: problems are
    /// logged, names and titles new to it are queued for speech, and the
    /// menu's sentences are rendered in each codec, so the next caller's
    /// greeting costs nothing. The driver runs this off its loop every
    /// few seconds (rendering a long menu in Opus takes tens of milliseconds).
    pub fn refresh(&self, codecs: &[Codec], now: DateTime<Utc>) {
        self.reload_schedule();
        if let Some(menu) = self.menu(now) {
            self.prepare_speech(&menu);
            self.prepare_ahead(&menu, codecs);
        }
    }

    /// Renders what `menu` makes callers hear in each codec, and opens its
    /// latest service, so the next caller's programmes are cache hits.
    fn prepare_ahead(&self, menu: &Menu, codecs: &[Codec]) {
        let mut sentences = vec![menu.greeting()];
        sentences.extend(menu.sentences());
        sentences.push(vec![Phrase::NotAnOption]);
        sentences.push(vec![Phrase::Goodbye]);
        let latest = self.service_path(&menu.items[0].service.file);
        for &codec in codecs {
            let _ = self.prompts.render(&sentences, codec, &self.audio_dir);
            // The service most callers choose (or get by waiting) is opened
            // here too, so choosing it costs no decoding on the call's path.
            let _ = self.tracks.open(&latest, codec);
        }
        let longest = menu
            .items
            .iter()
            .map(|item| {
                let path = self.service_path(&item.service.file);
                self.tracks.peek(&path).and_then(|track| track.duration())
            })
            .try_fold(std::time::Duration::ZERO, |longest, length| {
                Some(longest.max(length?))
            });
        *self
            .longest_service
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = longest;
    }

    /// Queues speech for names and titles not yet rendered (in the
    /// background, for the callers after this one).
    fn prepare_speech(&self, menu: &Menu) {
        let mut sentences = vec![menu.greeting()];
        sentences.extend(menu.sentences());
        self.prompts.prepare(&sentences);
    }

    /// The audio of what the call flow asked for, in `codec`. Never fails:
    /// a service whose audio cannot be opened plays the apology (and is
    /// reported to the flow as failed).
    pub fn programme(&self, what: &flow::Programme, codec: Codec) -> Programme {
        match what {
            flow::Programme::Speech(sentences) => Programme {
                items: self
                    .prompts
                    .render(sentences, codec, &self.audio_dir)
                    .into_iter()
                    .map(|t| t as Arc<dyn FrameSource>)
                    .collect(),
                on_failure: None,
            },
            flow::Programme::Service(service) => {
                let apology: Arc<dyn FrameSource> = self.apology_track(codec);
                let path = self.service_path(&service.file);
                let item: Arc<dyn FrameSource> = match self.tracks.open(&path, codec) {
                    Ok(track) => {
                        self.audio_problem.record("service audio", None);
                        track
                    }
                    Err(error) => {
                        self.audio_problem
                            .record("service audio", Some(error.to_string()));
                        Arc::new(Unplayable)
                    }
                };
                Programme {
                    items: vec![item],
                    on_failure: Some(apology),
                }
            }
            flow::Programme::Apology => Programme {
                items: vec![self.apology_track(codec)],
                on_failure: None,
            },
        }
    }

    /// What the call flow asked for, to be played as soon as it is ready:
    /// the stream waits (or sends comfort frames) until the returned
    /// [`Preparation`] has run, which opens files and renders speech, so
    /// it belongs off the SIP loop.
    pub fn stage(self: &Arc<Self>, what: flow::Programme, codec: Codec) -> (Staged, Preparation) {
        let preparing = Preparing::new();
        let preparation = Preparation {
            content: self.clone(),
            what,
            codec,
            preparing: preparing.clone(),
        };
        (Staged::Preparing(preparing), preparation)
    }

    /// A schedule's `file` under the audio folder; names that try to leave
    /// it (`../`, absolute paths) are refused. A published schedule names
    /// its downloaded files by their paths in the cache.
    pub fn service_path(&self, file: &str) -> PathBuf {
        if let Catalogue::Published { .. } = self.catalogue {
            return PathBuf::from(file);
        }
        let relative = Path::new(file);
        let safe = relative
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if safe {
            self.audio_dir.join(relative)
        } else {
            // A path that cannot exist under the folder: opening it fails
            // with a clear "cannot open" naming it, and the apology plays.
            self.audio_dir.join(file.replace(['/', '\\'], "_"))
        }
    }

    fn apology_track(&self, codec: Codec) -> Arc<Track> {
        match self.tracks.open(&self.apology, codec) {
            Ok(track) => {
                self.apology_problem.record("apology clip", None);
                track
            }
            Err(error) => {
                self.apology_problem.record(
                    "apology clip",
                    Some(format!("{error}; playing the built-in tones")),
                );
                self.tone_track(codec)
            }
        }
    }

    fn tone_track(&self, codec: Codec) -> Arc<Track> {
        let mut tones = self.tones.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(track) = tones.get(&codec) {
            return track.clone();
        }
        let rate_hz = codec.sample_rate_hz();
        let samples = gentle_tones(rate_hz);
        let track = Track::from_pcm(codec, "built-in tones", &samples, rate_hz)
            .unwrap_or_else(|_| Track::complete(codec, "built-in silence", Vec::new()));
        tones.insert(codec, track.clone());
        track
    }
}

/// The disk and decoding work behind one [`Content::stage`].
pub struct Preparation {
    content: Arc<Content>,
    what: flow::Programme,
    codec: Codec,
    preparing: Preparing,
}

impl Preparation {
    /// Opens and renders the programme and hands it to the stream waiting
    /// for it. Never fails: what cannot be opened plays the apology.
    pub fn run(self) {
        let started = std::time::Instant::now();
        let programme = self.content.programme(&self.what, self.codec);
        self.preparing.fill(programme);
        tracing::debug!(
            took_us = started.elapsed().as_micros(),
            "prepared {}",
            self.what.label()
        );
    }

    /// What it prepares, for the log.
    pub fn label(&self) -> String {
        self.what.label()
    }
}

impl Drop for Preparation {
    /// Never run (the pool was shutting down) or cut short by a panic: the
    /// stream must not wait for ever, so it gets an item that fails at
    /// once, and the call flow moves on (the apology after a service).
    fn drop(&mut self) {
        self.preparing.fill(Programme {
            items: vec![Arc::new(Unplayable)],
            on_failure: None,
        });
    }
}

/// Three soft rising chimes (C5, E5, G5), twice, with rests: a sound that
/// says "nothing is wrong with your phone" without words.
pub fn gentle_tones(rate_hz: u32) -> Vec<f32> {
    let rate = rate_hz as f32;
    let mut out = Vec::new();
    let silence = |out: &mut Vec<f32>, seconds: f32| {
        out.extend(std::iter::repeat_n(0.0, (seconds * rate) as usize))
    };
    silence(&mut out, 0.3);
    for _ in 0..2 {
        for (freq, seconds) in [(523.25f32, 0.6f32), (659.25, 0.6), (783.99, 1.2)] {
            let n = (seconds * rate) as usize;
            out.extend((0..n).map(|i| {
                let t = i as f32 / rate;
                // A 10 ms attack avoids a click; the decay sounds like a bell.
                let attack = (t / 0.01).min(1.0);
                let decay = (-3.0 * t / seconds).exp();
                0.25 * attack * decay * (2.0 * std::f32::consts::PI * freq * t).sin()
            }));
        }
        silence(&mut out, 1.0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tones_are_gentle_and_click_free() {
        let samples = gentle_tones(8_000);
        assert!(samples.len() > 8_000 * 5);
        let peak = samples.iter().fold(0f32, |m, s| m.max(s.abs()));
        assert!(peak > 0.1 && peak <= 0.25, "peak {peak}");
        let biggest_step = samples
            .windows(2)
            .fold(0f32, |m, w| m.max((w[1] - w[0]).abs()));
        assert!(biggest_step < 0.2, "a jump of {biggest_step} would click");
    }

    #[test]
    fn audio_path_stays_inside_the_folder() {
        let catalogue = Catalogue::Local {
            schedule: "s.json".into(),
            audio: "/srv/audio".into(),
        };
        let content = Content::new(
            catalogue,
            "a.wav".into(),
            4,
            Prompts::load(Path::new("/nonexistent"), &[], None),
        );
        assert_eq!(content.service_path("x.mp3"), Path::new("/srv/audio/x.mp3"));
        assert_eq!(
            content.service_path("sub/x.mp3"),
            Path::new("/srv/audio/sub/x.mp3")
        );
        assert!(
            content
                .service_path("../etc/passwd")
                .starts_with("/srv/audio")
        );
        assert!(
            content
                .service_path("/etc/passwd")
                .starts_with("/srv/audio")
        );
    }
}

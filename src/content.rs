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
use crate::media::decode::Decoder;
use crate::media::pacer::{FrameSource, Preparing, Programme, Staged, Unplayable};
use crate::media::track::{Track, TrackCache, TrackStatus};
use crate::prompts::Prompts;
use crate::source::published::Published;
use crate::source::schedule::{Schedule, Service};

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
    apology_problem: ProblemLog,
    /// The longest service on offer at the last refresh, when every one's
    /// length is known (for `max_call_duration = "auto"`).
    longest_service: Mutex<Option<std::time::Duration>>,
    /// A local schedule as last read, and the file it was read from.
    local: Mutex<Option<LocalRead>>,
    /// Services' files found unplayable, by path, with the file as it was
    /// then: left out of the menu until the file changes and plays.
    unplayable: Mutex<HashMap<PathBuf, Unplayed>>,
    /// The playing time of each service on offer whose length is known,
    /// by its schedule `file`.
    lengths: Mutex<HashMap<String, std::time::Duration>>,
}

/// A service file that would not play, and when.
#[derive(Debug, Clone)]
struct Unplayed {
    stamp: Option<FileStamp>,
    reason: String,
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
            apology_problem: ProblemLog::default(),
            longest_service: Mutex::new(None),
            local: Mutex::new(None),
            unplayable: Mutex::new(HashMap::new()),
            lengths: Mutex::new(HashMap::new()),
        }
    }

    /// A service's playing time, if known at the last refresh (memory only).
    pub fn service_length(&self, file: &str) -> Option<std::time::Duration> {
        self.lengths
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(file)
            .copied()
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

    /// Where the schedule's times are read and its dates said.
    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// Reads schedule times without an offset in `timezone` (`[line] timezone`).
    pub fn with_timezone(mut self, timezone: Tz) -> Self {
        self.timezone = timezone;
        self
    }

    /// Levels services, the apology and prompts to `loudness` (`[audio]
    /// loudness_target`, `dynamics`): see `media::level`.
    pub fn with_loudness(mut self, loudness: crate::media::level::LoudnessSettings) -> Self {
        self.tracks.set_loudness(loudness);
        self.prompts.set_loudness(loudness);
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
        self.check_services(now);
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
        let unplayable = self.unplayable.lock().unwrap_or_else(|e| e.into_inner());
        let mut menu = Menu::of_playable(&schedule, now, self.timezone, |service| {
            !unplayable.contains_key(&self.service_path(&service.file))
        });
        drop(unplayable);
        if let Some(name) = &self.church_name {
            // The schedule's recording says the schedule's name: not used.
            menu.church_name = Some(Spoken::text(name.clone()));
        }
        if menu.items.is_empty() {
            let reason = if menu.newer_unplayable.is_empty() {
                format!(
                    "{} lists no service that has started yet",
                    self.catalogue.describe()
                )
            } else {
                format!(
                    "none of the {} services in {} can be played",
                    menu.newer_unplayable.len(),
                    self.catalogue.describe()
                )
            };
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
        self.check_services(now);
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
        let lengths: Vec<Option<std::time::Duration>> = menu
            .items
            .iter()
            .map(|item| {
                let path = self.service_path(&item.service.file);
                self.tracks.peek(&path).and_then(|track| track.duration())
            })
            .collect();
        {
            let mut known = self.lengths.lock().unwrap_or_else(|e| e.into_inner());
            known.clear();
            for (item, length) in menu.items.iter().zip(&lengths) {
                if let Some(length) = length {
                    known.insert(item.service.file.clone(), *length);
                }
            }
        }
        let longest = lengths
            .into_iter()
            .try_fold(std::time::Duration::ZERO, |longest, length| {
                Some(longest.max(length?))
            });
        *self
            .longest_service
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = longest;
    }

    /// Finds which of the services a caller could be offered now will not
    /// play (missing, unreadable, corrupt, or failed part of the way
    /// through for an earlier caller), newest first until nine that play
    /// are found. A file is decoded a little only when it is new or has
    /// changed since it was last looked at. Disk work: off the loop.
    fn check_services(&self, now: DateTime<Utc>) {
        let Ok(schedule) = self.load_schedule() else {
            return;
        };
        let mut playable = 0;
        for service in schedule.available(now) {
            if playable == crate::call::menu::MAX_ITEMS {
                break;
            }
            let path = self.service_path(&service.file);
            let stamp = FileStamp::of(&path);
            let known = self
                .unplayable
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&path)
                .cloned();
            let problem = match known {
                Some(known) if known.stamp.is_some() && known.stamp == stamp => Some(known.reason),
                _ => self.try_service(&path),
            };
            self.note_playable(service, &path, stamp, problem.clone());
            if problem.is_none() {
                playable += 1;
            }
        }
    }

    /// Why `path` will not play, or `None` when it plays as far as is known:
    /// its first second decodes, and no caller's copy of it has failed.
    fn try_service(&self, path: &Path) -> Option<String> {
        if let Some(track) = self.tracks.peek(path)
            && let TrackStatus::Failed { error, .. } = track.status()
        {
            return Some(error.to_string());
        }
        let mut decoder = match Decoder::open(path) {
            Ok(decoder) => decoder,
            Err(error) => return Some(error.to_string()),
        };
        // Its first second, as a call's track would decode it on opening.
        let second = decoder.sample_rate_hz() as usize;
        let mut samples = Vec::new();
        while samples.len() < second {
            match decoder.next_chunk(&mut samples) {
                Ok(true) => {}
                Ok(false) => break,
                Err(error) => return Some(error.to_string()),
            }
        }
        samples
            .is_empty()
            .then(|| format!("{} holds no audio", path.display()))
    }

    /// Records whether `service` plays, logging only changes.
    fn note_playable(
        &self,
        service: &Service,
        path: &Path,
        stamp: Option<FileStamp>,
        problem: Option<String>,
    ) {
        let mut unplayable = self.unplayable.lock().unwrap_or_else(|e| e.into_inner());
        let file = crate::source::redact_if_url(&service.file).into_owned();
        match problem {
            Some(reason) => {
                let changed = unplayable
                    .get(path)
                    .is_none_or(|known| known.reason != reason);
                if changed {
                    tracing::warn!(
                        code = "service.unplayable",
                        %file,
                        "service not offered: {reason}; callers hear the newest one that plays"
                    );
                }
                unplayable.insert(path.to_path_buf(), Unplayed { stamp, reason });
            }
            None => {
                if unplayable.remove(path).is_some() {
                    tracing::info!(code = "service.playable", %file, "service plays again and is offered");
                }
            }
        }
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
            // A service that fails (now or part of the way through) ends
            // as failed, and the call flow chooses what plays instead.
            flow::Programme::Service(service) => Programme {
                items: vec![
                    self.service_track(service, codec)
                        .unwrap_or_else(|| Arc::new(Unplayable)),
                ],
                on_failure: None,
            },
            // The sentence only for a service that opened: a caller is never
            // promised one that then says nothing.
            flow::Programme::Instead { sentence, service } => {
                let items = match self.service_track(service, codec) {
                    Some(track) => self
                        .prompts
                        .render(std::slice::from_ref(sentence), codec, &self.audio_dir)
                        .into_iter()
                        .map(|t| t as Arc<dyn FrameSource>)
                        .chain(std::iter::once(track))
                        .collect(),
                    None => vec![Arc::new(Unplayable) as Arc<dyn FrameSource>],
                };
                Programme {
                    items,
                    on_failure: None,
                }
            }
            flow::Programme::Apology => Programme {
                items: vec![self.apology_track(codec)],
                on_failure: None,
            },
        }
    }

    /// A service's audio in `codec`; `None` when its file will not open
    /// (recorded, so the menu leaves it out until it changes).
    fn service_track(&self, service: &Service, codec: Codec) -> Option<Arc<dyn FrameSource>> {
        let path = self.service_path(&service.file);
        match self.tracks.open(&path, codec) {
            Ok(track) => Some(track),
            Err(error) => {
                self.note_playable(
                    service,
                    &path,
                    FileStamp::of(&path),
                    Some(error.to_string()),
                );
                None
            }
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
pub(crate) mod tests {
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

    /// One second of a 440 Hz tone, as a WAV file.
    /// A second of 440 Hz at 8 kHz.
    pub(crate) fn write_tone(path: &Path) {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut wav = hound::WavWriter::create(path, spec).unwrap();
        for n in 0..8_000 {
            let t = n as f32 / 8_000.0;
            wav.write_sample((8_000.0 * (std::f32::consts::TAU * 440.0 * t).sin()) as i16)
                .unwrap();
        }
        wav.finalize().unwrap();
    }

    #[test]
    fn a_service_that_will_not_play_is_left_out_until_its_file_is_mended() {
        let dir = tempfile::tempdir().unwrap();
        write_tone(&dir.path().join("old.wav"));
        write_tone(&dir.path().join("mid.wav"));
        std::fs::write(dir.path().join("new.wav"), b"RIFF garbage, not audio").unwrap();
        std::fs::write(
            dir.path().join("data.json"),
            r#"{ "church_name": "St Test's", "services": [
                { "datetime": "2026-11-01T10:00:00Z", "file": "old.wav" },
                { "datetime": "2026-11-08T10:00:00Z", "file": "mid.wav" },
                { "datetime": "2026-11-15T10:00:00Z", "file": "new.wav" } ] }"#,
        )
        .unwrap();
        let content = Arc::new(Content::new(
            Catalogue::Local {
                schedule: dir.path().join("data.json"),
                audio: dir.path().to_path_buf(),
            },
            dir.path().join("apology.wav"),
            8,
            Prompts::load(
                &Path::new(env!("CARGO_MANIFEST_DIR")).join("audio/prompts"),
                &[Codec::Pcmu],
                None,
            ),
        ));
        let now: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
        content.refresh(&[Codec::Pcmu], now);
        let menu = content.menu(now).expect("two services play");
        let offered: Vec<&str> = menu.items.iter().map(|i| i.service.file.as_str()).collect();
        assert_eq!(offered, ["mid.wav", "old.wav"]);
        assert_eq!(menu.newer_unplayable.len(), 1);

        // In place of one that will not open: the sentence, then the service.
        let instead = |file: &str| {
            let service = Service {
                file: file.to_owned(),
                ..menu.items[0].service.clone()
            };
            let what = flow::Programme::Instead {
                sentence: menu.instead_sentence(&service),
                service,
            };
            content.programme(&what, Codec::Pcmu).items
        };
        let items = instead("mid.wav");
        assert!(items.len() >= 2, "speech then the service");
        // One that does not open says nothing and fails at once.
        let items = instead("new.wav");
        assert_eq!(items.len(), 1);
        let mut frame = Vec::new();
        assert!(matches!(
            items[0].read_frame(0, &mut frame),
            crate::media::track::FrameRead::Failed
        ));

        // Mended: offered again at the next refresh.
        write_tone(&dir.path().join("new.wav"));
        content.refresh(&[Codec::Pcmu], now);
        let menu = content.menu(now).unwrap();
        assert_eq!(menu.items.len(), 3);
        assert!(menu.newer_unplayable.is_empty());

        // Every file broken: no menu, so the caller hears the apology.
        for file in ["old.wav", "mid.wav", "new.wav"] {
            std::fs::write(dir.path().join(file), b"broken").unwrap();
        }
        content.refresh(&[Codec::Pcmu], now);
        let error = content.offer(now).unwrap_err();
        assert!(error.contains("none of the 3 services"), "{error}");
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

//! The background refresher: fetches the schedule (a `data.json` or a
//! podcast feed, from a URL or a path) at start and then every
//! `refresh_interval` with a conditional GET, downloads each listed
//! service's audio ahead of time into the [`DiskCache`], decodes it to
//! prove it plays, and only then publishes the schedule, atomically. A call
//! never touches the network: it reads what was last published.
//!
//! ```text
//!  start ─► snapshot from the disk cache (checked deeply) ─► publish
//!    └─► every interval: fetch ─► 304: keep the schedule, retry failed audio
//!                              └─► body: parse ─► newest `keep_latest`
//!        for each service: cached? ─► yes: keep
//!                          └─► no, not backing off: download ─► decode all ─► commit
//!        publish the services whose audio is in the cache ─► save snapshot ─► evict the rest
//! ```
//!
//! A failure (DNS, connect, certificate, HTTP status, timeout, size, bad
//! schedule, undecodable audio) is logged once per change with the URL and
//! the reason, and counted; the last good schedule stays published, so the
//! seed's outage (a CDN presenting a bad certificate) leaves callers
//! hearing the cached services.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::cache::{DiskCache, Entry, Snapshot, SnapshotService, Validators};
use super::feed;
use super::http::{Fetched, Http, sidecar_path};
use super::published::Published;
use super::redact::Redacted;
use super::schedule::{Schedule, Service};
use crate::config::Location;
use crate::media::decode::Decoder;

/// A schedule or feed larger than this is not a schedule.
const MAX_SCHEDULE_BYTES: u64 = 4 * 1024 * 1024;
const SCHEDULE_TIMEOUT: Duration = Duration::from_secs(30);
/// Three hours of 128 kbit/s MP3 is 170 MB; a file past this is refused.
const MAX_AUDIO_BYTES: u64 = 1024 * 1024 * 1024;
/// A slow parish uplink may take a while; a stalled one is given up on
/// (the partial file stays, and the next attempt resumes it).
const AUDIO_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A failed download is retried after the refresh interval, doubling up
/// to this.
const MAX_RETRY: Duration = Duration::from_secs(6 * 3600);
/// Services still to come that are downloaded ahead of their time.
const UPCOMING: usize = 2;
/// Less than this much decoded audio is not a service.
const MIN_AUDIO_FRAMES: u64 = 8_000;

#[derive(Debug, Clone)]
pub struct RefresherConfig {
    pub schedule: Location,
    /// Where relative `file` names are: a URL folder or a local folder.
    pub audio: Location,
    pub interval: Duration,
    pub keep_latest: usize,
    pub timezone: Tz,
    /// `[line] church_name`, else the schedule's or the feed's.
    pub church_name: Option<String>,
}

/// What operators see: the last successful refresh and failures by kind.
#[derive(Debug, Default)]
pub struct RefreshStatus {
    inner: Mutex<StatusInner>,
}

#[derive(Debug, Default, Clone)]
pub struct StatusInner {
    pub last_success: Option<DateTime<Utc>>,
    /// Failures counted by code (`source.certificate`, `source.status`, ...).
    pub failures: BTreeMap<String, u64>,
    /// Services published at the last refresh.
    pub services: usize,
}

impl RefreshStatus {
    pub fn snapshot(&self) -> StatusInner {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StatusInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Where one service's audio comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AudioRef {
    Remote(String),
    Local(PathBuf),
}

/// A failed download and when it may be tried again.
#[derive(Debug, Clone)]
struct Retry {
    at: Instant,
    delay: Duration,
}

pub struct Refresher {
    config: RefresherConfig,
    http: Http,
    cache: Arc<DiskCache>,
    published: Arc<Published>,
    status: Arc<RefreshStatus>,
    /// The last schedule parsed and its validators, for conditional GETs
    /// and for retrying its audio after a 304.
    schedule: Option<Schedule>,
    validators: Validators,
    retries: HashMap<String, Retry>,
    /// The problem last logged per subject (the schedule, each URL), so
    /// each is logged once per change.
    problems: HashMap<String, String>,
    /// What was last published, for the log (once per change).
    offering: Option<String>,
}

impl Refresher {
    pub fn new(
        config: RefresherConfig,
        http: Http,
        cache: Arc<DiskCache>,
        published: Arc<Published>,
    ) -> Refresher {
        Refresher {
            config,
            http,
            cache,
            published,
            status: Arc::default(),
            schedule: None,
            validators: Validators::default(),
            retries: HashMap::new(),
            problems: HashMap::new(),
            offering: None,
        }
    }

    pub fn status(&self) -> Arc<RefreshStatus> {
        self.status.clone()
    }

    /// Serves from the cache at once, then refreshes forever.
    pub async fn run(mut self) {
        self.restore().await;
        let mut ticks = tokio::time::interval(self.config.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.refresh_once().await;
        }
    }

    /// Publishes the last snapshot whose audio is still intact, so callers
    /// are served from the first second even while the origin is down.
    pub async fn restore(&mut self) {
        let cache = self.cache.clone();
        let restored = tokio::task::spawn_blocking(move || {
            let snapshot = cache.load_snapshot()?;
            let services: Vec<(SnapshotService, Entry)> = snapshot
                .services
                .iter()
                .filter_map(|s| cache.get(&s.url, true).map(|e| (s.clone(), e)))
                .collect();
            Some((snapshot, services))
        })
        .await
        .ok()
        .flatten();
        let Some((snapshot, services)) = restored else {
            tracing::info!(cache = %self.cache.root().display(), "no schedule in the disk cache yet");
            return;
        };
        let schedule = Schedule {
            church_name: self.church_name(&snapshot.church_name),
            church_name_audio: None,
            services: services
                .iter()
                .map(|(s, entry)| Service {
                    title: s.title.clone(),
                    title_audio: None,
                    datetime: s.datetime,
                    file: entry.path.display().to_string(),
                })
                .collect(),
            problems: Vec::new(),
        };
        tracing::info!(
            services = schedule.services.len(),
            fetched = %snapshot.fetched_at,
            "serving the schedule kept in the disk cache"
        );
        // The validators stay unused: a 304 now would leave this process
        // without the parsed schedule (the snapshot keeps only what plays),
        // so the first fetch after a start is unconditional.
        let offering = describe(&schedule);
        tracing::info!(services = schedule.services.len(), "offering: {offering}");
        self.offering = Some(offering);
        self.published.publish(schedule);
    }

    /// One round: fetch, download what is new, publish.
    pub async fn refresh_once(&mut self) {
        let subject = format!("schedule {}", self.config.schedule);
        match self.fetch_schedule().await {
            Ok(Some((schedule, validators))) => {
                for problem in &schedule.problems {
                    tracing::warn!(source = %self.config.schedule, "{problem}");
                }
                self.schedule = Some(schedule);
                self.validators = validators;
                self.clear(&subject);
            }
            Ok(None) => self.clear(&subject),
            Err((code, reason)) => {
                self.fail(
                    &subject,
                    code,
                    &reason,
                    "callers keep hearing the last good schedule",
                );
            }
        }
        let Some(schedule) = self.schedule.clone() else {
            return; // nothing fetched yet: what the cache had stays published
        };
        let now = Utc::now();
        // The newest `keep_latest` services that play (one whose audio fails
        // is passed over, so an older one stays offered), and the next few
        // still to come, downloaded ahead of their time (the menu hides
        // them until then).
        let mut offered = Vec::new();
        let mut kept_urls = Vec::new();
        let mut upcoming: Vec<&Service> = schedule
            .services
            .iter()
            .filter(|s| s.datetime > now)
            .collect();
        upcoming.sort_by_key(|s| s.datetime);
        let upcoming = upcoming.into_iter().take(UPCOMING).map(|s| (s, false));
        let available = schedule.available(now).into_iter().map(|s| (s, true));
        let mut counted = 0;
        for (service, counts) in upcoming.chain(available) {
            if counts && counted >= self.config.keep_latest {
                break;
            }
            let reference = self.audio_ref(&service.file);
            let path = match &reference {
                AudioRef::Local(path) => Some(path.clone()),
                AudioRef::Remote(url) => {
                    kept_urls.push(url.clone());
                    self.ensure_audio(url).await.map(|e| e.path)
                }
            };
            if let Some(path) = path {
                counted += usize::from(counts);
                offered.push((service.clone(), reference, path));
            }
        }
        let published = Schedule {
            church_name: self.church_name(&schedule.church_name),
            church_name_audio: None,
            services: offered
                .iter()
                .map(|(service, _, path)| Service {
                    title: service.title.clone(),
                    title_audio: None,
                    datetime: service.datetime,
                    file: path.display().to_string(),
                })
                .collect(),
            problems: Vec::new(),
        };
        let count = published.services.len();
        let offering = describe(&published);
        if self.offering.as_ref() != Some(&offering) {
            tracing::info!(services = count, "offering: {offering}");
            self.offering = Some(offering);
        }
        self.published.publish(published);
        let snapshot = Snapshot {
            church_name: schedule.church_name.clone(),
            services: offered
                .iter()
                .filter_map(|(service, reference, _)| match reference {
                    AudioRef::Remote(url) => Some(SnapshotService {
                        title: service.title.clone(),
                        datetime: service.datetime,
                        url: url.clone(),
                    }),
                    AudioRef::Local(_) => None,
                })
                .collect(),
            schedule_validators: self.validators.clone(),
            fetched_at: now,
            source: self.config.schedule.to_string(),
        };
        let cache = self.cache.clone();
        let saved = tokio::task::spawn_blocking(move || {
            cache.save_snapshot(&snapshot)?;
            let keep: Vec<&str> = kept_urls.iter().map(String::as_str).collect();
            cache.evict(&keep)
        })
        .await;
        match saved {
            Ok(Ok(removed)) => {
                if !removed.is_empty() {
                    tracing::info!(removed = removed.len(), "old downloads deleted");
                }
            }
            Ok(Err(error)) => {
                let reason = error.to_string();
                self.fail(
                    "disk cache",
                    error.code(),
                    &reason,
                    "the schedule is still served",
                );
            }
            Err(error) => tracing::error!(%error, "cache task failed"),
        }
        let mut status = self.status.lock();
        status.last_success = Some(now);
        status.services = count;
    }

    /// `Ok(None)`: not modified since the last fetch.
    async fn fetch_schedule(
        &mut self,
    ) -> Result<Option<(Schedule, Validators)>, (&'static str, String)> {
        let (bytes, validators, base) = match &self.config.schedule {
            Location::Url(url) => {
                let fetched = self
                    .http
                    .fetch(
                        url.as_str(),
                        &self.validators,
                        MAX_SCHEDULE_BYTES,
                        SCHEDULE_TIMEOUT,
                    )
                    .await
                    .map_err(|e| (e.code(), e.to_string()))?;
                match fetched {
                    Fetched::NotModified => return Ok(None),
                    Fetched::Body {
                        bytes,
                        validators,
                        final_url,
                    } => (bytes, validators, Some(final_url)),
                }
            }
            Location::Path(path) => {
                let bytes = tokio::fs::read(path)
                    .await
                    .map_err(|e| ("source.io", format!("cannot read {}: {e}", path.display())))?;
                (bytes, Validators::default(), None)
            }
        };
        let schedule = parse(&bytes, base.as_deref(), self.config.timezone)?;
        Ok(Some((schedule, validators)))
    }

    fn audio_ref(&self, file: &str) -> AudioRef {
        let lower = file.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return AudioRef::Remote(file.to_owned());
        }
        match &self.config.audio {
            Location::Url(base) => AudioRef::Remote(join_url(base.as_str(), file)),
            Location::Path(dir) => AudioRef::Local(dir.join(file)),
        }
    }

    /// The cached copy of `url`, downloading and checking it if needed.
    async fn ensure_audio(&mut self, url: &str) -> Option<Entry> {
        let cache = self.cache.clone();
        let key = url.to_owned();
        if let Ok(Some(entry)) = tokio::task::spawn_blocking(move || cache.get(&key, false)).await {
            return Some(entry);
        }
        if let Some(retry) = self.retries.get(url)
            && Instant::now() < retry.at
        {
            return None;
        }
        let subject = format!("audio {}", Redacted(url));
        match self.download(url).await {
            Ok(entry) => {
                self.retries.remove(url);
                self.clear(&subject);
                tracing::info!(url = %Redacted(url), bytes = entry.size, "downloaded and checked");
                Some(entry)
            }
            Err((code, reason)) => {
                let delay = self
                    .retries
                    .get(url)
                    .map_or(self.config.interval, |r| (r.delay * 2).min(MAX_RETRY));
                self.retries.insert(
                    url.to_owned(),
                    Retry {
                        at: Instant::now() + delay,
                        delay,
                    },
                );
                self.fail(
                    &subject,
                    code,
                    &reason,
                    "the service is not offered until it works",
                );
                None
            }
        }
    }

    async fn download(&self, url: &str) -> Result<Entry, (&'static str, String)> {
        let partial = self.cache.partial_path(url);
        let downloaded = self
            .http
            .download(
                url,
                &partial,
                &Validators::default(),
                MAX_AUDIO_BYTES,
                AUDIO_TIMEOUT,
            )
            .await
            .map_err(|e| (e.code(), e.to_string()))?;
        let hint = extension_of(url);
        let check_path = partial.clone();
        let checked = tokio::task::spawn_blocking(move || decodes(&check_path, hint.as_deref()))
            .await
            .map_err(|e| ("source.decode", e.to_string()))?;
        let sidecar = sidecar_path(&partial);
        if let Err(reason) = checked {
            // A corrupt file is fetched afresh next time, not resumed.
            let _ = std::fs::remove_file(&partial);
            let _ = std::fs::remove_file(&sidecar);
            return Err(("source.decode", reason));
        }
        let cache = self.cache.clone();
        let url = url.to_owned();
        let validators = downloaded.validators;
        let entry = tokio::task::spawn_blocking(move || cache.commit(&url, &partial, validators))
            .await
            .map_err(|e| ("cache.io", e.to_string()))?
            .map_err(|e| (e.code(), e.to_string()))?;
        // The resumption record is done with once the file is in place.
        let _ = std::fs::remove_file(&sidecar);
        Ok(entry)
    }

    fn church_name(&self, from_schedule: &str) -> String {
        self.config
            .church_name
            .clone()
            .unwrap_or_else(|| from_schedule.to_owned())
    }

    /// Logs a failure once per change, and counts every one.
    fn fail(&mut self, subject: &str, code: &str, reason: &str, consequence: &str) {
        *self
            .status
            .lock()
            .failures
            .entry(code.to_owned())
            .or_default() += 1;
        if self.problems.get(subject).map(String::as_str) != Some(reason) {
            // Fetch errors name their URL already.
            let named = subject
                .split_once(' ')
                .is_some_and(|(_, what)| reason.contains(what));
            if named {
                tracing::warn!(code, "{reason}; {consequence}");
            } else {
                tracing::warn!(code, "{subject}: {reason}; {consequence}");
            }
            self.problems.insert(subject.to_owned(), reason.to_owned());
        }
    }

    fn clear(&mut self, subject: &str) {
        if self.problems.remove(subject).is_some() {
            tracing::info!("{subject}: working again");
        }
    }
}

/// "Evensong (2026-06-07 18:00 +01:00); 2026-05-31 10:00 +01:00" for the log.
fn describe(schedule: &Schedule) -> String {
    if schedule.services.is_empty() {
        return "nothing".to_owned();
    }
    schedule
        .services
        .iter()
        .map(|s| {
            let when = s.datetime.format("%Y-%m-%d %H:%M %:z");
            match &s.title {
                Some(title) => format!("{title} ({when})"),
                None => when.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A `data.json` or a podcast feed, whichever the bytes are.
fn parse(
    bytes: &[u8],
    base: Option<&str>,
    timezone: Tz,
) -> Result<Schedule, (&'static str, String)> {
    if feed::looks_like_feed(bytes) {
        return feed::parse_feed(bytes, base, timezone).map_err(|e| ("source.feed", e.to_string()));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| {
        (
            "source.schedule",
            "the schedule is not UTF-8 text".to_owned(),
        )
    })?;
    Schedule::parse_in(text, timezone).map_err(|e| ("source.schedule", e.to_string()))
}

/// `file` under the folder URL `base` (which ends in `/`), spaces and other
/// characters a URL cannot hold percent-encoded.
fn join_url(base: &str, file: &str) -> String {
    let mut out = base.trim_end_matches('/').to_owned();
    out.push('/');
    for byte in file.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(byte as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// The extension of a URL's path (`mp3` of `…/sermon.mp3?x=1`).
fn extension_of(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next()?;
    let name = path.rsplit('/').next()?;
    let (_, extension) = name.rsplit_once('.')?;
    Some(extension.to_ascii_lowercase()).filter(|e| e.len() <= 5)
}

/// Decodes the whole file: a truncated or corrupt download fails here, not
/// in a caller's ear.
fn decodes(path: &Path, hint: Option<&str>) -> Result<(), String> {
    let mut decoder = Decoder::open_with_hint(path, hint).map_err(|e| e.to_string())?;
    let mut chunk = Vec::new();
    while decoder.next_chunk(&mut chunk).map_err(|e| e.to_string())? {}
    if decoder.frames_decoded() < MIN_AUDIO_FRAMES {
        return Err(format!(
            "only {} frames of audio: not a service",
            decoder.frames_decoded()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;

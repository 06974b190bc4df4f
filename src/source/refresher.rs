//! The background refresher: fetches the schedule (a `data.json` or a
//! podcast feed, from a URL or a path) at start and then every
//! `refresh_interval` with a conditional GET, downloads each listed
//! service's audio ahead of time into the [`DiskCache`], decodes it to
//! prove it plays, and only then publishes the schedule, atomically. A call
//! never touches the network: it reads what was last published.
//!
//! ```text
//!  start ─► prune old partials ─► snapshot from the disk cache (checked deeply) ─► publish
//!    └─► every interval: fetch ─► 304: keep the schedule, retry failed audio
//!                              └─► body: parse ─► newest `keep_latest`, then upcoming
//!        for each service: cached? ─► yes: keep
//!                          └─► no, not backing off, room in this round:
//!                              download ─► decode all ─► commit
//!        publish the services whose audio is in the cache ─► save snapshot
//!          ─► evict the rest ─► prune old partials
//! ```
//!
//! A failure (DNS, connect, certificate, HTTP status, timeout, size, bad
//! schedule, undecodable audio) is logged once per change with the URL and
//! the reason, and counted; the last good schedule stays published, so the
//! seed's outage (a CDN presenting a bad certificate) leaves callers
//! hearing the cached services. URLs are logged redacted (`source::redact`).
//! How many downloads a round starts, how long they may take, when a failed
//! one is retried and what it leaves on disk: `downloads`. With a read-only
//! cache nothing is downloaded or written: what it holds is served.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::cache::{CacheError, DiskCache, Entry, Snapshot, SnapshotService, Validators};
use super::feed;
use super::http::{Fetched, Http};
use super::published::Published;
use super::redact::{Redacted, redact_url};
use super::schedule::{Schedule, Service};
use crate::config::Location;

mod downloads;
use downloads::{Downloads, Permit};

/// A schedule or feed larger than this is not a schedule.
pub const MAX_SCHEDULE_BYTES: u64 = 4 * 1024 * 1024;
pub const SCHEDULE_TIMEOUT: Duration = Duration::from_secs(30);
/// Services still to come that are downloaded ahead of their time.
const UPCOMING: usize = 2;
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
    /// What is failing now, by subject (`schedule <url>`, `audio <url>`), for the
    /// status page; gone once it works again.
    pub problems: BTreeMap<String, CurrentProblem>,
}

/// One failure that has not cleared yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentProblem {
    pub code: String,
    pub reason: String,
    /// When this run of failures began.
    pub since: DateTime<Utc>,
}

impl RefreshStatus {
    pub fn snapshot(&self) -> StatusInner {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StatusInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What became of one service's audio this round.
enum Audio {
    Ready(Entry),
    /// Not downloaded: it failed now or recently (logged), or the cache is read-only.
    Missing,
    /// Not tried: this round has started enough downloads.
    Deferred,
}

/// Where one service's audio comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioRef {
    Remote(String),
    Local(PathBuf),
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
    /// Per-round limits and per-URL backoff for audio downloads.
    downloads: Downloads,
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
        let downloads = Downloads::new(config.interval, Instant::now());
        Refresher {
            config,
            http,
            cache,
            published,
            status: Arc::default(),
            schedule: None,
            validators: Validators::default(),
            downloads,
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
        let church_name = self.config.church_name.clone();
        let restored = tokio::task::spawn_blocking(move || {
            // Downloads abandoned long ago go first: age is all there is to judge them by
            // until a schedule is fetched.
            prune_partials(&cache);
            cached_schedule(&cache, church_name.as_deref())
        })
        .await
        .ok()
        .flatten();
        let Some((snapshot, schedule)) = restored else {
            tracing::info!(cache = %self.cache.root().display(), "no schedule in the disk cache yet");
            return;
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
        self.downloads.start_round(Instant::now());
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
        // is passed over, so an older one stays offered), then the next few
        // still to come, downloaded ahead of their time (the menu hides
        // them until then). Newest first: with few downloads a round, what
        // callers most want comes first.
        let mut offered = Vec::new();
        let mut kept_urls = Vec::new();
        let mut deferred = 0;
        let mut upcoming: Vec<&Service> = schedule
            .services
            .iter()
            .filter(|s| s.datetime > now)
            .collect();
        upcoming.sort_by_key(|s| s.datetime);
        let upcoming = upcoming.into_iter().take(UPCOMING).map(|s| (s, false));
        let available = schedule.available(now).into_iter().map(|s| (s, true));
        let mut counted = 0;
        for (service, counts) in available.chain(upcoming) {
            if counts && counted >= self.config.keep_latest {
                continue;
            }
            let reference = self.audio_ref(&service.file);
            let path = match &reference {
                AudioRef::Local(path) => Some(path.clone()),
                AudioRef::Remote(url) => {
                    kept_urls.push(url.clone());
                    match self.ensure_audio(url).await {
                        Audio::Ready(entry) => Some(entry.path),
                        Audio::Deferred => {
                            deferred += 1;
                            None
                        }
                        Audio::Missing => None,
                    }
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
        if deferred > 0 {
            tracing::info!(
                deferred,
                "more audio to download than one round starts; the rest follows in the next rounds"
            );
        }
        let wanted: HashSet<&str> = kept_urls.iter().map(String::as_str).collect();
        self.downloads.forget_others(&wanted);
        self.problems.retain(|subject, _| {
            // A URL the schedule dropped is no longer a problem to report as fixed.
            subject
                .strip_prefix("audio ")
                .is_none_or(|shown| wanted.iter().any(|url| redact_url(url) == shown))
        });
        let problems = &self.problems;
        self.status
            .lock()
            .problems
            .retain(|subject, _| problems.contains_key(subject));
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
            if cache.is_read_only() {
                return Ok::<_, CacheError>(Vec::new()); // said once, when it was opened
            }
            cache.save_snapshot(&snapshot)?;
            let keep: Vec<&str> = kept_urls.iter().map(String::as_str).collect();
            let removed = cache.evict(&keep)?;
            prune_partials(&cache);
            Ok(removed)
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
        audio_ref(&self.config.audio, file)
    }

    /// The cached copy of `url`, downloading and checking it if this round
    /// may (see `downloads`).
    async fn ensure_audio(&mut self, url: &str) -> Audio {
        let cache = self.cache.clone();
        let key = url.to_owned();
        if let Ok(Some(entry)) = tokio::task::spawn_blocking(move || cache.get(&key, false)).await {
            return Audio::Ready(entry);
        }
        if self.cache.is_read_only() {
            return Audio::Missing; // said once, when the cache was opened
        }
        let timeout = match self.downloads.permit(url, Instant::now()) {
            Permit::Go { timeout } => timeout,
            Permit::BackingOff => return Audio::Missing,
            Permit::Deferred => return Audio::Deferred,
        };
        let subject = format!("audio {}", Redacted(url));
        match self.download(url, timeout).await {
            Ok(entry) => {
                self.downloads.succeeded(url);
                self.clear(&subject);
                tracing::info!(url = %Redacted(url), bytes = entry.size, "downloaded and checked");
                Audio::Ready(entry)
            }
            Err(failure) => {
                let delay = self
                    .downloads
                    .failed(url, failure.progressed, Instant::now());
                let consequence = format!(
                    "the service is not offered until it works (next try in {})",
                    humantime::format_duration(delay)
                );
                self.fail(&subject, failure.code, &failure.reason, &consequence);
                Audio::Missing
            }
        }
    }

    fn church_name(&self, from_schedule: &str) -> String {
        self.config
            .church_name
            .clone()
            .unwrap_or_else(|| from_schedule.to_owned())
    }

    /// Logs a failure once per change, and counts every one.
    fn fail(&mut self, subject: &str, code: &str, reason: &str, consequence: &str) {
        {
            let mut status = self.status.lock();
            *status.failures.entry(code.to_owned()).or_default() += 1;
            let current = status
                .problems
                .entry(subject.to_owned())
                .or_insert_with(|| CurrentProblem {
                    code: String::new(),
                    reason: String::new(),
                    since: Utc::now(),
                });
            current.code = code.to_owned();
            current.reason = reason.to_owned();
        }
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
        self.status.lock().problems.remove(subject);
        if self.problems.remove(subject).is_some() {
            tracing::info!("{subject}: working again");
        }
    }
}

/// Where a schedule's `file` is: an absolute URL as is, else under `audio`.
pub fn audio_ref(audio: &Location, file: &str) -> AudioRef {
    let lower = file.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return AudioRef::Remote(file.to_owned());
    }
    match audio {
        Location::Url(base) => AudioRef::Remote(join_url(base.as_str(), file)),
        Location::Path(dir) => AudioRef::Local(dir.join(file)),
    }
}

/// The last snapshot in `cache` and the schedule it serves: the services
/// whose audio is still there and intact (checksummed), their files the
/// cached copies. What a line serves at start, and what `menu` and `check`
/// show of a fetched source. Blocking: reads and hashes files.
pub fn cached_schedule(
    cache: &DiskCache,
    church_name: Option<&str>,
) -> Option<(Snapshot, Schedule)> {
    let snapshot = cache.load_snapshot()?;
    let schedule = Schedule {
        church_name: church_name.map_or_else(|| snapshot.church_name.clone(), str::to_owned),
        church_name_audio: None,
        services: snapshot
            .services
            .iter()
            .filter_map(|s| {
                let entry = cache.get(&s.url, true)?;
                Some(Service {
                    title: s.title.clone(),
                    title_audio: None,
                    datetime: s.datetime,
                    file: entry.path.display().to_string(),
                })
            })
            .collect(),
        problems: Vec::new(),
    };
    Some((snapshot, schedule))
}

/// Removes partial downloads past their age (see `cache::upkeep`); trouble is
/// logged, never fatal.
fn prune_partials(cache: &DiskCache) {
    if cache.is_read_only() {
        return;
    }
    match cache.prune_partials(std::time::SystemTime::now()) {
        Ok(removed) if !removed.is_empty() => {
            tracing::info!(removed = removed.len(), "old partial downloads deleted");
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(code = error.code(), "{error}"),
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
pub fn parse(
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

#[cfg(test)]
mod tests;

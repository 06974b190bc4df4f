//! Which audio downloads a refresh round starts, how long each may take, when
//! a failed URL is tried again, and whether its partial file is worth keeping.
//! Time is an input (`now`), so the limits are tested without waiting.
//!
//! Every download is bounded:
//!
//! - **Size**: [`MAX_AUDIO_BYTES`] per file, refused from its Content-Length
//!   before a byte is written, else counted as it arrives (`http`).
//! - **Time**: each download's deadline is what is left of the round's
//!   [`ROUND_BUDGET`], at most [`AUDIO_TIMEOUT`]; no download starts once the
//!   budget is spent, and the client drops a connection silent for a minute
//!   (`http::STALL_TIMEOUT`). A round therefore ends within about half an
//!   hour however many services are missing.
//! - **Count**: at most [`MAX_STARTS_PER_ROUND`] started per round, newest
//!   service first, the rest deferred to the next round (not a failure). One
//!   at a time, never concurrently: a parish uplink is no faster in parallel,
//!   and one at a time bounds the memory, the disk writes and the decode check.
//! - **Retries**: a failed URL waits the refresh interval, doubling with each
//!   failure up to [`MAX_RETRY`]; an attempt that added bytes (a slow link
//!   cut off by the deadline) waits only the interval, as it is getting
//!   there. A URL the schedule no longer names is forgotten.
//! - **Partial files**: kept after a failure only when the next attempt can
//!   resume them (bytes, validators for `If-Range`, and an error that says
//!   nothing against them); otherwise removed with their `.validators`. A
//!   kept one lives while its URL is wanted and at most a day
//!   (`cache::MAX_PARTIAL_AGE`).
//!
//! One download is fetched into its partial file, decoded whole to prove it
//! plays, and only then committed to the cache ([`Refresher::download`]).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use super::Refresher;
use crate::media::decode::Decoder;
use crate::source::cache::Entry;
use crate::source::http::{FetchError, Validators, sidecar_path};

/// Three hours of 128 kbit/s MP3 is 170 MB, of 16-bit mono WAV at 44.1 kHz
/// about 950 MB; a file past this is refused.
pub(super) const MAX_AUDIO_BYTES: u64 = 1024 * 1024 * 1024;
/// The longest one download may take (170 MB needs 0.8 Mbit/s).
pub(super) const AUDIO_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// What one round may spend on downloads; the schedule is not fetched again
/// until the round ends, so this also bounds how late a new service is seen.
pub(super) const ROUND_BUDGET: Duration = Duration::from_secs(30 * 60);
/// Downloads started per round. A fresh install with 20 services publishes
/// the newest three within minutes and the rest over the next rounds,
/// instead of after hours of downloading.
pub(super) const MAX_STARTS_PER_ROUND: usize = 3;
/// The longest wait before a failed download is tried again.
pub(super) const MAX_RETRY: Duration = Duration::from_secs(6 * 3600);
/// Less than this much decoded audio is not a service.
const MIN_AUDIO_FRAMES: u64 = 8_000;

/// Whether a download may start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Permit {
    /// Start it, with this deadline.
    Go { timeout: Duration },
    /// It failed recently: not before its retry time.
    BackingOff,
    /// This round has started enough, or spent its time: next round.
    Deferred,
}

/// A failed download and when it may be tried again.
#[derive(Debug, Clone)]
struct Retry {
    at: Instant,
    delay: Duration,
}

#[derive(Debug)]
pub(super) struct Downloads {
    /// The first wait after a failure: the refresh interval.
    interval: Duration,
    retries: HashMap<String, Retry>,
    started: usize,
    round_ends: Instant,
}

impl Downloads {
    pub(super) fn new(interval: Duration, now: Instant) -> Downloads {
        Downloads {
            interval,
            retries: HashMap::new(),
            started: 0,
            round_ends: now + ROUND_BUDGET,
        }
    }

    /// A new round: its count and its budget start afresh.
    pub(super) fn start_round(&mut self, now: Instant) {
        self.started = 0;
        self.round_ends = now + ROUND_BUDGET;
    }

    /// Whether `url` may be downloaded now; `Go` counts it as started.
    pub(super) fn permit(&mut self, url: &str, now: Instant) -> Permit {
        if self.retries.get(url).is_some_and(|retry| now < retry.at) {
            return Permit::BackingOff;
        }
        if self.started >= MAX_STARTS_PER_ROUND || now >= self.round_ends {
            return Permit::Deferred;
        }
        self.started += 1;
        Permit::Go {
            timeout: (self.round_ends - now).min(AUDIO_TIMEOUT),
        }
    }

    pub(super) fn succeeded(&mut self, url: &str) {
        self.retries.remove(url);
    }

    /// Records a failure; returns how long until `url` is tried again.
    pub(super) fn failed(&mut self, url: &str, progressed: bool, now: Instant) -> Duration {
        let delay = match self.retries.get(url) {
            Some(retry) if !progressed => (retry.delay * 2).min(MAX_RETRY),
            _ => self.interval,
        };
        self.retries.insert(
            url.to_owned(),
            Retry {
                at: now + delay,
                delay,
            },
        );
        delay
    }

    /// Forgets the failures of URLs not in `wanted`, so the map is only ever as large as
    /// the schedule.
    pub(super) fn forget_others(&mut self, wanted: &HashSet<&str>) {
        self.retries.retain(|url, _| wanted.contains(url.as_str()));
    }
}

/// Why a download failed, for the log and the retry.
pub(super) struct Failure {
    pub(super) code: &'static str,
    pub(super) reason: String,
    /// The partial file grew: a slow link, not a broken one.
    pub(super) progressed: bool,
}

impl Failure {
    fn new(code: &'static str, reason: String) -> Failure {
        Failure {
            code,
            reason,
            progressed: false,
        }
    }
}

impl Refresher {
    /// Downloads `url` within `timeout`, checks that it decodes, and moves
    /// it into the cache. A failed download's partial file stays only if
    /// the next attempt can resume it.
    pub(super) async fn download(&self, url: &str, timeout: Duration) -> Result<Entry, Failure> {
        let partial = self.cache.partial_path(url);
        let before = partial_len(&partial);
        let downloaded = self
            .http
            .download(
                url,
                &partial,
                &Validators::default(),
                MAX_AUDIO_BYTES,
                timeout,
            )
            .await;
        let downloaded = match downloaded {
            Ok(downloaded) => downloaded,
            Err(error) => {
                let after = partial_len(&partial);
                if !keep_for_resumption(&error, &partial) {
                    remove_partial(&partial);
                }
                return Err(Failure {
                    code: error.code(),
                    reason: error.to_string(),
                    progressed: after > before,
                });
            }
        };
        let hint = extension_of(url);
        let check_path = partial.clone();
        let checked = tokio::task::spawn_blocking(move || decodes(&check_path, hint.as_deref()))
            .await
            .map_err(|e| Failure::new("source.decode", e.to_string()))?;
        if let Err(reason) = checked {
            // A corrupt file is fetched afresh next time, not resumed.
            remove_partial(&partial);
            return Err(Failure::new("source.decode", reason));
        }
        let cache = self.cache.clone();
        let key = url.to_owned();
        let validators = downloaded.validators;
        let sidecar = sidecar_path(&partial);
        let entry = tokio::task::spawn_blocking(move || cache.commit(&key, &partial, validators))
            .await
            .map_err(|e| Failure::new("cache.io", e.to_string()))?
            .map_err(|e| Failure::new(e.code(), e.to_string()))?;
        // The resumption record is done with once the file is in place.
        let _ = std::fs::remove_file(&sidecar);
        Ok(entry)
    }
}

/// Whether the partial file of a failed download is worth keeping: the next attempt can
/// resume it (it has bytes, and validators to prove with `If-Range` that they are still
/// the current version) and the failure says nothing against those bytes (a network
/// trouble, a stall, a server error, rather than a 404, a size past the limit or a refused
/// redirect).
pub(super) fn keep_for_resumption(error: &FetchError, partial: &Path) -> bool {
    let has_bytes = std::fs::metadata(partial).is_ok_and(|m| m.len() > 0);
    let provable = std::fs::read(sidecar_path(partial))
        .ok()
        .and_then(|json| serde_json::from_slice::<Validators>(&json).ok())
        .is_some_and(|validators| validators.can_resume());
    error.is_transient() && has_bytes && provable
}

/// Removes a partial file and its validators; either may be missing.
pub(super) fn remove_partial(partial: &Path) {
    for file in [partial.to_path_buf(), sidecar_path(partial)] {
        if let Err(e) = std::fs::remove_file(&file)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(code = "cache.io", file = %file.display(), "cannot remove: {e}");
        }
    }
}

/// The length of `partial` now, 0 if there is none.
pub(super) fn partial_len(partial: &Path) -> u64 {
    std::fs::metadata(partial).map_or(0, |m| m.len())
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

//! The last-known-good disk cache: calls are served only from here, so an origin or CDN
//! outage (the old line's broken certificate) never reaches a caller.
//!
//! Layout under the root (`[cache] dir`, `DAS_CACHE_DIR`); `speech/` beside these belongs
//! to the speech module and is never touched:
//!
//! ```text
//! audio/<key>.<ext>       verified copy of a URL; <key> = first 32 hex digits of sha256(url)
//! audio/<key>.<ext>.meta  JSON sidecar: url, size, sha256, validators, stored_at, mtime
//! partial/<key>.part      download in progress, kept across restarts for resumption
//! partial/<key>.part.validators  JSON: the validators of what that `.part` holds
//!                         (`http::sidecar_path`), for `If-Range` when it resumes
//! schedule.json           the last published snapshot
//! ```
//!
//! A partial download (and its `.validators`) lives only while its URL is wanted
//! ([`DiskCache::evict`]) and for at most [`MAX_PARTIAL_AGE`] since its last byte
//! ([`DiskCache::prune_partials`]); a `.validators` without its `.part` is removed.
//!
//! A cache folder the line may not write (mounted read-only, owned by another user) is
//! not a reason to stay silent: [`DiskCache::open`] says so once and opens it read-only,
//! serving what it holds; stray temporary files are then left where they are.
//!
//! Every write goes to a uniquely named temporary file in the destination folder, is
//! fsynced, renamed over the target, and the folder fsynced; on any failure (a full disk
//! included) the temporary file is removed and the previous copy stays in use.
//!
//! An entry is two files, so a commit cannot replace both in one rename. The meta is
//! renamed first and remembers the content it replaces: a crash before the audio's rename
//! leaves the old audio with a meta that still vouches for it, and [`DiskCache::get`]
//! goes back to the previous copy instead of discarding it.
//!
//! Blocking I/O throughout: the refresher calls it from `spawn_blocking`. One
//! `DiskCache` per root per process; its lock serialises commits, checks and evictions.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::UNIX_EPOCH;

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::redact::Redacted;

mod upkeep;
pub use upkeep::MAX_PARTIAL_AGE;
use upkeep::PARTIAL_SUFFIX;

/// Audio extensions kept in cached names so decoders get the right format hint.
const AUDIO_EXTENSIONS: &[&str] = &[
    "mp3", "m4a", "mp4", "aac", "flac", "ogg", "oga", "opus", "wav",
];
/// Names of temporary files; `open` removes any it finds, left by a crash.
const TEMP_PREFIX: &str = ".tmp.";
/// Hex digits of sha256(url) in a cached name: 128 bits, no collisions in practice.
const KEY_LEN: usize = 32;
/// A meta is a few hundred bytes; anything far larger is not ours.
const MAX_META_LEN: u64 = 64 * 1024;
/// Read in chunks: recordings run past 100 MB.
const CHUNK: usize = 64 * 1024;
/// Makes temporary names unique within the process (the pid covers other processes).
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache: cannot {action} {}: no space left on the disk", path.display())]
    Full {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cache: cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cache: {} is read-only", root.display())]
    ReadOnly { root: PathBuf },
    #[error("cache: cannot encode the meta or snapshot for {}: {source}", path.display())]
    Encode {
        path: PathBuf,
        source: serde_json::Error,
    },
}

impl CacheError {
    fn io(action: &'static str, path: &Path, source: io::Error) -> CacheError {
        let path = path.to_path_buf();
        if is_disk_full(&source) {
            CacheError::Full {
                action,
                path,
                source,
            }
        } else {
            CacheError::Io {
                action,
                path,
                source,
            }
        }
    }

    /// A stable code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            CacheError::Full { .. } => "cache.full",
            CacheError::Io { .. } => "cache.io",
            CacheError::ReadOnly { .. } => "cache.read_only",
            CacheError::Encode { .. } => "cache.encode",
        }
    }
}

fn is_disk_full(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// HTTP validators for conditional requests, as the fetcher reads them.
pub use super::http::Validators;

/// A verified cached copy of one URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub url: String,
    pub path: PathBuf,
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
    pub validators: Validators,
}

/// The last schedule published to callers, kept so the line starts while the origin is down.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub church_name: String,
    pub services: Vec<SnapshotService>,
    pub schedule_validators: Validators,
    pub fetched_at: DateTime<Utc>,
    /// Where the schedule came from (its URL), for the status page.
    pub source: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotService {
    pub title: Option<String>,
    pub datetime: DateTime<FixedOffset>,
    pub url: String,
}

/// What a meta vouches for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Content {
    size: u64,
    sha256: String,
    validators: Validators,
    stored_at: DateTime<Utc>,
}

/// The sidecar of an audio file.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Meta {
    url: String,
    #[serde(flatten)]
    current: Content,
    /// The audio file's mtime when last verified: unchanged size and mtime skip rehashing.
    #[serde(default)]
    mtime_ns: Option<u64>,
    /// The content this meta replaced, still in place until the audio's rename.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous: Option<Content>,
}

/// Why `get` rejected an entry.
enum Bad {
    /// Provably wrong: removed, to be fetched again.
    Corrupt(String),
    /// Could not look (permissions, I/O error): left alone.
    Unreadable(PathBuf, io::Error),
}

/// Where tests make the disk fail; a no-op outside tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FailPoint {
    TempWrite,
    TempRename,
    AudioRename,
}

#[derive(Debug)]
pub struct DiskCache {
    root: PathBuf,
    /// Serialises commits, checks and evictions: a check between a commit's two renames
    /// would otherwise see a half-replaced entry.
    lock: Mutex<()>,
    /// The folder cannot be written: serve what it holds, write nothing.
    read_only: bool,
    #[cfg(test)]
    fail: Mutex<Option<FailPoint>>,
}

impl DiskCache {
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the verified copy of `url` lives; stable, and always inside `audio/`
    /// whatever the URL holds.
    pub fn audio_path(&self, url: &str) -> PathBuf {
        self.audio_dir()
            .join(format!("{}.{}", url_key(url), audio_extension(url)))
    }

    /// Where a download of `url` in progress lives, kept across restarts.
    pub fn partial_path(&self, url: &str) -> PathBuf {
        self.partial_dir()
            .join(format!("{}{PARTIAL_SUFFIX}", url_key(url)))
    }

    /// Moves a finished download into place with its sidecar meta; the download must not
    /// change during the call. On error the previous entry, if any, stays usable and the
    /// download stays at `partial` for a retry.
    pub fn commit(
        &self,
        url: &str,
        partial: &Path,
        validators: Validators,
    ) -> Result<Entry, CacheError> {
        self.writable()?;
        let _guard = self.guard();
        let path = self.audio_path(url);
        let meta_path = meta_path_of(&path);

        let (size, sha256, mtime_ns) =
            hash_and_sync(partial).map_err(|e| CacheError::io("read", partial, e))?;
        let previous = read_meta(&meta_path)
            .ok()
            .filter(|old| old.url == url)
            .map(|old| old.current);
        let meta = Meta {
            url: url.to_string(),
            current: Content {
                size,
                sha256: sha256.clone(),
                validators: validators.clone(),
                stored_at: Utc::now(),
            },
            mtime_ns,
            previous,
        };
        self.write_meta(&meta_path, &meta)?;

        let renamed = self
            .inject(FailPoint::AudioRename)
            .and_then(|()| fs::rename(partial, &path));
        match renamed {
            Ok(()) => {
                sync_dir(&self.audio_dir());
                if let Some(from) = partial.parent() {
                    sync_dir(from);
                }
            }
            // A download outside the cache's filesystem: copy instead. The copy's mtime
            // differs from the meta's, so the next `get` rehashes it once.
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
                let mut from =
                    File::open(partial).map_err(|e| CacheError::io("read", partial, e))?;
                self.write_atomic(&path, |to| io::copy(&mut from, to).map(drop))?;
                let _ = fs::remove_file(partial);
            }
            Err(e) => return Err(CacheError::io("move into place", &path, e)),
        }
        Ok(Entry {
            url: url.to_string(),
            path,
            size,
            sha256,
            validators,
        })
    }

    /// The entry for `url` if present and intact. Size is always checked; the checksum
    /// when size or mtime differ from the meta, or always when `deep` (at start). A corrupt
    /// entry is removed, logged once, and reported as `None` so the caller fetches it again.
    pub fn get(&self, url: &str, deep: bool) -> Option<Entry> {
        let _guard = self.guard();
        let path = self.audio_path(url);
        let meta_path = meta_path_of(&path);
        match self.inspect(url, &path, &meta_path, deep) {
            Ok(entry) => entry,
            Err(Bad::Corrupt(reason)) if self.read_only => {
                tracing::warn!(
                    code = "cache.corrupt",
                    file = %path.display(),
                    url = %Redacted(url),
                    "cached copy not served, and left (the cache is read-only): {reason}"
                );
                None
            }
            Err(Bad::Corrupt(reason)) => {
                tracing::warn!(
                    code = "cache.corrupt",
                    file = %path.display(),
                    url = %Redacted(url),
                    "cached copy removed, will fetch again: {reason}"
                );
                for file in [&path, &meta_path] {
                    if let Err(e) = fs::remove_file(file)
                        && e.kind() != io::ErrorKind::NotFound
                    {
                        tracing::warn!(code = "cache.io", file = %file.display(), "cannot remove: {e}");
                    }
                }
                None
            }
            Err(Bad::Unreadable(file, e)) => {
                tracing::warn!(code = "cache.io", file = %file.display(), url = %Redacted(url), "cannot check cached copy: {e}");
                None
            }
        }
    }

    fn inspect(
        &self,
        url: &str,
        path: &Path,
        meta_path: &Path,
        deep: bool,
    ) -> Result<Option<Entry>, Bad> {
        let meta = match read_meta(meta_path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return match fs::symlink_metadata(path) {
                    Ok(_) => Err(Bad::Corrupt("its meta is missing".into())),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Bad::Unreadable(path.to_path_buf(), e)),
                };
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Err(Bad::Corrupt(format!("its meta is unreadable: {e}")));
            }
            Err(e) => return Err(Bad::Unreadable(meta_path.to_path_buf(), e)),
        };
        if meta.url != url {
            return Err(Bad::Corrupt(format!(
                "its meta names {}",
                Redacted(&meta.url)
            )));
        }
        let stat = match fs::metadata(path) {
            Ok(stat) if stat.is_file() => stat,
            Ok(_) => return Err(Bad::Corrupt("it is not a file".into())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Bad::Corrupt("the audio file is missing".into()));
            }
            Err(e) => return Err(Bad::Unreadable(path.to_path_buf(), e)),
        };
        let entry = |content: &Content| Entry {
            url: url.to_string(),
            path: path.to_path_buf(),
            size: content.size,
            sha256: content.sha256.clone(),
            validators: content.validators.clone(),
        };
        let mtime_ns = mtime_ns(&stat);
        let size = stat.len();
        if !deep && size == meta.current.size && mtime_ns == meta.mtime_ns {
            return Ok(Some(entry(&meta.current)));
        }

        let candidates: Vec<&Content> = std::iter::once(&meta.current)
            .chain(meta.previous.as_ref())
            .filter(|c| c.size == size)
            .collect();
        if candidates.is_empty() {
            return Err(Bad::Corrupt(format!(
                "it holds {size} bytes, its meta says {}",
                meta.current.size
            )));
        }
        let (_, sha256) = hash_file(path).map_err(|e| Bad::Unreadable(path.to_path_buf(), e))?;
        let Some(found) = candidates.into_iter().find(|c| c.sha256 == sha256) else {
            return Err(Bad::Corrupt(
                "its content does not match its checksum".into(),
            ));
        };
        // Record what was verified so the next check is cheap; if this fails, the next
        // check just hashes again.
        let stale = found != &meta.current || mtime_ns != meta.mtime_ns || meta.previous.is_some();
        if stale && !self.read_only {
            let healed = Meta {
                url: meta.url.clone(),
                current: found.clone(),
                mtime_ns,
                previous: None,
            };
            if let Err(e) = self.write_meta(meta_path, &healed) {
                tracing::warn!(code = e.code(), "{e}");
            }
        }
        Ok(Some(entry(found)))
    }

    /// Replaces `schedule.json` atomically; on error the previous snapshot stays.
    pub fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), CacheError> {
        self.writable()?;
        let _guard = self.guard();
        let path = self.snapshot_path();
        let json = serde_json::to_vec_pretty(snapshot).map_err(|source| CacheError::Encode {
            path: path.clone(),
            source,
        })?;
        self.write_atomic(&path, |f| f.write_all(&json))
    }

    /// The last saved snapshot; `None` if there is none or it cannot be read (logged).
    pub fn load_snapshot(&self) -> Option<Snapshot> {
        let path = self.snapshot_path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(code = "cache.io", file = %path.display(), "cannot read snapshot: {e}");
                return None;
            }
        };
        match serde_json::from_slice(&bytes) {
            Ok(snapshot) => Some(snapshot),
            Err(e) => {
                tracing::warn!(code = "cache.corrupt", file = %path.display(), "snapshot is unreadable: {e}");
                None
            }
        }
    }

    fn audio_dir(&self) -> PathBuf {
        self.root.join("audio")
    }

    fn partial_dir(&self) -> PathBuf {
        self.root.join("partial")
    }

    fn snapshot_path(&self) -> PathBuf {
        self.root.join("schedule.json")
    }

    fn guard(&self) -> MutexGuard<'_, ()> {
        // The lock guards no data, so a panic elsewhere leaves nothing inconsistent.
        self.lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_meta(&self, path: &Path, meta: &Meta) -> Result<(), CacheError> {
        let json = serde_json::to_vec(meta).map_err(|source| CacheError::Encode {
            path: path.to_path_buf(),
            source,
        })?;
        self.write_atomic(path, |f| f.write_all(&json))
    }

    /// Temporary file beside `dest`, written, fsynced, renamed over `dest`, folder fsynced.
    /// On failure the temporary file is removed and `dest` is untouched.
    fn write_atomic(
        &self,
        dest: &Path,
        write: impl FnOnce(&mut File) -> io::Result<()>,
    ) -> Result<(), CacheError> {
        let dir = dest.parent().unwrap_or(Path::new("."));
        let name = dest.file_name().unwrap_or_default().to_string_lossy();
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let temp = dir.join(format!("{TEMP_PREFIX}{}.{n}.{name}", std::process::id()));
        let written = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)?;
            self.inject(FailPoint::TempWrite)?;
            write(&mut file)?;
            file.sync_all()?;
            drop(file);
            self.inject(FailPoint::TempRename)?;
            fs::rename(&temp, dest)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(CacheError::io("write", dest, e));
        }
        sync_dir(dir);
        Ok(())
    }

    #[cfg(test)]
    fn inject(&self, at: FailPoint) -> io::Result<()> {
        let mut fail = self.fail.lock().unwrap_or_else(|p| p.into_inner());
        if *fail == Some(at) {
            *fail = None;
            return Err(io::Error::from(io::ErrorKind::StorageFull));
        }
        Ok(())
    }

    #[cfg(not(test))]
    #[inline]
    fn inject(&self, _at: FailPoint) -> io::Result<()> {
        Ok(())
    }

    /// Makes the next write at `at` fail as if the disk were full.
    #[cfg(test)]
    fn fail_next(&self, at: FailPoint) {
        *self.fail.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
    }
}

/// First 32 hex digits of sha256(url): fixed length, only `[0-9a-f]`, so no URL can
/// escape the folder or exceed a name's length limit.
fn url_key(url: &str) -> String {
    let mut key = hex(&Sha256::digest(url.as_bytes()));
    key.truncate(KEY_LEN);
    key
}

fn is_key(s: &str) -> bool {
    s.len() == KEY_LEN && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The extension of the URL's path if it is a known audio one, else `audio`.
fn audio_extension(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let last = path.rsplit('/').next().unwrap_or_default();
    let ext = match last.rsplit_once('.') {
        Some((_, ext)) => ext.to_ascii_lowercase(),
        None => return "audio",
    };
    AUDIO_EXTENSIONS
        .iter()
        .find(|known| **known == ext)
        .copied()
        .unwrap_or("audio")
}

fn meta_path_of(audio: &Path) -> PathBuf {
    let mut name = audio.file_name().unwrap_or_default().to_os_string();
    name.push(".meta");
    audio.with_file_name(name)
}

/// Garbage reads as `InvalidData`, so the caller can tell it from an I/O failure.
fn read_meta(path: &Path) -> io::Result<Meta> {
    let file = File::open(path)?;
    if file.metadata()?.len() > MAX_META_LEN {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "meta too large"));
    }
    serde_json::from_reader(io::BufReader::new(file))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn hash_reader(mut reader: impl Read) -> io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0; CHUNK];
    let mut size = 0;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                size += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((size, hex(&hasher.finalize())))
}

fn hash_file(path: &Path) -> io::Result<(u64, String)> {
    hash_reader(File::open(path)?)
}

/// Size, checksum and mtime of a finished download, made durable before it is renamed.
fn hash_and_sync(path: &Path) -> io::Result<(u64, String, Option<u64>)> {
    let mut file = File::open(path)?;
    let (size, sha256) = hash_reader(&mut file)?;
    file.sync_all()?;
    Ok((size, sha256, mtime_ns(&file.metadata()?)))
}

fn mtime_ns(stat: &fs::Metadata) -> Option<u64> {
    let since_epoch = stat.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    u64::try_from(since_epoch.as_nanos()).ok()
}

/// Makes renames in `dir` durable. A failure is logged, not returned: the rename has
/// happened and the new file is what readers see.
fn sync_dir(dir: &Path) {
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(code = "cache.io", folder = %dir.display(), "cannot fsync folder: {e}");
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod upkeep_tests;

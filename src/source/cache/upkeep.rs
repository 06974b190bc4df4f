//! Keeping the cache in bounds and usable: opening it (creating its folders, removing
//! what a crash left half-written, or opening it read-only when it may not be written),
//! evicting what the schedule no longer names, and pruning partial downloads by age.
//!
//! Partial downloads are the one thing kept on purpose after a failure, so they are the
//! thing that could pile up: each lives only while its URL is wanted and for at most
//! [`MAX_PARTIAL_AGE`] since its last byte; the refresher starts at most a few downloads a
//! round, so at most `keep_latest` + the upcoming few exist at once.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use super::{CacheError, DiskCache, TEMP_COUNTER, TEMP_PREFIX, is_key, url_key};
use crate::source::http::sidecar_path;

/// A partial download untouched this long is removed: resuming it would most likely be
/// refused (the file changed) or it belongs to a URL that failed for a day, and starting
/// over costs one download. A day also outlasts the longest retry backoff (6 h).
pub const MAX_PARTIAL_AGE: Duration = Duration::from_secs(24 * 3600);
/// The names under `partial/`: a download and its validators.
pub(super) const PARTIAL_SUFFIX: &str = ".part";
const SIDECAR_SUFFIX: &str = ".part.validators";

impl DiskCache {
    /// Creates the folders and removes temporary files left by a crash; partial downloads
    /// are kept for resumption. A cache that cannot be written opens read-only, with one
    /// warning; any other trouble creating its folders is an error.
    pub fn open(root: &Path) -> Result<DiskCache, CacheError> {
        DiskCache::open_probing(root, probe_writable)
    }

    /// The cache as it is, to look at and never write (`check`, `menu`):
    /// no folder is made (one made by root would lock the line's own user
    /// out), nothing removed, a corrupt entry reported as absent.
    pub fn open_to_look(root: &Path) -> DiskCache {
        DiskCache {
            root: root.to_path_buf(),
            lock: Mutex::new(()),
            read_only: true,
            #[cfg(test)]
            fail: Mutex::new(None),
        }
    }

    /// [`DiskCache::open`] with the write check given, so tests can refuse writes even
    /// when they run as root (who may write anywhere).
    pub(crate) fn open_probing(
        root: &Path,
        probe: impl Fn(&Path) -> io::Result<()>,
    ) -> Result<DiskCache, CacheError> {
        let mut cache = DiskCache {
            root: root.to_path_buf(),
            lock: Mutex::new(()),
            read_only: false,
            #[cfg(test)]
            fail: Mutex::new(None),
        };
        let mut refused = None;
        for dir in [cache.audio_dir(), cache.partial_dir()] {
            if let Err(e) = fs::create_dir_all(&dir) {
                if !is_write_refused(&e) {
                    return Err(CacheError::io("create", &dir, e));
                }
                refused.get_or_insert((dir, e));
            }
        }
        if refused.is_none() {
            for dir in [cache.root.clone(), cache.audio_dir(), cache.partial_dir()] {
                match probe(&dir) {
                    Ok(()) => {}
                    Err(e) if is_write_refused(&e) => {
                        refused = Some((dir, e));
                        break;
                    }
                    // Full, say: writes will fail and say so, but reading works.
                    Err(e) => {
                        tracing::warn!(code = "cache.io", folder = %dir.display(), "cannot write a test file: {e}")
                    }
                }
            }
        }
        if let Some((dir, e)) = refused {
            tracing::warn!(
                code = "cache.read_only",
                folder = %dir.display(),
                "cache {} cannot be written ({e}): serving what it holds, downloading nothing \
                 new until it can be",
                cache.root.display()
            );
            cache.read_only = true;
            return Ok(cache);
        }
        for dir in [cache.root.clone(), cache.audio_dir(), cache.partial_dir()] {
            remove_temp_files(&dir);
        }
        Ok(cache)
    }

    /// Whether the cache opened read-only: nothing is downloaded into it, and nothing in it
    /// is written, evicted or removed.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Deletes audio, metas and partial downloads (with their validators) of every URL not
    /// in `keep`; returns the files removed. Files not named by this cache are left alone.
    pub fn evict(&self, keep: &[&str]) -> Result<Vec<PathBuf>, CacheError> {
        self.writable()?;
        let _guard = self.guard();
        let keep: HashSet<String> = keep.iter().map(|url| url_key(url)).collect();
        let mut removed = Vec::new();
        for (dir, partial) in [(self.audio_dir(), false), (self.partial_dir(), true)] {
            for name in list_files(&dir)? {
                let key = if partial {
                    partial_key(&name)
                } else {
                    name.split('.').next()
                };
                if key.is_some_and(|key| is_key(key) && !keep.contains(key)) {
                    remove_counted(&dir.join(&name), &mut removed);
                }
            }
        }
        removed.sort();
        Ok(removed)
    }

    /// Deletes partial downloads last written more than [`MAX_PARTIAL_AGE`] before `now`,
    /// with their validators, and validators whose download is gone; returns the files
    /// removed. A clock set back (a file "from the future") keeps the file.
    pub fn prune_partials(&self, now: SystemTime) -> Result<Vec<PathBuf>, CacheError> {
        self.writable()?;
        let _guard = self.guard();
        let dir = self.partial_dir();
        let mut removed = Vec::new();
        for name in list_files(&dir)? {
            let file = dir.join(&name);
            if let Some(key) = name.strip_suffix(SIDECAR_SUFFIX).filter(|k| is_key(k)) {
                let part = dir.join(format!("{key}{PARTIAL_SUFFIX}"));
                if !part.exists() {
                    remove_counted(&file, &mut removed);
                }
            } else if name.strip_suffix(PARTIAL_SUFFIX).is_some_and(is_key) {
                let age = fs::metadata(&file)
                    .and_then(|stat| stat.modified())
                    .ok()
                    .and_then(|written| now.duration_since(written).ok());
                if age.is_some_and(|age| age > MAX_PARTIAL_AGE) {
                    remove_counted(&file, &mut removed);
                    remove_counted(&sidecar_path(&file), &mut removed);
                }
            }
        }
        removed.sort();
        Ok(removed)
    }

    pub(super) fn writable(&self) -> Result<(), CacheError> {
        if self.read_only {
            return Err(CacheError::ReadOnly {
                root: self.root.clone(),
            });
        }
        Ok(())
    }
}

/// The key of a name under `partial/`: a download or its validators.
fn partial_key(name: &str) -> Option<&str> {
    name.strip_suffix(SIDECAR_SUFFIX)
        .or_else(|| name.strip_suffix(PARTIAL_SUFFIX))
}

/// Removes `file` and adds it to `removed`; gone already is fine, and any other failure is
/// logged: one stuck file must not keep the rest of the disk full.
fn remove_counted(file: &Path, removed: &mut Vec<PathBuf>) {
    match fs::remove_file(file) {
        Ok(()) => removed.push(file.to_path_buf()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(code = "cache.io", file = %file.display(), "cannot remove: {e}")
        }
    }
}

pub(super) fn list_files(dir: &Path) -> Result<Vec<String>, CacheError> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| CacheError::io("list", dir, e))? {
        let entry = entry.map_err(|e| CacheError::io("list", dir, e))?;
        if entry.file_type().is_ok_and(|t| t.is_file())
            && let Some(name) = entry.file_name().to_str()
        {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

/// Removes what a crash left half-written. Never fatal: a temporary file is never read,
/// so one that cannot be removed costs only its space (logged).
fn remove_temp_files(dir: &Path) {
    let names = match list_files(dir) {
        Ok(names) => names,
        Err(e) => {
            tracing::warn!(code = e.code(), "{e}");
            return;
        }
    };
    for name in names.iter().filter(|n| n.starts_with(TEMP_PREFIX)) {
        let file = dir.join(name);
        if let Err(e) = fs::remove_file(&file) {
            tracing::warn!(code = "cache.io", file = %file.display(), "cannot remove a stray temporary file: {e}");
        }
    }
}

/// Whether `error` says this process may not write here (rather than that something is
/// broken): the cache then opens read-only instead of stopping the start.
fn is_write_refused(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
    )
}

/// Creates and removes an empty temporary file in `dir`.
fn probe_writable(dir: &Path) -> io::Result<()> {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let probe = dir.join(format!("{TEMP_PREFIX}{}.{n}.probe", std::process::id()));
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    fs::remove_file(&probe)
}

//! Opening a cache that cannot be written, and keeping partial downloads in
//! bounds (eviction and age).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::upkeep::MAX_PARTIAL_AGE;
use super::*;
use crate::source::http::sidecar_path;

const URL: &str = "https://cdn.example.org/services/2024-05-05.mp3";

fn validators() -> Validators {
    Validators {
        etag: Some("\"v1\"".into()),
        last_modified: None,
    }
}

/// A cache holding one entry for `URL` and a stray temporary file from a
/// crash, as a read-only mount would find it.
fn populated() -> (tempfile::TempDir, Entry, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cache = DiskCache::open(dir.path()).unwrap();
    let partial = cache.partial_path(URL);
    fs::write(&partial, b"a whole service").unwrap();
    let entry = cache.commit(URL, &partial, validators()).unwrap();
    let stray = dir.path().join("audio").join(".tmp.999.0.x.mp3");
    fs::write(&stray, b"half written").unwrap();
    (dir, entry, stray)
}

fn refuse(kind: io::ErrorKind) -> impl Fn(&Path) -> io::Result<()> {
    move |_| Err(io::Error::from(kind))
}

#[test]
fn a_cache_that_refuses_writes_opens_read_only_and_serves_what_it_holds() {
    for kind in [
        io::ErrorKind::PermissionDenied,
        io::ErrorKind::ReadOnlyFilesystem,
    ] {
        let (dir, entry, stray) = populated();
        let cache = DiskCache::open_probing(dir.path(), refuse(kind)).expect("opens");
        assert!(cache.is_read_only(), "{kind:?}");
        assert!(stray.exists(), "nothing is removed from a read-only cache");
        assert_eq!(cache.get(URL, true), Some(entry));

        // Every write says why it was not done, and touches nothing.
        let other = cache.partial_path("https://cdn.example.org/new.mp3");
        for error in [
            cache.commit(URL, &other, validators()).unwrap_err(),
            cache.evict(&[]).unwrap_err(),
            cache.prune_partials(SystemTime::now()).unwrap_err(),
        ] {
            assert_eq!(error.code(), "cache.read_only", "{error}");
        }
        assert_eq!(cache.get(URL, false).map(|e| e.size), Some(15));
    }
}

#[test]
fn a_corrupt_entry_in_a_read_only_cache_is_not_served_and_left_alone() {
    let (dir, entry, _) = populated();
    fs::write(&entry.path, b"A whole service").unwrap();
    let cache = DiskCache::open_probing(dir.path(), refuse(io::ErrorKind::PermissionDenied))
        .expect("opens");
    assert_eq!(cache.get(URL, true), None);
    assert!(
        entry.path.exists(),
        "left for a writable start to deal with"
    );
}

#[test]
fn other_trouble_writing_the_probe_still_opens_writable() {
    // A full disk: reading works, and each write will say it is full.
    let (dir, _, stray) = populated();
    let cache =
        DiskCache::open_probing(dir.path(), refuse(io::ErrorKind::StorageFull)).expect("opens");
    assert!(!cache.is_read_only());
    assert!(!stray.exists(), "stray temporary files are removed");
}

#[test]
fn a_file_where_a_cache_folder_belongs_stops_the_start() {
    // Not a permission problem: a mistake in `[cache] dir`, which must be seen.
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("partial"), b"not a folder").unwrap();
    let error = DiskCache::open(dir.path()).unwrap_err();
    assert_eq!(error.code(), "cache.io", "{error}");
}

/// A real read-only folder. Root writes anywhere, so as root this can only
/// check that opening works; the refusal itself is covered above with an
/// injected error, and this test was run as an unprivileged user too
/// (`setpriv --reuid=nobody`).
#[test]
#[cfg(unix)]
fn a_read_only_folder_with_a_stale_temp_file_opens_read_only() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, entry, stray) = populated();
    let mode = |path: &Path, mode| fs::set_permissions(path, fs::Permissions::from_mode(mode));
    for sub in ["", "audio", "partial"] {
        mode(&dir.path().join(sub), 0o555).unwrap();
    }
    let enforced = fs::write(dir.path().join("audio").join("probe"), b"").is_err();

    let opened = DiskCache::open(dir.path());

    for sub in ["", "audio", "partial"] {
        mode(&dir.path().join(sub), 0o755).unwrap();
    }
    let cache = opened.expect("a read-only cache never stops the start");
    assert_eq!(cache.get(URL, true), Some(entry));
    if enforced {
        assert!(cache.is_read_only());
        assert!(stray.exists());
    } else {
        eprintln!("permissions are not enforced for this user (root?): refusal not checked here");
    }
}

/// Writes a partial download of `url` and its validators, last written `age` ago.
fn partial(cache: &DiskCache, url: &str, age: Duration) -> (PathBuf, PathBuf) {
    let part = cache.partial_path(url);
    fs::write(&part, b"half a service").unwrap();
    let sidecar = sidecar_path(&part);
    fs::write(&sidecar, br#"{"etag":"\"v1\"","last_modified":null}"#).unwrap();
    let file = fs::File::options().write(true).open(&part).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
    (part, sidecar)
}

#[test]
fn eviction_removes_an_abandoned_download_with_its_validators() {
    let dir = tempfile::tempdir().unwrap();
    let cache = DiskCache::open(dir.path()).unwrap();
    let kept = partial(&cache, URL, Duration::ZERO);
    let dropped = partial(&cache, "https://cdn.example.org/old.mp3", Duration::ZERO);
    let removed = cache.evict(&[URL]).unwrap();
    let mut expected = vec![dropped.0, dropped.1];
    expected.sort();
    assert_eq!(removed, expected);
    assert!(kept.0.exists() && kept.1.exists());
}

#[test]
fn partials_older_than_a_day_and_orphaned_validators_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let cache = DiskCache::open(dir.path()).unwrap();
    let fresh = partial(&cache, URL, Duration::from_secs(3600));
    let stale = partial(
        &cache,
        "https://cdn.example.org/stale.mp3",
        MAX_PARTIAL_AGE + Duration::from_secs(60),
    );
    let orphan = partial(&cache, "https://cdn.example.org/gone.mp3", Duration::ZERO);
    fs::remove_file(&orphan.0).unwrap();
    // A clock set back makes a file look newer than now: kept, not an error.
    let future = partial(&cache, "https://cdn.example.org/future.mp3", Duration::ZERO);
    fs::File::options()
        .write(true)
        .open(&future.0)
        .unwrap()
        .set_modified(SystemTime::now() + Duration::from_secs(3600))
        .unwrap();
    fs::write(dir.path().join("partial").join("notes.txt"), b"not ours").unwrap();

    let removed = cache.prune_partials(SystemTime::now()).unwrap();

    let mut expected = vec![stale.0, stale.1, orphan.1];
    expected.sort();
    assert_eq!(removed, expected);
    for file in [&fresh.0, &fresh.1, &future.0, &future.1] {
        assert!(file.exists(), "{}", file.display());
    }
    assert!(dir.path().join("partial").join("notes.txt").exists());
}

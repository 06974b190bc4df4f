use std::fs;
use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};
use tempfile::TempDir;

use super::*;

const URL: &str = "https://cdn.example.org/services/2024-05-05.mp3";

fn cache() -> (TempDir, DiskCache) {
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = DiskCache::open(dir.path()).expect("open");
    (dir, cache)
}

fn validators(etag: &str) -> Validators {
    Validators {
        etag: Some(etag.to_string()),
        last_modified: None,
    }
}

/// Writes `content` where a download of `url` would land, as the fetcher does.
fn download(cache: &DiskCache, url: &str, content: &[u8]) -> PathBuf {
    let partial = cache.partial_path(url);
    fs::write(&partial, content).expect("write partial");
    partial
}

fn store(cache: &DiskCache, url: &str, content: &[u8], etag: &str) -> Entry {
    let partial = download(cache, url, content);
    cache
        .commit(url, &partial, validators(etag))
        .expect("commit")
}

fn snapshot(name: &str) -> Snapshot {
    let at: DateTime<Utc> = Utc.with_ymd_and_hms(2024, 5, 5, 9, 0, 0).unwrap();
    Snapshot {
        church_name: name.to_string(),
        services: vec![SnapshotService {
            title: Some("Morning Prayer".into()),
            datetime: at.fixed_offset(),
            url: URL.into(),
        }],
        schedule_validators: validators("\"s1\""),
        fetched_at: at,
        source: "https://cdn.example.org/data.json".into(),
    }
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in walk(dir) {
        out.push(
            entry
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned(),
        );
    }
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn temp_files(dir: &Path) -> Vec<String> {
    files(dir)
        .into_iter()
        .filter(|f| f.rsplit('/').next().unwrap().starts_with(TEMP_PREFIX))
        .collect()
}

#[test]
fn commit_then_get_round_trips() {
    let (_dir, cache) = cache();
    let content = b"ID3 not really an mp3".repeat(10_000);
    let partial = download(&cache, URL, &content);
    let stored = cache.commit(URL, &partial, validators("\"v1\"")).unwrap();

    assert_eq!(stored.path, cache.audio_path(URL));
    assert_eq!(stored.size, content.len() as u64);
    assert_eq!(stored.sha256, hex(&Sha256::digest(&content)));
    assert_eq!(fs::read(&stored.path).unwrap(), content);
    assert!(!partial.exists(), "the download moved into place");

    assert_eq!(cache.get(URL, false), Some(stored.clone()));
    assert_eq!(cache.get(URL, true), Some(stored));
    assert_eq!(cache.get("https://cdn.example.org/other.mp3", true), None);
}

#[test]
fn entries_and_snapshot_survive_reopen() {
    let (dir, cache) = cache();
    let stored = store(&cache, URL, b"sermon", "\"v1\"");
    cache.save_snapshot(&snapshot("St Mary")).unwrap();
    drop(cache);

    let reopened = DiskCache::open(dir.path()).unwrap();
    assert_eq!(reopened.get(URL, true), Some(stored));
    assert_eq!(reopened.load_snapshot(), Some(snapshot("St Mary")));
}

#[test]
fn recommit_replaces_content_and_validators() {
    let (_dir, cache) = cache();
    store(&cache, URL, b"first", "\"v1\"");
    let second = store(&cache, URL, b"second take", "\"v2\"");
    assert_eq!(cache.get(URL, true), Some(second.clone()));
    assert_eq!(fs::read(&second.path).unwrap(), b"second take");
}

#[test]
fn flipped_bytes_are_caught_by_a_deep_check_and_removed() {
    let (_dir, cache) = cache();
    let stored = store(&cache, URL, b"the whole service", "\"v1\"");
    let mut bytes = fs::read(&stored.path).unwrap();
    bytes[3] ^= 0xff;
    fs::write(&stored.path, &bytes).unwrap();

    assert_eq!(cache.get(URL, true), None);
    assert!(!stored.path.exists());
    assert!(!meta_path_of(&stored.path).exists());
    assert_eq!(cache.get(URL, true), None, "stays gone, no second warning");
}

#[test]
fn changed_mtime_triggers_a_checksum_even_without_deep() {
    let (_dir, cache) = cache();
    let stored = store(&cache, URL, b"the whole service", "\"v1\"");
    // Same size, different bytes, new mtime: only the checksum can tell.
    fs::write(&stored.path, b"the whole sermon!").unwrap();
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1);
    File::options()
        .write(true)
        .open(&stored.path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert_eq!(cache.get(URL, false), None);
    assert!(!stored.path.exists());
}

#[test]
fn touched_but_intact_file_is_rehashed_once_and_kept() {
    let (_dir, cache) = cache();
    let stored = store(&cache, URL, b"the whole service", "\"v1\"");
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1);
    File::options()
        .write(true)
        .open(&stored.path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert_eq!(cache.get(URL, false), Some(stored.clone()));
    let meta = read_meta(&meta_path_of(&stored.path)).unwrap();
    assert_eq!(meta.mtime_ns, Some(1_000_000_000), "new mtime recorded");
}

#[test]
fn truncated_file_is_caught_by_size_alone() {
    let (_dir, cache) = cache();
    let stored = store(&cache, URL, b"the whole service", "\"v1\"");
    File::options()
        .write(true)
        .open(&stored.path)
        .unwrap()
        .set_len(4)
        .unwrap();
    assert_eq!(cache.get(URL, false), None);
    assert!(!stored.path.exists());
}

#[test]
fn missing_or_garbage_meta_means_no_entry() {
    let (_dir, cache) = cache();
    let stored = store(&cache, URL, b"audio", "\"v1\"");
    let meta = meta_path_of(&stored.path);

    fs::remove_file(&meta).unwrap();
    assert_eq!(cache.get(URL, false), None);
    assert!(!stored.path.exists(), "an orphan audio file is removed");

    let stored = store(&cache, URL, b"audio", "\"v1\"");
    fs::write(&meta, b"{\"url\": 12, garbage").unwrap();
    assert_eq!(cache.get(URL, false), None);
    assert!(!stored.path.exists());
    assert!(!meta.exists());

    let stored = store(&cache, URL, b"audio", "\"v1\"");
    fs::write(&meta, vec![b' '; MAX_META_LEN as usize + 1]).unwrap();
    assert_eq!(cache.get(URL, false), None);
    assert!(!stored.path.exists());
}

#[test]
fn meta_of_another_url_is_rejected() {
    let (_dir, cache) = cache();
    let stored = store(&cache, URL, b"audio", "\"v1\"");
    let meta_path = meta_path_of(&stored.path);
    let mut meta = read_meta(&meta_path).unwrap();
    meta.url = "https://evil.example/x.mp3".into();
    fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();
    assert_eq!(cache.get(URL, false), None);
}

#[test]
fn missing_audio_with_meta_is_no_entry() {
    let (_dir, cache) = cache();
    let stored = store(&cache, URL, b"audio", "\"v1\"");
    fs::remove_file(&stored.path).unwrap();
    assert_eq!(cache.get(URL, false), None);
    assert!(!meta_path_of(&stored.path).exists());
}

#[test]
fn open_removes_stray_temp_files_but_keeps_partials_and_speech() {
    let dir = tempfile::tempdir().unwrap();
    let cache = DiskCache::open(dir.path()).unwrap();
    let stored = store(&cache, URL, b"good", "\"v1\"");
    let partial = download(&cache, "https://cdn.example.org/next.mp3", b"half a downl");
    fs::create_dir(dir.path().join("speech")).unwrap();
    fs::write(dir.path().join("speech").join(".tmp.1.2.x"), b"theirs").unwrap();
    // What a crash in the middle of each kind of write leaves.
    let name = stored.path.file_name().unwrap().to_string_lossy();
    let strays = [
        dir.path().join("audio").join(format!(".tmp.999.0.{name}")),
        dir.path()
            .join("audio")
            .join(format!(".tmp.999.1.{name}.meta")),
        dir.path().join(".tmp.999.2.schedule.json"),
        dir.path().join("partial").join(".tmp.999.3.x.part"),
    ];
    for stray in &strays {
        fs::write(stray, b"half written").unwrap();
    }
    drop(cache);

    let cache = DiskCache::open(dir.path()).unwrap();
    assert!(strays.iter().all(|s| !s.exists()));
    assert!(
        partial.exists(),
        "partial downloads are kept for resumption"
    );
    assert!(dir.path().join("speech").join(".tmp.1.2.x").exists());
    assert_eq!(cache.get(URL, true), Some(stored));
}

#[test]
fn crash_before_snapshot_rename_keeps_the_previous_snapshot() {
    let (dir, cache) = cache();
    cache.save_snapshot(&snapshot("St Mary")).unwrap();
    // The crash: a new snapshot half written to its temp file, never renamed.
    fs::write(
        dir.path().join(".tmp.4242.7.schedule.json"),
        b"{\"church_na",
    )
    .unwrap();
    drop(cache);

    let cache = DiskCache::open(dir.path()).unwrap();
    assert_eq!(cache.load_snapshot(), Some(snapshot("St Mary")));
    assert!(temp_files(dir.path()).is_empty());
}

#[test]
fn failed_snapshot_write_keeps_the_previous_and_leaves_no_temp() {
    let (dir, cache) = cache();
    cache.save_snapshot(&snapshot("St Mary")).unwrap();
    for at in [FailPoint::TempWrite, FailPoint::TempRename] {
        cache.fail_next(at);
        let error = cache.save_snapshot(&snapshot("St John")).unwrap_err();
        assert_eq!(error.code(), "cache.full", "{error}");
        assert!(error.to_string().contains("schedule.json"), "{error}");
        assert_eq!(cache.load_snapshot(), Some(snapshot("St Mary")));
        assert!(temp_files(dir.path()).is_empty());
    }
    cache.save_snapshot(&snapshot("St John")).unwrap();
    assert_eq!(cache.load_snapshot(), Some(snapshot("St John")));
}

#[test]
fn missing_or_garbage_snapshot_is_none() {
    let (dir, cache) = cache();
    assert_eq!(cache.load_snapshot(), None);
    fs::write(dir.path().join("schedule.json"), b"not json").unwrap();
    assert_eq!(cache.load_snapshot(), None);
}

#[test]
fn full_disk_while_writing_the_meta_keeps_the_previous_entry() {
    let (dir, cache) = cache();
    let first = store(&cache, URL, b"first", "\"v1\"");
    let partial = download(&cache, URL, b"second take");

    cache.fail_next(FailPoint::TempWrite);
    let error = cache
        .commit(URL, &partial, validators("\"v2\""))
        .unwrap_err();
    assert_eq!(error.code(), "cache.full");

    assert_eq!(cache.get(URL, false), Some(first.clone()));
    assert_eq!(cache.get(URL, true), Some(first));
    assert!(partial.exists(), "the download is kept for a retry");
    assert!(temp_files(dir.path()).is_empty());
}

#[test]
fn failure_between_meta_and_audio_renames_falls_back_to_the_previous_copy() {
    let (dir, cache) = cache();
    let first = store(&cache, URL, b"first", "\"v1\"");
    let partial = download(&cache, URL, b"second take");

    // The meta already names the new content; the old audio is still in place, as after
    // a crash between the two renames.
    cache.fail_next(FailPoint::AudioRename);
    assert!(cache.commit(URL, &partial, validators("\"v2\"")).is_err());
    drop(cache);

    let cache = DiskCache::open(dir.path()).unwrap();
    assert_eq!(cache.get(URL, false), Some(first.clone()));
    let healed = read_meta(&meta_path_of(&first.path)).unwrap();
    assert_eq!(healed.current.validators, validators("\"v1\""));
    assert_eq!(healed.previous, None);
    assert_eq!(cache.get(URL, true), Some(first));

    // The retry then completes.
    let second = cache.commit(URL, &partial, validators("\"v2\"")).unwrap();
    assert_eq!(cache.get(URL, true), Some(second));
}

#[test]
fn evict_keeps_exactly_the_listed_urls() {
    let (dir, cache) = cache();
    let urls = [
        "https://cdn.example.org/a.mp3",
        "https://cdn.example.org/b.m4a",
        "https://cdn.example.org/c",
    ];
    for url in urls {
        store(&cache, url, url.as_bytes(), "\"v1\"");
    }
    download(&cache, urls[0], b"newer a, half");
    let dropped_partial = download(&cache, "https://cdn.example.org/d.mp3", b"half");
    fs::write(dir.path().join("audio").join("notes.txt"), b"not ours").unwrap();
    fs::create_dir(dir.path().join("speech")).unwrap();
    fs::write(dir.path().join("speech").join("x.wav"), b"theirs").unwrap();

    let removed = cache.evict(&[urls[0], urls[2]]).unwrap();

    let b = cache.audio_path(urls[1]);
    let mut expected = vec![b.clone(), meta_path_of(&b), dropped_partial];
    expected.sort();
    assert_eq!(removed, expected);
    assert!(cache.get(urls[0], true).is_some());
    assert!(cache.get(urls[2], true).is_some());
    assert_eq!(cache.get(urls[1], true), None);
    assert!(cache.partial_path(urls[0]).exists());
    assert!(dir.path().join("audio").join("notes.txt").exists());
    assert!(dir.path().join("speech").join("x.wav").exists());

    assert_eq!(cache.evict(&[]).unwrap().len(), 5);
    assert_eq!(files(&dir.path().join("audio")), ["notes.txt"]);
    assert!(files(&dir.path().join("partial")).is_empty());
}

#[test]
fn url_paths_are_stable_contained_and_keep_the_extension() {
    let (dir, cache) = cache();
    let audio = dir.path().join("audio");
    let long = format!("https://cdn.example.org/{}.mp3", "a".repeat(10_000));
    let cases = [
        (URL, "mp3"),
        (
            "https://cdn.example.org/x/Service.M4A?token=abc/def.exe#t=10",
            "m4a",
        ),
        ("https://cdn.example.org/../../etc/passwd", "audio"),
        ("../../../../root/.ssh/id_rsa", "audio"),
        ("https://cdn.example.org/a.mp3/..", "audio"),
        ("https://cdn.example.org/play?file=sermon.mp3", "audio"),
        ("https://cdn.example.org/sermon.ogg#..%2f..%2f", "ogg"),
        ("https://cdn.example.org/dir.mp3/", "audio"),
        ("C:\\Windows\\evil.wav", "wav"),
        ("/absolute/sermon.flac\0.mp3", "mp3"),
        ("", "audio"),
        (long.as_str(), "mp3"),
    ];
    for (url, ext) in cases {
        let path = cache.audio_path(url);
        assert_eq!(path, cache.audio_path(url), "stable");
        assert_eq!(path.parent(), Some(audio.as_path()), "{url}");
        let name = path.file_name().unwrap().to_str().unwrap();
        let (key, got) = name.split_once('.').unwrap();
        assert!(is_key(key), "{name}");
        assert_eq!(got, ext, "{url}");
        let partial = cache.partial_path(url);
        assert_eq!(partial.parent(), Some(dir.path().join("partial").as_path()));
    }
    // Pinned, so a change of scheme (which would orphan every cached file) is deliberate.
    assert_eq!(
        cache.audio_path(URL).file_name().unwrap(),
        format!("{}.mp3", &hex(&Sha256::digest(URL.as_bytes()))[..32]).as_str()
    );
    assert_ne!(
        cache.audio_path("https://cdn.example.org/a.mp3"),
        cache.audio_path("https://cdn.example.org/a.mp3?v=2")
    );
}

#[test]
fn long_url_round_trips() {
    let (_dir, cache) = cache();
    let long = format!("https://cdn.example.org/{}.mp3?x=../../", "ä".repeat(5_000));
    let stored = store(&cache, &long, b"audio", "\"v1\"");
    assert_eq!(cache.get(&long, true), Some(stored));
}

#[test]
fn commit_of_a_missing_download_is_an_io_error() {
    let (_dir, cache) = cache();
    let missing = cache.partial_path(URL);
    let error = cache
        .commit(URL, &missing, Validators::default())
        .unwrap_err();
    assert_eq!(error.code(), "cache.io");
    assert!(error.to_string().contains(".part"), "{error}");
}

#[test]
fn killed_mid_download_the_previous_copy_is_served() {
    let (dir, cache) = cache();
    let first = store(&cache, URL, b"last week's good copy", "\"v1\"");
    let partial = download(&cache, URL, b"this week's, cut o");
    drop(cache);

    let cache = DiskCache::open(dir.path()).unwrap();
    assert_eq!(cache.get(URL, true), Some(first));
    assert_eq!(fs::read(&partial).unwrap(), b"this week's, cut o");
}

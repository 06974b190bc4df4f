//! Unit tests of the refresher: URL joins, and what it logs and keeps when
//! downloads fail (against ports nothing listens on; the loopback test
//! origin is for `tests/`).

use std::path::Path;

use super::downloads;
use super::*;
use crate::source::http::sidecar_path;

#[test]
fn relative_files_join_their_folder_url_encoded() {
    assert_eq!(
        join_url("https://p.example/dial/audio/", "2026-06-07 Trinity.mp3"),
        "https://p.example/dial/audio/2026-06-07%20Trinity.mp3"
    );
    assert_eq!(
        join_url("https://p.example/audio", "sub/a.mp3"),
        "https://p.example/audio/sub/a.mp3"
    );
}

/// Everything the line logs while the guard lives, as text.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    /// Captures this thread's events (a current-thread runtime runs the
    /// refresher here) at every level of the line's own modules.
    fn capture() -> (Log, tracing::subscriber::DefaultGuard) {
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("dial_a_service=trace")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (log, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

/// A loopback port nothing listens on: connecting is refused at once. It
/// stays bound (without listening) for the whole run, so no other test
/// can start listening on it in the meantime.
fn closed_port() -> u16 {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    socket.bind(&any.into()).expect("bind");
    let port = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .expect("local address")
        .port();
    std::mem::forget(socket);
    port
}

fn refresher(schedule: Location, audio: Location, cache: &Path) -> Refresher {
    let cache = DiskCache::open(cache).expect("cache");
    refresher_with(schedule, audio, cache)
}

fn refresher_with(schedule: Location, audio: Location, cache: DiskCache) -> Refresher {
    Refresher::new(
        RefresherConfig {
            schedule,
            audio,
            interval: Duration::from_secs(300),
            keep_latest: 5,
            timezone: chrono_tz::UTC,
            church_name: None,
        },
        Http::new(&super::super::http::HttpConfig::default()).expect("client"),
        Arc::new(cache),
        Arc::new(Published::default()),
    )
}

fn assert_no_secrets(log: &str) {
    for secret in ["secret", "token", "abc", "frag"] {
        assert!(!log.contains(secret), "{secret:?} logged:\n{log}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_failing_schedule_fetch_logs_no_credentials_or_query() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let url = format!("https://user:secret@127.0.0.1:{port}/dial/data.json?token=abc#frag");
    let (log, _guard) = Log::capture();
    let mut refresher = refresher(
        Location::Url(url.into()),
        Location::Path(dir.path().join("audio")),
        &dir.path().join("cache"),
    );
    refresher.restore().await;
    refresher.refresh_once().await;

    let log = log.text();
    assert!(log.contains("source.connect"), "{log}");
    assert!(
        log.contains(&format!("https://127.0.0.1:{port}/dial/data.json")),
        "{log}"
    );
    assert_no_secrets(&log);
}

#[tokio::test(flavor = "current_thread")]
async fn a_failing_download_logs_no_credentials_or_query() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let schedule = dir.path().join("data.json");
    std::fs::write(
        &schedule,
        format!(
            r#"{{ "church_name": "St Test's", "services": [
                {{ "title": "Evensong", "datetime": "2024-05-05T18:00:00+0100",
                   "file": "https://user:secret@127.0.0.1:{port}/a.mp3?token=abc#frag" }} ] }}"#
        ),
    )
    .unwrap();
    let (log, _guard) = Log::capture();
    let mut refresher = refresher(
        Location::Path(schedule),
        Location::Path(dir.path().join("audio")),
        &dir.path().join("cache"),
    );
    refresher.refresh_once().await;

    let log = log.text();
    assert!(log.contains("source.connect"), "{log}");
    assert!(
        log.contains(&format!("https://127.0.0.1:{port}/a.mp3")),
        "{log}"
    );
    assert_no_secrets(&log);
}

/// A local `data.json` naming `files` (services on consecutive past days).
fn schedule_naming(dir: &Path, files: &[String]) -> Location {
    let services: Vec<String> = files
        .iter()
        .enumerate()
        .map(|(n, file)| {
            format!(
                r#"{{ "datetime": "2024-05-{:02}T10:00:00+0100", "file": "{file}" }}"#,
                n + 1
            )
        })
        .collect();
    let path = dir.join("data.json");
    std::fs::write(
        &path,
        format!(
            r#"{{ "church_name": "St Test's", "services": [{}] }}"#,
            services.join(", ")
        ),
    )
    .unwrap();
    Location::Path(path)
}

#[tokio::test(flavor = "current_thread")]
async fn a_round_starts_only_a_few_downloads() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let files: Vec<String> = (0..5)
        .map(|n| format!("http://127.0.0.1:{port}/{n}.mp3"))
        .collect();
    let (log, _guard) = Log::capture();
    let mut refresher = refresher(
        schedule_naming(dir.path(), &files),
        Location::Path(dir.path().join("audio")),
        &dir.path().join("cache"),
    );
    refresher.refresh_once().await;

    let log = log.text();
    let attempts = log.matches("source.connect").count();
    assert_eq!(attempts, downloads::MAX_STARTS_PER_ROUND, "{log}");
    assert!(log.contains("the rest follows in the next rounds"), "{log}");
    // Newest first: the two oldest wait.
    for old in &files[..2] {
        assert!(!log.contains(old.as_str()), "{old} tried first:\n{log}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_failed_download_keeps_its_partial_only_if_it_can_resume() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let resumable = format!("http://127.0.0.1:{port}/resumable.mp3");
    let unprovable = format!("http://127.0.0.1:{port}/unprovable.mp3");
    let cache = DiskCache::open(&dir.path().join("cache")).unwrap();
    let partials = [
        cache.partial_path(&resumable),
        cache.partial_path(&unprovable),
    ];
    for part in &partials {
        std::fs::write(part, b"the first half").unwrap();
    }
    std::fs::write(
        sidecar_path(&partials[0]),
        br#"{"etag":"\"v1\"","last_modified":null}"#,
    )
    .unwrap();
    let mut refresher = refresher_with(
        schedule_naming(dir.path(), &[resumable, unprovable]),
        Location::Path(dir.path().join("audio")),
        cache,
    );
    refresher.refresh_once().await;

    assert!(partials[0].exists() && sidecar_path(&partials[0]).exists());
    assert!(
        !partials[1].exists(),
        "no validators: it could never resume"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_read_only_cache_is_served_and_nothing_is_downloaded_or_written() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let root = dir.path().join("cache");
    DiskCache::open(&root).unwrap();
    let refused = |_: &Path| Err(std::io::Error::from(std::io::ErrorKind::ReadOnlyFilesystem));
    let (log, _guard) = Log::capture();
    let cache = DiskCache::open_probing(&root, refused).unwrap();
    let mut refresher = refresher_with(
        schedule_naming(dir.path(), &[format!("http://127.0.0.1:{port}/a.mp3")]),
        Location::Path(dir.path().join("audio")),
        cache,
    );
    refresher.restore().await;
    refresher.refresh_once().await;

    let log = log.text();
    assert_eq!(log.matches("cache.read_only").count(), 1, "{log}");
    assert!(!log.contains("source.connect"), "{log}");
    assert!(!root.join("schedule.json").exists());
}

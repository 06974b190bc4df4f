//! Unit tests of the refresher: URL joins, and what it logs and keeps when
//! downloads fail (against ports nothing listens on; the loopback test
//! origin is for `tests/`).

use super::*;

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

#[test]
fn extensions_come_from_the_url_path() {
    assert_eq!(
        extension_of("https://x/a/sermon.MP3?v=2").as_deref(),
        Some("mp3")
    );
    assert_eq!(extension_of("https://x/a/feed"), None);
    assert_eq!(extension_of("https://x/a.b/c"), None);
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

/// A loopback port nothing listens on: connecting is refused at once.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local address").port()
}

fn refresher(schedule: Location, audio: Location, cache: &Path) -> Refresher {
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
        Arc::new(DiskCache::open(cache).expect("cache")),
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

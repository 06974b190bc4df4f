//! The download limits on a virtual clock, and which partial files are kept.

use std::fs;

use super::*;

const URL: &str = "https://cdn.example.org/a.mp3";

fn go(permit: Permit) -> Duration {
    match permit {
        Permit::Go { timeout } => timeout,
        other => panic!("expected to start, got {other:?}"),
    }
}

#[test]
fn a_round_starts_a_few_downloads_and_defers_the_rest() {
    let t0 = Instant::now();
    let mut downloads = Downloads::new(Duration::from_secs(300), t0);
    for n in 0..MAX_STARTS_PER_ROUND {
        go(downloads.permit(&format!("{URL}?{n}"), t0));
    }
    assert_eq!(downloads.permit(URL, t0), Permit::Deferred);
    downloads.start_round(t0 + Duration::from_secs(300));
    go(downloads.permit(URL, t0 + Duration::from_secs(300)));
}

#[test]
fn a_round_spends_at_most_its_budget() {
    let t0 = Instant::now();
    let mut downloads = Downloads::new(Duration::from_secs(300), t0);
    assert_eq!(
        go(downloads.permit("a", t0)),
        AUDIO_TIMEOUT.min(ROUND_BUDGET)
    );
    // The first took most of the budget: the next gets what is left.
    let later = t0 + ROUND_BUDGET - Duration::from_secs(60);
    assert_eq!(go(downloads.permit("b", later)), Duration::from_secs(60));
    assert_eq!(downloads.permit("c", t0 + ROUND_BUDGET), Permit::Deferred);
}

#[test]
fn failures_back_off_doubling_to_a_cap_and_progress_keeps_it_short() {
    let interval = Duration::from_secs(300);
    let mut now = Instant::now();
    let mut downloads = Downloads::new(interval, now);
    let mut delays = Vec::new();
    for _ in 0..10 {
        downloads.start_round(now);
        go(downloads.permit(URL, now));
        let delay = downloads.failed(URL, false, now);
        delays.push(delay.as_secs());
        downloads.start_round(now + delay - Duration::from_secs(1));
        assert_eq!(
            downloads.permit(URL, now + delay - Duration::from_secs(1)),
            Permit::BackingOff
        );
        now += delay;
    }
    assert_eq!(
        delays,
        [
            300, 600, 1200, 2400, 4800, 9600, 19_200, 21_600, 21_600, 21_600
        ]
    );
    assert_eq!(MAX_RETRY, Duration::from_secs(21_600));

    // A slow link cut off by the deadline is getting there: no doubling.
    downloads.start_round(now);
    go(downloads.permit(URL, now));
    assert_eq!(downloads.failed(URL, true, now), interval);

    downloads.succeeded(URL);
    downloads.start_round(now);
    go(downloads.permit(URL, now));
}

#[test]
fn urls_the_schedule_dropped_are_forgotten() {
    let now = Instant::now();
    let mut downloads = Downloads::new(Duration::from_secs(300), now);
    downloads.failed("a", false, now);
    downloads.failed("b", false, now);
    downloads.forget_others(&HashSet::from(["b"]));
    assert_eq!(
        downloads.permit("a", now),
        Permit::Go {
            timeout: AUDIO_TIMEOUT
        }
    );
    assert_eq!(downloads.permit("b", now), Permit::BackingOff);
}

/// A partial file with `bytes` and, if given, validators.
fn partial(dir: &Path, bytes: &[u8], validators: Option<&str>) -> std::path::PathBuf {
    let part = dir.join("x.part");
    fs::write(&part, bytes).unwrap();
    let _ = fs::remove_file(sidecar_path(&part));
    if let Some(json) = validators {
        fs::write(sidecar_path(&part), json).unwrap();
    }
    part
}

#[test]
fn only_a_resumable_partial_outlives_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let strong = Some(r#"{"etag":"\"v1\"","last_modified":null}"#);
    let dated = Some(r#"{"etag":null,"last_modified":"Sun, 05 May 2024 09:00:00 GMT"}"#);
    let weak_only = Some(r#"{"etag":"W/\"v1\"","last_modified":null}"#);
    let stalled = FetchError::Stalled {
        url: URL.into(),
        after: Duration::from_secs(60),
    };
    let status = |status| FetchError::Status {
        url: URL.into(),
        status,
    };
    let too_large = FetchError::TooLarge {
        url: URL.into(),
        limit: 1,
    };
    let cases: [(&FetchError, &[u8], Option<&str>, bool); 9] = [
        (&stalled, b"half", strong, true),
        (&stalled, b"half", dated, true),
        (&status(503), b"half", strong, true),
        (&stalled, b"half", weak_only, false),
        (&stalled, b"half", None, false),
        (&stalled, b"half", Some("garbage"), false),
        (&stalled, b"", strong, false),
        (&status(404), b"half", strong, false),
        (&too_large, b"half", strong, false),
    ];
    for (n, (error, bytes, validators, kept)) in cases.into_iter().enumerate() {
        let part = partial(dir.path(), bytes, validators);
        assert_eq!(keep_for_resumption(error, &part), kept, "case {n}: {error}");
    }
    let part = partial(dir.path(), b"half", strong);
    remove_partial(&part);
    assert!(!part.exists() && !sidecar_path(&part).exists());
    remove_partial(&part); // already gone: fine
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

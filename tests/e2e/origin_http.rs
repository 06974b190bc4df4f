//! `source::http` against a real origin on loopback: conditional GETs, every
//! certificate problem, statuses, stalls, size caps, refused connections,
//! DNS failures and resumed downloads, each named as the log must name it.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::TimeZone;
use common::origin::{CertKind, Origin};
use dial_a_service::source::http::{
    FetchError, Fetched, Http, HttpConfig, Validators, sidecar_path,
};

const LIMIT: u64 = 16 << 20;
const TIMEOUT: Duration = Duration::from_secs(10);

fn client(ca_file: Option<&std::path::Path>) -> Http {
    Http::new(&HttpConfig {
        ca_file: ca_file.map(|p| p.to_path_buf()),
        connect_timeout: Duration::from_secs(5),
        ..HttpConfig::default()
    })
    .expect("client")
}

async fn get(http: &Http, url: &str, validators: &Validators) -> Result<Fetched, FetchError> {
    http.fetch(url, validators, LIMIT, TIMEOUT).await
}

fn body(fetched: Fetched) -> (Vec<u8>, Validators) {
    match fetched {
        Fetched::Body {
            bytes, validators, ..
        } => (bytes, validators),
        Fetched::NotModified => panic!("expected a body, got 304"),
    }
}

/// Some bytes that differ at every offset, so a misplaced resume shows.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed)
        .collect()
}

#[tokio::test]
async fn etag_gives_200_then_304_then_200_when_changed() {
    let origin = Origin::http().await;
    origin.set("/data.json", b"{\"services\": []}".to_vec());
    let http = client(None);
    let url = origin.url("/data.json");

    let (bytes, validators) = body(get(&http, &url, &Validators::default()).await.unwrap());
    assert_eq!(bytes, b"{\"services\": []}");
    assert_eq!(validators.etag, origin.etag("/data.json"));

    let again = get(&http, &url, &validators).await.unwrap();
    assert_eq!(again, Fetched::NotModified);
    let request = origin.last_request("/data.json").unwrap();
    assert_eq!(request.header("if-none-match"), validators.etag.as_deref());

    origin.set("/data.json", b"{\"services\": [1]}".to_vec());
    let (bytes, newer) = body(get(&http, &url, &validators).await.unwrap());
    assert_eq!(bytes, b"{\"services\": [1]}");
    assert_ne!(newer.etag, validators.etag);
    assert_eq!(origin.request_count("/data.json"), 3);
}

#[tokio::test]
async fn last_modified_gives_200_then_304() {
    let origin = Origin::http().await;
    origin.send_validators(false, true);
    let noon = chrono::Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).unwrap();
    origin.set_modified("/data.json", b"v1".to_vec(), noon);
    let http = client(None);
    let url = origin.url("/data.json");

    let (_, validators) = body(get(&http, &url, &Validators::default()).await.unwrap());
    assert_eq!(validators.etag, None);
    assert_eq!(
        validators.last_modified.as_deref(),
        Some("Sun, 06 Dec 2026 12:00:00 GMT")
    );
    assert_eq!(
        get(&http, &url, &validators).await.unwrap(),
        Fetched::NotModified
    );
    let request = origin.last_request("/data.json").unwrap();
    assert_eq!(
        request.header("if-modified-since"),
        validators.last_modified.as_deref()
    );
    assert_eq!(request.header("if-none-match"), None);

    origin.set_modified(
        "/data.json",
        b"v2".to_vec(),
        noon + chrono::Duration::hours(1),
    );
    let (bytes, _) = body(get(&http, &url, &validators).await.unwrap());
    assert_eq!(bytes, b"v2");
}

fn certificate_reason(result: Result<Fetched, FetchError>) -> String {
    if let Err(error) = &result {
        eprintln!("{}: {error}", error.code());
    }
    match result {
        Err(FetchError::Certificate { reason, .. }) => reason,
        other => panic!("expected a certificate error, got {other:?}"),
    }
}

#[tokio::test]
async fn self_signed_certificate_is_named() {
    let origin = Origin::https(CertKind::SelfSigned).await;
    origin.set("/a", b"a".to_vec());
    for http in [client(None), client(Some(origin.ca_file()))] {
        let error = get(&http, &origin.url("/a"), &Validators::default()).await;
        assert_eq!(certificate_reason(error), "self-signed or unknown issuer");
    }
}

#[tokio::test]
async fn expired_certificate_is_named() {
    let origin = Origin::https(CertKind::Expired).await;
    origin.set("/a", b"a".to_vec());
    let http = client(Some(origin.ca_file()));
    let error = get(&http, &origin.url("/a"), &Validators::default()).await;
    let reason = certificate_reason(error);
    assert!(reason.starts_with("expired"), "{reason}");
    assert!(reason.contains("2021-01-01"), "{reason}");
}

#[tokio::test]
async fn wrong_host_certificate_is_named() {
    let origin = Origin::https(CertKind::WrongHost).await;
    origin.set("/a", b"a".to_vec());
    let http = client(Some(origin.ca_file()));
    let error = get(&http, &origin.url("/a"), &Validators::default()).await;
    let reason = certificate_reason(error);
    assert_eq!(
        reason,
        "not valid for host 127.0.0.1 (it names example.org)"
    );
}

#[tokio::test]
async fn valid_certificate_needs_the_ca_file() {
    let origin = Origin::https(CertKind::Valid).await;
    origin.set("/a", b"hello".to_vec());
    let error = get(&client(None), &origin.url("/a"), &Validators::default()).await;
    assert_eq!(certificate_reason(error), "self-signed or unknown issuer");

    let http = client(Some(origin.ca_file()));
    for url in [origin.url("/a"), origin.url_for_host("localhost", "/a")] {
        let (bytes, _) = body(get(&http, &url, &Validators::default()).await.unwrap());
        assert_eq!(bytes, b"hello", "{url}");
    }
}

/// Collects what `tracing` logs, to check the insecure warning is loud.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn insecure_skip_verify_accepts_self_signed_and_warns_each_start() {
    let origin = Origin::https(CertKind::SelfSigned).await;
    origin.set("/a", b"hello".to_vec());
    let config = HttpConfig {
        insecure_skip_verify: true,
        ..HttpConfig::default()
    };
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let (first, _second) = tracing::subscriber::with_default(subscriber, || {
        (Http::new(&config).unwrap(), Http::new(&config).unwrap())
    });
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        text.matches("source.insecure_tls").count(),
        2,
        "one warning per client built:\n{text}"
    );
    assert!(text.contains("WARN"), "{text}");

    let (bytes, _) = body(
        get(&first, &origin.url("/a"), &Validators::default())
            .await
            .unwrap(),
    );
    assert_eq!(bytes, b"hello");
}

#[tokio::test]
async fn certificate_swapped_while_running_is_caught_and_recovers() {
    let origin = Origin::https(CertKind::Valid).await;
    origin.set("/a", b"hello".to_vec());
    let http = client(Some(origin.ca_file()));
    let url = origin.url("/a");
    assert!(get(&http, &url, &Validators::default()).await.is_ok());

    origin.swap_certificate(CertKind::Expired);
    let error = get(&http, &url, &Validators::default()).await.unwrap_err();
    assert_eq!(error.code(), "source.certificate", "{error}");

    origin.swap_certificate(CertKind::Valid);
    assert!(get(&http, &url, &Validators::default()).await.is_ok());
}

#[tokio::test]
async fn error_statuses_are_named() {
    let origin = Origin::http().await;
    origin.set("/a", b"a".to_vec());
    origin.set("/b", b"b".to_vec());
    let http = client(None);
    let status = |result: Result<Fetched, FetchError>| match result {
        Err(FetchError::Status { status, .. }) => status,
        other => panic!("expected a status error, got {other:?}"),
    };

    origin.fail_with(500);
    let error = get(&http, &origin.url("/a"), &Validators::default())
        .await
        .unwrap_err();
    assert_eq!(error.code(), "source.http_status");
    assert!(error.to_string().contains("500"), "{error}");
    origin.heal();

    origin.fail_path("/a", 404);
    assert_eq!(
        status(get(&http, &origin.url("/a"), &Validators::default()).await),
        404
    );
    assert!(
        get(&http, &origin.url("/b"), &Validators::default())
            .await
            .is_ok()
    );
    origin.heal();
    assert_eq!(
        status(get(&http, &origin.url("/missing"), &Validators::default()).await),
        404
    );
}

#[tokio::test]
async fn a_stalled_origin_times_out_on_time() {
    for origin in [Origin::http().await, Origin::https(CertKind::Valid).await] {
        origin.set("/a", b"a".to_vec());
        origin.stall(Duration::from_secs(30));
        let http = client(Some(origin.ca_file()));
        let timeout = Duration::from_millis(500);
        let started = Instant::now();
        let result = http
            .fetch(&origin.url("/a"), &Validators::default(), LIMIT, timeout)
            .await;
        let took = started.elapsed();
        match result {
            Err(FetchError::Timeout { after, .. }) => assert_eq!(after, timeout),
            other => panic!("expected a timeout, got {other:?}"),
        }
        // Slack for a loaded 2-core CI machine.
        assert!(
            took >= timeout && took < timeout + Duration::from_secs(1),
            "{took:?}"
        );
    }
}

#[tokio::test]
async fn a_silent_connection_is_dropped_as_stalled_before_the_deadline() {
    let origin = Origin::http().await;
    origin.set("/a.mp3", b"a".to_vec());
    origin.stall(Duration::from_secs(30));
    let stall = Duration::from_millis(300);
    let config = HttpConfig {
        connect_timeout: Duration::from_secs(5),
        ..HttpConfig::default()
    };
    let http = Http::with_stall_timeout(&config, stall).expect("client");
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let result = http
        .download(
            &origin.url("/a.mp3"),
            &dir.path().join("a.part"),
            &Validators::default(),
            LIMIT,
            Duration::from_secs(20),
        )
        .await;
    let took = started.elapsed();
    match &result {
        Err(error @ FetchError::Stalled { after, .. }) => {
            assert_eq!(*after, stall);
            assert_eq!(error.code(), "source.stalled");
            assert!(error.is_transient(), "worth resuming later");
        }
        other => panic!("expected a stall, got {other:?}"),
    }
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn an_oversized_body_is_refused_without_reading_it_all() {
    let origin = Origin::http().await;
    let size = 64 << 20;
    origin.set("/big.mp3", vec![7u8; size]);
    let http = client(None);
    let limit = 1 << 20;

    // Declared too large: refused before the body.
    let result = http
        .fetch(
            &origin.url("/big.mp3"),
            &Validators::default(),
            limit,
            TIMEOUT,
        )
        .await;
    assert!(
        matches!(result, Err(FetchError::TooLarge { limit: l, .. }) if l == limit),
        "{result:?}"
    );

    // Undeclared: stopped once past the limit.
    origin.hide_length(true);
    let sent_before = origin.body_bytes_sent();
    let error = http
        .fetch(
            &origin.url("/big.mp3"),
            &Validators::default(),
            limit,
            TIMEOUT,
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), "source.too_large", "{error}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = origin.body_bytes_sent() - sent_before;
    assert!(sent < size as u64 / 4, "the origin sent {sent} bytes");

    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join("big.mp3.partial");
    let error = http
        .download(
            &origin.url("/big.mp3"),
            &partial,
            &Validators::default(),
            limit,
            TIMEOUT,
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), "source.too_large", "{error}");
    assert!(std::fs::metadata(&partial).unwrap().len() <= limit);
}

#[tokio::test]
async fn a_refused_connection_is_named_and_a_restart_recovers() {
    let mut origin = Origin::http().await;
    origin.set("/a", b"a".to_vec());
    let http = client(None);
    origin.stop().await;
    match get(&http, &origin.url("/a"), &Validators::default()).await {
        Err(FetchError::Connect { reason, .. }) => assert_eq!(reason, "connection refused"),
        other => panic!("expected a connect error, got {other:?}"),
    }
    origin.restart().await;
    assert!(
        get(&http, &origin.url("/a"), &Validators::default())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn an_unresolvable_host_is_a_dns_error() {
    let http = client(None);
    let result = http
        .fetch(
            "http://no-such-host.invalid/data.json",
            &Validators::default(),
            LIMIT,
            Duration::from_secs(30),
        )
        .await;
    assert!(matches!(result, Err(FetchError::Dns { .. })), "{result:?}");
    eprintln!("{}", result.unwrap_err());
}

#[tokio::test]
async fn redirects_are_followed_within_limits() {
    let origin = Origin::http().await;
    origin.set("/new/data.json", b"moved".to_vec());
    origin.redirect("/data.json", &origin.url("/new/data.json"));
    let http = client(None);
    match get(&http, &origin.url("/data.json"), &Validators::default()).await {
        Ok(Fetched::Body {
            bytes, final_url, ..
        }) => {
            assert_eq!(bytes, b"moved");
            assert_eq!(final_url, origin.url("/new/data.json"));
        }
        other => panic!("expected the moved body, got {other:?}"),
    }

    origin.redirect("/ftp", "ftp://127.0.0.1/data.json");
    origin.redirect("/loop", &origin.url("/loop"));
    for path in ["/ftp", "/loop"] {
        let error = get(&http, &origin.url(path), &Validators::default())
            .await
            .unwrap_err();
        eprintln!("{}: {error}", error.code());
        assert_eq!(error.code(), "source.redirect", "{error}");
    }
    assert_eq!(origin.request_count("/loop"), 6);
}

#[tokio::test]
async fn a_redirect_from_https_to_http_is_refused() {
    let plain = Origin::http().await;
    plain.set("/data.json", b"from plain http".to_vec());
    let secure = Origin::https(CertKind::Valid).await;
    secure.set("/new/data.json", b"moved, still https".to_vec());
    secure.redirect("/data.json", &plain.url("/data.json?token=abc"));
    secure.redirect("/moved.json", &secure.url("/new/data.json"));
    let http = client(Some(secure.ca_file()));

    let error = get(&http, &secure.url("/data.json"), &Validators::default())
        .await
        .unwrap_err();
    assert_eq!(error.code(), "source.insecure_redirect", "{error}");
    let shown = error.to_string();
    eprintln!("{shown}");
    assert!(shown.contains(&secure.url("/data.json")), "{shown}");
    assert!(shown.contains(&plain.url("/data.json")), "{shown}");
    assert!(!shown.contains("token"), "{shown}");
    assert_eq!(
        plain.request_count("/data.json"),
        0,
        "never asked over http"
    );

    // https to https, and http up to https, are followed.
    let moved = get(&http, &secure.url("/moved.json"), &Validators::default()).await;
    assert!(moved.is_ok(), "{moved:?}");
    plain.redirect("/up.json", &secure.url("/new/data.json"));
    let up = get(&http, &plain.url("/up.json"), &Validators::default()).await;
    assert!(up.is_ok(), "{up:?}");
}

/// `http(s)://user:secret@127.0.0.1:PORT/path?token=abc#frag`.
fn with_secrets(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    format!("{scheme}://user:secret@{rest}?token=abc#frag")
}

#[tokio::test]
async fn failures_never_show_credentials_or_query() {
    let origin = Origin::http().await;
    origin.redirect("/ftp", "ftp://user:secret@127.0.0.1/x?token=abc");
    let mut stopped = Origin::http().await;
    stopped.stop().await;
    let bad_certificate = Origin::https(CertKind::SelfSigned).await;
    let http = client(None);
    let mut codes = Vec::new();
    for url in [
        with_secrets(&origin.url("/missing.json")),
        with_secrets(&origin.url("/ftp")),
        with_secrets(&stopped.url("/data.json")),
        with_secrets(&bad_certificate.url("/data.json")),
        "https://user:secret@no-such-host.invalid/data.json?token=abc".to_owned(),
        "https://user:secret@/data.json?token=abc".to_owned(),
    ] {
        let error = get(&http, &url, &Validators::default()).await.unwrap_err();
        for shown in [error.to_string(), format!("{error:?}")] {
            assert!(
                !shown.contains("secret") && !shown.contains("abc") && !shown.contains("frag"),
                "{shown}"
            );
        }
        eprintln!("{}: {error}", error.code());
        codes.push(error.code());
    }
    assert_eq!(
        codes,
        [
            "source.http_status",
            "source.redirect",
            "source.connect",
            "source.certificate",
            "source.dns",
            "source.bad_url"
        ]
    );
    let shown = get(
        &http,
        &with_secrets(&origin.url("/missing.json")),
        &Validators::default(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(shown.contains(&origin.url("/missing.json")), "{shown}");

    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join("x.part");
    let error = http
        .download(
            &with_secrets(&origin.url("/missing.mp3")),
            &partial,
            &Validators::default(),
            LIMIT,
            TIMEOUT,
        )
        .await
        .unwrap_err();
    assert!(!format!("{error} {error:?}").contains("secret"), "{error}");
}

#[tokio::test]
async fn other_schemes_are_bad_urls() {
    let error = get(&client(None), "ftp://127.0.0.1/a", &Validators::default())
        .await
        .unwrap_err();
    assert_eq!(error.code(), "source.bad_url");
}

#[tokio::test]
async fn an_interrupted_download_resumes_to_the_exact_bytes() {
    let origin = Origin::http().await;
    let audio = pattern(300_000, 1);
    origin.set("/service.mp3", audio.clone());
    let http = client(None);
    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join("service.mp3.partial");
    let url = origin.url("/service.mp3");

    origin.cut_body_after(100_000);
    let error = http
        .download(&url, &partial, &Validators::default(), LIMIT, TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "source.body", "{error}");
    eprintln!("{error}");
    let kept = std::fs::read(&partial).unwrap();
    assert_eq!(kept.len(), 100_000);
    assert_eq!(kept, audio[..100_000]);
    assert!(sidecar_path(&partial).exists());

    origin.heal();
    let done = http
        .download(&url, &partial, &Validators::default(), LIMIT, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(done.resumed_from, 100_000);
    assert_eq!(done.bytes, 300_000);
    assert_eq!(done.validators.etag, origin.etag("/service.mp3"));
    let request = origin.last_request("/service.mp3").unwrap();
    assert_eq!(request.header("range"), Some("bytes=100000-"));
    assert_eq!(request.header("if-range"), done.validators.etag.as_deref());
    assert_eq!(std::fs::read(&partial).unwrap(), audio);
}

#[tokio::test]
async fn a_download_starts_over_when_the_file_changed_meanwhile() {
    let origin = Origin::http().await;
    origin.set("/service.mp3", pattern(200_000, 1));
    let http = client(None);
    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join("service.mp3.partial");
    let url = origin.url("/service.mp3");

    origin.cut_body_after(50_000);
    assert!(
        http.download(&url, &partial, &Validators::default(), LIMIT, TIMEOUT)
            .await
            .is_err()
    );
    origin.heal();
    let changed = pattern(250_000, 2);
    origin.set("/service.mp3", changed.clone());
    let done = http
        .download(&url, &partial, &Validators::default(), LIMIT, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(done.resumed_from, 0);
    assert_eq!(done.bytes, 250_000);
    assert_eq!(std::fs::read(&partial).unwrap(), changed);
}

#[tokio::test]
async fn a_stalled_download_times_out() {
    let origin = Origin::http().await;
    origin.set("/service.mp3", pattern(10_000, 3));
    origin.stall(Duration::from_secs(30));
    let http = client(None);
    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join("service.mp3.partial");
    let started = Instant::now();
    let error = http
        .download(
            &origin.url("/service.mp3"),
            &partial,
            &Validators::default(),
            LIMIT,
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), "source.timeout", "{error}");
    assert!(started.elapsed() < Duration::from_secs(1));
}

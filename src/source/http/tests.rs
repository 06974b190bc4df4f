//! Unit tests of the parts of `http` that need no server; the rest is in
//! `tests/e2e/origin_http.rs` against a real origin.

use super::error::certificate_reason;
use super::*;
use rustls::CertificateError;
use rustls::pki_types::{ServerName, UnixTime};

#[test]
fn only_http_and_https_urls_are_fetched() {
    for url in [
        "ftp://example.org/x",
        "file:///etc/passwd",
        "not a url",
        "http://",
    ] {
        let error = check_url(url).expect_err(url);
        assert_eq!(error.code(), "source.bad_url", "{url}: {error}");
    }
    assert!(check_url("https://example.org/data.json").is_ok());
    assert!(check_url("http://127.0.0.1:8080/a.mp3").is_ok());
}

#[test]
fn content_range_start_is_parsed() {
    assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
    assert_eq!(content_range_start("bytes 0-0/1"), Some(0));
    assert_eq!(content_range_start("bytes */200"), None);
    assert_eq!(content_range_start("items 1-2/3"), None);
    assert_eq!(content_range_start(""), None);
}

#[test]
fn if_range_never_uses_a_weak_etag() {
    let strong = Validators {
        etag: Some("\"abc\"".into()),
        last_modified: Some("Tue, 01 Dec 2026 10:00:00 GMT".into()),
    };
    assert_eq!(strong.if_range(), Some("\"abc\""));
    let weak = Validators {
        etag: Some("W/\"abc\"".into()),
        ..strong.clone()
    };
    assert_eq!(weak.if_range(), Some("Tue, 01 Dec 2026 10:00:00 GMT"));
    let weak_only = Validators {
        etag: Some("W/\"abc\"".into()),
        last_modified: None,
    };
    assert_eq!(weak_only.if_range(), None);
    assert_eq!(Validators::default().if_range(), None);
}

#[test]
fn certificate_problems_are_named() {
    use CertificateError::*;
    assert_eq!(
        certificate_reason(&UnknownIssuer),
        "self-signed or unknown issuer"
    );
    let expired = ExpiredContext {
        time: UnixTime::since_unix_epoch(Duration::from_secs(1_700_000_000)),
        not_after: UnixTime::since_unix_epoch(Duration::from_secs(1_600_000_000)),
    };
    assert_eq!(
        certificate_reason(&expired),
        "expired at 2020-09-13T12:26:40+00:00"
    );
    let wrong_host = NotValidForNameContext {
        expected: ServerName::try_from("127.0.0.1").unwrap(),
        presented: vec!["DnsName(\"example.org\")".into()],
    };
    assert_eq!(
        certificate_reason(&wrong_host),
        "not valid for host 127.0.0.1 (it names example.org)"
    );
}

#[test]
fn a_missing_ca_file_is_named() {
    let config = HttpConfig {
        ca_file: Some("/no/such/parish-ca.pem".into()),
        ..HttpConfig::default()
    };
    let error = Http::new(&config).err().expect("a missing CA file fails");
    assert_eq!(error.code(), "source.ca_file");
    assert!(
        error.to_string().contains("/no/such/parish-ca.pem"),
        "{error}"
    );
}

#[test]
fn a_ca_file_without_certificates_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, "this is not PEM\n").unwrap();
    let config = HttpConfig {
        ca_file: Some(path.clone()),
        ..HttpConfig::default()
    };
    let error = Http::new(&config).err().expect("an empty CA file fails");
    assert_eq!(error.code(), "source.ca_file");
    assert!(error.to_string().contains("no PEM certificate"), "{error}");
}

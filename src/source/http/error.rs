//! `FetchError`, and how a reqwest failure becomes one: by the types in its
//! cause chain (rustls, io, hyper-util via reqwest's predicates), never by
//! its message text.

use std::error::Error as StdError;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use rustls::CertificateError;

use crate::source::redact_url;
use rustls::pki_types::UnixTime;

/// Every `url` here is as shown in logs: without credentials, query or
/// fragment ([`redact_url`]), so an error can be logged or displayed as is.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("bad url {url}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("dns lookup failed for {url}: {reason}")]
    Dns { url: String, reason: String },
    #[error("could not connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("certificate rejected for {url}: {reason}")]
    Certificate { url: String, reason: String },
    #[error("tls failed for {url}: {reason}")]
    Tls { url: String, reason: String },
    #[error("{url} answered http {status}")]
    Status { url: String, status: u16 },
    #[error("{url} timed out after {after:?}")]
    Timeout { url: String, after: Duration },
    #[error("{url} sent nothing for {after:?}: the connection stalled")]
    Stalled { url: String, after: Duration },
    #[error("{url} is larger than the limit of {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("redirect from {url} refused: {reason}")]
    Redirect { url: String, reason: String },
    #[error("redirect from {url} to {to} refused: it leaves https for plain http")]
    InsecureRedirect { url: String, to: String },
    #[error("{url} broke off before its answer: {reason}")]
    Protocol { url: String, reason: String },
    #[error("reading the body of {url} failed: {reason}")]
    Body { url: String, reason: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("ca_file {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("http client could not be built: {reason}")]
    Client { reason: String },
}

impl FetchError {
    /// A stable name for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            FetchError::BadUrl { .. } => "source.bad_url",
            FetchError::Dns { .. } => "source.dns",
            FetchError::Connect { .. } => "source.connect",
            FetchError::Certificate { .. } => "source.certificate",
            FetchError::Tls { .. } => "source.tls",
            FetchError::Status { .. } => "source.http_status",
            FetchError::Timeout { .. } => "source.timeout",
            FetchError::Stalled { .. } => "source.stalled",
            FetchError::TooLarge { .. } => "source.too_large",
            FetchError::Redirect { .. } => "source.redirect",
            FetchError::InsecureRedirect { .. } => "source.insecure_redirect",
            FetchError::Protocol { .. } => "source.protocol",
            FetchError::Body { .. } => "source.body",
            FetchError::Io { .. } => "source.io",
            FetchError::CaFile { .. } => "source.ca_file",
            FetchError::Client { .. } => "source.client",
        }
    }
}

impl FetchError {
    /// Whether the same request may well work later, with what already arrived still
    /// good: the network, TLS or the server had trouble. Not: the URL, the size, a
    /// redirect, the disk, or a 4xx answer (the resource is gone or forbidden), which
    /// another try would meet again or which say nothing for the bytes kept.
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Dns { .. }
            | FetchError::Connect { .. }
            | FetchError::Certificate { .. }
            | FetchError::Tls { .. }
            | FetchError::Timeout { .. }
            | FetchError::Stalled { .. }
            | FetchError::Protocol { .. }
            | FetchError::Body { .. } => true,
            // Request Timeout, Too Many Requests and server errors pass.
            FetchError::Status { status, .. } => *status >= 500 || matches!(status, 408 | 429),
            FetchError::BadUrl { .. }
            | FetchError::TooLarge { .. }
            | FetchError::Redirect { .. }
            | FetchError::InsecureRedirect { .. }
            | FetchError::Io { .. }
            | FetchError::CaFile { .. }
            | FetchError::Client { .. } => false,
        }
    }
}

/// Why the redirect policy refused to follow; found again by [`classify`]
/// in the error's causes. Targets are already redacted.
#[derive(Debug, thiserror::Error)]
pub(super) enum RedirectRefused {
    #[error("more than {0} redirects")]
    TooMany(usize),
    #[error("redirect to {0} is not http or https")]
    Scheme(String),
    #[error("redirect to {to} leaves https for plain http")]
    Insecure { to: String },
}

/// The causes of `error`, itself first. `io::Error::source` skips the error
/// it wraps, so that one is followed instead: rustls' errors hide there,
/// inside an `io::Error` that hyper-rustls wraps in another.
fn causes<'a>(error: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(error);
    while let Some(cause) = next {
        out.push(cause);
        next = match cause.downcast_ref::<io::Error>().and_then(|e| e.get_ref()) {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => cause.source(),
        };
    }
    out
}

pub(super) fn root_cause<'a>(error: &'a (dyn StdError + 'static)) -> &'a (dyn StdError + 'static) {
    *causes(error).last().expect("causes holds the error itself")
}

/// Names a reqwest failure by the types in its cause chain.
pub(super) fn classify(
    url: &str,
    error: &reqwest::Error,
    connect_timeout: Duration,
    stall_timeout: Duration,
) -> FetchError {
    let url = redact_url(url);
    let chain = causes(error);
    // A TLS cause is the most specific thing to say, so it wins.
    if let Some(tls) = chain.iter().find_map(|c| c.downcast_ref::<rustls::Error>()) {
        return match tls {
            rustls::Error::InvalidCertificate(problem) => FetchError::Certificate {
                url,
                reason: certificate_reason(problem),
            },
            other => FetchError::Tls {
                url,
                reason: other.to_string(),
            },
        };
    }
    if let Some(refused) = chain
        .iter()
        .find_map(|c| c.downcast_ref::<RedirectRefused>())
    {
        return match refused {
            RedirectRefused::Insecure { to } => FetchError::InsecureRedirect {
                url,
                to: to.clone(),
            },
            other => FetchError::Redirect {
                url,
                reason: other.to_string(),
            },
        };
    }
    let reason = root_cause(error).to_string();
    if error.is_timeout() && error.is_connect() {
        FetchError::Timeout {
            url,
            after: connect_timeout,
        }
    } else if error.is_timeout() {
        // The client's read timeout: nothing arrived for that long.
        FetchError::Stalled {
            url,
            after: stall_timeout,
        }
    } else if error.is_dns() {
        FetchError::Dns { url, reason }
    } else if error.is_connect() {
        // "connection refused" reads better than the OS's "(os error 111)".
        let kind = chain
            .iter()
            .find_map(|c| c.downcast_ref::<io::Error>())
            .map(io::Error::kind)
            .filter(|kind| *kind != io::ErrorKind::Other);
        let reason = kind.map_or(reason, |kind| kind.to_string());
        FetchError::Connect { url, reason }
    } else if error.is_redirect() {
        FetchError::Redirect { url, reason }
    } else if error.is_body() || error.is_decode() {
        FetchError::Body { url, reason }
    } else if error.is_builder() {
        FetchError::BadUrl { url, reason }
    } else {
        FetchError::Protocol { url, reason }
    }
}

pub(super) fn certificate_reason(problem: &CertificateError) -> String {
    use CertificateError::*;
    match problem {
        UnknownIssuer => "self-signed or unknown issuer".to_string(),
        Expired => "expired".to_string(),
        ExpiredContext { not_after, .. } => format!("expired at {}", utc(*not_after)),
        NotValidYet => "not valid yet (is the clock right?)".to_string(),
        NotValidYetContext { not_before, .. } => {
            format!("not valid until {} (is the clock right?)", utc(*not_before))
        }
        NotValidForName => "not valid for this host name".to_string(),
        NotValidForNameContext {
            expected,
            presented,
        } => format!(
            "not valid for host {} (it names {})",
            expected.to_str(),
            presented
                .iter()
                .map(|name| san_text(name))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Revoked => "revoked".to_string(),
        BadSignature => "bad signature".to_string(),
        InvalidPurpose | InvalidPurposeContext { .. } => {
            "not issued for server authentication".to_string()
        }
        other => other.to_string(),
    }
}

/// rustls renders the names a certificate presents as `DnsName("a.b")`;
/// the log wants `a.b`.
fn san_text(name: &str) -> &str {
    ["DnsName(\"", "IpAddress(\""]
        .iter()
        .find_map(|prefix| name.strip_prefix(prefix)?.strip_suffix("\")"))
        .unwrap_or(name)
}

fn utc(time: UnixTime) -> String {
    let secs = i64::try_from(time.as_secs()).unwrap_or(i64::MAX);
    chrono::DateTime::from_timestamp(secs, 0)
        .map_or_else(|| format!("{secs} s after 1970"), |t| t.to_rfc3339())
}

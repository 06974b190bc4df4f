//! The HTTP(S) client the background fetcher uses: conditional GETs, capped
//! bodies, resumable downloads, and a precise name for every failure.
//!
//! The old line went silent for days behind a CDN's invalid certificate, so
//! failures are classified by type (DNS, connect, certificate and which
//! problem, TLS, status, timeout, size), never by matching message text, and
//! certificate checking is only ever off with a loud warning at every start.
//!
//! TLS is rustls with *ring* (lighter to build than aws-lc-rs), trusting the
//! platform's root store (Debian's `ca-certificates`, kept current by apt)
//! plus an optional parish CA file. Conditional requests follow RFC 9110
//! §13.1; resumption uses `Range` with `If-Range` (§14.2, §13.1.5).

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{
    CONTENT_RANGE, ETAG, HeaderMap, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, LAST_MODIFIED,
    RANGE,
};
use reqwest::{StatusCode, Url};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::AsyncWriteExt;
use tokio::time::{Instant, timeout_at};

/// More hops than any CDN needs; a loop fails fast instead of until the timeout.
const MAX_REDIRECTS: usize = 5;

/// The first allocation for a body, whatever Content-Length claims.
const MAX_PREALLOCATE: u64 = 1 << 20;

pub struct HttpConfig {
    /// Extra trusted CA certificates (PEM), for a parish that runs its own CA.
    pub ca_file: Option<PathBuf>,
    /// Trust any certificate. Logged as a warning every time a client is built.
    pub insecure_skip_verify: bool,
    pub connect_timeout: Duration,
    pub user_agent: String,
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            ca_file: None,
            insecure_skip_verify: false,
            connect_timeout: Duration::from_secs(10),
            user_agent: concat!("dial-a-service/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

/// What a server said identifies this version of a resource (RFC 9110 §8.8).
#[derive(Clone, Default, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl Validators {
    fn from_headers(headers: &HeaderMap) -> Validators {
        let text = |name| {
            headers
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        Validators {
            etag: text(ETAG),
            last_modified: text(LAST_MODIFIED),
        }
    }

    /// The value for `If-Range`: a weak ETag may not be used there (§13.1.5),
    /// so fall back to the date.
    fn if_range(&self) -> Option<&str> {
        match (&self.etag, &self.last_modified) {
            (Some(etag), _) if !etag.starts_with("W/") => Some(etag),
            (_, Some(date)) => Some(date),
            _ => None,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Fetched {
    NotModified,
    Body {
        bytes: Vec<u8>,
        validators: Validators,
        final_url: String,
    },
}

#[derive(Debug, PartialEq, Eq)]
pub struct Downloaded {
    /// The length of the partial file now.
    pub bytes: u64,
    /// How many bytes were already there and kept (0 when started over).
    pub resumed_from: u64,
    pub validators: Validators,
}

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
    #[error("{url} is larger than the limit of {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("redirect from {url} refused: {reason}")]
    Redirect { url: String, reason: String },
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
            FetchError::TooLarge { .. } => "source.too_large",
            FetchError::Redirect { .. } => "source.redirect",
            FetchError::Protocol { .. } => "source.protocol",
            FetchError::Body { .. } => "source.body",
            FetchError::Io { .. } => "source.io",
            FetchError::CaFile { .. } => "source.ca_file",
            FetchError::Client { .. } => "source.client",
        }
    }
}

pub struct Http {
    client: reqwest::Client,
    connect_timeout: Duration,
}

impl Http {
    pub fn new(config: &HttpConfig) -> Result<Http, FetchError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports TLS 1.2 and 1.3");
        let tls = if config.insecure_skip_verify {
            tracing::warn!(
                code = "source.insecure_tls",
                "insecure_skip_verify is set: certificates are NOT checked, so any server, \
                 an impostor included, is trusted for the parish's content; fix the server's \
                 certificate or set ca_file, then turn this off"
            );
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
                .with_no_client_auth()
        } else {
            builder
                .with_root_certificates(roots(config.ca_file.as_deref())?)
                .with_no_client_auth()
        };
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(config.user_agent.as_str())
            .connect_timeout(config.connect_timeout)
            .redirect(redirect_policy())
            // Proxies are not configured here; a stray HTTPS_PROXY must not
            // route the parish's content (or the tests) elsewhere.
            .no_proxy()
            .build()
            .map_err(|e| FetchError::Client {
                reason: root_cause(&e).to_string(),
            })?;
        Ok(Http {
            client,
            connect_timeout: config.connect_timeout,
        })
    }

    /// GET with If-None-Match / If-Modified-Since from `validators`; body capped at `max_bytes`, whole request bounded by `timeout`.
    pub async fn fetch(
        &self,
        url: &str,
        validators: &Validators,
        max_bytes: u64,
        timeout: Duration,
    ) -> Result<Fetched, FetchError> {
        let parsed = check_url(url)?;
        let deadline = Instant::now() + timeout;
        let mut request = self.client.get(parsed);
        if let Some(etag) = &validators.etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        if let Some(date) = &validators.last_modified {
            request = request.header(IF_MODIFIED_SINCE, date);
        }
        let mut response = self.send(url, request, deadline, timeout).await?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        if !status.is_success() {
            return Err(status_error(url, status));
        }
        check_length(url, response.content_length(), max_bytes)?;
        let validators = Validators::from_headers(response.headers());
        let final_url = response.url().to_string();
        let capacity = response.content_length().unwrap_or(0).min(MAX_PREALLOCATE);
        let mut bytes = Vec::with_capacity(capacity as usize);
        while let Some(chunk) = self.chunk(url, &mut response, deadline, timeout).await? {
            if (bytes.len() + chunk.len()) as u64 > max_bytes {
                return Err(too_large(url, max_bytes));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Fetched::Body {
            bytes,
            validators,
            final_url,
        })
    }

    /// Downloads `url` into `partial` (appending: resumes with `Range: bytes=N-` + `If-Range` when `partial` already has N bytes and the server answers 206; starts over on 200), capped at `max_bytes`, bounded by `timeout`. Never leaves a file the caller might mistake for complete: the caller renames it after checking.
    ///
    /// On an error, what arrived stays in `partial` for the next attempt,
    /// and the validators of the version it holds stay in a sidecar
    /// `<partial>.validators` (JSON), written when a download starts over:
    /// the caller cannot know them after a failure. They prove to the server
    /// (`If-Range`) that the bytes kept are of the current version. Without
    /// a sidecar, `validators` (the caller's word for what `partial` holds)
    /// are used; with neither, a partial file starts over.
    pub async fn download(
        &self,
        url: &str,
        partial: &Path,
        validators: &Validators,
        max_bytes: u64,
        timeout: Duration,
    ) -> Result<Downloaded, FetchError> {
        let parsed = check_url(url)?;
        // Each network wait is bounded by one deadline, but file writes are
        // never cancelled half-way, so `partial` is always a clean prefix.
        let deadline = Instant::now() + timeout;
        let io_error = |source| FetchError::Io {
            path: partial.to_path_buf(),
            source,
        };
        let mut have = match tokio::fs::metadata(partial).await {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_error(e)),
        };
        let sidecar = sidecar_path(partial);
        let recorded = match tokio::fs::read(&sidecar).await {
            Ok(json) => serde_json::from_slice::<Validators>(&json).ok(),
            Err(_) => None,
        };
        let kept = recorded.as_ref().unwrap_or(validators);
        let (mut response, resumed_from) = loop {
            let mut request = self.client.get(parsed.clone());
            let if_range = kept.if_range().filter(|_| have > 0);
            if let Some(if_range) = if_range {
                request = request
                    .header(RANGE, format!("bytes={have}-"))
                    .header(IF_RANGE, if_range);
            }
            let response = self.send(url, request, deadline, timeout).await?;
            match response.status() {
                StatusCode::PARTIAL_CONTENT if if_range.is_some() => {
                    let start = response
                        .headers()
                        .get(CONTENT_RANGE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(content_range_start);
                    if start != Some(have) {
                        // Not the range asked for: start over next time.
                        truncate(partial).await.map_err(io_error)?;
                        return Err(FetchError::Body {
                            url: url.to_string(),
                            reason: format!("asked for bytes {have}- but got {start:?}"),
                        });
                    }
                    break (response, have);
                }
                // The partial file is longer than the resource, which
                // therefore changed: start over.
                StatusCode::RANGE_NOT_SATISFIABLE if if_range.is_some() => {
                    truncate(partial).await.map_err(io_error)?;
                    have = 0;
                }
                status if status.is_success() => break (response, 0),
                status => return Err(status_error(url, status)),
            }
        };
        let declared = response.content_length().map(|len| resumed_from + len);
        check_length(url, declared, max_bytes)?;
        let mut validators = Validators::from_headers(response.headers());
        if resumed_from > 0 && validators == Validators::default() {
            // A 206 need not repeat them; If-Range proved they still hold.
            validators = kept.clone();
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(resumed_from > 0)
            .truncate(resumed_from == 0)
            .open(partial)
            .await
            .map_err(io_error)?;
        if resumed_from == 0 {
            // Only once `partial` is empty, so the two never disagree.
            let json = serde_json::to_vec(&validators).expect("validators serialise to JSON");
            tokio::fs::write(&sidecar, json)
                .await
                .map_err(|source| FetchError::Io {
                    path: sidecar.clone(),
                    source,
                })?;
        }
        let mut written = resumed_from;
        let streamed = async {
            while let Some(chunk) = self.chunk(url, &mut response, deadline, timeout).await? {
                if written + chunk.len() as u64 > max_bytes {
                    return Err(too_large(url, max_bytes));
                }
                file.write_all(&chunk).await.map_err(io_error)?;
                written += chunk.len() as u64;
            }
            Ok(())
        }
        .await;
        // Flush even after a failure, so the next attempt resumes from all
        // that arrived.
        let flushed = file.flush().await.map_err(io_error);
        streamed?;
        flushed?;
        file.sync_all().await.map_err(io_error)?;
        Ok(Downloaded {
            bytes: written,
            resumed_from,
            validators,
        })
    }

    async fn send(
        &self,
        url: &str,
        request: reqwest::RequestBuilder,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<reqwest::Response, FetchError> {
        match timeout_at(deadline, request.send()).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(classify(url, &e, self.connect_timeout)),
            Err(_) => Err(timed_out(url, timeout)),
        }
    }

    async fn chunk(
        &self,
        url: &str,
        response: &mut reqwest::Response,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Option<bytes::Bytes>, FetchError> {
        match timeout_at(deadline, response.chunk()).await {
            Ok(Ok(chunk)) => Ok(chunk),
            Ok(Err(e)) => Err(classify(url, &e, self.connect_timeout)),
            Err(_) => Err(timed_out(url, timeout)),
        }
    }
}

fn check_url(url: &str) -> Result<Url, FetchError> {
    let bad = |reason: &str| FetchError::BadUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let parsed = Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad(&format!(
            "scheme {} is not http or https",
            parsed.scheme()
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    Ok(parsed)
}

fn check_length(url: &str, declared: Option<u64>, max_bytes: u64) -> Result<(), FetchError> {
    match declared {
        Some(len) if len > max_bytes => Err(too_large(url, max_bytes)),
        _ => Ok(()),
    }
}

fn too_large(url: &str, limit: u64) -> FetchError {
    FetchError::TooLarge {
        url: url.to_string(),
        limit,
    }
}

fn timed_out(url: &str, after: Duration) -> FetchError {
    FetchError::Timeout {
        url: url.to_string(),
        after,
    }
}

fn status_error(url: &str, status: StatusCode) -> FetchError {
    FetchError::Status {
        url: url.to_string(),
        status: status.as_u16(),
    }
}

/// Where `download` keeps the validators of what `partial` holds.
pub fn sidecar_path(partial: &Path) -> PathBuf {
    let mut name = partial.as_os_str().to_owned();
    name.push(".validators");
    PathBuf::from(name)
}

async fn truncate(path: &Path) -> io::Result<()> {
    tokio::fs::write(path, b"").await
}

/// The first byte of `Content-Range: bytes START-END/TOTAL` (RFC 9110 §14.4).
fn content_range_start(value: &str) -> Option<u64> {
    let range = value.trim().strip_prefix("bytes ")?;
    let (start, _) = range.split_once('-')?;
    start.trim().parse().ok()
}

/// The platform's roots plus the parish's CA file.
fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, FetchError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::warn!(code = "source.root_store", %error, "a system root certificate could not be read");
    }
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let ca_error = |reason: String| FetchError::CaFile {
            path: path.to_path_buf(),
            reason,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| ca_error(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ca_error(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_error("no PEM certificate in the file".to_string()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| ca_error(e.to_string()))?;
        }
    }
    if roots.is_empty() {
        tracing::warn!(
            code = "source.root_store",
            "no trusted root certificates (install ca-certificates or set ca_file): \
             every https fetch will fail"
        );
    }
    Ok(roots)
}

/// Errors a redirect policy raises, found again by `classify`.
#[derive(Debug)]
struct RedirectRefused(String);

impl fmt::Display for RedirectRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for RedirectRefused {}

fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            let reason = format!("more than {MAX_REDIRECTS} redirects");
            attempt.error(RedirectRefused(reason))
        } else if !matches!(attempt.url().scheme(), "http" | "https") {
            let reason = format!("redirect to {} is not http or https", attempt.url());
            attempt.error(RedirectRefused(reason))
        } else {
            attempt.follow()
        }
    })
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

fn root_cause<'a>(error: &'a (dyn StdError + 'static)) -> &'a (dyn StdError + 'static) {
    *causes(error).last().expect("causes holds the error itself")
}

/// Names a reqwest failure by the types in its cause chain.
fn classify(url: &str, error: &reqwest::Error, connect_timeout: Duration) -> FetchError {
    let url = url.to_string();
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
    let reason = root_cause(error).to_string();
    if error.is_timeout() && error.is_connect() {
        FetchError::Timeout {
            url,
            after: connect_timeout,
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

fn certificate_reason(problem: &CertificateError) -> String {
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
            presented.join(", ")
        ),
        Revoked => "revoked".to_string(),
        BadSignature => "bad signature".to_string(),
        InvalidPurpose | InvalidPurposeContext { .. } => {
            "not issued for server authentication".to_string()
        }
        other => other.to_string(),
    }
}

fn utc(time: UnixTime) -> String {
    let secs = i64::try_from(time.as_secs()).unwrap_or(i64::MAX);
    chrono::DateTime::from_timestamp(secs, 0)
        .map_or_else(|| format!("{secs} s after 1970"), |t| t.to_rfc3339())
}

/// `insecure_skip_verify`: trusts any certificate, but still checks the
/// handshake signatures so the session keys belong to that certificate.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests;

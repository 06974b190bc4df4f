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

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{
    CONTENT_RANGE, ETAG, HeaderMap, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, LAST_MODIFIED,
    RANGE,
};
use reqwest::{StatusCode, Url};
use tokio::io::AsyncWriteExt;
use tokio::time::{Instant, timeout_at};

mod error;
mod tls;

use super::redact_url;
pub use error::FetchError;
use error::{RedirectRefused, classify, root_cause};

/// More hops than any CDN needs; a loop fails fast instead of until the timeout.
const MAX_REDIRECTS: usize = 5;

/// A connection that sends nothing for this long is given up on, well
/// before a download's total deadline: the next attempt resumes it.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);

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

    /// Whether a download holding this version can be resumed: there is something to
    /// send in `If-Range`.
    pub fn can_resume(&self) -> bool {
        self.if_range().is_some()
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

pub struct Http {
    client: reqwest::Client,
    connect_timeout: Duration,
    stall_timeout: Duration,
}

impl Http {
    pub fn new(config: &HttpConfig) -> Result<Http, FetchError> {
        Http::with_stall_timeout(config, STALL_TIMEOUT)
    }

    /// As [`Http::new`], giving up on a silent connection after `stall`
    /// instead of [`STALL_TIMEOUT`] (for tests, which cannot wait a minute).
    pub fn with_stall_timeout(config: &HttpConfig, stall: Duration) -> Result<Http, FetchError> {
        let tls = tls::client_config(config)?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(config.user_agent.as_str())
            .connect_timeout(config.connect_timeout)
            .read_timeout(stall)
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
            stall_timeout: stall,
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

    /// Whether `url` can be fetched: a GET given up once the answer's head
    /// has come (a HEAD is refused by some servers), proving name, route,
    /// certificate and status without downloading. The length, if told.
    pub async fn reachable(&self, url: &str, timeout: Duration) -> Result<Option<u64>, FetchError> {
        let parsed = check_url(url)?;
        let deadline = Instant::now() + timeout;
        let response = self
            .send(url, self.client.get(parsed), deadline, timeout)
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(status_error(url, status));
        }
        Ok(response.content_length())
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
                            url: redact_url(url),
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
                // Bytes from the middle, unasked: appending them would corrupt.
                StatusCode::PARTIAL_CONTENT => {
                    return Err(FetchError::Protocol {
                        url: redact_url(url),
                        reason: "206 partial content to a request without Range".to_string(),
                    });
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

    /// Names a reqwest failure; without its URL, as reqwest's message
    /// would quote it whole.
    fn classify(&self, url: &str, error: reqwest::Error) -> FetchError {
        classify(
            url,
            &error.without_url(),
            self.connect_timeout,
            self.stall_timeout,
        )
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
            Ok(Err(e)) => Err(self.classify(url, e)),
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
            Ok(Err(e)) => Err(self.classify(url, e)),
            Err(_) => Err(timed_out(url, timeout)),
        }
    }
}

fn check_url(url: &str) -> Result<Url, FetchError> {
    let bad = |reason: &str| FetchError::BadUrl {
        url: redact_url(url),
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
        url: redact_url(url),
        limit,
    }
}

fn timed_out(url: &str, after: Duration) -> FetchError {
    FetchError::Timeout {
        url: redact_url(url),
        after,
    }
}

fn status_error(url: &str, status: StatusCode) -> FetchError {
    FetchError::Status {
        url: redact_url(url),
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

fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let refused = if attempt.previous().len() > MAX_REDIRECTS {
            Some(RedirectRefused::TooMany(MAX_REDIRECTS))
        } else if !matches!(attempt.url().scheme(), "http" | "https") {
            Some(RedirectRefused::Scheme(redact_url(attempt.url().as_str())))
        } else if attempt.url().scheme() == "http"
            && attempt
                .previous()
                .last()
                .is_some_and(|from| from.scheme() == "https")
        {
            // The parish chose https; a hop to plain http would hand the
            // schedule and audio to anyone on the path to rewrite.
            Some(RedirectRefused::Insecure {
                to: redact_url(attempt.url().as_str()),
            })
        } else {
            None
        };
        match refused {
            Some(refused) => attempt.error(refused),
            None => attempt.follow(),
        }
    })
}

#[cfg(test)]
mod tests;

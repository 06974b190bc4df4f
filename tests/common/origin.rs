//! A test origin: serves files from a map over HTTP or HTTPS on 127.0.0.1,
//! with switches for every failure the line must name (bad certificates,
//! statuses, stalls, bodies cut off, a stopped server).
//!
//! Hand-written HTTP/1.1 rather than hyper's server: misbehaving on purpose
//! (promising a length and closing early, accepting and never answering) is
//! simpler without a framework that gets it right. One request per
//! connection (`Connection: close`). Certificates are made with rcgen at
//! start: a CA, a leaf for 127.0.0.1/localhost signed by it, a self-signed
//! leaf, an expired leaf and a leaf for example.org, both signed by the CA.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    date_time_ymd,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Which certificate an HTTPS origin presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CertKind {
    /// For 127.0.0.1 and localhost, signed by the test CA (trust it with `ca_file`).
    Valid,
    /// For 127.0.0.1 and localhost, signed by itself.
    SelfSigned,
    /// Signed by the test CA, but valid only during 2020.
    Expired,
    /// Signed by the test CA, for example.org only.
    WrongHost,
}

/// A request as the origin saw it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names in lower case, in the order sent.
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

struct File {
    bytes: Arc<Vec<u8>>,
    etag: String,
    modified: DateTime<Utc>,
}

struct State {
    files: HashMap<String, File>,
    fail_all: Option<u16>,
    fail_paths: HashMap<String, u16>,
    redirects: HashMap<String, String>,
    stall: Option<Duration>,
    cut_after: Option<usize>,
    hide_length: bool,
    send_etag: bool,
    send_last_modified: bool,
    cert: CertKind,
    requests: Vec<Request>,
}

pub struct Origin {
    state: Arc<Mutex<State>>,
    /// Server configs by certificate; `None` for plain HTTP.
    tls: Option<Arc<HashMap<CertKind, Arc<ServerConfig>>>>,
    port: u16,
    task: Option<JoinHandle<()>>,
    body_bytes_sent: Arc<AtomicU64>,
    ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Origin {
    /// A plain HTTP origin.
    pub async fn http() -> Origin {
        Origin::start(None).await
    }

    /// An HTTPS origin presenting `cert`.
    pub async fn https(cert: CertKind) -> Origin {
        Origin::start(Some(cert)).await
    }

    async fn start(cert: Option<CertKind>) -> Origin {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_file = dir.path().join("test-ca.pem");
        let configs = make_certificates(&ca_file);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        let mut origin = Origin {
            state: Arc::new(Mutex::new(State {
                files: HashMap::new(),
                fail_all: None,
                fail_paths: HashMap::new(),
                redirects: HashMap::new(),
                stall: None,
                cut_after: None,
                hide_length: false,
                send_etag: true,
                send_last_modified: true,
                cert: cert.unwrap_or(CertKind::Valid),
                requests: Vec::new(),
            })),
            tls: cert.map(|_| Arc::new(configs)),
            port,
            task: None,
            body_bytes_sent: Arc::new(AtomicU64::new(0)),
            ca_file,
            _dir: dir,
        };
        origin.listen(listener);
        origin
    }

    fn listen(&mut self, listener: TcpListener) {
        let state = self.state.clone();
        let tls = self.tls.clone();
        let sent = self.body_bytes_sent.clone();
        self.task = Some(tokio::spawn(async move {
            // Dropped with this task on `stop`, which aborts every connection.
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                connections.spawn(connection(stream, state.clone(), tls.clone(), sent.clone()));
                while connections.try_join_next().is_some() {}
            }
        }));
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http(s)://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        self.url_for_host("127.0.0.1", path)
    }

    /// The same origin under another host name (e.g. `localhost`).
    pub fn url_for_host(&self, host: &str, path: &str) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let path = path.trim_start_matches('/');
        format!("{scheme}://{host}:{}/{path}", self.port)
    }

    /// The test CA in PEM, for `ca_file`.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("origin state lock")
    }

    /// Serves `bytes` at `path`, modified now.
    pub fn set(&self, path: &str, bytes: impl Into<Vec<u8>>) {
        self.set_modified(path, bytes, Utc::now());
    }

    /// Serves `bytes` at `path` with this Last-Modified.
    pub fn set_modified(&self, path: &str, bytes: impl Into<Vec<u8>>, modified: DateTime<Utc>) {
        let bytes = bytes.into();
        let hash = Sha256::digest(&bytes);
        let etag = format!(
            "\"{}\"",
            hash[..12]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let file = File {
            bytes: Arc::new(bytes),
            etag,
            modified: modified.trunc_subsecs(0),
        };
        self.state().files.insert(normalise(path), file);
    }

    pub fn remove(&self, path: &str) {
        self.state().files.remove(&normalise(path));
    }

    /// The strong ETag served for `path`.
    pub fn etag(&self, path: &str) -> Option<String> {
        self.state()
            .files
            .get(&normalise(path))
            .map(|f| f.etag.clone())
    }

    /// Every path answers `status`.
    pub fn fail_with(&self, status: u16) {
        self.state().fail_all = Some(status);
    }

    /// `path` answers `status`.
    pub fn fail_path(&self, path: &str, status: u16) {
        self.state().fail_paths.insert(normalise(path), status);
    }

    /// `path` answers 302 to `location`.
    pub fn redirect(&self, path: &str, location: &str) {
        self.state()
            .redirects
            .insert(normalise(path), location.to_string());
    }

    /// Accept each connection, then send nothing (not even a TLS handshake)
    /// for `hold`.
    pub fn stall(&self, hold: Duration) {
        self.state().stall = Some(hold);
    }

    /// Send the headers (with the full Content-Length) and only the first
    /// `bytes` of each body, then close.
    pub fn cut_body_after(&self, bytes: usize) {
        self.state().cut_after = Some(bytes);
    }

    /// Send no Content-Length: the body ends when the connection closes.
    pub fn hide_length(&self, hide: bool) {
        self.state().hide_length = hide;
    }

    /// Whether responses carry ETag / Last-Modified.
    pub fn send_validators(&self, etag: bool, last_modified: bool) {
        let mut state = self.state();
        state.send_etag = etag;
        state.send_last_modified = last_modified;
    }

    /// Clears failures, stalls and cuts.
    pub fn heal(&self) {
        let mut state = self.state();
        state.fail_all = None;
        state.fail_paths.clear();
        state.stall = None;
        state.cut_after = None;
    }

    /// New connections get `cert` (the seed's outage: the CDN's certificate
    /// turns invalid while the line runs).
    pub fn swap_certificate(&self, cert: CertKind) {
        assert!(self.tls.is_some(), "swap_certificate on an HTTP origin");
        self.state().cert = cert;
    }

    /// Closes the listener and every connection: the port refuses.
    pub async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port, with the same files and switches.
    pub async fn restart(&mut self) {
        self.stop().await;
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("rebind the same port");
        self.listen(listener);
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Request> {
        self.state().requests.clone()
    }

    /// Requests for `path` so far.
    pub fn request_count(&self, path: &str) -> usize {
        let path = normalise(path);
        self.state()
            .requests
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    pub fn last_request(&self, path: &str) -> Option<Request> {
        let path = normalise(path);
        self.state()
            .requests
            .iter()
            .rev()
            .find(|r| r.path == path)
            .cloned()
    }

    /// Body bytes written to sockets so far, over all responses.
    pub fn body_bytes_sent(&self) -> u64 {
        self.body_bytes_sent.load(Ordering::Relaxed)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn normalise(path: &str) -> String {
    format!("/{}", path.trim_start_matches('/'))
}

async fn connection(
    stream: TcpStream,
    state: Arc<Mutex<State>>,
    tls: Option<Arc<HashMap<CertKind, Arc<ServerConfig>>>>,
    sent: Arc<AtomicU64>,
) {
    let (stall, cert) = {
        let state = state.lock().expect("origin state lock");
        (state.stall, state.cert)
    };
    if let Some(hold) = stall {
        tokio::time::sleep(hold).await;
        return;
    }
    // Errors end the connection and nothing else: a client refusing the
    // certificate, or hanging up on an oversized body, is what tests want.
    match tls {
        Some(configs) => {
            let acceptor = TlsAcceptor::from(configs[&cert].clone());
            if let Ok(stream) = acceptor.accept(stream).await {
                let _ = serve(stream, &state, &sent).await;
            }
        }
        None => {
            let _ = serve(stream, &state, &sent).await;
        }
    }
}

/// Reads one request and answers it.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    state: &Mutex<State>,
    sent: &AtomicU64,
) -> io::Result<()> {
    let Some(request) = read_request(&mut stream).await? else {
        return Ok(());
    };
    let (head, body, cut) = {
        let mut state = state.lock().expect("origin state lock");
        state.requests.push(request.clone());
        let (head, body) = respond(&state, &request);
        (head, body, state.cut_after)
    };
    stream.write_all(head.as_bytes()).await?;
    let body = match cut {
        Some(cut) => &body[..cut.min(body.len())],
        None => &body[..],
    };
    for chunk in body.chunks(64 * 1024) {
        stream.write_all(chunk).await?;
        sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
    stream.flush().await?;
    stream.shutdown().await
}

async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Option<Request>> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        if buffer.len() > 64 * 1024 {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..end]);
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_string();
    let target = request_line.next().unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/").to_string();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Some(Request {
        method,
        path,
        headers,
    }))
}

/// The response head and body for `request`.
fn respond(state: &State, request: &Request) -> (String, Arc<Vec<u8>>) {
    let empty = Arc::new(Vec::new());
    let failure = state
        .fail_paths
        .get(&request.path)
        .copied()
        .or(state.fail_all);
    if let Some(status) = failure {
        return (head(status, &[], Some(0)), empty);
    }
    if let Some(location) = state.redirects.get(&request.path) {
        let location = [("Location", location.clone())];
        return (head(302, &location, Some(0)), empty);
    }
    let Some(file) = state.files.get(&request.path) else {
        return (head(404, &[], Some(0)), empty);
    };
    let modified = file
        .modified
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let mut validators = Vec::new();
    if state.send_etag {
        validators.push(("ETag", file.etag.clone()));
    }
    if state.send_last_modified {
        validators.push(("Last-Modified", modified.clone()));
    }
    if not_modified(file, request) {
        return (head(304, &validators, None), empty);
    }
    let len = file.bytes.len();
    let length = (!state.hide_length).then_some(len);
    let Some(start) = range_start(file, &modified, request) else {
        return (head(200, &validators, length), file.bytes.clone());
    };
    if start >= len {
        let range = [("Content-Range", format!("bytes */{len}"))];
        return (head(416, &range, Some(0)), empty);
    }
    validators.push(("Content-Range", format!("bytes {start}-{}/{len}", len - 1)));
    let rest = Arc::new(file.bytes[start..].to_vec());
    let length = length.map(|_| len - start);
    (head(206, &validators, length), rest)
}

/// RFC 9110 §13.1.2-3: If-None-Match wins; If-Modified-Since only without it.
fn not_modified(file: &File, request: &Request) -> bool {
    if let Some(tags) = request.header("if-none-match") {
        return tags
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == file.etag);
    }
    request
        .header("if-modified-since")
        .and_then(|date| DateTime::parse_from_rfc2822(date).ok())
        .is_some_and(|since| file.modified <= since)
}

/// The start of a `Range: bytes=N-` (or `N-M`, served to the end), unless
/// `If-Range` names another version (RFC 9110 §13.1.5).
fn range_start(file: &File, modified: &str, request: &Request) -> Option<usize> {
    let range = request.header("range")?.strip_prefix("bytes=")?;
    if let Some(if_range) = request.header("if-range")
        && if_range != file.etag
        && if_range != modified
    {
        return None;
    }
    range.split_once('-')?.0.trim().parse().ok()
}

fn head(status: u16, headers: &[(&str, String)], length: Option<usize>) -> String {
    let reason = match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        304 => "Not Modified",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        500 => "Internal Server Error",
        _ => "Status",
    };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(length) = length {
        head.push_str(&format!("Content-Length: {length}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// Makes the test CA (written to `ca_file`) and a server config per kind.
fn make_certificates(ca_file: &Path) -> HashMap<CertKind, Arc<ServerConfig>> {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "dial-a-service test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    std::fs::write(ca_file, ca.pem()).expect("write the CA file");
    let issuer = Issuer::new(ca_params, ca_key);
    let local = || vec!["127.0.0.1".to_string(), "localhost".to_string()];
    [
        (CertKind::Valid, leaf(local(), Some(&issuer), false)),
        (CertKind::SelfSigned, leaf(local(), None, false)),
        (CertKind::Expired, leaf(local(), Some(&issuer), true)),
        (
            CertKind::WrongHost,
            leaf(vec!["example.org".into()], Some(&issuer), false),
        ),
    ]
    .into_iter()
    .collect()
}

fn leaf(
    names: Vec<String>,
    issuer: Option<&Issuer<'_, KeyPair>>,
    expired: bool,
) -> Arc<ServerConfig> {
    let key = KeyPair::generate().expect("leaf key");
    let mut params = CertificateParams::new(names).expect("leaf params");
    params
        .distinguished_name
        .push(DnType::CommonName, "dial-a-service test origin");
    if expired {
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2021, 1, 1);
    }
    let cert = match issuer {
        Some(issuer) => params.signed_by(&key, issuer),
        None => params.self_signed(&key),
    }
    .expect("leaf certificate");
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::clone(cert.der())], key_der)
        .expect("server config");
    Arc::new(config)
}

//! The admin listener's HTTP/1.1: one GET or HEAD per connection, then
//! close. Hand-written around `httparse` (hyper's own request parser)
//! rather than a hyper server because three read-only pages need no
//! keep-alive, bodies or upgrades, and every bound is then plain to see:
//!
//! - a request head of at most [`MAX_HEAD_BYTES`] and [`MAX_HEADERS`]
//!   headers (431 past that), no body read;
//! - the whole head within a time of connecting, however it trickles in
//!   (slowloris), and the answer written within another ([`Limits`]);
//! - a few connections at once; more are closed at once, unanswered.
//!
//! It runs as its own task and reads shared state only: nothing here can
//! hold up the SIP loop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

pub const MAX_HEAD_BYTES: usize = 8 * 1024;
pub const MAX_HEADERS: usize = 32;

/// How many connections and for how long; [`Limits::DEFAULT`] in the line.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    /// From connecting to the end of the request head.
    pub head_timeout: Duration,
    pub write_timeout: Duration,
}

impl Limits {
    /// A phone's browser on a slow link sends a head in well under a second.
    pub const DEFAULT: Limits = Limits {
        max_connections: 32,
        head_timeout: Duration::from_secs(5),
        write_timeout: Duration::from_secs(10),
    };
}

/// The pages there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Status,
    Health,
    Metrics,
}

/// An answer, before it is framed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{body}\n"),
        }
    }
}

/// Renders the pages; the admin module's `Admin` in the line.
pub trait Pages: Send + Sync + 'static {
    fn reply(self: Arc<Self>, page: Page) -> impl Future<Output = Reply> + Send;
}

/// What the bytes so far make of a request head.
#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    Incomplete,
    Complete { method: String, path: String },
    Invalid,
    TooLarge,
}

pub fn parse_head(bytes: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => Head::Complete {
            method: request.method.unwrap_or_default().to_owned(),
            path: request.path.unwrap_or_default().to_owned(),
        },
        Ok(httparse::Status::Partial) if bytes.len() >= MAX_HEAD_BYTES => Head::TooLarge,
        Ok(httparse::Status::Partial) => Head::Incomplete,
        Err(httparse::Error::TooManyHeaders) => Head::TooLarge,
        Err(_) => Head::Invalid,
    }
}

/// Which page a request asks for, or the refusal it gets.
pub fn route(method: &str, path: &str) -> Result<Page, Reply> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let page = match path {
        "/" => Page::Status,
        "/healthz" => Page::Health,
        "/metrics" => Page::Metrics,
        _ => return Err(Reply::text(404, "not found: try /, /healthz or /metrics")),
    };
    match method {
        "GET" | "HEAD" => Ok(page),
        _ => Err(Reply::text(405, "only GET and HEAD")),
    }
}

/// The bytes on the wire; HEAD gets the headers alone.
pub fn frame(reply: &Reply, head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\nX-Content-Type-Options: nosniff\r\n\
         Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'\r\n",
        reply.status,
        reason(reply.status),
        reply.content_type,
        reply.body.len()
    );
    if reply.status == 405 {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(reply.body.as_bytes());
    }
    bytes
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Accepts connections until the task is dropped.
pub async fn serve<P: Pages>(listener: TcpListener, pages: Arc<P>, limits: Limits) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut accept_failed = false;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of descriptors, usually: wait rather than spin.
                if !accept_failed {
                    tracing::warn!(%error, "admin listener cannot accept connections");
                    accept_failed = true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        accept_failed = false;
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue; // full: dropped, so closed
        };
        let pages = pages.clone();
        tokio::spawn(async move {
            let _permit = permit;
            answer(stream, pages, limits).await;
        });
    }
}

async fn answer<P: Pages>(mut stream: TcpStream, pages: Arc<P>, limits: Limits) {
    let head = match tokio::time::timeout(limits.head_timeout, read_head(&mut stream)).await {
        Ok(Some(head)) => head,
        Ok(None) => return, // closed or failed before a request
        Err(_) => Head::Invalid,
    };
    let (reply, head_only) = match head {
        Head::Complete { method, path } => match route(&method, &path) {
            Ok(page) => (pages.reply(page).await, method == "HEAD"),
            Err(refusal) => (refusal, false),
        },
        Head::TooLarge => (Reply::text(431, "request head too large"), false),
        Head::Invalid | Head::Incomplete => (Reply::text(400, "bad request"), false),
    };
    let bytes = frame(&reply, head_only);
    let _ = tokio::time::timeout(limits.write_timeout, async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    })
    .await;
}

/// Reads until the head is complete, too large or invalid; `None` when
/// the peer closes first.
async fn read_head(stream: &mut TcpStream) -> Option<Head> {
    let mut buffer = vec![0u8; MAX_HEAD_BYTES];
    let mut filled = 0;
    loop {
        let read = stream.read(&mut buffer[filled..]).await.ok()?;
        if read == 0 {
            return None;
        }
        filled += read;
        match parse_head(&buffer[..filled]) {
            Head::Incomplete => continue,
            head => return Some(head),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;

    impl Pages for Fixed {
        async fn reply(self: Arc<Self>, page: Page) -> Reply {
            Reply::text(200, &format!("{page:?}"))
        }
    }

    const TEST_LIMITS: Limits = Limits {
        max_connections: 8,
        head_timeout: Duration::from_millis(300),
        write_timeout: Duration::from_secs(1),
    };

    async fn start() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, Arc::new(Fixed), TEST_LIMITS));
        addr
    }

    async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[test]
    fn routes_only_three_pages_and_two_methods() {
        assert_eq!(route("GET", "/"), Ok(Page::Status));
        assert_eq!(route("HEAD", "/metrics?x=1"), Ok(Page::Metrics));
        assert_eq!(route("GET", "/healthz"), Ok(Page::Health));
        assert_eq!(route("POST", "/").unwrap_err().status, 405);
        assert_eq!(route("GET", "/../etc/passwd").unwrap_err().status, 404);
        let framed = String::from_utf8(frame(&route("DELETE", "/").unwrap_err(), false)).unwrap();
        assert!(framed.contains("Allow: GET, HEAD\r\n"));
    }

    #[test]
    fn heads_are_bounded() {
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n"),
            Head::Incomplete
        );
        assert_eq!(parse_head(b"\x00\x01garbage\r\n\r\n"), Head::Invalid);
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse_head(&many), Head::TooLarge);
        let long = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(parse_head(long.as_bytes()), Head::TooLarge);
    }

    #[tokio::test]
    async fn hostile_requests_get_short_answers() {
        let addr = start().await;
        let ok = exchange(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(
            ok.starts_with("HTTP/1.1 200 OK\r\n") && ok.ends_with("Health\n"),
            "{ok}"
        );
        let head = exchange(addr, b"HEAD / HTTP/1.1\r\n\r\n").await;
        assert!(
            head.ends_with("\r\n\r\n") && head.contains("Content-Length: 7"),
            "{head}"
        );
        let garbage = exchange(
            addr,
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        )
        .await;
        assert!(garbage.starts_with("HTTP/1.1 400 "), "{garbage}");
        let huge = format!(
            "GET / HTTP/1.1\r\nCookie: {}\r\n\r\n",
            "a".repeat(64 * 1024)
        );
        let huge = exchange(addr, huge.as_bytes()).await;
        assert!(huge.starts_with("HTTP/1.1 431 "), "{huge}");
        let post = exchange(
            addr,
            b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        )
        .await;
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
    }

    #[tokio::test]
    async fn idle_connections_are_closed_and_cannot_crowd_out_for_long() {
        let addr = start().await;
        // More idle connections than allowed, one trickling a byte at a time.
        let mut idle = Vec::new();
        for _ in 0..TEST_LIMITS.max_connections + 8 {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        let started = std::time::Instant::now();
        for byte in b"GET / HT" {
            // Cut off part way: the head's time ran out.
            let _ = idle[0].write_all(&[*byte]).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for stream in &mut idle {
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer).await;
            let answer = String::from_utf8_lossy(&answer);
            assert!(
                answer.is_empty() || answer.starts_with("HTTP/1.1 400 "),
                "{answer}"
            );
        }
        assert!(
            started.elapsed() < TEST_LIMITS.head_timeout * 3,
            "closed in time"
        );
        let ok = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
    }
}

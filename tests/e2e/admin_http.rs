//! The admin listener of the real binary, over real HTTP, after real calls
//! from our test client: `/healthz`, `/metrics` (read by a Prometheus text
//! parser) and the status page, which headless Chromium renders on a
//! phone-sized window (the screenshot is kept under `target/test-artefacts/`).

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use dial_a_service::client::{CallOptions, place_call};
use dial_a_service::media::Codec;

use common::{Line, Parish, have_tool};

/// Quotes, `&` and markup in a title, as a website might publish it.
const TITLE: &str = "Evensong <i>live</i> & Compline";

pub(crate) struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// One GET (or HEAD) over a fresh connection, as curl would send it.
pub(crate) fn request(admin: SocketAddr, method: &str, path: &str) -> Answer {
    let mut stream = TcpStream::connect(admin).expect("connect to the admin listener");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {admin}\r\nUser-Agent: admin_http\r\nAccept: */*\r\n\r\n"
    )
    .unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).expect("read the answer");
    let text = String::from_utf8(bytes).expect("UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

pub(crate) fn get(admin: SocketAddr, path: &str) -> Answer {
    request(admin, "GET", path)
}

pub(crate) fn scrape(admin: SocketAddr) -> prometheus_parse::Scrape {
    let answer = get(admin, "/metrics");
    assert_eq!(answer.status, 200);
    assert!(
        answer.head.contains("text/plain; version=0.0.4"),
        "{}",
        answer.head
    );
    let lines = answer.body.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines).expect("the Prometheus text parser reads /metrics")
}

/// The value of `name` whose labels include `labels`.
pub(crate) fn value(
    scrape: &prometheus_parse::Scrape,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .and_then(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        })
}

fn tools() -> bool {
    have_tool("espeak-ng") && have_tool("sox") && have_tool("ffmpeg")
}

fn artefacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp has a parent")
        .join("test-artefacts");
    std::fs::create_dir_all(&dir).expect("make target/test-artefacts");
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn health_metrics_and_status_page_after_real_calls() {
    if !tools() {
        return;
    }
    let parish = Parish::new(TITLE, "Let us pray. The Lord be with you.", 3.0);
    let line = parish.line();
    let admin = line.admin.expect("the admin listener is on");
    assert!(
        line.log_count(&format!("admin listener: status page at http://{admin}/")) == 1,
        "one start line names the admin address:\n{}",
        line.log_text()
    );

    let health = get(admin, "/healthz");
    assert_eq!(health.status, 200, "{}", health.body);
    let json: serde_json::Value = serde_json::from_str(&health.body).expect("JSON health");
    assert_eq!(json["ok"], true);
    assert_eq!(json["checks"][0]["name"], "schedule");

    // One call to the end (greeting, the one service, goodbye, the line's
    // BYE), one cut short by the caller.
    let whole = place_call(CallOptions::new(line.uri(), Codec::Pcmu))
        .await
        .expect("the call completes");
    assert_eq!(whole.final_status, 200);
    let mut short = CallOptions::new(line.uri(), Codec::Pcma);
    short.seconds = Some(Duration::from_secs(1));
    place_call(short).await.expect("the short call completes");

    // The line counts a call when the endpoint finishes it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        let metrics = scrape(admin);
        let ended = |outcome| value(&metrics, "das_calls_total", &[("outcome", outcome)]);
        if ended("completed") == Some(1.0) && ended("caller_hung_up") == Some(1.0)
            || Instant::now() > deadline
        {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let ended = |outcome| value(&metrics, "das_calls_total", &[("outcome", outcome)]);
    assert_eq!(ended("completed"), Some(1.0), "{:?}", metrics.samples);
    assert_eq!(ended("caller_hung_up"), Some(1.0));
    assert_eq!(ended("failed"), Some(0.0));
    assert_eq!(value(&metrics, "das_calls_active", &[]), Some(0.0));
    let packets = value(&metrics, "das_rtp_packets_sent_total", &[]).expect("packets sent");
    assert!(packets > 150.0, "a few seconds of 20 ms packets: {packets}");
    assert_eq!(
        value(&metrics, "das_service_plays_total", &[("service", TITLE)]),
        Some(1.0),
        "the short call hung up during the greeting; the whole one heard the service"
    );
    assert_eq!(value(&metrics, "das_registration_up", &[]), Some(0.0));
    assert_eq!(value(&metrics, "das_trunk_configured", &[]), Some(0.0));
    assert!(value(&metrics, "das_source_last_success_timestamp_seconds", &[]).is_some());
    let lateness = metrics
        .samples
        .iter()
        .find(|s| s.metric == "das_rtp_send_lateness_seconds")
        .expect("the lateness histogram");
    match &lateness.value {
        prometheus_parse::Value::Histogram(buckets) => {
            let all = buckets.last().expect("buckets").count;
            assert!(all >= packets, "every packet in the histogram: {all}");
        }
        other => panic!("lateness is a histogram, not {other:?}"),
    }

    let page = get(admin, "/");
    assert_eq!(page.status, 200);
    assert!(page.head.contains("text/html"), "{}", page.head);
    let html = page.body;
    assert!(
        html.contains("Evensong &lt;i&gt;live&lt;/i&gt; &amp; Compline"),
        "{html}"
    );
    assert!(!html.contains("<i>live"), "titles are escaped");
    assert!(html.contains("No phone provider (trunk) is set up"));
    assert!(html.contains(
        "No calls in progress. Since the line started: 1 heard a service to the end, 1 hung up."
    ));
    assert!(
        html.contains("1 listen</p><svg"),
        "the week's chart: {html}"
    );
    // The words callers hear, as `dial-a-service menu` prints them.
    let menu = Command::new(env!("CARGO_BIN_EXE_dial-a-service"))
        .args(["menu", "--config", "config/dial-a-service.toml"])
        .current_dir(common::repo())
        .envs(parish.env())
        .output()
        .expect("dial-a-service menu");
    let menu = String::from_utf8_lossy(&menu.stdout);
    for sentence in menu.lines().skip(1) {
        let escaped = sentence
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('\'', "&#39;")
            .replace('"', "&quot;");
        assert!(
            html.contains(&format!("<p>{escaped}</p>")),
            "the page says what callers hear: {sentence:?}\n{html}"
        );
    }

    let head = request(admin, "HEAD", "/metrics");
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    assert_eq!(request(admin, "POST", "/healthz").status, 405);
    assert_eq!(get(admin, "/admin").status, 404);
}

#[test]
fn status_page_in_headless_chromium() {
    if !have_tool("chromium") {
        return;
    }
    let line = Line::start(&[]);
    let admin = line.admin.expect("the admin listener is on");
    let url = format!("http://{admin}/");
    let profile = tempfile::tempdir().unwrap();
    let chromium = |extra: &[&str]| {
        let output = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--window-size=412,915",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&url)
            .output()
            .expect("run chromium");
        assert!(
            output.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let dom = chromium(&["--dump-dom"]);
    for words in [
        "Dial-a-service",
        "What callers hear now",
        "Thanks for calling",
        "No calls in progress.",
        "The schedule is read from the file",
    ] {
        assert!(dom.contains(words), "{words:?} rendered:\n{dom}");
    }
    let screenshot = artefacts().join("status-page.png");
    let _ = std::fs::remove_file(&screenshot);
    chromium(&[&format!("--screenshot={}", screenshot.display())]);
    let png = std::fs::read(&screenshot).expect("chromium wrote the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    // 412 px wide, as a phone.
    assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 412);
    eprintln!("status page screenshot: {}", screenshot.display());
}

#[test]
fn a_taken_admin_port_does_not_stop_the_line_and_empty_turns_it_off() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let line = Line::start(&[("DAS_ADMIN_LISTEN", format!("127.0.0.1:{port}"))]);
    assert_eq!(
        line.log_count("cannot open the admin listener"),
        1,
        "{}",
        line.log_text()
    );
    drop(line);

    let line = Line::start(&[("DAS_ADMIN_LISTEN", String::new())]);
    assert!(line.admin.is_none());
    assert_eq!(line.log_count("admin listener"), 0, "{}", line.log_text());
}

#[test]
fn a_website_that_cannot_be_reached_is_named_on_every_page() {
    // Nothing listens on this port: every fetch is refused, and with an
    // empty cache callers hear the apology.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let line = Line::start(&[
        (
            "DAS_SOURCE_SCHEDULE",
            format!("http://127.0.0.1:{port}/dial/data.json"),
        ),
        ("DAS_SOURCE_AUDIO", format!("http://127.0.0.1:{port}/dial/")),
    ]);
    let admin = line.admin.expect("the admin listener is on");
    let deadline = Instant::now() + Duration::from_secs(15);
    let metrics = loop {
        let metrics = scrape(admin);
        let failed = metrics
            .samples
            .iter()
            .any(|s| s.metric == "das_source_failures_total");
        if failed || Instant::now() > deadline {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let failures: Vec<_> = metrics
        .samples
        .iter()
        .filter(|s| s.metric == "das_source_failures_total")
        .collect();
    assert!(
        !failures.is_empty(),
        "a failure counted: {:?}",
        metrics.samples
    );
    assert!(
        failures.iter().all(|s| s
            .labels
            .get("reason")
            .is_some_and(|r| r.starts_with("source."))),
        "{failures:?}"
    );
    assert_eq!(value(&metrics, "das_schedule_playable", &[]), Some(0.0));

    let health = get(admin, "/healthz");
    assert_eq!(health.status, 503, "{}", health.body);
    let json: serde_json::Value = serde_json::from_str(&health.body).unwrap();
    assert_eq!(json["ok"], false);
    assert_eq!(json["checks"][0]["ok"], false);
    assert!(
        json["checks"][0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("callers hear the apology"),
        "{json}"
    );

    let html = get(admin, "/").body;
    assert!(
        html.contains("Callers hear an apology instead of a service."),
        "{html}"
    );
    assert!(
        html.contains("No good copy has been fetched yet."),
        "{html}"
    );
    assert!(
        html.contains("The website's schedule could not be fetched at "),
        "{html}"
    );
    assert!(
        html.contains("callers hear the apology until it can be"),
        "{html}"
    );
}

//! Services from the parish's website, end to end: a test origin (HTTP or
//! HTTPS on 127.0.0.1, with certificates made at test time) serves the
//! schedule or a podcast feed and the audio; the real binary fetches them in
//! the background into its disk cache; our client calls and what it hears
//! is compared with the services. Every failure of the origin must leave
//! callers served from the cache, named in the log.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dial_a_service::client::{CallOptions, CallReport, DtmfPress, Key, place_call};
use dial_a_service::media::Codec;

use common::origin::{CertKind, Origin};
use common::{Line, audio, have_tool, repo};

const RATE: u32 = 8_000;

fn tools() -> bool {
    have_tool("espeak-ng") && have_tool("sox") && have_tool("ffmpeg")
}

/// A service's MP3 bytes and the WAV it was made from.
struct Audio {
    mp3: Vec<u8>,
    wav: PathBuf,
}

fn make_audio(dir: &Path, name: &str, text: &str) -> Audio {
    let wav = audio::make_service_wav(dir, name, text, 4.0);
    let mp3 = dir.join(format!("{name}.mp3"));
    audio::convert(&wav, &mp3, &[]);
    Audio {
        mp3: std::fs::read(&mp3).unwrap(),
        wav,
    }
}

/// A `data.json` listing `(title, local datetime, file)`.
fn data_json(services: &[(&str, &str, &str)]) -> String {
    let entries: Vec<String> = services
        .iter()
        .map(|(title, datetime, file)| {
            format!(r#"{{ "title": "{title}", "datetime": "{datetime}", "file": "{file}" }}"#)
        })
        .collect();
    format!(
        r#"{{ "church_name": "St Web's", "services": [ {} ] }}"#,
        entries.join(", ")
    )
}

/// A line fetching `schedule` from `origin`, its audio from `audio/` beside
/// the schedule (the shipped config names a local audio folder).
fn env(schedule: String, origin: &Origin, cache: &Path) -> Vec<(&'static str, String)> {
    let folder = &schedule[..schedule.rfind('/').map_or(schedule.len(), |i| i + 1)];
    vec![
        ("DAS_SOURCE_AUDIO", format!("{folder}audio/")),
        ("DAS_SOURCE_SCHEDULE", schedule),
        ("DAS_SOURCE_CA_FILE", origin.ca_file().display().to_string()),
        ("DAS_SOURCE_REFRESH_INTERVAL", "1s".to_owned()),
        ("DAS_CACHE_DIR", cache.display().to_string()),
    ]
}

/// Waits until the log has a line containing `needle`.
async fn wait_for(line: &Line, needle: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if line.log_count(needle) > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "no log line with {needle:?} within {within:?}:\n{}",
        important(line)
    );
}

/// The log without its debug lines, for failure messages.
fn important(line: &Line) -> String {
    line.log_text()
        .lines()
        .filter(|l| !l.contains(" DEBUG ") && !l.contains(" TRACE "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Lines of the log that say what the line offers.
fn offerings(line: &Line) -> Vec<String> {
    line.log_text()
        .lines()
        .filter_map(|l| l.split("offering: ").nth(1).map(str::to_owned))
        .collect()
}

async fn call(line: &Line, key: Option<char>) -> CallReport {
    let mut options = CallOptions::new(line.uri(), Codec::Pcmu);
    options.seconds = Some(Duration::from_secs(14));
    if let Some(key) = key {
        options.dtmf = vec![DtmfPress {
            at: Duration::from_millis(2_500),
            key: Key::from_char(key).unwrap(),
        }];
    }
    let report = place_call(options).await.expect("the call completes");
    assert_eq!(report.final_status, 200, "{}", report.summary());
    let first = report.first_rtp_after_ack.expect("RTP arrived");
    assert!(
        first < Duration::from_millis(100),
        "first RTP {first:?} after the ACK"
    );
    report
}

fn heard(report: &CallReport, source: &Path) -> f32 {
    let played = audio::reference(source, RATE);
    let whole = report.samples.len() as f32 / RATE as f32;
    audio::correlation(&report.samples, &played, RATE, whole)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seeds_outage_a_bad_certificate_keeps_calls_on_the_cached_services() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let first = make_audio(dir.path(), "first", "The first service from the website.");
    let second = make_audio(
        dir.path(),
        "second",
        "A second service, published during the outage.",
    );
    let origin = Origin::https(CertKind::Valid).await;
    origin.set("/dial/audio/first.mp3", first.mp3.clone());
    origin.set(
        "/dial/data.json",
        data_json(&[("Matins", "2026-01-04T10:00:00", "first.mp3")]),
    );
    let cache = dir.path().join("cache");
    let line = Line::start(&env(origin.url("/dial/data.json"), &origin, &cache));
    wait_for(&line, "offering: Matins", Duration::from_secs(30)).await;
    let report = call(&line, None).await;
    assert!(
        heard(&report, &first.wav) >= 0.9,
        "the service from the website plays"
    );

    // The outage: each way a certificate goes wrong, while a new service
    // is published that cannot be fetched.
    origin.swap_certificate(CertKind::Expired);
    origin.set("/dial/audio/second.mp3", second.mp3.clone());
    origin.set(
        "/dial/data.json",
        data_json(&[
            ("Matins", "2026-01-04T10:00:00", "first.mp3"),
            ("Evensong", "2026-01-04T18:00:00", "second.mp3"),
        ]),
    );
    for kind in [CertKind::Expired, CertKind::SelfSigned, CertKind::WrongHost] {
        origin.swap_certificate(kind);
        let before = line.log_count("source.certificate");
        let deadline = Instant::now() + Duration::from_secs(15);
        while line.log_count("source.certificate") == before && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            line.log_count("source.certificate") > before,
            "{kind:?}: the log names the certificate problem:\n{}",
            line.log_text()
        );
        let report = call(&line, None).await;
        assert!(
            heard(&report, &first.wav) >= 0.9,
            "{kind:?}: callers keep hearing the cached service"
        );
    }
    assert!(
        offerings(&line).iter().all(|o| !o.contains("Evensong")),
        "nothing new during the outage: {:?}",
        offerings(&line)
    );

    // A valid certificate again: the new service appears.
    origin.swap_certificate(CertKind::Valid);
    wait_for(&line, "offering: Evensong", Duration::from_secs(30)).await;
    let report = call(&line, Some('1')).await;
    assert!(
        heard(&report, &second.wav) >= 0.9,
        "the new service plays on key 1"
    );
    assert!(line.log_count("working again") >= 1, "{}", line.log_text());
}

#[tokio::test(flavor = "multi_thread")]
async fn origin_down_at_start_serves_a_warm_cache_and_a_cold_one_apologises() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let service = make_audio(
        dir.path(),
        "service",
        "Served from the cache while the website is down.",
    );
    let mut origin = Origin::http().await;
    origin.set("/audio/service.mp3", service.mp3.clone());
    origin.set(
        "/data.json",
        data_json(&[("Compline", "2026-01-04T21:00:00", "service.mp3")]),
    );
    let schedule = origin.url("/data.json");

    // Cold cache, origin down: the apology, at once.
    origin.stop().await;
    let cold = dir.path().join("cold");
    let line = Line::start(&env(schedule.clone(), &origin, &cold));
    wait_for(&line, "source.connect", Duration::from_secs(15)).await;
    let report = call(&line, None).await;
    let apology = repo().join("audio/apology.wav");
    assert!(
        heard(&report, &apology) >= 0.9,
        "a cold cache and no origin: the apology"
    );
    drop(line);

    // Warm the cache, then restart with the origin down.
    origin.restart().await;
    let warm = dir.path().join("warm");
    let line = Line::start(&env(schedule.clone(), &origin, &warm));
    wait_for(&line, "offering: Compline", Duration::from_secs(30)).await;
    drop(line);
    origin.stop().await;
    let line = Line::start(&env(schedule, &origin, &warm));
    wait_for(
        &line,
        "serving the schedule kept in the disk cache",
        Duration::from_secs(15),
    )
    .await;
    let report = call(&line, None).await;
    assert!(
        heard(&report, &service.wav) >= 0.9,
        "the cached service plays"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_is_offered_only_once_its_audio_plays_and_a_corrupt_one_never() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let good = make_audio(dir.path(), "good", "An older service that always plays.");
    let late = make_audio(dir.path(), "late", "A service whose audio arrives later.");
    let origin = Origin::http().await;
    origin.set("/audio/good.mp3", good.mp3.clone());
    origin.set(
        "/data.json",
        data_json(&[("Good", "2026-01-04T10:00:00", "good.mp3")]),
    );
    let cache = dir.path().join("cache");
    let line = Line::start(&env(origin.url("/data.json"), &origin, &cache));
    wait_for(&line, "offering: Good", Duration::from_secs(30)).await;

    // A corrupt MP3 and one not uploaded yet are listed.
    origin.set("/audio/corrupt.mp3", vec![0x55u8; 40_000]);
    origin.set(
        "/data.json",
        data_json(&[
            ("Good", "2026-01-04T10:00:00", "good.mp3"),
            ("Corrupt", "2026-01-05T10:00:00", "corrupt.mp3"),
            ("Late", "2026-01-06T10:00:00", "late.mp3"),
        ]),
    );
    wait_for(&line, "corrupt.mp3", Duration::from_secs(15)).await;
    wait_for(&line, "late.mp3", Duration::from_secs(15)).await;
    assert!(
        offerings(&line)
            .iter()
            .all(|o| !o.contains("Corrupt") && !o.contains("Late")),
        "{:?}",
        offerings(&line)
    );
    let report = call(&line, None).await;
    assert!(
        heard(&report, &good.wav) >= 0.9,
        "the older service still plays"
    );

    // The late audio is uploaded: it is offered (newest, key 1); the
    // corrupt one never is.
    origin.set("/audio/late.mp3", late.mp3.clone());
    wait_for(&line, "offering: Late", Duration::from_secs(30)).await;
    let report = call(&line, Some('1')).await;
    assert!(heard(&report, &late.wav) >= 0.9);
    assert!(
        offerings(&line).iter().all(|o| !o.contains("Corrupt")),
        "{:?}",
        offerings(&line)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_and_stalling_origins_never_delay_a_call() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let service = make_audio(
        dir.path(),
        "service",
        "A service that plays whatever the website does.",
    );
    let origin = Origin::http().await;
    origin.set("/audio/service.mp3", service.mp3.clone());
    origin.set(
        "/data.json",
        data_json(&[("Vespers", "2026-01-04T17:00:00", "service.mp3")]),
    );
    let line = Line::start(&env(
        origin.url("/data.json"),
        &origin,
        &dir.path().join("cache"),
    ));
    wait_for(&line, "offering: Vespers", Duration::from_secs(30)).await;
    for (what, code) in [
        ("500", "source.http_status"),
        ("404", "source.http_status"),
        ("stall", "source.timeout"),
    ] {
        match what {
            "stall" => origin.stall(Duration::from_secs(60)),
            status => origin.fail_with(status.parse().unwrap()),
        }
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        // `call` asserts the first RTP within 100 ms of the ACK.
        let report = call(&line, None).await;
        assert!(
            heard(&report, &service.wav) >= 0.9,
            "{what}: the service plays"
        );
        if what != "stall" {
            wait_for(&line, code, Duration::from_secs(10)).await;
        }
        origin.heal();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_podcast_feed_becomes_services_with_their_titles() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let older = make_audio(
        dir.path(),
        "older",
        "The sermon for the second Sunday of Advent.",
    );
    let newer = make_audio(
        dir.path(),
        "newer",
        "The sermon for the third Sunday of Advent.",
    );
    let origin = Origin::http().await;
    origin.set("/media/advent-2.mp3", older.mp3.clone());
    origin.set("/media/advent-3.mp3", newer.mp3.clone());
    let base = origin.url("/media");
    let feed = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd">
  <channel>
    <title>St Podcast&apos;s Sermons</title>
    <itunes:author>St Podcast's</itunes:author>
    <item>
      <title>Advent 3: &lt;b&gt;Rejoice&lt;/b&gt;</title>
      <description><![CDATA[<p>Our vicar on <em>joy</em>.</p>]]></description>
      <pubDate>Sun, 14 Dec 2025 10:00:00 GMT</pubDate>
      <itunes:duration>00:00:04</itunes:duration>
      <enclosure url="{base}/advent-3.mp3" length="{}" type="audio/mpeg"/>
    </item>
    <item>
      <title>Advent 2</title>
      <pubDate>Sun, 7 Dec 2025 10:00:00 +0000</pubDate>
      <enclosure url="{base}/advent-2.mp3" length="{}" type="audio/mpeg"/>
    </item>
  </channel>
</rss>"#,
        newer.mp3.len(),
        older.mp3.len()
    );
    origin.set("/feed.xml", feed);
    let settings = env(origin.url("/feed.xml"), &origin, &dir.path().join("cache"));
    let line = Line::start(&settings);
    wait_for(
        &line,
        "offering: Advent 3: Rejoice (2025-12-14 10:00",
        Duration::from_secs(30),
    )
    .await;
    assert!(
        offerings(&line)
            .iter()
            .any(|o| o.contains("Advent 2 (2025-12-07 10:00")),
        "{:?}",
        offerings(&line)
    );
    let report = call(&line, Some('2')).await;
    assert!(
        heard(&report, &older.wav) >= 0.9,
        "key 2 plays the older sermon"
    );

    // `menu` shows what the line has published, from its cache.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_dial-a-service"))
        .current_dir(repo())
        .arg("menu")
        .envs(settings.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("Thanks for calling St Podcast's Sermons."),
        "{text}"
    );
    assert!(
        text.contains(
            "Press 1 for the service from Advent 3: Rejoice, Sunday the 14th of December."
        ),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_mid_download_the_previous_copy_serves_and_keep_latest_evicts() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let first = make_audio(dir.path(), "first", "The service already in the cache.");
    let second = make_audio(
        dir.path(),
        "second",
        "The service being downloaded when the line died.",
    );
    let mut origin = Origin::http().await;
    origin.set("/audio/first.mp3", first.mp3.clone());
    origin.set(
        "/data.json",
        data_json(&[("First", "2026-01-04T10:00:00", "first.mp3")]),
    );
    let schedule = origin.url("/data.json");
    let cache = dir.path().join("cache");
    let mut settings = env(schedule.clone(), &origin, &cache);
    settings.push(("DAS_CACHE_KEEP_LATEST", "1".to_owned()));
    let line = Line::start(&settings);
    wait_for(&line, "offering: First", Duration::from_secs(30)).await;

    // The second service's download breaks half way, and its resumption
    // hangs; the line is killed in the middle of it.
    origin.set("/audio/second.mp3", second.mp3.clone());
    origin.cut_body_after(second.mp3.len() / 2);
    origin.set(
        "/data.json",
        data_json(&[
            ("First", "2026-01-04T10:00:00", "first.mp3"),
            ("Second", "2026-01-05T10:00:00", "second.mp3"),
        ]),
    );
    wait_for(&line, "second.mp3", Duration::from_secs(15)).await;
    origin.stall(Duration::from_secs(60));
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(line); // SIGKILL
    origin.stop().await;
    let line = Line::start(&settings);
    wait_for(
        &line,
        "serving the schedule kept in the disk cache",
        Duration::from_secs(15),
    )
    .await;
    let report = call(&line, None).await;
    assert!(
        heard(&report, &first.wav) >= 0.9,
        "the previous good copy plays:\n{}",
        important(&line)
    );
    drop(line);

    // The origin comes back whole: the second is offered and, with
    // keep_latest = 1, the first's download is deleted.
    origin.heal();
    origin.restart().await;
    let line = Line::start(&settings);
    wait_for(&line, "offering: Second", Duration::from_secs(30)).await;
    wait_for(&line, "old downloads deleted", Duration::from_secs(10)).await;
    let audio_files: Vec<_> = std::fs::read_dir(cache.join("audio"))
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().ends_with(".meta"))
        .collect();
    assert_eq!(
        audio_files.len(),
        1,
        "only the latest is kept: {audio_files:?}"
    );
    let report = call(&line, None).await;
    assert!(heard(&report, &second.wav) >= 0.9);
}

/// The README's website example as written: only `DAS_SOURCE_SCHEDULE`
/// over the shipped config (which names a local audio folder for its own
/// sample schedule); the audio comes from beside the URL and plays. The CA
/// file and cache folder are the test's, not the example's.
#[tokio::test(flavor = "multi_thread")]
async fn the_readme_website_example_plays_with_the_shipped_config() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let first = make_audio(dir.path(), "first", "The service from the parish website.");
    let origin = Origin::https(CertKind::Valid).await;
    origin.set("/dial/audio/first.mp3", first.mp3.clone());
    origin.set(
        "/dial/data.json",
        data_json(&[("Matins", "2026-01-04T10:00:00", "first.mp3")]),
    );
    let cache = dir.path().join("cache");
    let line = Line::start(&[
        ("DAS_SOURCE_SCHEDULE", origin.url("/dial/data.json")),
        ("DAS_SOURCE_CA_FILE", origin.ca_file().display().to_string()),
        ("DAS_CACHE_DIR", cache.display().to_string()),
    ]);
    wait_for(&line, "offering: Matins", Duration::from_secs(30)).await;
    let report = call(&line, None).await;
    assert!(
        heard(&report, &first.wav) >= 0.9,
        "the website's service plays, not the apology:\n{}",
        important(&line)
    );
}

/// `dial-a-service check` with `env`, off the runtime's workers (the origin
/// serves on them meanwhile): (passed, output).
async fn check(env: &[(&'static str, String)]) -> (bool, String) {
    tokio::task::block_in_place(|| common::run_check(env))
}

/// `check` fetches a website's schedule once, now, and names what is wrong
/// in words with what to do and what callers hear meanwhile: an expired
/// certificate (cold cache, then warm), a missing page, nothing listening.
#[tokio::test(flavor = "multi_thread")]
async fn check_fetches_the_website_now_and_names_its_trouble() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let service = make_audio(
        dir.path(),
        "service",
        "A service checked from the command line.",
    );
    let origin = Origin::https(CertKind::Valid).await;
    origin.set("/dial/audio/service.mp3", service.mp3.clone());
    origin.set(
        "/dial/data.json",
        data_json(&[("Matins", "2026-01-04T10:00:00", "service.mp3")]),
    );
    let cache = dir.path().join("cache");
    let env = env(origin.url("/dial/data.json"), &origin, &cache);

    let (ok, text) = check(&env).await;
    assert!(ok, "a working website checks clean:\n{text}");
    assert!(
        text.contains("fetched now: St Web's, 1 service(s)")
            && text.contains("Matins")
            && text.contains("can be fetched")
            && text.contains("nothing from"),
        "{text}"
    );
    assert!(
        !cache.exists(),
        "check writes nothing, not even the cache folder"
    );

    origin.swap_certificate(CertKind::Expired);
    let (ok, text) = check(&env).await;
    assert!(!ok, "{text}");
    assert!(
        text.contains("FAIL")
            && text.contains("expired")
            && text.contains("renew")
            && text.contains("nothing is in the cache yet, so callers hear the apology clip"),
        "an expired certificate, in words:\n{text}"
    );

    // The line fills its cache; the certificate then expires: callers hear
    // the copy, and check says so.
    origin.swap_certificate(CertKind::Valid);
    let line = Line::start(&env);
    wait_for(&line, "offering: Matins", Duration::from_secs(30)).await;
    drop(line);
    origin.swap_certificate(CertKind::Expired);
    let (ok, text) = check(&env).await;
    assert!(!ok, "{text}");
    assert!(
        text.contains("meanwhile callers hear the copy fetched")
            && text.contains("latest: Matins")
            && text.contains("holds the schedule"),
        "the cache serves, and check shows what:\n{text}"
    );

    origin.swap_certificate(CertKind::Valid);
    origin.fail_path("/dial/data.json", 404);
    let (ok, text) = check(&env).await;
    assert!(
        !ok && text.contains("404") && text.contains("no file at that address"),
        "{text}"
    );

    let nobody = format!("https://127.0.0.1:{}/data.json", common::free_tcp_port());
    let (ok, text) = check(&with_schedule(&env, nobody)).await;
    assert!(!ok && text.contains("nothing answers"), "{text}");
}

/// `env` fetching its schedule from `schedule` instead.
fn with_schedule(env: &[(&'static str, String)], schedule: String) -> Vec<(&'static str, String)> {
    env.iter()
        .map(|(k, v)| {
            let v = if *k == "DAS_SOURCE_SCHEDULE" {
                schedule.clone()
            } else {
                v.clone()
            };
            (*k, v)
        })
        .collect()
}

//! End to end over real UDP on 127.0.0.1: our test client calls the real
//! binary, records what it hears, and the recording is compared with the
//! service (resampled by sox, an independent resampler) for each codec.
//! Then the apology paths: whatever is wrong with the content, the caller
//! is answered, hears the apology clip, and is hung up on; the next call works.

use crate::common;

use std::path::Path;
use std::time::Duration;

use dial_a_service::client::{CallOptions, CallReport, HangUp, place_call};
use dial_a_service::media::Codec;

use common::{Line, Parish, audio, have_tool, repo, write_schedule};

const SERVICE_SECONDS: f32 = 5.0;
/// At most this much is said around a single service (greeting with the
/// church's name, "Thank you for listening. Goodbye.").
const GREETING_AND_GOODBYE: f32 = 10.0;

fn tools() -> bool {
    have_tool("espeak-ng") && have_tool("sox") && have_tool("ffmpeg")
}

fn parish() -> Parish {
    Parish::new(
        "Morning Prayer",
        "Good morning, and welcome to our service by telephone. The Lord be with you.",
        SERVICE_SECONDS,
    )
}

async fn call(line: &Line, codec: Codec, seconds: Option<f64>) -> CallReport {
    let mut options = CallOptions::new(line.uri(), codec);
    options.seconds = seconds.map(Duration::from_secs_f64);
    place_call(options).await.expect("the call completes")
}

fn assert_clean_stream(report: &CallReport) {
    let stats = &report.stats;
    assert_eq!(stats.ssrcs.len(), 1, "one SSRC: {}", report.summary());
    assert!(
        stats.seq_contiguous,
        "contiguous sequence numbers: {}",
        report.summary()
    );
    assert!(
        stats.ts_step_consistent,
        "timestamps advance by one frame: {}",
        report.summary()
    );
    assert!(stats.marker_first, "marker bit on the first packet");
    assert_eq!(stats.lost, 0, "{}", report.summary());
    let mean = stats
        .mean_interarrival
        .expect("packets arrived")
        .as_secs_f64()
        * 1000.0;
    assert!(
        (19.0..=21.0).contains(&mean),
        "mean inter-arrival {mean:.2} ms"
    );
    let first = report.first_rtp_after_ack.expect("RTP arrived");
    assert!(
        first < Duration::from_millis(100),
        "first RTP {first:?} after the ACK"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_codec_plays_the_service_in_real_time_and_the_line_hangs_up() {
    if !tools() {
        return;
    }
    let parish = parish();
    let line = parish.line();
    for codec in [Codec::Pcmu, Codec::Pcma, Codec::Opus] {
        let report = call(&line, codec, None).await;
        eprintln!("{codec}:\n{}", report.summary());
        assert_eq!(report.final_status, 200);
        assert_eq!(report.codec, codec);
        assert!(
            matches!(report.hung_up_by, HangUp::FarEnd),
            "the line sends BYE at the end"
        );
        assert_clean_stream(&report);
        // The greeting, the service (the only one: no menu), the goodbye.
        let heard = report.heard().as_secs_f32();
        assert!(
            heard > SERVICE_SECONDS + 1.0 && heard < SERVICE_SECONDS + GREETING_AND_GOODBYE,
            "heard {heard:.2} s for a {SERVICE_SECONDS} s service"
        );

        let rate = codec.sample_rate_hz();
        let played = audio::reference(&parish.service_wav, rate);
        let score = audio::correlation(&report.samples, &played, rate, GREETING_AND_GOODBYE);
        eprintln!("{codec}: correlation with the source {score:.3}");
        assert!(
            score >= 0.9,
            "{codec}: what the caller heard does not match ({score:.3})"
        );
    }
    assert_eq!(line.log_count("code=\"call.finished\""), 3);
}

/// Calls a line whose content is broken and checks that the apology is
/// what the caller hears, that the line hangs up, and that the next call
/// plays the service once the test repairs the content.
async fn assert_apology(line: &Line) {
    let report = call(line, Codec::Pcmu, None).await;
    assert_eq!(
        report.final_status, 200,
        "answered, never an error response"
    );
    assert!(
        matches!(report.hung_up_by, HangUp::FarEnd),
        "the line hangs up after the apology"
    );
    let apology = audio::reference(&repo().join("audio/apology.wav"), 8_000);
    let window = report.samples.len() as f32 / 8_000.0;
    let score = audio::correlation(&report.samples, &apology, 8_000, window);
    eprintln!(
        "apology correlation {score:.3}, heard {:.1} s",
        report.heard().as_secs_f32()
    );
    assert!(
        score >= 0.9,
        "the caller did not hear the apology clip ({score:.3})"
    );
}

async fn assert_service_plays(parish: &Parish, line: &Line) {
    let report = call(line, Codec::Pcmu, None).await;
    let played = audio::reference(&parish.service_wav, 8_000);
    let score = audio::correlation(&report.samples, &played, 8_000, GREETING_AND_GOODBYE);
    assert!(
        score >= 0.9,
        "after the repair the service plays ({score:.3})"
    );
}

/// The line looks at a local schedule, and at the services' files, every
/// two seconds off the calls' path: a repair is used within that, and said.
async fn schedule_seen_again(line: &Line) {
    line.wait_for_log("schedule: working again", 1, Duration::from_secs(5))
        .await;
}

async fn service_seen_again(line: &Line) {
    line.wait_for_log("service plays again", 1, Duration::from_secs(5))
        .await;
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn schedule_missing_plays_the_apology_and_is_logged_once() {
    if !tools() {
        return;
    }
    let parish = parish();
    let good = std::fs::read(parish.schedule()).unwrap();
    std::fs::remove_file(parish.schedule()).unwrap();
    let line = parish.line();
    assert_apology(&line).await;
    // A second caller: answered too, and the problem is not logged again.
    let second = call(&line, Codec::Pcmu, Some(1.0)).await;
    assert_eq!(second.final_status, 200);
    assert_eq!(
        line.log_count("schedule: cannot read"),
        1,
        "{}",
        line.log_text()
    );
    write(&parish.schedule(), &good);
    schedule_seen_again(&line).await;
    assert_service_plays(&parish, &line).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn schedule_not_json_plays_the_apology() {
    if !tools() {
        return;
    }
    let parish = parish();
    let good = std::fs::read(parish.schedule()).unwrap();
    write(
        &parish.schedule(),
        b"{ \"church_name\": \"St Test's\", \"services\": [ { oops",
    );
    let line = parish.line();
    assert_apology(&line).await;
    write(&parish.schedule(), &good);
    schedule_seen_again(&line).await;
    assert_service_plays(&parish, &line).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn audio_missing_plays_the_apology() {
    if !tools() {
        return;
    }
    let parish = parish();
    let service = parish.audio_dir().join("service.mp3");
    let moved = parish.dir.path().join("service.mp3.away");
    std::fs::rename(&service, &moved).unwrap();
    let line = parish.line();
    assert_apology(&line).await;
    std::fs::rename(&moved, &service).unwrap();
    service_seen_again(&line).await;
    assert_service_plays(&parish, &line).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn audio_truncated_plays_the_apology() {
    if !tools() {
        return;
    }
    let parish = parish();
    let service = parish.audio_dir().join("service.mp3");
    let good = std::fs::read(&service).unwrap();
    // A download cut short: the first 600 bytes (ID3 tag and a frame or two).
    write(&service, &good[..600.min(good.len())]);
    let line = parish.line();
    assert_apology(&line).await;
    write(&service, &good);
    service_seen_again(&line).await;
    assert_service_plays(&parish, &line).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn audio_truncated_mid_file_switches_to_the_apology() {
    if !tools() {
        return;
    }
    let parish = parish();
    // A WAV whose header promises more than the file holds.
    let service = parish.audio_dir().join("service.wav");
    let good = std::fs::read(&parish.service_wav).unwrap();
    write(&service, &good[..good.len() / 2]);
    write_schedule(parish.dir.path(), &[("Cut short", "service.wav")]);
    let line = parish.line();
    assert_apology(&line).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn audio_garbage_plays_the_apology() {
    if !tools() {
        return;
    }
    let parish = parish();
    let service = parish.audio_dir().join("service.mp3");
    let good = std::fs::read(&service).unwrap();
    let mut seed = 0x9e37_79b9_u32;
    let garbage: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as u8
        })
        .collect();
    write(&service, &garbage);
    let line = parish.line();
    assert_apology(&line).await;
    write(&service, &good);
    service_seen_again(&line).await;
    assert_service_plays(&parish, &line).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unusable_apology_clip_falls_back_to_gentle_tones() {
    if !tools() {
        return;
    }
    let parish = parish();
    std::fs::remove_file(parish.schedule()).unwrap();
    let mut env = parish.env();
    env.push((
        "DAS_AUDIO_APOLOGY",
        parish
            .dir
            .path()
            .join("no-such-apology.wav")
            .display()
            .to_string(),
    ));
    let line = Line::start(&env);
    let report = call(&line, Codec::Pcmu, None).await;
    assert_eq!(report.final_status, 200);
    assert!(matches!(report.hung_up_by, HangUp::FarEnd));
    let tones = dial_a_service::content::gentle_tones(8_000);
    let score = audio::correlation(&report.samples, &tones, 8_000, 0.5);
    assert!(score >= 0.9, "the built-in tones play ({score:.3})");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_90_minute_mp3_never_played_before_starts_within_100ms() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let audio_dir = dir.path().join("audio");
    std::fs::create_dir(&audio_dir).unwrap();
    let long = audio_dir.join("long.mp3");
    let status = std::process::Command::new("ffmpeg")
        .args(["-y", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg("sine=frequency=440:sample_rate=22050:duration=5400")
        .args(["-ac", "1", "-b:a", "32k"])
        .arg(&long)
        .status()
        .unwrap();
    assert!(status.success());
    let schedule = write_schedule(dir.path(), &[("Long service", "long.mp3")]);
    let mut env = common::source_env(&schedule, &audio_dir);
    env.push(("DAS_LOG_LEVEL", "debug".to_owned()));
    let line = Line::start(&env);
    for codec in [Codec::Opus, Codec::Pcmu] {
        let report = call(&line, codec, Some(1.5)).await;
        let first = report.first_rtp_after_ack.expect("RTP arrived");
        eprintln!("{codec}: first RTP {first:?} after the ACK");
        assert!(
            first < Duration::from_millis(100),
            "{codec}: first RTP {first:?} after the ACK\n{}",
            line.log_text()
        );
        assert!(
            audio::rms(&report.samples) > 0.05,
            "{codec}: the tone is heard"
        );
    }
}

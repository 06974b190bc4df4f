//! The call flow end to end: our test client calls the real binary, presses
//! keys by RFC 4733, SIP INFO or in-band tones, and what it heard is judged
//! by correlation with each service's audio, by the RTP marker that starts
//! new audio (barge-in), and by the line's log of what it played.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dial_a_service::client::{
    CallOptions, CallReport, DtmfPress, HangUp, Key, KeyChannel, place_call,
};
use dial_a_service::media::Codec;

use common::{Line, ThreeServices, audio, have_tool, source_env, write_schedule};

const RATE: u32 = 8_000;

fn tools() -> bool {
    have_tool("espeak-ng") && have_tool("sox") && have_tool("ffmpeg")
}

fn press(at_ms: u64, key: char) -> DtmfPress {
    DtmfPress {
        at: Duration::from_millis(at_ms),
        key: Key::from_char(key).unwrap(),
    }
}

async fn call(
    line: &Line,
    presses: Vec<DtmfPress>,
    via: &[KeyChannel],
    seconds: Option<u64>,
) -> CallReport {
    let mut options = CallOptions::new(line.uri(), Codec::Pcmu);
    options.dtmf = presses;
    options.dtmf_via = via.to_vec();
    options.seconds = seconds.map(Duration::from_secs);
    let report = place_call(options).await.expect("the call completes");
    eprintln!("{}", report.summary());
    assert_eq!(report.final_status, 200);
    report
}

/// The first packet of new audio (marked) after `since`, and how long after.
fn first_marked_after(report: &CallReport, since: Instant) -> Option<Duration> {
    report
        .packets
        .iter()
        .find(|p| p.marker && p.arrival > since)
        .map(|p| p.arrival - since)
}

/// What the line played, in order, from its log ("playing menu", ...).
fn played(line: &Line) -> Vec<String> {
    line.log_text()
        .lines()
        .filter_map(|l| l.split("playing ").nth(1))
        .map(|rest| {
            rest.split(" call=")
                .next()
                .unwrap_or(rest)
                .trim()
                .to_owned()
        })
        .collect()
}

fn assert_one_clean_stream(report: &CallReport) {
    let stats = &report.stats;
    assert_eq!(
        stats.ssrcs.len(),
        1,
        "one stream throughout: {}",
        report.summary()
    );
    assert!(stats.seq_contiguous, "{}", report.summary());
    assert!(stats.ts_step_consistent, "{}", report.summary());
    assert_eq!(stats.lost, 0, "{}", report.summary());
}

#[tokio::test(flavor = "multi_thread")]
async fn pressing_2_by_each_way_plays_the_second_service_and_cuts_the_menu_off() {
    if !tools() {
        return;
    }
    let parish = ThreeServices::new(6.0);
    let line = parish.line(&[]);
    for via in [KeyChannel::Rfc4733, KeyChannel::SipInfo, KeyChannel::InBand] {
        // 4 s in, the menu is still being said.
        let report = call(&line, vec![press(4_000, '2')], &[via], None).await;
        assert!(
            matches!(report.hung_up_by, HangUp::FarEnd),
            "the line ends the call"
        );
        let sent = report.dtmf_sent.first().expect("the press was sent");
        let barge_in = first_marked_after(&report, sent.at).expect("new audio after the key");
        eprintln!("{via:?}: the service started {barge_in:?} after the key");
        assert!(
            barge_in < Duration::from_millis(100),
            "{via:?}: the menu went on {barge_in:?} after the key"
        );
        let scores: Vec<f32> = (1..=3).map(|k| parish.score(&report, k)).collect();
        eprintln!("{via:?}: correlation with services 1-3: {scores:?}");
        assert!(
            scores[1] >= 0.9,
            "{via:?}: service 2 was not heard ({scores:?})"
        );
        // The services share a background sweep, so the others match a
        // little too; the one chosen must match best.
        assert!(
            scores[1] > scores[0] && scores[1] > scores[2],
            "{via:?}: {scores:?}"
        );
        assert_one_clean_stream(&report);
    }
    let played = played(&line);
    assert_eq!(
        played.iter().filter(|p| *p == "service middle.mp3").count(),
        3,
        "{played:?}"
    );
    assert_eq!(line.log_count("caller pressed a key"), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_press_sent_three_ways_at_once_counts_once() {
    if !tools() {
        return;
    }
    let parish = ThreeServices::new(4.0);
    let line = parish.line(&[]);
    let report = call(
        &line,
        vec![press(3_000, '3')],
        &[KeyChannel::Rfc4733, KeyChannel::SipInfo, KeyChannel::InBand],
        None,
    )
    .await;
    assert_eq!(report.dtmf_sent.len(), 3, "sent three ways");
    assert!(parish.score(&report, 3) >= 0.9);
    assert_eq!(
        line.log_count("caller pressed a key"),
        1,
        "{}",
        line.log_text()
    );
    assert!(line.log_count("counted once") >= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_key_says_the_menu_twice_then_plays_the_latest_service_then_goodbye() {
    if !tools() {
        return;
    }
    let parish = ThreeServices::new(4.0);
    let line = parish.line(&[("DAS_LINE_MENU_TIMEOUT", "2s".to_owned())]);
    let report = call(&line, Vec::new(), &[], None).await;
    assert!(matches!(report.hung_up_by, HangUp::FarEnd));
    assert_eq!(
        played(&line),
        ["greeting", "menu", "service newest.mp3", "goodbye"],
        "{}",
        line.log_text()
    );
    let score = parish.score(&report, 1);
    assert!(score >= 0.9, "the latest service plays ({score:.3})");
    // The goodbye closes the recording.
    let goodbye = prompt(&Path::new(env!("CARGO_MANIFEST_DIR")).join("audio/prompts/goodbye.opus"));
    let tail = &report.samples[report.samples.len().saturating_sub(5 * RATE as usize)..];
    let score = audio::correlation(tail, &goodbye, RATE, 4.0);
    assert!(
        score >= 0.8,
        "the goodbye is the last thing said ({score:.3})"
    );
    assert_one_clean_stream(&report);
}

/// Bytes no decoder takes for audio.
fn garbage() -> Vec<u8> {
    let mut seed = 0x2545_f491_u32;
    (0..32 * 1024)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_newest_service_gives_way_to_the_one_before_it_and_the_apology_comes_last() {
    if !tools() {
        return;
    }
    let parish = ThreeServices::new(4.0);
    let audio_dir = parish.dir.path().join("audio");
    let oldest = std::fs::read(audio_dir.join("oldest.mp3")).unwrap();
    std::fs::write(audio_dir.join("newest.mp3"), garbage()).unwrap();
    let line = parish.line(&[("DAS_LINE_MENU_TIMEOUT", "2s".to_owned())]);
    assert_eq!(
        line.log_count("service not offered"),
        1,
        "{}",
        line.log_text()
    );

    // A caller who presses nothing: told, then the service before it.
    let report = call(&line, Vec::new(), &[], None).await;
    assert!(matches!(report.hung_up_by, HangUp::FarEnd));
    assert_eq!(
        played(&line),
        ["greeting", "menu", "service middle.mp3 instead", "goodbye"],
        "{}",
        line.log_text()
    );
    let score = parish.score(&report, 2);
    assert!(score >= 0.9, "the service before it plays ({score:.3})");
    let whole = report.samples.len() as f32 / RATE as f32;
    let sentence = prompt(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("audio/prompts/cannot-play-here-is.opus"),
    );
    let said = audio::correlation(&report.samples, &sentence, RATE, whole);
    assert!(said >= 0.8, "\"We can't play that service…\" ({said:.3})");
    let apology = prompt(&Path::new(env!("CARGO_MANIFEST_DIR")).join("audio/apology.wav"));
    let apologised = audio::correlation(&report.samples, &apology, RATE, whole);
    assert!(apologised < 0.5, "never the apology ({apologised:.3})");

    // The menu offers the two that play: key 1 is now the middle one, and
    // there is no key 3.
    call(
        &line,
        vec![press(2_500, '3')],
        &[KeyChannel::Rfc4733],
        Some(6),
    )
    .await;
    let sorry = played(&line)
        .iter()
        .filter(|p| *p == "not an option")
        .count();
    assert_eq!(sorry, 1, "{}", line.log_text());

    // Every file broken: the apology, as the last resort.
    std::fs::write(audio_dir.join("middle.mp3"), garbage()).unwrap();
    std::fs::write(audio_dir.join("oldest.mp3"), garbage()).unwrap();
    line.wait_for_log("service not offered", 3, Duration::from_secs(8))
        .await;
    let report = call(&line, Vec::new(), &[], None).await;
    assert!(matches!(report.hung_up_by, HangUp::FarEnd));
    let whole = report.samples.len() as f32 / RATE as f32;
    let apologised = audio::correlation(&report.samples, &apology, RATE, whole);
    assert!(apologised >= 0.9, "the apology ({apologised:.3})");

    // Mended: offered again within the line's next look.
    std::fs::write(audio_dir.join("oldest.mp3"), oldest).unwrap();
    line.wait_for_log("service plays again", 1, Duration::from_secs(8))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_key_is_sorry_then_the_menu_and_star_comes_back_from_a_service() {
    if !tools() {
        return;
    }
    let parish = ThreeServices::new(20.0);
    let line = parish.line(&[]);
    // 7 is on no menu; then 1; then star mid-service; then 3.
    let presses = vec![
        press(2_000, '7'),
        press(6_000, '1'),
        press(9_000, '*'),
        press(11_000, '3'),
    ];
    let report = call(&line, presses, &[KeyChannel::Rfc4733], Some(16)).await;
    assert_eq!(
        played(&line),
        [
            "greeting",
            "not an option",
            "menu",
            "service newest.mp3",
            "menu",
            "service oldest.mp3"
        ],
        "{}",
        line.log_text()
    );
    let sorry =
        prompt(&Path::new(env!("CARGO_MANIFEST_DIR")).join("audio/prompts/not-an-option.opus"));
    let first_seconds = &report.samples[..(6 * RATE as usize).min(report.samples.len())];
    let score = audio::correlation(first_seconds, &sorry, RATE, 6.0);
    assert!(
        score >= 0.8,
        "the caller heard the apology for the key ({score:.3})"
    );
    assert!(parish.score(&report, 3) >= 0.9);
    assert_one_clean_stream(&report);
}

/// A chirp from 300 Hz rising 30 Hz a second: the pitch heard says where in
/// the service the caller is.
fn chirp_service(dir: &Path, seconds: u32) -> PathBuf {
    let path = dir.join("chirp.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&path, spec).unwrap();
    for n in 0..seconds * RATE {
        let t = f64::from(n) / f64::from(RATE);
        let phase = 2.0 * std::f64::consts::PI * (300.0 * t + 15.0 * t * t);
        writer
            .write_sample((0.4 * phase.sin() * 32767.0) as i16)
            .unwrap();
    }
    writer.finalize().unwrap();
    path
}

/// The service position (seconds) heard around sample `at`, from the
/// chirp's pitch; `None` in silence.
fn position_at(samples: &[f32], at: usize) -> Option<f32> {
    const WINDOW: usize = 800;
    let window = samples.get(at..at + WINDOW)?;
    if audio::rms(window) < 0.02 {
        return None;
    }
    // The strongest of 10 Hz-spaced probe frequencies (a DFT by hand).
    let (best_hz, _) = (30..=340)
        .map(|k| {
            let hz = k as f32 * 10.0;
            let (mut re, mut im) = (0f32, 0f32);
            for (i, &s) in window.iter().enumerate() {
                let w = 2.0 * std::f32::consts::PI * hz * i as f32 / RATE as f32;
                re += s * w.cos();
                im += s * w.sin();
            }
            (hz, re * re + im * im)
        })
        .fold((0.0, 0.0), |best, x| if x.1 > best.1 { x } else { best });
    Some((best_hz - 300.0) / 30.0)
}

/// The recording's sample index for an instant, from the packet that
/// arrived next and its RTP timestamp.
fn sample_at(report: &CallReport, instant: Instant) -> usize {
    let first = report.packets[0].timestamp;
    let packet = report
        .packets
        .iter()
        .find(|p| p.arrival >= instant)
        .expect("audio after the instant");
    packet.timestamp.wrapping_sub(first) as usize
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_4_6_5_0_move_in_the_service_as_the_recording_shows() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let audio_dir = dir.path().join("audio");
    std::fs::create_dir(&audio_dir).unwrap();
    chirp_service(&audio_dir, 100);
    // One service: it follows the greeting, no menu.
    write_schedule(dir.path(), &[("Chirp", "chirp.wav")]);
    let line = Line::start(&source_env(&dir.path().join("data.json"), &audio_dir));
    let presses = vec![
        press(6_000, '6'),
        press(9_000, '4'),
        press(12_000, '5'),
        press(15_000, '5'),
        press(18_000, '0'),
    ];
    let report = call(&line, presses, &[KeyChannel::Rfc4733], Some(21)).await;
    let s = &report.samples;
    let at = |i: usize| sample_at(&report, report.dtmf_sent[i].at);
    let pos = |sample: usize| position_at(s, sample);
    let secs = |n: f32| (n * RATE as f32) as usize;
    let near = |got: Option<f32>, want: f32, what: &str| {
        let got = got.unwrap_or_else(|| panic!("{what}: silence"));
        assert!(
            (got - want).abs() < 1.0,
            "{what}: at {got:.1} s, expected {want:.1} s"
        );
    };

    // 6: thirty seconds on.
    let before = pos(at(0) - secs(0.3)).expect("the service plays before 6");
    near(pos(at(0) + secs(0.3)), before + 30.6, "after 6");
    // 4: thirty seconds back.
    let before = pos(at(1) - secs(0.3)).unwrap();
    near(pos(at(1) + secs(0.3)), before - 29.4, "after 4");
    // 5: silence while paused, then on from where it stopped.
    let paused_at = pos(at(2) - secs(0.3)).unwrap();
    assert_eq!(pos(at(2) + secs(1.0)), None, "silent while paused");
    assert_eq!(pos(at(3) - secs(0.5)), None, "still paused");
    near(pos(at(3) + secs(0.3)), paused_at + 0.6, "resumed");
    // 0: from the start.
    near(pos(at(4) + secs(0.3)), 0.3, "after 0");
    assert_one_clean_stream(&report);
}

/// A prompt as heard at 8 kHz (ffmpeg decodes Ogg Opus; sox may not).
fn prompt(path: &Path) -> Vec<f32> {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("prompt.wav");
    audio::convert(path, &wav, &["-ar", "8000", "-ac", "1"]);
    audio::read_wav(&wav).0
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caller_who_stopped_carries_on_from_just_before_where_they_were() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let audio_dir = dir.path().join("audio");
    std::fs::create_dir(&audio_dir).unwrap();
    // Longer than a minute heard plus the last two minutes.
    chirp_service(&audio_dir, 220);
    write_schedule(dir.path(), &[("Chirp", "chirp.wav")]);
    let line = Line::start(&source_env(&dir.path().join("data.json"), &audio_dir));
    let caller = |from: &str, presses: Vec<DtmfPress>, seconds: u64| {
        let mut options = CallOptions::new(line.uri(), Codec::Pcmu);
        options.from_user = from.to_owned();
        options.dtmf = presses;
        options.dtmf_via = vec![KeyChannel::Rfc4733];
        options.seconds = Some(Duration::from_secs(seconds));
        options
    };

    // A caller with a number listens for over a minute, then hangs up.
    let first = place_call(caller("+441134960001", vec![], 68))
        .await
        .unwrap();
    let s = &first.samples;
    let stopped = position_at(s, s.len() - RATE as usize / 2).expect("the service was playing");
    assert!(stopped > 60.0, "heard past a minute: at {stopped:.1} s");

    // They call again and press 1 during the offer.
    let again = place_call(caller("+441134960001", vec![press(4_000, '1')], 8))
        .await
        .unwrap();
    assert_eq!(
        line.log_count("offering to carry on"),
        1,
        "{}",
        line.log_text()
    );
    let pressed = sample_at(&again, again.dtmf_sent[0].at);
    let heard = position_at(&again.samples, pressed + (1.5 * RATE as f32) as usize)
        .expect("the service plays after 1");
    // Ten seconds before where they stopped, 1.5 s on (less the key's trip).
    let from = heard - 1.5;
    assert!(
        (stopped - 11.5..=stopped).contains(&from),
        "carried on from {from:.1} s, stopped at {stopped:.1} s"
    );
    // The offer was heard before it.
    let offer =
        prompt(&Path::new(env!("CARGO_MANIFEST_DIR")).join("audio/prompts/welcome-back.opus"));
    let said = audio::correlation(&again.samples[..pressed], &offer, RATE, 4.0);
    assert!(said >= 0.8, "\"Welcome back.\" ({said:.3})");

    // A withheld number is offered nothing.
    place_call(caller("anonymous", vec![], 3)).await.unwrap();
    assert_eq!(line.log_count("offering to carry on"), 1);

    // Pressing nothing after the offer: the usual greeting follows.
    place_call(caller("+441134960001", vec![], 16))
        .await
        .unwrap();
    assert_eq!(line.log_count("offering to carry on"), 2);
    assert!(
        played(&line).iter().any(|p| p == "greeting"),
        "{}",
        line.log_text()
    );
}

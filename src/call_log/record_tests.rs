//! Records built under a virtual clock.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::*;
use crate::call::menu::Phrase;
use crate::source::schedule::Service;

fn service(title: Option<&str>, file: &str) -> Programme {
    Programme::Service(Service {
        title: title.map(str::to_owned),
        datetime: DateTime::parse_from_rfc3339("2026-11-01T10:30:00+00:00").unwrap(),
        file: file.to_owned(),
        title_audio: None,
    })
}

fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-01T12:00:00.75Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn s(seconds: f64) -> Duration {
    Duration::from_secs_f64(seconds)
}

#[test]
fn a_key_then_a_service_heard_part_way_then_the_caller_hangs_up() {
    let t0 = Instant::now();
    let mut builder = RecordBuilder::new(start(), t0, Codec::Pcmu);
    builder.handle_caller("\"Mary\" <sip:+441134960000@trunk.example>;tag=9");
    let greeting = Programme::Speech(vec![vec![Phrase::ThanksForCalling]]);
    builder.handle_play(1, &greeting, t0);
    builder.handle_key(Key::Digit(2));
    builder.handle_play(
        2,
        &service(Some("Choral Evensong"), "evensong.mp3"),
        t0 + s(4.0),
    );
    // The greeting's end crossed the key: ignored.
    builder.handle_played(1, Outcome::Completed, t0 + s(4.01));
    let (record, caller) = builder.finish(EndReason::CallerHungUp, t0 + s(47.26));

    assert_eq!(caller, Presented::Number("+441134960000".to_owned()));
    assert_eq!(record.keys, "2");
    assert_eq!(record.duration_s, 47.3);
    assert_eq!(record.ended, "call.caller_hung_up");
    assert_eq!(record.codec, "pcmu");
    assert_eq!(
        record.services,
        [ServiceHeard {
            title: "Choral Evensong".to_owned(),
            date: "2026-11-01T10:30:00+00:00".to_owned(),
            heard_s: 43.3,
            completed: false,
            failed: false,
        }]
    );
    let line = record.to_line();
    assert!(
        line.starts_with(r#"{"start":"2026-11-01T12:00:00Z","#),
        "{line}"
    );
    assert!(
        !line.contains("\"caller"),
        "the caller is privacy's to write: {line}"
    );
    assert!(!line.contains("self_test"), "{line}");
    let back: CallRecord = serde_json::from_str(&line).unwrap();
    assert_eq!(
        back.start,
        "2026-11-01T12:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(back.services, record.services);
}

#[test]
fn pauses_are_not_heard_and_a_service_that_ends_is_completed() {
    let t0 = Instant::now();
    let mut builder = RecordBuilder::new(start(), t0, Codec::Opus);
    builder.handle_play(
        3,
        &service(None, "https://x.example/a.mp3?token=secret"),
        t0,
    );
    builder.handle_pause(t0 + s(10.0));
    builder.handle_pause(t0 + s(11.0)); // twice: still one pause
    builder.handle_resume(t0 + s(70.0));
    builder.handle_played(3, Outcome::Completed, t0 + s(100.0));
    builder.handle_play(
        4,
        &Programme::Speech(vec![vec![Phrase::Goodbye]]),
        t0 + s(100.0),
    );
    let (record, caller) = builder.finish(EndReason::ContentFinished, t0 + s(103.0));
    assert_eq!(caller, Presented::Withheld, "no From seen");
    let heard = &record.services[0];
    assert_eq!(heard.heard_s, 40.0);
    assert!(heard.completed);
    assert!(!heard.title.contains("secret"), "{}", heard.title);
    assert_eq!(record.ended, "call.finished");
}

#[test]
fn a_service_cut_off_by_another_and_a_failed_one() {
    let t0 = Instant::now();
    let mut builder = RecordBuilder::new(start(), t0, Codec::Pcma);
    builder.handle_key(Key::Digit(1));
    builder.handle_play(1, &service(Some("One"), "1.mp3"), t0);
    builder.handle_key(Key::Digit(2));
    builder.handle_play(2, &service(Some("Two"), "2.mp3"), t0 + s(5.0));
    builder.handle_played(2, Outcome::Failed, t0 + s(9.0));
    let (record, _) = builder.finish(EndReason::ContentFinished, t0 + s(9.0));
    assert_eq!(record.keys, "12");
    let heard: Vec<(f64, bool, bool)> = record
        .services
        .iter()
        .map(|s| (s.heard_s, s.completed, s.failed))
        .collect();
    assert_eq!(heard, [(5.0, false, false), (4.0, false, true)]);
}

#[test]
fn a_keypad_leaned_on_makes_a_bounded_record() {
    let t0 = Instant::now();
    let mut builder = RecordBuilder::new(start(), t0, Codec::Pcmu);
    for n in 0..10_000u32 {
        builder.handle_key(Key::Digit(1));
        builder.handle_play(n, &service(Some("One"), "1.mp3"), t0);
    }
    let (record, _) = builder.finish(EndReason::MaxDuration, t0);
    assert_eq!(record.keys.len(), MAX_KEYS);
    assert_eq!(record.services.len(), MAX_SERVICES);
}

//! [`Calls`] under a virtual clock: no sockets, no media threads, no
//! sleeps. The media engine's side is played by hand (its events are fed
//! in), and what the calls ask for is read from their queues.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::call::flow;
use crate::call::resume::ResumeBook;
use crate::content::Catalogue;
use crate::media::pacer::Programme;
use crate::prompts::Prompts;
use crate::sdp::Direction;

const CALL: CallId = CallId(7);
const RTP_PORT: u16 = 30_000;
/// A caller who withholds their number.
const ANONYMOUS: Caller<'static> = Caller::From("<sip:anonymous@anonymous.invalid>");

/// Writes `data.json` offering `files` (oldest first), all in the past.
fn write_schedule(dir: &Path, files: &[&str]) {
    let services: Vec<String> = files
        .iter()
        .enumerate()
        .map(|(i, file)| {
            format!(
                r#"{{ "title": "Service {i}", "datetime": "2024-01-0{}T10:00:00Z", "file": "{file}" }}"#,
                i + 1
            )
        })
        .collect();
    let json = format!(
        r#"{{ "church_name": "St Test's", "services": [{}] }}"#,
        services.join(",")
    );
    std::fs::write(dir.join("data.json"), json).unwrap();
}

struct World {
    calls: Calls,
    content: Arc<Content>,
    dir: tempfile::TempDir,
    now: Instant,
    wall: DateTime<Utc>,
}

impl World {
    fn new(files: &[&str]) -> World {
        let dir = tempfile::tempdir().unwrap();
        write_schedule(dir.path(), files);
        let content = Content::new(
            Catalogue::Local {
                schedule: dir.path().join("data.json"),
                audio: dir.path().to_path_buf(),
            },
            dir.path().join("apology.wav"),
            4,
            Prompts::load(Path::new("/nonexistent"), &[], None),
        );
        content.reload_schedule();
        let dtmf = DtmfConfig {
            rfc4733: true,
            info: true,
            inband: true,
            inband_opus: false,
        };
        World {
            calls: Calls::new(FlowConfig::default(), dtmf),
            content: Arc::new(content),
            dir,
            now: Instant::now(),
            wall: "2026-12-06T10:00:00Z".parse().unwrap(),
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.wall += chrono::Duration::from_std(by).unwrap();
    }

    /// INVITE answered, then ACKed: the stream starts.
    fn answer(&mut self, call: CallId) -> (u32, Staged) {
        self.calls.prepare(
            call,
            Codec::Pcmu,
            ANONYMOUS,
            &self.content,
            self.now,
            self.wall,
        );
        self.ack(call);
        match self.calls.poll_media() {
            Some(MediaCommand::Start {
                call: started,
                rtp_port,
                stream,
                programme,
            }) => {
                assert_eq!((started, rtp_port), (call, RTP_PORT));
                assert_eq!(stream.remote_rtp, "127.0.0.1:40000".parse().unwrap());
                assert_eq!(stream.remote_rtcp, "127.0.0.1:40001".parse().unwrap());
                assert!(stream.sending);
                (stream.steering.tag, programme)
            }
            _ => panic!("the ACK starts the stream"),
        }
    }

    /// The caller's ACK, with PCMU negotiated.
    fn ack(&mut self, call: CallId) {
        let (now, wall) = (self.now, self.wall);
        self.calls
            .start(call, RTP_PORT, &negotiated(), &self.content, now, wall);
    }

    /// What the calls asked to prepare since last asked, by label.
    fn prepared(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.calls.poll_preparation())
            .map(|p| p.label())
            .collect()
    }

    /// The `Play` commands queued since last asked: (tag, label of what
    /// was prepared for it).
    fn plays(&mut self) -> Vec<(u32, String)> {
        let labels = self.prepared();
        let tags: Vec<u32> = std::iter::from_fn(|| self.calls.poll_media())
            .filter_map(|command| match command {
                MediaCommand::Control {
                    control: Control::Play { tag, programme },
                    ..
                } => {
                    assert!(matches!(programme, Staged::Preparing(_)));
                    Some(tag)
                }
                _ => None,
            })
            .collect();
        assert_eq!(tags.len(), labels.len(), "one preparation per play");
        tags.into_iter().zip(labels).collect()
    }

    fn controls(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.calls.poll_media())
            .map(|command| match command {
                MediaCommand::Control { control, .. } => match control {
                    Control::Play { tag, .. } => format!("play {tag}"),
                    Control::SeekBy(frames) => format!("seek {frames}"),
                    Control::Restart => "restart".into(),
                    Control::Pause => "pause".into(),
                    Control::Resume => "resume".into(),
                },
                MediaCommand::Start { .. } => "start".into(),
            })
            .collect()
    }

    fn played(&mut self, call: CallId, tag: u32) {
        let event = MediaEvent::Played {
            id: StreamId(call.0),
            tag,
            failed: false,
        };
        self.calls.handle_media_event(event, self.now, self.wall);
    }

    fn key(&mut self, call: CallId, key: char, channel: KeyChannel) {
        let event = MediaEvent::Key {
            id: StreamId(call.0),
            key: Key::from_char(key).unwrap(),
            channel,
        };
        self.calls.handle_media_event(event, self.now, self.wall);
    }

    /// Runs the calls' timers up to now.
    fn tick(&mut self) {
        if self.calls.poll_timeout().is_some_and(|at| at <= self.now) {
            self.calls.handle_timeout(self.now, self.wall);
        }
    }
}

fn negotiated() -> Negotiated {
    Negotiated {
        codec: Codec::Pcmu,
        payload_type: PayloadType(0),
        telephone_event: Some(PayloadType(101)),
        remote_rtp: Some("127.0.0.1:40000".parse().unwrap()),
        remote_rtcp: None,
        local_direction: Direction::SendRecv,
    }
}

#[test]
fn the_answer_stages_the_greeting_before_the_ack_and_starts_the_stream_with_it() {
    let mut world = World::new(&["a.mp3", "b.mp3"]);
    world.calls.prepare(
        CALL,
        Codec::Pcmu,
        ANONYMOUS,
        &world.content,
        world.now,
        world.wall,
    );
    // Before the ACK: the greeting is being prepared, no stream yet.
    assert_eq!(world.prepared(), ["greeting"]);
    assert!(world.calls.poll_media().is_none());
    world.ack(CALL);
    let Some(MediaCommand::Start { programme, .. }) = world.calls.poll_media() else {
        panic!("the stream starts");
    };
    assert!(
        matches!(programme, Staged::Preparing(_)),
        "the stream waits for the greeting staged at the answer"
    );
    // Not prepared twice.
    assert!(world.prepared().is_empty());
    assert!(world.calls.take_hang_ups().is_empty());
}

#[test]
fn a_key_plays_the_service_it_names_once_however_many_ways_it_came() {
    let mut world = World::new(&["a.mp3", "b.mp3"]);
    let (greeting, _) = world.answer(CALL);
    world.prepared();
    world.advance(Duration::from_secs(3));
    // Key 1 names the newest service.
    world.key(CALL, '1', KeyChannel::Rfc4733);
    let plays = world.plays();
    assert_eq!(plays.len(), 1);
    assert!(plays[0].0 > greeting);
    assert_eq!(plays[0].1, "service b.mp3");
    // The same press heard in-band a moment later is not a second press.
    world.advance(Duration::from_millis(40));
    world.key(CALL, '1', KeyChannel::InBand);
    assert!(world.controls().is_empty());
    // 6 skips forward 30 s: 1,500 frames of 20 ms.
    world.advance(Duration::from_secs(2));
    world.key(CALL, '6', KeyChannel::SipInfo);
    assert_eq!(world.controls(), ["seek 1500"]);
}

#[test]
fn silence_after_the_menu_plays_the_latest_service_on_the_virtual_clock() {
    let mut world = World::new(&["a.mp3", "b.mp3"]);
    let (greeting, _) = world.answer(CALL);
    world.prepared();
    world.played(CALL, greeting);
    // Waiting for a key: the first wake is the menu timeout.
    let wake = world.calls.poll_timeout().expect("a timer for the menu");
    assert_eq!(wake, world.now + Duration::from_secs(10));
    world.advance(Duration::from_secs(10));
    world.tick();
    let menu = world.plays();
    assert_eq!(menu.len(), 1);
    assert_eq!(menu[0].1, "menu");
    world.played(CALL, menu[0].0);
    world.advance(Duration::from_secs(10));
    world.tick();
    let service = world.plays();
    assert_eq!(service[0].1, "service b.mp3");
}

#[test]
fn the_end_of_the_service_says_goodbye_then_the_line_hangs_up() {
    let mut world = World::new(&["only.mp3"]);
    let (greeting, _) = world.answer(CALL);
    world.prepared();
    // One service: it follows the greeting without a menu.
    world.played(CALL, greeting);
    let service = world.plays();
    assert_eq!(service[0].1, "service only.mp3");
    world.advance(Duration::from_secs(90));
    world.played(CALL, service[0].0);
    let goodbye = world.plays();
    assert_eq!(goodbye[0].1, "goodbye");
    assert!(world.calls.take_hang_ups().is_empty());
    world.played(CALL, goodbye[0].0);
    assert_eq!(
        world.calls.take_hang_ups(),
        [(CALL, EndReason::ContentFinished)]
    );
    // The endpoint sends BYE, stops the media and reports the end.
    world.calls.stop(CALL);
    world.advance(Duration::from_secs(1));
    let (record, _) = world
        .calls
        .finish_record(
            CALL,
            EndReason::ContentFinished,
            &world.content,
            world.now,
            world.wall,
        )
        .expect("an answered call has a record");
    assert_eq!(record.ended, EndReason::ContentFinished.code());
    assert_eq!(record.services.len(), 1);
    assert_eq!(record.duration_s, 91.0);
}

#[test]
fn a_callers_bye_ends_the_flow_and_late_media_events_change_nothing() {
    let mut world = World::new(&["a.mp3", "b.mp3"]);
    let (greeting, _) = world.answer(CALL);
    world.prepared();
    world.key(CALL, '2', KeyChannel::Rfc4733);
    let plays = world.plays();
    assert_eq!(plays[0].1, "service a.mp3");
    world.advance(Duration::from_secs(30));
    // The caller hangs up: the endpoint stops the media, then reports.
    world.calls.stop(CALL);
    let (record, _) = world
        .calls
        .finish_record(
            CALL,
            EndReason::CallerHungUp,
            &world.content,
            world.now,
            world.wall,
        )
        .unwrap();
    assert_eq!(record.ended, EndReason::CallerHungUp.code());
    assert_eq!(record.keys, "2");
    // Events already on their way from the media threads.
    world.played(CALL, greeting);
    world.played(CALL, plays[0].0);
    world.key(CALL, '1', KeyChannel::Rfc4733);
    // Its timers, if any are left, wake to nothing.
    world.advance(Duration::from_secs(600));
    world.tick();
    assert!(world.controls().is_empty());
    assert!(world.prepared().is_empty());
    assert!(world.calls.take_hang_ups().is_empty());
    assert!(
        world
            .calls
            .finish_record(
                CALL,
                EndReason::CallerHungUp,
                &world.content,
                world.now,
                world.wall
            )
            .is_none(),
        "logged once"
    );
}

#[test]
fn a_schedule_refreshed_during_a_call_reaches_the_next_caller_only() {
    let mut world = World::new(&["old.mp3"]);
    let first = CallId(1);
    let (greeting, _) = world.answer(first);
    world.prepared();
    // The parish publishes a new service while the first caller listens
    // to the greeting; the line reads it off the loop.
    world.advance(Duration::from_secs(2));
    write_schedule(world.dir.path(), &["old.mp3", "new.mp3"]);
    // A different length or time tells the edit; make sure of the time.
    let schedule = world.dir.path().join("data.json");
    let file = std::fs::File::options()
        .write(true)
        .open(&schedule)
        .unwrap();
    file.set_modified(std::time::SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    world.content.reload_schedule();
    // The first call's menu was fixed at its answer: one service, played
    // straight after the greeting.
    world.played(first, greeting);
    assert_eq!(world.plays()[0].1, "service old.mp3");
    // The next caller is offered both; key 1 is the new one.
    let second = CallId(2);
    world.answer(second);
    world.prepared();
    world.key(second, '1', KeyChannel::Rfc4733);
    assert_eq!(world.plays()[0].1, "service new.mp3");
}

#[test]
fn a_codec_changed_by_the_ack_stages_the_greeting_again() {
    let mut world = World::new(&["a.mp3"]);
    world.calls.prepare(
        CALL,
        Codec::Opus,
        ANONYMOUS,
        &world.content,
        world.now,
        world.wall,
    );
    assert_eq!(world.prepared(), ["greeting"]);
    world.ack(CALL);
    assert_eq!(world.prepared(), ["greeting"], "in PCMU this time");
    assert!(matches!(
        world.calls.poll_media(),
        Some(MediaCommand::Start { stream, .. }) if stream.codec == Codec::Pcmu
    ));
}

#[test]
fn a_preparation_fills_the_staged_programme_from_the_content() {
    let world = World::new(&["missing.mp3"]);
    let (staged, preparation) = world.content.stage(flow::Programme::Apology, Codec::Pcmu);
    let Staged::Preparing(preparing) = staged else {
        panic!("staged, not ready");
    };
    assert!(preparing.get().is_none());
    preparation.run();
    let programme: &Programme = preparing.get().expect("filled");
    // No apology file here: the built-in tones play instead.
    assert_eq!(programme.items.len(), 1);
}

#[test]
fn a_preparation_that_never_runs_still_lets_the_stream_go_on() {
    let world = World::new(&["a.mp3"]);
    let (staged, preparation) = world.content.stage(flow::Programme::Apology, Codec::Pcmu);
    let Staged::Preparing(preparing) = staged else {
        panic!("staged, not ready");
    };
    drop(preparation);
    let programme = preparing.get().expect("filled when dropped");
    let mut out = Vec::new();
    assert_eq!(
        programme.items[0].read_frame(0, &mut out),
        crate::media::track::FrameRead::Failed,
        "fails at once, so the flow moves on"
    );
}

#[test]
fn in_band_keys_are_heard_on_g711_calls_and_on_opus_only_when_asked() {
    let inband_on = |world: &mut World, codec: Codec| {
        let (now, wall) = (world.now, world.wall);
        world
            .calls
            .prepare(CALL, codec, ANONYMOUS, &world.content, now, wall);
        let negotiated = Negotiated {
            codec,
            payload_type: PayloadType(if codec == Codec::Opus { 111 } else { 0 }),
            ..negotiated()
        };
        world
            .calls
            .start(CALL, RTP_PORT, &negotiated, &world.content, now, wall);
        match world.calls.poll_media() {
            Some(MediaCommand::Start { stream, .. }) => {
                assert!(stream.keys.rfc4733);
                stream.keys.inband
            }
            _ => panic!("the ACK starts the stream"),
        }
    };
    assert!(inband_on(&mut World::new(&["a.mp3"]), Codec::Pcmu));
    assert!(!inband_on(&mut World::new(&["a.mp3"]), Codec::Opus));
    let mut world = World::new(&["a.mp3"]);
    world.calls = Calls::new(
        FlowConfig::default(),
        DtmfConfig {
            rfc4733: true,
            info: true,
            inband: true,
            inband_opus: true,
        },
    );
    assert!(inband_on(&mut world, Codec::Opus));
}

#[test]
fn a_caller_who_stopped_is_offered_to_carry_on_and_1_goes_back_ten_seconds_before() {
    const CALLER: &str = "<sip:+441134960000@trunk.example>;tag=x";
    let mut world = World::new(&["a.mp3", "b.mp3"]);
    let keep = Duration::from_secs(14 * 24 * 3600);
    world.calls = Calls::new(FlowConfig::default(), world.calls.dtmf)
        .with_resume(ResumeBook::new(b"install key", keep));
    let answer = |world: &mut World, call: CallId, from: &str| {
        let (now, wall) = (world.now, world.wall);
        world.calls.prepare(
            call,
            Codec::Pcmu,
            Caller::From(from),
            &world.content,
            now,
            wall,
        );
        let first = world.prepared();
        world.ack(call);
        world.calls.poll_media();
        first
    };
    // First call: key 2 (b.mp3), 70 s heard, 30 s moved on with 6: at 100 s.
    assert_eq!(answer(&mut world, CALL, CALLER), ["greeting"]);
    world.key(CALL, '2', KeyChannel::Rfc4733);
    assert_eq!(world.plays()[0].1, "service a.mp3");
    world.advance(Duration::from_secs(40));
    world.key(CALL, '6', KeyChannel::Rfc4733);
    world.advance(Duration::from_secs(30));
    world.calls.stop(CALL);
    let (now, wall) = (world.now, world.wall);
    world
        .calls
        .finish_record(CALL, EndReason::CallerHungUp, &world.content, now, wall)
        .unwrap();
    assert!(world.calls.take_resume_changes().is_some(), "to be written");

    // The same number calls again: the offer comes first.
    let again = CallId(CALL.0 + 1);
    assert_eq!(answer(&mut world, again, CALLER), ["speech"]);
    world.controls();
    world.key(again, '1', KeyChannel::Rfc4733);
    let controls = world.controls();
    assert_eq!(controls.len(), 2, "{controls:?}");
    assert!(controls[0].starts_with("play"));
    // 100 s reached, 10 s before: 90 s of 20 ms frames.
    assert_eq!(controls[1], "seek 4500");
    assert_eq!(world.prepared(), ["service a.mp3"]);

    // A withheld number: the greeting, no offer.
    let anonymous = CallId(CALL.0 + 2);
    let from = "\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=y";
    assert_eq!(answer(&mut world, anonymous, from), ["greeting"]);
}

#[test]
fn the_self_test_is_not_counted_offered_to_carry_on_or_remembered() {
    let mut world = World::new(&["a.mp3", "b.mp3"]);
    let keep = Duration::from_secs(14 * 24 * 3600);
    let observed = Arc::new(LineState::new(chrono_tz::UTC));
    world.calls = Calls::new(FlowConfig::default(), world.calls.dtmf)
        .with_observer(observed.clone())
        .with_resume(ResumeBook::new(b"install key", keep));
    let (now, wall) = (world.now, world.wall);
    world.calls.prepare(
        CALL,
        Codec::Pcmu,
        Caller::SelfTest,
        &world.content,
        now,
        wall,
    );
    assert_eq!(world.prepared(), ["greeting"]);
    world.ack(CALL);
    world.calls.poll_media();
    world.key(CALL, '1', KeyChannel::Rfc4733);
    assert_eq!(world.plays()[0].1, "service b.mp3");
    world.advance(Duration::from_secs(90));
    world.calls.stop(CALL);
    let (now, wall) = (world.now, world.wall);
    let (record, _) = world
        .calls
        .finish_record(CALL, EndReason::ContentFinished, &world.content, now, wall)
        .unwrap();
    assert!(record.self_test);
    assert!(observed.plays().is_empty(), "{:?}", observed.plays());
    assert!(world.calls.take_resume_changes().is_none());

    // A caller's play is counted.
    let caller = CallId(CALL.0 + 1);
    world.answer(caller);
    world.key(caller, '1', KeyChannel::Rfc4733);
    assert_eq!(observed.plays().len(), 1);
}

#[test]
fn a_caller_pausing_again_and_again_queues_no_more_than_a_few_deadlines() {
    let mut world = World::new(&["a.mp3"]);
    world.answer(CALL);
    world.key(CALL, '1', KeyChannel::Rfc4733);
    for _ in 0..999 {
        world.advance(Duration::from_millis(200));
        world.key(CALL, '5', KeyChannel::Rfc4733);
    }
    assert!(
        world.calls.timers.len() <= 2 + STALE_TIMERS_KEPT + 1,
        "{} deadlines queued",
        world.calls.timers.len()
    );
    // The live one still fires: 999 presses end paused, and the pause
    // ends by itself five minutes on.
    world.controls();
    world.advance(Duration::from_secs(5 * 60));
    world.tick();
    assert_eq!(world.controls(), ["resume"]);
}

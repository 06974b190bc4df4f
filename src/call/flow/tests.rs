use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::*;
use crate::source::schedule::Schedule;

const LONDON: Tz = chrono_tz::Europe::London;
const SECOND: Duration = Duration::from_secs(1);

fn menu(services: usize) -> Menu {
    let entries: Vec<String> = (1..=services)
        .map(|day| {
            format!(
                r#"{{ "title": "Service {day}", "datetime": "2026-03-{day:02}T10:00:00", "file": "s{day}.mp3" }}"#
            )
        })
        .collect();
    let json = format!(
        r#"{{ "church_name": "St Test's", "services": [{}] }}"#,
        entries.join(",")
    );
    let schedule = Schedule::parse_in(&json, LONDON).unwrap();
    let now: DateTime<Utc> = "2026-04-01T00:00:00Z".parse().unwrap();
    Menu::at(&schedule, now, LONDON)
}

/// A call under a virtual clock: `now` only moves when the test says so.
struct Call {
    flow: CallFlow,
    now: Instant,
    /// The tag of the last programme played.
    playing: u32,
}

impl Call {
    fn new(services: usize, config: FlowConfig) -> (Call, Vec<FlowAction>) {
        let menu = (services > 0).then(|| menu(services));
        let mut call = Call {
            flow: CallFlow::new(menu, config),
            now: Instant::now(),
            playing: 0,
        };
        let actions = call.actions();
        (call, actions)
    }

    fn actions(&mut self) -> Vec<FlowAction> {
        let mut out = Vec::new();
        while let Some(action) = self.flow.poll_action() {
            if let FlowAction::Play { tag, .. } = action {
                self.playing = tag;
            }
            out.push(action);
        }
        out
    }

    fn key(&mut self, c: char) -> Vec<FlowAction> {
        self.flow.handle_key(Key::from_char(c).unwrap(), self.now);
        self.actions()
    }

    /// What is playing ends after `after`.
    fn played(&mut self, after: Duration, outcome: Outcome) -> Vec<FlowAction> {
        self.now += after;
        self.flow.handle_played(self.playing, outcome, self.now);
        self.actions()
    }

    /// Advances to the flow's wake-up (checking it is `after` away).
    fn wake(&mut self, after: Duration) -> Vec<FlowAction> {
        let at = self.flow.poll_timeout().expect("a timer is set");
        assert_eq!(at - self.now, after);
        // Woken early: nothing happens.
        self.flow.handle_timeout(at - Duration::from_millis(1));
        assert!(self.flow.poll_action().is_none());
        self.now = at;
        self.flow.handle_timeout(self.now);
        self.actions()
    }
}

fn programme(actions: &[FlowAction]) -> &Programme {
    match actions {
        [FlowAction::Play { programme, .. }] => programme,
        other => panic!("expected one Play, got {other:?}"),
    }
}

fn service_file(actions: &[FlowAction]) -> String {
    match programme(actions) {
        Programme::Service(service) => service.file.clone(),
        other => panic!("expected a service, got {other:?}"),
    }
}

fn sentences(actions: &[FlowAction]) -> Vec<Vec<Phrase>> {
    match programme(actions) {
        Programme::Speech(sentences) => sentences.clone(),
        other => panic!("expected speech, got {other:?}"),
    }
}

#[test]
fn greeting_then_menu_with_the_hints_then_a_key_plays_its_service() {
    let (mut call, actions) = Call::new(3, FlowConfig::default());
    let said = sentences(&actions);
    assert_eq!(said[0][0], Phrase::ThanksForCalling);
    assert_eq!(
        said[1],
        vec![Phrase::StayOnTheLine],
        "stay-on-the-line first"
    );
    assert_eq!(said.last().unwrap(), &vec![Phrase::StarReturns]);
    assert_eq!(said.len(), 1 + 1 + 3 + 1);
    // Key 2 in the middle of the menu: barge-in, the second service plays.
    let actions = call.key('2');
    assert_eq!(service_file(&actions), "s2.mp3");
}

#[test]
fn no_key_repeats_the_menu_once_then_plays_the_latest() {
    let (mut call, _) = Call::new(3, FlowConfig::default());
    assert_eq!(call.played(20 * SECOND, Outcome::Completed), vec![]);
    let again = sentences(&call.wake(10 * SECOND));
    assert_eq!(again[0], vec![Phrase::StayOnTheLine], "no second greeting");
    assert!(
        !again.contains(&vec![Phrase::StarReturns]),
        "the star hint is said once"
    );
    assert_eq!(call.played(15 * SECOND, Outcome::Completed), vec![]);
    assert_eq!(service_file(&call.wake(10 * SECOND)), "s3.mp3");
}

#[test]
fn a_key_with_no_service_is_sorry_then_the_menu() {
    let (mut call, _) = Call::new(2, FlowConfig::default());
    for wrong in ['7', '#', 'A'] {
        let said = sentences(&call.key(wrong));
        assert_eq!(said, vec![vec![Phrase::NotAnOption]], "key {wrong}");
        let menu = sentences(&call.played(2 * SECOND, Outcome::Completed));
        assert_eq!(menu[0], vec![Phrase::StayOnTheLine]);
    }
    // Back to round one: two full timeouts before the latest plays.
    call.played(10 * SECOND, Outcome::Completed);
    sentences(&call.wake(10 * SECOND));
    call.played(10 * SECOND, Outcome::Completed);
    assert_eq!(service_file(&call.wake(10 * SECOND)), "s2.mp3");
}

#[test]
fn star_or_zero_repeats_the_menu_even_while_waiting() {
    let (mut call, _) = Call::new(2, FlowConfig::default());
    call.played(10 * SECOND, Outcome::Completed);
    call.now += 4 * SECOND;
    let said = sentences(&call.key('*'));
    assert_eq!(said[0], vec![Phrase::StayOnTheLine]);
    let said = sentences(&call.key('0'));
    assert_eq!(said[0], vec![Phrase::StayOnTheLine]);
    assert_eq!(call.flow.poll_timeout(), None, "speaking: no timer");
}

#[test]
fn an_end_that_crossed_a_key_press_is_ignored() {
    let (mut call, _) = Call::new(2, FlowConfig::default());
    let old = call.playing;
    call.key('1');
    // The greeting's end, sent before the switch, arrives after it.
    call.flow.handle_played(old, Outcome::Completed, call.now);
    assert_eq!(call.actions(), vec![]);
    assert_eq!(call.flow.poll_timeout(), None);
}

#[test]
fn keys_while_a_service_plays_move_pause_and_return() {
    let (mut call, _) = Call::new(3, FlowConfig::default());
    call.key('1');
    assert_eq!(
        call.key('4'),
        vec![FlowAction::Seek(Seek::Back(30 * SECOND))]
    );
    assert_eq!(
        call.key('6'),
        vec![FlowAction::Seek(Seek::Forward(30 * SECOND))]
    );
    assert_eq!(call.key('0'), vec![FlowAction::Seek(Seek::Start)]);
    assert_eq!(call.key('9'), vec![], "other keys leave the service alone");
    assert_eq!(call.key('#'), vec![]);
    assert_eq!(call.key('5'), vec![FlowAction::Pause]);
    call.now += 10 * SECOND;
    assert_eq!(call.key('5'), vec![FlowAction::Resume]);
    assert_eq!(call.flow.poll_timeout(), None);
    // A pause left alone ends by itself after five minutes.
    call.key('5');
    assert_eq!(call.wake(300 * SECOND), vec![FlowAction::Resume]);
    // Moving while paused resumes too.
    call.key('5');
    assert_eq!(
        call.key('4'),
        vec![
            FlowAction::Resume,
            FlowAction::Seek(Seek::Back(30 * SECOND))
        ]
    );
    // Star: back to the menu, which plays the chosen key afresh.
    let said = sentences(&call.key('*'));
    assert_eq!(said[0], vec![Phrase::StayOnTheLine]);
    assert_eq!(service_file(&call.key('3')), "s1.mp3");
}

#[test]
fn the_end_of_a_service_says_goodbye_then_hangs_up() {
    let (mut call, _) = Call::new(2, FlowConfig::default());
    call.key('2');
    let said = sentences(&call.played(3600 * SECOND, Outcome::Completed));
    assert_eq!(said, vec![vec![Phrase::Goodbye]]);
    assert_eq!(call.key('1'), vec![], "keys during goodbye are ignored");
    assert_eq!(
        call.played(2 * SECOND, Outcome::Completed),
        vec![FlowAction::HangUp]
    );
    assert!(call.flow.is_ended());
}

/// The service played instead, and the sentence before it.
fn instead(actions: &[FlowAction]) -> (String, Vec<Phrase>) {
    match programme(actions) {
        Programme::Instead { sentence, service } => (service.file.clone(), sentence.clone()),
        other => panic!("expected a service instead, got {other:?}"),
    }
}

#[test]
fn a_failed_service_gives_way_to_the_newest_that_plays_then_the_apology() {
    let (mut call, _) = Call::new(3, FlowConfig::default());
    // Key 1 is the newest (s3); it fails part of the way through.
    assert_eq!(service_file(&call.key('1')), "s3.mp3");
    let (file, sentence) = instead(&call.played(5 * SECOND, Outcome::Failed));
    assert_eq!(file, "s2.mp3", "the newest other service");
    // "… so here is the service from Monday the 2nd of March."
    assert_eq!(
        sentence,
        vec![
            Phrase::CannotPlayHereIs,
            Phrase::Weekday(chrono::Weekday::Mon),
            Phrase::The,
            Phrase::Ordinal(2),
            Phrase::Of,
            Phrase::Month(3),
        ]
    );
    // That one will not open either (it fails at once): the next.
    assert_eq!(instead(&call.played(SECOND, Outcome::Failed)).0, "s1.mp3");
    // s1 plays to its end: goodbye as usual.
    assert_eq!(
        sentences(&call.played(60 * SECOND, Outcome::Completed)),
        vec![vec![Phrase::Goodbye]]
    );
}

#[test]
fn when_nothing_plays_the_apology_is_the_last_resort() {
    let (mut call, _) = Call::new(2, FlowConfig::default());
    call.key('2');
    assert_eq!(instead(&call.played(SECOND, Outcome::Failed)).0, "s2.mp3");
    assert_eq!(
        programme(&call.played(SECOND, Outcome::Failed)),
        &Programme::Apology
    );
    assert_eq!(
        call.played(11 * SECOND, Outcome::Completed),
        vec![FlowAction::HangUp]
    );
}

#[test]
fn a_caller_who_waits_is_told_when_the_latest_cannot_play() {
    // The newest service (s3) is known not to play: the menu offers s2
    // and s1, and a caller who presses nothing hears why it is s2.
    let json = r#"{ "church_name": "St Test's", "services": [
        { "datetime": "2026-03-01T10:00:00", "file": "s1.mp3" },
        { "datetime": "2026-03-02T10:00:00", "file": "s2.mp3" },
        { "datetime": "2026-03-03T10:00:00", "file": "s3.mp3" } ] }"#;
    let schedule = Schedule::parse_in(json, LONDON).unwrap();
    let now: DateTime<Utc> = "2026-04-01T00:00:00Z".parse().unwrap();
    let menu = Menu::of_playable(&schedule, now, LONDON, |s| s.file != "s3.mp3");
    assert_eq!(menu.items.len(), 2);
    assert_eq!(menu.items[0].service.file, "s2.mp3");
    assert_eq!(menu.newer_unplayable[0].file, "s3.mp3");
    let mut call = Call {
        flow: CallFlow::new(Some(menu.clone()), FlowConfig::default()),
        now: Instant::now(),
        playing: 0,
    };
    call.actions();
    call.played(20 * SECOND, Outcome::Completed);
    call.wake(10 * SECOND);
    call.played(15 * SECOND, Outcome::Completed);
    let (file, sentence) = instead(&call.wake(10 * SECOND));
    assert_eq!(file, "s2.mp3");
    assert_eq!(sentence[0], Phrase::CannotPlayHereIs);

    // A key plays what it was offered, without the sentence.
    let mut call = Call {
        flow: CallFlow::new(Some(menu), FlowConfig::default()),
        now: Instant::now(),
        playing: 0,
    };
    call.actions();
    assert_eq!(service_file(&call.key('1')), "s2.mp3");
}

#[test]
fn no_schedule_plays_the_apology_then_hangs_up() {
    let (mut call, actions) = Call::new(0, FlowConfig::default());
    assert_eq!(programme(&actions), &Programme::Apology);
    assert_eq!(call.key('1'), vec![]);
    assert_eq!(
        call.played(11 * SECOND, Outcome::Completed),
        vec![FlowAction::HangUp]
    );
}

#[test]
fn a_single_service_follows_the_greeting_unless_configured_otherwise() {
    let (mut call, actions) = Call::new(1, FlowConfig::default());
    assert_eq!(sentences(&actions).len(), 1, "the greeting alone");
    assert_eq!(
        service_file(&call.played(3 * SECOND, Outcome::Completed)),
        "s1.mp3"
    );

    let config = FlowConfig {
        skip_single_menu: false,
        ..FlowConfig::default()
    };
    let (mut call, actions) = Call::new(1, config);
    assert!(sentences(&actions).len() > 1, "greeting and menu");
    assert_eq!(call.played(3 * SECOND, Outcome::Completed), vec![]);
    assert!(call.flow.poll_timeout().is_some());
}

#[test]
fn the_menu_stays_as_announced() {
    let (mut call, _) = Call::new(3, FlowConfig::default());
    let announced = call.flow.menu().unwrap().clone();
    // Whatever the schedule file says now, the flow holds its own menu.
    assert_eq!(
        service_file(&call.key('3')),
        announced.items[2].service.file
    );
}

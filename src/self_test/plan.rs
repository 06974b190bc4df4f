//! What the line's own call should hear, worked out before it is placed: the
//! call flow runs on a virtual clock with the menu a caller would get now,
//! pressing the newest service's key when the self-test will, and the
//! audio it plays is read from the same prepared tracks the call will get.
//!
//! Reads and decodes tracks (waiting for the newest service's first seconds
//! if it is still being decoded): run it off the async threads.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::Failure;
use super::compare::{self, SILENCE_RMS};
use crate::call::flow::{self, CallFlow, FlowAction, FlowConfig, Outcome};
use crate::client::{DtmfPress, FrameDecoder};
use crate::content::Content;
use crate::media::pacer::FrameSource;
use crate::media::track::FrameRead;
use crate::media::{Codec, FRAME_DURATION};

/// When the self-test presses the newest service's key, after the answer:
/// well into the greeting, as a caller who knows the line would.
pub const PRESS_AT: Duration = Duration::from_millis(2_500);
/// How much of the greeting is compared.
const GREETING_HEARD: Duration = Duration::from_millis(1_200);
/// How much of the service is compared.
const SERVICE_HEARD: Duration = Duration::from_secs(2);
/// How far into the service to look for sound to compare, past a quiet
/// start (a service often opens with a few seconds of room tone).
const SERVICE_LOOK: Duration = Duration::from_secs(8);
/// How long a track still being decoded is waited for.
const DECODE_WAIT: Duration = Duration::from_secs(10);
/// The flow must reach a service within this much (virtual) time.
const FLOW_LIMIT: Duration = Duration::from_secs(600);

/// What the self-test call should hear, and when.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The key press, if keys are heard at all (without, the call waits
    /// through the menu for the latest service to play by itself).
    pub press: Option<DtmfPress>,
    /// The start of what the call hears first (the greeting), at
    /// [`compare::RATE_HZ`].
    pub greeting: Vec<f32>,
    pub service: ServiceExpected,
    /// How long to stay on the line after the answer.
    pub listen: Duration,
}

/// The service the call should reach.
#[derive(Debug, Clone)]
pub struct ServiceExpected {
    /// As the status page names services (title, or date).
    pub label: String,
    /// When `template` should be heard: the service's start plus where
    /// the template begins in it.
    pub at: Duration,
    /// [`SERVICE_HEARD`] of it from the first sound, at [`compare::RATE_HZ`].
    pub template: Vec<f32>,
    /// Its first [`SERVICE_LOOK`] are silence: the call should hear
    /// silence there too.
    pub silent: bool,
}

/// The plan for a self-test call answered at `now` in `codec`, pressing
/// keys if `keys` (the line hears them some way).
pub fn plan(
    content: &Content,
    flow_config: &FlowConfig,
    codec: Codec,
    keys: bool,
    now: DateTime<Utc>,
) -> Result<Plan, Failure> {
    let menu = content.offer(now).map_err(Failure::NothingPlays)?;
    let newest = menu
        .items
        .first()
        .ok_or_else(|| Failure::NothingPlays("the menu is empty".to_owned()))?;
    let press = keys.then_some(DtmfPress {
        at: PRESS_AT,
        key: crate::media::dtmf::Key::Digit(newest.digit),
    });
    let mut heard = Heard {
        content,
        codec,
        greeting: None,
    };
    let (service, starts) = run_flow(
        CallFlow::new(Some(menu.clone()), flow_config.clone()),
        press,
        &mut heard,
    )?;
    let greeting = heard.greeting.take().unwrap_or_default();
    let label = crate::observe::service_label(&service, content.timezone());
    let track = content
        .programme(&flow::Programme::Service(service.clone()), codec)
        .items
        .into_iter()
        .next()
        .ok_or_else(|| Failure::ServiceBroken {
            service: label.clone(),
            reason: "it has no audio".to_owned(),
        })?;
    let audio =
        read_pcm(track.as_ref(), codec, SERVICE_LOOK).map_err(|reason| Failure::ServiceBroken {
            service: label.clone(),
            reason,
        })?;
    let expected = service_expected(label, starts, &audio);
    let listen = expected.at + SERVICE_HEARD + Duration::from_secs(1);
    Ok(Plan {
        press,
        greeting,
        service: expected,
        listen,
    })
}

/// Where in `audio` (the service's start) to compare: the first
/// [`SERVICE_HEARD`] with sound in it, on half-second steps.
fn service_expected(label: String, starts: Duration, audio: &[f32]) -> ServiceExpected {
    let window = compare::samples_in(SERVICE_HEARD);
    let step = compare::samples_in(Duration::from_millis(500));
    let mut at = 0;
    while at + window <= audio.len() {
        if compare::rms(&audio[at..at + window]) >= SILENCE_RMS {
            let offset = Duration::from_secs_f64(at as f64 / f64::from(compare::RATE_HZ));
            return ServiceExpected {
                label,
                at: starts + offset,
                template: audio[at..at + window].to_vec(),
                silent: false,
            };
        }
        at += step;
    }
    // Silence throughout (or a service shorter than a window): compare
    // what there is.
    let end = audio.len().min(window);
    ServiceExpected {
        label,
        at: starts,
        template: audio[..end].to_vec(),
        silent: compare::rms(&audio[..end]) < SILENCE_RMS,
    }
}

/// What the simulated call has heard so far.
struct Heard<'a> {
    content: &'a Content,
    codec: Codec,
    /// The first programme's start, once played.
    greeting: Option<Vec<f32>>,
}

impl Heard<'_> {
    /// How long `programme` lasts (speech only: it is what comes before
    /// the service), keeping the first one's start as the greeting.
    fn speech_length(&mut self, programme: &flow::Programme) -> Result<Duration, Failure> {
        let items = self.content.programme(programme, self.codec).items;
        let mut length = Duration::ZERO;
        for item in items {
            let limit = FLOW_LIMIT;
            let audio = read_pcm(item.as_ref(), self.codec, limit).map_err(|reason| {
                Failure::Unprepared(format!("{}: {reason}", programme.label()))
            })?;
            if self.greeting.is_none() {
                let end = audio.len().min(compare::samples_in(GREETING_HEARD));
                self.greeting = Some(audio[..end].to_vec());
            }
            length += Duration::from_secs_f64(audio.len() as f64 / f64::from(compare::RATE_HZ));
        }
        Ok(length)
    }
}

/// Runs `flow` on a virtual clock from the answer, pressing `press`, until
/// it plays a service: the service, and when its audio begins.
fn run_flow(
    mut flow: CallFlow,
    press: Option<DtmfPress>,
    heard: &mut Heard<'_>,
) -> Result<(crate::source::schedule::Service, Duration), Failure> {
    let start = Instant::now();
    let mut now = start;
    let mut pending_press = press;
    // The programme playing: its tag and when it ends.
    let mut playing: Option<(u32, Instant)> = None;
    while now.duration_since(start) < FLOW_LIMIT {
        while let Some(action) = flow.poll_action() {
            match action {
                FlowAction::Play { tag, programme } => match &programme {
                    flow::Programme::Service(service) => {
                        return Ok((service.clone(), now.duration_since(start)));
                    }
                    flow::Programme::Instead { sentence, service } => {
                        let said = flow::Programme::Speech(vec![sentence.clone()]);
                        let before = heard.speech_length(&said)?;
                        return Ok((service.clone(), now.duration_since(start) + before));
                    }
                    flow::Programme::Apology => {
                        return Err(Failure::NothingPlays(
                            "the call flow plays the apology".to_owned(),
                        ));
                    }
                    flow::Programme::Speech(_) => {
                        playing = Some((tag, now + heard.speech_length(&programme)?));
                    }
                },
                FlowAction::HangUp => {
                    return Err(Failure::Unprepared(
                        "the call flow hangs up before any service".to_owned(),
                    ));
                }
                FlowAction::Seek(_) | FlowAction::Pause | FlowAction::Resume => {}
            }
        }
        let press_at = pending_press.map(|p| start + p.at);
        let next = [press_at, playing.map(|(_, end)| end), flow.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next else {
            break;
        };
        now = now.max(next);
        if let Some(press) = pending_press.filter(|_| press_at == Some(next)) {
            pending_press = None;
            flow.handle_key(press.key, now);
        } else if let Some((tag, end)) = playing.filter(|(_, end)| *end == next) {
            playing = None;
            flow.handle_played(tag, Outcome::Completed, end);
        } else {
            flow.handle_timeout(now);
        }
    }
    Err(Failure::Unprepared(
        "the call flow reaches no service".to_owned(),
    ))
}

/// The audio of `source` from its start, at most `limit` of it, at
/// [`compare::RATE_HZ`]; waits for frames still being decoded. `Err` says
/// why it cannot be played.
fn read_pcm(source: &dyn FrameSource, codec: Codec, limit: Duration) -> Result<Vec<f32>, String> {
    let mut decoder = FrameDecoder::new(codec).map_err(|e| format!("opus decoder: {e}"))?;
    let frames = (limit.as_nanos() / FRAME_DURATION.as_nanos()) as usize;
    let mut payload = Vec::new();
    let mut pcm = Vec::new();
    let mut audio = Vec::new();
    let mut waited = Duration::ZERO;
    let mut index = 0;
    while index < frames {
        match source.read_frame(index, &mut payload) {
            FrameRead::Ready => {
                decoder
                    .decode(&payload, &mut pcm)
                    .map_err(|e| format!("frame {index} does not decode: {e}"))?;
                audio.extend_from_slice(&pcm);
                index += 1;
            }
            FrameRead::Pending if waited < DECODE_WAIT => {
                std::thread::sleep(FRAME_DURATION);
                waited += FRAME_DURATION;
            }
            FrameRead::Pending => return Err("it is still being decoded".to_owned()),
            FrameRead::End => break,
            FrameRead::Failed if index == 0 => return Err("its audio cannot be played".to_owned()),
            FrameRead::Failed => break,
        }
    }
    Ok(compare::to_comparison_rate(&audio, codec.sample_rate_hz()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seconds(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// Two services of a second's tone each, and the shipped prompts.
    fn content(dir: &std::path::Path) -> Content {
        use crate::content::Catalogue;
        std::fs::write(
            dir.join("data.json"),
            r#"{ "church_name": "St Test's", "services": [
                { "title": "Matins", "datetime": "2026-11-08T10:00:00Z", "file": "old.wav" },
                { "title": "Evensong", "datetime": "2026-11-15T18:00:00Z", "file": "new.wav" } ] }"#,
        )
        .unwrap();
        for file in ["old.wav", "new.wav"] {
            crate::content::tests::write_tone(&dir.join(file));
        }
        Content::new(
            Catalogue::Local {
                schedule: dir.join("data.json"),
                audio: dir.to_path_buf(),
            },
            dir.join("apology.wav"),
            8,
            crate::prompts::Prompts::load(
                &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("audio/prompts"),
                &[Codec::Pcmu],
                None,
            ),
        )
    }

    #[test]
    fn with_keys_the_newest_is_pressed_for_during_the_greeting_and_expected_then() {
        let dir = tempfile::tempdir().unwrap();
        let content = content(dir.path());
        let now: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
        content.refresh(&[Codec::Pcmu], now);
        let plan = plan(&content, &FlowConfig::default(), Codec::Pcmu, true, now).unwrap();
        let press = plan.press.unwrap();
        assert_eq!(
            (press.at, press.key),
            (PRESS_AT, crate::media::dtmf::Key::Digit(1))
        );
        assert_eq!(plan.service.label, "Evensong");
        // The greeting and menu outlast the press, so the service starts at it.
        assert_eq!(plan.service.at, PRESS_AT);
        assert!(!plan.service.silent);
        assert_eq!(plan.service.template.len(), compare::RATE_HZ as usize);
        assert_eq!(plan.greeting.len(), compare::samples_in(GREETING_HEARD));
        assert!(compare::rms(&plan.greeting) > SILENCE_RMS);
        assert_eq!(
            plan.listen,
            PRESS_AT + SERVICE_HEARD + Duration::from_secs(1)
        );
    }

    #[test]
    fn without_keys_the_latest_is_expected_after_the_menu_twice() {
        let dir = tempfile::tempdir().unwrap();
        let content = content(dir.path());
        let now: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
        content.refresh(&[Codec::Pcmu], now);
        let flow = FlowConfig::default();
        let waited = plan(&content, &flow, Codec::Pcmu, false, now).unwrap();
        assert!(waited.press.is_none());
        // Greeting and menu, 10 s, the menu again, 10 s.
        let at = waited.service.at;
        assert!(
            at > 2 * flow.menu_timeout + Duration::from_secs(4),
            "{at:?}"
        );
        assert!(
            at < 2 * flow.menu_timeout + Duration::from_secs(60),
            "{at:?}"
        );
        assert_eq!(waited.service.label, "Evensong");

        // Nothing plays: no call is needed to know.
        for file in ["old.wav", "new.wav"] {
            std::fs::write(dir.path().join(file), b"broken").unwrap();
        }
        content.refresh(&[Codec::Pcmu], now);
        let failure = plan(&content, &flow, Codec::Pcmu, true, now).unwrap_err();
        assert_eq!(failure.code(), "self_test.nothing_plays");
    }

    #[test]
    fn the_template_starts_at_the_first_sound() {
        let rate = compare::RATE_HZ as usize;
        let mut audio = vec![0.0; rate * 3];
        audio.extend((0..rate * 3).map(|i| ((i % 40) as f32 / 40.0) - 0.5));
        let expected = service_expected("x".to_owned(), seconds(2.5), &audio);
        assert!(!expected.silent);
        // The first half-second step whose window reaches the sound: 1.5 s
        // into a service that starts at 2.5 s.
        assert_eq!(expected.at, seconds(4.0));
        assert_eq!(expected.template.len(), rate * 2);
        assert!(compare::rms(&expected.template) > SILENCE_RMS);
    }

    #[test]
    fn a_silent_start_is_expected_silent() {
        let audio = vec![0.0; compare::RATE_HZ as usize * 8];
        let expected = service_expected("x".to_owned(), seconds(1.0), &audio);
        assert!(expected.silent);
        assert_eq!(expected.at, seconds(1.0));
        let short = service_expected("x".to_owned(), seconds(1.0), &[0.3; 100]);
        assert!(!short.silent);
        assert_eq!(short.template.len(), 100);
    }

    #[test]
    fn a_failing_source_says_so_and_a_short_one_ends() {
        struct Frames(usize);
        impl FrameSource for Frames {
            fn read_frame(&self, index: usize, out: &mut Vec<u8>) -> FrameRead {
                if index >= self.0 {
                    return FrameRead::End;
                }
                out.clear();
                out.extend(std::iter::repeat_n(0x55, 160));
                FrameRead::Ready
            }
        }
        let pcm = read_pcm(&Frames(3), Codec::Pcmu, seconds(10.0)).unwrap();
        assert_eq!(pcm.len(), 480);
        let pcm = read_pcm(&Frames(100), Codec::Pcmu, seconds(0.5)).unwrap();
        assert_eq!(pcm.len(), 4_000);
        let failed = read_pcm(&crate::media::pacer::Unplayable, Codec::Pcmu, seconds(1.0));
        assert!(failed.unwrap_err().contains("cannot be played"));
    }
}

//! The call flow, sans-IO: what the line says and plays, and how the keypad
//! steers it, for one call.
//!
//! Inputs are a key press, the end of what was playing, and the clock; the
//! output is a queue of [`FlowAction`]s (play, seek, pause, hang up) and the
//! next instant to be woken at. Nothing here does I/O or reads a clock, so
//! the whole flow is tested under a virtual clock.
//!
//! ```text
//!  Greeting+menu ──key 1-9──────────────────────────► Service ──end──► Goodbye ──► hang up
//!     │  ▲  │ end                                      │ ▲   4/6 ±30 s, 5 pause,
//!     │  │  ▼                                          │ │   0 from the start
//!     │  │ Waiting ──10 s──► menu again ──10 s──► latest service
//!     │  └──*/0── any state of the menu; ──other key──► "Sorry…" ──► menu
//!     └──────────── * while a service plays ◄──────────┘
//! ```
//!
//! Every [`FlowAction::Play`] carries a new tag; the end of a programme is
//! reported with its tag, so an end that crossed a key press is ignored.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::menu::{Menu, Phrase};
use crate::media::dtmf::Key;
use crate::source::schedule::Service;

/// How the flow behaves; [`Default`] is what the issue and callers expect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowConfig {
    /// Silence after the menu before it is said again, and after the second
    /// time before the latest service plays.
    pub menu_timeout: Duration,
    /// How far `4` and `6` move in a service.
    pub seek_step: Duration,
    /// A pause (`5`) ends by itself after this.
    pub pause_limit: Duration,
    /// With one service only, play it straight after the greeting.
    pub skip_single_menu: bool,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            menu_timeout: Duration::from_secs(10),
            seek_step: Duration::from_secs(30),
            pause_limit: Duration::from_secs(5 * 60),
            skip_single_menu: true,
        }
    }
}

/// What to play.
#[derive(Debug, Clone, PartialEq)]
pub enum Programme {
    /// Sentences assembled from prompts (and the church name and titles).
    Speech(Vec<Vec<Phrase>>),
    /// A service from its start; if its audio fails, it ends as failed
    /// and the flow moves on to another.
    Service(Service),
    /// A service in place of one that cannot be played, after `sentence`
    /// ("We can't play that service just now, so here is the service from
    /// …"). Fails at once, saying nothing, if its own audio cannot be
    /// opened.
    Instead {
        sentence: Vec<Phrase>,
        service: Service,
    },
    /// The apology clip: nothing on offer can be played.
    Apology,
}

impl Programme {
    /// A short name for the log: `greeting`, `menu`, `not an option`,
    /// `goodbye`, `service <file>` or `apology`.
    pub fn label(&self) -> String {
        match self {
            Programme::Speech(sentences) => match sentences.first().and_then(|s| s.first()) {
                Some(Phrase::ThanksForCalling) => "greeting".to_owned(),
                Some(Phrase::StayOnTheLine) => "menu".to_owned(),
                Some(Phrase::NotAnOption) => "not an option".to_owned(),
                Some(Phrase::Goodbye) => "goodbye".to_owned(),
                _ => "speech".to_owned(),
            },
            Programme::Service(service) => format!("service {}", service.file),
            Programme::Instead { service, .. } => format!("service {} instead", service.file),
            Programme::Apology => "apology".to_owned(),
        }
    }

    /// The service it plays, if it plays one.
    pub fn service(&self) -> Option<&Service> {
        match self {
            Programme::Service(service) | Programme::Instead { service, .. } => Some(service),
            Programme::Speech(_) | Programme::Apology => None,
        }
    }
}

/// How a programme ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Played to its end.
    Completed,
    /// Its audio failed (at once, or part of the way through).
    Failed,
}

/// Where a seek goes, within the service playing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seek {
    Back(Duration),
    Forward(Duration),
    Start,
}

/// What the flow asks of the media and the call.
#[derive(Debug, Clone, PartialEq)]
pub enum FlowAction {
    /// Stop what is playing, at once, and play this.
    Play {
        tag: u32,
        programme: Programme,
    },
    Seek(Seek),
    Pause,
    Resume,
    /// End the call (BYE).
    HangUp,
}

impl FlowAction {
    /// A word for logs.
    pub fn name(&self) -> &'static str {
        match self {
            FlowAction::Play { .. } => "play",
            FlowAction::Seek(_) => "seek",
            FlowAction::Pause => "pause",
            FlowAction::Resume => "resume",
            FlowAction::HangUp => "hang up",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    /// Saying the greeting, the menu or "sorry" (tag `speaking`); a key
    /// press barges in.
    Speaking {
        what: Speaking,
    },
    /// The menu has been said `round` times; waiting for a key.
    Waiting {
        round: u8,
        until: Instant,
    },
    /// The offer to carry on has been said; `1` takes it up.
    ResumeWaiting {
        until: Instant,
    },
    /// The menu's service `index` plays; `paused_until` while `5` holds it.
    Service {
        index: usize,
        paused_until: Option<Instant>,
    },
    /// "Thank you for listening. Goodbye."
    Goodbye,
    /// The apology, then hang up.
    Apology,
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Speaking {
    /// "Welcome back. To carry on with … press 1. Or stay on the line for
    /// the menu."
    ResumeOffer,
    /// The greeting, and the menu after it unless it is skipped.
    Greeting,
    /// The menu, said for the `round`th time since the last key.
    Menu {
        round: u8,
    },
    NotAnOption,
}

/// A caller who stopped part of the way into a service on offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// The service's place in the menu.
    pub index: usize,
    /// How far they got.
    pub at: Duration,
}

/// After the offer to carry on, silence this long goes on to the greeting.
const RESUME_WAIT: Duration = Duration::from_secs(4);

/// One call's flow.
#[derive(Debug)]
pub struct CallFlow {
    /// Fixed when the call is answered: a key always plays what was said.
    menu: Option<Menu>,
    config: FlowConfig,
    state: State,
    /// Tag of the programme playing now.
    tag: u32,
    /// The "press star" hint is said the first time only.
    star_hint_said: bool,
    /// Menu items whose audio failed during this call, not tried again.
    failed: Vec<bool>,
    /// The offer to carry on made at the answer, if any.
    resume: Option<Resume>,
    actions: VecDeque<FlowAction>,
}

impl CallFlow {
    /// A flow for a call answered with `menu`; `None` (no usable schedule or
    /// no service yet) plays the apology and hangs up.
    pub fn new(menu: Option<Menu>, config: FlowConfig) -> CallFlow {
        CallFlow::offering(menu, config, None)
    }

    /// As [`CallFlow::new`], first offering a caller who stopped part of
    /// the way into a service on the menu to carry on from there.
    pub fn offering(menu: Option<Menu>, config: FlowConfig, resume: Option<Resume>) -> CallFlow {
        let menu = menu.filter(|m| !m.items.is_empty());
        let resume = resume.filter(|r| menu.as_ref().is_some_and(|m| r.index < m.items.len()));
        let mut flow = CallFlow {
            menu,
            config,
            state: State::Ended,
            tag: 0,
            star_hint_said: false,
            failed: Vec::new(),
            resume,
            actions: VecDeque::new(),
        };
        flow.failed = vec![false; flow.menu.as_ref().map_or(0, |m| m.items.len())];
        match (&flow.menu, resume) {
            (None, _) => {
                flow.play(Programme::Apology);
                flow.state = State::Apology;
            }
            (Some(menu), Some(resume)) => {
                let offer = menu.resume_offer(&menu.items[resume.index].service, resume.at);
                flow.play(Programme::Speech(offer));
                flow.state = State::Speaking {
                    what: Speaking::ResumeOffer,
                };
            }
            (Some(_), None) => flow.greet(),
        }
        flow
    }

    /// The greeting, and the menu unless a single service follows it.
    fn greet(&mut self) {
        let Some(menu) = &self.menu else {
            return;
        };
        let mut speech = vec![menu.greeting()];
        if !self.skips_menu() {
            speech.extend(self.menu_sentences());
        }
        self.play(Programme::Speech(speech));
        self.state = State::Speaking {
            what: Speaking::Greeting,
        };
    }

    pub fn menu(&self) -> Option<&Menu> {
        self.menu.as_ref()
    }

    /// The next thing to do, in order.
    pub fn poll_action(&mut self) -> Option<FlowAction> {
        self.actions.pop_front()
    }

    /// When [`CallFlow::handle_timeout`] wants to be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Waiting { until, .. } | State::ResumeWaiting { until } => Some(until),
            State::Service { paused_until, .. } => paused_until,
            _ => None,
        }
    }

    pub fn is_ended(&self) -> bool {
        self.state == State::Ended
    }

    /// A key the caller pressed (already deduplicated across the ways it
    /// can arrive).
    pub fn handle_key(&mut self, key: Key, now: Instant) {
        match self.state.clone() {
            State::Speaking {
                what: Speaking::ResumeOffer,
            }
            | State::ResumeWaiting { .. } => self.resume_key(key),
            State::Speaking { .. } | State::Waiting { .. } => self.menu_key(key),
            State::Service {
                index,
                paused_until,
            } => self.service_key(key, index, paused_until, now),
            // Back to the menu from the goodbye, for a caller who wants
            // another service; anything else lets the call end.
            State::Goodbye if key == Key::Star => self.say_menu(1),
            State::Goodbye | State::Apology | State::Ended => {}
        }
    }

    /// The programme tagged `tag` has ended.
    pub fn handle_played(&mut self, tag: u32, outcome: Outcome, now: Instant) {
        if tag != self.tag {
            return; // it was cut off by a key; its end crossed the press
        }
        match self.state.clone() {
            State::Speaking { what } => match what {
                Speaking::ResumeOffer => {
                    self.state = State::ResumeWaiting {
                        until: now + RESUME_WAIT,
                    }
                }
                Speaking::Greeting if self.skips_menu() => self.play_latest(),
                Speaking::Greeting => self.wait(1, now),
                Speaking::Menu { round } => self.wait(round, now),
                Speaking::NotAnOption => self.say_menu(1),
            },
            State::Service { index, .. } => match outcome {
                Outcome::Completed => {
                    self.play(Programme::Speech(vec![vec![Phrase::Goodbye]]));
                    self.state = State::Goodbye;
                }
                Outcome::Failed => {
                    if let Some(failed) = self.failed.get_mut(index) {
                        *failed = true;
                    }
                    self.play_instead();
                }
            },
            State::Goodbye | State::Apology => self.hang_up(),
            State::Waiting { .. } | State::ResumeWaiting { .. } | State::Ended => {}
        }
    }

    /// The clock reached [`CallFlow::poll_timeout`] (or passed it).
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::ResumeWaiting { until } if now >= until => self.greet(),
            State::Waiting { round, until } if now >= until => {
                if round >= 2 {
                    // A caller who presses nothing still hears church.
                    self.play_latest();
                } else {
                    self.say_menu(round + 1);
                }
            }
            State::Service {
                index,
                paused_until: Some(until),
            } if now >= until => {
                self.actions.push_back(FlowAction::Resume);
                self.state = State::Service {
                    index,
                    paused_until: None,
                };
            }
            _ => {}
        }
    }

    /// During the offer to carry on: `1` takes it up, a little before the
    /// point reached; any other key goes on to the greeting and menu.
    fn resume_key(&mut self, key: Key) {
        match (key, self.resume) {
            (Key::Digit(1), Some(resume)) => {
                self.play_service(resume.index);
                let from = resume.at.saturating_sub(super::resume::REWIND);
                if !from.is_zero() {
                    self.actions
                        .push_back(FlowAction::Seek(Seek::Forward(from)));
                }
            }
            _ => self.greet(),
        }
    }

    fn menu_key(&mut self, key: Key) {
        match key {
            Key::Star | Key::Digit(0) => self.say_menu(1),
            Key::Digit(digit) if self.index_of(digit).is_some() => {
                if let Some(index) = self.index_of(digit) {
                    self.play_service(index);
                }
            }
            _ => {
                self.play(Programme::Speech(vec![vec![Phrase::NotAnOption]]));
                self.state = State::Speaking {
                    what: Speaking::NotAnOption,
                };
            }
        }
    }

    fn service_key(&mut self, key: Key, index: usize, paused_until: Option<Instant>, now: Instant) {
        let seek = match key {
            Key::Star => return self.say_menu(1),
            Key::Digit(5) => {
                if paused_until.is_some() {
                    self.actions.push_back(FlowAction::Resume);
                    self.state = State::Service {
                        index,
                        paused_until: None,
                    };
                } else {
                    self.actions.push_back(FlowAction::Pause);
                    self.state = State::Service {
                        index,
                        paused_until: Some(now + self.config.pause_limit),
                    };
                }
                return;
            }
            Key::Digit(4) => Seek::Back(self.config.seek_step),
            Key::Digit(6) => Seek::Forward(self.config.seek_step),
            Key::Digit(0) => Seek::Start,
            // Other keys must not disturb the service.
            _ => return,
        };
        if paused_until.is_some() {
            // A caller who moves wants to hear where they moved to.
            self.actions.push_back(FlowAction::Resume);
            self.state = State::Service {
                index,
                paused_until: None,
            };
        }
        self.actions.push_back(FlowAction::Seek(seek));
    }

    fn index_of(&self, digit: u8) -> Option<usize> {
        self.menu
            .as_ref()?
            .items
            .iter()
            .position(|item| item.digit == digit)
    }

    fn skips_menu(&self) -> bool {
        self.config.skip_single_menu && self.menu.as_ref().is_some_and(|m| m.items.len() == 1)
    }

    /// The menu's sentences; the "press star" hint only the first time.
    fn menu_sentences(&mut self) -> Vec<Vec<Phrase>> {
        let Some(menu) = &self.menu else {
            return Vec::new();
        };
        let mut sentences = menu.sentences();
        if self.star_hint_said {
            sentences.retain(|s| s.as_slice() != [Phrase::StarReturns]);
        }
        self.star_hint_said = true;
        sentences
    }

    fn say_menu(&mut self, round: u8) {
        let sentences = self.menu_sentences();
        self.play(Programme::Speech(sentences));
        self.state = State::Speaking {
            what: Speaking::Menu { round },
        };
    }

    fn wait(&mut self, round: u8, now: Instant) {
        self.state = State::Waiting {
            round,
            until: now + self.config.menu_timeout,
        };
    }

    fn play_service(&mut self, index: usize) {
        let Some(service) = self
            .menu
            .as_ref()
            .and_then(|m| m.items.get(index))
            .map(|item| item.service.clone())
        else {
            return;
        };
        self.play(Programme::Service(service));
        self.state = State::Service {
            index,
            paused_until: None,
        };
    }

    /// What a caller who chose nothing hears: the latest service, or, when
    /// a newer one cannot be played, the latest that can, said so.
    fn play_latest(&mut self) {
        if self
            .menu
            .as_ref()
            .is_some_and(|m| !m.newer_unplayable.is_empty())
        {
            self.play_instead();
        } else {
            self.play_service(0);
        }
    }

    /// The newest service not yet failed in this call, after the sentence
    /// that says it is played instead; the apology when none is left.
    fn play_instead(&mut self) {
        let next = self.failed.iter().position(|failed| !failed);
        let Some((index, menu)) = next.zip(self.menu.as_ref()) else {
            self.play(Programme::Apology);
            self.state = State::Apology;
            return;
        };
        let service = menu.items[index].service.clone();
        let sentence = menu.instead_sentence(&service);
        self.play(Programme::Instead { sentence, service });
        self.state = State::Service {
            index,
            paused_until: None,
        };
    }

    fn play(&mut self, programme: Programme) {
        self.tag = self.tag.wrapping_add(1);
        self.actions.push_back(FlowAction::Play {
            tag: self.tag,
            programme,
        });
    }

    fn hang_up(&mut self) {
        self.actions.push_back(FlowAction::HangUp);
        self.state = State::Ended;
    }
}

#[cfg(test)]
mod tests;

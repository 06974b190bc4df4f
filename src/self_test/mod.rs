//! The line checks itself (`[self_test] interval`): it calls its own SIP
//! listener over loopback with the project's test client, as a caller
//! would, hears the greeting, presses the newest service's key and hears
//! the service, and compares what came back with the prepared audio.
//!
//! ```text
//!  every interval ─► plan (flow on a virtual clock + prepared tracks, off the loop)
//!                ─► bind a loopback socket; the endpoint lets it past trust and limits
//!                ─► place_call_from: INVITE … ACK, press at 2.5 s, BYE
//!                ─► judge: greeting at the start, service where the flow puts it
//!                ─► SelfTestStatus (/healthz, /metrics, status page); a failure is one log line
//! ```
//!
//! The call is marked as the line's own from the socket it comes from (see
//! [`crate::endpoint::Endpoint::set_self_test_source`]): it is not counted
//! as a listen, offered to carry on, or remembered.

pub mod compare;
pub mod plan;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};

use crate::call::flow::FlowConfig;
use crate::client::{CallFailure, CallOptions, HangUp};
use crate::config::Config;
use crate::content::Content;
use crate::media::Codec;
use crate::media::dtmf::KeyChannel;
use crate::observe::LineState;
use compare::{MIN_MATCH, SILENCE_RMS};
pub use plan::Plan;

/// The first self-test, this long after the line starts: a restart with a
/// broken setting shows at once, not a quarter of an hour later.
pub const FIRST_AFTER: Duration = Duration::from_secs(5);
/// How far from where the flow puts the service it is looked for: the
/// press's way through the line and a programme's preparation.
const EARLY: Duration = Duration::from_millis(500);
const LATE: Duration = Duration::from_millis(1_500);
/// How long the endpoint may take to learn the self-test's socket.
const SOURCE_WAIT: Duration = Duration::from_secs(5);
/// The greeting is looked for this far from the first packet.
const GREETING_WINDOW: Duration = Duration::from_secs(1);

/// Why a self-test failed: what a caller would have met.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Failure {
    #[error("no service plays; callers hear the apology: {0}")]
    NothingPlays(String),
    #[error("{service} cannot be played: {reason}")]
    ServiceBroken { service: String, reason: String },
    #[error("cannot work out what a caller should hear: {0}")]
    Unprepared(String),
    #[error("the self-test call could not be placed: {0}")]
    Client(String),
    #[error("the line did not answer its own call: {0}")]
    NotAnswered(String),
    #[error("the line answered its own call but sent no audio")]
    NoAudio,
    #[error("the greeting was not heard (best match {score:.2}, at least {MIN_MATCH} expected)")]
    GreetingNotHeard { score: f32 },
    #[error(
        "{service} was not heard after the greeting (best match {score:.2}, at least \
         {MIN_MATCH} expected; {heard:.1} s heard)"
    )]
    ServiceNotHeard {
        service: String,
        score: f32,
        heard: f32,
    },
}

impl Failure {
    /// The log's `code`.
    pub fn code(&self) -> &'static str {
        match self {
            Failure::NothingPlays(_) => "self_test.nothing_plays",
            Failure::ServiceBroken { .. } => "self_test.service_broken",
            Failure::Unprepared(_) => "self_test.unprepared",
            Failure::Client(_) => "self_test.client",
            Failure::NotAnswered(_) => "self_test.not_answered",
            Failure::NoAudio => "self_test.no_audio",
            Failure::GreetingNotHeard { .. } => "self_test.greeting",
            Failure::ServiceNotHeard { .. } => "self_test.service",
        }
    }
}

/// What a passing self-test heard.
#[derive(Debug, Clone, PartialEq)]
pub struct Passed {
    /// The service, as the status page names it.
    pub service: String,
    /// How well the greeting and the service matched the prepared audio.
    pub greeting: f32,
    pub service_match: f32,
}

impl std::fmt::Display for Passed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "heard the greeting (match {:.2}) and {} (match {:.2})",
            self.greeting, self.service, self.service_match
        )
    }
}

/// One self-test's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub at: DateTime<Utc>,
    pub outcome: Result<Passed, Failure>,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.outcome.is_ok()
    }

    /// One sentence for people: what was heard, or what was wrong.
    pub fn detail(&self) -> String {
        match &self.outcome {
            Ok(passed) => passed.to_string(),
            Err(failure) => failure.to_string(),
        }
    }
}

/// The last verdict, shared with the admin pages.
#[derive(Debug)]
pub struct SelfTestStatus {
    pub interval: Duration,
    last: Mutex<Option<Verdict>>,
    /// When the task last woke (a self-test, or one skipped on a full
    /// line): a task that stopped shows as overdue.
    woke: Mutex<Option<DateTime<Utc>>>,
}

impl SelfTestStatus {
    pub fn new(interval: Duration) -> SelfTestStatus {
        SelfTestStatus {
            interval,
            last: Mutex::new(None),
            woke: Mutex::new(None),
        }
    }

    /// When the self-test task last woke.
    pub fn woke(&self) -> Option<DateTime<Utc>> {
        *self.woke.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake(&self, at: DateTime<Utc>) {
        *self.woke.lock().unwrap_or_else(|e| e.into_inner()) = Some(at);
    }

    /// `None` until the first self-test has run.
    pub fn last(&self) -> Option<Verdict> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Keeps `verdict`, returning the one before.
    fn record(&self, verdict: Verdict) -> Option<Verdict> {
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(verdict)
    }
}

/// Judges what the call heard (at [`compare::RATE_HZ`], from its first
/// packet) against `plan`.
pub fn judge(plan: &Plan, heard: &[f32]) -> Result<Passed, Failure> {
    if heard.is_empty() {
        return Err(Failure::NoAudio);
    }
    let greeting_window = compare::samples_in(GREETING_WINDOW) + 1;
    let greeting = compare::best_match(heard, &plan.greeting, 0..greeting_window);
    if greeting.score < MIN_MATCH {
        return Err(Failure::GreetingNotHeard {
            score: greeting.score,
        });
    }
    let expected = &plan.service;
    let from = compare::samples_in(expected.at.saturating_sub(EARLY));
    let to = compare::samples_in(expected.at + LATE);
    let not_heard = |score: f32| Failure::ServiceNotHeard {
        service: expected.label.clone(),
        score,
        heard: heard.len() as f32 / compare::RATE_HZ as f32,
    };
    let service_match = if expected.silent {
        // Silence expected: the stretch where it should be must be there,
        // and quiet.
        let at = compare::samples_in(expected.at);
        let end = at + expected.template.len();
        if end > heard.len() || compare::rms(&heard[at..end]) >= 3.0 * SILENCE_RMS {
            return Err(not_heard(0.0));
        }
        1.0
    } else {
        compare::best_match(heard, &expected.template, from..to + 1).score
    };
    if service_match < MIN_MATCH {
        return Err(not_heard(service_match));
    }
    Ok(Passed {
        service: expected.label.clone(),
        greeting: greeting.score,
        service_match,
    })
}

/// How the line is set up for its own call; replaced on reload.
#[derive(Clone)]
pub struct Setup {
    pub content: Arc<Content>,
    pub flow: FlowConfig,
    /// The line's first codec: what most callers get.
    pub codec: Codec,
    /// How the press is sent: a way the line hears; `None` when it hears
    /// none (then the call waits for the latest service to play by itself).
    pub keys: Option<KeyChannel>,
    /// Long enough for `[sip] answer_delay`'s ringing.
    pub answer_timeout: Duration,
}

impl Setup {
    pub fn new(config: &Config, content: Arc<Content>, flow: FlowConfig) -> Setup {
        let codec = config.media.codecs.first().copied().unwrap_or(Codec::Pcmu);
        let dtmf = &config.dtmf;
        let keys = if dtmf.rfc4733 {
            Some(KeyChannel::Rfc4733)
        } else if dtmf.info {
            Some(KeyChannel::SipInfo)
        } else if dtmf.inband && (codec != Codec::Opus || dtmf.inband_opus) {
            Some(KeyChannel::InBand)
        } else {
            None
        };
        Setup {
            content,
            flow,
            codec,
            keys,
            answer_timeout: config.sip.answer_delay + Duration::from_secs(10),
        }
    }
}

/// Tells the SIP loop which socket is the self-test's (`None`: none now);
/// `done` is answered once the endpoint knows.
pub struct SourceChange {
    pub source: Option<SocketAddr>,
    pub done: oneshot::Sender<()>,
}

/// The self-test task: see the module docs.
pub struct SelfTest {
    pub interval: Duration,
    /// The line's SIP listener as configured (a wildcard is dialled on
    /// loopback).
    pub listener: SocketAddr,
    pub setup: watch::Receiver<Setup>,
    pub sources: mpsc::Sender<SourceChange>,
    pub status: Arc<SelfTestStatus>,
    /// A full line is not tested (the call would take a caller's place).
    pub line: Arc<LineState>,
    pub max_calls: usize,
}

impl SelfTest {
    /// Runs every `interval`, the first after [`FIRST_AFTER`], until the
    /// task is aborted.
    pub async fn run(self) {
        let first = tokio::time::Instant::now() + FIRST_AFTER.min(self.interval);
        let mut ticks = tokio::time::interval_at(first, self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.status.wake(Utc::now());
            if self.line.calls_active() >= self.max_calls {
                tracing::debug!("self-test skipped: the line is full");
                continue;
            }
            let outcome = self.once().await;
            let verdict = Verdict {
                at: Utc::now(),
                outcome,
            };
            let before = self.status.record(verdict.clone());
            match &verdict.outcome {
                Err(failure) => {
                    tracing::warn!(code = failure.code(), "self-test failed: {failure}")
                }
                Ok(passed) if before.as_ref().is_none_or(|v| !v.ok()) => {
                    tracing::info!(code = "self_test.passed", "self-test passed: {passed}")
                }
                Ok(passed) => tracing::debug!("self-test passed: {passed}"),
            }
        }
    }

    /// One self-test call, judged.
    async fn once(&self) -> Result<Passed, Failure> {
        let setup = self.setup.borrow().clone();
        let now = Utc::now();
        let planning = setup.clone();
        let plan = tokio::task::spawn_blocking(move || {
            plan::plan(
                &planning.content,
                &planning.flow,
                planning.codec,
                planning.keys.is_some(),
                now,
            )
        })
        .await
        .map_err(|e| Failure::Unprepared(format!("planning stopped: {e}")))??;
        let heard = self.call(&setup, &plan).await?;
        tokio::task::spawn_blocking(move || judge(&plan, &heard))
            .await
            .map_err(|e| Failure::Unprepared(format!("judging stopped: {e}")))?
    }

    /// Places the call `plan` describes; what it heard, at the comparison
    /// rate.
    async fn call(&self, setup: &Setup, plan: &Plan) -> Result<Vec<f32>, Failure> {
        let target = dialled(self.listener);
        let socket = tokio::net::UdpSocket::bind(SocketAddr::new(target.ip(), 0))
            .await
            .map_err(|e| {
                Failure::Client(format!("cannot bind a socket on {}: {e}", target.ip()))
            })?;
        let source = socket
            .local_addr()
            .map_err(|e| Failure::Client(e.to_string()))?;
        self.tell_endpoint(Some(source)).await?;
        let mut options = CallOptions::new(format!("sip:self-test@{target}"), setup.codec);
        options.local_ip = target.ip();
        options.from_user = "self-test".to_owned();
        options.seconds = Some(plan.listen);
        options.answer_timeout = setup.answer_timeout;
        options.linger = Duration::from_millis(200);
        // The line may advertise a public address its own machine cannot
        // reach: everything goes to where it was called.
        options.symmetric = true;
        options.dtmf = plan.press.into_iter().collect();
        options.dtmf_via = setup.keys.into_iter().collect();
        let report = crate::client::place_call_from(socket, options).await;
        self.tell_endpoint(None).await?;
        let report = report.map_err(|e| Failure::Client(e.to_string()))?;
        if let HangUp::Failed(failure) = report.hung_up_by {
            return Err(Failure::NotAnswered(match failure {
                CallFailure::Rejected(status) => format!("it answered {status}"),
                CallFailure::TimedOut => "no answer came".to_owned(),
                CallFailure::Cancelled => "it rang and rang".to_owned(),
            }));
        }
        Ok(compare::to_comparison_rate(
            &report.samples,
            report.sample_rate_hz,
        ))
    }

    async fn tell_endpoint(&self, source: Option<SocketAddr>) -> Result<(), Failure> {
        let (done, known) = oneshot::channel();
        let stopped = || Failure::Client("the SIP loop is not running".to_owned());
        self.sources
            .send(SourceChange { source, done })
            .await
            .map_err(|_| stopped())?;
        tokio::time::timeout(SOURCE_WAIT, known)
            .await
            .map_err(|_| Failure::Client("the SIP loop did not answer".to_owned()))?
            .map_err(|_| stopped())
    }
}

/// The address to call for a listener on `listen`: a wildcard on loopback.
pub fn dialled(listen: SocketAddr) -> SocketAddr {
    SocketAddr::new(
        crate::config::loopback_if_wildcard(listen.ip()),
        listen.port(),
    )
}

#[cfg(test)]
mod tests;

//! The admin HTTP listener (`[admin] listen`): `/healthz`, `/metrics` and
//! the status page `/`, for the volunteer who looks after the line and
//! for monitoring.
//!
//! `server` is the HTTP; [`Admin::gather`] reads the shared state and the
//! clocks into a [`LineSnapshot`]; `health`, `exposition` and `status_page`
//! render it, as pure functions. A port that cannot be bound is a warning,
//! not a stop: callers matter more than the dashboard.

pub mod exposition;
pub mod health;
pub mod server;
pub mod snapshot;
pub mod status_page;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::content::Content;
use crate::media::pacer::StatsReader;
use crate::observe::{LineState, ListenHistory, SeenRegistration};
use crate::registration::RegistrationStatus;
use crate::self_test::SelfTestStatus;
use crate::source::refresher::RefreshStatus;
use server::{Page, Pages, Reply};
use snapshot::{
    LineSnapshot, Offer, SelfTestView, SourceProblem, SourceView, TrunkState, TrunkView,
};

/// Where the schedule comes from, as the admin pages describe it.
pub enum Source {
    LocalFile(String),
    /// The refresher's status, and its origin (redacted).
    Fetched {
        origin: String,
        status: Arc<RefreshStatus>,
    },
}

/// Everything the pages are made from; shared with the driver, read only.
pub struct Admin {
    /// What a SIGHUP may change: replaced whole by the driver.
    pub live: Arc<RwLock<Arc<Live>>>,
    pub state: Arc<LineState>,
    pub engine: StatsReader,
    /// The registrar's host, when a trunk is configured.
    pub registrar: Option<String>,
    /// The line's calls to itself; `None` when `[self_test] interval = 0`.
    pub self_test: Option<Arc<SelfTestStatus>>,
}

/// The parts of the pages that follow the config, as last (re)loaded.
pub struct Live {
    pub content: Arc<Content>,
    pub source: Source,
    pub timezone: Tz,
    /// `[line] skip_single_menu`: one service plays without a menu.
    pub skip_single_menu: bool,
    /// The call log, where listens per week are read from; without one,
    /// this run's plays.
    pub call_log: Option<PathBuf>,
}

/// The chart's weeks: two months.
const HISTORY_WEEKS: i64 = 8;

impl Admin {
    /// The line now. Reads a local schedule and the call log from disk:
    /// call it off the async threads.
    pub fn gather(&self) -> LineSnapshot {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner()).clone();
        let (now, instant) = (Utc::now(), Instant::now());
        let at = |then: Instant| wall_clock(then, instant, now);
        let offer = live.content.offer(now).map(|menu| Offer {
            menu_text: menu.heard_text(live.skip_single_menu),
            services: menu.items.len(),
        });
        let trunk = self.registrar.as_ref().map(|registrar| TrunkView {
            registrar: registrar.clone(),
            state: match self.state.registration() {
                None => TrunkState::Resolving,
                Some(SeenRegistration { status, changed_at }) => match status {
                    RegistrationStatus::Registering { since } => {
                        TrunkState::Registering { since: at(since) }
                    }
                    RegistrationStatus::Registered { until, .. } => TrunkState::Registered {
                        refreshed: at(changed_at),
                        until: at(until),
                    },
                    RegistrationStatus::Failing {
                        since,
                        failure,
                        retry_at,
                        ..
                    } => TrunkState::Failing {
                        since: at(since),
                        reason: failure.to_string(),
                        code: failure.code(),
                        retry_at: at(retry_at),
                    },
                    RegistrationStatus::Unregistering { .. } => TrunkState::Unregistering,
                    RegistrationStatus::Unregistered => TrunkState::Unregistered,
                },
            },
        });
        let source = match &live.source {
            Source::LocalFile(schedule) => SourceView::LocalFile {
                schedule: schedule.clone(),
            },
            Source::Fetched { origin, status } => {
                let status = status.snapshot();
                let mut problems: Vec<SourceProblem> = status
                    .problems
                    .into_iter()
                    .map(|(subject, p)| SourceProblem {
                        subject,
                        code: p.code,
                        reason: p.reason,
                        since: p.since,
                    })
                    .collect();
                problems.sort_by_key(|p| p.since);
                SourceView::Fetched {
                    origin: origin.clone(),
                    last_success: status.last_success,
                    services: status.services,
                    problems,
                    failures: status.failures.into_iter().collect(),
                }
            }
        };
        LineSnapshot {
            now,
            timezone: live.timezone,
            offer,
            trunk,
            source,
            calls_active: self.state.calls_active(),
            calls_ended: self.state.calls_ended(),
            plays: self.state.plays(),
            engine: self.engine.stats(),
            self_test: self.self_test.as_ref().map(|status| SelfTestView {
                interval: status.interval,
                last: status.last(),
                woke: status.woke(),
            }),
            history: live
                .call_log
                .as_deref()
                .and_then(|path| listen_history(path, now))
                .unwrap_or_else(|| self.state.listen_history(now)),
        }
    }
}

impl Pages for Admin {
    async fn reply(self: Arc<Self>, page: Page) -> Reply {
        let admin = self.clone();
        let Ok(line) = tokio::task::spawn_blocking(move || admin.gather()).await else {
            return Reply {
                status: 500,
                content_type: "text/plain; charset=utf-8",
                body: "the line's state could not be read\n".to_owned(),
            };
        };
        match page {
            Page::Status => Reply {
                status: 200,
                content_type: status_page::CONTENT_TYPE,
                body: status_page::render(&line),
            },
            Page::Health => {
                let health = health::check(&line);
                Reply {
                    status: if health.ok { 200 } else { 503 },
                    content_type: "application/json",
                    body: health.to_json(),
                }
            }
            Page::Metrics => Reply {
                status: 200,
                content_type: exposition::CONTENT_TYPE,
                body: exposition::render(&line),
            },
        }
    }
}

/// Binds `listen` and serves in a task of its own; `None`, with a warning,
/// when the port cannot be had (the phone line goes on without it).
pub async fn start(listen: SocketAddr, admin: Admin) -> Option<SocketAddr> {
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::warn!(
                %listen,
                %error,
                "cannot open the admin listener ([admin] listen); the phone line runs without \
                 /healthz, /metrics and the status page"
            );
            return None;
        }
    };
    let local = listener.local_addr().unwrap_or(listen);
    tracing::info!(admin = %local, "admin listener: status page at http://{local}/, /healthz, /metrics");
    tokio::spawn(server::serve(
        listener,
        Arc::new(admin),
        server::Limits::DEFAULT,
    ));
    Some(local)
}

/// Listens per service per week from the call log, the last
/// [`HISTORY_WEEKS`]; `None` if it cannot be read (it may not exist yet).
fn listen_history(path: &Path, now: DateTime<Utc>) -> Option<ListenHistory> {
    let since = now - chrono::Duration::weeks(HISTORY_WEEKS);
    let summary = crate::call_log::stats::summarise_file(path, Some(since)).ok()?;
    let weeks = summary
        .weeks
        .into_iter()
        .map(|(monday, week)| {
            let listens = week
                .listens
                .into_iter()
                .map(|(service, n)| (service, u32::try_from(n).unwrap_or(u32::MAX)))
                .collect();
            (monday, listens)
        })
        .collect();
    Some(ListenHistory { weeks })
}

/// `then` on the wall clock, given one moment read on both clocks.
fn wall_clock(then: Instant, instant: Instant, now: DateTime<Utc>) -> DateTime<Utc> {
    let delta = |d: std::time::Duration| chrono::Duration::from_std(d).unwrap_or_default();
    if then <= instant {
        now - delta(instant - then)
    } else {
        now + delta(then - instant)
    }
}

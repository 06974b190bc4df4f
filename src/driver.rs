//! The thin tokio loop between the world and the state machines: SIP
//! datagrams and timers go into the [`Endpoint`], what it asks for goes out
//! on the socket or to the [`MediaEngine`]. It decides nothing.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::admin::{self, Admin};
use crate::call::flow::FlowConfig;
use crate::call_log::CallLog;
use crate::call_log::caller::Presented;
use crate::calls::{Caller, Calls, MediaCommand};
use crate::config::Config;
use crate::content::{Catalogue, Content};
use crate::endpoint::admission::Policy;
use crate::endpoint::{Action, Endpoint, EndpointConfig, MediaPorts};
use crate::fd_limit;
use crate::media::pacer::{EngineConfig, MediaEngine, StreamId};
use crate::media::ports::{PortAllocator, RtpSockets};
use crate::observe::LineState;
use crate::prompts::Prompts;
use crate::registration::{Digest, RegistrationConfig};
use crate::self_test::{SelfTest, SelfTestStatus, Setup, SourceChange};
use crate::sip::transaction::Timers;
use crate::sip::transport::{Received, SipTransport, TransportError, TransportEvent};
use crate::source::cache::DiskCache;
use crate::source::http::{Http, HttpConfig};
use crate::source::published::Published;
use crate::source::redact::redact_url;
use crate::source::refresher::{Refresher, RefresherConfig};
use crate::speech::{Speech, SpeechConfig};

/// How often a local schedule is looked at for edits (a stat; read again
/// only when it changed) and the menu rendered ahead of callers: cheap when
/// nothing changed (cache hits), and soon after a name's speech is ready,
/// its sentences are too.
const CONTENT_REFRESH: Duration = Duration::from_secs(2);
/// How long a shutdown waits for the answers to its BYEs (after
/// `[line] shutdown_grace`, which is how long calls may play on).
const BYE_ANSWER_WAIT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("cannot start the media engine: {0}")]
    Media(std::io::Error),
    #[error("SIP socket failed: {0}")]
    Socket(std::io::Error),
    #[error("cannot set up the schedule source: {0}")]
    Source(String),
}

/// RTP sockets bound for calls that have not started media yet.
struct BoundPorts {
    allocator: PortAllocator,
    reserved: HashMap<u16, RtpSockets>,
}

impl MediaPorts for BoundPorts {
    fn reserve(&mut self) -> Option<u16> {
        match self.allocator.allocate() {
            Ok(sockets) => {
                let port = sockets.port;
                self.reserved.insert(port, sockets);
                Some(port)
            }
            // A full range is the endpoint's to report (once a minute).
            Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => None,
            Err(error) => {
                tracing::warn!(%error, "cannot bind an RTP port");
                None
            }
        }
    }

    fn release(&mut self, port: u16) {
        self.reserved.remove(&port);
    }
}

/// What the process's signals ask of the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM/SIGINT: refuse new calls, let calls in progress play on for
    /// `[line] shutdown_grace`, then hang up, unregister and return. A
    /// second one hangs up at once.
    Stop,
    /// SIGHUP: read the config file and the schedule again.
    Reload,
}

/// Runs the line until a [`Signal::Stop`] and its grace are over (or the
/// signals' sender is dropped), then hangs up every call. `config_path` is
/// read again on [`Signal::Reload`].
pub async fn run(
    config: Config,
    config_path: PathBuf,
    signals: mpsc::UnboundedReceiver<Signal>,
) -> Result<(), DriverError> {
    let transport = SipTransport::bind(config.sip.listen).await?;
    let local = transport.local_addr().map_err(DriverError::Socket)?;
    serve(config, config_path, transport, local, signals).await
}

/// Like [`run`], on an already bound transport (tests bind port 0).
pub async fn serve(
    mut config: Config,
    config_path: PathBuf,
    mut transport: SipTransport,
    local: SocketAddr,
    mut signals: mpsc::UnboundedReceiver<Signal>,
) -> Result<(), DriverError> {
    let ip = config.sip.public_address;
    let contact_addr = SocketAddr::new(ip, local.port());
    let open_files = match fd_limit::raise_open_file_limit() {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "cannot read the open-file limit; assuming 1024");
            1024
        }
    };
    let allocator = PortAllocator::new(local.ip(), config.media.rtp_ports);
    let max_calls = config
        .sip
        .max_calls
        .unwrap_or_else(|| fd_limit::max_calls(allocator.capacity(), open_files));
    let trunk = config.trunk.as_ref();
    let mut endpoint = Endpoint::new(EndpointConfig {
        contact_addr,
        media_ip: ip,
        codecs: config.media.codecs.clone(),
        timers: Timers {
            t1: config.sip.t1,
            ..Timers::default()
        },
        answer_delay: config.sip.answer_delay,
        user_agent: config.sip.user_agent.clone(),
        policy: Policy::from_settings(
            trusted_networks(&config),
            trunk.is_some(),
            trunk.is_some_and(|t| t.accept_direct),
        ),
        untrusted: trunk.map(|t| t.untrusted).unwrap_or_default(),
        max_calls,
        max_setups_per_source: config.sip.max_setups_per_source,
        max_call_rate_per_source: config.sip.max_call_rate_per_source,
        max_call_duration: config.line.max_call_duration.limit(None),
        rng_seed: None,
    });
    if let Some(external) = config.trunk.as_ref().and_then(|t| t.external_address) {
        endpoint.set_public_address(SocketAddr::new(external, local.port()));
    }
    // The trunk's name is resolved off the loop, retried until it works:
    // a DNS outage at start must not stop the line from taking direct calls.
    let (resolved_tx, mut resolved) = mpsc::channel::<SocketAddr>(1);
    if let Some(trunk) = &config.trunk {
        tokio::spawn(resolve_trunk(trunk.next_hop().lookup_target(), resolved_tx));
    }
    let (mut content, mut refresher, source) = build_content(&config)?;
    content.check_at_start(&config.media.codecs, chrono::Utc::now());

    let (events_tx, mut events) = mpsc::unbounded_channel();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let engine = MediaEngine::start_with(
        EngineConfig {
            workers,
            hold_timeout: config.media.hold_timeout,
            ..EngineConfig::default()
        },
        events_tx,
    )
    .map_err(DriverError::Media)?;
    let observed = Arc::new(LineState::new(config.line.timezone));
    let live_pages = Arc::new(RwLock::new(admin_live(&config, &content, source)));
    let self_test_status = config
        .self_test
        .interval
        .map(|interval| Arc::new(SelfTestStatus::new(interval)));
    if let Some(listen) = config.admin.listen {
        let pages = Admin {
            live: live_pages.clone(),
            state: observed.clone(),
            engine: engine.stats_reader(),
            registrar: config.trunk.as_ref().map(|t| match t.registrar.port {
                Some(port) => format!("{}:{port}", t.registrar.host),
                None => t.registrar.host.clone(),
            }),
            self_test: self_test_status.clone(),
        };
        admin::start(listen, pages).await;
    }
    let mut ports = BoundPorts {
        allocator,
        reserved: HashMap::new(),
    };
    let records = Records {
        call_log: CallLog::open(&config.log.calls),
        resume_dir: config.line.resume.then(|| config.cache.dir.clone()),
    };
    let mut calls = Calls::new(flow_config(&config), config.dtmf).with_observer(observed.clone());
    if let Some(dir) = &records.resume_dir {
        let keep = Duration::from_secs(u64::from(config.line.resume_days) * 24 * 3600);
        calls = calls.with_resume(crate::resume_store::open(dir, keep, chrono::Utc::now()));
    }
    tracing::info!(
        sip = %local,
        advertised = %contact_addr,
        codecs = %config.media.codecs.iter().map(|c| c.config_name()).collect::<Vec<_>>().join(","),
        max_calls,
        open_files,
        "the line is listening; {}",
        endpoint.admission().policy().describe()
    );

    // The line calls itself now and then (off the loop; the loop only
    // learns which socket is its own).
    let (self_test_sources_tx, mut self_test_sources) = mpsc::channel::<SourceChange>(1);
    let (self_test_setup, setup) =
        watch::channel(Setup::new(&config, content.clone(), flow_config(&config)));
    let mut self_test = self_test_status.clone().map(|status| {
        let task = SelfTest {
            interval: status.interval,
            listener: local,
            setup,
            sources: self_test_sources_tx.clone(),
            status,
            line: observed.clone(),
            max_calls,
        };
        tokio::spawn(task.run()).abort_handle()
    });

    if let Some(problem) = config.sip.advertised_address_problem() {
        tracing::warn!(code = "sip.advertises_loopback", "{problem}");
    }

    // The schedule is read ahead of callers, so new names are rendered
    // and problems logged before anyone meets them.
    let mut refresh = tokio::time::interval(CONTENT_REFRESH);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (reloaded_tx, mut reloaded) = mpsc::unbounded_channel::<(Config, Built)>();
    // Set by the first Stop: when the calls in progress must be hung up.
    let mut draining_until: Option<Instant> = None;
    loop {
        if let Some(deadline) = draining_until
            && (endpoint.active_calls() == 0 || Instant::now() >= deadline)
        {
            break;
        }
        // Media first: content prepared for a call is ready before its 200
        // OK leaves, so the caller's ACK finds it and RTP starts at once.
        loop {
            while let Some(action) = endpoint.poll_action() {
                perform(
                    action, &engine, &mut ports, &content, &mut calls, &records, &observed,
                );
                dispatch(&mut calls, &engine, &mut ports);
            }
            let hang_ups = calls.take_hang_ups();
            if hang_ups.is_empty() {
                break;
            }
            for (call, reason) in hang_ups {
                endpoint.handle_media_ended(call, reason, Instant::now());
            }
        }
        while let Some(transmit) = endpoint.poll_transmit() {
            transport.send(&transmit).await;
        }
        observed.set_calls_active(endpoint.active_calls());
        observed.observe_registration(endpoint.registration_status(), Instant::now());
        let wake = [
            endpoint.poll_timeout(),
            calls.poll_timeout(),
            draining_until,
        ]
        .into_iter()
        .flatten()
        .min();
        let sleep = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            received = transport.recv() => match received? {
                Received::Message(incoming) => endpoint.handle_datagram(
                    &incoming.payload,
                    incoming.source,
                    incoming.transport,
                    Instant::now(),
                    &mut ports,
                ),
                Received::Event(event) => {
                    tracing::debug!("SIP transport: {event}");
                    match event {
                        TransportEvent::Closed { peer, .. } => endpoint.handle_transport_failure(peer, Instant::now()),
                        TransportEvent::Failed { destination, .. } => {
                            endpoint.handle_transport_failure(destination, Instant::now())
                        }
                        _ => {}
                    }
                }
            },
            () = sleep => {
                let now = Instant::now();
                endpoint.handle_timeout(now);
                calls.handle_timeout(now, chrono::Utc::now());
                dispatch(&mut calls, &engine, &mut ports);
            }
            Some(destination) = resolved.recv() => {
                if let Some(trunk) = &config.trunk {
                    tracing::info!(registrar = %trunk.registrar.uri, %destination, transport = trunk.transport.via_token(), "registering with the trunk");
                    endpoint.register(
                        RegistrationConfig::from_trunk(
                            trunk,
                            SocketAddr::new(config.sip.public_address, local.port()),
                            destination,
                            Timers { t1: config.sip.t1, ..Timers::default() },
                            config.sip.user_agent.clone(),
                        ),
                        Box::new(Digest::from_trunk(trunk)),
                        Instant::now(),
                    );
                }
            }
            Some(change) = self_test_sources.recv() => {
                endpoint.set_self_test_source(change.source);
                let _ = change.done.send(());
            }
            Some(event) = events.recv() => {
                calls.handle_media_event(event, Instant::now(), chrono::Utc::now());
                dispatch(&mut calls, &engine, &mut ports);
            }
            _ = refresh.tick() => {
                // `"auto"`: the longest service the last refresh saw.
                endpoint.set_max_call_duration(
                    config.line.max_call_duration.limit(content.longest_service()),
                );
                let content = content.clone();
                let codecs = config.media.codecs.clone();
                // Dropped unawaited: a slow disk delays the next warm-up,
                // never a call.
                drop(tokio::task::spawn_blocking(move || content.refresh(&codecs, chrono::Utc::now())));
            }
            Some((fresh, (new_content, new_refresher, source))) = reloaded.recv() => {
                *live_pages.write().unwrap_or_else(|e| e.into_inner()) =
                    admin_live(&fresh, &new_content, source);
                if let Some(old) = std::mem::replace(&mut refresher, new_refresher) {
                    old.abort();
                }
                // Keys and the flow follow the reload; the codecs and the
                // ringing are the endpoint's, which keeps its own till a restart.
                self_test_setup.send_modify(|setup| {
                    *setup = Setup {
                        codec: setup.codec,
                        answer_timeout: setup.answer_timeout,
                        ..Setup::new(&fresh, new_content.clone(), flow_config(&fresh))
                    };
                });
                content = new_content;
                calls.reconfigure(flow_config(&fresh), fresh.dtmf);
                config = fresh;
            }
            signal = signals.recv() => match signal {
                Some(Signal::Reload) => {
                    // Reading the file and the prompts is disk work: off
                    // the loop, the result comes back on `reloaded`.
                    let (path, running, done) = (config_path.clone(), config.clone(), reloaded_tx.clone());
                    drop(tokio::task::spawn_blocking(move || {
                        let Some(fresh) = reload(&path, &running) else { return };
                        match build_content(&fresh) {
                            Ok(built) => {
                                built.0.check_at_start(&fresh.media.codecs, chrono::Utc::now());
                                let _ = done.send((fresh, built));
                            }
                            Err(error) => tracing::warn!(
                                code = "config.reload_refused",
                                "the config was not reloaded, the old one is kept: {error}"
                            ),
                        }
                    }));
                }
                Some(Signal::Stop) if draining_until.is_none() && endpoint.active_calls() > 0 => {
                    let grace = config.line.shutdown_grace;
                    tracing::info!(
                        code = "line.draining",
                        calls = endpoint.active_calls(),
                        "stopping: new calls are refused; the {} call(s) in progress may play on for up to {}",
                        endpoint.active_calls(),
                        humantime::format_duration(grace)
                    );
                    endpoint.start_draining();
                    if let Some(task) = self_test.take() {
                        task.abort();
                        endpoint.set_self_test_source(None);
                    }
                    draining_until = Some(Instant::now() + grace);
                }
                // A second signal, no calls to wait for, or no one left to
                // send one: stop now.
                Some(Signal::Stop) | None => break,
            },
        }
    }

    if let Some(task) = self_test.take() {
        task.abort();
    }
    drop(self_test_sources_tx);
    tracing::info!(
        code = "line.shutdown",
        calls = endpoint.active_calls(),
        "shutting down: hanging up every call and unregistering"
    );
    endpoint.shutdown(Instant::now());
    let deadline = Instant::now() + BYE_ANSWER_WAIT;
    while endpoint.active_calls() > 0 && Instant::now() < deadline {
        while let Some(transmit) = endpoint.poll_transmit() {
            transport.send(&transmit).await;
        }
        while let Some(action) = endpoint.poll_action() {
            perform(
                action, &engine, &mut ports, &content, &mut calls, &records, &observed,
            );
            dispatch(&mut calls, &engine, &mut ports);
        }
        let wake = endpoint.poll_timeout().unwrap_or(deadline).min(deadline);
        tokio::select! {
            received = transport.recv() => {
                if let Received::Message(incoming) = received? {
                    endpoint.handle_datagram(
                        &incoming.payload,
                        incoming.source,
                        incoming.transport,
                        Instant::now(),
                        &mut ports,
                    );
                }
            }
            () = tokio::time::sleep_until(wake.into()) => endpoint.handle_timeout(Instant::now()),
        }
    }
    // A caller's BYE in the last round ended its call: log it too.
    while let Some(action) = endpoint.poll_action() {
        perform(
            action, &engine, &mut ports, &content, &mut calls, &records, &observed,
        );
    }
    while let Some(transmit) = endpoint.poll_transmit() {
        transport.send(&transmit).await;
    }
    Ok(())
}

/// The task refreshing a schedule from the web, if any: stopped when the
/// config is reloaded.
type Refresh = Option<tokio::task::AbortHandle>;

/// What [`build_content`] makes.
type Built = (Arc<Content>, Refresh, admin::Source);

/// `[sip] trust` and `[trunk] trust` together; `None` when neither is set.
fn trusted_networks(config: &Config) -> Option<Vec<crate::config::IpNet>> {
    let trunk = config.trunk.as_ref().and_then(|t| t.trust.as_ref());
    match (&config.sip.trust, trunk) {
        (None, None) => None,
        (sip, trunk) => Some(sip.iter().chain(trunk).flatten().cloned().collect()),
    }
}

/// The content callers hear, from `config`.
fn build_content(config: &Config) -> Result<Built, DriverError> {
    let (catalogue, refresher, source) = catalogue(config)?;
    let content = Content::new(
        catalogue,
        config.audio.apology.clone(),
        config.media.max_cached_tracks,
        voice(config),
    )
    .with_timezone(config.line.timezone)
    .with_church_name(config.line.church_name.clone())
    .with_loudness(config.audio.loudness);
    Ok((Arc::new(content), refresher, source))
}

/// What the admin pages show of `config` and `content`.
fn admin_live(config: &Config, content: &Arc<Content>, source: admin::Source) -> Arc<admin::Live> {
    Arc::new(admin::Live {
        content: content.clone(),
        source,
        timezone: config.line.timezone,
        skip_single_menu: config.line.skip_single_menu,
        call_log: config.log.calls.path.clone(),
    })
}

fn flow_config(config: &Config) -> FlowConfig {
    FlowConfig {
        menu_timeout: config.line.menu_timeout,
        skip_single_menu: config.line.skip_single_menu,
        ..FlowConfig::default()
    }
}

/// Reads the config file again for SIGHUP. What calls hear (the schedule,
/// its audio, prompts, the menu's settings, keys) changes for the next
/// call; what is bound or registered at start needs a restart, and says
/// so. A config with a mistake is refused and the running one kept.
fn reload(path: &std::path::Path, running: &Config) -> Option<Config> {
    let fresh = match Config::load(path) {
        Ok(fresh) => fresh,
        Err(error) => {
            tracing::warn!(
                code = "config.reload_refused",
                "the config was not reloaded, the old one is kept: {error}"
            );
            return None;
        }
    };
    let needs_restart: Vec<&str> = [
        ("[sip]", fresh.sip != running.sip),
        ("[media]", fresh.media != running.media),
        ("[trunk]", fresh.trunk != running.trunk),
        ("[cache]", fresh.cache != running.cache),
        ("[log]", fresh.log != running.log),
        ("[admin]", fresh.admin != running.admin),
        ("[self_test]", fresh.self_test != running.self_test),
    ]
    .into_iter()
    .filter_map(|(section, changed)| changed.then_some(section))
    .collect();
    if needs_restart.is_empty() {
        tracing::info!(
            code = "config.reloaded",
            "config and schedule reloaded from {}",
            path.display()
        );
    } else {
        tracing::warn!(
            code = "config.reloaded",
            "config and schedule reloaded from {}; changes to {} take effect only after a restart",
            path.display(),
            needs_restart.join(", ")
        );
    }
    Some(fresh)
}

/// A local `data.json` with local audio is read for each call; anything
/// from the web, and any feed, is fetched by the background refresher and
/// published (the refresher is started here).
fn catalogue(config: &Config) -> Result<(Catalogue, Refresh, admin::Source), DriverError> {
    if let Some((schedule, audio)) = crate::source::local_files(&config.source) {
        let local = Catalogue::Local {
            schedule: schedule.to_path_buf(),
            audio: audio.to_path_buf(),
        };
        let source = admin::Source::LocalFile(schedule.display().to_string());
        return Ok((local, None, source));
    }
    let http = Http::new(&HttpConfig {
        ca_file: config.source.ca_file.clone(),
        insecure_skip_verify: config.source.insecure_skip_verify,
        connect_timeout: Duration::from_secs(10),
        user_agent: http_user_agent(),
    })
    .map_err(|e| DriverError::Source(e.to_string()))?;
    let cache =
        DiskCache::open(&config.cache.dir).map_err(|e| DriverError::Source(e.to_string()))?;
    let published = Arc::new(Published::default());
    let refresher = Refresher::new(
        RefresherConfig {
            schedule: config.source.schedule.clone(),
            audio: config.source.audio.clone(),
            interval: config.source.refresh_interval,
            keep_latest: config.cache.keep_latest,
            timezone: config.line.timezone,
            church_name: config.line.church_name.clone(),
        },
        http,
        Arc::new(cache),
        published.clone(),
    );
    let source = admin::Source::Fetched {
        origin: redact_url(&config.source.schedule.to_string()),
        status: refresher.status(),
    };
    let task = tokio::spawn(refresher.run()).abort_handle();
    let published = Catalogue::Published {
        published,
        origin: config.source.schedule.to_string(),
    };
    Ok((published, Some(task), source))
}

/// The prompt library, with espeak-ng behind it for names and titles.
fn voice(config: &Config) -> Prompts {
    let speech = Speech::new(SpeechConfig {
        command: config.speech.command.clone(),
        voice: config.speech.voice.clone(),
        rate: config.speech.rate,
        cache_dir: config.cache.dir.join("speech"),
    });
    Prompts::load(
        &config.audio.prompts,
        &config.media.codecs,
        Some(Arc::new(speech)),
    )
}

/// The parish's own website may like to know who fetches its files; SIP
/// scanners are not told (`[sip] user_agent`).
fn http_user_agent() -> String {
    format!("dial-a-service/{}", env!("CARGO_PKG_VERSION"))
}

/// Resolves the trunk's `host:port` (A/AAAA; SRV is not looked up yet),
/// retrying every 30 s and logging the failure once.
async fn resolve_trunk(target: String, resolved: mpsc::Sender<SocketAddr>) {
    let mut logged = false;
    loop {
        match tokio::net::lookup_host(&target).await.map(|mut a| a.next()) {
            Ok(Some(addr)) => {
                let _ = resolved.send(addr).await;
                return;
            }
            Ok(None) => {
                if !logged {
                    tracing::warn!(%target, "the trunk's name has no address; retrying every 30 s");
                }
            }
            Err(error) => {
                if !logged {
                    tracing::warn!(%target, %error, "cannot resolve the trunk; retrying every 30 s");
                }
            }
        }
        logged = true;
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
}

/// Hands what the calls asked for to the media engine, and the audio
/// they need prepared to the blocking pool (the streams wait for it; the
/// loop never does).
fn dispatch(calls: &mut Calls, engine: &MediaEngine, ports: &mut BoundPorts) {
    while let Some(preparation) = calls.poll_preparation() {
        drop(tokio::task::spawn_blocking(move || preparation.run()));
    }
    while let Some(command) = calls.poll_media() {
        match command {
            MediaCommand::Start {
                call,
                rtp_port,
                stream,
                programme,
            } => {
                let Some(sockets) = ports.reserved.remove(&rtp_port) else {
                    tracing::error!(%call, rtp_port, "RTP sockets vanished before media started");
                    continue;
                };
                engine.add_programme(stream.with_sockets(StreamId(call.0), sockets), programme);
            }
            MediaCommand::Control { call, control } => engine.control(StreamId(call.0), control),
        }
    }
}

/// What outlives each call on disk: the call log, and (with `[line]
/// resume`) the book of where callers stopped, in the cache folder.
struct Records {
    call_log: CallLog,
    resume_dir: Option<PathBuf>,
}

/// Carries out one media action of the endpoint.
fn perform(
    action: Action,
    engine: &MediaEngine,
    ports: &mut BoundPorts,
    content: &Arc<Content>,
    calls: &mut Calls,
    records: &Records,
    observed: &LineState,
) {
    match action {
        Action::PrepareMedia {
            call,
            codec,
            caller,
            self_test,
        } => {
            calls.prepare(
                call,
                codec,
                if self_test {
                    Caller::SelfTest
                } else {
                    Caller::From(&caller)
                },
                content,
                Instant::now(),
                chrono::Utc::now(),
            );
        }
        Action::StartMedia {
            call,
            rtp_port,
            media,
            caller,
            self_test,
        } => {
            if self_test {
                // Every quarter of an hour: only its failures are news.
                tracing::debug!(%call, codec = %media.codec, "self-test: answered");
            } else {
                tracing::info!(
                %call,
                caller = %records.call_log.shown_caller(&Presented::from_header(&caller)),
                codec = %media.codec,
                remote = %media.remote_rtp.map_or("none (on hold)".to_owned(), |a| a.to_string()),
                telephone_event = %media.telephone_event.map_or("none".to_owned(), |pt| pt.to_string()),
                "call answered"
                );
                calls.note_caller(call, &caller);
            }
            calls.start(
                call,
                rtp_port,
                &media,
                content,
                Instant::now(),
                chrono::Utc::now(),
            );
        }
        Action::UpdateMedia { call, media } => {
            let unspecified = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 9);
            let remote_rtp = media.remote_rtp.unwrap_or(unspecified);
            let remote_rtcp = media.remote_rtcp.unwrap_or_else(|| {
                SocketAddr::new(remote_rtp.ip(), remote_rtp.port().wrapping_add(1))
            });
            let sending = media.local_direction.sends() && media.remote_rtp.is_some();
            tracing::info!(%call, remote = %remote_rtp, sending, "media updated by re-INVITE");
            engine.update(StreamId(call.0), remote_rtp, remote_rtcp, sending);
        }
        Action::StopMedia { call, rtp_port } => {
            ports.release(rtp_port);
            calls.stop(call);
            engine.remove(StreamId(call.0));
        }
        Action::CallEnded {
            call,
            reason,
            self_test,
        } => {
            calls.stop(call);
            let finished =
                calls.finish_record(call, reason, content, Instant::now(), chrono::Utc::now());
            if let Some((record, caller)) = finished {
                records.call_log.append(record, &caller);
            }
            if let (Some(book), Some(dir)) = (calls.take_resume_changes(), &records.resume_dir) {
                let dir = dir.clone();
                drop(tokio::task::spawn_blocking(move || {
                    if let Err(error) = crate::resume_store::write(&dir, &book) {
                        tracing::warn!(code = "resume.write", dir = %dir.display(), %error, "cannot keep where callers stopped");
                    }
                }));
            }
            if self_test {
                tracing::debug!(%call, code = reason.code(), "self-test: ended: {reason}");
            } else {
                observed.call_ended(reason);
                tracing::info!(%call, code = reason.code(), "call ended: {reason}");
            }
        }
        Action::Key { call, key } => {
            calls.handle_info_key(call, key, Instant::now(), chrono::Utc::now());
        }
    }
}

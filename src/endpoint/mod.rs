//! The line's SIP user-agent core (RFC 3261 §8.2, §12–§17), sans-IO.
//!
//! It receives datagrams, timer ticks and media events, all with `now`, and
//! answers with datagrams to send ([`Endpoint::poll_transmit`]), media work
//! for the driver ([`Endpoint::poll_action`]) and when to wake next
//! ([`Endpoint::poll_timeout`]). It never touches a socket or a clock.
//!
//! Call order for a driver:
//! 1. feed input: `handle_datagram`, `handle_timeout`, `handle_media_finished`;
//! 2. drain `poll_transmit` and `poll_action`;
//! 3. sleep until `poll_timeout` or the next input.
//!
//! What a call looks like from here:
//!
//! ```text
//!  INVITE ──► 100 ──► (180, ring for answer_delay) ──► 200+SDP ──► ACK ──► media
//!     │          CANCEL ──► 200, 487                     │ no ACK in 64·T1 ──► BYE
//!     └─ no common codec ──► 488        media finished ──► BYE ──► gone
//!                                        BYE from caller ──► 200, media stops
//! ```
//!
//! Content trouble (schedule, audio) never reaches this module: the driver
//! plays the apology clip instead, so a call is always answered.

// No clock reads or global randomness outside tests: `now` and the seeded
// generator are inputs (clippy.toml).
#![cfg_attr(not(test), deny(clippy::disallowed_methods))]

pub mod admission;
mod call;
mod requests;
pub mod session_timer;
mod transactions;
pub mod wakeups;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ring::hmac;

use crate::config::Untrusted;
use crate::log_summary::{LogSummary, Verdict};
use crate::media::Codec;
use crate::media::dtmf::Key;
use crate::registration::{
    Authorizer, Registration, RegistrationConfig, RegistrationEvent, RegistrationStatus,
};
use crate::sdp::Negotiated;
use crate::sip::dialog::DialogId;
use crate::sip::message;
use crate::sip::transaction::{Timers, TransactionKey};
use crate::sip::{Transmit, Transport};

use admission::{Admission, Policy};
use call::Call;
use transactions::Transactions;
use wakeups::Wakeups;

/// Static settings of the user agent.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// The address written in Via sent-by and Contact.
    pub contact_addr: SocketAddr,
    /// The address written in SDP `c=` lines.
    pub media_ip: IpAddr,
    /// Codecs that may be answered, in our order (the caller's order wins).
    pub codecs: Vec<Codec>,
    pub timers: Timers,
    /// How long to ring (180) before answering; lets callers CANCEL.
    pub answer_delay: Duration,
    /// `Server` / `User-Agent` header value; `None` sends neither.
    pub user_agent: Option<String>,
    /// Whose requests are served at all (see [`admission`]).
    pub policy: Policy,
    /// What a request from anyone else gets: one 403, or silence.
    pub untrusted: Untrusted,
    /// Calls at once; more get 503.
    pub max_calls: usize,
    /// Calls being set up from one (untrusted, non-trunk) address.
    pub max_setups_per_source: usize,
    /// New calls a second from one (untrusted, non-trunk) address.
    pub max_call_rate_per_source: f64,
    /// The longest a call may last from its answer; the line then says
    /// goodbye with BYE ([`EndpointConfig::max_call_duration`] may change
    /// while running: `"auto"` follows the longest service).
    pub max_call_duration: Duration,
    /// Seeds every random value the endpoint sends (tags, branches, Call-IDs,
    /// CSeq starts, SDP session ids, cnonces, backoff jitter), as quinn-proto's
    /// `EndpointConfig::rng_seed`: the same seed and inputs give the same
    /// bytes. `None` seeds from the operating system.
    pub rng_seed: Option<[u8; 32]>,
}

/// Reserves RTP ports when a call is offered. The driver binds real sockets;
/// tests hand out numbers.
pub trait MediaPorts {
    /// An even RTP port with RTCP on the next one, or `None` when exhausted.
    fn reserve(&mut self) -> Option<u16>;
    /// Gives back a port whose call never started media.
    fn release(&mut self, port: u16);
}

/// Our handle for one call, stable for its lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

impl std::fmt::Display for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "call-{}", self.0)
    }
}

/// Why a call ended, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The caller sent BYE.
    CallerHungUp,
    /// The caller cancelled before the answer.
    Cancelled,
    /// We hung up after the content ended.
    ContentFinished,
    /// The media stream could not start or stopped by itself.
    MediaFailed,
    /// The 2xx was never acknowledged (64·T1).
    AckTimedOut,
    /// The answer in the ACK was missing or unusable.
    BadAckAnswer,
    /// `[line] max_call_duration` passed.
    MaxDuration,
    /// The caller's RFC 4028 session timer ran out without a refresh.
    SessionExpired,
    /// Held (`sendonly`, `inactive`, `c=0.0.0.0`) with nothing from the
    /// caller for `[media] hold_timeout`.
    HoldTimeout,
    /// The caller's media address answers with ICMP errors: nobody is there.
    MediaUnreachable,
    /// The line is shutting down.
    Shutdown,
}

impl EndReason {
    /// A stable code for logs and metrics.
    pub fn code(self) -> &'static str {
        match self {
            EndReason::CallerHungUp => "call.caller_hung_up",
            EndReason::Cancelled => "call.cancelled",
            EndReason::ContentFinished => "call.finished",
            EndReason::MediaFailed => "media.failed",
            EndReason::AckTimedOut => "sip.ack_timeout",
            EndReason::BadAckAnswer => "sdp.bad_ack_answer",
            EndReason::MaxDuration => "call.max_duration",
            EndReason::SessionExpired => "sip.session_expired",
            EndReason::HoldTimeout => "media.hold_timeout",
            EndReason::MediaUnreachable => "media.unreachable",
            EndReason::Shutdown => "line.shutdown",
        }
    }
}

impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EndReason::CallerHungUp => "the caller hung up",
            EndReason::Cancelled => "the caller hung up before the answer",
            EndReason::ContentFinished => "the service ended and the line said goodbye",
            EndReason::MediaFailed => "the call's audio could not be sent",
            EndReason::AckTimedOut => "the caller never acknowledged the answer",
            EndReason::BadAckAnswer => "the caller's acknowledgement had no usable SDP answer",
            EndReason::MaxDuration => "the call reached [line] max_call_duration",
            EndReason::SessionExpired => "the caller's session timer ran out without a refresh",
            EndReason::HoldTimeout => {
                "the call was held with nothing from the caller for [media] hold_timeout"
            }
            EndReason::MediaUnreachable => {
                "the caller's audio address answers with ICMP errors: nobody is there"
            }
            EndReason::Shutdown => "the line is shutting down",
        })
    }
}

/// Media work for the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The codec is agreed: get the content ready so the first packet can
    /// leave as soon as the ACK arrives (opening a file is not free).
    PrepareMedia {
        call: CallId,
        codec: Codec,
        /// The caller's From URI, for who they are (carrying on).
        caller: String,
        /// The line calling itself (see [`Endpoint::set_self_test_source`]).
        self_test: bool,
    },
    /// Start playing to the caller on the reserved port.
    StartMedia {
        call: CallId,
        rtp_port: u16,
        media: Negotiated,
        /// Where the INVITE came from, for the log.
        caller: String,
        self_test: bool,
    },
    /// A re-INVITE changed the remote address or direction.
    UpdateMedia { call: CallId, media: Negotiated },
    /// The call is over: stop its media (if any) and free its port.
    StopMedia { call: CallId, rtp_port: u16 },
    /// For the call log.
    CallEnded {
        call: CallId,
        reason: EndReason,
        self_test: bool,
    },
    /// The caller pressed a key, sent in a SIP INFO.
    Key { call: CallId, key: Key },
}

/// Counters kept for operators and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointStats {
    pub datagrams: u64,
    pub malformed_answered: u64,
    pub malformed_dropped: u64,
    pub calls_offered: u64,
    pub calls_answered: u64,
    pub calls_rejected: u64,
    pub retransmissions_absorbed: u64,
}

/// Which machine a wake-up belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum WakeKey {
    Transaction(TransactionKey),
    Call(CallId),
    Registration,
    /// The end of a quiet-log window.
    Summaries,
}

/// The UAS core. See the module docs for the call order.
pub struct Endpoint {
    config: EndpointConfig,
    transactions: Transactions,
    calls: HashMap<CallId, Call>,
    dialogs: HashMap<DialogId, CallId>,
    wakeups: Wakeups<WakeKey>,
    outbox: VecDeque<Transmit>,
    actions: VecDeque<Action>,
    next_call: u64,
    stats: EndpointStats,
    /// The line's registration with its trunk, if it has one.
    registration: Option<Registration>,
    admission: Admission,
    /// The line's own self-test client's SIP socket, while it calls.
    self_test_source: Option<SocketAddr>,
    /// Repeated refusals and junk, logged once per kind and source a minute.
    quiet: LogSummary,
    /// When the quiet log's next summary is scheduled.
    summaries_at: Option<Instant>,
    /// Keys the To-tags of stateless answers, so a retransmitted request
    /// gets the same tag (RFC 3261 §8.2.6.2) without any stored state.
    tag_key: hmac::Key,
    /// The one source of randomness; see [`EndpointConfig::rng_seed`].
    rng: StdRng,
}

impl Endpoint {
    pub fn new(config: EndpointConfig) -> Self {
        let mut rng = match config.rng_seed {
            Some(seed) => StdRng::from_seed(seed),
            // The one read of OS randomness in the core, at creation.
            #[allow(clippy::disallowed_methods)]
            None => StdRng::from_os_rng(),
        };
        let tag_key = hmac::Key::new(hmac::HMAC_SHA256, &rng.random::<[u8; 32]>());
        let admission = Admission::new(
            config.policy.clone(),
            config.untrusted,
            config.max_calls,
            config.max_setups_per_source,
            config.max_call_rate_per_source,
        );
        Endpoint {
            config,
            transactions: Transactions::default(),
            calls: HashMap::new(),
            dialogs: HashMap::new(),
            wakeups: Wakeups::default(),
            outbox: VecDeque::new(),
            actions: VecDeque::new(),
            next_call: 1,
            stats: EndpointStats::default(),
            registration: None,
            admission,
            self_test_source: None,
            quiet: LogSummary::default(),
            summaries_at: None,
            tag_key,
            rng,
        }
    }

    /// `"auto"` follows the longest service: calls answered from now on
    /// get this limit.
    pub fn set_max_call_duration(&mut self, limit: Duration) {
        self.config.max_call_duration = limit;
    }

    /// Requests from `source` (a UDP socket of this process on loopback,
    /// which nobody outside can forge: the kernel drops packets from
    /// outside that claim a local source address) are the line's own
    /// self-test: let in whatever the trust policy, and free of the
    /// per-source limits, but not of `max_calls` or draining. `None` when
    /// no self-test is calling.
    pub fn set_self_test_source(&mut self, source: Option<SocketAddr>) {
        self.self_test_source = source;
    }

    fn is_self_test(&self, source: SocketAddr, transport: Transport) -> bool {
        transport == Transport::Udp
            && self.self_test_source.is_some_and(|own| {
                own.port() == source.port() && own.ip().to_canonical() == source.ip().to_canonical()
            })
    }

    /// Whose calls are taken, for the start log.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// Counts an event of `kind` from `source` for the quiet log: true when
    /// it is to be logged in full, else it is summarised later.
    fn quiet_note(&mut self, kind: &'static str, source: SocketAddr, now: Instant) -> bool {
        let verdict = self.quiet.note(kind, source.ip().to_canonical(), now);
        let at = self.quiet.poll_timeout();
        if at != self.summaries_at {
            self.summaries_at = at;
            self.wakeups.schedule(at, WakeKey::Summaries);
        }
        verdict == Verdict::Log
    }

    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// The address the trunk sees us at (learned from `received`/`rport`
    /// of a REGISTER response): new calls advertise it in Contact and SDP.
    pub fn set_public_address(&mut self, public: SocketAddr) {
        if self.config.contact_addr != public {
            tracing::info!(%public, "advertising the public address learned from the trunk");
        }
        self.config.contact_addr = public;
        self.config.media_ip = public.ip();
    }

    /// Starts registering with the trunk (the driver resolved its address).
    /// Its address is the trunk's for admission from now on. The
    /// registration draws its random values from a generator seeded here.
    pub fn register(
        &mut self,
        config: RegistrationConfig,
        authorizer: Box<dyn Authorizer>,
        now: Instant,
    ) {
        let registration = Registration::new(config, authorizer, self.rng.random(), now);
        self.admission
            .add_trunk_address(registration.destination().ip());
        self.registration = Some(registration);
        self.flush_registration(now);
    }

    /// Where the registration stands, for logs and the status page.
    pub fn registration_status(&self) -> Option<&RegistrationStatus> {
        self.registration.as_ref().map(Registration::status)
    }

    /// A TCP connection to `peer` closed or could not be opened: if it was
    /// the registration's, register again (with backoff).
    pub fn handle_transport_failure(&mut self, peer: SocketAddr, now: Instant) {
        if let Some(registration) = &mut self.registration
            && registration.destination() == peer
        {
            registration.handle_transport_error(now);
            self.flush_registration(now);
        }
    }

    /// Nothing left to finish: no calls, and the registration (if any)
    /// unregistered. The driver exits after shutdown once this holds.
    pub fn is_idle(&self) -> bool {
        self.calls.is_empty()
            && self
                .registration
                .as_ref()
                .is_none_or(Registration::is_finished)
    }

    pub fn stats(&self) -> &EndpointStats {
        &self.stats
    }

    /// Calls that are ringing, answered or being hung up.
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    /// One message from `source`: a UDP datagram or a message framed out of
    /// a TCP stream.
    pub fn handle_datagram(
        &mut self,
        datagram: &[u8],
        source: SocketAddr,
        transport: Transport,
        now: Instant,
        ports: &mut dyn MediaPorts,
    ) {
        self.stats.datagrams += 1;
        // RFC 5626 §4.4.1 keep-alives and stray CRLFs are not messages.
        if datagram.iter().all(|b| b.is_ascii_whitespace()) {
            return;
        }
        match message::parse(datagram) {
            Ok(rsip::SipMessage::Request(request)) => {
                self.handle_request(request, source, transport, now, ports)
            }
            Ok(rsip::SipMessage::Response(response)) => self.handle_response(response, now),
            Err(error) => self.handle_unparsable(datagram, source, transport, &error),
        }
    }

    fn handle_unparsable(
        &mut self,
        datagram: &[u8],
        source: SocketAddr,
        transport: Transport,
        error: &dyn std::fmt::Display,
    ) {
        // 501 for a method nobody knows, else 400 (or nothing).
        match message::answer_unparsable(datagram, &mut self.rng) {
            Some(reply) => {
                self.stats.malformed_answered += 1;
                tracing::debug!(%source, %error, "answered a malformed request");
                self.outbox.push_back(Transmit {
                    destination: source,
                    payload: reply,
                    transport,
                });
            }
            None => {
                self.stats.malformed_dropped += 1;
                tracing::debug!(%source, %error, "dropped a malformed message");
            }
        }
    }

    /// Wakes every machine whose deadline has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        for key in self.wakeups.pop_due(now) {
            match key {
                WakeKey::Transaction(key) => self.transaction_timeout(&key, now),
                WakeKey::Call(id) => self.call_timeout(id, now),
                WakeKey::Registration => {
                    if let Some(registration) = &mut self.registration {
                        registration.handle_timeout(now);
                        self.flush_registration(now);
                    }
                }
                WakeKey::Summaries => {
                    for summary in self.quiet.poll_summaries(now) {
                        tracing::warn!("{summary}");
                    }
                    self.summaries_at = self.quiet.poll_timeout();
                    self.wakeups.schedule(self.summaries_at, WakeKey::Summaries);
                }
            }
        }
    }

    /// The media side ended `call` (its content played to the end, or its
    /// media timed out): hang up, naming why.
    pub fn handle_media_ended(&mut self, call: CallId, reason: EndReason, now: Instant) {
        if self.calls.contains_key(&call) {
            self.hang_up(call, reason, now);
        }
    }

    /// Hangs up every call (SIGTERM): BYE to answered ones, 480 to ringing
    /// ones; and unregisters from the trunk (`Expires: 0`).
    /// The line is stopping: new calls get 503 from now on (a proxy in
    /// front tries another line); calls in progress carry on.
    pub fn start_draining(&mut self) {
        self.admission.start_draining();
    }

    pub fn shutdown(&mut self, now: Instant) {
        if let Some(registration) = &mut self.registration {
            registration.unregister(now);
            self.flush_registration(now);
        }
        // In call order, not the map's (randomly seeded) order: the same
        // inputs send the same bytes in the same order.
        let mut ids: Vec<CallId> = self.calls.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            if self.calls.get(&id).is_some_and(|c| c.is_ringing()) {
                self.reject_ringing(id, 480, EndReason::Shutdown, now);
            } else {
                self.hang_up(id, EndReason::Shutdown, now);
            }
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.wakeups.next()
    }

    /// Sends what the registration queued, logs its changes of state (one
    /// line each), adopts the public address it learned, and schedules it.
    fn flush_registration(&mut self, now: Instant) {
        let Some(registration) = &mut self.registration else {
            return;
        };
        while let Some(transmit) = registration.poll_transmit() {
            self.outbox.push_back(transmit);
        }
        let mut learned = None;
        while let Some(event) = registration.poll_event() {
            log_registration_event(&event, now);
            if let RegistrationEvent::Registered {
                public: Some(public),
                ..
            } = event
            {
                learned = Some(public);
            }
        }
        let at = registration.poll_timeout();
        self.wakeups.schedule(at, WakeKey::Registration);
        if let Some(public) = learned {
            self.set_public_address(public);
        }
    }

    fn handle_response(&mut self, response: rsip::Response, now: Instant) {
        if let Some(registration) = &mut self.registration
            && registration.handle_response(&response, now)
        {
            return self.flush_registration(now);
        }
        self.handle_bye_response(&response, now);
    }

    fn schedule_call(&mut self, id: CallId) {
        if let Some(call) = self.calls.get(&id) {
            self.wakeups
                .schedule(call.next_deadline(), WakeKey::Call(id));
        }
    }

    /// A call's own deadline: the answer after ringing, the longest call,
    /// or the caller's session timer.
    fn call_timeout(&mut self, id: CallId, now: Instant) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let due = |at: Option<Instant>| at.is_some_and(|at| at <= now);
        if due(call.answer_at) {
            self.answer(id, now);
        } else if due(call.ends_at) {
            self.hang_up(id, EndReason::MaxDuration, now);
        } else if due(call.session_expiry) {
            self.hang_up(id, EndReason::SessionExpired, now);
        }
        self.schedule_call(id);
    }

    fn allocate_call_id(&mut self) -> CallId {
        let id = CallId(self.next_call);
        self.next_call += 1;
        id
    }

    /// Drops every trace of a call; its transactions finish on their own.
    fn forget_call(&mut self, id: CallId) {
        self.end_setup(id);
        if let Some(call) = self.calls.remove(&id) {
            self.dialogs.remove(&call.dialog.id);
        }
    }

    /// The call no longer counts against its source's setups (ACKed, or
    /// ending before that). Idempotent.
    fn end_setup(&mut self, id: CallId) {
        if let Some(call) = self.calls.get_mut(&id)
            && call.in_setup
        {
            call.in_setup = false;
            self.admission.setup_ended(call.source.ip());
        }
    }
}

/// One log line per change of registration state (the registration emits
/// an event only when something changed).
fn log_registration_event(event: &RegistrationEvent, now: Instant) {
    match event {
        RegistrationEvent::Registered {
            until,
            contact,
            failing_since,
            ..
        } => {
            let granted = until.saturating_duration_since(now).as_secs();
            match failing_since {
                Some(since) => tracing::info!(
                    %contact,
                    "registered with the trunk again after {} s of failures (for {granted} s)",
                    now.saturating_duration_since(*since).as_secs()
                ),
                None => tracing::info!(%contact, "registered with the trunk (for {granted} s)"),
            }
        }
        RegistrationEvent::Failing { failure, retry_at } => tracing::warn!(
            code = failure.code(),
            "registration with the trunk failing: {failure}; retrying in {} s",
            retry_at.saturating_duration_since(now).as_secs()
        ),
        RegistrationEvent::Unregistered { confirmed } => {
            tracing::info!(confirmed, "unregistered from the trunk")
        }
    }
}

#[cfg(test)]
mod tests;

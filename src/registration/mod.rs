//! Registering the line with its SIP trunk (RFC 3261 §10), sans-IO: REGISTER with digest
//! authentication (§22, RFC 7616/8760), refresh before expiry, 423 Interval Too Brief
//! (§10.2.8), backoff after failures, NAT traversal by `rport` (RFC 3581) with the
//! Contact corrected to the address the registrar saw, CRLF keep-alives (RFC 5626
//! §4.4.1), and unregistering (`Expires: 0`) at shutdown.
//!
//! Call order, as for the transactions: feed one input (`new`, `handle_response`,
//! `handle_timeout`, `handle_transport_error`, `unregister`); drain `poll_transmit` and
//! send each; drain `poll_event` and log each (one per change of state: a registrar that
//! keeps failing the same way says so once); sleep until `poll_timeout`.
//! [`status`](Registration::status) is the one place the state is kept.
//!
//! ```text
//!   new ──► Registering ──200──► Registered ──85 % of granted──► (refresh) ─200─┐
//!             │    ▲  401/407/423: ask again      ▲    │ keep-alive every N s   │
//!             │    │  (no state change)           │    └────────────◄───────────┘
//!    timeout, │    │ retry_at                     │
//!    403, 5xx…▼    │                              │ 200
//!           Failing ──────────────────────────────┘
//!   unregister() from any state ──► Unregistering ──final or timeout──► Unregistered
//! ```
//!
//! Choices:
//! - One Call-ID and From tag for every REGISTER of the line, CSeq counting up, a new
//!   branch each time (§10.2.4). The registrar keys bindings on the Contact URI.
//! - Challenges are kept and answered again on each refresh (the digest client counts
//!   `nc`), saving the extra round trip; a 401/407 to such a cached answer is answered
//!   once, since the nonce may simply have aged. A second challenge of the same kind
//!   after answering a fresh one means wrong credentials (`trunk.auth_rejected`) — some
//!   registrars (Asterisk) send a new nonce each time, so the nonce is not compared —
//!   unless it says `stale=true` (§22.4; RFC 7616 §3.3), answered twice at most.
//! - The refresh is sent at 85 % of the granted time, counted from when the request was
//!   sent (when the registrar's clock started), as the issue asks ("at the latest").
//! - NAT: if the registrar saw us at another address (`received`/`rport` in the 200's
//!   Via) and no `external_address` is set, the line registers again at once with that
//!   address in Contact and Via, and calls use it ([`Registration::public_addr`]). The
//!   same request removes the old binding (`;expires=0` on the old Contact), as pjsip
//!   does by default (`PJSUA_CONTACT_REWRITE_METHOD` 2), so the registrar does not fork
//!   calls to an address nobody can reach. A correction happens at most once per
//!   refresh, so a NAT that maps every request differently cannot cause a loop.
//! - Keep-alives are CRLFCRLF on UDP and TCP alike (RFC 5626 §4.4.1 for TCP; for UDP it
//!   asks for STUN, but registrars and NATs take the CRLF, as pjsip and baresip send).

// No clock reads or global randomness outside tests: `now` and the seeded
// generator are inputs (clippy.toml).
#![cfg_attr(not(test), deny(clippy::disallowed_methods))]

mod auth;
mod backoff;
mod request;
mod status;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rsip::Headers;

use crate::config::TrunkConfig;
use crate::sip::message;
use crate::sip::transaction::{ClientEvent, NonInviteClient, Timers};
use crate::sip::{Transmit, Transport};

use auth::{Auth, AuthProgress};
pub use auth::{Authorizer, Digest};
use backoff::Backoff;
use request::Register;
pub use status::{RegistrationEvent, RegistrationFailure, RegistrationStatus};

/// What RFC 5626 §3.5.1 calls the double-CRLF keep-alive "ping".
pub const KEEPALIVE: &[u8] = b"\r\n\r\n";
/// At most this many REGISTERs for one registration (challenges, 423, NAT): a registrar
/// answering forever with new demands is a failure, not a reason to loop.
const MAX_REQUESTS_PER_ATTEMPT: u8 = 6;
/// The earliest refresh, whatever the registrar grants: a grant of 1 s would otherwise
/// turn the refresh into a flood.
const MIN_REFRESH: Duration = Duration::from_secs(1);

/// The registration's settings, with names already resolved by the driver.
#[derive(Debug, Clone)]
pub struct RegistrationConfig {
    /// The Request-URI, e.g. `sip:sip.example.com`.
    pub registrar_uri: String,
    /// To and From: `sip:user@registrar-host`.
    pub aor: String,
    pub contact_user: String,
    /// What we advertise before learning better: `[sip] public_address` and the SIP port.
    pub local: SocketAddr,
    /// `[trunk] external_address`: advertised instead, and nothing is learned.
    pub public: Option<IpAddr>,
    /// Where REGISTERs go: the registrar or outbound proxy, resolved.
    pub destination: SocketAddr,
    /// The outbound proxy's URI, sent as a loose Route.
    pub route: Option<String>,
    pub transport: Transport,
    pub expires: Duration,
    /// Zero: no keep-alives.
    pub keepalive: Duration,
    pub backoff_max: Duration,
    pub timers: Timers,
    /// `User-Agent`; `None` sends none (`[sip] user_agent`).
    pub user_agent: Option<String>,
}

impl RegistrationConfig {
    pub fn from_trunk(
        trunk: &TrunkConfig,
        local: SocketAddr,
        destination: SocketAddr,
        timers: Timers,
        user_agent: Option<String>,
    ) -> RegistrationConfig {
        RegistrationConfig {
            registrar_uri: trunk.registrar.uri.clone(),
            aor: format!("sip:{}@{}", trunk.username, trunk.registrar.host_for_uri()),
            contact_user: trunk.username.clone(),
            local,
            public: trunk.external_address,
            destination,
            route: trunk.outbound_proxy.as_ref().map(|p| p.uri.clone()),
            transport: trunk.transport,
            expires: trunk.expires,
            keepalive: trunk.keepalive,
            backoff_max: trunk.backoff_max,
            timers,
            user_agent,
        }
    }
}

/// One REGISTER transaction in flight.
#[derive(Debug)]
struct Attempt {
    transaction: NonInviteClient,
    branch: String,
    sent_at: Instant,
    /// What this REGISTER asked for and advertised.
    expires: u32,
    contact: SocketAddr,
    chain: Chain,
}

/// What one registration (or unregistration) has been through, across the REGISTERs
/// that answer its challenges and 423s.
#[derive(Debug, Clone, Copy, Default)]
struct Chain {
    requests: u8,
    auth: AuthProgress,
    /// The NAT correction of this refresh: the Contact it replaces, removed in the same
    /// request. Once set, no further correction in this chain.
    replaces: Option<SocketAddr>,
}

#[derive(Debug)]
enum Phase {
    /// Next REGISTER (refresh or retry) at `next`.
    Idle {
        next: Instant,
    },
    Registering(Attempt),
    Unregistering(Attempt),
    Finished,
}

/// The registration client. See the module docs for the call order and states.
pub struct Registration {
    config: RegistrationConfig,
    call_id: String,
    from_tag: String,
    cseq: u32,
    /// Our address in Contact and Via: local, external, or learned.
    contact: SocketAddr,
    /// What we ask for, raised by a 423.
    expires: u32,
    /// The challenges we answer, and the authorizer that answers them.
    auth: Auth,
    phase: Phase,
    status: RegistrationStatus,
    backoff: Backoff,
    /// Only while registered; pushed back by every REGISTER sent.
    keepalive_at: Option<Instant>,
    /// Until this, the last binding holds (for `Failing`'s `bound_until`).
    bound_until: Option<Instant>,
    outbox: VecDeque<Transmit>,
    events: VecDeque<RegistrationEvent>,
    /// Branches of finished REGISTERs, whose retransmitted responses are ours to absorb.
    finished_branches: VecDeque<String>,
    /// Call-ID, tags, branches, cnonces and jitter come from here (seeded by the
    /// endpoint, as quinn-proto seeds each connection).
    rng: StdRng,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("aor", &self.config.aor)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl Registration {
    /// Starts registering: the first REGISTER is queued at once. Everything random it
    /// sends is drawn from a generator seeded with `rng_seed`.
    pub fn new(
        config: RegistrationConfig,
        authorizer: Box<dyn Authorizer>,
        rng_seed: [u8; 32],
        now: Instant,
    ) -> Registration {
        let mut rng = StdRng::from_seed(rng_seed);
        let contact = match config.public {
            Some(ip) => SocketAddr::new(ip, config.local.port()),
            None => config.local,
        };
        let mut registration = Registration {
            expires: u32::try_from(config.expires.as_secs()).unwrap_or(u32::MAX),
            backoff: Backoff::new(config.backoff_max),
            config,
            auth: Auth::new(authorizer),
            call_id: message::new_call_id(&mut rng),
            from_tag: message::new_tag(&mut rng),
            cseq: 0,
            contact,
            phase: Phase::Idle { next: now },
            status: RegistrationStatus::Registering { since: now },
            keepalive_at: None,
            bound_until: None,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            finished_branches: VecDeque::new(),
            rng,
        };
        registration.start_register(Chain::default(), now);
        registration
    }

    pub fn status(&self) -> &RegistrationStatus {
        &self.status
    }

    /// The address calls should advertise when it is not the local one: learned from
    /// the registrar, or `external_address`.
    pub fn public_addr(&self) -> Option<SocketAddr> {
        (self.contact != self.config.local).then_some(self.contact)
    }

    /// True once unregistering is over: the driver can stop.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Finished)
    }

    /// The registrar's (or proxy's) address changed, e.g. the driver resolved its name
    /// again after failures: REGISTERs and keep-alives go there from the next one on.
    /// Where REGISTERs go (the registrar or outbound proxy).
    pub fn destination(&self) -> SocketAddr {
        self.config.destination
    }

    pub fn set_destination(&mut self, destination: SocketAddr) {
        self.config.destination = destination;
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<RegistrationEvent> {
        self.events.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout); `None` once finished.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let phase = match &self.phase {
            Phase::Idle { next } => Some(*next),
            Phase::Registering(a) | Phase::Unregistering(a) => a.transaction.poll_timeout(),
            Phase::Finished => None,
        };
        [phase, self.keepalive_at].into_iter().flatten().min()
    }

    /// A response arrived. Returns whether it answers one of our REGISTERs (then it is
    /// consumed, even if only a retransmission); otherwise it is someone else's.
    pub fn handle_response(&mut self, response: &rsip::Response, now: Instant) -> bool {
        let headers = &response.headers;
        let Some(branch) = message::top_via(headers).ok().and_then(|v| v.branch) else {
            return false;
        };
        let ours = message::call_id(headers).is_ok_and(|id| id == self.call_id)
            && matches!(message::cseq(headers), Ok((_, rsip::Method::Register)));
        if !ours {
            return false;
        }
        let status = response.status_code.code();
        let (Phase::Registering(attempt) | Phase::Unregistering(attempt)) = &mut self.phase else {
            return self.finished_branches.contains(&branch);
        };
        if attempt.branch != branch {
            return self.finished_branches.contains(&branch);
        }
        if let Some(ClientEvent::Final(status)) = attempt.transaction.handle_response(status, now) {
            self.on_final(status, headers, now);
        }
        true
    }

    /// Fires what is due at `now`: retransmissions, Timer F, the refresh or retry, the
    /// keep-alive. Early calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.phase {
            Phase::Registering(attempt) | Phase::Unregistering(attempt) => {
                let event = attempt.transaction.handle_timeout(now);
                self.pump();
                if event == Some(ClientEvent::TimedOut) {
                    self.on_no_answer(RegistrationFailure::Timeout, now);
                }
            }
            Phase::Idle { next } if *next <= now => {
                self.start_register(Chain::default(), now);
            }
            Phase::Idle { .. } | Phase::Finished => {}
        }
        if let Some(at) = self.keepalive_at
            && at <= now
        {
            self.outbox.push_back(Transmit {
                destination: self.config.destination,
                payload: KEEPALIVE.to_vec(),
                transport: self.config.transport,
            });
            self.keepalive_at = Some(now + self.config.keepalive);
        }
    }

    /// Sending to the registrar failed (ICMP unreachable, TCP refused or reset). A
    /// REGISTER in flight has failed; a registration over a lost TCP connection is
    /// renewed at once over a new one.
    pub fn handle_transport_error(&mut self, now: Instant) {
        match &self.phase {
            Phase::Registering(_) | Phase::Unregistering(_) => {
                self.on_no_answer(RegistrationFailure::Unreachable, now);
            }
            Phase::Idle { .. } if matches!(self.status, RegistrationStatus::Registered { .. }) => {
                self.start_register(Chain::default(), now);
            }
            Phase::Idle { .. } | Phase::Finished => {}
        }
    }

    /// Shutdown: removes our binding (`Expires: 0`). Finishes at once if nothing can be
    /// bound; otherwise on the answer or Timer F, so the driver should not wait longer
    /// than it can afford.
    pub fn unregister(&mut self, now: Instant) {
        let may_be_bound = matches!(self.phase, Phase::Registering(_))
            || self.bound_until.is_some_and(|until| until > now);
        self.abandon_attempt();
        self.keepalive_at = None;
        if matches!(self.phase, Phase::Finished) {
            return;
        }
        if !may_be_bound {
            self.finish(false);
            return;
        }
        self.status = RegistrationStatus::Unregistering { since: now };
        self.send(Chain::default(), 0, true, now);
    }

    fn start_register(&mut self, chain: Chain, now: Instant) {
        self.send(chain, self.expires, false, now);
    }

    /// Builds and sends one REGISTER, answering every challenge we hold.
    fn send(&mut self, mut chain: Chain, expires: u32, unregister: bool, now: Instant) {
        let credentials = match self.auth.answers(&self.config.registrar_uri, &mut self.rng) {
            Ok(credentials) => credentials,
            Err(failure) => return self.fail_or_finish(failure, None, unregister, now),
        };
        chain.requests += 1;
        self.cseq += 1;
        let branch = message::new_branch(&mut self.rng);
        let request = Register {
            request_uri: &self.config.registrar_uri,
            aor: &self.config.aor,
            from_tag: &self.from_tag,
            call_id: &self.call_id,
            cseq: self.cseq,
            branch: &branch,
            contact: self.contact,
            removes: chain.replaces,
            contact_user: &self.config.contact_user,
            transport: self.config.transport,
            route: self.config.route.as_deref(),
            expires,
            user_agent: self.config.user_agent.as_deref(),
            credentials: &credentials,
        };
        let transaction = NonInviteClient::new(
            request.to_bytes(),
            self.config.destination,
            self.config.transport.is_reliable(),
            self.config.timers,
            now,
        );
        let attempt = Attempt {
            transaction,
            branch,
            sent_at: now,
            expires,
            contact: self.contact,
            chain,
        };
        self.phase = if unregister {
            Phase::Unregistering(attempt)
        } else {
            Phase::Registering(attempt)
        };
        if self.keepalive_at.is_some() {
            // The REGISTER itself keeps the NAT binding open.
            self.keepalive_at = Some(now + self.config.keepalive);
        }
        self.pump();
    }

    /// Moves what the transaction queued into our outbox.
    fn pump(&mut self) {
        if let Phase::Registering(attempt) | Phase::Unregistering(attempt) = &mut self.phase {
            self.outbox
                .extend(std::iter::from_fn(|| attempt.transaction.poll_transmit()));
        }
    }

    /// Ends the attempt in flight, remembering its branch for stray retransmissions.
    fn abandon_attempt(&mut self) -> Option<Attempt> {
        let phase = std::mem::replace(&mut self.phase, Phase::Finished);
        let (Phase::Registering(attempt) | Phase::Unregistering(attempt)) = phase else {
            self.phase = phase;
            return None;
        };
        if self.finished_branches.len() >= 8 {
            self.finished_branches.pop_front();
        }
        self.finished_branches.push_back(attempt.branch.clone());
        // Only a placeholder until the caller decides what comes next.
        self.phase = Phase::Idle {
            next: attempt.sent_at,
        };
        Some(attempt)
    }

    fn on_final(&mut self, status: u16, headers: &Headers, now: Instant) {
        let Some(attempt) = self.abandon_attempt() else {
            return;
        };
        let unregister = attempt.expires == 0;
        let mut chain = attempt.chain;
        let retry = |chain: &Chain| chain.requests < MAX_REQUESTS_PER_ATTEMPT;
        match status {
            200..=299 if unregister => self.finish(true),
            200..=299 => self.on_success(attempt, headers, now),
            401 | 407 => match self.auth.take(status, headers, &mut chain.auth) {
                Ok(()) if retry(&chain) => self.send(chain, attempt.expires, unregister, now),
                Ok(()) => {
                    let failure = RegistrationFailure::AuthRejected { status };
                    self.fail_or_finish(failure, None, unregister, now);
                }
                Err(failure) => self.fail_or_finish(failure, None, unregister, now),
            },
            423 if !unregister => {
                // §10.2.8: ask again for at least Min-Expires, and keep asking for it.
                let min = request::seconds(headers, "Min-Expires");
                match min {
                    Some(min) if min > attempt.expires && retry(&chain) => {
                        self.expires = min;
                        self.start_register(chain, now);
                    }
                    _ => {
                        let failure = RegistrationFailure::IntervalTooBrief { min };
                        self.fail(failure, None, now);
                    }
                }
            }
            _ if unregister => self.finish(false),
            _ => {
                let failure = match status {
                    403 => RegistrationFailure::Forbidden,
                    404 => RegistrationFailure::NotFound,
                    500..=599 => RegistrationFailure::ServerError { status },
                    _ => RegistrationFailure::Rejected { status },
                };
                self.fail(failure, request::retry_after(headers), now);
            }
        }
    }

    fn on_success(&mut self, attempt: Attempt, headers: &Headers, now: Instant) {
        let user = &self.config.contact_user;
        let granted = request::granted_expiry(headers, user, attempt.contact, attempt.expires);
        if granted == 0 {
            return self.fail(RegistrationFailure::NotBound, None, now);
        }
        let until = attempt.sent_at + Duration::from_secs(granted.into());
        self.bound_until = Some(until);
        if self.config.public.is_none()
            && attempt.chain.replaces.is_none()
            && let Some(seen) = request::observed_address(headers, attempt.contact)
            && request::needs_correction(seen, attempt.contact, self.config.transport)
        {
            // Registered at an address nobody can reach: register the one the
            // registrar saw instead, straight away.
            self.contact = seen;
            let chain = Chain {
                replaces: Some(attempt.contact),
                ..Chain::default()
            };
            return self.start_register(chain, now);
        }
        self.backoff.reset();
        let refresh = Duration::from_secs(granted.into()).mul_f64(0.85);
        self.phase = Phase::Idle {
            next: attempt.sent_at + refresh.max(MIN_REFRESH),
        };
        if !self.config.keepalive.is_zero() && self.keepalive_at.is_none() {
            self.keepalive_at = Some(now + self.config.keepalive);
        }
        let contact = request::contact_value(user, attempt.contact, self.config.transport);
        let public = self.public_addr();
        let failing_since = match &self.status {
            RegistrationStatus::Failing { since, .. } => Some(*since),
            _ => None,
        };
        let changed = !matches!(&self.status,
            RegistrationStatus::Registered { contact: old, .. } if *old == contact);
        if changed {
            self.events.push_back(RegistrationEvent::Registered {
                until,
                contact: contact.clone(),
                public,
                failing_since,
            });
        }
        self.status = RegistrationStatus::Registered {
            until,
            contact,
            public,
        };
    }

    /// Timer F or a transport error ended the REGISTER in flight.
    fn on_no_answer(&mut self, failure: RegistrationFailure, now: Instant) {
        if let Some(attempt) = self.abandon_attempt() {
            self.fail_or_finish(failure, None, attempt.expires == 0, now);
        }
    }

    fn fail_or_finish(
        &mut self,
        failure: RegistrationFailure,
        retry_after: Option<Duration>,
        unregister: bool,
        now: Instant,
    ) {
        if unregister {
            self.finish(false);
        } else {
            self.fail(failure, retry_after, now);
        }
    }

    /// Schedules the retry after backoff (or the server's Retry-After, within the cap)
    /// and reports the failure if it is new.
    fn fail(&mut self, failure: RegistrationFailure, retry_after: Option<Duration>, now: Instant) {
        let mut wait = self.backoff.next_wait(&mut self.rng);
        if let Some(asked) = retry_after {
            wait = wait.max(asked.min(self.config.backoff_max));
        }
        let retry_at = now + wait;
        self.phase = Phase::Idle { next: retry_at };
        self.keepalive_at = None;
        let (since, same) = match &self.status {
            RegistrationStatus::Failing {
                since, failure: f, ..
            } => (*since, *f == failure),
            _ => (now, false),
        };
        if !same {
            self.events.push_back(RegistrationEvent::Failing {
                failure: failure.clone(),
                retry_at,
            });
        }
        self.status = RegistrationStatus::Failing {
            since,
            failure,
            retry_at,
            bound_until: self.bound_until.filter(|until| *until > now),
        };
    }

    fn finish(&mut self, confirmed: bool) {
        self.phase = Phase::Finished;
        self.keepalive_at = None;
        self.bound_until = None;
        self.status = RegistrationStatus::Unregistered;
        self.events
            .push_back(RegistrationEvent::Unregistered { confirmed });
    }
}

#[cfg(test)]
mod tests;

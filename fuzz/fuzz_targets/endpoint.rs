//! The line's whole SIP core: `endpoint::Endpoint` driven by a script of
//! datagrams from a few sources over UDP and TCP, virtual-clock jumps to
//! `poll_timeout()`, and responses to what it sent (BYE, REGISTER), with a
//! fake `MediaPorts` that hands out numbers and sometimes refuses.
//!
//! Random bytes rarely make a SIP message, let alone the right ACK for our
//! 200, so most steps send a well-formed template (INVITE, ACK, BYE,
//! CANCEL, INFO, OPTIONS, re-INVITE, recorded peers' INVITEs) built from
//! what the endpoint said so far (its To tag, the INVITE's branch and CSeq)
//! and then mutated by the script: that reaches confirmed calls, re-INVITEs,
//! hang-ups and registration challenges. Raw datagrams and raw TCP bytes
//! are steps too.
//!
//! One policy lets the stranger in as the line's own self-test.
//!
//! Invariants: no panic; a port is given back (released, or stopped with
//! the call) at most once and only after it was handed out; a timer never
//! fires forever at one instant (the driver would spin); and after
//! `shutdown` and every timer, no call is left and no port is held.

#![no_main]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dial_a_service::config::Untrusted;
use dial_a_service::endpoint::admission::Policy;
use dial_a_service::endpoint::{Action, CallId, EndReason, Endpoint, EndpointConfig, MediaPorts};
use dial_a_service::media::Codec;
use dial_a_service::registration::{Authorizer, Digest, RegistrationConfig};
use dial_a_service::sip::Transport;
use dial_a_service::sip::auth::Credentials;
use dial_a_service::sip::framing::{Frame, StreamFramer};
use dial_a_service::sip::message::{self, rsip};
use dial_a_service::sip::transaction::Timers;
use dial_a_service_fuzz::MULTIBYTE;
use dial_a_service_fuzz::script::Script;
use libfuzzer_sys::fuzz_target;

const LINE: &str = "192.0.2.1:5060";
/// The trunk (trusted, and the registrar), a stranger, and an IPv6 phone.
const SOURCES: [&str; 3] = ["192.0.2.10:5060", "198.51.100.7:5062", "[2001:db8::7]:5070"];
/// Calls the templates keep apart by Call-ID.
const SLOTS: usize = 3;
/// Steps of one input; the rest of a long input is ignored.
const MAX_STEPS: usize = 64;
/// Timer rounds at one instant before the driver is deemed to spin.
const MAX_ROUNDS_AT_ONCE: usize = 100;
/// Timer jumps allowed to wind everything down after `shutdown`.
const MAX_WIND_DOWN: usize = 10_000;

/// The one place the fuzz target builds an `EndpointConfig` (its fields
/// grow with the line's settings: add new ones here).
fn endpoint_config(flags: u8) -> EndpointConfig {
    let line: SocketAddr = LINE.parse().expect("a literal address");
    const CODECS: [&[Codec]; 4] = [
        &[Codec::Pcmu, Codec::Pcma, Codec::Opus],
        &[Codec::Opus, Codec::Pcma],
        &[Codec::Pcma],
        &[Codec::Pcmu],
    ];
    EndpointConfig {
        contact_addr: line,
        media_ip: line.ip(),
        codecs: CODECS[usize::from(flags >> 4) % CODECS.len()].to_vec(),
        timers: Timers::default(),
        answer_delay: if flags & 2 == 0 {
            Duration::from_secs(1)
        } else {
            Duration::ZERO
        },
        user_agent: (flags & 1 != 0).then(|| "fuzz".to_owned()),
        policy: match flags & 0x0c {
            0 => Policy::Anyone,
            4 => Policy::Networks(
                ["192.0.2.0/24", "2001:db8::/32"]
                    .iter()
                    .map(|net| net.parse().expect("a literal network"))
                    .collect(),
            ),
            _ => Policy::TrunkOnly,
        },
        untrusted: if flags & 0x40 == 0 {
            Untrusted::Reject
        } else {
            Untrusted::Ignore
        },
        // Small, so the fuzzer reaches the limits.
        max_calls: 4,
        max_setups_per_source: 2,
        max_call_rate_per_source: 5.0,
        max_call_duration: Duration::from_secs(if flags & 0x80 == 0 { 3600 } else { 90 }),
        // Fixed, so a crash replays with the same tags and branches.
        rng_seed: Some([0; 32]),
    }
}

fn registration(transport: Transport) -> (RegistrationConfig, Box<dyn Authorizer>) {
    let config = RegistrationConfig {
        registrar_uri: "sip:trunk.example".to_owned(),
        aor: "sip:line@trunk.example".to_owned(),
        contact_user: "line".to_owned(),
        local: LINE.parse().expect("a literal address"),
        public: None,
        destination: SOURCES[0].parse().expect("a literal address"),
        route: None,
        transport,
        expires: Duration::from_secs(300),
        keepalive: Duration::from_secs(30),
        backoff_max: Duration::from_secs(600),
        timers: Timers::default(),
        user_agent: Some("fuzz".to_owned()),
    };
    let credentials = Credentials {
        username: "line".to_owned(),
        password: "secret".to_owned(),
    };
    (config, Box::new(Digest::new(credentials)))
}

/// Hands out even ports, refuses when told to, and checks that each comes
/// back once.
#[derive(Default)]
struct Ports {
    next: u16,
    refuse_next: bool,
    held: HashSet<u16>,
}

impl MediaPorts for Ports {
    fn reserve(&mut self) -> Option<u16> {
        if std::mem::take(&mut self.refuse_next) {
            return None;
        }
        self.next = self.next.wrapping_add(2);
        let port = 20_000u16.wrapping_add(self.next);
        assert!(self.held.insert(port), "port {port} handed out twice");
        Some(port)
    }

    fn release(&mut self, port: u16) {
        assert!(self.held.remove(&port), "port {port} released but not held");
    }
}

/// What the caller side knows of one call.
#[derive(Default, Clone)]
struct Slot {
    source: usize,
    tcp: bool,
    to_tag: Option<String>,
    invite_branch: String,
    invite_cseq: u32,
    next_cseq: u32,
    /// The final status of the last INVITE, to tell which ACK it needs.
    final_status: Option<u16>,
    /// The last INVITE carried no offer: the ACK must carry the answer.
    delayed_offer: bool,
}

struct Harness {
    endpoint: Endpoint,
    ports: Ports,
    now: Instant,
    slots: Vec<Slot>,
    branches: u32,
    /// Our side's TCP connections, one per source.
    framers: HashMap<usize, StreamFramer>,
    /// The last request the endpoint sent (BYE, REGISTER), to answer.
    last_request: Option<(rsip::Request, Transport)>,
    last_sent: Option<(Vec<u8>, usize, bool)>,
    started: Vec<CallId>,
}

impl Harness {
    fn new(flags: u8) -> Self {
        let now = Instant::now();
        let mut endpoint = Endpoint::new(endpoint_config(flags));
        if flags & 1 != 0 {
            let transport = if flags & 0x40 == 0 {
                Transport::Udp
            } else {
                Transport::Tcp
            };
            let (config, authorizer) = registration(transport);
            endpoint.register(config, authorizer, now);
        }
        // A trunk-only line whose self-test calls from the stranger's
        // address: past trust and the per-source limits (over UDP only).
        if flags & 0x0c == 0x0c {
            endpoint.set_self_test_source(Some(SOURCES[1].parse().expect("a literal address")));
        }
        let mut harness = Harness {
            endpoint,
            ports: Ports::default(),
            now,
            slots: vec![Slot::default(); SLOTS],
            branches: 0,
            framers: HashMap::new(),
            last_request: None,
            last_sent: None,
            started: Vec::new(),
        };
        harness.drain();
        harness
    }

    /// Everything the endpoint queued: learn tags and requests, keep the
    /// ports' books.
    fn drain(&mut self) {
        while let Some(transmit) = self.endpoint.poll_transmit() {
            match message::parse(&transmit.payload) {
                Ok(rsip::SipMessage::Response(response)) => self.learn(&response),
                Ok(rsip::SipMessage::Request(request)) => {
                    self.last_request = Some((request, transmit.transport));
                }
                Err(_) => {}
            }
        }
        while let Some(action) = self.endpoint.poll_action() {
            match action {
                Action::StartMedia { call, rtp_port, .. } => {
                    assert!(
                        self.ports.held.contains(&rtp_port),
                        "media on a port not held"
                    );
                    self.started.push(call);
                }
                Action::StopMedia { rtp_port, .. } => {
                    assert!(
                        self.ports.held.remove(&rtp_port),
                        "port {rtp_port} stopped but not held"
                    );
                }
                Action::PrepareMedia { .. }
                | Action::UpdateMedia { .. }
                | Action::CallEnded { .. }
                | Action::Key { .. } => {}
            }
        }
    }

    /// A response to one of our slots' requests: its To tag and final status.
    fn learn(&mut self, response: &rsip::Response) {
        let Ok(call_id) = message::call_id(&response.headers) else {
            return;
        };
        let Some(slot) = (0..SLOTS).find(|&i| call_id == slot_call_id(i)) else {
            return;
        };
        let status = response.status_code.code();
        let is_invite = matches!(
            message::cseq(&response.headers),
            Ok((_, rsip::Method::Invite))
        );
        let slot = &mut self.slots[slot];
        if is_invite && status > 100 {
            if let Some(tag) = message::to_tag(&response.headers) {
                slot.to_tag = Some(tag);
            }
            if status >= 200 {
                slot.final_status = Some(status);
            }
        }
    }

    fn deliver(&mut self, bytes: &[u8], source: usize, tcp: bool) {
        let address: SocketAddr = SOURCES[source].parse().expect("a literal address");
        self.last_sent = Some((bytes.to_vec(), source, tcp));
        if !tcp {
            self.endpoint.handle_datagram(
                bytes,
                address,
                Transport::Udp,
                self.now,
                &mut self.ports,
            );
            return self.drain();
        }
        // What the transport does with a connection's bytes.
        let framer = self.framers.entry(source).or_default();
        framer.push(bytes);
        let mut frames = Vec::new();
        loop {
            match framer.next_frame() {
                Ok(Some(Frame::Message(message))) => frames.push(message),
                Ok(Some(Frame::Ping | Frame::Pong)) => {}
                Ok(None) => break,
                Err(_) => {
                    self.framers.remove(&source);
                    self.endpoint.handle_transport_failure(address, self.now);
                    break;
                }
            }
        }
        for message in frames {
            self.endpoint.handle_datagram(
                &message,
                address,
                Transport::Tcp,
                self.now,
                &mut self.ports,
            );
            self.drain();
        }
        self.drain();
    }

    /// Fires due timers until none is due at `now`, as the driver does.
    fn run_timers(&mut self) {
        for _ in 0..MAX_ROUNDS_AT_ONCE {
            match self.endpoint.poll_timeout() {
                Some(at) if at <= self.now => {
                    self.endpoint.handle_timeout(self.now);
                    self.drain();
                }
                _ => return,
            }
        }
        panic!("a timer keeps firing at one instant: the driver would spin");
    }

    fn jump(&mut self) {
        if let Some(at) = self.endpoint.poll_timeout() {
            self.now = self.now.max(at);
        }
        self.run_timers();
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.run_timers();
    }

    fn branch(&mut self) -> String {
        self.branches += 1;
        format!("z9hG4bK-fuzz-{}", self.branches)
    }

    /// A request of `slot`'s call, as a phone would write it.
    fn request(
        &self,
        slot: usize,
        method: &str,
        branch: &str,
        cseq: u32,
        body: &str,
        content_type: &str,
    ) -> Vec<u8> {
        let s = &self.slots[slot];
        let source = SOURCES[s.source];
        let transport = if s.tcp { "TCP" } else { "UDP" };
        let to = match &s.to_tag {
            Some(tag) => format!("<sip:service@{LINE}>;tag={tag}"),
            None => format!("<sip:service@{LINE}>"),
        };
        let content_type = if body.is_empty() {
            String::new()
        } else {
            format!("Content-Type: {content_type}\r\n")
        };
        format!(
            "{method} sip:service@{LINE} SIP/2.0\r\n\
             Via: SIP/2.0/{transport} {source};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: \"Caller {slot}\" <sip:caller@{source}>;tag=ft{slot}\r\n\
             To: {to}\r\n\
             Call-ID: {}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:caller@{source}>\r\n\
             {content_type}Content-Length: {}\r\n\r\n{body}",
            slot_call_id(slot),
            body.len()
        )
        .into_bytes()
    }

    /// Builds the template the script picks, updating what the caller
    /// side remembers; returns it with where it comes from.
    fn template(&mut self, script: &mut Script) -> (Vec<u8>, usize, bool) {
        let slot = script.below(SLOTS);
        let kind = script.below(10);
        if kind == 0 {
            // A new call: the caller picks where it calls from.
            let s = &mut self.slots[slot];
            s.source = script.below(SOURCES.len());
            s.tcp = script.flag();
            s.to_tag = None;
            s.final_status = None;
        }
        let (source, tcp) = (self.slots[slot].source, self.slots[slot].tcp);
        let bytes = match kind {
            // INVITE, or re-INVITE once there is a tag.
            0 | 6 => {
                let offer = script.below(OFFERS.len());
                let branch = self.branch();
                let s = &mut self.slots[slot];
                s.next_cseq += 1;
                s.invite_cseq = s.next_cseq;
                s.invite_branch = branch.clone();
                s.final_status = None;
                s.delayed_offer = OFFERS[offer].is_empty();
                let cseq = s.invite_cseq;
                self.request(
                    slot,
                    "INVITE",
                    &branch,
                    cseq,
                    OFFERS[offer],
                    "application/sdp",
                )
            }
            // ACK: its own transaction after a 2xx, the INVITE's after the rest.
            1 => {
                let s = &self.slots[slot];
                let (cseq, after_2xx) = (s.invite_cseq, s.final_status.is_none_or(|c| c < 300));
                let body = if s.delayed_offer { OFFERS[0] } else { "" };
                let branch = if after_2xx {
                    self.branch()
                } else {
                    self.slots[slot].invite_branch.clone()
                };
                self.request(slot, "ACK", &branch, cseq, body, "application/sdp")
            }
            2 | 4 | 5 => {
                let method = match kind {
                    2 => "BYE",
                    4 => "INFO",
                    _ => "OPTIONS",
                };
                let (body, content_type) = INFO_BODIES[script.below(INFO_BODIES.len())];
                let body = if kind == 4 { body } else { "" };
                let branch = self.branch();
                let s = &mut self.slots[slot];
                s.next_cseq += 1;
                let cseq = s.next_cseq;
                self.request(slot, method, &branch, cseq, body, content_type)
            }
            3 => {
                let s = &self.slots[slot];
                let (branch, cseq) = (s.invite_branch.clone(), s.invite_cseq);
                self.request(slot, "CANCEL", &branch, cseq, "", "")
            }
            7 => {
                if let Some((bytes, source, tcp)) = self.last_sent.clone() {
                    return (bytes, source, tcp);
                }
                Vec::new()
            }
            _ => RECORDED[script.below(RECORDED.len())].to_vec(),
        };
        (bytes, source, tcp)
    }

    /// A response to the last request the endpoint sent (BYE or REGISTER),
    /// from the trunk, with the headers a registrar adds.
    fn respond(&mut self, script: &mut Script) -> Option<(Vec<u8>, usize, bool)> {
        let (request, transport) = self.last_request.clone()?;
        let (status, extra) = RESPONSES[script.below(RESPONSES.len())];
        let mut request = request;
        // The registrar saw us elsewhere (RFC 3581): a NAT in between.
        if script.flag() {
            message::stamp_received(&mut request, "203.0.113.9:40000".parse().expect("literal"));
        }
        let response = message::response(&request, status, Some("trunk-tag"));
        let mut text =
            String::from_utf8(message::to_bytes(&rsip::SipMessage::Response(response))).ok()?;
        let contact =
            message::header_value(&request.headers, "Contact").unwrap_or("<sip:line@192.0.2.1>");
        let extra = extra.replace("{contact}", contact);
        let end = text.rfind("\r\n\r\n")?;
        text.insert_str(end + 2, &extra);
        Some((text.into_bytes(), 0, transport == Transport::Tcp))
    }
}

fn slot_call_id(slot: usize) -> String {
    format!("fuzz-call-{slot}@192.0.2.254")
}

/// SDP offers: G.711 with events, Opus, nothing in common, audio disabled,
/// IPv6, on hold, SRTP, and none (a delayed offer).
const OFFERS: [&str; 8] = [
    "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
     m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n",
    "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
     m=audio 40002 RTP/AVP 111 101\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:101 telephone-event/48000\r\n",
    "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 40004 RTP/AVP 3\r\n",
    "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n",
    "v=0\r\no=- 1 1 IN IP6 2001:db8::7\r\ns=-\r\nc=IN IP6 2001:db8::7\r\nt=0 0\r\nm=audio 40006 RTP/AVP 8 0\r\n",
    "v=0\r\no=- 1 2 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=sendonly\r\n",
    "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 40008 RTP/SAVP 0\r\n",
    "",
];

/// SIP INFO key bodies (RFC 2976 carrying DTMF, as trunks send it).
const INFO_BODIES: [(&str, &str); 3] = [
    ("Signal=5\r\nDuration=160\r\n", "application/dtmf-relay"),
    ("#", "application/dtmf"),
    ("Signal=10\r\n", "application/dtmf-relay; charset=x"),
];

/// Final and provisional answers a registrar or phone gives, with the
/// headers that make each interesting (`{contact}` is our Contact).
const RESPONSES: [(u16, &str); 10] = [
    (200, "Contact: {contact};expires=120\r\n"),
    (200, "Contact: {contact}\r\nExpires: 5\r\n"),
    (
        401,
        "WWW-Authenticate: Digest realm=\"trunk\", nonce=\"abc\", qop=\"auth\", algorithm=SHA-256\r\n\
         WWW-Authenticate: Digest realm=\"trunk\", nonce=\"abc\", qop=\"auth,auth-int\", algorithm=MD5\r\n",
    ),
    (
        407,
        "Proxy-Authenticate: Digest realm=\"proxy\", nonce=\"n2\", algorithm=MD5-sess, qop=\"auth\", opaque=\"o\"\r\n",
    ),
    (
        401,
        "WWW-Authenticate: Digest realm=\"trunk\", nonce=\"new\", stale=true\r\n",
    ),
    (423, "Min-Expires: 3600\r\n"),
    (403, ""),
    (503, "Retry-After: 30\r\n"),
    (100, ""),
    (481, ""),
];

/// Recorded peers' messages and RFC 4475 ones the endpoint must take.
const RECORDED: [&[u8]; 6] = [
    include_bytes!("../../tests/fixtures/sip/baresip-invite.sip"),
    include_bytes!("../../tests/fixtures/sip/linphone-invite-ipv6.sip"),
    include_bytes!("../../tests/fixtures/sip/kamailio-invite-record-route.sip"),
    include_bytes!("../../tests/fixtures/sip/rfc4475/valid/wsinv.dat"),
    include_bytes!("../../tests/fixtures/sip/rfc4475/valid/esc01.dat"),
    include_bytes!("../../tests/fixtures/sip/rfc4475/valid/dblreq.dat"),
];

/// Tokens that break SIP in interesting ways when inserted.
const INSERTS: [&str; 12] = [
    "\r\n", "\r\n ", "\n", " ", ",", ";", "<", ">", "\"", ":", "\0", "tag=",
];

/// The script's edits to a template.
fn mutate(script: &mut Script, mut bytes: Vec<u8>) -> Vec<u8> {
    for _ in 0..script.below(4) {
        let at = usize::from(script.u16()) % (bytes.len() + 1);
        match script.below(6) {
            0 => {
                let text = MULTIBYTE[script.below(MULTIBYTE.len())];
                bytes.splice(at..at, text.bytes());
            }
            1 => {
                let text = INSERTS[script.below(INSERTS.len())];
                bytes.splice(at..at, text.bytes());
            }
            2 => {
                let end = (at + 1 + script.below(32)).min(bytes.len());
                bytes.drain(at..end);
            }
            3 => {
                if let Some(byte) = bytes.get_mut(at) {
                    *byte ^= 1 << script.below(8);
                }
            }
            4 => bytes.truncate(at),
            _ => {
                let byte = script.byte();
                if let Some(b) = bytes.get_mut(at) {
                    *b = byte;
                }
            }
        }
    }
    bytes
}

fuzz_target!(|data: &[u8]| {
    let mut script = Script::new(data);
    let mut harness = Harness::new(script.byte());
    for _ in 0..MAX_STEPS {
        if script.is_empty() {
            break;
        }
        match script.below(12) {
            0..=3 => {
                let (bytes, source, tcp) = harness.template(&mut script);
                let bytes = mutate(&mut script, bytes);
                harness.deliver(&bytes, source, tcp);
            }
            4 => {
                let source = script.below(SOURCES.len());
                let tcp = script.flag();
                let bytes = script.chunk();
                harness.deliver(bytes, source, tcp);
            }
            5 | 6 => harness.jump(),
            7 => harness.advance(Duration::from_millis(u64::from(script.u16()) * 10)),
            8 => {
                if let Some((bytes, source, tcp)) = harness.respond(&mut script) {
                    let bytes = mutate(&mut script, bytes);
                    harness.deliver(&bytes, source, tcp);
                }
            }
            9 => {
                if !harness.started.is_empty() {
                    let call = harness.started[script.below(harness.started.len())];
                    harness.endpoint.handle_media_ended(
                        call,
                        EndReason::ContentFinished,
                        harness.now,
                    );
                    harness.drain();
                }
            }
            10 => harness.ports.refuse_next = true,
            _ => {
                let source: SocketAddr = SOURCES[script.below(SOURCES.len())]
                    .parse()
                    .expect("a literal address");
                harness
                    .endpoint
                    .handle_transport_failure(source, harness.now);
                harness.drain();
            }
        }
    }
    // Wind down: every call ends and every port comes back.
    harness.endpoint.shutdown(harness.now);
    harness.drain();
    for _ in 0..MAX_WIND_DOWN {
        if harness.endpoint.is_idle() && harness.endpoint.poll_timeout().is_none() {
            break;
        }
        let Some(at) = harness.endpoint.poll_timeout() else {
            break;
        };
        harness.now = harness.now.max(at);
        harness.run_timers();
    }
    assert!(
        harness.endpoint.is_idle(),
        "calls left after shutdown and every timer"
    );
    assert!(
        harness.ports.held.is_empty(),
        "ports never given back: {:?}",
        harness.ports.held
    );
});

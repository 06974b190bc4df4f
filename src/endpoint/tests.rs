//! The endpoint under a virtual clock, driven by a scripted caller: no
//! sockets, no sleeping; a 32-second ACK timeout runs in microseconds.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::sip::Transport;
use crate::sip::transaction::Timers;

const CALLER: &str = "127.0.0.1:5070";
const LINE: &str = "127.0.0.1:5060";

struct Ports(u16, Vec<u16>);

impl MediaPorts for Ports {
    fn reserve(&mut self) -> Option<u16> {
        self.0 += 2;
        Some(self.0)
    }
    fn release(&mut self, port: u16) {
        self.1.push(port);
    }
}

fn config(answer_delay: Duration) -> EndpointConfig {
    EndpointConfig {
        contact_addr: LINE.parse().unwrap(),
        media_ip: "127.0.0.1".parse().unwrap(),
        codecs: vec![Codec::Pcmu, Codec::Pcma, Codec::Opus],
        timers: Timers::default(),
        answer_delay,
        user_agent: None,
        policy: admission::Policy::Anyone,
        untrusted: crate::config::Untrusted::Reject,
        max_calls: 1000,
        max_setups_per_source: 1000,
        max_call_rate_per_source: 1000.0,
        max_call_duration: Duration::from_secs(4 * 3600),
        rng_seed: None,
    }
}

fn offer(codecs: &str) -> String {
    let mut sdp = String::from(
        "v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n",
    );
    sdp.push_str(&format!("m=audio 40000 RTP/AVP {codecs} 101\r\n"));
    sdp.push_str("a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n");
    sdp
}

/// A scripted caller: builds requests with fixed identities.
struct Uac {
    call_id: String,
    from_tag: String,
    to_tag: Option<String>,
}

impl Uac {
    fn new(call_id: &str) -> Self {
        Uac {
            call_id: call_id.into(),
            from_tag: "caller-tag".into(),
            to_tag: None,
        }
    }

    fn request(&self, method: &str, branch: &str, cseq: u32, body: &str) -> Vec<u8> {
        self.request_typed(method, branch, cseq, "application/sdp", body)
    }

    fn request_typed(
        &self,
        method: &str,
        branch: &str,
        cseq: u32,
        content_type: &str,
        body: &str,
    ) -> Vec<u8> {
        let to = match &self.to_tag {
            Some(tag) => format!("<sip:service@{LINE}>;tag={tag}"),
            None => format!("<sip:service@{LINE}>"),
        };
        let content_type = if body.is_empty() {
            String::new()
        } else {
            format!("Content-Type: {content_type}\r\n")
        };
        let cseq_method = if method == "CANCEL" { "CANCEL" } else { method };
        format!(
            "{method} sip:service@{LINE} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {CALLER};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: \"Caller\" <sip:caller@{CALLER}>;tag={}\r\n\
             To: {to}\r\n\
             Call-ID: {}\r\n\
             CSeq: {cseq} {cseq_method}\r\n\
             Contact: <sip:caller@{CALLER}>\r\n\
             {content_type}Content-Length: {}\r\n\r\n{body}",
            self.from_tag,
            self.call_id,
            body.len()
        )
        .into_bytes()
    }
}

struct Harness {
    ep: Endpoint,
    /// Where the datagrams fed came from: the only places anything may go.
    sources: Vec<SocketAddr>,
    ports: Ports,
    now: Instant,
    sent: Vec<(Instant, String)>,
    actions: Vec<Action>,
    prepared: Vec<Codec>,
}

impl Harness {
    fn new(answer_delay: Duration) -> Self {
        Harness::with_config(config(answer_delay))
    }

    fn with_config(config: EndpointConfig) -> Self {
        Harness {
            ep: Endpoint::new(config),
            sources: Vec::new(),
            ports: Ports(20000, Vec::new()),
            now: Instant::now(),
            sent: Vec::new(),
            actions: Vec::new(),
            prepared: Vec::new(),
        }
    }

    fn feed(&mut self, datagram: &[u8]) {
        self.feed_from(datagram, CALLER.parse().unwrap());
    }

    fn feed_from(&mut self, datagram: &[u8], source: SocketAddr) {
        if !self.sources.contains(&source) {
            self.sources.push(source);
        }
        self.ep
            .handle_datagram(datagram, source, Transport::Udp, self.now, &mut self.ports);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(t) = self.ep.poll_transmit() {
            assert!(
                self.sources.contains(&t.destination),
                "{} is nobody who sent us anything",
                t.destination
            );
            self.sent
                .push((self.now, String::from_utf8(t.payload).unwrap()));
        }
        while let Some(a) = self.ep.poll_action() {
            match a {
                Action::PrepareMedia { codec, .. } => self.prepared.push(codec),
                a => self.actions.push(a),
            }
        }
    }

    /// Jumps the clock to each wake-up until `until`.
    fn run_until(&mut self, until: Instant) {
        while let Some(at) = self.ep.poll_timeout() {
            if at > until {
                break;
            }
            self.now = self.now.max(at);
            self.ep.handle_timeout(self.now);
            self.drain();
        }
        self.now = until;
    }

    fn take_sent(&mut self) -> Vec<String> {
        self.sent.drain(..).map(|(_, s)| s).collect()
    }

    fn statuses(sent: &[String]) -> Vec<u16> {
        sent.iter()
            .filter_map(|s| s.strip_prefix("SIP/2.0 "))
            .filter_map(|s| s[..3].parse().ok())
            .collect()
    }
}

fn to_tag_of(response: &str) -> String {
    let line = response
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("to:"))
        .unwrap();
    line.split("tag=").nth(1).unwrap().trim().to_owned()
}

#[test]
fn answers_an_invite_and_starts_media_on_ack() {
    let mut h = Harness::new(Duration::ZERO);
    let mut uac = Uac::new("call-1");
    h.feed(&uac.request("INVITE", "z9hG4bK-1", 1, &offer("8 0")));
    let sent = h.take_sent();
    assert_eq!(Harness::statuses(&sent), vec![100, 200]);
    let ok = &sent[1];
    assert!(
        ok.contains("m=audio 20002 RTP/AVP 8"),
        "caller preferred PCMA:\n{ok}"
    );
    assert!(ok.contains("a=ptime:20"));
    assert!(ok.to_ascii_lowercase().contains("contact:"));
    assert!(h.actions.is_empty(), "media waits for the ACK");
    assert_eq!(
        h.prepared,
        vec![Codec::Pcma],
        "content is prepared while the 200 travels"
    );

    uac.to_tag = Some(to_tag_of(ok));
    h.feed(&uac.request("ACK", "z9hG4bK-ack", 1, ""));
    match h.actions.as_slice() {
        [
            Action::StartMedia {
                rtp_port, media, ..
            },
        ] => {
            assert_eq!(*rtp_port, 20002);
            assert_eq!(media.codec, Codec::Pcma);
            assert_eq!(media.payload_type.0, 8);
        }
        other => panic!("expected StartMedia, got {other:?}"),
    }
    // No retransmission of the 200 after the ACK.
    let t = h.now + Duration::from_secs(40);
    h.run_until(t);
    assert!(h.take_sent().is_empty());
}

#[test]
fn retransmitted_invite_gets_the_last_response_and_no_second_call() {
    let mut h = Harness::new(Duration::ZERO);
    let uac = Uac::new("call-2");
    let invite = uac.request("INVITE", "z9hG4bK-2", 1, &offer("0"));
    h.feed(&invite);
    h.take_sent();
    h.feed(&invite);
    assert_eq!(Harness::statuses(&h.take_sent()), vec![200]);
    assert_eq!(h.ep.stats().calls_offered, 1);
    assert_eq!(h.ep.active_calls(), 1);
}

#[test]
fn lost_ack_retransmits_the_200_with_timer_g_spacing_then_ack_stops_it() {
    let mut h = Harness::new(Duration::ZERO);
    let mut uac = Uac::new("call-3");
    let t0 = h.now;
    h.feed(&uac.request("INVITE", "z9hG4bK-3", 1, &offer("0")));
    let first = h.take_sent();
    uac.to_tag = Some(to_tag_of(&first[1]));
    h.run_until(t0 + Duration::from_millis(3_600));
    let times: Vec<Duration> = h.sent.iter().map(|(t, _)| *t - t0).collect();
    assert_eq!(
        times,
        vec![
            Duration::from_millis(500),
            Duration::from_millis(1_500),
            Duration::from_millis(3_500)
        ]
    );
    h.take_sent();
    h.feed(&uac.request("ACK", "z9hG4bK-3ack", 1, ""));
    assert!(matches!(h.actions.as_slice(), [Action::StartMedia { .. }]));
    h.run_until(t0 + Duration::from_secs(60));
    assert!(h.take_sent().is_empty());
}

#[test]
fn no_ack_within_64_t1_hangs_up_with_bye() {
    let mut h = Harness::new(Duration::ZERO);
    let uac = Uac::new("call-4");
    let t0 = h.now;
    h.feed(&uac.request("INVITE", "z9hG4bK-4", 1, &offer("0")));
    h.take_sent();
    h.run_until(t0 + Duration::from_millis(31_900));
    assert!(h.sent.iter().all(|(_, s)| s.starts_with("SIP/2.0 200")));
    h.sent.clear();
    h.run_until(t0 + Duration::from_millis(32_100));
    let sent = h.take_sent();
    assert!(sent.iter().any(|s| s.starts_with("BYE ")), "{sent:?}");
    assert!(h.actions.iter().any(|a| matches!(
        a,
        Action::CallEnded {
            reason: EndReason::AckTimedOut,
            ..
        }
    )));
}

#[test]
fn cancel_while_ringing_gives_200_and_487() {
    let mut h = Harness::new(Duration::from_secs(2));
    let uac = Uac::new("call-5");
    h.feed(&uac.request("INVITE", "z9hG4bK-5", 1, &offer("0")));
    assert_eq!(Harness::statuses(&h.take_sent()), vec![100, 180]);
    h.now += Duration::from_millis(500);
    h.feed(&uac.request("CANCEL", "z9hG4bK-5", 1, ""));
    let sent = h.take_sent();
    assert_eq!(Harness::statuses(&sent), vec![200, 487]);
    assert!(sent[0].contains("CSeq: 1 CANCEL"));
    assert!(sent[1].contains("CSeq: 1 INVITE"));
    // The answer timer must not fire any more, and the ACK for 487 stops Timer G.
    h.feed(&uac.request("ACK", "z9hG4bK-5", 1, ""));
    h.run_until(h.now + Duration::from_secs(40));
    assert!(Harness::statuses(&h.take_sent()).is_empty());
    assert_eq!(h.ep.active_calls(), 0);
    assert!(
        h.actions
            .iter()
            .any(|a| matches!(a, Action::StopMedia { .. }))
    );
}

#[test]
fn cancel_ends_only_the_invite_with_its_branch_and_sent_by() {
    let mut h = Harness::new(Duration::from_secs(2));
    let (a, b) = (Uac::new("call-a"), Uac::new("call-b"));
    h.feed(&a.request("INVITE", "z9hG4bK-a", 1, &offer("0")));
    h.feed(&b.request("INVITE", "z9hG4bK-b", 1, &offer("0")));
    assert_eq!(Harness::statuses(&h.take_sent()), vec![100, 180, 100, 180]);
    // The same branch from another sent-by is another client's (§17.2.3).
    let elsewhere = String::from_utf8(a.request("CANCEL", "z9hG4bK-a", 1, ""))
        .unwrap()
        .replace(&format!("UDP {CALLER}"), "UDP 127.0.0.1:5072");
    h.feed(elsewhere.as_bytes());
    assert_eq!(Harness::statuses(&h.take_sent()), vec![481]);
    h.feed(&b.request("CANCEL", "z9hG4bK-b", 1, ""));
    let sent = h.take_sent();
    assert_eq!(Harness::statuses(&sent), vec![200, 487]);
    assert!(sent[1].contains("Call-ID: call-b"));
    assert_eq!(h.ep.active_calls(), 1, "call-a still rings");
}

#[test]
fn bye_from_the_caller_stops_media() {
    let mut h = Harness::new(Duration::ZERO);
    let mut uac = Uac::new("call-6");
    h.feed(&uac.request("INVITE", "z9hG4bK-6", 1, &offer("0")));
    uac.to_tag = Some(to_tag_of(&h.take_sent()[1]));
    h.feed(&uac.request("ACK", "z9hG4bK-6a", 1, ""));
    h.actions.clear();
    h.feed(&uac.request("BYE", "z9hG4bK-6b", 2, ""));
    assert_eq!(Harness::statuses(&h.take_sent()), vec![200]);
    assert!(matches!(h.actions[0], Action::StopMedia { .. }));
    assert_eq!(h.ep.active_calls(), 0);
    // A retransmitted BYE gets the same 200, not a 481.
    h.feed(&uac.request("BYE", "z9hG4bK-6b", 2, ""));
    assert_eq!(Harness::statuses(&h.take_sent()), vec![200]);
}

#[test]
fn info_keys_in_the_dialog_become_key_actions() {
    let mut h = Harness::new(Duration::ZERO);
    let mut uac = Uac::new("call-info");
    h.feed(&uac.request("INVITE", "z9hG4bK-i1", 1, &offer("0")));
    uac.to_tag = Some(to_tag_of(&h.take_sent()[1]));
    h.feed(&uac.request("ACK", "z9hG4bK-i1a", 1, ""));
    h.actions.clear();
    let relay = "application/dtmf-relay";
    h.feed(&uac.request_typed(
        "INFO",
        "z9hG4bK-i2",
        2,
        relay,
        "Signal=2\r\nDuration=160\r\n",
    ));
    h.feed(&uac.request_typed("INFO", "z9hG4bK-i3", 3, "application/dtmf", "*"));
    // A retransmission is answered again but is not a second press.
    h.feed(&uac.request_typed("INFO", "z9hG4bK-i3", 3, "application/dtmf", "*"));
    // Other INFO bodies (video fast update) are answered and ignored.
    h.feed(&uac.request_typed(
        "INFO",
        "z9hG4bK-i4",
        4,
        "application/media_control+xml",
        "<x/>",
    ));
    assert_eq!(Harness::statuses(&h.take_sent()), vec![200, 200, 200, 200]);
    let keys: Vec<Key> = h
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Key { key, .. } => Some(*key),
            _ => None,
        })
        .collect();
    assert_eq!(keys, [Key::Digit(2), Key::Star]);
    // Outside a dialog: 481, no key.
    let stranger = Uac::new("call-none");
    h.actions.clear();
    h.feed(&stranger.request_typed("INFO", "z9hG4bK-i5", 1, relay, "Signal=5"));
    assert_eq!(Harness::statuses(&h.take_sent()), vec![481]);
    assert!(h.actions.is_empty());
}

#[test]
fn options_unknown_dialog_and_unsupported_methods() {
    let mut h = Harness::new(Duration::ZERO);
    let mut uac = Uac::new("call-7");
    h.feed(&uac.request("OPTIONS", "z9hG4bK-7", 1, ""));
    let sent = h.take_sent();
    assert_eq!(Harness::statuses(&sent), vec![200]);
    assert!(sent[0].contains("INVITE, ACK, BYE, CANCEL, OPTIONS"));
    assert!(
        sent[0]
            .to_ascii_lowercase()
            .contains("accept: application/sdp")
    );

    uac.to_tag = Some("nobody".into());
    h.feed(&uac.request("BYE", "z9hG4bK-7b", 2, ""));
    assert_eq!(Harness::statuses(&h.take_sent()), vec![481]);

    uac.to_tag = None;
    h.feed(&uac.request("REGISTER", "z9hG4bK-7c", 3, ""));
    assert_eq!(Harness::statuses(&h.take_sent()), vec![405]);

    // A method nobody knows (RFC 3261 §8.2.1): 501, not 400.
    h.feed(&uac.request("FROBNICATE", "z9hG4bK-7d", 4, ""));
    let sent = h.take_sent();
    assert_eq!(Harness::statuses(&sent), vec![501], "{sent:?}");
}

#[test]
fn no_common_codec_is_488_and_frees_the_port() {
    let mut h = Harness::new(Duration::ZERO);
    let uac = Uac::new("call-8");
    h.feed(&uac.request("INVITE", "z9hG4bK-8", 1, &offer("18")));
    let first = h.take_sent();
    assert_eq!(Harness::statuses(&first), vec![488]);
    assert_eq!(h.ports.1, vec![20002]);
    assert_eq!(h.ep.active_calls(), 0);
    // Refused statelessly: never resent on a timer; a retransmitted INVITE
    // gets the very same answer (same To-tag, RFC 3261 §8.2.6.2).
    h.now += Duration::from_secs(40);
    h.ep.handle_timeout(h.now);
    h.drain();
    assert!(h.take_sent().is_empty());
    h.feed(&uac.request("INVITE", "z9hG4bK-8", 1, &offer("18")));
    assert_eq!(h.take_sent(), first);
}

#[test]
fn invite_without_sdp_offers_in_the_200_and_takes_the_answer_from_the_ack() {
    let mut h = Harness::new(Duration::ZERO);
    let mut uac = Uac::new("call-9");
    h.feed(&uac.request("INVITE", "z9hG4bK-9", 1, ""));
    let sent = h.take_sent();
    assert!(sent[1].contains("m=audio 20002 RTP/AVP 0 8"), "{}", sent[1]);
    uac.to_tag = Some(to_tag_of(&sent[1]));
    let answer = offer("8")
        .replace(" 101\r\n", "\r\n")
        .replace("a=rtpmap:101 telephone-event/8000\r\n", "");
    h.feed(&uac.request("ACK", "z9hG4bK-9a", 1, &answer));
    match h.actions.as_slice() {
        [Action::StartMedia { media, .. }] => assert_eq!(media.codec, Codec::Pcma),
        other => panic!("{other:?}"),
    }
    assert_eq!(h.prepared, vec![Codec::Pcma]);
}

#[test]
fn reinvite_to_hold_answers_recvonly_and_updates_media() {
    let mut h = Harness::new(Duration::ZERO);
    let mut uac = Uac::new("call-10");
    h.feed(&uac.request("INVITE", "z9hG4bK-10", 1, &offer("0")));
    uac.to_tag = Some(to_tag_of(&h.take_sent()[1]));
    h.feed(&uac.request("ACK", "z9hG4bK-10a", 1, ""));
    h.actions.clear();
    let hold = offer("0")
        .replace("a=sendrecv", "a=sendonly")
        .replace("40000", "40002");
    h.feed(&uac.request("INVITE", "z9hG4bK-10b", 2, &hold));
    let sent = h.take_sent();
    let ok = sent.iter().find(|s| s.starts_with("SIP/2.0 200")).unwrap();
    assert!(ok.contains("a=recvonly"), "{ok}");
    match h.actions.as_slice() {
        [Action::UpdateMedia { media, .. }] => {
            assert!(!media.local_direction.sends());
            assert_eq!(media.remote_rtp, Some("127.0.0.1:40002".parse().unwrap()));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn media_finished_sends_bye_with_timer_e_until_answered() {
    let mut h = Harness::new(Duration::ZERO);
    let mut uac = Uac::new("call-11");
    h.feed(&uac.request("INVITE", "z9hG4bK-11", 1, &offer("0")));
    uac.to_tag = Some(to_tag_of(&h.take_sent()[1]));
    h.feed(&uac.request("ACK", "z9hG4bK-11a", 1, ""));
    let call = match h.actions[0] {
        Action::StartMedia { call, .. } => call,
        _ => unreachable!(),
    };
    let t0 = h.now;
    h.ep.handle_media_ended(call, EndReason::ContentFinished, t0);
    h.drain();
    h.run_until(t0 + Duration::from_millis(1_600));
    let byes: Vec<Duration> = h
        .sent
        .iter()
        .filter(|(_, s)| s.starts_with("BYE "))
        .map(|(t, _)| *t - t0)
        .collect();
    assert_eq!(
        byes,
        vec![
            Duration::ZERO,
            Duration::from_millis(500),
            Duration::from_millis(1_500)
        ]
    );
    let bye = h.take_sent().pop().unwrap();
    let branch = bye
        .split("branch=")
        .nth(1)
        .unwrap()
        .split([';', '\r'])
        .next()
        .unwrap()
        .to_owned();
    let response = format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {LINE};branch={branch}\r\nFrom: <sip:service@{LINE}>;tag={}\r\n\
         To: <sip:caller@{CALLER}>;tag=caller-tag\r\nCall-ID: call-11\r\nCSeq: 99 BYE\r\nContent-Length: 0\r\n\r\n",
        uac.to_tag.as_deref().unwrap()
    );
    h.feed(response.as_bytes());
    assert_eq!(h.ep.active_calls(), 0);
    h.run_until(t0 + Duration::from_secs(60));
    assert!(h.take_sent().is_empty());
}

#[test]
fn garbage_is_counted_and_never_panics() {
    let mut h = Harness::new(Duration::ZERO);
    for junk in [
        &b"\x00\x01\x02garbage"[..],
        b"INVITE",
        b"SIP/2.0 200\r\n\r\n",
        b"\r\n\r\n",
        &[0xff; 1500][..],
    ] {
        h.feed(junk);
    }
    let s = h.ep.stats();
    assert!(s.malformed_dropped + s.malformed_answered >= 4, "{s:?}");
    // Still works afterwards.
    h.feed(&Uac::new("call-12").request("INVITE", "z9hG4bK-12", 1, &offer("0")));
    assert_eq!(Harness::statuses(&h.take_sent()), vec![100, 200]);
}

#[test]
fn untrusted_sources_get_403_or_silence_and_trusted_ones_are_answered() {
    let trusted: crate::config::IpNet = "10.9.0.0/16".parse().unwrap();
    for (untrusted, expected) in [
        (crate::config::Untrusted::Reject, vec![403]),
        (crate::config::Untrusted::Ignore, vec![]),
    ] {
        let mut h = Harness::with_config(EndpointConfig {
            policy: admission::Policy::Networks(vec![trusted]),
            untrusted,
            ..config(Duration::ZERO)
        });
        // CALLER is 127.0.0.1: outside 10.9.0.0/16. Every method gets the
        // same, whatever would have refused it otherwise (Require, To-tag).
        let uac = Uac::new("call-13");
        h.feed(&uac.request("INVITE", "z9hG4bK-13", 1, &offer("0")));
        for method in [
            "OPTIONS",
            "REGISTER",
            "MESSAGE",
            "BYE",
            "SUBSCRIBE",
            "CANCEL",
        ] {
            h.feed(&uac.request(method, &format!("z9hG4bK-13{method}"), 2, ""));
        }
        let mut tagged = Uac::new("call-13b");
        tagged.to_tag = Some("nope".into());
        h.feed(&tagged.request("INVITE", "z9hG4bK-13t", 1, &offer("0")));
        let require = String::from_utf8(uac.request("INVITE", "z9hG4bK-13r", 1, &offer("0")))
            .unwrap()
            .replacen("Max-Forwards", "Require: 100rel\r\nMax-Forwards", 1);
        h.feed(require.as_bytes());
        let sent = h.take_sent();
        assert_eq!(Harness::statuses(&sent), expected.repeat(9));
        assert!(
            sent.iter().all(|m| !m.contains("Server:")),
            "no Server header"
        );
        assert_eq!(h.ep.active_calls(), 0);
        assert!(h.prepared.is_empty() && h.actions.is_empty());
        // Nothing is retransmitted, and no state was kept.
        h.now += Duration::from_secs(40);
        h.ep.handle_timeout(h.now);
        h.drain();
        assert!(h.take_sent().is_empty());
        assert!(h.ep.transactions.is_empty());
    }
    let mut h = Harness::with_config(EndpointConfig {
        policy: admission::Policy::Networks(vec!["127.0.0.0/8".parse().unwrap()]),
        ..config(Duration::ZERO)
    });
    h.feed(&Uac::new("call-14").request("INVITE", "z9hG4bK-14", 1, &offer("0")));
    assert_eq!(Harness::statuses(&h.take_sent()), vec![100, 200]);
}

#[test]
fn a_public_address_goes_into_contact_and_sdp() {
    let mut h = Harness::new(Duration::ZERO);
    // `[trunk] external_address`, or what the registrar saw (rport/received).
    h.ep.set_public_address("203.0.113.7:5062".parse().unwrap());
    h.feed(&Uac::new("call-15").request("INVITE", "z9hG4bK-15", 1, &offer("0")));
    let sent = h.take_sent();
    let ok = &sent[1];
    assert!(ok.contains("<sip:dial-a-service@203.0.113.7:5062>"), "{ok}");
    assert!(ok.contains("c=IN IP4 203.0.113.7"), "{ok}");
}

mod fuzzed;
mod limits;
mod seeded;

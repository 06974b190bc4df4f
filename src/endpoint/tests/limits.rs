//! The endpoint's limits under a virtual clock: admission, the longest call,
//! session timers, and offers too large or aimed elsewhere.

use super::*;

fn answered(h: &mut Harness, uac: &mut Uac, branch: &str, extra_headers: &str) -> CallId {
    let invite = String::from_utf8(uac.request("INVITE", branch, 1, &offer("0")))
        .unwrap()
        .replacen("Max-Forwards", &format!("{extra_headers}Max-Forwards"), 1);
    h.feed(invite.as_bytes());
    let sent = h.take_sent();
    let ok = sent
        .iter()
        .find(|s| s.starts_with("SIP/2.0 200"))
        .expect("answered");
    uac.to_tag = Some(to_tag_of(ok));
    h.feed(&uac.request("ACK", &format!("{branch}a"), 1, ""));
    h.sent.clear();
    h.actions
        .iter()
        .find_map(|a| match a {
            Action::StartMedia { call, .. } => Some(*call),
            _ => None,
        })
        .expect("media started")
}

/// When each BYE was first sent (not its Timer E retransmissions).
fn byes(h: &Harness) -> Vec<Instant> {
    let mut branches = Vec::new();
    h.sent
        .iter()
        .filter(|(_, s)| s.starts_with("BYE "))
        .filter(|(_, s)| {
            let branch = s.split("branch=").nth(1).unwrap_or("").to_owned();
            let new = !branches.contains(&branch);
            branches.push(branch);
            new
        })
        .map(|(t, _)| *t)
        .collect()
}

fn ended(h: &Harness) -> Vec<EndReason> {
    h.actions
        .iter()
        .filter_map(|a| match a {
            Action::CallEnded { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

#[test]
fn a_call_ends_at_max_call_duration_with_bye_and_a_reason() {
    let mut h = Harness::with_config(EndpointConfig {
        max_call_duration: Duration::from_secs(3600),
        ..config(Duration::ZERO)
    });
    let t0 = h.now;
    answered(&mut h, &mut Uac::new("long"), "z9hG4bK-long", "");
    h.run_until(t0 + Duration::from_secs(3599));
    assert!(byes(&h).is_empty());
    h.run_until(t0 + Duration::from_secs(3601));
    assert_eq!(byes(&h), vec![t0 + Duration::from_secs(3600)]);
    assert_eq!(ended(&h), vec![EndReason::MaxDuration]);
}

#[test]
fn an_unrefreshed_session_timer_ends_the_call_and_a_refresh_keeps_it() {
    let mut h = Harness::new(Duration::ZERO);
    let t0 = h.now;
    let timer = "Session-Expires: 90;refresher=uac\r\nSupported: timer\r\n";
    let mut uac = Uac::new("timer");
    let invite = String::from_utf8(uac.request("INVITE", "z9hG4bK-st", 1, &offer("0")))
        .unwrap()
        .replacen("Max-Forwards", &format!("{timer}Max-Forwards"), 1);
    h.feed(invite.as_bytes());
    let ok = h.take_sent().pop().unwrap();
    assert!(ok.contains("Session-Expires: 90;refresher=uac"), "{ok}");
    assert!(ok.contains("Require: timer"), "{ok}");
    uac.to_tag = Some(to_tag_of(&ok));
    h.feed(&uac.request("ACK", "z9hG4bK-sta", 1, ""));

    // The caller refreshes at 45 s: the expiry moves to 45 + 60 s.
    h.run_until(t0 + Duration::from_secs(45));
    let refresh = String::from_utf8(uac.request("INVITE", "z9hG4bK-st2", 2, &offer("0")))
        .unwrap()
        .replacen("Max-Forwards", &format!("{timer}Max-Forwards"), 1);
    h.feed(refresh.as_bytes());
    let ok = h
        .take_sent()
        .into_iter()
        .find(|s| s.starts_with("SIP/2.0 200"))
        .unwrap();
    assert!(ok.contains("Session-Expires: 90;refresher=uac"), "{ok}");
    h.feed(&uac.request("ACK", "z9hG4bK-st2a", 2, ""));
    h.run_until(t0 + Duration::from_secs(100));
    assert!(byes(&h).is_empty(), "refreshed in time");
    h.run_until(t0 + Duration::from_secs(120));
    assert_eq!(byes(&h), vec![t0 + Duration::from_secs(105)]);
    assert_eq!(ended(&h), vec![EndReason::SessionExpired]);
}

#[test]
fn session_timers_too_short_get_422_and_uas_refreshing_is_declined() {
    let mut h = Harness::new(Duration::ZERO);
    let short = String::from_utf8(Uac::new("short").request("INVITE", "z9hG4bK-s", 1, &offer("0")))
        .unwrap()
        .replacen(
            "Max-Forwards",
            "Session-Expires: 30\r\nSupported: timer\r\nMax-Forwards",
            1,
        );
    h.feed(short.as_bytes());
    let sent = h.take_sent();
    assert_eq!(Harness::statuses(&sent), vec![422]);
    assert!(sent[0].contains("Min-SE: 90"), "{}", sent[0]);

    // Asked to refresh ourselves, we answer as a UA without timers: no
    // Session-Expires, and the call has no expiry but max_call_duration.
    let t0 = h.now;
    let mut uac = Uac::new("uas");
    answered(
        &mut h,
        &mut uac,
        "z9hG4bK-u",
        "Session-Expires: 90;refresher=uas\r\nSupported: timer\r\n",
    );
    h.run_until(t0 + Duration::from_secs(600));
    assert!(byes(&h).is_empty());
}

#[test]
fn a_full_line_and_a_busy_source_get_503_with_retry_after() {
    let mut h = Harness::with_config(EndpointConfig {
        max_calls: 3,
        max_setups_per_source: 2,
        ..config(Duration::from_secs(5))
    });
    let flooder: SocketAddr = "203.0.113.9:5060".parse().unwrap();
    // Ringing calls (answer_delay 5 s) count as being set up.
    for i in 0..3 {
        let invite = Uac::new(&format!("flood-{i}")).request(
            "INVITE",
            &format!("z9hG4bK-f{i}"),
            1,
            &offer("0"),
        );
        h.feed_from(&invite, flooder);
    }
    let sent = h.take_sent();
    assert_eq!(Harness::statuses(&sent), vec![100, 180, 100, 180, 503]);
    assert!(sent[4].contains("Retry-After: 30"), "{}", sent[4]);
    // Another caller still gets through...
    h.feed(&Uac::new("other").request("INVITE", "z9hG4bK-o", 1, &offer("0")));
    assert_eq!(Harness::statuses(&h.take_sent()), vec![100, 180]);
    // ...until the line is full.
    h.feed(&Uac::new("fourth").request("INVITE", "z9hG4bK-4", 1, &offer("0")));
    assert_eq!(Harness::statuses(&h.take_sent()), vec![503]);
    assert_eq!(h.ep.active_calls(), 3);
    // Once the flooder's calls are answered and never ACKed, they are
    // hung up (64·T1) and its setups are counted no more...
    let t0 = h.now;
    h.run_until(t0 + Duration::from_secs(40));
    assert_eq!(h.ep.admission.setups_from(flooder.ip()), 0);
    // ...and gone once their BYEs time out too.
    h.run_until(t0 + Duration::from_secs(80));
    assert_eq!(h.ep.active_calls(), 0);
}

#[test]
fn a_trunk_only_line_takes_calls_from_the_trunk_alone() {
    let mut h = Harness::with_config(EndpointConfig {
        policy: admission::Policy::TrunkOnly,
        untrusted: crate::config::Untrusted::Ignore,
        ..config(Duration::ZERO)
    });
    h.feed(&Uac::new("early").request("INVITE", "z9hG4bK-e", 1, &offer("0")));
    assert!(
        h.take_sent().is_empty(),
        "nobody until the trunk is resolved"
    );
    h.ep.admission
        .add_trunk_address("127.0.0.1".parse().unwrap());
    h.feed(&Uac::new("trunk").request("INVITE", "z9hG4bK-t", 1, &offer("0")));
    assert_eq!(Harness::statuses(&h.take_sent()), vec![100, 200]);
    let stranger: SocketAddr = "198.51.100.4:5060".parse().unwrap();
    let invite = Uac::new("direct").request("INVITE", "z9hG4bK-d", 1, &offer("0"));
    h.feed_from(&invite, stranger);
    assert!(h.take_sent().is_empty());
}

#[test]
fn offers_past_the_limits_are_refused_small() {
    let mut h = Harness::new(Duration::ZERO);
    // 2,900 m= lines in a 64 KB offer once got a 64 KB answer.
    let mut huge = offer("0");
    for _ in 0..2_900 {
        huge.push_str("m=video 0 RTP/AVP 96\r\n");
    }
    h.feed(&Uac::new("mlines").request("INVITE", "z9hG4bK-m", 1, &huge));
    let sent = h.take_sent();
    assert_eq!(Harness::statuses(&sent), vec![488]);
    assert!(sent[0].len() < 1024, "{} bytes", sent[0].len());
    // A megabyte of formats on one line.
    let mut wide = offer("0");
    wide.push_str("m=audio 4000 RTP/AVP");
    while wide.len() < 1 << 20 {
        wide.push_str(" 0");
    }
    wide.push_str("\r\n");
    h.feed(&Uac::new("wide").request("INVITE", "z9hG4bK-w", 1, &wide));
    assert_eq!(Harness::statuses(&h.take_sent()), vec![488]);
    assert_eq!(h.ep.active_calls(), 0);
    assert!(h.ports.1.is_empty(), "refused before a port was taken");
}

#[test]
fn media_aimed_at_a_group_or_broadcast_is_refused() {
    let mut h = Harness::new(Duration::ZERO);
    for (i, address) in ["239.1.2.3", "255.255.255.255", "ff02::1"]
        .iter()
        .enumerate()
    {
        let family = if address.contains(':') { "IP6" } else { "IP4" };
        let aimed = offer("0").replace("c=IN IP4 127.0.0.1", &format!("c=IN {family} {address}"));
        let invite =
            Uac::new(&format!("group-{i}")).request("INVITE", &format!("z9hG4bK-g{i}"), 1, &aimed);
        h.feed(&invite);
        assert_eq!(Harness::statuses(&h.take_sent()), vec![488], "{address}");
    }
    // 0.0.0.0 is hold, not a destination: answered, nothing sent to it.
    let hold = offer("0").replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
    let mut uac = Uac::new("hold");
    h.feed(&uac.request("INVITE", "z9hG4bK-h", 1, &hold));
    let ok = h.take_sent().pop().unwrap();
    uac.to_tag = Some(to_tag_of(&ok));
    h.feed(&uac.request("ACK", "z9hG4bK-ha", 1, ""));
    match h.actions.as_slice() {
        [Action::StartMedia { media, .. }] => assert_eq!(media.remote_rtp, None),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_self_test_socket_alone_gets_past_the_trust_policy_and_the_source_limits() {
    let mut h = Harness::with_config(EndpointConfig {
        policy: admission::Policy::TrunkOnly,
        untrusted: crate::config::Untrusted::Ignore,
        max_call_rate_per_source: 0.01,
        max_setups_per_source: 1,
        ..config(Duration::ZERO)
    });
    let own: SocketAddr = CALLER.parse().unwrap();
    let neighbour: SocketAddr = "127.0.0.1:5071".parse().unwrap();
    h.feed(&Uac::new("before").request("INVITE", "z9hG4bK-b", 1, &offer("0")));
    assert!(h.take_sent().is_empty(), "not yet the self-test's socket");

    h.ep.set_self_test_source(Some(own));
    // More calls than the per-source rate and setup limits would let by.
    for n in 0..4 {
        let mut uac = Uac::new(&format!("self-test-{n}"));
        h.feed(&uac.request("INVITE", &format!("z9hG4bK-s{n}"), 1, &offer("0")));
        let sent = h.take_sent();
        assert_eq!(Harness::statuses(&sent), vec![100, 200]);
        uac.to_tag = Some(to_tag_of(&sent[1]));
        h.feed(&uac.request("ACK", &format!("z9hG4bK-a{n}"), 1, ""));
    }
    let flagged = |a: &Action| match a {
        Action::StartMedia { self_test, .. } => Some(*self_test),
        _ => None,
    };
    let started: Vec<bool> = h.actions.iter().filter_map(flagged).collect();
    assert_eq!(started, vec![true; 4]);

    // Another socket on the same machine is a stranger still.
    let invite = Uac::new("neighbour").request("INVITE", "z9hG4bK-n", 1, &offer("0"));
    h.feed_from(&invite, neighbour);
    assert!(h.take_sent().is_empty());

    // Over TCP the same address and port is another socket altogether.
    h.ep.handle_datagram(
        &Uac::new("tcp").request("INVITE", "z9hG4bK-tcp", 1, &offer("0")),
        own,
        Transport::Tcp,
        h.now,
        &mut h.ports,
    );
    h.drain();
    assert!(h.take_sent().is_empty());

    h.ep.set_self_test_source(None);
    h.feed(&Uac::new("after").request("INVITE", "z9hG4bK-z", 1, &offer("0")));
    assert!(h.take_sent().is_empty());
}

#[test]
fn the_self_test_is_refused_by_a_full_line_like_anyone() {
    let mut h = Harness::with_config(EndpointConfig {
        max_calls: 1,
        ..config(Duration::ZERO)
    });
    h.feed_from(
        &Uac::new("caller").request("INVITE", "z9hG4bK-c", 1, &offer("0")),
        "127.0.0.1:5072".parse().unwrap(),
    );
    assert_eq!(Harness::statuses(&h.take_sent()), vec![100, 200]);
    h.ep.set_self_test_source(Some(CALLER.parse().unwrap()));
    h.feed(&Uac::new("self-test").request("INVITE", "z9hG4bK-s", 1, &offer("0")));
    assert_eq!(Harness::statuses(&h.take_sent()), vec![503]);
}

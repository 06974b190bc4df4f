//! Media only with the caller, over real sockets: strict RTP, the hold and
//! unreachable timeouts, and destinations that are never sent to.

use super::*;

/// One RFC 4733 packet of `event` (payload type 101), sequence `seq`.
fn key_packet(ssrc: u32, seq: u16, timestamp: u32, event: u8) -> Vec<u8> {
    let mut packet = vec![0x80, 101];
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&timestamp.to_be_bytes());
    packet.extend_from_slice(&ssrc.to_be_bytes());
    packet.extend_from_slice(&[event, 10, 0, 160]);
    packet
}

fn keys_heard(rx: &mut UnboundedReceiver<MediaEvent>, within: Duration) -> Vec<Key> {
    let mut keys = Vec::new();
    while let Some(event) = next_event(rx, within) {
        if let MediaEvent::Key { key, .. } = event {
            keys.push(key);
        }
    }
    keys
}

#[test]
fn a_strangers_rtp_and_keys_change_nothing() {
    let (engine, mut events) = engine(EngineConfig::default());
    let caller = Caller::new();
    let mut params = caller.params(1, Codec::Pcmu, 0);
    params.telephone_event = Some(PayloadType(101));
    params.keys = KeyListening {
        rfc4733: true,
        inband: false,
    };
    let ours = params.sockets.rtp.local_addr().unwrap();
    engine.add_programme(params, programme(vec![frames(0, 500, 160)], None));
    assert_eq!(receive(&caller.rtp, 3, 1000 * MS).len(), 3);

    // The caller's own first packet locks the stream on it.
    caller.rtp.send_to(&key_packet(7, 1, 100, 5), ours).unwrap();
    assert_eq!(keys_heard(&mut events, 200 * MS), vec![Key::Digit(5)]);

    // A stranger, in sequence, many times, in the first second: ignored.
    let stranger = localhost_socket();
    for seq in 0..20 {
        let packet = key_packet(9, seq, 1000 + u32::from(seq) * 800, 2);
        stranger.send_to(&packet, ours).unwrap();
    }
    assert!(keys_heard(&mut events, 200 * MS).is_empty());
    assert!(engine.stats().strangers >= 20);
    assert_eq!(engine.stats().latches, 0);
    // The audio still goes to the caller, and none to the stranger.
    while caller.rtp.recv(&mut [0u8; 2048]).is_ok() {}
    assert!(!receive(&caller.rtp, 3, 200 * MS).is_empty());
    assert!(receive(&stranger, 1, 100 * MS).is_empty());
}

#[test]
fn a_held_call_with_nothing_from_the_caller_times_out_once() {
    let config = EngineConfig {
        hold_timeout: 300 * MS,
        ..EngineConfig::default()
    };
    let (engine, mut events) = engine(config);
    let caller = Caller::new();
    let mut held = caller.params(2, Codec::Pcmu, 0);
    held.sending = false;
    let started = Instant::now();
    engine.add_programme(held, programme(vec![frames(0, 500, 160)], None));
    match next_event(&mut events, 1000 * MS) {
        Some(MediaEvent::Timeout {
            id: StreamId(2),
            reason: MediaTimeout::Held,
        }) => {}
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() >= 290 * MS, "{:?}", started.elapsed());
    assert_eq!(next_event(&mut events, 300 * MS), None, "once");

    // A call that sends is not held: no timeout.
    let other = Caller::new();
    engine.add_programme(
        other.params(3, Codec::Pcmu, 0),
        programme(vec![frames(0, 500, 160)], None),
    );
    assert_eq!(next_event(&mut events, 600 * MS), None);
}

#[test]
fn a_caller_whose_address_answers_with_icmp_errors_times_out() {
    let config = EngineConfig {
        unreachable_timeout: 500 * MS,
        ..EngineConfig::default()
    };
    let (engine, mut events) = engine(config);
    // Nobody listens at the caller's address: the kernel answers each
    // packet with an ICMP port unreachable.
    let gone = localhost_socket().local_addr().unwrap();
    let caller = Caller::new();
    let mut params = caller.params(4, Codec::Pcmu, 0);
    params.remote_rtp = gone;
    params.remote_rtcp = SocketAddr::new(gone.ip(), gone.port() + 1);
    engine.add_programme(params, programme(vec![frames(0, 500, 160)], None));
    match next_event(&mut events, 3000 * MS) {
        Some(MediaEvent::Timeout {
            id: StreamId(4),
            reason: MediaTimeout::Unreachable,
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn groups_and_broadcast_are_never_sent_to() {
    let (engine, _events) = engine(EngineConfig::default());
    let caller = Caller::new();
    let group: SocketAddr = "239.1.2.3:5004".parse().unwrap();
    let mut params = caller.params(5, Codec::Pcmu, 0);
    params.remote_rtp = group;
    params.remote_rtcp = "239.1.2.3:5005".parse().unwrap();
    engine.add_programme(params, programme(vec![frames(0, 50, 160)], None));
    std::thread::sleep(200 * MS);
    let stats = engine.stats();
    assert_eq!(stats.packets_sent, 0, "{stats}");
    assert_eq!(stats.send_errors, 0, "not even tried: {stats}");
    // Moved to the caller by a re-INVITE, it sends; to broadcast, it stops.
    engine.update(
        StreamId(5),
        caller.rtp.local_addr().unwrap(),
        caller.rtcp.local_addr().unwrap(),
        true,
    );
    assert!(!receive(&caller.rtp, 2, 300 * MS).is_empty());
    let broadcast: SocketAddr = "255.255.255.255:5004".parse().unwrap();
    engine.update(StreamId(5), broadcast, broadcast, true);
    std::thread::sleep(50 * MS);
    let sent = engine.stats().packets_sent;
    std::thread::sleep(200 * MS);
    assert_eq!(engine.stats().packets_sent, sent);
}

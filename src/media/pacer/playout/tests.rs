use std::sync::Mutex;

use super::super::super::rtp::{PayloadType, Ssrc, parse};
use super::*;

/// Frames `0..n` of one byte each, valued `base + i`; `pending` frames
/// from `ready` on are not decoded yet; `fail` fails instead of ending.
struct Scripted {
    base: u8,
    n: usize,
    ready: Mutex<usize>,
    fail: bool,
}

impl FrameSource for Scripted {
    fn read_frame(&self, index: usize, out: &mut Vec<u8>) -> FrameRead {
        let ready = *self.ready.lock().unwrap();
        if index >= ready.min(self.n) {
            return match (index >= self.n, self.fail) {
                (true, true) => FrameRead::Failed,
                (true, false) => FrameRead::End,
                _ => FrameRead::Pending,
            };
        }
        out.clear();
        out.push(self.base + index as u8);
        FrameRead::Ready
    }
}

fn source(base: u8, n: usize) -> Arc<Scripted> {
    Arc::new(Scripted {
        base,
        n,
        ready: Mutex::new(n),
        fail: false,
    })
}

const MS: Duration = Duration::from_millis(1);

struct Harness {
    playout: Playout,
    now: Instant,
    frame: Vec<u8>,
    packet: [u8; 64],
}

impl Harness {
    fn new(items: Vec<Arc<dyn FrameSource>>, on_failure: Option<Arc<dyn FrameSource>>) -> Self {
        let now = Instant::now();
        let packetizer = Packetizer::with_initial(PayloadType(0), 160, Ssrc(1), 100, 1000);
        Harness {
            playout: Playout::new(
                Programme { items, on_failure },
                packetizer,
                8000,
                true,
                100 * MS,
                now,
            ),
            now,
            frame: Vec::new(),
            packet: [0; 64],
        }
    }

    /// Runs the stream on time until it finishes; returns per slot the
    /// (payload, seq, ts, marker) sent, or None for silence.
    fn run(&mut self) -> Vec<Option<(u8, u16, u32, bool)>> {
        let mut out = Vec::new();
        for _ in 0..1000 {
            let tick = self.step(Duration::ZERO);
            match tick.action {
                Action::Finished => return out,
                Action::Waiting => {}
                Action::Silent => out.push(None),
                Action::Send { len } => {
                    let h = parse(&self.packet[..len]).unwrap();
                    out.push(Some((h.payload[0], h.sequence, h.timestamp, h.marker)));
                }
            }
        }
        panic!("playout never finished");
    }

    /// Jumps to the next wake plus `late` and handles it.
    fn step(&mut self, late: Duration) -> Tick {
        self.now = self.playout.next_wake() + late;
        self.playout
            .handle_timeout(self.now, &mut self.frame, &mut self.packet)
    }
}

#[test]
fn items_play_in_order_with_continuous_sequence_and_timestamps() {
    let mut h = Harness::new(vec![source(10, 2), source(0, 0), source(20, 2)], None);
    let start = h.now;
    let sent = h.run();
    assert_eq!(
        sent,
        vec![
            Some((10, 100, 1000, true)),
            Some((11, 101, 1160, false)),
            Some((20, 102, 1320, false)),
            Some((21, 103, 1480, false)),
        ]
    );
    // Finished in the slot after the last frame.
    assert_eq!(h.now, start + 80 * MS);
}

#[test]
fn a_failure_switches_to_on_failure_from_its_first_frame() {
    let failing = Arc::new(Scripted {
        base: 10,
        n: 2,
        ready: Mutex::new(2),
        fail: true,
    });
    let mut h = Harness::new(vec![failing, source(20, 3)], Some(source(90, 2)));
    let payloads: Vec<_> = h.run().into_iter().map(|p| p.unwrap().0).collect();
    // The rest of the playlist is skipped: the apology ends the call.
    assert_eq!(payloads, vec![10, 11, 90, 91]);

    let mut h = Harness::new(
        vec![Arc::new(Scripted {
            base: 0,
            n: 0,
            ready: Mutex::new(0),
            fail: true,
        })],
        None,
    );
    assert_eq!(h.run(), vec![]);
}

#[test]
fn waits_for_the_first_frame_then_underruns_mid_stream() {
    let s = Arc::new(Scripted {
        base: 0,
        n: 4,
        ready: Mutex::new(0),
        fail: false,
    });
    let mut h = Harness::new(vec![s.clone()], None);
    let start = h.now;
    assert_eq!(h.step(Duration::ZERO).action, Action::Waiting);
    assert_eq!(h.playout.next_wake(), start + START_POLL);
    *s.ready.lock().unwrap() = 2;
    let t = h.step(Duration::ZERO);
    assert_eq!(t.action, Action::Send { len: 13 });
    // t0 is when the first frame was ready.
    assert_eq!(h.playout.next_wake(), start + START_POLL + 20 * MS);
    h.step(Duration::ZERO);
    let t = h.step(Duration::ZERO);
    assert_eq!((t.action, t.underrun), (Action::Silent, true));
    *s.ready.lock().unwrap() = 4;
    let sent = h.run();
    let (payload, seq, ts, marker) = sent[0].unwrap();
    assert_eq!(
        (payload, seq, marker),
        (2, 102, true),
        "resumes marked, no seq gap"
    );
    assert_eq!(ts, 1000 + 3 * 160, "the silent slot advanced the timestamp");
}

#[test]
fn hold_keeps_the_clock_and_the_position() {
    let mut h = Harness::new(vec![source(0, 3)], None);
    h.step(Duration::ZERO);
    h.playout.set_sending(false);
    for _ in 0..5 {
        assert_eq!(h.step(Duration::ZERO).action, Action::Silent);
    }
    h.playout.set_sending(true);
    let sent = h.run();
    assert_eq!(
        sent,
        vec![
            Some((1, 101, 1000 + 6 * 160, true)),
            Some((2, 102, 1000 + 7 * 160, false))
        ]
    );
}

#[test]
fn small_delays_catch_up_at_twice_the_pace_and_long_stalls_re_anchor() {
    let mut h = Harness::new(vec![source(0, 100)], None);
    h.step(Duration::ZERO);
    let anchor = h.playout.next_wake() - 20 * MS; // slot 0
    // Slot 1 handled 60 ms late: within the window. The three slots behind
    // go out 10 ms apart, not at once, until the stream is back on time.
    h.now = anchor + 80 * MS;
    let t = h.playout.handle_timeout(h.now, &mut h.frame, &mut h.packet);
    assert!(!t.caught_up);
    assert_eq!(t.lateness, 60 * MS);
    let mut sent_at = vec![h.now];
    while h.playout.next_wake() < anchor + 200 * MS {
        h.step(Duration::ZERO);
        sent_at.push(h.now);
    }
    let gaps: Vec<u128> = sent_at
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    assert_eq!(gaps[..6], [10, 10, 10, 10, 10, 10], "{gaps:?}");
    // Caught up: slot k is due at anchor + k·20 ms again, so no drift.
    assert!(gaps[6..].iter().all(|&gap| gap == 20), "{gaps:?}");
    let last_slot = sent_at.len() as u32; // slots 1..=n
    assert_eq!(*sent_at.last().unwrap(), anchor + 20 * MS * last_slot);
    // A 500 ms stall: re-anchor, no burst of 25 packets.
    let due = h.playout.next_wake();
    h.now = due + 500 * MS;
    let t = h.playout.handle_timeout(h.now, &mut h.frame, &mut h.packet);
    assert!(t.caught_up);
    assert_eq!(t.lateness, 500 * MS);
    assert_eq!(h.playout.next_wake(), h.now + 20 * MS);
}

#[test]
fn sender_info_extrapolates_the_rtp_clock() {
    let mut h = Harness::new(vec![source(0, 10)], None);
    h.step(Duration::ZERO);
    h.step(Duration::ZERO);
    // Two packets sent; slot 2 (ts 1320) is due at next_wake.
    let wall = NtpTimestamp(42);
    let info = h.playout.sender_info(h.playout.next_wake() - 5 * MS, wall);
    assert_eq!(info.rtp_timestamp, 1320 - 40);
    assert_eq!(
        (info.packet_count, info.octet_count, info.ntp),
        (2, 2, wall)
    );
    let info = h.playout.sender_info(h.playout.next_wake() + 10 * MS, wall);
    assert_eq!(info.rtp_timestamp, 1320 + 80);
}

/// A steered harness: comfort frames are payload 0xEE.
fn steered(items: Vec<Arc<dyn FrameSource>>, on_failure: Option<Arc<dyn FrameSource>>) -> Harness {
    let mut h = Harness::new(items, on_failure);
    let playout = std::mem::replace(
        &mut h.playout,
        Playout::new(
            Programme {
                items: Vec::new(),
                on_failure: None,
            },
            Packetizer::new(PayloadType(0), 160),
            8000,
            true,
            100 * MS,
            h.now,
        ),
    );
    h.playout = playout.with_comfort(source(0xEE, 1), 7);
    h
}

impl Harness {
    /// The next `n` slots: payload byte and marker of each packet sent,
    /// and any programme end reported on the way.
    fn take(&mut self, n: usize) -> (Vec<(u8, bool)>, Vec<Ended>) {
        let mut sent = Vec::new();
        let mut ended = Vec::new();
        while sent.len() < n {
            let tick = self.step(Duration::ZERO);
            ended.extend(tick.ended);
            match tick.action {
                Action::Send { len } => {
                    let h = parse(&self.packet[..len]).unwrap();
                    sent.push((h.payload[0], h.marker));
                }
                Action::Finished => panic!("a steered stream never finishes by itself"),
                Action::Silent | Action::Waiting => {}
            }
        }
        (sent, ended)
    }
}

fn payloads(sent: &[(u8, bool)]) -> Vec<u8> {
    sent.iter().map(|(p, _)| *p).collect()
}

#[test]
fn a_steered_stream_reports_its_end_once_then_sends_comfort() {
    let mut h = steered(vec![source(10, 2)], None);
    let (sent, ended) = h.take(4);
    assert_eq!(payloads(&sent), [10, 11, 0xEE, 0xEE]);
    assert_eq!(
        ended,
        [Ended {
            tag: 7,
            failed: false
        }]
    );
}

#[test]
fn play_cuts_off_at_the_next_slot_marked_and_seq_runs_on() {
    let mut h = steered(vec![source(10, 50)], None);
    h.take(3);
    h.playout.play(
        Programme {
            items: vec![source(100, 2)],
            on_failure: None,
        }
        .into(),
        8,
    );
    let (sent, ended) = h.take(3);
    assert_eq!(sent, [(100, true), (101, false), (0xEE, false)]);
    assert_eq!(
        ended,
        [Ended {
            tag: 8,
            failed: false
        }]
    );
    assert_eq!(
        h.playout.packetizer().packets_sent(),
        6,
        "one stream throughout"
    );
}

#[test]
fn seek_moves_within_the_item_and_clamps_at_its_start() {
    let mut h = steered(vec![source(0, 200)], None);
    h.take(10); // frames 0-9
    h.playout.seek(Some(50));
    assert_eq!(h.take(1).0, [(60, true)]);
    h.playout.seek(Some(-100));
    assert_eq!(payloads(&h.take(2).0), [0, 1], "clamped at the start");
    h.take(5);
    h.playout.seek(None);
    assert_eq!(payloads(&h.take(1).0), [0], "restart");
    // Past the end: the item is over and the end is reported.
    h.playout.seek(Some(500));
    let (sent, ended) = h.take(1);
    assert_eq!(payloads(&sent), [0xEE]);
    assert_eq!(ended.len(), 1);
}

#[test]
fn pause_holds_the_position_with_comfort_frames() {
    let mut h = steered(vec![source(0, 100)], None);
    h.take(3);
    h.playout.set_paused(true);
    assert_eq!(payloads(&h.take(4).0), [0xEE; 4]);
    h.playout.set_paused(false);
    assert_eq!(
        h.take(2).0,
        [(3, true), (4, false)],
        "resumes where it paused"
    );
}

#[test]
fn a_failed_item_plays_the_fallback_and_reports_failure() {
    let broken = Arc::new(Scripted {
        base: 10,
        n: 1,
        ready: Mutex::new(1),
        fail: true,
    });
    let mut h = steered(vec![broken], Some(source(90, 2)));
    let (sent, ended) = h.take(4);
    assert_eq!(payloads(&sent), [10, 90, 91, 0xEE]);
    assert_eq!(
        ended,
        [Ended {
            tag: 7,
            failed: true
        }]
    );
    // Seeking in the apology does nothing.
    h.playout.seek(None);
    assert_eq!(payloads(&h.take(1).0), [0xEE]);
}

#[test]
fn an_empty_programme_starts_comfort_at_once() {
    let mut h = steered(Vec::new(), None);
    let (sent, ended) = h.take(2);
    assert_eq!(payloads(&sent), [0xEE, 0xEE]);
    assert_eq!(ended.len(), 1);
}

#[test]
fn a_stream_whose_first_programme_is_being_prepared_waits_for_it() {
    let preparing = Preparing::new();
    let mut h = Harness::new(Vec::new(), None);
    let packetizer = Packetizer::with_initial(PayloadType(0), 160, Ssrc(1), 100, 1000);
    h.playout = Playout::new(
        Staged::Preparing(preparing.clone()),
        packetizer,
        8000,
        true,
        100 * MS,
        h.now,
    );
    for _ in 0..3 {
        let tick = h.step(Duration::ZERO);
        assert_eq!(tick.action, Action::Waiting);
        assert!(!tick.underrun);
    }
    assert!(preparing.fill(Programme {
        items: vec![source(10, 2)],
        on_failure: None,
    }));
    let started = h.now + START_POLL;
    let sent = h.run();
    // The clock starts when the first frame is ready: the first packet
    // is not a burst of the slots spent waiting.
    assert_eq!(
        sent,
        [Some((10, 100, 1000, true)), Some((11, 101, 1160, false))]
    );
    assert_eq!(h.now, started + 40 * MS);
}

#[test]
fn a_programme_being_prepared_sends_comfort_then_plays_from_its_start() {
    let mut h = steered(vec![source(10, 50)], None);
    h.take(3);
    let preparing = Preparing::new();
    h.playout.play(Staged::Preparing(preparing.clone()), 8);
    let mut underruns = 0;
    let mut sent = Vec::new();
    for _ in 0..3 {
        let tick = h.step(Duration::ZERO);
        underruns += usize::from(tick.underrun);
        if let Action::Send { len } = tick.action {
            sent.push(parse(&h.packet[..len]).unwrap().payload[0]);
        }
    }
    assert_eq!(sent, [0xEE; 3], "comfort while it is prepared");
    assert_eq!(underruns, 0, "waiting for a programme is not an underrun");
    preparing.fill(Programme {
        items: vec![source(100, 2)],
        on_failure: None,
    });
    let (sent, ended) = h.take(3);
    assert_eq!(payloads(&sent), [100, 101, 0xEE]);
    assert_eq!(
        ended,
        [Ended {
            tag: 8,
            failed: false
        }]
    );
}

//! One stream's playback, sans-IO: which frame goes in which 20 ms slot.
//!
//! The worker calls [`Playout::handle_timeout`] at [`Playout::next_wake`];
//! it says whether to send a packet (written into the worker's buffer), stay
//! silent, or finish.
//!
//! ```text
//!  Waiting ──first frame Ready──► Playing ──last item End / Failed with
//!    │ re-check every 5 ms          │  no fallback──► Finished
//!    └──playlist empty/failed──────►┘
//! ```
//!
//! Slot k is due at `anchor + (k - anchor_slot)·20 ms`. The anchor is the
//! instant the first frame was ready, so timing never accumulates error over
//! a 90-minute service; it moves only when the worker fell further behind
//! than the catch-up window (then slot k is due "now" and the stream runs
//! that much later, rather than bursting the backlog at the caller).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::FRAME_DURATION;
use super::super::rtcp::{NtpTimestamp, SenderInfo};
use super::super::rtp::Packetizer;
use super::super::track::FrameRead;
use super::{FrameSource, Programme};

/// How often to look again for the first frame of a track still decoding.
pub(super) const START_POLL: Duration = Duration::from_millis(5);

/// What the worker should do for this tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    /// Send the first `len` bytes of the packet buffer.
    Send { len: usize },
    /// A slot passes with nothing sent (hold, or decoder behind).
    Silent,
    /// The first frame is not ready yet.
    Waiting,
    /// Nothing more to play: send BYE, drop the stream.
    Finished,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tick {
    pub action: Action,
    /// How late the slot was handled (zero while waiting).
    pub lateness: Duration,
    /// The clock was re-anchored: the slot was later than the window.
    pub caught_up: bool,
    /// The slot wanted a frame the decoder has not produced yet (or one
    /// too large to packetise).
    pub underrun: bool,
}

impl Tick {
    fn new(action: Action) -> Tick {
        Tick {
            action,
            lateness: Duration::ZERO,
            caught_up: false,
            underrun: false,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Clock {
    anchor: Instant,
    anchor_slot: u64,
    /// The next slot to handle.
    slot: u64,
}

impl Clock {
    fn due(&self) -> Instant {
        let frames = self.slot - self.anchor_slot;
        self.anchor + Duration::from_nanos(frames * FRAME_DURATION.as_nanos() as u64)
    }
}

/// Result of reading the frame at the current position.
enum Read {
    Ready,
    Pending,
    Over,
}

pub(super) struct Playout {
    programme: Programme,
    item: usize,
    frame: usize,
    /// Playing `on_failure` after an item failed.
    fallback: bool,
    packetizer: Packetizer,
    clock_rate_hz: u32,
    clock: Option<Clock>,
    sending: bool,
    catch_up_window: Duration,
    next_wake: Instant,
}

impl Playout {
    pub fn new(
        programme: Programme,
        packetizer: Packetizer,
        clock_rate_hz: u32,
        sending: bool,
        catch_up_window: Duration,
        now: Instant,
    ) -> Playout {
        Playout {
            programme,
            item: 0,
            frame: 0,
            fallback: false,
            packetizer,
            clock_rate_hz,
            clock: None,
            sending,
            catch_up_window,
            next_wake: now,
        }
    }

    pub fn next_wake(&self) -> Instant {
        self.next_wake
    }

    pub fn packetizer(&self) -> &Packetizer {
        &self.packetizer
    }

    /// Hold (`false`) keeps the clock running but sends nothing and keeps
    /// the playlist position, so a caller on hold misses none of the
    /// service. Resuming marks the next packet.
    pub fn set_sending(&mut self, sending: bool) {
        if sending && !self.sending {
            self.packetizer.mark_next();
        }
        self.sending = sending;
    }

    /// Handles the slot due at `next_wake`; `frame` and `packet` are the
    /// worker's scratch buffers.
    pub fn handle_timeout(&mut self, now: Instant, frame: &mut Vec<u8>, packet: &mut [u8]) -> Tick {
        let clock = match self.clock {
            Some(clock) => clock,
            None => match self.read(frame) {
                Read::Pending => {
                    self.next_wake = now + START_POLL;
                    return Tick::new(Action::Waiting);
                }
                Read::Over => return Tick::new(Action::Finished),
                // t0: the first frame is ready now.
                Read::Ready => Clock {
                    anchor: now,
                    anchor_slot: 0,
                    slot: 0,
                },
            },
        };
        let mut clock = clock;
        let due = clock.due();
        let lateness = now.saturating_duration_since(due);
        let mut tick = Tick::new(Action::Silent);
        tick.lateness = lateness;
        if lateness > self.catch_up_window {
            clock.anchor = now;
            clock.anchor_slot = clock.slot;
            tick.caught_up = true;
        }
        if self.sending {
            match self.read(frame) {
                Read::Ready => match self.packetizer.write_packet(frame, packet) {
                    Ok(len) => {
                        self.frame += 1;
                        tick.action = Action::Send { len };
                    }
                    // A frame larger than a datagram is skipped rather than
                    // stalling the call on it.
                    Err(_) => {
                        self.frame += 1;
                        self.silent_slot();
                        tick.underrun = true;
                    }
                },
                Read::Pending => {
                    self.silent_slot();
                    tick.underrun = true;
                }
                Read::Over => return Tick::new(Action::Finished),
            }
        } else {
            self.packetizer.skip_frames(1);
        }
        clock.slot += 1;
        self.next_wake = clock.due();
        self.clock = Some(clock);
        tick
    }

    /// A slot with no packet: the timestamp moves on, and the next packet is
    /// marked as the start of a talkspurt (RFC 3551 §4.1).
    fn silent_slot(&mut self) {
        self.packetizer.skip_frames(1);
        self.packetizer.mark_next();
    }

    /// Reads the frame at the current position into `out`, moving to the
    /// next item at an end and to `on_failure` at a failure.
    fn read(&mut self, out: &mut Vec<u8>) -> Read {
        loop {
            let source: &Arc<dyn FrameSource> = if self.fallback {
                match &self.programme.on_failure {
                    Some(source) => source,
                    None => return Read::Over,
                }
            } else {
                match self.programme.items.get(self.item) {
                    Some(source) => source,
                    None => return Read::Over,
                }
            };
            match source.read_frame(self.frame, out) {
                FrameRead::Ready => return Read::Ready,
                FrameRead::Pending => return Read::Pending,
                FrameRead::End if self.fallback => return Read::Over,
                FrameRead::End => {
                    self.item += 1;
                    self.frame = 0;
                }
                FrameRead::Failed if self.fallback => return Read::Over,
                FrameRead::Failed => {
                    tracing::debug!(item = self.item, frame = self.frame, "track failed");
                    self.fallback = true;
                    self.frame = 0;
                }
            }
        }
    }

    /// The SR sender info for `now` (RFC 3550 §6.4.1): the RTP timestamp
    /// is extrapolated from the next slot's, which is due at `next_wake`.
    pub fn sender_info(&self, now: Instant, wall: NtpTimestamp) -> SenderInfo {
        let next = self.packetizer.next_timestamp();
        let ticks =
            |d: Duration| (d.as_nanos() * u128::from(self.clock_rate_hz) / 1_000_000_000) as u32;
        let rtp_timestamp = if self.next_wake >= now {
            next.wrapping_sub(ticks(self.next_wake - now))
        } else {
            next.wrapping_add(ticks(now - self.next_wake))
        };
        SenderInfo {
            ntp: wall,
            rtp_timestamp,
            packet_count: self.packetizer.packets_sent(),
            octet_count: self.packetizer.octets_sent(),
        }
    }
}

#[cfg(test)]
mod tests {
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
    fn small_delays_catch_up_and_long_stalls_re_anchor() {
        let mut h = Harness::new(vec![source(0, 100)], None);
        h.step(Duration::ZERO);
        let due = h.playout.next_wake();
        // 60 ms late: within the window; the next slots are already due.
        let t = h.step(60 * MS);
        assert!(!t.caught_up);
        assert_eq!(t.lateness, 60 * MS);
        assert_eq!(
            h.playout.next_wake(),
            due + 20 * MS,
            "timing keeps its anchor"
        );
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
}

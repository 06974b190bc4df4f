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
//! that much later, rather than bursting the backlog at the caller). Within
//! the window the late slots are sent 10 ms apart until the stream is on
//! its anchor again: twice the pace, never a burst, and no drift.

// No clock reads or global randomness outside tests: `now` is an input
// (clippy.toml).
#![cfg_attr(not(test), deny(clippy::disallowed_methods))]

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::FRAME_DURATION;
use super::super::rtcp::{NtpTimestamp, SenderInfo};
use super::super::rtp::Packetizer;
use super::super::track::FrameRead;
use super::{FrameSource, Preparing, Programme, Staged};

/// How often to look again for the first frame of a track still decoding.
pub(super) const START_POLL: Duration = Duration::from_millis(5);
/// The gap between packets of a stream catching up on late slots.
const CATCH_UP_SPACING: Duration = Duration::from_millis(10);

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
    /// A controlled stream's programme has just played out.
    pub ended: Option<Ended>,
}

/// The end of a controlled stream's programme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ended {
    pub tag: u32,
    /// An item failed and `on_failure` played instead.
    pub failed: bool,
}

impl Tick {
    fn new(action: Action) -> Tick {
        Tick {
            action,
            lateness: Duration::ZERO,
            caught_up: false,
            underrun: false,
            ended: None,
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
    /// The programme to play once whoever prepares it has filled it;
    /// `programme` is not played meanwhile.
    preparing: Option<Preparing>,
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
    /// Set for a stream the call flow steers: when the programme ends the
    /// stream stays, sending these comfort frames until told what next
    /// (a silent stream would let a trunk's RTP timeout end the call).
    comfort: Option<Arc<dyn FrameSource>>,
    /// Tag of the programme, reported when it ends.
    tag: u32,
    /// The programme has ended; comfort frames play.
    idle: bool,
    /// Paused by the caller: comfort frames play and the position holds.
    paused: bool,
}

impl Playout {
    pub fn new(
        programme: impl Into<Staged>,
        packetizer: Packetizer,
        clock_rate_hz: u32,
        sending: bool,
        catch_up_window: Duration,
        now: Instant,
    ) -> Playout {
        let (programme, preparing) = split(programme.into());
        Playout {
            programme,
            preparing,
            item: 0,
            frame: 0,
            fallback: false,
            packetizer,
            clock_rate_hz,
            clock: None,
            sending,
            catch_up_window,
            next_wake: now,
            comfort: None,
            tag: 0,
            idle: false,
            paused: false,
        }
    }

    /// Makes the stream controlled: programme ends are reported and filled
    /// with `comfort` frames. `tag` names the first programme.
    pub fn with_comfort(mut self, comfort: Arc<dyn FrameSource>, tag: u32) -> Playout {
        self.comfort = Some(comfort);
        self.tag = tag;
        self
    }

    /// Replaces the programme at the next slot: a key press cuts a prompt
    /// off at once. Sequence and timestamps run on; the next packet is
    /// marked, as after a silence.
    pub fn play(&mut self, programme: Staged, tag: u32) {
        (self.programme, self.preparing) = split(programme);
        self.tag = tag;
        self.item = 0;
        self.frame = 0;
        self.fallback = false;
        self.idle = false;
        self.paused = false;
        self.packetizer.mark_next();
    }

    /// Moves within the item playing by `frames` (back when negative),
    /// clamped at its start; past its end the item is over. `None` goes
    /// back to the start. Nothing moves in the apology or when idle.
    pub fn seek(&mut self, frames: Option<i64>) {
        if self.fallback || self.idle {
            return;
        }
        self.frame = match frames {
            None => 0,
            Some(delta) => self.frame.saturating_add_signed(delta as isize),
        };
        self.packetizer.mark_next();
    }

    /// Pauses (comfort frames, position kept) or resumes.
    pub fn set_paused(&mut self, paused: bool) {
        if self.paused && !paused {
            self.packetizer.mark_next();
        }
        self.paused = paused;
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
                Read::Over if self.comfort.is_none() => return Tick::new(Action::Finished),
                // t0: the first frame is ready now (or, for a controlled
                // stream with nothing to play, its comfort frames start).
                Read::Ready | Read::Over => Clock {
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
            let (read, advance) = self.next_frame(frame, &mut tick);
            match read {
                Read::Ready => match self.packetizer.write_packet(frame, packet) {
                    Ok(len) => {
                        self.frame += advance;
                        tick.action = Action::Send { len };
                    }
                    // A frame larger than a datagram is skipped rather than
                    // stalling the call on it.
                    Err(_) => {
                        self.frame += advance;
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
            if !self.paused && !self.idle {
                // On hold the position keeps, but a programme that has
                // ended is still reported so the flow moves on.
                self.note_end(frame, &mut tick);
            }
        }
        clock.slot += 1;
        // Late within the window: the slots behind are caught up at twice
        // the pace (a packet every 10 ms), never back to back, so the
        // caller's jitter buffer sees no burst and the anchor (the rate) is
        // kept. On time, the next slot is due 20 ms on anyway.
        self.next_wake = clock.due().max(now + CATCH_UP_SPACING);
        self.clock = Some(clock);
        tick
    }

    /// A slot with no packet: the timestamp moves on, and the next packet is
    /// marked as the start of a talkspurt (RFC 3551 §4.1).
    fn silent_slot(&mut self) {
        self.packetizer.skip_frames(1);
        self.packetizer.mark_next();
    }

    /// The frame for this slot and how far the position moves: the
    /// programme's (1), or a comfort frame while paused or idle (0).
    fn next_frame(&mut self, out: &mut Vec<u8>, tick: &mut Tick) -> (Read, usize) {
        // A programme still being prepared is not an underrun: the caller
        // hears the comfort frames of a pause for the moment it takes.
        let waiting = !self.is_prepared() && self.comfort.is_some();
        if !self.paused && !self.idle && !waiting {
            match self.read(out) {
                Read::Over if self.comfort.is_some() => self.end(tick),
                read => return (read, 1),
            }
        }
        match &self.comfort {
            Some(comfort) => (Self::read_comfort(comfort, out), 0),
            None => (Read::Over, 0),
        }
    }

    /// On hold: checks whether the programme has ended, without moving.
    fn note_end(&mut self, out: &mut Vec<u8>, tick: &mut Tick) {
        if self.comfort.is_some() && matches!(self.read(out), Read::Over) {
            self.end(tick);
        }
    }

    fn end(&mut self, tick: &mut Tick) {
        self.idle = true;
        tick.ended = Some(Ended {
            tag: self.tag,
            failed: self.fallback,
        });
    }

    fn read_comfort(comfort: &Arc<dyn FrameSource>, out: &mut Vec<u8>) -> Read {
        match comfort.read_frame(0, out) {
            FrameRead::Ready => Read::Ready,
            _ => Read::Pending,
        }
    }

    /// Reads the frame at the current position into `out`, moving to the
    /// next item at an end and to `on_failure` at a failure.
    fn read(&mut self, out: &mut Vec<u8>) -> Read {
        if !self.is_prepared() {
            return Read::Pending;
        }
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

    /// Whether the programme to play is known (taking it over once its
    /// preparer has filled it).
    fn is_prepared(&mut self) -> bool {
        let Some(preparing) = &self.preparing else {
            return true;
        };
        match preparing.get() {
            Some(programme) => {
                self.programme = programme.clone();
                self.preparing = None;
                true
            }
            None => false,
        }
    }

    /// The SR sender info for `now` (RFC 3550 §6.4.1): the RTP timestamp
    /// is extrapolated from the next slot's and the time it is due.
    pub fn sender_info(&self, now: Instant, wall: NtpTimestamp) -> SenderInfo {
        let next = self.packetizer.next_timestamp();
        let ticks =
            |d: Duration| (d.as_nanos() * u128::from(self.clock_rate_hz) / 1_000_000_000) as u32;
        // The next slot's own time: while catching up it is sent later
        // than it is due, but its timestamp belongs to when it was due.
        let due = self.clock.map_or(self.next_wake, |clock| clock.due());
        let rtp_timestamp = if due >= now {
            next.wrapping_sub(ticks(due - now))
        } else {
            next.wrapping_add(ticks(now - due))
        };
        SenderInfo {
            ntp: wall,
            rtp_timestamp,
            packet_count: self.packetizer.packets_sent(),
            octet_count: self.packetizer.octets_sent(),
        }
    }
}

/// A staged programme as (what plays now, what it waits for).
fn split(staged: Staged) -> (Programme, Option<Preparing>) {
    match staged {
        Staged::Ready(programme) => (programme, None),
        Staged::Preparing(preparing) => (Programme::empty(), Some(preparing)),
    }
}

#[cfg(test)]
mod tests;

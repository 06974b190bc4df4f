//! One clock for many calls: sends the frames of each call's playlist as
//! RTP, packet k of a stream at t0 + k·20 ms (RFC 3550 §5.1 timing, RFC 3551
//! §4.1 marker), with a compound RTCP SR + SDES every ~5 s and a BYE at the
//! end (RFC 3550 §6.4.1, §6.6), following the caller's RTP source address
//! when it differs from the SDP one (symmetric RTP, RFC 4961).
//!
//! There is no task or thread per call. [`MediaEngine::start`] spawns a few
//! OS threads (`media-N`); each owns a set of streams and runs one loop: a
//! `mio::Poll` over its streams' sockets and a deadline-ordered heap of
//! next-send instants. Per packet the worker does one heap pop and push, one
//! frame copy, one `send_to`, no allocation. Commands arrive over a channel
//! with a `mio::Waker`.
//!
//! ```text
//!   MediaEngine::add ──► least-loaded worker ──► Playout (sans-IO)
//!        update/remove ─► routed by StreamId        │ handle_timeout(now)
//!                                                   ▼
//!                       worker loop: poll ▸ sleep ▸ send every packet due
//! ```
//!
//! The per-stream logic (clock, playlist position, hold, catch-up) is the
//! sans-IO [`playout::Playout`]; the worker only does I/O and bookkeeping.

mod batch;
mod icmp;
mod keys;
mod liveness;
mod playout;
mod source_lock;
mod stats;
#[cfg(test)]
mod tests;
mod worker;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

pub use keys::KeyListening;
pub use liveness::MediaTimeout;
pub use stats::{EngineStats, Lateness};

use super::Codec;
use super::ports::RtpSockets;
use super::rtp::PayloadType;
use super::track::{FrameRead, Playlist, Track};
use crate::media::dtmf::{Key, KeyChannel};
use worker::{Command, NewStream, WAKER};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u64);

/// Everything needed to start sending one call's media.
pub struct StreamSpec {
    pub id: StreamId,
    pub sockets: RtpSockets,
    pub remote_rtp: SocketAddr,
    pub remote_rtcp: SocketAddr,
    pub codec: Codec,
    pub payload_type: PayloadType,
    pub playlist: Playlist,
    /// False while the caller holds (`a=sendonly` from them, `inactive`).
    pub sending: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// The playlist (or its `on_failure` clip) has played out, or failed
    /// with nothing to fall back on; the stream is gone. Not sent after
    /// [`MediaEngine::remove`].
    Finished { id: StreamId },
    /// A steered stream's programme `tag` has played out (`failed`: an
    /// item failed and `on_failure` played instead). The stream stays,
    /// sending comfort frames, until told what next.
    Played {
        id: StreamId,
        tag: u32,
        failed: bool,
    },
    /// The caller pressed a key (each way it arrived is reported).
    Key {
        id: StreamId,
        key: Key,
        channel: KeyChannel,
    },
    /// The caller seems gone (see [`MediaTimeout`]); reported once. The
    /// stream stays until removed.
    Timeout { id: StreamId, reason: MediaTimeout },
}

/// A change to a steered stream's playback, applied at its next slot.
#[derive(Clone)]
pub enum Control {
    /// Stop what plays and play this instead.
    Play {
        tag: u32,
        programme: Staged,
    },
    /// Move by this many frames within the item playing (back if negative).
    SeekBy(i64),
    /// Back to the start of the item playing.
    Restart,
    Pause,
    Resume,
}

/// For a stream the call flow steers (see [`Control`]).
#[derive(Clone)]
pub struct Steering {
    /// The tag of the first programme, reported in [`MediaEvent::Played`].
    pub tag: u32,
    /// Sent while paused or between programmes.
    pub comfort: Arc<dyn FrameSource>,
}

/// The same silent frame for every slot: G.711 silence, or the Opus
/// 20 ms CELT silence frame (TOC 0xF8, as WebRTC stacks send).
pub struct Comfort {
    frame: Vec<u8>,
}

impl Comfort {
    pub fn new(codec: Codec) -> Comfort {
        let frame = match codec {
            // Both laws' codes for a zero sample.
            Codec::Pcmu => vec![0xff; codec.samples_per_frame() as usize],
            Codec::Pcma => vec![0xd5; codec.samples_per_frame() as usize],
            Codec::Opus => vec![0xf8, 0xff, 0xfe],
        };
        Comfort { frame }
    }
}

impl FrameSource for Comfort {
    fn read_frame(&self, _index: usize, out: &mut Vec<u8>) -> FrameRead {
        out.clear();
        out.extend_from_slice(&self.frame);
        FrameRead::Ready
    }
}

/// An item that can never play: its `on_failure` (the apology) plays and
/// the end is reported as failed, as for a file that breaks mid-way.
pub struct Unplayable;

impl FrameSource for Unplayable {
    fn read_frame(&self, _index: usize, _out: &mut Vec<u8>) -> FrameRead {
        FrameRead::Failed
    }
}

/// Where a stream's frames come from: [`Track`] in production, in-memory
/// frames in tests and benchmarks.
pub trait FrameSource: Send + Sync {
    /// Copies frame `index` into `out` (replacing its contents) when `Ready`.
    fn read_frame(&self, index: usize, out: &mut Vec<u8>) -> FrameRead;
}

impl FrameSource for Track {
    fn read_frame(&self, index: usize, out: &mut Vec<u8>) -> FrameRead {
        Track::read_frame(self, index, out)
    }
}

/// A playlist as the pacer plays it: items in order, then `on_failure` if
/// an item fails.
#[derive(Clone)]
pub struct Programme {
    pub items: Vec<Arc<dyn FrameSource>>,
    pub on_failure: Option<Arc<dyn FrameSource>>,
}

/// A programme someone else is preparing (files opened, speech rendered):
/// filled once, read by the stream's worker. Until it is filled the stream
/// waits for its first frame, or sends comfort frames between programmes,
/// so the thread that asked for it never waits for the disk or a decoder.
#[derive(Clone, Default)]
pub struct Preparing(Arc<OnceLock<Programme>>);

impl Preparing {
    pub fn new() -> Preparing {
        Preparing::default()
    }

    /// Hands over the finished programme; `false` if it was already filled.
    pub fn fill(&self, programme: Programme) -> bool {
        self.0.set(programme).is_ok()
    }

    pub fn get(&self) -> Option<&Programme> {
        self.0.get()
    }
}

/// What a stream is told to play: ready now, or still being prepared.
#[derive(Clone)]
pub enum Staged {
    Ready(Programme),
    Preparing(Preparing),
}

impl From<Programme> for Staged {
    fn from(programme: Programme) -> Staged {
        Staged::Ready(programme)
    }
}

impl Programme {
    /// Nothing to play: a steered stream sends comfort frames.
    pub fn empty() -> Programme {
        Programme {
            items: Vec::new(),
            on_failure: None,
        }
    }
}

impl From<Playlist> for Programme {
    fn from(playlist: Playlist) -> Self {
        Programme {
            items: playlist
                .items
                .into_iter()
                .map(|t| t as Arc<dyn FrameSource>)
                .collect(),
            on_failure: playlist.on_failure.map(|t| t as Arc<dyn FrameSource>),
        }
    }
}

/// A [`StreamSpec`] without its playlist, for [`MediaEngine::add_programme`].
pub struct StreamParams {
    pub id: StreamId,
    pub sockets: RtpSockets,
    pub remote_rtp: SocketAddr,
    pub remote_rtcp: SocketAddr,
    pub codec: Codec,
    pub payload_type: PayloadType,
    pub sending: bool,
    /// `Some` for a stream steered with [`MediaEngine::control`]; `None`
    /// plays the programme once and ends with [`MediaEvent::Finished`].
    pub steering: Option<Steering>,
    /// The caller's telephone-event payload type, if negotiated.
    pub telephone_event: Option<PayloadType>,
    /// Which ways to listen for the caller's keys.
    pub keys: KeyListening,
}

/// Tuning of the engine; [`Default`] is what production uses.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Worker threads; a handful serve thousands of calls.
    pub workers: usize,
    /// Mean RTCP report interval, randomised ±50 % (RFC 3550 §6.2: 5 s
    /// minimum for a sender; the randomisation keeps calls started together
    /// from reporting in lockstep).
    pub report_interval: Duration,
    /// How late a packet may be before the stream's clock is re-anchored
    /// instead of catching up: within it, late packets go out back to back
    /// (a receiver's jitter buffer absorbs 100 ms); beyond it, a burst would
    /// overflow that buffer, so the stream shifts later instead.
    pub catch_up_window: Duration,
    /// Held with nothing from the caller this long: [`MediaTimeout::Held`]
    /// (`[media] hold_timeout`).
    pub hold_timeout: Duration,
    /// ICMP errors and nothing from the caller this long:
    /// [`MediaTimeout::Unreachable`]. Far beyond any route flap.
    pub unreachable_timeout: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 1,
            report_interval: Duration::from_secs(5),
            catch_up_window: Duration::from_millis(100),
            hold_timeout: crate::config::DEFAULT_HOLD_TIMEOUT,
            unreachable_timeout: Duration::from_secs(30),
        }
    }
}

/// State shared between the engine handle and its workers.
/// Reads the engine's counters from anywhere; see [`MediaEngine::stats_reader`].
#[derive(Clone)]
pub struct StatsReader(Arc<Shared>);

impl StatsReader {
    pub fn stats(&self) -> EngineStats {
        let mut total = EngineStats::default();
        for worker in &self.0.workers {
            total.merge(&worker.snapshot());
        }
        total.workers = self.0.workers.len();
        total
    }
}

struct Shared {
    /// Which worker owns each stream, for `update` and `remove`. Workers
    /// drop their entries when a stream finishes by itself.
    routes: Mutex<HashMap<StreamId, usize>>,
    workers: Vec<Arc<stats::WorkerStats>>,
    config: EngineConfig,
}

impl Shared {
    fn routes(&self) -> std::sync::MutexGuard<'_, HashMap<StreamId, usize>> {
        // A panic elsewhere leaves the map consistent: entries are
        // inserted and removed whole.
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct WorkerHandle {
    commands: mpsc::Sender<Command>,
    waker: Arc<mio::Waker>,
    thread: Option<JoinHandle<()>>,
}

/// The handle to the media threads. Dropping it sends BYE for every stream
/// and joins the threads.
pub struct MediaEngine {
    workers: Vec<WorkerHandle>,
    shared: Arc<Shared>,
    events: tokio::sync::mpsc::UnboundedSender<MediaEvent>,
}

impl MediaEngine {
    pub fn start(
        workers: usize,
        events: tokio::sync::mpsc::UnboundedSender<MediaEvent>,
    ) -> std::io::Result<MediaEngine> {
        MediaEngine::start_with(
            EngineConfig {
                workers,
                ..EngineConfig::default()
            },
            events,
        )
    }

    pub fn start_with(
        config: EngineConfig,
        events: tokio::sync::mpsc::UnboundedSender<MediaEvent>,
    ) -> std::io::Result<MediaEngine> {
        let count = config.workers.max(1);
        let shared = Arc::new(Shared {
            routes: Mutex::new(HashMap::new()),
            workers: (0..count).map(|_| Arc::default()).collect(),
            config,
        });
        let mut engine = MediaEngine {
            workers: Vec::with_capacity(count),
            shared: shared.clone(),
            events: events.clone(),
        };
        for index in 0..count {
            let poll = mio::Poll::new()?;
            let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER)?);
            let (tx, rx) = mpsc::channel();
            let worker = worker::Worker::new(index, poll, rx, shared.clone(), events.clone());
            // On error `engine` drops here, stopping the workers started so far.
            let thread = std::thread::Builder::new()
                .name(format!("media-{index}"))
                .spawn(move || worker.run())?;
            engine.workers.push(WorkerHandle {
                commands: tx,
                waker,
                thread: Some(thread),
            });
        }
        Ok(engine)
    }

    /// Starts sending `spec.playlist`; the first packet goes out when its
    /// first frame is ready.
    pub fn add(&self, spec: StreamSpec) {
        let StreamSpec {
            id,
            sockets,
            remote_rtp,
            remote_rtcp,
            codec,
            payload_type,
            playlist,
            sending,
        } = spec;
        let params = StreamParams {
            id,
            sockets,
            remote_rtp,
            remote_rtcp,
            codec,
            payload_type,
            sending,
            steering: None,
            telephone_event: None,
            keys: KeyListening::default(),
        };
        self.add_programme(params, Programme::from(playlist));
    }

    /// [`MediaEngine::add`] for any [`FrameSource`]s.
    pub fn add_programme(&self, params: StreamParams, programme: impl Into<Staged>) {
        let programme = programme.into();
        let id = params.id;
        // A reused id would leave the old stream unreachable: stop it.
        if self.shared.routes().contains_key(&id) {
            tracing::warn!(stream = id.0, "stream id added twice; stopping the first");
            self.remove(id);
        }
        let index = self.least_loaded();
        // Count it now, not when the worker gets to it, so a burst of adds
        // spreads over the workers.
        self.shared.workers[index]
            .streams
            .fetch_add(1, Ordering::Relaxed);
        self.shared.routes().insert(id, index);
        let stream = NewStream { params, programme };
        if !self.send(index, Command::Add(Box::new(stream))) {
            self.shared.routes().remove(&id);
            self.shared.workers[index]
                .streams
                .fetch_sub(1, Ordering::Relaxed);
            // The caller waits for this to hang up; a dead worker must not
            // leave a silent call open.
            let _ = self.events.send(MediaEvent::Finished { id });
        }
    }

    /// Applies a re-INVITE: new remote addresses (which also drops a latched
    /// source) and hold (`sending == false`) or resume.
    pub fn update(
        &self,
        id: StreamId,
        remote_rtp: SocketAddr,
        remote_rtcp: SocketAddr,
        sending: bool,
    ) {
        let Some(index) = self.shared.routes().get(&id).copied() else {
            tracing::debug!(stream = id.0, "update for a stream that has ended");
            return;
        };
        self.send(
            index,
            Command::Update {
                id,
                remote_rtp,
                remote_rtcp,
                sending,
            },
        );
    }

    /// Steers a stream added with [`StreamParams::steering`].
    pub fn control(&self, id: StreamId, control: Control) {
        let Some(index) = self.shared.routes().get(&id).copied() else {
            tracing::debug!(stream = id.0, "control for a stream that has ended");
            return;
        };
        self.send(index, Command::Control { id, control });
    }

    /// Stops the stream within one loop turn and sends RTCP BYE. No
    /// `Finished` event follows.
    pub fn remove(&self, id: StreamId) {
        let Some(index) = self.shared.routes().remove(&id) else {
            return;
        };
        self.send(index, Command::Remove(id));
    }

    /// Counters and the send-lateness histogram, merged over the workers.
    pub fn stats(&self) -> EngineStats {
        let mut total = EngineStats::default();
        for worker in &self.shared.workers {
            total.merge(&worker.snapshot());
        }
        total.workers = self.shared.workers.len();
        total
    }

    /// A reader of [`MediaEngine::stats`] for another task (the admin
    /// listener), which must not hold the engine itself.
    pub fn stats_reader(&self) -> StatsReader {
        StatsReader(self.shared.clone())
    }

    fn least_loaded(&self) -> usize {
        self.shared
            .workers
            .iter()
            .enumerate()
            .min_by_key(|(_, w)| w.streams.load(Ordering::Relaxed))
            .map(|(i, _)| i)
            .expect("start_with spawns at least one worker")
    }

    /// Queues a command and wakes the worker; false if the worker is gone.
    fn send(&self, index: usize, command: Command) -> bool {
        let worker = &self.workers[index];
        if worker.commands.send(command).is_err() {
            tracing::error!(worker = index, "media worker has stopped");
            return false;
        }
        if let Err(e) = worker.waker.wake() {
            tracing::error!(worker = index, error = %e, "cannot wake media worker");
            return false;
        }
        true
    }
}

impl Drop for MediaEngine {
    fn drop(&mut self) {
        for index in 0..self.workers.len() {
            self.send(index, Command::Shutdown);
        }
        for worker in &mut self.workers {
            if let Some(thread) = worker.thread.take()
                && thread.join().is_err()
            {
                tracing::error!("a media worker panicked");
            }
        }
    }
}

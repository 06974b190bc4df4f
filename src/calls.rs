//! Each answered call's [`CallFlow`], joined to its media stream: keys and
//! programme ends from the media threads (and INFO keys from SIP) go into
//! the flow; what the flow asks for becomes media commands or a hang-up.
//!
//! Sans-IO like the endpoint: every input carries the time (`now` for
//! timers, the wall clock for the call log and the menu), and the outputs
//! are queues the driver empties: [`Calls::poll_media`] (streams to start
//! and steer), [`Calls::poll_preparation`] (audio to open and render, off
//! the SIP loop) and [`Calls::take_hang_ups`]. Nothing here reads a file,
//! decodes audio or waits: a programme is staged at once and its stream
//! waits for it (or sends comfort frames) while a preparation fills it.

// No clock reads or global randomness outside tests: `now` is an input
// (clippy.toml).
#![cfg_attr(not(test), deny(clippy::disallowed_methods))]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::call::flow::{CallFlow, FlowAction, FlowConfig, Outcome, Resume, Seek};
use crate::call::keys::KeyDeduplicator;
use crate::call::menu::Menu;
use crate::call::resume::{ResumeBook, Stopped};
use crate::call_log::caller::Presented;
use crate::call_log::record::{CallRecord, RecordBuilder};
use crate::config::DtmfConfig;
use crate::content::{Content, Preparation};
use crate::endpoint::{CallId, EndReason};
use crate::log_summary::{Limits, LogSummary, Verdict};
use crate::media::dtmf::{Key, KeyChannel};
use crate::media::pacer::{
    Comfort, Control, KeyListening, MediaEvent, MediaTimeout, Staged, Steering, StreamId,
    StreamParams,
};
use crate::media::ports::RtpSockets;
use crate::media::rtp::PayloadType;
use crate::media::{Codec, FRAME_DURATION};
use crate::observe::LineState;
use crate::sdp::Negotiated;

/// Key presses logged whole per call and minute; more are summarised.
const KEYS_LOGGED_PER_MINUTE: u32 = 30;
const KEY_PRESSED: &str = "caller pressed a key";

/// What the calls ask of the media engine, in order.
pub enum MediaCommand {
    /// Start the call's stream on the RTP port the endpoint reserved for
    /// it, playing `programme` first.
    Start {
        call: CallId,
        rtp_port: u16,
        stream: StreamPlan,
        programme: Staged,
    },
    /// Steer the call's stream.
    Control { call: CallId, control: Control },
}

/// A call's stream as negotiated, before its sockets are attached.
pub struct StreamPlan {
    pub remote_rtp: SocketAddr,
    pub remote_rtcp: SocketAddr,
    pub codec: Codec,
    pub payload_type: PayloadType,
    pub sending: bool,
    pub steering: Steering,
    pub telephone_event: Option<PayloadType>,
    pub keys: KeyListening,
}

impl StreamPlan {
    /// The engine's parameters for stream `id` on `sockets`.
    pub fn with_sockets(self, id: StreamId, sockets: RtpSockets) -> StreamParams {
        StreamParams {
            id,
            sockets,
            remote_rtp: self.remote_rtp,
            remote_rtcp: self.remote_rtcp,
            codec: self.codec,
            payload_type: self.payload_type,
            sending: self.sending,
            steering: Some(self.steering),
            telephone_event: self.telephone_event,
            keys: self.keys,
        }
    }
}

/// A call between its answer and its end.
struct Entry {
    flow: CallFlow,
    /// The codec the content is prepared in; fixed for the call.
    codec: Codec,
    /// The content as it was at the answer: a reload (SIGHUP) changes what
    /// the next caller hears, never the service this one chose.
    content: Arc<Content>,
    /// The first programme, staged before the 200 OK left.
    first: Option<(u32, Staged)>,
    keys: KeyDeduplicator,
    started: bool,
    /// The deadline queued in `timers` for this call, if any.
    armed: Option<Instant>,
    /// The line's own self-test: its plays are not counted.
    self_test: bool,
}

/// Who is calling, as far as the flows care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller<'a> {
    /// The From header, as the INVITE presented it.
    From(&'a str),
    /// The line's own self-test: not offered to carry on, not counted as a
    /// listen, not remembered.
    SelfTest,
}

/// The flows of every call, and when each wants waking.
pub struct Calls {
    entries: HashMap<CallId, Entry>,
    /// (deadline, call); stale entries are skipped when popped.
    timers: BinaryHeap<Reverse<(Instant, CallId)>>,
    flow_config: FlowConfig,
    dtmf: DtmfConfig,
    media: VecDeque<MediaCommand>,
    preparations: VecDeque<Preparation>,
    hang_ups: Vec<(CallId, EndReason)>,
    /// Key presses, logged a few a minute per call at most.
    key_log: LogSummary<CallId>,
    /// Each answered call's line for the call log, until its end is known
    /// (it outlives the flow: media stops before the end is reported).
    records: HashMap<CallId, RecordBuilder>,
    /// Where plays per service are counted, for the admin pages.
    observed: Option<Arc<LineState>>,
    /// Where callers stopped (`[line] resume`); `None` offers nothing.
    resume: Option<ResumeBook>,
}

impl Calls {
    pub fn new(flow_config: FlowConfig, dtmf: DtmfConfig) -> Calls {
        Calls {
            entries: HashMap::new(),
            timers: BinaryHeap::new(),
            flow_config,
            dtmf,
            media: VecDeque::new(),
            preparations: VecDeque::new(),
            hang_ups: Vec::new(),
            key_log: LogSummary::new(Limits::per_source(KEYS_LOGGED_PER_MINUTE)),
            records: HashMap::new(),
            observed: None,
            resume: None,
        }
    }

    /// New settings (a reload) for calls answered from now on; calls in
    /// progress keep the flow they started with.
    pub fn reconfigure(&mut self, flow_config: FlowConfig, dtmf: DtmfConfig) {
        self.flow_config = flow_config;
        self.dtmf = dtmf;
    }

    /// Counts each service that starts playing in `state`.
    pub fn with_observer(mut self, state: Arc<LineState>) -> Calls {
        self.observed = Some(state);
        self
    }

    /// The call is about to be answered with `codec` at `now` (`wall` on
    /// the wall clock) for `caller`: fix its menu and stage its first
    /// programme (the offer to carry on, the greeting and menu, or the
    /// apology).
    pub fn prepare(
        &mut self,
        call: CallId,
        codec: Codec,
        caller: Caller<'_>,
        content: &Arc<Content>,
        now: Instant,
        wall: DateTime<Utc>,
    ) {
        let record = self
            .records
            .entry(call)
            .or_insert_with(|| RecordBuilder::new(wall, now, codec));
        match caller {
            Caller::From(from) => record.handle_caller(from),
            Caller::SelfTest => record.mark_self_test(),
        }
        self.stage_first(call, codec, content, now, wall);
    }

    /// Fixes the call's menu and stages its first programme in `codec`.
    fn stage_first(
        &mut self,
        call: CallId,
        codec: Codec,
        content: &Arc<Content>,
        now: Instant,
        wall: DateTime<Utc>,
    ) {
        let menu = content.menu(wall);
        let record = self
            .records
            .entry(call)
            .or_insert_with(|| RecordBuilder::new(wall, now, codec));
        let self_test = record.is_self_test();
        let resume = match (&self.resume, &menu) {
            (Some(book), Some(menu)) if !self_test => book
                .lookup(record.caller(), wall)
                .and_then(|stopped| resume_on(menu, stopped)),
            _ => None,
        };
        if let Some(resume) = resume {
            tracing::info!(%call, minutes = resume.at.as_secs() / 60, "offering to carry on where the caller stopped");
        }
        let mut flow = CallFlow::offering(menu, self.flow_config.clone(), resume);
        let mut first = None;
        while let Some(action) = flow.poll_action() {
            match action {
                FlowAction::Play { tag, programme } => {
                    record.handle_play(tag, &programme, now);
                    // The greeting follows every answer: "call answered"
                    // already says it (a line per call, not two).
                    tracing::debug!(%call, tag, "playing {}", programme.label());
                    let (staged, preparation) = content.stage(programme, codec);
                    self.preparations.push_back(preparation);
                    first = Some((tag, staged));
                }
                other => {
                    tracing::debug!(%call, action = other.name(), "flow action before media; ignored")
                }
            }
        }
        self.entries.insert(
            call,
            Entry {
                flow,
                codec,
                content: content.clone(),
                first,
                keys: KeyDeduplicator::default(),
                started: false,
                armed: None,
                self_test,
            },
        );
    }

    /// The ACK has come: start the stream on `rtp_port` with the staged
    /// programme (staged again if the codec changed or it never was).
    pub fn start(
        &mut self,
        call: CallId,
        rtp_port: u16,
        media: &Negotiated,
        content: &Arc<Content>,
        now: Instant,
        wall: DateTime<Utc>,
    ) {
        if self
            .entries
            .get(&call)
            .is_none_or(|e| e.codec != media.codec)
        {
            self.stage_first(call, media.codec, content, now, wall);
        }
        let Some(entry) = self.entries.get_mut(&call) else {
            return;
        };
        let (tag, programme) = entry
            .first
            .take()
            .unwrap_or_else(|| (0, Staged::Ready(crate::media::pacer::Programme::empty())));
        entry.started = true;
        let unspecified = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 9);
        let remote_rtp = media.remote_rtp.unwrap_or(unspecified);
        let remote_rtcp = media
            .remote_rtcp
            .unwrap_or_else(|| SocketAddr::new(remote_rtp.ip(), remote_rtp.port().wrapping_add(1)));
        let stream = StreamPlan {
            remote_rtp,
            remote_rtcp,
            codec: media.codec,
            payload_type: media.payload_type,
            sending: media.local_direction.sends() && media.remote_rtp.is_some(),
            steering: Steering {
                tag,
                comfort: Arc::new(Comfort::new(media.codec)),
            },
            telephone_event: media.telephone_event,
            keys: KeyListening {
                rfc4733: self.dtmf.rfc4733,
                inband: self.dtmf.inband && (media.codec != Codec::Opus || self.dtmf.inband_opus),
            },
        };
        self.media.push_back(MediaCommand::Start {
            call,
            rtp_port,
            stream,
            programme,
        });
        // Anything the flow queued meanwhile (nothing, normally).
        self.drain(call, now, wall);
    }

    /// The call is over: forget its flow (its record stays for
    /// [`Calls::finish_record`]).
    pub fn stop(&mut self, call: CallId) {
        self.entries.remove(&call);
    }

    /// The caller's From header, for the call log.
    pub fn note_caller(&mut self, call: CallId, from: &str) {
        if let Some(record) = self.records.get_mut(&call) {
            record.handle_caller(from);
        }
    }

    /// The call ended for `reason`: its call-log record and the caller as
    /// presented (`None` for a call never answered). Where the caller
    /// stopped is noted for carrying on next time.
    pub fn finish_record(
        &mut self,
        call: CallId,
        reason: EndReason,
        content: &Content,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Option<(CallRecord, Presented)> {
        let record = self.records.remove(&call)?;
        if let Some(book) = self.resume.as_mut().filter(|_| !record.is_self_test()) {
            let listened = record.listened(now);
            let length = listened
                .as_ref()
                .and_then(|l| content.service_length(&l.file));
            book.handle_call_end(record.caller(), listened, length, wall);
        }
        Some(record.finish(reason, now))
    }

    /// Offers callers to carry on where they stopped, from `book`.
    pub fn with_resume(mut self, book: ResumeBook) -> Calls {
        self.resume = Some(book);
        self
    }

    /// The book of where callers stopped, when it changed since last
    /// asked: the driver writes it off the loop.
    pub fn take_resume_changes(&mut self) -> Option<HashMap<String, Stopped>> {
        self.resume.as_mut()?.take_changes()
    }

    /// A key sent in a SIP INFO.
    pub fn handle_info_key(&mut self, call: CallId, key: Key, now: Instant, wall: DateTime<Utc>) {
        if self.dtmf.info {
            self.handle_key(call, key, KeyChannel::SipInfo, now, wall);
        } else {
            tracing::debug!(%call, key = %key.as_char(), "INFO key ignored: [dtmf] methods leaves out info");
        }
    }

    pub fn handle_media_event(&mut self, event: MediaEvent, now: Instant, wall: DateTime<Utc>) {
        match event {
            MediaEvent::Finished { id } => {
                // The stream could not start or its worker stopped: the
                // call cannot go on.
                self.entries.remove(&CallId(id.0));
                self.hang_ups.push((CallId(id.0), EndReason::MediaFailed));
            }
            MediaEvent::Played { id, tag, failed } => {
                let call = CallId(id.0);
                let Some(entry) = self.entries.get_mut(&call) else {
                    return;
                };
                let outcome = if failed {
                    Outcome::Failed
                } else {
                    Outcome::Completed
                };
                entry.flow.handle_played(tag, outcome, now);
                if let Some(record) = self.records.get_mut(&call) {
                    record.handle_played(tag, outcome, now);
                }
                self.drain(call, now, wall);
            }
            MediaEvent::Key { id, key, channel } => {
                self.handle_key(CallId(id.0), key, channel, now, wall)
            }
            MediaEvent::Timeout { id, reason } => {
                let reason = match reason {
                    MediaTimeout::Held => EndReason::HoldTimeout,
                    MediaTimeout::Unreachable => EndReason::MediaUnreachable,
                };
                self.hang_ups.push((CallId(id.0), reason));
            }
        }
    }

    fn handle_key(
        &mut self,
        call: CallId,
        key: Key,
        channel: KeyChannel,
        now: Instant,
        wall: DateTime<Utc>,
    ) {
        let Some(entry) = self.entries.get_mut(&call) else {
            return;
        };
        let Some(key) = entry.keys.handle_key(key, channel, now) else {
            tracing::debug!(%call, key = %key.as_char(), via = channel.name(), "same press another way; counted once");
            return;
        };
        if self.key_log.note(KEY_PRESSED, call, now) == Verdict::Log {
            tracing::info!(%call, key = %key.as_char(), via = channel.name(), "{KEY_PRESSED}");
        }
        if let Some(record) = self.records.get_mut(&call) {
            record.handle_key(key);
        }
        entry.flow.handle_key(key, now);
        self.drain(call, now, wall);
    }

    /// When [`Calls::handle_timeout`] wants to run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let flow = self.timers.peek().map(|Reverse((at, _))| *at);
        match (flow, self.key_log.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant, wall: DateTime<Utc>) {
        for summary in self.key_log.poll_summaries(now) {
            tracing::info!("{summary}");
        }
        while let Some(&Reverse((at, call))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(entry) = self.entries.get_mut(&call) else {
                continue;
            };
            if entry.armed != Some(at) {
                continue; // superseded by a later arming
            }
            entry.armed = None;
            entry.flow.handle_timeout(now);
            self.drain(call, now, wall);
        }
    }

    /// The next command for the media engine.
    pub fn poll_media(&mut self) -> Option<MediaCommand> {
        self.media.pop_front()
    }

    /// The next programme to open and render, off the SIP loop: its stream
    /// waits for it.
    pub fn poll_preparation(&mut self) -> Option<Preparation> {
        self.preparations.pop_front()
    }

    /// Calls whose flow or media has ended them, and why, for the endpoint
    /// to hang up.
    pub fn take_hang_ups(&mut self) -> Vec<(CallId, EndReason)> {
        std::mem::take(&mut self.hang_ups)
    }

    /// Queues what the flow asked for, and re-arms its timer.
    fn drain(&mut self, call: CallId, now: Instant, wall: DateTime<Utc>) {
        let Some(entry) = self.entries.get_mut(&call) else {
            return;
        };
        let mut record = self.records.get_mut(&call);
        while let Some(action) = entry.flow.poll_action() {
            if let Some(record) = record.as_deref_mut() {
                match &action {
                    FlowAction::Play { tag, programme } => record.handle_play(*tag, programme, now),
                    FlowAction::Pause => record.handle_pause(now),
                    FlowAction::Resume => record.handle_resume(now),
                    _ => {}
                }
            }
            if let (Some(record), FlowAction::Seek(seek)) = (record.as_deref_mut(), &action) {
                record.handle_seek(*seek, now);
            }
            let control = match action {
                FlowAction::Play { tag, programme } => {
                    if let (Some(state), Some(service), false) =
                        (&self.observed, programme.service(), entry.self_test)
                    {
                        state.service_played(service, wall);
                    }
                    tracing::info!(%call, tag, "playing {}", programme.label());
                    let (staged, preparation) = entry.content.stage(programme, entry.codec);
                    self.preparations.push_back(preparation);
                    if !entry.started {
                        // Before the ACK: this is what the stream starts with.
                        entry.first = Some((tag, staged));
                        continue;
                    }
                    Control::Play {
                        tag,
                        programme: staged,
                    }
                }
                FlowAction::Seek(Seek::Back(by)) => Control::SeekBy(-frames(by)),
                FlowAction::Seek(Seek::Forward(by)) => Control::SeekBy(frames(by)),
                FlowAction::Seek(Seek::Start) => Control::Restart,
                FlowAction::Pause => Control::Pause,
                FlowAction::Resume => Control::Resume,
                FlowAction::HangUp => {
                    self.hang_ups.push((call, EndReason::ContentFinished));
                    continue;
                }
            };
            if entry.started {
                self.media
                    .push_back(MediaCommand::Control { call, control });
            }
        }
        let wake = entry.flow.poll_timeout();
        if wake != entry.armed {
            entry.armed = wake;
            if let Some(at) = wake {
                self.timers.push(Reverse((at, call)));
                self.forget_stale_timers();
            }
        }
    }

    /// Superseded and ended calls' deadlines stay queued until they pass:
    /// a caller pressing 5 again and again (pause, resume) would queue five
    /// minutes' worth. Past twice the live ones, the queue is rebuilt from
    /// them (amortised O(1) a push).
    fn forget_stale_timers(&mut self) {
        if self.timers.len() <= 2 * self.entries.len() + STALE_TIMERS_KEPT {
            return;
        }
        self.timers = self
            .entries
            .iter()
            .filter_map(|(call, entry)| entry.armed.map(|at| Reverse((at, *call))))
            .collect();
    }
}

/// Stale deadlines tolerated before the queue is rebuilt, whatever the calls.
const STALE_TIMERS_KEPT: usize = 64;

/// Whole 20 ms frames in `duration`.
fn frames(duration: std::time::Duration) -> i64 {
    (duration.as_nanos() / FRAME_DURATION.as_nanos()) as i64
}

/// Where to carry on for a caller who stopped in `stopped`, if that
/// service is still on `menu`.
fn resume_on(menu: &Menu, stopped: &Stopped) -> Option<Resume> {
    let index = menu.items.iter().position(|item| {
        item.service.file == stopped.file && item.service.datetime == stopped.date
    })?;
    Some(Resume {
        index,
        at: stopped.position(),
    })
}

#[cfg(test)]
mod tests;

//! A [`Track`] is one audio source encoded once in one codec: its 20 ms RTP
//! payloads, shared (`Arc`) by every call that plays it. [`TrackCache`] opens
//! files into tracks: it decodes the first second before returning (so a
//! missing, garbage or unsupported file fails at once and the first packet
//! can leave immediately), then a named background thread decodes, resamples
//! and encodes the rest, appending as it goes, well ahead of playback.
//!
//! Readers are the pacer's real-time threads, thousands of calls per 20 ms:
//! [`Track::read_frame`] takes a read lock only to copy one payload into the
//! caller's buffer (no allocation once the buffer has grown). Frames are
//! stored compactly in chunks of one second (contiguous bytes + end offsets);
//! a chunk is immutable once published, so the writer holds the write lock
//! only to push a finished chunk — never while decoding.
//!
//! ```text
//! open ─▶ Decoding ──(last frame)──▶ Complete
//!            └──────(decode error)──▶ Failed(error)   frames before it stay readable
//! ```

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, RwLockReadGuard, Weak};
use std::time::{Duration, SystemTime};

use super::decode::{DecodeError, Decoder};
use super::encode::encoder_for;
use super::level::memory::LoudnessMemory;
use super::level::{LevelReport, LoudnessSettings};
use super::resample::resample_clip;
use super::{Codec, FRAME_DURATION};

use pipeline::{Levelling, Pipeline};

mod pipeline;

/// Frames per stored chunk (1 s). Also how many frames `TrackCache::open`
/// makes before returning, so the first chunk is readable at once.
const FRAMES_PER_CHUNK: usize = 50;

/// What [`Track::read_frame`] found at an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameRead {
    /// The payload was copied into `out`.
    Ready,
    /// Not decoded yet; ask again at the next tick.
    Pending,
    /// Past the last frame of a complete track.
    End,
    /// The source failed before this frame: play the apology instead.
    Failed,
}

/// Where a track's decoding stands.
#[derive(Debug, Clone)]
pub enum TrackStatus {
    Decoding {
        frames: usize,
    },
    Complete {
        frames: usize,
    },
    Failed {
        frames: usize,
        error: Arc<DecodeError>,
    },
}

/// One second of payloads: frame `i` is `bytes[ends[i-1]..ends[i]]`.
struct Chunk {
    bytes: Box<[u8]>,
    ends: Box<[u32]>,
}

enum State {
    Decoding,
    Complete,
    Failed(Arc<DecodeError>),
}

struct Frames {
    /// Every chunk holds `FRAMES_PER_CHUNK` frames, except the last one of a
    /// finished (complete or failed) track.
    chunks: Vec<Chunk>,
    count: usize,
    state: State,
}

/// The encoded frames of one source in one codec.
pub struct Track {
    codec: Codec,
    label: String,
    /// Length in frames the container declared, for `duration()` while decoding.
    declared_frames: Option<usize>,
    frames: RwLock<Frames>,
    /// The gain followed the meter (loudness unknown at open): the cache
    /// replaces such a track, once measured, when no call holds it.
    adaptive_gain: bool,
    /// What levelling did, once decoding has ended.
    level: OnceLock<LevelReport>,
}

impl std::fmt::Debug for Track {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Track")
            .field("label", &self.label)
            .field("codec", &self.codec)
            .field("status", &self.status())
            .finish()
    }
}

impl Track {
    fn new(codec: Codec, label: &str, declared_frames: Option<usize>) -> Track {
        Track {
            codec,
            label: label.to_string(),
            declared_frames,
            adaptive_gain: false,
            level: OnceLock::new(),
            frames: RwLock::new(Frames {
                chunks: Vec::new(),
                count: 0,
                state: State::Decoding,
            }),
        }
    }

    /// A finished track from ready-made payloads (one per 20 ms frame).
    pub fn complete(codec: Codec, label: &str, frames: Vec<Vec<u8>>) -> Arc<Track> {
        let track = Track::new(codec, label, Some(frames.len()));
        let mut writer = ChunkWriter::default();
        for frame in &frames {
            if let Some(chunk) = writer.push(frame) {
                track.publish(chunk);
            }
        }
        track.finish(writer.take(), State::Complete);
        Arc::new(track)
    }

    /// Resamples and encodes a whole clip held in memory (the built-in tone
    /// pattern, tests). The last frame is padded with silence.
    pub fn from_pcm(
        codec: Codec,
        label: &str,
        samples: &[f32],
        rate_hz: u32,
    ) -> Result<Arc<Track>, DecodeError> {
        let pcm = resample_clip(samples, rate_hz, codec.sample_rate_hz()).map_err(|e| {
            DecodeError::Unsupported {
                path: PathBuf::from(label),
                reason: e.to_string(),
            }
        })?;
        let encode_error = |source| DecodeError::Encode {
            path: PathBuf::from(label),
            source,
        };
        let mut encoder = encoder_for(codec).map_err(encode_error)?;
        let mut frames = Vec::with_capacity(pcm.len() / codec.samples_per_frame() as usize);
        for frame in pcm.chunks_exact(codec.samples_per_frame() as usize) {
            let mut payload = Vec::new();
            encoder.encode(frame, &mut payload).map_err(encode_error)?;
            frames.push(payload);
        }
        Ok(Track::complete(codec, label, frames))
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The file or name the track was made from (for logs).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Copies frame `index` into `out` (replacing its contents) if it is
    /// ready. Never blocks on the decoder; allocation-free once `out` has
    /// grown to the largest payload.
    pub fn read_frame(&self, index: usize, out: &mut Vec<u8>) -> FrameRead {
        let frames = self.read();
        if index < frames.count {
            let chunk = &frames.chunks[index / FRAMES_PER_CHUNK];
            let i = index % FRAMES_PER_CHUNK;
            let start = if i == 0 {
                0
            } else {
                chunk.ends[i - 1] as usize
            };
            let end = chunk.ends[i] as usize;
            out.clear();
            out.extend_from_slice(&chunk.bytes[start..end]);
            return FrameRead::Ready;
        }
        match frames.state {
            State::Decoding => FrameRead::Pending,
            State::Complete => FrameRead::End,
            State::Failed(_) => FrameRead::Failed,
        }
    }

    /// What levelling did to a file's track, once it is decoded to the
    /// end (or failed); `None` before, and for tracks made from PCM.
    pub fn level(&self) -> Option<LevelReport> {
        self.level.get().copied()
    }

    /// Frames readable now.
    pub fn frames_available(&self) -> usize {
        self.read().count
    }

    pub fn status(&self) -> TrackStatus {
        let frames = self.read();
        match &frames.state {
            State::Decoding => TrackStatus::Decoding {
                frames: frames.count,
            },
            State::Complete => TrackStatus::Complete {
                frames: frames.count,
            },
            State::Failed(error) => TrackStatus::Failed {
                frames: frames.count,
                error: Arc::clone(error),
            },
        }
    }

    /// The playing time: exact once complete, the container's declared length
    /// while decoding, `None` if neither is known.
    pub fn duration(&self) -> Option<Duration> {
        let frames = self.read();
        let count = match frames.state {
            State::Complete => Some(frames.count),
            State::Decoding => self.declared_frames,
            State::Failed(_) => None,
        }?;
        Some(FRAME_DURATION * u32::try_from(count).ok()?)
    }

    fn read(&self) -> RwLockReadGuard<'_, Frames> {
        // Chunks are pushed whole, so the data is consistent even if a
        // writer panicked while holding the lock.
        self.frames.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, chunk: Chunk) {
        let mut frames = self.frames.write().unwrap_or_else(PoisonError::into_inner);
        frames.count += chunk.ends.len();
        frames.chunks.push(chunk);
    }

    fn finish(&self, last: Option<Chunk>, state: State) {
        let mut frames = self.frames.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(chunk) = last {
            frames.count += chunk.ends.len();
            frames.chunks.push(chunk);
        }
        frames.state = state;
    }
}

/// Collects payloads into chunks outside the track's lock.
#[derive(Default)]
struct ChunkWriter {
    bytes: Vec<u8>,
    ends: Vec<u32>,
}

impl ChunkWriter {
    /// Adds one payload; returns the chunk once it is full.
    fn push(&mut self, payload: &[u8]) -> Option<Chunk> {
        self.bytes.extend_from_slice(payload);
        // A chunk holds 50 payloads of at most 1500 bytes: far below u32::MAX.
        self.ends.push(self.bytes.len() as u32);
        (self.ends.len() == FRAMES_PER_CHUNK)
            .then(|| self.take().expect("invariant: chunk is full"))
    }

    /// The partial chunk, if any frames are pending.
    fn take(&mut self) -> Option<Chunk> {
        if self.ends.is_empty() {
            return None;
        }
        Some(Chunk {
            bytes: std::mem::take(&mut self.bytes).into_boxed_slice(),
            ends: std::mem::take(&mut self.ends).into_boxed_slice(),
        })
    }
}

/// Decodes the first chunk now and the rest on a background thread.
fn start_track(
    decoder: Decoder,
    codec: Codec,
    levelling: Levelling<LoudnessKey>,
) -> Result<Arc<Track>, DecodeError> {
    let path = decoder.path().to_path_buf();
    let label = path.display().to_string();
    let declared = decoder.frames_expected().map(|n| {
        let frames = u128::from(n) * 50 / u128::from(decoder.sample_rate_hz().max(1));
        usize::try_from(frames).unwrap_or(usize::MAX)
    });
    let adaptive_gain = levelling.known.is_none();
    let mut pipeline = Pipeline::new(decoder, codec, levelling)?;
    let mut track = Track::new(codec, &label, declared);
    track.adaptive_gain = adaptive_gain;
    let track = Arc::new(track);
    let mut writer = ChunkWriter::default();
    for _ in 0..FRAMES_PER_CHUNK {
        if !pipeline.next_frame()? {
            let _ = track.level.set(pipeline.level_report());
            track.finish(writer.take(), State::Complete);
            return Ok(track);
        }
        if let Some(chunk) = writer.push(&pipeline.payload) {
            track.publish(chunk);
        }
    }
    let weak = Arc::downgrade(&track);
    let name = format!(
        "decode {}",
        path.file_name()
            .map_or_else(|| label.clone(), |n| n.to_string_lossy().into_owned())
    );
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            // Behind the calls' own work: see `media::priority`.
            super::priority::lower_this_thread();
            decode_rest(pipeline, weak)
        })
        .map_err(|source| DecodeError::Spawn { path, source })?;
    Ok(track)
}

/// The background half: runs until the end, a failure, or until nobody
/// holds the track any more (evicted from the cache, no call playing it).
fn decode_rest(mut pipeline: Pipeline<LoudnessKey>, track: Weak<Track>) {
    let mut writer = ChunkWriter::default();
    let path = pipeline.decoder.path().to_path_buf();
    loop {
        match without_panics(&path, || pipeline.next_frame()) {
            Ok(true) => {
                if let Some(chunk) = writer.push(&pipeline.payload) {
                    let Some(track) = track.upgrade() else {
                        tracing::debug!(file = %pipeline.decoder.path().display(), "track dropped, decoding stops");
                        return;
                    };
                    track.publish(chunk);
                }
            }
            Ok(false) => {
                if let Some(track) = track.upgrade() {
                    let _ = track.level.set(pipeline.level_report());
                    track.finish(writer.take(), State::Complete);
                }
                return;
            }
            Err(error) => {
                tracing::warn!(
                    file = %error.path().display(),
                    code = error.code(),
                    reason = %error,
                    "audio failed while decoding; calls reaching this point get the apology"
                );
                if let Some(track) = track.upgrade() {
                    let _ = track.level.set(pipeline.level_report());
                    track.finish(writer.take(), State::Failed(Arc::new(error)));
                }
                return;
            }
        }
    }
}

/// Runs decoding work, turning a panic inside a decoder library (hostile
/// input has crashed demuxers before) into a `Corrupt` error for this file
/// instead of taking down the caller or leaving a track "decoding" forever.
fn without_panics<T>(
    path: &Path,
    work: impl FnOnce() -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|_| {
        Err(DecodeError::Corrupt {
            path: path.to_path_buf(),
            reason: "the decoder crashed on this file".into(),
            frames_decoded: 0,
        })
    })
}

/// Plays `items` in order; when one reports `Failed`, jump to `on_failure`.
#[derive(Clone)]
pub struct Playlist {
    pub items: Vec<Arc<Track>>,
    pub on_failure: Option<Arc<Track>>,
}

/// What a cached track was made from: a replaced file (other length or
/// modification time) is a new source.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum SourceId {
    File {
        path: PathBuf,
        len: u64,
        modified: Option<SystemTime>,
    },
    Bytes {
        label: String,
        len: u64,
        hash: u64,
    },
}

/// A source's loudness is remembered per rate it was measured at.
type LoudnessKey = (SourceId, u32);

type Slot = Arc<OnceLock<Result<Arc<Track>, DecodeError>>>;

struct Entry {
    /// Set once by the first opener; concurrent openers of the same key wait
    /// on it instead of decoding twice.
    slot: Slot,
    last_used: u64,
}

#[derive(Default)]
struct CacheInner {
    entries: HashMap<(SourceId, Codec), Entry>,
    clock: u64,
}

/// Tracks by (source, codec), shared by every call; failures are remembered
/// too, so a broken file is not decoded again until it changes.
pub struct TrackCache {
    capacity: usize,
    inner: Mutex<CacheInner>,
    loudness: LoudnessSettings,
    /// Filled by tracks decoded to the end; read when opening.
    measured: Arc<LoudnessMemory<LoudnessKey>>,
}

impl TrackCache {
    /// Keeps at most `capacity` tracks, beyond which the least recently used
    /// ones that no call holds are dropped.
    pub fn new(capacity: usize) -> Self {
        TrackCache {
            capacity,
            inner: Mutex::new(CacheInner::default()),
            loudness: LoudnessSettings::default(),
            measured: Arc::default(),
        }
    }

    /// Levels tracks opened from now on to `loudness` (`[audio]`).
    pub fn set_loudness(&mut self, loudness: LoudnessSettings) {
        self.loudness = loudness;
    }

    /// The shared track for `path` in `codec`, decoding the file if needed.
    /// Errors here are fast: missing, unreadable, unknown or broken at the
    /// start. Later trouble shows as the track's `Failed` status.
    pub fn open(&self, path: &Path, codec: Codec) -> Result<Arc<Track>, DecodeError> {
        let open_error = |source| DecodeError::Open {
            path: path.to_path_buf(),
            source,
        };
        let canonical = std::fs::canonicalize(path).map_err(open_error)?;
        let meta = std::fs::metadata(&canonical).map_err(open_error)?;
        if !meta.is_file() {
            return Err(open_error(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file",
            )));
        }
        let id = SourceId::File {
            path: canonical,
            len: meta.len(),
            modified: meta.modified().ok(),
        };
        let levelling = self.levelling(&id, codec);
        self.get_or_open((id, codec), || {
            without_panics(path, || start_track(Decoder::open(path)?, codec, levelling))
        })
    }

    /// The shared track for an in-memory file (e.g. a download) named
    /// `label`; the content itself is part of the key.
    pub fn open_bytes(
        &self,
        label: &str,
        bytes: Vec<u8>,
        extension_hint: Option<&str>,
        codec: Codec,
    ) -> Result<Arc<Track>, DecodeError> {
        let mut hasher = DefaultHasher::new();
        bytes.hash(&mut hasher);
        let id = SourceId::Bytes {
            label: label.to_string(),
            len: bytes.len() as u64,
            hash: hasher.finish(),
        };
        let levelling = self.levelling(&id, codec);
        self.get_or_open((id, codec), || {
            without_panics(Path::new(label), || {
                start_track(
                    Decoder::from_bytes(label, bytes, extension_hint)?,
                    codec,
                    levelling,
                )
            })
        })
    }

    /// The track for `path` if some codec's is already open (no decoding):
    /// what the line knows of a file's length without reading it.
    pub fn peek(&self, path: &Path) -> Option<Arc<Track>> {
        let canonical = std::fs::canonicalize(path).ok()?;
        let inner = self.lock();
        inner.entries.iter().find_map(|((id, _), entry)| match id {
            SourceId::File { path, .. } if *path == canonical => entry.slot.get()?.clone().ok(),
            _ => None,
        })
    }

    /// Tracks (and remembered failures) held now.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How a track of `id` in `codec` is levelled. When the source has been
    /// measured since its cached track was opened with an adaptive gain,
    /// and no call is playing that track, it is dropped here so this open
    /// makes one with the static gain (the next caller hears the whole
    /// service at one gain).
    fn levelling(&self, id: &SourceId, codec: Codec) -> Levelling<LoudnessKey> {
        let key = (id.clone(), codec.sample_rate_hz());
        let known = self.measured.get(&key);
        if known.is_some() {
            let mut inner = self.lock();
            let cache_key = (id.clone(), codec);
            let stale = inner.entries.get(&cache_key).is_some_and(|entry| {
                matches!(entry.slot.get(), Some(Ok(track))
                    if track.adaptive_gain && Arc::strong_count(track) == 1)
            });
            if stale {
                inner.entries.remove(&cache_key);
            }
        }
        Levelling {
            settings: self.loudness,
            known,
            memory: Arc::clone(&self.measured),
            key,
        }
    }

    fn get_or_open(
        &self,
        key: (SourceId, Codec),
        open: impl FnOnce() -> Result<Arc<Track>, DecodeError>,
    ) -> Result<Arc<Track>, DecodeError> {
        let slot = {
            let mut inner = self.lock();
            inner.clock += 1;
            let now = inner.clock;
            let entry = inner.entries.entry(key.clone()).or_insert_with(|| Entry {
                slot: Slot::default(),
                last_used: now,
            });
            entry.last_used = now;
            Arc::clone(&entry.slot)
        };
        // Outside the cache lock: opening other files is not held up.
        let result = slot.get_or_init(open).clone();
        let mut inner = self.lock();
        if let Err(e) = &result {
            // Read and thread errors may pass; content errors stay until
            // the file changes.
            if matches!(e, DecodeError::Read { .. } | DecodeError::Spawn { .. })
                && inner
                    .entries
                    .get(&key)
                    .is_some_and(|e| Arc::ptr_eq(&e.slot, &slot))
            {
                inner.entries.remove(&key);
            }
        }
        self.evict(&mut inner);
        result
    }

    /// Drops least-recently-used entries beyond capacity that nobody holds.
    fn evict(&self, inner: &mut CacheInner) {
        while inner.entries.len() > self.capacity {
            let victim = inner
                .entries
                .iter()
                .filter(|(_, e)| match e.slot.get() {
                    None => false,
                    Some(Err(_)) => true,
                    Some(Ok(track)) => Arc::strong_count(track) == 1,
                })
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone());
            let Some(victim) = victim else {
                break;
            };
            inner.entries.remove(&victim);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests;

//! Opens an audio file (MP3, M4A/AAC, FLAC, Ogg Vorbis, Ogg Opus, WAV) with
//! symphonia 0.6 and yields its samples mixed down to mono f32, one packet at
//! a time, so decoding can run just ahead of playback.
//!
//! Errors are content trouble, never panics: each carries the file and a
//! stable [`DecodeError::code`]; the caller plays the apology clip. Like a
//! media player, a single undecodable packet is skipped (symphonia's contract
//! for `DecodeError`), but a run of them means the file is corrupt. A file
//! that ends early — an unexpected end of file, or clearly fewer frames than
//! the container declared — is `Truncated`, never silently "complete".
//!
//! Known gap: symphonia's MP4 reader ignores edit lists, so M4A/AAC keeps
//! the encoder's priming (~23 ms of silence at the start) and padding.
//!
//! Ogg Opus: symphonia demuxes it and [`super::opus_file`] decodes it with
//! libopus (RFC 7845).

use std::io;
use std::path::{Path, PathBuf};

use symphonia::core::codecs::audio::well_known::CODEC_ID_OPUS;
use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::packet::Packet;

use super::encode::EncodeError;
use super::opus_file::{OpusHead, OpusPacketDecoder};

/// Consecutive undecodable packets tolerated before the file counts as
/// corrupt. Players skip the odd bad frame; dozens in a row (≈ 0.5–1 s of
/// audio) is a damaged or mislabelled file.
const MAX_CONSECUTIVE_ERRORS: u32 = 30;

/// How far (in seconds of audio) the decoded length may fall short of the
/// container's declared length before the file counts as truncated. Encoder
/// delay and padding differ by a few thousand frames at most (AAC: 2048).
const TRUNCATION_MARGIN_SECONDS: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Unknown container, no audio track, or a codec we cannot decode.
    #[error("unsupported audio in {path}: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    #[error("corrupt audio in {path} after {frames_decoded} frames: {reason}")]
    Corrupt {
        path: PathBuf,
        reason: String,
        frames_decoded: u64,
    },
    #[error("{path} ends early: {frames_decoded} frames decoded{}", expected_suffix(*.frames_expected))]
    Truncated {
        path: PathBuf,
        frames_decoded: u64,
        frames_expected: Option<u64>,
    },
    #[error("cannot encode {path}: {source}")]
    Encode { path: PathBuf, source: EncodeError },
    #[error("cannot start decoding {path} in the background: {source}")]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn expected_suffix(expected: Option<u64>) -> String {
    expected.map_or_else(String::new, |e| format!(" of {e} declared"))
}

impl DecodeError {
    /// A stable code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::Open { .. } => "audio.missing",
            DecodeError::Read { .. } => "audio.read",
            DecodeError::Unsupported { .. } => "audio.unsupported",
            DecodeError::Corrupt { .. } => "audio.corrupt",
            DecodeError::Truncated { .. } => "audio.truncated",
            DecodeError::Encode { .. } => "audio.encode",
            DecodeError::Spawn { .. } => "audio.spawn",
        }
    }

    /// The file (or label) the error is about.
    pub fn path(&self) -> &Path {
        match self {
            DecodeError::Open { path, .. }
            | DecodeError::Read { path, .. }
            | DecodeError::Unsupported { path, .. }
            | DecodeError::Corrupt { path, .. }
            | DecodeError::Truncated { path, .. }
            | DecodeError::Encode { path, .. }
            | DecodeError::Spawn { path, .. } => path,
        }
    }
}

/// Cached failures are handed to every caller; `io::Error` is not `Clone`,
/// so its copy keeps the kind and message.
impl Clone for DecodeError {
    fn clone(&self) -> Self {
        let io = |e: &io::Error| io::Error::new(e.kind(), e.to_string());
        match self {
            DecodeError::Open { path, source } => DecodeError::Open {
                path: path.clone(),
                source: io(source),
            },
            DecodeError::Read { path, source } => DecodeError::Read {
                path: path.clone(),
                source: io(source),
            },
            DecodeError::Unsupported { path, reason } => DecodeError::Unsupported {
                path: path.clone(),
                reason: reason.clone(),
            },
            DecodeError::Corrupt {
                path,
                reason,
                frames_decoded,
            } => DecodeError::Corrupt {
                path: path.clone(),
                reason: reason.clone(),
                frames_decoded: *frames_decoded,
            },
            DecodeError::Truncated {
                path,
                frames_decoded,
                frames_expected,
            } => DecodeError::Truncated {
                path: path.clone(),
                frames_decoded: *frames_decoded,
                frames_expected: *frames_expected,
            },
            DecodeError::Encode { path, source } => DecodeError::Encode {
                path: path.clone(),
                source: source.clone(),
            },
            DecodeError::Spawn { path, source } => DecodeError::Spawn {
                path: path.clone(),
                source: io(source),
            },
        }
    }
}

enum Codec {
    Symphonia(Box<dyn AudioDecoder>),
    Opus(Box<OpusPacketDecoder>),
}

/// A streaming decoder for one file: call [`Decoder::next_chunk`] until it
/// returns `Ok(false)`.
pub struct Decoder {
    path: PathBuf,
    format: Box<dyn FormatReader>,
    codec: Codec,
    track_id: u32,
    sample_rate_hz: u32,
    /// Playable frames (per channel) the container declares, where known.
    frames_expected: Option<u64>,
    frames_decoded: u64,
    consecutive_errors: u32,
    /// Per-channel scratch for the mixdown.
    planes: Vec<Vec<f32>>,
    finished: bool,
}

impl Decoder {
    /// Opens and probes `path`; the extension is a hint, the content decides.
    pub fn open(path: &Path) -> Result<Decoder, DecodeError> {
        let file = std::fs::File::open(path).map_err(|source| DecodeError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let extension = path.extension().and_then(|e| e.to_str());
        Decoder::from_source(path.to_path_buf(), Box::new(file), extension)
    }

    /// Opens `path` with the extension hint of another name (a download
    /// kept as `<key>.part` that came from `sermon.mp3`).
    pub fn open_with_hint(
        path: &Path,
        extension_hint: Option<&str>,
    ) -> Result<Decoder, DecodeError> {
        let file = std::fs::File::open(path).map_err(|source| DecodeError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Decoder::from_source(path.to_path_buf(), Box::new(file), extension_hint)
    }

    /// Decodes a file held in memory (a download, a test fixture); `label`
    /// names it in errors.
    pub fn from_bytes(
        label: &str,
        bytes: Vec<u8>,
        extension_hint: Option<&str>,
    ) -> Result<Decoder, DecodeError> {
        Decoder::from_source(
            PathBuf::from(label),
            Box::new(io::Cursor::new(bytes)),
            extension_hint,
        )
    }

    fn from_source(
        path: PathBuf,
        source: Box<dyn MediaSource>,
        extension: Option<&str>,
    ) -> Result<Decoder, DecodeError> {
        let mss = MediaSourceStream::new(source, Default::default());
        let mut hint = Hint::new();
        if let Some(ext) = extension {
            hint.with_extension(ext);
        }
        // The decoder crates' own warnings ("skipped 45 bytes of junk")
        // name no file; the span puts it in their log line.
        let _span = file_span(&path).entered();
        let format = symphonia::default::get_probe()
            .probe(
                &hint,
                mss,
                FormatOptions::default(),
                MetadataOptions::default(),
            )
            .map_err(|e| classify(&path, e, 0, None))?;
        let picked = pick_track(format.as_ref(), &path)?;
        Ok(Decoder {
            path,
            format,
            codec: picked.codec,
            track_id: picked.track_id,
            sample_rate_hz: picked.sample_rate_hz,
            frames_expected: picked.frames_expected,
            frames_decoded: 0,
            consecutive_errors: 0,
            planes: Vec::new(),
            finished: false,
        })
    }

    /// Rebuilds the codec after a `ResetRequired` (e.g. a chained Ogg
    /// stream); the rate must not change under the resampler.
    fn reset(&mut self) -> Result<(), DecodeError> {
        let picked = pick_track(self.format.as_ref(), &self.path)?;
        if picked.sample_rate_hz != self.sample_rate_hz {
            self.finished = true;
            return Err(DecodeError::Unsupported {
                path: self.path.clone(),
                reason: format!(
                    "sample rate changes mid-stream ({} Hz to {} Hz)",
                    self.sample_rate_hz, picked.sample_rate_hz
                ),
            });
        }
        self.track_id = picked.track_id;
        self.codec = picked.codec;
        Ok(())
    }

    pub fn sample_rate_hz(&self) -> u32 {
        self.sample_rate_hz
    }

    /// The file (or label) being decoded.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frames (samples per channel) the container declares, if it does.
    pub fn frames_expected(&self) -> Option<u64> {
        self.frames_expected
    }

    /// Frames decoded so far.
    pub fn frames_decoded(&self) -> u64 {
        self.frames_decoded
    }

    /// Appends the next decoded mono samples to `out`; `Ok(false)` at the clean end.
    pub fn next_chunk(&mut self, out: &mut Vec<f32>) -> Result<bool, DecodeError> {
        if self.finished {
            return Ok(false);
        }
        let _span = file_span(&self.path).entered();
        loop {
            let packet = match self.format.next_packet() {
                Ok(Some(packet)) => packet,
                Ok(None) => {
                    self.finished = true;
                    self.check_length()?;
                    return Ok(false);
                }
                Err(SymphoniaError::ResetRequired) => {
                    self.reset()?;
                    continue;
                }
                Err(SymphoniaError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    // A cut-off last packet of an otherwise whole file is
                    // tolerated; anything more is truncation.
                    self.finished = true;
                    if self.within_margin_of_declared() {
                        return Ok(false);
                    }
                    return Err(self.truncated());
                }
                Err(SymphoniaError::DecodeError(reason)) => {
                    // The demuxer met malformed data and will resync.
                    self.note_bad_packet(reason)?;
                    continue;
                }
                Err(e) => {
                    self.finished = true;
                    return Err(self.classify(e));
                }
            };
            if packet.track_id != self.track_id {
                continue;
            }
            match self.decode_packet(&packet, out) {
                Ok(frames) => {
                    self.consecutive_errors = 0;
                    self.frames_decoded += frames as u64;
                    if frames > 0 {
                        return Ok(true);
                    }
                }
                Err(SymphoniaError::DecodeError(reason)) => self.note_bad_packet(reason)?,
                Err(SymphoniaError::IoError(_)) => self.note_bad_packet("packet read error")?,
                Err(SymphoniaError::ResetRequired) => self.reset()?,
                Err(e) => {
                    self.finished = true;
                    return Err(self.classify(e));
                }
            }
        }
    }

    /// Decodes one packet, appends its mono mixdown and returns its frames.
    fn decode_packet(
        &mut self,
        packet: &Packet,
        out: &mut Vec<f32>,
    ) -> Result<usize, SymphoniaError> {
        match &mut self.codec {
            Codec::Opus(opus) => opus
                .decode(
                    &packet.data,
                    packet.trim_start.get() as usize,
                    packet.trim_end.get() as usize,
                    out,
                )
                .map_err(|_| SymphoniaError::DecodeError("opus: invalid packet")),
            Codec::Symphonia(decoder) => {
                let buf = decoder.decode(packet)?;
                let frames = buf.frames();
                if frames == 0 {
                    return Ok(0);
                }
                buf.copy_to_vecs_planar::<f32>(&mut self.planes);
                mix_to_mono(&self.planes, frames, out);
                Ok(frames)
            }
        }
    }

    fn note_bad_packet(&mut self, reason: &'static str) -> Result<(), DecodeError> {
        self.consecutive_errors += 1;
        if self.consecutive_errors >= MAX_CONSECUTIVE_ERRORS {
            self.finished = true;
            return Err(DecodeError::Corrupt {
                path: self.path.clone(),
                reason: format!(
                    "{} bad packets in a row, last: {reason}",
                    self.consecutive_errors
                ),
                frames_decoded: self.frames_decoded,
            });
        }
        tracing::debug!(path = %self.path.display(), reason, "skipping undecodable packet");
        Ok(())
    }

    /// At the clean end: nothing decoded is corrupt, much less than
    /// declared is truncated.
    fn check_length(&self) -> Result<(), DecodeError> {
        if self.frames_decoded == 0 {
            return Err(DecodeError::Corrupt {
                path: self.path.clone(),
                reason: "no audio could be decoded".into(),
                frames_decoded: 0,
            });
        }
        if self.within_margin_of_declared() || self.frames_expected.is_none() {
            Ok(())
        } else {
            Err(self.truncated())
        }
    }

    fn within_margin_of_declared(&self) -> bool {
        let margin = u64::from(self.sample_rate_hz) * TRUNCATION_MARGIN_SECONDS;
        self.frames_expected
            .is_some_and(|expected| self.frames_decoded + margin >= expected)
    }

    fn truncated(&self) -> DecodeError {
        DecodeError::Truncated {
            path: self.path.clone(),
            frames_decoded: self.frames_decoded,
            frames_expected: self.frames_expected,
        }
    }

    fn classify(&self, e: SymphoniaError) -> DecodeError {
        classify(&self.path, e, self.frames_decoded, self.frames_expected)
    }
}

struct PickedTrack {
    track_id: u32,
    sample_rate_hz: u32,
    frames_expected: Option<u64>,
    codec: Codec,
}

/// The default audio track and a decoder for it.
/// A span naming the file being decoded, enabled at every log level (its
/// level decides only that).
fn file_span(path: &Path) -> tracing::Span {
    let name = path.file_name().unwrap_or(path.as_os_str());
    tracing::error_span!("decoding", file = %name.to_string_lossy())
}

fn pick_track(format: &dyn FormatReader, path: &Path) -> Result<PickedTrack, DecodeError> {
    let unsupported = |reason: String| DecodeError::Unsupported {
        path: path.to_path_buf(),
        reason,
    };
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| unsupported("no audio track".into()))?;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| unsupported("no audio codec parameters".into()))?;
    let sample_rate_hz = params
        .sample_rate
        .filter(|&r| r > 0)
        .ok_or_else(|| unsupported("unknown sample rate".into()))?;
    let codec = if params.codec == CODEC_ID_OPUS {
        let head = OpusHead::parse(params.extra_data.as_deref().unwrap_or_default())
            .map_err(|e| unsupported(format!("opus: {e}")))?;
        let opus =
            OpusPacketDecoder::new(head).map_err(|e| unsupported(format!("libopus: {e}")))?;
        Codec::Opus(Box::new(opus))
    } else {
        let decoder = symphonia::default::get_codecs()
            .make_audio_decoder(params, &AudioDecoderOptions::default())
            .map_err(|e| unsupported(e.to_string()))?;
        Codec::Symphonia(decoder)
    };
    Ok(PickedTrack {
        track_id: track.id,
        sample_rate_hz,
        frames_expected: track.num_frames,
        codec,
    })
}

/// Maps a symphonia error that ends decoding to ours.
fn classify(
    path: &Path,
    e: SymphoniaError,
    frames_decoded: u64,
    frames_expected: Option<u64>,
) -> DecodeError {
    let path = path.to_path_buf();
    match e {
        SymphoniaError::IoError(source) if source.kind() == io::ErrorKind::UnexpectedEof => {
            DecodeError::Truncated {
                path,
                frames_decoded,
                frames_expected,
            }
        }
        SymphoniaError::IoError(source) => DecodeError::Read { path, source },
        SymphoniaError::Unsupported(what) => DecodeError::Unsupported {
            path,
            reason: what.to_string(),
        },
        other => DecodeError::Corrupt {
            path,
            reason: other.to_string(),
            frames_decoded,
        },
    }
}

/// Appends the average of the channels, frame by frame.
fn mix_to_mono(planes: &[Vec<f32>], frames: usize, out: &mut Vec<f32>) {
    match planes {
        [] => {}
        [mono] => out.extend_from_slice(&mono[..frames]),
        [left, right] => out.extend(
            left[..frames]
                .iter()
                .zip(&right[..frames])
                .map(|(l, r)| 0.5 * (l + r)),
        ),
        _ => {
            let scale = 1.0 / planes.len() as f32;
            let start = out.len();
            out.extend_from_slice(&planes[0][..frames]);
            for plane in &planes[1..] {
                for (o, s) in out[start..].iter_mut().zip(&plane[..frames]) {
                    *o += s;
                }
            }
            for o in &mut out[start..] {
                *o *= scale;
            }
        }
    }
}

/// Test audio written in the test itself: a WAV by hound, other formats by
/// ffmpeg (skipped with a note when ffmpeg is missing, unless `CI` is set).
#[cfg(test)]
pub(crate) mod fixtures {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// Writes a 16-bit WAV; `sample(frame, channel)` gives values in [-1, 1].
    pub(crate) fn write_wav(
        path: &Path,
        rate_hz: u32,
        channels: u16,
        seconds: f64,
        sample: impl Fn(usize, u16) -> f32,
    ) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate_hz,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        let frames = (f64::from(rate_hz) * seconds).round() as usize;
        for i in 0..frames {
            for c in 0..channels {
                w.write_sample((sample(i, c) * 32767.0) as i16).unwrap();
            }
        }
        w.finalize().unwrap();
    }

    pub(crate) fn tone(freq_hz: f64, rate_hz: u32, amplitude: f64) -> impl Fn(usize, u16) -> f32 {
        move |i, _| {
            (amplitude
                * (2.0 * std::f64::consts::PI * freq_hz * i as f64 / f64::from(rate_hz)).sin())
                as f32
        }
    }

    /// Whether ffmpeg can run; without it, tests skip visibly, except on CI.
    pub(crate) fn have_ffmpeg() -> bool {
        let ok = Command::new("ffmpeg")
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            assert!(std::env::var_os("CI").is_none(), "ffmpeg is required on CI");
            eprintln!("SKIPPED: ffmpeg not found, format test not run");
        }
        ok
    }

    /// Converts `src` with ffmpeg into `dir/name` using `args` (codec options).
    pub(crate) fn ffmpeg(src: &Path, dir: &Path, name: &str, args: &[&str]) -> PathBuf {
        let dst = dir.join(name);
        let status = Command::new("ffmpeg")
            .args(["-loglevel", "error", "-y", "-i"])
            .arg(src)
            .args(args)
            .arg(&dst)
            .status()
            .unwrap();
        assert!(status.success(), "ffmpeg failed for {name}");
        dst
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::media::resample::tests::{frequency_hz, rms};

    fn decode_all(path: &Path) -> Result<(u32, Vec<f32>), DecodeError> {
        let mut d = Decoder::open(path)?;
        let mut out = Vec::new();
        while d.next_chunk(&mut out)? {}
        Ok((d.sample_rate_hz(), out))
    }

    #[test]
    fn decodes_every_format_with_rate_and_duration() {
        if !have_ffmpeg() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("tone.wav");
        write_wav(&wav, 44_100, 2, 2.0, tone(1000.0, 44_100, 0.5));
        let cases: Vec<(PathBuf, u32)> = vec![
            (wav.clone(), 44_100),
            (ffmpeg(&wav, dir.path(), "tone.flac", &[]), 44_100),
            (
                ffmpeg(&wav, dir.path(), "tone.mp3", &["-b:a", "128k"]),
                44_100,
            ),
            (
                ffmpeg(&wav, dir.path(), "tone.ogg", &["-c:a", "libvorbis"]),
                44_100,
            ),
            (
                ffmpeg(&wav, dir.path(), "tone.m4a", &["-c:a", "aac"]),
                44_100,
            ),
            (
                ffmpeg(&wav, dir.path(), "tone.opus", &["-c:a", "libopus"]),
                48_000,
            ),
        ];
        for (path, rate) in cases {
            let (got_rate, samples) = decode_all(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert_eq!(got_rate, rate, "{name}");
            let seconds = samples.len() as f64 / f64::from(rate);
            // symphonia's MP4 reader ignores edit lists, so AAC keeps its
            // encoder priming and padding (≤ 2 AAC frames of 1024).
            let slack = if name.ends_with(".m4a") {
                2048.0 / 44_100.0
            } else {
                0.0
            };
            assert!(
                seconds >= 2.0 - 0.02 && seconds <= 2.0 + 0.02 + slack,
                "{name}: {seconds} s"
            );
            let middle = &samples[samples.len() / 4..samples.len() * 3 / 4];
            let f = frequency_hz(middle, rate);
            assert!((f - 1000.0).abs() < 2.0, "{name}: {f} Hz");
            let r = rms(middle);
            assert!((r - 0.5 / 2f64.sqrt()).abs() < 0.02, "{name}: rms {r}");
        }
    }

    #[test]
    fn stereo_is_mixed_to_mono() {
        let dir = tempfile::tempdir().unwrap();
        // Left carries the tone, right its inverse plus a DC offset: the
        // average is exactly the offset.
        let t = tone(440.0, 8000, 0.5);
        let path = dir.path().join("st.wav");
        write_wav(&path, 8000, 2, 0.5, |i, c| {
            if c == 0 {
                t(i, 0) + 0.1
            } else {
                -t(i, 0) + 0.1
            }
        });
        let (_, mono) = decode_all(&path).unwrap();
        assert_eq!(mono.len(), 4000);
        assert!(
            mono.iter().all(|s| (s - 0.1).abs() < 1e-3),
            "{:?}",
            &mono[..4]
        );
        // One silent channel halves the level.
        let path = dir.path().join("half.wav");
        write_wav(
            &path,
            8000,
            2,
            0.5,
            |i, c| if c == 0 { t(i, 0) } else { 0.0 },
        );
        let (_, mono) = decode_all(&path).unwrap();
        assert!((rms(&mono) - 0.25 / 2f64.sqrt()).abs() < 0.005);
    }

    #[test]
    fn missing_file_is_open_error() {
        let err = Decoder::open(Path::new("/nonexistent/service.mp3"))
            .err()
            .unwrap();
        assert!(matches!(err, DecodeError::Open { .. }));
        assert_eq!(err.code(), "audio.missing");
        assert_eq!(err.path(), Path::new("/nonexistent/service.mp3"));
        assert!(err.to_string().contains("/nonexistent/service.mp3"));
        let copy = err.clone();
        assert_eq!(copy.to_string(), err.to_string());
    }

    /// Random bytes, whatever extension they claim, must fail (at open or
    /// while decoding), quickly, and not pass as audio.
    #[test]
    fn random_bytes_fail() {
        use rand::{RngCore, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for (len, ext) in [
            (0, "mp3"),
            (100, "wav"),
            (200_000, "mp3"),
            (200_000, "m4a"),
            (200_000, "ogg"),
        ] {
            let mut bytes = vec![0u8; len];
            rng.fill_bytes(&mut bytes);
            let started = std::time::Instant::now();
            let result = Decoder::from_bytes("garbage", bytes, Some(ext)).and_then(|mut d| {
                let mut out = Vec::new();
                while d.next_chunk(&mut out)? {}
                Ok(out.len())
            });
            let err = result.expect_err(&format!("{len} random bytes as .{ext} decoded"));
            assert!(
                matches!(
                    err.code(),
                    "audio.unsupported" | "audio.corrupt" | "audio.truncated"
                ),
                "{err}"
            );
            assert!(started.elapsed() < std::time::Duration::from_secs(2));
        }
    }

    #[test]
    fn truncated_wav_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("long.wav");
        write_wav(&path, 8000, 1, 4.0, tone(440.0, 8000, 0.5));
        let bytes = std::fs::read(&path).unwrap();
        let err = Decoder::from_bytes("half.wav", bytes[..bytes.len() / 2].to_vec(), Some("wav"))
            .and_then(|mut d| {
                let mut out = Vec::new();
                while d.next_chunk(&mut out)? {}
                Ok(())
            })
            .unwrap_err();
        assert!(matches!(err, DecodeError::Truncated { .. }), "{err}");
        assert_eq!(err.code(), "audio.truncated");
    }

    #[test]
    fn truncated_mp3_is_truncated() {
        if !have_ffmpeg() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("long.wav");
        write_wav(&wav, 44_100, 1, 6.0, tone(440.0, 44_100, 0.5));
        let mp3 = ffmpeg(&wav, dir.path(), "long.mp3", &["-b:a", "64k"]);
        let bytes = std::fs::read(&mp3).unwrap();
        let mut d = Decoder::from_bytes("half.mp3", bytes[..bytes.len() / 2].to_vec(), Some("mp3"))
            .unwrap();
        let mut out = Vec::new();
        let err = loop {
            match d.next_chunk(&mut out) {
                Ok(true) => {}
                Ok(false) => panic!("half an MP3 decoded as complete ({} samples)", out.len()),
                Err(e) => break e,
            }
        };
        assert!(matches!(err, DecodeError::Truncated { .. }), "{err}");
        // What was there was decoded first.
        assert!(out.len() > 44_100 * 2, "{}", out.len());
    }

    #[test]
    fn clean_end_then_stays_ended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short.wav");
        write_wav(&path, 16_000, 1, 0.1, tone(440.0, 16_000, 0.5));
        let mut d = Decoder::open(&path).unwrap();
        assert_eq!(d.frames_expected(), Some(1600));
        let mut out = Vec::new();
        while d.next_chunk(&mut out).unwrap() {}
        assert_eq!(out.len(), 1600);
        assert_eq!(d.frames_decoded(), 1600);
        assert!(!d.next_chunk(&mut out).unwrap());
    }

    #[test]
    fn empty_wav_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.wav");
        write_wav(&path, 8000, 1, 0.0, tone(440.0, 8000, 0.5));
        let err = decode_all(&path).err().unwrap();
        assert_eq!(err.code(), "audio.corrupt", "{err}");
    }
}

#[cfg(test)]
mod id3_tests {
    use super::fixtures::*;
    use super::*;

    /// Podcast MP3s open with an ID3v2 tag: read as metadata, not skipped
    /// as junk with a warning on every call.
    #[test]
    fn an_id3_tag_is_read_as_metadata() {
        if !have_ffmpeg() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("tagged.wav");
        write_wav(&wav, 44_100, 1, 1.0, tone(440.0, 44_100, 0.5));
        let mp3 = ffmpeg(
            &wav,
            dir.path(),
            "tagged.mp3",
            &["-id3v2_version", "3", "-metadata", "title=Choral Evensong"],
        );
        assert!(std::fs::read(&mp3).unwrap().starts_with(b"ID3"));
        let mut decoder = Decoder::open(&mp3).unwrap();
        let mut metadata = decoder.format.metadata();
        let revision = metadata.skip_to_latest().expect("the tag as metadata");
        let text = format!("{revision:?}");
        assert!(text.contains("Choral Evensong"), "{text}");
        let mut out = Vec::new();
        while decoder.next_chunk(&mut out).unwrap() {}
        assert!(out.len() > 40_000);
    }
}

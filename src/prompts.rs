//! The line's voice: joins prompts, recordings and synthesised names into
//! the audio of spoken sentences (greeting, menu, "not an option", goodbye).
//!
//! Design:
//! - The prompt library (`audio/prompts/<name>.<any extension>`, one file per
//!   [`Phrase::prompt_name`]) is decoded once by [`Prompts::load`] and kept
//!   as PCM at each codec's rate, already trimmed, levelled and faded
//!   ([`clip`]), so joining is copying.
//! - Church name and titles come from the schedule's recording
//!   (`church_name_audio`, `title_audio`) if it decodes, else from
//!   [`Speech`] if it has already rendered the text, else they are left
//!   out (and a render is queued): the greeting is then "Thanks for
//!   calling." and a menu line "Press 1 for the service from Sunday the 1st
//!   of May." A missing library prompt is treated the same way, from its text.
//! - [`Prompts::render`] builds one [`Track`] per sentence: the parts with
//!   exact pauses of silence between them ([`WORD_GAP`], [`COMMA_GAP`] where
//!   the text has a comma) and [`SENTENCE_GAP`] after the last, then encodes.
//!   Every part starts and ends at zero, so no join can click. Sentences are
//!   cached (bounded LRU) by their phrases, the codec and which recordings
//!   they were made from, so the same menu for the next caller costs a
//!   lookup, and a name that becomes available (or a replaced recording)
//!   makes a new sentence.
//!
//! - Loudness: every sentence is levelled like the services
//!   ([`crate::media::level`]) with one gain for the whole library, from
//!   the integrated loudness of all its clips joined, measured once at
//!   load: a single word is shorter than BS.1770's gating needs, and one
//!   gain keeps the words of a sentence at the level they were made at.
//!   Names, titles and recordings are peak-levelled like the library
//!   ([`clip`]) and share its gain; without a library a sentence is
//!   measured on its own.
//!
//! `render` never waits for speech synthesis; it may decode a short
//! recording (at most [`clip::MAX_CLIP`], then cached) and encode a few
//! seconds of audio, a few milliseconds the first time a sentence is heard.

pub mod clip;

use std::collections::HashMap;
use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use crate::call::menu::{Phrase, comma_before, sentence_text};
use crate::media::Codec;
use crate::media::level::{Leveller, LoudnessSettings, Lufs, integrated_loudness};
use crate::media::resample::resample_clip;
use crate::media::track::Track;
use crate::speech::Speech;

use clip::ClipError;

/// Between words: short and even, about the gap of unhurried speech.
pub const WORD_GAP: Duration = Duration::from_millis(100);

/// Where the text has a comma (after a title or a date).
pub const COMMA_GAP: Duration = Duration::from_millis(250);

/// After each sentence, before the next begins.
pub const SENTENCE_GAP: Duration = Duration::from_millis(600);

/// Sentences kept encoded: a menu is at most a dozen sentences, per codec.
const SENTENCE_CACHE: usize = 128;

/// Decoded recordings and synthesised texts kept (per rate).
const SPOKEN_CACHE: usize = 64;

/// A library prompt that could not be loaded, for the log and `check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingPrompt {
    pub name: String,
    pub reason: String,
}

/// What a sentence part was made from: part of the sentence cache's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Source {
    Library,
    /// A file (a recording or synthesised speech), as it was when decoded.
    File {
        path: PathBuf,
        len: u64,
        modified: Option<SystemTime>,
    },
}

/// A bounded map dropping the least recently used entry.
struct Lru<K, V> {
    capacity: usize,
    clock: u64,
    entries: HashMap<K, (V, u64)>,
}

impl<K: Hash + Eq + Clone, V: Clone> Lru<K, V> {
    fn new(capacity: usize) -> Self {
        Lru {
            capacity,
            clock: 0,
            entries: HashMap::new(),
        }
    }

    fn get(&mut self, key: &K) -> Option<V> {
        self.clock += 1;
        let now = self.clock;
        self.entries.get_mut(key).map(|(value, used)| {
            *used = now;
            value.clone()
        })
    }

    fn insert(&mut self, key: K, value: V) {
        self.clock += 1;
        self.entries.insert(key, (value, self.clock));
        while self.entries.len() > self.capacity {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.entries.remove(&k),
                None => break,
            };
        }
    }
}

type Pcm = Arc<[f32]>;
type SentenceKey = (Vec<Phrase>, Vec<Source>, Codec);

/// The prompt library and the caches of one process; share it (`Arc`).
pub struct Prompts {
    /// Prompt name → rate → shaped PCM.
    library: HashMap<String, HashMap<u32, Pcm>>,
    /// Rate → integrated loudness of the whole library at that rate.
    library_loudness: HashMap<u32, Lufs>,
    loudness: LoudnessSettings,
    missing: Vec<MissingPrompt>,
    speech: Option<Arc<Speech>>,
    /// Decoded and shaped files, by (file as decoded, rate); `Err` keeps a
    /// broken file from being decoded (and logged) again until it changes.
    spoken: Mutex<Lru<(Source, u32), Result<Pcm, String>>>,
    sentences: Mutex<Lru<SentenceKey, Arc<Track>>>,
}

impl Prompts {
    /// Decodes every library prompt found in `dir` for the rates of `codecs`.
    /// Missing or broken prompts are logged here, once, and later spoken
    /// from their text by `speech` (queued now) or left out.
    pub fn load(dir: &Path, codecs: &[Codec], speech: Option<Arc<Speech>>) -> Prompts {
        let mut rates: Vec<u32> = codecs.iter().map(|c| c.sample_rate_hz()).collect();
        rates.sort_unstable();
        rates.dedup();
        let files = prompt_files(dir);
        let mut library = HashMap::new();
        let mut missing = Vec::new();
        for phrase in Phrase::library() {
            let Some(name) = phrase.prompt_name() else {
                continue;
            };
            let loaded = match files.get(&name) {
                Some(path) => load_prompt(path, &rates).map_err(|e| e.to_string()),
                None => Err(format!("no file named {name}.* in {}", dir.display())),
            };
            match loaded {
                Ok(by_rate) => {
                    library.insert(name, by_rate);
                }
                Err(reason) => {
                    let fallback = if speech.is_some() {
                        "spoken by speech synthesis instead"
                    } else {
                        "left out"
                    };
                    tracing::warn!(code = "prompt.missing", prompt = %name, "{reason}; {fallback}");
                    if let Some(speech) = &speech {
                        speech.get(&phrase.text());
                    }
                    missing.push(MissingPrompt { name, reason });
                }
            }
        }
        Prompts {
            library_loudness: library_loudness(&library, &rates),
            library,
            loudness: LoudnessSettings::default(),
            missing,
            speech,
            spoken: Mutex::new(Lru::new(SPOKEN_CACHE)),
            sentences: Mutex::new(Lru::new(SENTENCE_CACHE)),
        }
    }

    /// Levels sentences rendered from now on to `loudness` (`[audio]`).
    pub fn set_loudness(&mut self, loudness: LoudnessSettings) {
        self.loudness = loudness;
    }

    /// The library's integrated loudness at `rate_hz` (before levelling),
    /// if it has a clip at that rate.
    pub fn library_loudness(&self, rate_hz: u32) -> Option<Lufs> {
        self.library_loudness.get(&rate_hz).copied()
    }

    /// Library prompts that did not load, and why.
    pub fn missing(&self) -> &[MissingPrompt] {
        &self.missing
    }

    /// Queues synthesis of every text in `sentences` not covered by a
    /// library prompt (call when a schedule is read, so callers rarely
    /// meet a name not yet rendered).
    pub fn prepare(&self, sentences: &[Vec<Phrase>]) {
        let Some(speech) = &self.speech else {
            return;
        };
        for phrase in sentences.iter().flatten() {
            let in_library = phrase
                .prompt_name()
                .is_some_and(|name| self.library.contains_key(&name));
            if !in_library {
                speech.get(&phrase.text());
            }
        }
    }

    /// Waits (at most `limit`) for the speech queued so far to be
    /// rendered; `false` if it was not all done.
    pub fn wait_for_speech(&self, limit: std::time::Duration) -> bool {
        self.speech
            .as_ref()
            .is_none_or(|speech| speech.wait_until_idle(limit))
    }

    /// The audio of `sentences` for one call, one track per sentence (a
    /// sentence with nothing to say is skipped). Recordings named in the
    /// phrases are read under `audio_dir`. Never waits for synthesis.
    pub fn render(
        &self,
        sentences: &[Vec<Phrase>],
        codec: Codec,
        audio_dir: &Path,
    ) -> Vec<Arc<Track>> {
        sentences
            .iter()
            .filter_map(|sentence| self.render_sentence(sentence, codec, audio_dir))
            .collect()
    }

    fn render_sentence(
        &self,
        sentence: &[Phrase],
        codec: Codec,
        audio_dir: &Path,
    ) -> Option<Arc<Track>> {
        let rate_hz = codec.sample_rate_hz();
        let parts = self.resolve(sentence, rate_hz, audio_dir);
        if parts.is_empty() {
            return None;
        }
        let key: SentenceKey = (
            parts.iter().map(|p| p.phrase.clone()).collect(),
            parts.iter().map(|p| p.source.clone()).collect(),
            codec,
        );
        if let Some(track) = lock(&self.sentences).get(&key) {
            return Some(track);
        }
        let (samples, _) = join(&parts, rate_hz);
        let label = format!("prompt: {}", sentence_text(sentence));
        let measured = self
            .library_loudness(rate_hz)
            .or_else(|| integrated_loudness(&samples, rate_hz).ok().flatten());
        let samples = match Leveller::level_clip(&samples, rate_hz, self.loudness, measured) {
            Ok(levelled) => levelled,
            Err(error) => {
                tracing::warn!(code = "prompt.level", "cannot level {label}: {error}");
                samples
            }
        };
        match Track::from_pcm(codec, &label, &samples, rate_hz) {
            Ok(track) => {
                lock(&self.sentences).insert(key, Arc::clone(&track));
                Some(track)
            }
            Err(error) => {
                tracing::warn!(code = error.code(), "cannot encode {label}: {error}");
                None
            }
        }
    }

    /// The audible parts of `sentence`, in order, at `rate_hz`.
    fn resolve(&self, sentence: &[Phrase], rate_hz: u32, audio_dir: &Path) -> Vec<Part> {
        sentence
            .iter()
            .filter_map(|phrase| {
                let (source, pcm) = self.phrase_pcm(phrase, rate_hz, audio_dir)?;
                Some(Part {
                    phrase: phrase.clone(),
                    source,
                    pcm,
                })
            })
            .collect()
    }

    fn phrase_pcm(&self, phrase: &Phrase, rate_hz: u32, audio_dir: &Path) -> Option<(Source, Pcm)> {
        if let Some(by_rate) = phrase.prompt_name().and_then(|n| self.library.get(&n)) {
            return Some((Source::Library, at_rate(by_rate, rate_hz)?));
        }
        if let Phrase::ChurchName(spoken) | Phrase::Title(spoken) = phrase
            && let Some(audio) = &spoken.audio
            && let Some(found) = self.file_pcm(&audio_dir.join(audio), rate_hz)
        {
            return Some(found);
        }
        let path = self.speech.as_ref()?.get(&phrase.text())?;
        self.file_pcm(&path, rate_hz)
    }

    /// A recording or synthesised file, decoded once per version and rate.
    fn file_pcm(&self, path: &Path, rate_hz: u32) -> Option<(Source, Pcm)> {
        let Ok(meta) = std::fs::metadata(path) else {
            // Looked up on every call, so not a warning each time; the
            // schedule's recordings are for `check` to report (not yet done).
            tracing::debug!(path = %path.display(), "recording not found");
            return None;
        };
        let source = Source::File {
            path: path.to_owned(),
            len: meta.len(),
            modified: meta.modified().ok(),
        };
        let key = (source.clone(), rate_hz);
        if let Some(cached) = lock(&self.spoken).get(&key) {
            return cached.ok().map(|pcm| (source, pcm));
        }
        let result = clip::decode(path)
            .and_then(|decoded| clip::prepare(&decoded, rate_hz))
            .map(Pcm::from)
            .map_err(|error: ClipError| {
                tracing::warn!(code = error.code(), "{error}; left out");
                error.to_string()
            });
        lock(&self.spoken).insert(key, result.clone());
        result.ok().map(|pcm| (source, pcm))
    }
}

/// One audible piece of a sentence.
struct Part {
    phrase: Phrase,
    source: Source,
    pcm: Pcm,
}

/// The parts with their pauses, and where each part lies in the result.
fn join(parts: &[Part], rate_hz: u32) -> (Vec<f32>, Vec<std::ops::Range<usize>>) {
    let phrases: Vec<Phrase> = parts.iter().map(|p| p.phrase.clone()).collect();
    let mut samples = Vec::new();
    let mut ranges = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            let gap = if comma_before(&phrases, i) {
                COMMA_GAP
            } else {
                WORD_GAP
            };
            samples.resize(samples.len() + clip::samples_in(gap, rate_hz), 0.0);
        }
        let start = samples.len();
        samples.extend_from_slice(&part.pcm);
        ranges.push(start..samples.len());
    }
    samples.resize(samples.len() + clip::samples_in(SENTENCE_GAP, rate_hz), 0.0);
    (samples, ranges)
}

/// The clip at `rate_hz`, resampled from a loaded rate if `load` was not
/// told about this codec (then re-faded, as resampling can ring at edges).
fn at_rate(by_rate: &HashMap<u32, Pcm>, rate_hz: u32) -> Option<Pcm> {
    if let Some(pcm) = by_rate.get(&rate_hz) {
        return Some(Arc::clone(pcm));
    }
    let (&from_hz, pcm) = by_rate.iter().max_by_key(|(rate, _)| **rate)?;
    let resampled = resample_clip(pcm, from_hz, rate_hz).ok()?;
    clip::shape(resampled, rate_hz).map(Pcm::from)
}

/// Rate → the integrated loudness of every library clip at that rate,
/// joined (silent or empty libraries have none).
fn library_loudness(
    library: &HashMap<String, HashMap<u32, Pcm>>,
    rates: &[u32],
) -> HashMap<u32, Lufs> {
    let mut names: Vec<&String> = library.keys().collect();
    // Joined in one order, so the measurement is the same every start.
    names.sort();
    rates
        .iter()
        .filter_map(|&rate| {
            let joined: Vec<f32> = names
                .iter()
                .filter_map(|name| library[*name].get(&rate))
                .flat_map(|pcm| pcm.iter().copied())
                .collect();
            let loudness = integrated_loudness(&joined, rate).ok().flatten()?;
            Some((rate, loudness))
        })
        .collect()
}

/// Decodes one library file and shapes it for each rate.
fn load_prompt(path: &Path, rates: &[u32]) -> Result<HashMap<u32, Pcm>, ClipError> {
    let decoded = clip::decode(path)?;
    rates
        .iter()
        .map(|&rate| Ok((rate, Pcm::from(clip::prepare(&decoded, rate)?))))
        .collect()
}

/// Prompt name (file stem) → the first file of that name in `dir`, in
/// alphabetical order, so which of two files wins is predictable. Hidden
/// files (editors' and our own temporaries) are ignored.
fn prompt_files(dir: &Path) -> HashMap<String, PathBuf> {
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect(),
        Err(error) => {
            tracing::warn!(
                code = "prompt.folder",
                "cannot read prompt folder {}: {error}",
                dir.display()
            );
            Vec::new()
        }
    };
    paths.sort();
    let mut files = HashMap::new();
    for path in paths {
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if !stem.starts_with('.') {
            files.entry(stem.to_owned()).or_insert(path);
        }
    }
    files
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The caches hold whole entries only; a panic elsewhere leaves them usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;

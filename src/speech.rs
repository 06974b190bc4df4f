//! Text to speech for the words only the schedule knows (church name, service
//! titles): rendered once per text by an external program (espeak-ng) into a
//! WAV file in a disk cache, on a background thread, never while a caller
//! waits.
//!
//! [`Speech::get`] answers at once: the cached file if it exists, else `None`
//! after queueing a render, so a caller hears the menu without that phrase
//! and the next caller hears it whole. [`Speech::prepare`] queues a batch
//! (at start, and whenever a schedule is read) so that rarely happens.
//!
//! The program, not a crate: espeak-ng is one `apt-get install` away, the
//! parish can swap in another program taking the same flags (`-v`, `-s`,
//! `-w`, `--stdin`), and the Rust bindings would tie the build to libespeak's
//! headers. The text goes on stdin, so a title starting with `-` is not read
//! as an option.
//!
//! The cache file is named by a hash of (voice, rate, text): a changed
//! voice or rate renders afresh, an unchanged text survives restarts. It is
//! written to a temporary name and renamed, so a reader never sees half a
//! file. A failed render is logged once and not retried for
//! [`RETRY_AFTER`]; a missing program is logged once in all.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// A failed text is not tried again for this long: the program may be
/// installed or fixed meanwhile, but a broken one is not run for every call.
pub const RETRY_AFTER: Duration = Duration::from_secs(600);

/// A render taking longer than this is killed (espeak-ng takes well under a
/// second for a title; a hung program must not stall the queue for ever).
const RENDER_TIMEOUT: Duration = Duration::from_secs(30);

/// Longer texts are cut: a title is a line, not a sermon, and the cut keeps
/// a runaway schedule entry from occupying the renderer.
const MAX_TEXT_CHARS: usize = 300;

/// How to run the speech program. Defaults: `espeak-ng`, `en-gb`, 140 words
/// a minute (the calm rate of the shipped prompts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeechConfig {
    pub command: PathBuf,
    pub voice: String,
    /// Words per minute (`-s`).
    pub rate: u32,
    /// Where rendered WAV files are kept; created if missing.
    pub cache_dir: PathBuf,
}

impl SpeechConfig {
    /// The defaults, caching in `cache_dir`.
    pub fn new(cache_dir: impl Into<PathBuf>) -> SpeechConfig {
        SpeechConfig {
            command: PathBuf::from("espeak-ng"),
            voice: "en-gb".to_owned(),
            rate: 140,
            cache_dir: cache_dir.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpeechError {
    #[error("cannot run {}: {source}", command.display())]
    Spawn {
        command: PathBuf,
        source: std::io::Error,
    },
    #[error("{} failed ({status}): {stderr}", command.display())]
    Failed {
        command: PathBuf,
        status: ExitStatus,
        stderr: String,
    },
    #[error("{} took longer than {timeout:?}", command.display())]
    TimedOut { command: PathBuf, timeout: Duration },
    #[error("{} wrote no WAV file", command.display())]
    NoAudio { command: PathBuf },
    #[error("cannot write the speech cache {}: {source}", path.display())]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the speech thread: {0}")]
    Thread(std::io::Error),
}

impl SpeechError {
    /// A stable code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            SpeechError::Spawn { .. } => "speech.missing",
            SpeechError::Failed { .. } => "speech.failed",
            SpeechError::TimedOut { .. } => "speech.timeout",
            SpeechError::NoAudio { .. } => "speech.no_audio",
            SpeechError::Cache { .. } => "speech.cache",
            SpeechError::Thread(_) => "speech.thread",
        }
    }
}

/// Where one text stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rendering {
    /// In the cache at this path.
    Ready(PathBuf),
    /// Queued or being rendered.
    Pending,
    /// The last attempt failed for this reason (also logged); retried
    /// after [`RETRY_AFTER`].
    Failed(String),
    /// Never asked for.
    NotRequested,
}

enum State {
    Pending,
    Failed { retry_at: Instant, reason: String },
}

struct Shared {
    config: SpeechConfig,
    /// Texts queued or failed, by cache file; a ready text has no entry
    /// (the file itself says so).
    states: Mutex<HashMap<PathBuf, State>>,
    /// The "program missing" warning is given once, not once per text.
    warned_missing: AtomicBool,
}

struct Job {
    text: String,
    path: PathBuf,
}

/// Text to speech with a disk cache; share one per process (`Arc`).
pub struct Speech {
    shared: Arc<Shared>,
    /// `None` if the thread could not start: every text is then left out.
    queue: Mutex<Option<Sender<Job>>>,
}

impl Speech {
    /// Starts the render thread. Never fails: a missing program or cache
    /// folder shows as a logged warning when the first text is rendered.
    pub fn new(config: SpeechConfig) -> Speech {
        let shared = Arc::new(Shared {
            config,
            states: Mutex::new(HashMap::new()),
            warned_missing: AtomicBool::new(false),
        });
        let (sender, receiver) = channel();
        let worker = Arc::clone(&shared);
        let queue = match std::thread::Builder::new()
            .name("speech".into())
            .spawn(move || render_loop(&worker, &receiver))
        {
            Ok(_) => Some(sender),
            Err(e) => {
                let error = SpeechError::Thread(e);
                tracing::warn!(
                    code = error.code(),
                    "{error}; names and titles are left out"
                );
                None
            }
        };
        Speech {
            shared,
            queue: Mutex::new(queue),
        }
    }

    pub fn config(&self) -> &SpeechConfig {
        &self.shared.config
    }

    /// The rendered WAV of `text` if it is in the cache; otherwise queues a
    /// render (unless one is pending or recently failed) and returns `None`.
    /// Never waits for the program.
    pub fn get(&self, text: &str) -> Option<PathBuf> {
        let text = clean(text)?;
        let path = self.cache_path(&text);
        match self.rendering_at(&path) {
            Rendering::Ready(path) => return Some(path),
            Rendering::Pending => return None,
            Rendering::Failed(_) | Rendering::NotRequested => {}
        }
        let mut states = self.shared.lock();
        if let Some(State::Failed { retry_at, .. }) = states.get(&path)
            && Instant::now() < *retry_at
        {
            return None;
        }
        states.insert(path.clone(), State::Pending);
        drop(states);
        let queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let sent = queue.as_ref().is_some_and(|q| {
            q.send(Job {
                text,
                path: path.clone(),
            })
            .is_ok()
        });
        if !sent {
            // No thread to render it: remember as failed, so we don't queue again.
            self.shared.lock().insert(
                path,
                State::Failed {
                    retry_at: Instant::now() + RETRY_AFTER,
                    reason: "the speech thread is not running".to_owned(),
                },
            );
        }
        None
    }

    /// Queues every text not yet rendered (at start, on a new schedule).
    pub fn prepare<I, S>(&self, texts: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for text in texts {
            self.get(text.as_ref());
        }
    }

    /// Waits until nothing queued is still rendering, for at most `limit`
    /// (at start, so the first caller's greeting is rendered whole);
    /// `false` if renders were still going when it gave up.
    pub fn wait_until_idle(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let pending = self
                .shared
                .lock()
                .values()
                .any(|s| matches!(s, State::Pending));
            if !pending {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Where `text` stands, without queueing anything (for `check`, tests).
    pub fn rendering(&self, text: &str) -> Rendering {
        match clean(text) {
            Some(text) => self.rendering_at(&self.cache_path(&text)),
            None => Rendering::NotRequested,
        }
    }

    fn rendering_at(&self, path: &Path) -> Rendering {
        match self.shared.lock().get(path) {
            Some(State::Pending) => return Rendering::Pending,
            Some(State::Failed { reason, .. }) => return Rendering::Failed(reason.clone()),
            None => {}
        }
        if path.is_file() {
            Rendering::Ready(path.to_owned())
        } else {
            Rendering::NotRequested
        }
    }

    /// `<cache_dir>/speech-<hash of voice, rate, text>.wav`.
    fn cache_path(&self, text: &str) -> PathBuf {
        let config = &self.shared.config;
        let mut hash = Sha256::new();
        hash.update(config.voice.as_bytes());
        hash.update([0]);
        hash.update(config.rate.to_le_bytes());
        hash.update(text.as_bytes());
        let digest = hash.finalize();
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        config.cache_dir.join(format!("speech-{hex}.wav"))
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, State>> {
        self.states.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Trimmed, whitespace collapsed, cut to [`MAX_TEXT_CHARS`]; `None` if empty.
fn clean(text: &str) -> Option<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let joined = words.join(" ");
    let cut: String = joined.chars().take(MAX_TEXT_CHARS).collect();
    Some(cut).filter(|t| !t.is_empty())
}

/// The render thread: one job at a time, until the `Speech` is dropped.
fn render_loop(shared: &Shared, jobs: &Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        match render(&shared.config, &job) {
            Ok(()) => {
                shared.lock().remove(&job.path);
                tracing::debug!(text = %job.text, path = %job.path.display(), "speech rendered");
            }
            Err(error) => {
                let missing = matches!(error, SpeechError::Spawn { .. });
                if !missing || !shared.warned_missing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        code = error.code(),
                        text = %job.text,
                        "cannot speak text, left out for now: {error}"
                    );
                }
                shared.lock().insert(
                    job.path,
                    State::Failed {
                        retry_at: Instant::now() + RETRY_AFTER,
                        reason: error.to_string(),
                    },
                );
            }
        }
    }
}

/// Runs the program into a temporary file beside `job.path`, then renames.
fn render(config: &SpeechConfig, job: &Job) -> Result<(), SpeechError> {
    let cache_error = |path: &Path| {
        let path = path.to_owned();
        move |source| SpeechError::Cache { path, source }
    };
    std::fs::create_dir_all(&config.cache_dir).map_err(cache_error(&config.cache_dir))?;
    // A dot name: never mistaken for a finished file, even by a person listing the folder.
    let file_name = job.path.file_name().unwrap_or_default().to_string_lossy();
    let temp = config
        .cache_dir
        .join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = run(config, &job.text, &temp).and_then(|()| {
        let len = std::fs::metadata(&temp).map(|m| m.len()).unwrap_or(0);
        if len <= 44 {
            return Err(SpeechError::NoAudio {
                command: config.command.clone(),
            });
        }
        std::fs::rename(&temp, &job.path).map_err(cache_error(&job.path))
    });
    if result.is_err() {
        // Best effort: the file may never have been made.
        let _ = std::fs::remove_file(&temp);
    }
    result
}

fn run(config: &SpeechConfig, text: &str, out: &Path) -> Result<(), SpeechError> {
    let mut child = Command::new(&config.command)
        .arg("-v")
        .arg(&config.voice)
        .arg("-s")
        .arg(config.rate.to_string())
        .arg("-w")
        .arg(out)
        .arg("--stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| SpeechError::Spawn {
            command: config.command.clone(),
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A program that exits without reading shows in its status below.
        let _ = stdin.write_all(text.as_bytes());
    }
    let deadline = Instant::now() + RENDER_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(SpeechError::TimedOut {
                    command: config.command.clone(),
                    timeout: RENDER_TIMEOUT,
                });
            }
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read;
        let _ = pipe.read_to_string(&mut stderr);
    }
    Err(SpeechError::Failed {
        command: config.command.clone(),
        status,
        stderr: stderr.trim().chars().take(200).collect(),
    })
}

#[cfg(test)]
pub(crate) mod tests;

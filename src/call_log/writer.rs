//! Appends call records to the log file on a thread of its own, so a slow
//! or full disk never holds up the SIP loop; rotates the file by size.
//!
//! The loop hands a finished line to [`Writer::append`], which never
//! blocks: a bounded channel to the writing thread, and a record that finds
//! it full is dropped and counted (a warning at the 1st, 10th, 100th …
//! drop, so a stuck disk cannot flood the log either). The thread appends,
//! and syncs to disk once the queue is empty and at most every
//! [`SYNC_INTERVAL`]: a crash loses a few seconds of calls at worst, and a
//! busy line does not fsync per call.
//!
//! Rotation (like logrotate's `size` + `rotate N`): before a line would take
//! the file past `max_size`, `calls.jsonl.{keep-1}` becomes `.{keep}` (the
//! oldest is overwritten), …, `calls.jsonl` becomes `calls.jsonl.1`, and a
//! new `calls.jsonl` is started.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Records waiting for the disk. Far more than the calls that can end in
/// the time one write may stall.
const QUEUE: usize = 1024;
/// The longest a written record waits to be synced to disk.
const SYNC_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum CallLogError {
    #[error("cannot create the call log's folder {}: {source}", path.display())]
    CreateFolder { path: PathBuf, source: io::Error },
    #[error("cannot open the call log {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot write the call log {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot rotate the call log {}: {source}", path.display())]
    Rotate { path: PathBuf, source: io::Error },
    #[error("cannot start the call log's thread: {0}")]
    Thread(io::Error),
}

impl CallLogError {
    /// A stable code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            CallLogError::CreateFolder { .. } | CallLogError::Open { .. } => "call_log.open",
            CallLogError::Write { .. } => "call_log.write",
            CallLogError::Rotate { .. } => "call_log.rotate",
            CallLogError::Thread(_) => "call_log.thread",
        }
    }
}

/// The current file and its rotation, written synchronously (the thread's
/// part, and what the tests drive directly).
pub struct Appender {
    path: PathBuf,
    max_size: u64,
    keep: usize,
    /// Open, with its size; `None` until the first line or after a failure.
    file: Option<(File, u64)>,
    unsynced: bool,
}

impl Appender {
    pub fn new(path: PathBuf, max_size: u64, keep: usize) -> Appender {
        Appender {
            path,
            max_size,
            keep,
            file: None,
            unsynced: false,
        }
    }

    /// Appends `line` and a newline, rotating first if it would not fit.
    pub fn append(&mut self, line: &str) -> Result<(), CallLogError> {
        let bytes = line.len() as u64 + 1;
        if self.file.is_none() {
            self.file = Some(self.open()?);
        }
        if let Some((_, size)) = &self.file
            && *size > 0
            && size + bytes > self.max_size
        {
            self.sync();
            self.file = None;
            rotate(&self.path, self.keep).map_err(|source| CallLogError::Rotate {
                path: self.path.clone(),
                source,
            })?;
            self.file = Some(self.open()?);
        }
        let (file, size) = self.file.as_mut().expect("the file was opened above");
        let mut buffer = Vec::with_capacity(line.len() + 1);
        buffer.extend_from_slice(line.as_bytes());
        buffer.push(b'\n');
        if let Err(source) = file.write_all(&buffer) {
            // Reopened for the next line: the file may have been moved or
            // the disk freed meanwhile.
            self.file = None;
            return Err(CallLogError::Write {
                path: self.path.clone(),
                source,
            });
        }
        *size += bytes;
        self.unsynced = true;
        Ok(())
    }

    /// Syncs what was written since the last sync (a failure surfaces at
    /// the next write).
    pub fn sync(&mut self) {
        if self.unsynced
            && let Some((file, _)) = &self.file
        {
            let _ = file.sync_data();
        }
        self.unsynced = false;
    }

    fn open(&self) -> Result<(File, u64), CallLogError> {
        let open = || {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            let size = file.metadata()?.len();
            Ok((file, size))
        };
        open().map_err(|source| CallLogError::Open {
            path: self.path.clone(),
            source,
        })
    }
}

/// `path.N` for the Nth newest rotated file.
pub fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Shifts `path.1 … path.{keep-1}` up by one and moves `path` to `path.1`.
fn rotate(path: &Path, keep: usize) -> io::Result<()> {
    for n in (1..keep).rev() {
        match std::fs::rename(rotated(path, n), rotated(path, n + 1)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    std::fs::rename(path, rotated(path, 1))
}

/// The handle the driver holds: lines in, a thread writing them out.
pub struct Writer {
    queue: Option<SyncSender<String>>,
    thread: Option<JoinHandle<()>>,
    dropped: Arc<AtomicU64>,
    path: PathBuf,
}

impl Writer {
    /// Creates the folder and starts the writing thread.
    pub fn start(path: PathBuf, max_size: u64, keep: usize) -> Result<Writer, CallLogError> {
        if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder).map_err(|source| CallLogError::CreateFolder {
                path: folder.to_owned(),
                source,
            })?;
        }
        let (queue, lines) = std::sync::mpsc::sync_channel(QUEUE);
        let appender = Appender::new(path.clone(), max_size, keep);
        let thread = std::thread::Builder::new()
            .name("call-log".to_owned())
            .spawn(move || write_lines(appender, lines))
            .map_err(CallLogError::Thread)?;
        Ok(Writer {
            queue: Some(queue),
            thread: Some(thread),
            dropped: Arc::default(),
            path,
        })
    }

    /// Queues one line; never blocks. See the module docs for a full queue.
    pub fn append(&self, line: String) {
        let Some(queue) = &self.queue else {
            return;
        };
        match queue.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if is_power_of_ten(dropped) {
                    tracing::warn!(
                        code = "call_log.behind",
                        file = %self.path.display(),
                        "the call log is behind the calls (a slow disk?): {dropped} call record(s) dropped so far"
                    );
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

impl Drop for Writer {
    /// Writes what is queued before the line exits.
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn is_power_of_ten(mut n: u64) -> bool {
    while n >= 10 && n.is_multiple_of(10) {
        n /= 10;
    }
    n == 1
}

/// The thread: append each line; sync when idle, at most every
/// [`SYNC_INTERVAL`]. A failing disk is logged once per kind of failure
/// until a line is written again.
fn write_lines(mut appender: Appender, lines: Receiver<String>) {
    let mut last_sync = Instant::now();
    let mut failing: Option<&'static str> = None;
    loop {
        let line = match lines.recv_timeout(SYNC_INTERVAL) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                appender.sync();
                last_sync = Instant::now();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        match appender.append(&line) {
            Ok(()) => failing = None,
            Err(error) => {
                if failing != Some(error.code()) {
                    tracing::warn!(code = error.code(), "{error}; this call's record is lost");
                }
                failing = Some(error.code());
            }
        }
        if last_sync.elapsed() >= SYNC_INTERVAL {
            appender.sync();
            last_sync = Instant::now();
        }
    }
    appender.sync();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn a_file_that_would_grow_past_its_size_is_rotated_keeping_n() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calls.jsonl");
        // 10-byte lines (with the newline), 25 bytes a file: two lines each.
        let mut appender = Appender::new(path.clone(), 25, 2);
        for n in 0..7 {
            appender.append(&format!("line-{n:03}")).unwrap();
        }
        assert_eq!(lines(&path), ["line-006"]);
        assert_eq!(lines(&rotated(&path, 1)), ["line-004", "line-005"]);
        assert_eq!(lines(&rotated(&path, 2)), ["line-002", "line-003"]);
        assert!(!rotated(&path, 3).exists(), "only two are kept");
    }

    #[test]
    fn an_existing_file_is_appended_to_and_counted_towards_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calls.jsonl");
        std::fs::write(&path, "old-line1\n").unwrap();
        let mut appender = Appender::new(path.clone(), 25, 5);
        appender.append("new-line1").unwrap();
        assert_eq!(lines(&path), ["old-line1", "new-line1"]);
        appender.append("new-line2").unwrap();
        assert_eq!(lines(&rotated(&path, 1)), ["old-line1", "new-line1"]);
        assert_eq!(lines(&path), ["new-line2"]);
    }

    #[test]
    fn a_line_longer_than_the_size_still_gets_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calls.jsonl");
        let mut appender = Appender::new(path.clone(), 8, 1);
        appender.append("much-longer-than-eight").unwrap();
        appender.append("again-longer-than-eight").unwrap();
        assert_eq!(lines(&path), ["again-longer-than-eight"]);
        assert_eq!(lines(&rotated(&path, 1)), ["much-longer-than-eight"]);
    }

    #[test]
    fn the_writer_creates_its_folder_and_flushes_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/folder/calls.jsonl");
        let writer = Writer::start(path.clone(), 1 << 20, 5).unwrap();
        for n in 0..100 {
            writer.append(format!("{{\"n\":{n}}}"));
        }
        drop(writer);
        assert_eq!(lines(&path).len(), 100);
    }

    #[test]
    fn drops_are_warned_at_powers_of_ten() {
        let warned: Vec<u64> = (1..=1000).filter(|n| is_power_of_ten(*n)).collect();
        assert_eq!(warned, [1, 10, 100, 1000]);
    }
}

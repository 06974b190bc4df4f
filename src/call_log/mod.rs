//! The call log: one JSON line per answered call (when, who as the operator
//! allows, how long, the keys, the services and how far into each, how it
//! ended) in `[log] calls`, rotated by size; and `stats`, which reads it.
//!
//! - [`record`]: the record and its builder, sans-IO (fed by the call's
//!   events with `now`; `calls.rs` feeds it).
//! - [`caller`]: the caller's number, kept only with `[log] caller_numbers`,
//!   otherwise a keyed hash.
//! - [`writer`]: the file, on a thread of its own, rotated by size.
//! - [`stats`]: reading the files back (tolerantly) and summing them up,
//!   for `dial-a-service stats` and the status page.

pub mod caller;
pub mod record;
pub mod stats;
pub mod writer;

use std::path::{Path, PathBuf};

use crate::config::CallLogConfig;
use caller::{CallerPrivacy, Presented};
use record::CallRecord;
use writer::Writer;

/// The key file's name, beside the log.
pub const KEY_FILE: &str = "calls.key";

/// What the driver holds: records in, lines out on the writer's thread.
pub struct CallLog {
    privacy: CallerPrivacy,
    writer: Option<Writer>,
}

impl CallLog {
    /// Opens the log `config` names (none: records are discarded). Trouble
    /// is logged, never fatal: a line that cannot keep its log still takes
    /// calls.
    pub fn open(config: &CallLogConfig) -> CallLog {
        let Some(path) = &config.path else {
            tracing::info!("no call log ([log] calls is off)");
            return CallLog::discarding();
        };
        let writer = match Writer::start(path.clone(), config.max_size, config.keep) {
            Ok(writer) => Some(writer),
            Err(error) => {
                tracing::warn!(code = error.code(), "{error}; calls are not logged");
                None
            }
        };
        let key = caller_key(&key_path(path));
        CallLog {
            privacy: CallerPrivacy::new(config.caller_numbers, &key),
            writer,
        }
    }

    /// A log that writes nothing.
    pub fn discarding() -> CallLog {
        CallLog {
            privacy: CallerPrivacy::new(false, &rand::random::<[u8; 32]>()),
            writer: None,
        }
    }

    /// The caller for a line of the process log: see [`CallerPrivacy::shown`].
    pub fn shown_caller(&self, caller: &Presented) -> String {
        self.privacy.shown(caller)
    }

    /// Writes `record`, with the caller as the operator allows. Never blocks.
    pub fn append(&self, mut record: CallRecord, caller: &Presented) {
        let Some(writer) = &self.writer else {
            return;
        };
        self.privacy.apply(caller, &mut record);
        writer.append(record.to_line());
    }
}

/// `calls.key` in the log's folder.
pub fn key_path(log: &Path) -> PathBuf {
    log.parent().unwrap_or(Path::new("")).join(KEY_FILE)
}

/// The install's hashing key: read, or made (32 random bytes, hex, owner
/// only). A key that cannot be kept works for this run only, with a warning:
/// distinct callers then count afresh after a restart.
fn caller_key(path: &Path) -> Vec<u8> {
    let (key, kept) = secret_key(path);
    if let Err(error) = kept {
        tracing::warn!(
            code = "call_log.key",
            file = %path.display(),
            "cannot keep the call log's caller key ({error}): distinct callers are counted afresh after a restart"
        );
    }
    key
}

/// A secret of this install kept in `path`: read, or made (32 random
/// bytes, hex, owner only); the error says why a new one could not be kept.
pub fn secret_key(path: &Path) -> (Vec<u8>, std::io::Result<()>) {
    if let Ok(text) = std::fs::read_to_string(path)
        && let Some(key) = from_hex(text.trim())
        && key.len() >= 16
    {
        return (key, Ok(()));
    }
    let key: [u8; 32] = rand::random();
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let kept = write_private(path, &hex);
    (key.to_vec(), kept)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(path)?, format!("{text}\n").as_bytes())
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let first = caller_key(&path);
        assert_eq!(first.len(), 32);
        assert_eq!(caller_key(&path), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "owner only");
        }
        std::fs::write(&path, "not hex").unwrap();
        assert_ne!(caller_key(&path), first, "a broken key is replaced");
    }
}

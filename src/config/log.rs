//! `[log]`'s call-log keys: where the one-line-per-call log goes, how big it
//! may grow, and whether callers' numbers are kept (see `call_log`). Kept
//! apart from `config.rs` for size; `[log] level` stays there.

use std::path::{Path, PathBuf};

use super::{count, describe};

/// The file name in `[cache] dir` when `[log] calls` is not given: the one
/// folder the line already keeps its own data in, across restarts.
pub const DEFAULT_CALLS_FILE: &str = "calls.jsonl";
/// About 50,000 calls a file: years of a parish line, and still quick to read.
pub const DEFAULT_CALLS_MAX_SIZE: u64 = 10 * 1024 * 1024;
/// Rotated files kept beside the current one (`calls.jsonl.1` … `.5`).
pub const DEFAULT_CALLS_KEEP: usize = 5;

/// Where and how calls are logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallLogConfig {
    /// The file; `None` turns the call log off (`calls = ""` or `"off"`).
    pub path: Option<PathBuf>,
    /// Keep the caller's number as presented; otherwise only a keyed hash,
    /// enough to count distinct callers.
    pub caller_numbers: bool,
    /// The file is rotated before it would grow past this many bytes.
    pub max_size: u64,
    /// Rotated files kept.
    pub keep: usize,
}

#[derive(Default)]
pub(super) struct CallLogSettings {
    /// `Some(None)`: turned off.
    path: Option<Option<PathBuf>>,
    caller_numbers: Option<bool>,
    max_size: Option<u64>,
    keep: Option<usize>,
}

impl CallLogSettings {
    pub(super) fn set(
        &mut self,
        key: &str,
        value: toml::Value,
        base: Option<&Path>,
    ) -> Result<(), String> {
        match key {
            "calls" => {
                let toml::Value::String(text) = &value else {
                    return Err(format!(
                        "expected a file path like \"calls.jsonl\", or \"\" (or \"off\") for no call log, found {}",
                        describe(&value)
                    ));
                };
                let text = text.trim();
                self.path = Some(if text.is_empty() || text.eq_ignore_ascii_case("off") {
                    None
                } else {
                    let path = PathBuf::from(text);
                    Some(match base {
                        Some(dir) if path.is_relative() => dir.join(path),
                        _ => path,
                    })
                });
            }
            "caller_numbers" => self.caller_numbers = Some(super::call::boolean(value)?),
            "calls_max_size" => self.max_size = Some(byte_size(&value)?),
            "calls_keep" => {
                self.keep = Some(count(
                    value,
                    "expected a whole number of old files to keep, at least 1",
                )?)
            }
            _ => unreachable!("KEYS lists only [log] keys that CallLogSettings::set handles"),
        }
        Ok(())
    }

    pub(super) fn finish(self, cache_dir: &Path) -> CallLogConfig {
        CallLogConfig {
            path: self
                .path
                .unwrap_or_else(|| Some(cache_dir.join(DEFAULT_CALLS_FILE))),
            caller_numbers: self.caller_numbers.unwrap_or(false),
            max_size: self.max_size.unwrap_or(DEFAULT_CALLS_MAX_SIZE),
            keep: self.keep.unwrap_or(DEFAULT_CALLS_KEEP),
        }
    }
}

/// Bytes: a number, or text with a unit (`"10MiB"`, `"512KiB"`, `"1GiB"`;
/// `KB`/`MB`/`GB` read the same, as operators mean them), at least 4 KiB so
/// a file holds more than a handful of calls.
fn byte_size(value: &toml::Value) -> Result<u64, String> {
    let expected = format!(
        "expected a size of at least 4 KiB, like \"10MiB\" or 1048576, found {}",
        describe(value)
    );
    let bytes = match value {
        toml::Value::Integer(n) => u64::try_from(*n).ok(),
        toml::Value::String(text) => {
            let text = text.trim();
            let digits = text
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(text.len());
            let (number, unit) = text.split_at(digits);
            let scale = match unit.trim().to_ascii_lowercase().as_str() {
                "" | "b" => Some(1),
                "k" | "kb" | "kib" => Some(1 << 10),
                "m" | "mb" | "mib" => Some(1 << 20),
                "g" | "gb" | "gib" => Some(1 << 30),
                _ => None,
            };
            number
                .parse::<u64>()
                .ok()
                .zip(scale)
                .and_then(|(n, scale)| n.checked_mul(scale))
        }
        _ => None,
    };
    bytes.filter(|b| *b >= 4096).ok_or(expected)
}

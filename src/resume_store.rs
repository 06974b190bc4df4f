//! The resume book on disk (`call::resume`): `resume.json` beside its key
//! `resume.key` in the cache folder. Read once at start; written whole to a
//! temporary file and renamed over the old one, off the SIP loop, after a
//! call changes it, so a crash never leaves half a book.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::call::resume::{ResumeBook, Stopped};

pub const BOOK_FILE: &str = "resume.json";
pub const KEY_FILE: &str = "resume.key";
/// A book larger than this is not read (it cannot be ours: 10,000 callers
/// take about 2 MB).
const MAX_BOOK_BYTES: u64 = 16 * 1024 * 1024;

/// Reads the book in `dir`, or starts an empty one (a missing, oversized
/// or unreadable file is logged and left to be replaced).
pub fn open(dir: &Path, keep: Duration, now: DateTime<Utc>) -> ResumeBook {
    let (key, kept) = crate::call_log::secret_key(&dir.join(KEY_FILE));
    if let Err(error) = kept {
        tracing::warn!(
            code = "resume.key",
            dir = %dir.display(),
            "cannot keep the key for carrying on ({error}): callers are offered to carry on only until a restart"
        );
    }
    let book = ResumeBook::new(&key, keep);
    let path = dir.join(BOOK_FILE);
    match read(&path) {
        Ok(entries) => book.with_entries(entries, now),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => book,
        Err(error) => {
            tracing::warn!(code = "resume.unreadable", file = %path.display(), %error, "starting a new book of where callers stopped");
            book
        }
    }
}

fn read(path: &Path) -> std::io::Result<HashMap<String, Stopped>> {
    let meta = std::fs::metadata(path)?;
    if meta.len() > MAX_BOOK_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} bytes is more than a book of callers holds", meta.len()),
        ));
    }
    parse(&std::fs::read(path)?).map_err(std::io::Error::other)
}

/// A book's bytes as written by [`write`] (whatever else a file holds is
/// an error, never a panic).
pub fn parse(bytes: &[u8]) -> Result<HashMap<String, Stopped>, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// Writes the book into `dir` atomically. Disk work: off the loop.
pub fn write(dir: &Path, entries: &HashMap<String, Stopped>) -> std::io::Result<()> {
    let path = dir.join(BOOK_FILE);
    let temporary: PathBuf = dir.join(format!("{BOOK_FILE}.tmp"));
    let text = serde_json::to_vec(entries).map_err(std::io::Error::other)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temporary)?;
    std::io::Write::write_all(&mut file, &text)?;
    file.sync_all()?;
    std::fs::rename(&temporary, &path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::resume::Listened;
    use crate::call_log::caller::Presented;

    #[test]
    fn a_book_written_is_read_back_with_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let now: DateTime<Utc> = "2026-12-06T10:00:00Z".parse().unwrap();
        let keep = Duration::from_secs(14 * 24 * 3600);
        let caller = Presented::Number("+441134960000".to_owned());
        let mut book = open(dir.path(), keep, now);
        book.handle_call_end(
            &caller,
            Some(Listened {
                file: "evensong.mp3".to_owned(),
                date: "2026-11-29T18:00:00Z".parse().unwrap(),
                heard: Duration::from_secs(1400),
                position: Duration::from_secs(1400),
                completed: false,
            }),
            None,
            now,
        );
        write(dir.path(), &book.take_changes().unwrap()).unwrap();
        assert!(!dir.path().join("resume.json.tmp").exists());
        let again = open(dir.path(), keep, now);
        let stopped = again.lookup(&caller, now).expect("read back");
        assert_eq!(stopped.position(), Duration::from_secs(1400));
        // Garbage in the file: a new book, never a failure.
        std::fs::write(dir.path().join(BOOK_FILE), b"{ not json").unwrap();
        assert!(open(dir.path(), keep, now).lookup(&caller, now).is_none());
    }
}

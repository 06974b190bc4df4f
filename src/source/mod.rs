//! Where services come from: the schedule and its audio.

pub mod cache;
pub mod feed;
pub mod http;
pub mod published;
pub mod redact;
pub mod refresher;
pub mod schedule;

pub use redact::{Redacted, redact_if_url, redact_url};

use std::path::Path;

use crate::config::{Location, SourceConfig};

/// A local `data.json` with local audio: read afresh for each call (the
/// parish edits it in place). Anything from the web, and any feed, even a
/// local one (its episodes are downloaded), is fetched by the background
/// refresher instead: `None`.
pub fn local_files(source: &SourceConfig) -> Option<(&Path, &Path)> {
    match (&source.schedule, &source.audio) {
        (Location::Path(schedule), Location::Path(audio)) if !is_feed_file(schedule) => {
            Some((schedule, audio))
        }
        _ => None,
    }
}

/// A local schedule that is a podcast feed, judged by its first bytes.
fn is_feed_file(path: &Path) -> bool {
    let mut head = [0u8; 512];
    let read = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    feed::looks_like_feed(&head[..read])
}

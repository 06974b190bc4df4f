//! What callers are offered now, as `check` and `menu` show it: the same
//! [`Content`] a running line builds, asked the same question
//! ([`Content::offer`]), so the command line and a call cannot disagree.
//! A local schedule is read as calls read it; a fetched one is what the
//! line serves from its disk cache, looked at without writing anything.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::content::{Catalogue, Content};
use crate::prompts::Prompts;
use crate::source::cache::DiskCache;
use crate::source::published::Published;
use crate::source::refresher::cached_schedule;

/// Where the offered services come from.
pub enum Origin {
    /// A `data.json` on this machine, read again whenever it changes.
    LocalFile(PathBuf),
    /// The copy in the disk cache of what was fetched from `source`;
    /// `fetched_at` is `None` when nothing has been fetched yet.
    Cache {
        source: String,
        fetched_at: Option<DateTime<Utc>>,
        /// Services listed in the snapshot whose audio is gone or corrupt.
        lost: usize,
    },
}

/// The content as a line started now would offer it.
pub struct Offered {
    pub content: Content,
    pub origin: Origin,
}

/// Builds the content `config` describes, with `prompts` for its words
/// (none are needed for text alone).
pub fn offered(config: &Config, prompts: Prompts) -> Offered {
    let (catalogue, origin) = match crate::source::local_files(&config.source) {
        Some((schedule, audio)) => (
            Catalogue::Local {
                schedule: schedule.to_path_buf(),
                audio: audio.to_path_buf(),
            },
            Origin::LocalFile(schedule.to_path_buf()),
        ),
        None => {
            let source = crate::source::redact_url(&config.source.schedule.to_string());
            let cache = DiskCache::open_to_look(&config.cache.dir);
            let published = Arc::new(Published::default());
            let origin = match cached_schedule(&cache, config.line.church_name.as_deref()) {
                Some((snapshot, schedule)) => {
                    let lost = snapshot.services.len() - schedule.services.len();
                    published.publish(schedule);
                    Origin::Cache {
                        source: source.clone(),
                        fetched_at: Some(snapshot.fetched_at),
                        lost,
                    }
                }
                None => Origin::Cache {
                    source: source.clone(),
                    fetched_at: None,
                    lost: 0,
                },
            };
            (
                Catalogue::Published {
                    published,
                    origin: source,
                },
                origin,
            )
        }
    };
    let content = Content::new(
        catalogue,
        config.audio.apology.clone(),
        config.media.max_cached_tracks,
        prompts,
    )
    .with_timezone(config.line.timezone)
    .with_church_name(config.line.church_name.clone())
    .with_loudness(config.audio.loudness);
    content.reload_schedule();
    Offered { content, origin }
}

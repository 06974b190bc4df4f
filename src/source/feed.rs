//! A podcast feed as a schedule (issue 5): a parish that already publishes its services
//! as a podcast (Anchor/Spotify, Buzzsprout, a WordPress plugin) points `[source]
//! schedule` at the feed instead of writing a `data.json`.
//!
//! feed-rs reads RSS 0.9x/1.0/2.0, Atom and JSON Feed into one model; from it, each item
//! with a date (published, else updated) and an audio enclosure becomes a [`Service`] whose
//! `file` is the enclosure's absolute URL (relative ones resolved against the feed's URL),
//! and the feed's title becomes the church's name. An enclosure is RSS `<enclosure>`,
//! Atom `<link rel="enclosure">`, Media RSS `<media:content>` or a JSON Feed attachment;
//! it is audio by its `audio/…` type or, when the type is missing or says nothing
//! (`application/octet-stream`), by its file extension.
//!
//! As with `data.json`, one broken item must not take the line down: an item without
//! audio or without a readable date, or a second item with the same enclosure, is skipped
//! and described in [`Schedule::problems`]; only bytes that are not a feed are an error.
//! Titles are read aloud by speech synthesis, so they lose their markup and entities
//! (see `feed/text.rs`); dates get the corrections in `feed/date.rs`.

mod date;
mod text;

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;
use feed_rs::model::Entry;
use url::Url;

use super::redact::{redact_if_url, redact_url};
use super::schedule::{Schedule, Service, is_remote};

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("not a feed: {0}")]
    Parse(#[from] feed_rs::parser::ParseFeedError),
    #[error("feed url {url:?} is not an absolute http(s) url")]
    BaseUrl { url: String },
    #[error("feed has no title to use as the church's name")]
    NoTitle,
}

impl FeedError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Parse(_) => "source.feed_invalid",
            Self::BaseUrl { .. } => "source.feed_url",
            Self::NoTitle => "source.feed_untitled",
        }
    }
}

/// Whether a schedule's bytes are a feed rather than a `data.json`, so one `[source]
/// schedule` key can hold either: after a byte-order mark and whitespace, `<` starts XML
/// (RSS, Atom) and `{` JSON, which is a JSON Feed only if it names its version URL.
pub fn looks_like_feed(bytes: &[u8]) -> bool {
    let bytes = [&[0xEF, 0xBB, 0xBF][..], &[0xFE, 0xFF], &[0xFF, 0xFE]]
        .iter()
        .find_map(|bom| bytes.strip_prefix(*bom))
        .unwrap_or(bytes);
    // NUL bytes are the other half of UTF-16's code units.
    let first = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace() && *b != 0);
    match first.map(|i| (bytes[i], &bytes[i..])) {
        Some((b'<', _)) => true,
        // JSON Feed's required `version` is a URL on jsonfeed.org; data.json never says it.
        Some((b'{', json)) => contains(json, b"jsonfeed.org/version"),
        _ => false,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Parses a feed into services; `base_url` is where it was fetched from, to resolve
/// relative enclosures, and local times in its dates are read in `timezone`.
pub fn parse_feed(
    bytes: &[u8],
    base_url: Option<&str>,
    timezone: Tz,
) -> Result<Schedule, FeedError> {
    let base = match base_url {
        None => None,
        Some(url) if is_remote(url) => Url::parse(url.trim()).ok(),
        Some(url) => {
            return Err(FeedError::BaseUrl {
                url: redact_url(url),
            });
        }
    };
    let unread = UnreadDates::default();
    let parser = feed_rs::parser::Builder::new()
        .base_uri(Some(base.as_ref().map_or(UNKNOWN_BASE, Url::as_str)))
        .timestamp_parser({
            let unread = unread.clone();
            move |text| unread.parse(text, timezone)
        })
        .build();
    let feed = parser.parse(bytes)?;

    let church_name = feed
        .title
        .as_ref()
        .map(|t| text::plain(&t.content))
        .filter(|name| !name.is_empty())
        .ok_or(FeedError::NoTitle)?;
    let mut services: Vec<Service> = Vec::new();
    // Where each kept service was in the feed, to name the original of a duplicate.
    let mut positions: Vec<usize> = Vec::new();
    let mut problems = Vec::new();
    for (index, entry) in feed.entries.iter().enumerate() {
        // Numbered from 1, as a person counts the items in the feed.
        let position = index + 1;
        let title = entry
            .title
            .as_ref()
            .map(|t| text::plain(&t.content))
            .filter(|t| !t.is_empty());
        let item = match &title {
            Some(title) => format!("item {position} {title:?}"),
            None => format!("item {position}"),
        };
        let read =
            audio_url(entry, base.as_ref()).and_then(|file| Ok((file, published(entry, &unread)?)));
        let (file, datetime) = match read {
            Ok(read) => read,
            Err(problem) => {
                problems.push(format!("{item}: {problem}"));
                continue;
            }
        };
        // Hosts repeat an episode when it is re-promoted; callers would hear it twice.
        if let Some(earlier) = services.iter().position(|s| s.file == file) {
            problems.push(format!(
                "{item}: a duplicate of item {} (same enclosure)",
                positions[earlier]
            ));
            continue;
        }
        services.push(Service {
            title,
            datetime: datetime.with_timezone(&timezone).fixed_offset(),
            file,
            title_audio: None,
        });
        positions.push(position);
    }
    Ok(Schedule {
        church_name,
        church_name_audio: None,
        services,
        problems,
    })
}

/// The item's first audio enclosure as an absolute http(s) URL, or why there is none.
fn audio_url(entry: &Entry, base: Option<&Url>) -> Result<String, String> {
    // (URL, MIME type) of everything attached, in the feed's order: enclosures and Media
    // RSS arrive as media objects, Atom enclosures and JSON Feed attachments as links.
    let media = entry.media.iter().flat_map(|m| &m.content).filter_map(|c| {
        let url = c.url.as_ref()?;
        Some((url.as_str(), c.content_type.as_ref().map(|t| t.as_str())))
    });
    let links = entry
        .links
        .iter()
        .filter(|l| l.rel.as_deref() == Some("enclosure") || is_audio_type(l.media_type.as_deref()))
        .map(|l| (l.href.as_str(), l.media_type.as_deref()));
    let attached: Vec<(&str, Option<&str>)> = media.chain(links).collect();

    let Some(&(href, _)) = attached.iter().find(|(href, kind)| is_audio(href, *kind)) else {
        if attached.is_empty() {
            return Err("no audio enclosure".to_owned());
        }
        let kinds: Vec<&str> = attached
            .iter()
            .map(|(href, kind)| kind.unwrap_or(href))
            .collect();
        return Err(format!("no audio enclosure (only {})", kinds.join(", ")));
    };
    absolute(href, base)
}

/// Stands in for the feed's URL when it is unknown. feed-rs drops an RSS enclosure it
/// cannot make absolute, and the item would then say "no audio enclosure"; resolved
/// against this instead, it says what is wrong. `.invalid` is reserved (RFC 2606), so no
/// real feed names it.
const UNKNOWN_BASE: &str = "https://feed-url-unknown.invalid/";

/// An enclosure's URL made absolute; only http(s) is ever fetched.
fn absolute(href: &str, base: Option<&Url>) -> Result<String, String> {
    let shown = redact_if_url(href);
    if is_remote(href) {
        let url = Url::parse(href.trim())
            .map_err(|_| format!("enclosure {shown:?} is not a usable url"))?;
        if let Some(relative) = url.as_str().strip_prefix(UNKNOWN_BASE) {
            return Err(format!(
                "enclosure \"{}\" is relative and the feed's url is unknown",
                redact_url(relative)
            ));
        }
        return Ok(url.into());
    }
    if Url::parse(href).is_ok() {
        return Err(format!("enclosure {shown:?} is not an http(s) url"));
    }
    let Some(base) = base else {
        return Err(format!(
            "enclosure {shown:?} is relative and the feed's url is unknown"
        ));
    };
    match base.join(href) {
        Ok(url) if is_remote(url.as_str()) => Ok(url.into()),
        _ => Err(format!("enclosure {shown:?} is not a usable url")),
    }
}

/// Audio by its MIME type, or by the extension of its URL when the type says nothing.
fn is_audio(href: &str, kind: Option<&str>) -> bool {
    match kind.map(essence).as_deref() {
        None | Some("" | "application/octet-stream" | "binary/octet-stream") => {
            has_audio_extension(href)
        }
        Some(kind) => kind.starts_with("audio/"),
    }
}

fn is_audio_type(kind: Option<&str>) -> bool {
    kind.is_some_and(|k| essence(k).starts_with("audio/"))
}

/// `Audio/MPEG; charset=x` → `audio/mpeg`.
fn essence(kind: &str) -> String {
    kind.split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// The formats the decoder reads (`media/decode.rs`).
const AUDIO_EXTENSIONS: &[&str] = &[
    "mp3", "m4a", "aac", "mp4a", "ogg", "oga", "opus", "flac", "wav",
];

fn has_audio_extension(href: &str) -> bool {
    // The path only: `?download=1` and `#t=10` say nothing about the format.
    let path = href.split(['?', '#']).next().unwrap_or_default();
    let name = path.rsplit('/').next().unwrap_or_default();
    name.rsplit_once('.').is_some_and(|(_, ext)| {
        AUDIO_EXTENSIONS
            .iter()
            .any(|known| known.eq_ignore_ascii_case(ext))
    })
}

/// Published, else updated; a date feed-rs met but nobody could read is named.
fn published(entry: &Entry, unread: &UnreadDates) -> Result<DateTime<Utc>, String> {
    let dates = [entry.published, entry.updated];
    if let Some(date) = dates.iter().flatten().find(|d| unread.text(**d).is_none()) {
        return Ok(*date);
    }
    match dates.iter().flatten().find_map(|d| unread.text(*d)) {
        Some(text) => Err(format!("date {text:?} is not a date")),
        None => Err("no date".to_owned()),
    }
}

/// Dates that neither feed-rs nor [`date::parse`] could read. feed-rs keeps a date or
/// nothing, and nothing would read as "no date"; so an unreadable one is kept as a marker
/// instant far before any feed, `MARKER + n` seconds for the n-th text here, and the item
/// reports that text.
#[derive(Clone, Default)]
struct UnreadDates(Arc<Mutex<Vec<String>>>);

const MARKER: DateTime<Utc> = DateTime::<Utc>::MIN_UTC;

impl UnreadDates {
    fn parse(&self, text: &str, timezone: Tz) -> Option<DateTime<Utc>> {
        // No date we read lies before year 1000, so markers cannot be mistaken for one.
        if let Some(date) = date::parse(text, timezone).filter(|d| d.year() >= 1000) {
            return Some(date);
        }
        // A poisoned lock only means another parse panicked; the list is still whole.
        let mut texts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let n = i64::try_from(texts.len()).ok()?;
        texts.push(text.trim().to_owned());
        MARKER.checked_add_signed(chrono::TimeDelta::seconds(n))
    }

    /// The text of a marker instant; `None` for a real date.
    fn text(&self, date: DateTime<Utc>) -> Option<String> {
        if date.year() >= 1000 {
            return None;
        }
        let n = usize::try_from((date - MARKER).num_seconds()).ok()?;
        let texts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Some(texts.get(n).cloned().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests;

//! Where services come from: the schedule and its audio.

pub mod cache;
pub mod feed;
pub mod http;
pub mod published;
pub mod redact;
pub mod refresher;
pub mod schedule;

pub use redact::{Redacted, redact_if_url, redact_url};

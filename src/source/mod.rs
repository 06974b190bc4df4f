//! Where services come from: the schedule and its audio.

pub mod cache;
pub mod feed;
pub mod http;
pub mod published;
pub mod refresher;
pub mod schedule;

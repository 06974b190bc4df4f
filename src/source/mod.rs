//! Where services come from: the schedule and its audio.

pub mod feed;
pub mod schedule;

//! Where services come from: the schedule and its audio.

pub mod http;
pub mod schedule;

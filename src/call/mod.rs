//! The caller's side of a call: what the line says and how the keypad
//! steers it.

// No clock reads or global randomness outside tests: `now` is an input
// (clippy.toml).
#![cfg_attr(not(test), deny(clippy::disallowed_methods))]

pub mod flow;
pub mod keys;
pub mod menu;
pub mod resume;

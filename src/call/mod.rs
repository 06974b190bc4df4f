//! The caller's side of a call: what the line says and how the keypad
//! steers it.

pub mod flow;
pub mod keys;
pub mod menu;

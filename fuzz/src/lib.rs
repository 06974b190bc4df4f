//! What several fuzz targets share: the checks run on one SIP message, the
//! bytes-to-choices reader the scripted targets use, and the multi-byte
//! characters mutations insert.
//!
//! The targets live in `fuzz_targets/`, one per input the line reads from
//! the network or from a file; see `README.md` for how to run them.

pub mod schedule;
pub mod script;
pub mod sip;

/// Valid multi-byte UTF-8 that mutations insert: 2-, 3- and 4-byte
/// characters, and U+2028 (a line separator to Unicode, not to SIP).
pub const MULTIBYTE: &[&str] = &["é", "€", "\u{2028}", "😀"];

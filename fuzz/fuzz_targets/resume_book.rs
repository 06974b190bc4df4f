//! The book of where callers stopped (`resume.json`, read at start):
//! `resume_store::parse`, then the book built from it, looked up and
//! updated as calls would.
//!
//! Input: the file's bytes.
//!
//! Invariant: a book read back after being written holds the same callers;
//! nothing a file holds makes a lookup or an update panic.

#![no_main]

use std::time::Duration;

use dial_a_service::call::resume::{Listened, ResumeBook};
use dial_a_service::call_log::caller::Presented;
use dial_a_service::resume_store;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(entries) = resume_store::parse(data) else {
        return;
    };
    let now = chrono::DateTime::from_timestamp(1_796_000_000, 0).expect("a valid time");
    let keep = Duration::from_secs(14 * 24 * 3600);
    let mut book = ResumeBook::new(b"fuzz key", keep).with_entries(entries, now);
    let caller = Presented::Number("+441134960000".to_owned());
    if let Some(stopped) = book.lookup(&caller, now) {
        let _ = stopped.position();
    }
    book.handle_call_end(
        &caller,
        Some(Listened {
            file: "evensong.mp3".to_owned(),
            date: now,
            heard: Duration::from_secs(600),
            position: Duration::from_secs(600),
            completed: false,
        }),
        Some(Duration::from_secs(3600)),
        now,
    );
    let written = book.take_changes().expect("a new caller changes the book");
    let text = serde_json::to_vec(&written).expect("a book serialises");
    let read = resume_store::parse(&text).expect("a written book reads back");
    assert_eq!(read.len(), written.len());
});

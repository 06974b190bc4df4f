//! A podcast feed as the schedule (`source::feed`): `looks_like_feed`, then
//! `parse_feed` (feed-rs underneath: RSS, Atom, JSON Feed) with and without
//! the feed's URL, then what callers get from the services it yields.
//!
//! Input: one byte choosing the time zone and base URL, then the feed.

#![no_main]

use dial_a_service::source::feed;
use dial_a_service_fuzz::schedule::{exercise, timezone};
use libfuzzer_sys::fuzz_target;

const BASES: [Option<&str>; 3] = [
    None,
    Some("https://parish.example/podcast/feed.xml"),
    Some("http://[2001:db8::1]:8080/feed?x=1"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&choice, bytes)) = data.split_first() else {
        return;
    };
    let _ = feed::looks_like_feed(bytes);
    let timezone = timezone(choice);
    let base = BASES[usize::from(choice >> 4) % BASES.len()];
    match feed::parse_feed(bytes, base, timezone) {
        Ok(schedule) => exercise(&schedule, timezone),
        Err(error) => {
            let _ = error.code();
        }
    }
});

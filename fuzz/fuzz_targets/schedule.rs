//! The parish's `data.json` (`source::schedule`): `Schedule::parse_in` in a
//! few time zones, then what callers get from it: the services available
//! at a few moments and the spoken menu.
//!
//! Input: one byte choosing the time zone, then the file.

#![no_main]

use dial_a_service_fuzz::schedule::exercise;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, json)) = data.split_first() else {
        return;
    };
    let json = String::from_utf8_lossy(json);
    let timezone = dial_a_service_fuzz::schedule::timezone(choice);
    if let Ok(schedule) = dial_a_service::source::schedule::Schedule::parse_in(&json, timezone) {
        exercise(&schedule, timezone);
    }
});

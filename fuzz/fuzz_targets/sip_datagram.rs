//! One UDP datagram: the normaliser, `sip::message::parse`, every accessor
//! the line uses, and `answer_unparsable` for what does not parse.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dial_a_service_fuzz::sip::exercise(data);
});

//! Fuzz target `envelope`: the logic is `xchange_protocol::fuzzing::envelope`, which the corpus replay
//! test of that crate runs too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xchange_protocol::fuzzing::envelope(data));

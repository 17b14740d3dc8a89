//! Fuzz target `filter`: the logic is `xchange_filter::fuzzing::filter`, which the corpus replay
//! test of that crate runs too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xchange_filter::fuzzing::filter(data));

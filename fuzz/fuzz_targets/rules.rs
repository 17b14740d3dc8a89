//! Fuzz target `rules`: the logic is `xchange_rules::fuzzing::rules`, which the corpus replay
//! test of that crate runs too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xchange_rules::fuzzing::rules(data));

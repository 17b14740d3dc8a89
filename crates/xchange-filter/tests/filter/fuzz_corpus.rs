//! Replays the committed inputs of the `filter` fuzz target (`fuzz/`) through the same
//! logic as the fuzzer, `xchange_filter::fuzzing::filter`: no input may panic, and the
//! properties that function checks must hold.

include!("../../../../fuzz/replay.rs");

#[test]
fn filter_corpus_replays_without_panics() {
    replay_corpus("filter", xchange_filter::fuzzing::filter);
}

//! Replays the committed inputs of the `rules` fuzz target (`fuzz/`) through the same
//! logic as the fuzzer, `xchange_rules::fuzzing::rules`: no input may panic, and the
//! properties that function checks must hold.

include!("../../../../fuzz/replay.rs");

#[test]
fn rules_corpus_replays_without_panics() {
    replay_corpus("rules", xchange_rules::fuzzing::rules);
}

//! Replays the committed inputs of the `envelope` fuzz target (`fuzz/`) through the same
//! logic as the fuzzer, `xchange_protocol::fuzzing::envelope`: no input may panic, and the
//! properties that function checks must hold. Needs the `fuzzing` feature.

include!("../../../fuzz/replay.rs");

#[test]
fn envelope_corpus_replays_without_panics() {
    replay_corpus("envelope", xchange_protocol::fuzzing::envelope);
}

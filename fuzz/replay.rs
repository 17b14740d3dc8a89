// The corpus replay shared by the crates' `fuzz_corpus` tests, which `include!` this file:
// every committed input of a fuzz target (`fuzz/seeds/<target>/`, `fuzz/corpus/<target>/`
// and `fuzz/regressions/<target>/`) runs through the target's logic, the same function the
// cargo-fuzz binary calls, as an ordinary test. Kept in one file so that the three tests
// share it without depending on each other.

/// Runs `target` on every committed input of fuzz target `name`, and fails naming each
/// input that panics. Also fails when there are no inputs, so that a moved corpus cannot
/// pass unnoticed.
fn replay_corpus(name: &str, target: fn(&[u8])) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut inputs = Vec::new();
    for dir in ["seeds", "corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else { continue };
        for entry in entries {
            let path = entry.expect("a readable directory entry").path();
            if path.is_file() {
                inputs.push(path);
            }
        }
    }
    inputs.sort();
    assert!(!inputs.is_empty(), "no inputs for fuzz target {name} under {}", root.display());
    let mut failures = Vec::new();
    for path in &inputs {
        let bytes = std::fs::read(path).expect("a readable input");
        if std::panic::catch_unwind(|| target(&bytes)).is_err() {
            failures.push(path.display().to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} inputs of fuzz target {name} panic:\n{}",
        failures.len(),
        inputs.len(),
        failures.join("\n")
    );
    println!("fuzz target {name}: {} inputs replayed", inputs.len());
}

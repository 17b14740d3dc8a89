//! Integration tests of `xchange-rules`, in one binary: routing with the committed example
//! file (`routing.rs`), every kind of bad rules file (`bad_files.rs`), and the limits that
//! keep conditions from crashing or stalling the service (`limits.rs`), and with the
//! `fuzzing` feature the replay of the fuzz target's committed inputs (`fuzz_corpus.rs`).

mod bad_files;
#[cfg(feature = "fuzzing")]
mod fuzz_corpus;
mod limits;
mod routing;

use xchange_rules::{Rules, RulesError};

/// The committed example, the one `docs/routing.md` shows.
pub(crate) const EXAMPLE: &str = include_str!("../../examples/rules.toml");

pub(crate) fn example() -> Rules {
    Rules::from_toml(EXAMPLE).expect("the example rules file loads")
}

/// A file with one rule whose body (the lines after `name`) is `body`.
pub(crate) fn one_rule(body: &str) -> Result<Rules, RulesError> {
    Rules::from_toml(&format!("version = 1\n[[rule]]\nname = \"r\"\n{body}\n"))
}

/// A file with one rule that has condition `expr` and a route.
pub(crate) fn with_expr(expr: &str) -> Result<Rules, RulesError> {
    let quoted = serde_json::to_string(expr).expect("a string serializes");
    one_rule(&format!("expr = {quoted}\nthen = {{ route = {{ taskdb = \"x\" }} }}"))
}

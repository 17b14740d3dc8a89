//! The logic of the `rules` fuzz target, shared by `fuzz/fuzz_targets/rules.rs`
//! (cargo-fuzz) and the corpus replay in `tests/rules/fuzz_corpus.rs`. Behind the
//! `fuzzing` feature; not part of the crate's API.
//!
//! [`rules`] reads the bytes as UTF-8 TOML and loads them ([`Rules::from_toml`]: TOML,
//! filters, CEL parsing and the static checks). A bad file must be refused with an error,
//! never a panic (a panic on the loading thread, which the loader turns into
//! [`RulesError::Parser`], counts as one). A file that loads routes fixed jobs, with these
//! properties: evaluation succeeds on a job object, gives the same decision twice,
//! serializes, traces only rules of the file, in file order, and is decided by a rule that
//! matched.

use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::{DecidedBy, Route, Rules, RulesError};

/// The caller's time every job is routed at: 2026-01-01T00:00:00Z.
pub const NOW_MS: i64 = 1_767_225_600_000;

/// The jobs every loaded file routes: fields the example rules file and docs/routing.md
/// use, with every JSON type, an empty job and one that names its task database.
fn jobs() -> &'static [Value] {
    static JOBS: OnceLock<Vec<Value>> = OnceLock::new();
    JOBS.get_or_init(|| {
        vec![
            json!({"job_id": "j1", "submitted_by": "alice", "deadline_ms": NOW_MS + 30_000,
                   "job_completion_mode": "multi_window", "job_objectives": [1, 2, 3, 4],
                   "job_priority_value": 7, "job_goal": {"kind": "translation", "lang": ["fr", "de"]},
                   "tags": ["a", "b"], "price": 12.5, "flag": true, "none": null}),
            json!({"job_id": "j2", "submitted_by": "acme-bot", "job_objectives": [],
                   "job_priority_value": -9_223_372_036_854_775_807_i64, "big": 18_446_744_073_709_551_615_u64,
                   "job_goal": "summarise", "text": "Ünïcödé\nline two", "f": 1e300}),
            json!({"task_db_id": "org-a", "job_priority_value": 1}),
            json!({}),
        ]
    })
}

/// Runs one input through the loader and, if it loads, routes the fixed jobs; panics on a
/// broken property.
pub fn rules(bytes: &[u8]) {
    let Ok(src) = std::str::from_utf8(bytes) else { return };
    let rules = match Rules::from_toml(src) {
        Ok(rules) => rules,
        Err(RulesError::Parser { message }) if message.contains("panicked") => {
            panic!("loading panicked: {message}")
        }
        Err(e) => {
            assert!(!e.to_string().is_empty(), "an error says nothing");
            return;
        }
    };
    let names: Vec<&str> = rules.rules().iter().map(|r| r.name()).collect();
    for job in jobs() {
        let decision = rules.evaluate(job, NOW_MS).unwrap_or_else(|e| panic!("job {job} is refused: {e}"));
        let again = rules.evaluate(job, NOW_MS).expect("the same job routes again");
        assert_eq!(decision, again, "routing is not deterministic");
        serde_json::to_value(&decision).expect("a decision serializes");
        if decision.decided_by == DecidedBy::TaskDbId {
            continue;
        }
        // The trace follows the file's order, without gaps from its first rule.
        assert!(decision.trace.len() <= names.len(), "more traces than rules");
        for (trace, name) in decision.trace.iter().zip(&names) {
            assert_eq!(trace.rule, *name, "the trace is out of file order");
        }
        match &decision.decided_by {
            DecidedBy::Rule(name) => assert!(
                decision.trace.iter().any(|t| t.matched && t.rule == *name),
                "decided by rule {name}, which did not match"
            ),
            DecidedBy::Default => {
                assert_eq!(decision.route, Route::Global, "no rule decided, yet not global")
            }
            DecidedBy::TaskDbId => unreachable!("handled above"),
        }
        if let Route::Search(search) = &decision.route {
            for entry in jobs() {
                let _ = search.matches(entry);
            }
        }
    }
}

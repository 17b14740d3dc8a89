//! Routing rules of the exchange service: which task database a submitted job goes to,
//! and what priority and tags it gets on the way.
//!
//! Routing follows the original Xchange: a job that names a task database
//! ([`TASK_DB_ID_FIELD`]) goes straight there and no rule is evaluated (the private path);
//! otherwise the rules are tried in order, and the first matching rule with a route
//! decides it (a named task database, or a search over the registry that the service
//! resolves); with no route from the rules the job goes to the global task database.
//!
//! Rules are data, never code: a TOML file ([`Rules::from_toml`]) of ordered `[[rule]]`
//! tables, each with a Mongo-style filter on the job (`when`, parsed by `xchange-filter`),
//! an optional CEL condition (`expr`) for what a filter cannot say (sizes, arithmetic,
//! comparisons between fields, the caller's time), and a `then` that routes, sets the
//! priority or adds tags. [`Rules::evaluate`] answers a [`Decision`] whose trace says, for
//! each rule looked at, whether it matched and why: the body of the explain endpoint.
//! `docs/routing.md` describes the file format, the semantics and the limits.
//!
//! ```
//! # use xchange_rules::{Rules, Route};
//! let rules = Rules::from_toml(r#"
//!     version = 1
//!     [[rule]]
//!     name = "big-jobs-to-gpu"
//!     when = { job_completion_mode = "multi_window" }
//!     expr = "size(job.job_objectives) > 3"
//!     then = { route = { taskdb = "gpu-pool" } }
//! "#).unwrap();
//! let job = serde_json::json!({"job_completion_mode": "multi_window", "job_objectives": [1, 2, 3, 4]});
//! let decision = rules.evaluate(&job, 0).unwrap();
//! assert_eq!(decision.route, Route::Explicit("gpu-pool".into()));
//! ```
//!
//! # Layout
//!
//! `file.rs` (the file as written, serde), `load.rs` (checks, to [`Rule`]s), `expr.rs`
//! (CEL: compile, bindings, evaluation), `check.rs` (static limits on CEL), `evaluate.rs`
//! (the routing order), `decision.rs` ([`Decision`], [`Route`]), `rule.rs`, `error.rs`.
//! With the `fuzzing` feature, `fuzzing.rs`: the fuzz target's logic, shared by `fuzz/`
//! and the corpus replay in `tests/rules/fuzz_corpus.rs`; not an API.
//!
//! # Purity
//!
//! No I/O, no async, no clock, no randomness: the caller passes the time (`now_ms`) and the
//! job; the same rules, job and time give the same decision. Loading parses CEL on a
//! short-lived thread of its own, for its stack (see [`Rules::from_toml`]); evaluation runs
//! on the caller's thread. Depends on `xchange-filter`, `cel` (default features off),
//! `toml`, `serde`, `serde_json` and `thiserror`; it must not depend on the protocol, the
//! engine, a store, a bus, tokio or any HTTP crate: the node maps [`JobError`] and
//! [`RulesError`] onto its status codes.

mod check;
mod decision;
mod error;
mod evaluate;
mod expr;
mod file;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod load;
mod rule;

pub use decision::{DecidedBy, Decision, Route, RuleTrace, Search};
pub use error::{JobError, RulesError};
pub use evaluate::explicit_task_db;
pub use expr::{JOB_VAR, NOW_VAR};
pub use load::{MAX_NAME_BYTES, MAX_TAG_BYTES};
pub use rule::Rule;

use serde_json::Value;

/// The field of a job document that names its task database explicitly.
pub const TASK_DB_ID_FIELD: &str = "task_db_id";
/// The rule name in the trace of a job routed by its own [`TASK_DB_ID_FIELD`]. Rule names
/// cannot contain parentheses, so no rule can be confused with it.
pub const EXPLICIT_TRACE_NAME: &str = "(task_db_id)";
/// The rules file version this build reads (`version = 1`).
pub const FILE_VERSION: i64 = 1;
/// Longest CEL condition, in bytes. Routing conditions are one or two lines; the limit
/// keeps the parser's work and error reports small.
pub const MAX_EXPR_BYTES: usize = 1024;
/// Deepest nesting of a CEL condition, as the parser counts it and as the depth of its
/// tree. Evaluation recurses once per level on the caller's stack (about 40 KiB a level
/// in a debug build, far less optimised), so this keeps a condition well inside a 2 MiB
/// thread stack; ordinary conditions are 3 to 8 levels deep.
pub const MAX_EXPR_DEPTH: usize = 12;
/// Most comprehension macros (`all`, `exists`, `exists_one`, `map`, `filter`) in one
/// condition; none may be inside another's body, so a condition's cost grows with the sum
/// of the sizes of the lists it walks, not their product.
pub const MAX_COMPREHENSIONS: usize = 2;

/// The stack of the thread that loads a rules file: the CEL parser (ANTLR-generated)
/// takes about 170 KiB per level of nesting in a debug build, more than a 2 MiB thread has
/// at [`MAX_EXPR_DEPTH`] (about 2 MiB); eight times that leaves room for error recovery.
const LOAD_STACK_BYTES: usize = 16 << 20;

/// A loaded, checked rules file. Cheap to share (`Send + Sync`); reloading means loading a
/// new one and swapping it in.
#[derive(Debug, Default)]
pub struct Rules {
    rules: Vec<Rule>,
}

impl Rules {
    /// No rules: jobs go where they name, or to the global task database.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Loads and checks a rules file; refuses the whole file at its first problem, naming
    /// the rule and the field.
    pub fn from_toml(src: &str) -> Result<Self, RulesError> {
        // CEL is parsed on a thread with a large stack, since the parser's recursion would
        // overflow (and abort the process on) the caller's at the depth limit.
        let loaded = std::thread::scope(|s| {
            let thread = std::thread::Builder::new()
                .name("xchange-rules-load".to_owned())
                .stack_size(LOAD_STACK_BYTES)
                .spawn_scoped(s, || load::load(src))
                .map_err(|e| RulesError::Parser {
                    message: format!("cannot start the loading thread: {e}"),
                })?;
            thread
                .join()
                .map_err(|_| RulesError::Parser { message: "the loading thread panicked".to_owned() })
        })?;
        Ok(Self { rules: loaded? })
    }

    /// Routes one job. `now_ms` is the caller's time in milliseconds since the epoch,
    /// visible to conditions as `now_ms`; the rules never read a clock.
    ///
    /// Fails only for a job that is not an object or whose [`TASK_DB_ID_FIELD`] is neither
    /// absent, null nor a non-empty string. A condition that fails on this job (a missing
    /// key, a type mismatch) does not fail the call: its rule does not match, and the
    /// trace says why.
    pub fn evaluate(&self, job: &Value, now_ms: i64) -> Result<Decision, JobError> {
        evaluate::evaluate(&self.rules, job, now_ms)
    }

    /// The rules, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// How many rules there are.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_can_be_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Rules>();
        send_sync::<Decision>();
    }

    #[test]
    fn empty_rules_route_to_global_or_to_the_named_database() {
        let rules = Rules::empty();
        let d = rules.evaluate(&serde_json::json!({"job_id": "1"}), 0).unwrap();
        assert_eq!((d.route, d.decided_by, d.trace), (Route::Global, DecidedBy::Default, vec![]));
        let d = rules.evaluate(&serde_json::json!({"task_db_id": "org-a"}), 0).unwrap();
        assert_eq!(d.route, Route::Explicit("org-a".into()));
    }
}

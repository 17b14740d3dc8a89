//! Why a rules file was refused ([`RulesError`]) and why a job could not be routed
//! ([`JobError`]).
//!
//! Messages are lower case without a trailing period. Every error about one rule names the
//! rule and the field (`when`, `expr`, `then.route.search`, ...), so that an operator can
//! find the line to fix.

use xchange_filter::FilterError;

/// Why a rules file was refused. Loading is all or nothing: one bad rule refuses the file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RulesError {
    /// Not TOML, or not of the expected shape: a syntax error, an unknown field (`whn`),
    /// a missing field (`name`, `then`), a value of the wrong type. The message is the TOML
    /// parser's, with the line and column.
    #[error("invalid rules file: {message}")]
    Toml {
        /// The parser's message.
        message: String,
    },
    /// The file has no `version` key.
    #[error("the rules file has no version: write `version = {}` at the top", crate::FILE_VERSION)]
    MissingVersion,
    /// The file is of a version this build does not read.
    #[error("rules file version {found} is not supported: this build reads version {}", crate::FILE_VERSION)]
    UnsupportedVersion {
        /// The version as written.
        found: String,
    },
    /// A rule name that is empty, too long, or has characters outside `[A-Za-z0-9_.-]`.
    #[error("rule {index}: invalid name {name:?}: {reason}")]
    InvalidName {
        /// The rule's position in the file, from 1.
        index: usize,
        /// The name as written.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two rules have the same name, so a trace could not say which one matched.
    #[error("rule {index}: the name {name:?} is already used by rule {first}")]
    DuplicateName {
        /// The name.
        name: String,
        /// The position of the first rule with that name, from 1.
        first: usize,
        /// The position of this rule, from 1.
        index: usize,
    },
    /// A filter (`when`, `then.route.search`) that is neither a table nor a string holding
    /// a JSON object, or that holds a value JSON cannot express (a TOML datetime).
    #[error("rule {rule:?}, {field}: {reason}")]
    FilterSyntax {
        /// The rule.
        rule: String,
        /// `when` or `then.route.search`.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A filter the filter crate refuses: unknown operator, bad operand, bad path, ...
    #[error("rule {rule:?}, {field}: {source}")]
    Filter {
        /// The rule.
        rule: String,
        /// `when` or `then.route.search`.
        field: &'static str,
        /// The filter crate's reason.
        source: FilterError,
    },
    /// A CEL expression longer than [`crate::MAX_EXPR_BYTES`].
    #[error("rule {rule:?}, expr: {len} bytes, over the limit of {max}")]
    ExprTooLong {
        /// The rule.
        rule: String,
        /// The expression's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A CEL expression that does not parse. The message is the CEL parser's.
    #[error("rule {rule:?}, expr: syntax error: {message}")]
    ExprSyntax {
        /// The rule.
        rule: String,
        /// The parser's message.
        message: String,
    },
    /// A CEL expression nested deeper than [`crate::MAX_EXPR_DEPTH`].
    #[error("rule {rule:?}, expr: nested deeper than {max} levels")]
    ExprTooDeep {
        /// The rule.
        rule: String,
        /// The limit.
        max: usize,
    },
    /// A CEL expression with more than [`crate::MAX_COMPREHENSIONS`] comprehension macros
    /// (`all`, `exists`, `exists_one`, `map`, `filter`), or one inside another.
    #[error("rule {rule:?}, expr: {reason}")]
    ExprTooCostly {
        /// The rule.
        rule: String,
        /// Which limit.
        reason: String,
    },
    /// A CEL expression that names a variable other than `job` and `now_ms` (a typo such
    /// as `jobs.x` would otherwise fail on every job).
    #[error("rule {rule:?}, expr: unknown variable {name:?}: expressions see `job` and `now_ms`")]
    ExprUnknownVariable {
        /// The rule.
        rule: String,
        /// The variable as written.
        name: String,
    },
    /// A CEL expression whose result is certainly not a bool (`job.priority + 1`, `"x"`).
    #[error("rule {rule:?}, expr: must yield a bool, but yields {found}")]
    ExprNotBool {
        /// The rule.
        rule: String,
        /// What it yields instead.
        found: &'static str,
    },
    /// `continue = true` on a rule that routes: the route would end evaluation anyway.
    #[error(
        "rule {rule:?}, then: a rule with a route cannot continue; put rules that only set \
         priority or tags before it, with continue = true"
    )]
    ContinueWithRoute {
        /// The rule.
        rule: String,
    },
    /// `continue = true` on a rule with no route, priority nor tags: it would do nothing.
    #[error("rule {rule:?}, then: does nothing (no route, priority or tags, and continue = true)")]
    NoEffect {
        /// The rule.
        rule: String,
    },
    /// An empty or over-long tag, or one with control characters.
    #[error("rule {rule:?}, then.add_tags: invalid tag {tag:?}: {reason}")]
    InvalidTag {
        /// The rule.
        rule: String,
        /// The tag as written.
        tag: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An empty task database name, or one with surrounding white space.
    #[error("rule {rule:?}, then.route.taskdb: invalid task database name {name:?}")]
    InvalidTaskDb {
        /// The rule.
        rule: String,
        /// The name as written.
        name: String,
    },
    /// The CEL parser could not be run (the system refused the thread it runs on) or
    /// failed inside; not a fault of the file.
    #[error("the expression parser failed: {message}")]
    Parser {
        /// What happened.
        message: String,
    },
}

/// Why a job could not be routed. The service answers such a job with "schema invalid".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The job document is not a JSON object.
    #[error("a job must be a JSON object, found {found}")]
    NotAnObject {
        /// The JSON type found.
        found: &'static str,
    },
    /// `task_db_id` is present but is not a non-empty string (null counts as absent).
    #[error("{} must be a non-empty string or null, found {found}", crate::TASK_DB_ID_FIELD)]
    InvalidTaskDbId {
        /// What was found: a JSON type, or "an empty string".
        found: &'static str,
    },
}

/// The JSON type of a value, for messages.
pub(crate) fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a bool",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

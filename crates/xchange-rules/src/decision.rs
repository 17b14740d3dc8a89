//! What [`crate::Rules::evaluate`] answers: where the job goes, what priority and tags the
//! rules gave it, and a trace of every rule looked at, for the explain endpoint.
//!
//! Everything here serializes to JSON; a route serializes as it is written in the rules
//! file (`{"taskdb": "gpu"}`, `{"search": {...}}`, `"global"`).

use std::sync::Arc;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::Value;
use xchange_filter::Filter;

/// Where a job goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// Straight to this task database, named by the job ([`crate::TASK_DB_ID_FIELD`]) or
    /// by a rule: no search, no listing elsewhere.
    Explicit(String),
    /// To the task databases whose registry entries match the filter; the service
    /// resolves it against the registry.
    Search(Arc<Search>),
    /// To the global task database: no preference.
    Global,
}

impl Serialize for Route {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Explicit(db) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("taskdb", db)?;
                m.end()
            }
            Self::Search(search) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("search", search.source())?;
                m.end()
            }
            Self::Global => s.serialize_str("global"),
        }
    }
}

/// A search over registry entries, parsed at load, with the JSON it was parsed from (the
/// filter crate keeps no source, and the explain endpoint shows it).
#[derive(Debug)]
pub struct Search {
    filter: Filter,
    source: Value,
}

impl Search {
    pub(crate) fn new(filter: Filter, source: Value) -> Self {
        Self { filter, source }
    }

    /// The parsed filter, for matching or compiling to SQL.
    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    /// The filter as written, in JSON.
    pub fn source(&self) -> &Value {
        &self.source
    }

    /// Whether a registry entry matches.
    pub fn matches(&self, entry: &Value) -> bool {
        self.filter.matches(entry)
    }
}

impl PartialEq for Search {
    /// Two searches are equal when written alike: a parsed filter has no equality.
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// What decided the route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecidedBy {
    /// The job's own [`crate::TASK_DB_ID_FIELD`]; no rule was evaluated.
    TaskDbId,
    /// The named rule's route.
    Rule(String),
    /// No rule gave a route: [`Route::Global`].
    Default,
}

/// One rule looked at, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleTrace {
    /// The rule's name, or [`crate::EXPLICIT_TRACE_NAME`] for the job's own task database.
    pub rule: String,
    /// Whether the rule matched and its `then` was applied.
    pub matched: bool,
    /// Why, for a person: what the `when` and the `expr` gave, and what was applied.
    pub why: String,
}

/// The outcome of routing one job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// Where the job goes.
    pub route: Route,
    /// What decided the route.
    pub decided_by: DecidedBy,
    /// The `job_priority_value` set by the rules (the last matching rule that sets one),
    /// if any; otherwise the job keeps its own.
    pub priority: Option<i64>,
    /// Tags added by the rules, in the order added, without duplicates; the job's own tags
    /// are not included.
    pub tags: Vec<String>,
    /// Every rule looked at, in order; rules after the one that stopped are not listed.
    pub trace: Vec<RuleTrace>,
}

//! One loaded, checked rule.

use xchange_filter::Filter;

use crate::Route;
use crate::expr::Expr;

/// A rule of a loaded rules file.
#[derive(Debug)]
pub struct Rule {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) when: Option<When>,
    pub(crate) expr: Option<Expr>,
    pub(crate) then: Then,
}

impl Rule {
    /// The rule's name, unique in its file.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The description, if the file gives one.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The route this rule gives when it matches, if any.
    pub fn route(&self) -> Option<&Route> {
        self.then.route.as_ref()
    }
}

/// A `when` filter and its compact JSON, for the trace.
#[derive(Debug)]
pub(crate) struct When {
    pub(crate) filter: Filter,
    pub(crate) text: String,
}

/// What a matching rule does.
#[derive(Debug)]
pub(crate) struct Then {
    pub(crate) route: Option<Route>,
    pub(crate) priority: Option<i64>,
    pub(crate) add_tags: Vec<String>,
    pub(crate) continue_: bool,
}

impl Then {
    /// What applying this does, for the trace: `-> route taskdb "gpu", priority 9; stop`.
    pub(crate) fn describe(&self) -> String {
        let mut parts = Vec::new();
        match &self.route {
            Some(Route::Explicit(db)) => parts.push(format!("route taskdb {db:?}")),
            Some(Route::Search(s)) => parts.push(format!("route search {}", s.source())),
            Some(Route::Global) => parts.push("route global".to_owned()),
            None => {}
        }
        if let Some(p) = self.priority {
            parts.push(format!("priority {p}"));
        }
        if !self.add_tags.is_empty() {
            parts.push(format!("tags {:?}", self.add_tags));
        }
        let flow = match (self.continue_, &self.route) {
            (true, _) => "continue",
            (false, Some(_)) => "stop",
            (false, None) => "stop with no route (global)",
        };
        if parts.is_empty() { format!("-> {flow}") } else { format!("-> {}; {flow}", parts.join(", ")) }
    }
}

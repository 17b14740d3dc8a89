//! Routing one job: the job's own task database first, then the rules in order, then the
//! global task database.

use serde_json::Value;

use crate::error::json_type;
use crate::expr::bindings;
use crate::rule::Rule;
use crate::{DecidedBy, Decision, EXPLICIT_TRACE_NAME, JobError, Route, RuleTrace, TASK_DB_ID_FIELD};

/// The task database a job names for itself, if any: the string in
/// [`TASK_DB_ID_FIELD`]. A null there counts as absent; anything else but a non-empty
/// string is refused, since routing the job elsewhere would ignore what its sender asked.
pub fn explicit_task_db(job: &Value) -> Result<Option<&str>, JobError> {
    let Some(obj) = job.as_object() else {
        return Err(JobError::NotAnObject { found: json_type(job) });
    };
    match obj.get(TASK_DB_ID_FIELD) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Err(JobError::InvalidTaskDbId { found: "an empty string" }),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(JobError::InvalidTaskDbId { found: json_type(other) }),
    }
}

pub(crate) fn evaluate(rules: &[Rule], job: &Value, now_ms: i64) -> Result<Decision, JobError> {
    if let Some(db) = explicit_task_db(job)? {
        let why =
            format!("the job names task database {db:?} in {TASK_DB_ID_FIELD}: rules are not evaluated");
        return Ok(Decision {
            route: Route::Explicit(db.to_owned()),
            decided_by: DecidedBy::TaskDbId,
            priority: None,
            tags: Vec::new(),
            trace: vec![RuleTrace { rule: EXPLICIT_TRACE_NAME.to_owned(), matched: true, why }],
        });
    }
    let mut decision = Decision {
        route: Route::Global,
        decided_by: DecidedBy::Default,
        priority: None,
        tags: Vec::new(),
        trace: Vec::with_capacity(rules.len()),
    };
    // Built on the first rule that needs it: converting the job to CEL costs a copy.
    let mut cel_bindings = None;
    for rule in rules {
        let mut why = match &rule.when {
            Some(w) if !w.filter.matches(job) => {
                decision.trace.push(not_matched(rule, format!("when {} did not match", w.text)));
                continue;
            }
            Some(w) => format!("when {} matched", w.text),
            None => "no when".to_owned(),
        };
        if let Some(expr) = &rule.expr {
            let ctx = cel_bindings.get_or_insert_with(|| bindings(job, now_ms));
            match expr.eval(ctx) {
                Ok(true) => why.push_str("; expr true"),
                Ok(false) => {
                    decision.trace.push(not_matched(rule, format!("{why}; expr `{}` false", expr.source())));
                    continue;
                }
                Err(reason) => {
                    let why = format!("{why}; {reason} -> rule skipped");
                    decision.trace.push(not_matched(rule, why));
                    continue;
                }
            }
        }
        let then = &rule.then;
        if let Some(p) = then.priority {
            decision.priority = Some(p);
        }
        for tag in &then.add_tags {
            if !decision.tags.contains(tag) {
                decision.tags.push(tag.clone());
            }
        }
        if let Some(route) = &then.route {
            decision.route = route.clone();
            decision.decided_by = DecidedBy::Rule(rule.name.clone());
        }
        why.push(' ');
        why.push_str(&then.describe());
        decision.trace.push(RuleTrace { rule: rule.name.clone(), matched: true, why });
        if !then.continue_ {
            break;
        }
    }
    Ok(decision)
}

fn not_matched(rule: &Rule, why: String) -> RuleTrace {
    RuleTrace { rule: rule.name.clone(), matched: false, why }
}

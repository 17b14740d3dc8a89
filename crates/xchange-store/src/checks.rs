//! Checks and decisions shared by the backends, so that both refuse exactly the same
//! input and decide every write the same way.

use serde_json::Value;

use crate::error::StoreError;
use crate::job::{Job, JobState, NewJob, Submitted, Transition};

/// Refuses an empty key or one with a NUL character (PostgreSQL cannot store it).
pub(crate) fn check_key(what: &str, key: &str) -> Result<(), StoreError> {
    if key.is_empty() {
        return Err(StoreError::InvalidInput(format!("{what} must not be empty")));
    }
    if key.contains('\0') {
        return Err(StoreError::InvalidInput(format!("{what} must not contain a NUL character")));
    }
    Ok(())
}

/// Refuses JSON with a NUL character in a string or key: PostgreSQL's JSONB refuses
/// `\u0000`, so SQLite must too, or a store could not be moved from one to the other.
pub(crate) fn check_json(what: &str, value: &Value) -> Result<(), StoreError> {
    fn has_nul(value: &Value) -> bool {
        match value {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().any(has_nul),
            Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            Value::Null | Value::Bool(_) | Value::Number(_) => false,
        }
    }
    if has_nul(value) {
        return Err(StoreError::InvalidInput(format!("{what} must not contain a NUL character in a string")));
    }
    Ok(())
}

pub(crate) fn check_new_job(job: &NewJob) -> Result<(), StoreError> {
    check_key("job_id", &job.job_id)?;
    check_key("taskdb", &job.taskdb)?;
    check_json("document", &job.document)?;
    let hash = job.body_hash.as_bytes();
    if hash.len() != 64 || !hash.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(StoreError::InvalidInput(
            "body_hash must be 64 lower-case hex digits (a SHA-256)".to_owned(),
        ));
    }
    Ok(())
}

pub(crate) fn check_transition_input(t: &Transition) -> Result<(), StoreError> {
    check_key("job_id", &t.job_id)?;
    check_key("event kind", &t.event.kind)?;
    check_json("event payload", &t.event.payload)?;
    if let Some(result) = &t.result {
        check_json("result", result)?;
    }
    Ok(())
}

/// The decision of [`Store::transition`] once the job's current state and version are
/// known (read under the write lock).
pub(crate) fn check_transition(t: &Transition, state: JobState, version: i64) -> Result<(), StoreError> {
    if version != t.expected_version {
        return Err(StoreError::StaleVersion {
            kind: "job",
            id: t.job_id.clone(),
            expected: t.expected_version,
            actual: version,
        });
    }
    if !state.can_transition_to(t.state) {
        return Err(StoreError::IllegalTransition { job_id: t.job_id.clone(), from: state, to: t.state });
    }
    Ok(())
}

/// Decides a submission that found `existing` under the same id.
pub(crate) fn replay_or_conflict(job: &NewJob, existing: Job) -> Result<Submitted, StoreError> {
    if existing.body_hash == job.body_hash && existing.taskdb == job.taskdb {
        Ok(Submitted::Existing(existing))
    } else {
        Err(StoreError::Conflict { job_id: job.job_id.clone() })
    }
}

/// Parses a `state` column.
pub(crate) fn parse_state(s: &str) -> Result<JobState, StoreError> {
    s.parse().map_err(|_| StoreError::Corrupt { table: "jobs", reason: format!("unknown state {s:?}") })
}

/// A `limit` as SQL wants it.
pub(crate) fn sql_limit(limit: u32) -> i64 {
    i64::from(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_characters_are_refused_anywhere() {
        assert!(check_json("d", &serde_json::json!({"a": [1, {"b": "x"}]})).is_ok());
        assert!(check_json("d", &serde_json::json!({"a": [1, {"b": "x\u{0}"}]})).is_err());
        assert!(check_json("d", &serde_json::json!({"a\u{0}": 1})).is_err());
        assert!(check_key("k", "a\0b").is_err());
        assert!(check_key("k", "").is_err());
    }
}

//! Jobs, their state changes and their outbox events: the types that the hot path of
//! [`Store`](crate::Store) takes and returns.
//!
//! Times are Unix milliseconds as `i64` and are passed in by the caller (the store reads
//! no clock, so tests and replays control time). Versions and event ids are `i64` because
//! both SQL backends store signed 64-bit integers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::StoreError;
use crate::lease::Fence;

/// The kind of the event written with every newly created job.
pub const JOB_POSTING: &str = "job_posting";

/// A job's lifecycle state as the exchange service records it.
///
/// `submitted` is only entered by [`Store::submit_job`](crate::Store::submit_job); the four terminal states are
/// final (see [`Store::transition`](crate::Store::transition)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Accepted and durable, not yet announced.
    Submitted,
    /// A call for proposals is out.
    Announced,
    /// Awarded to a contractor.
    Awarded,
    /// The contractor is executing it.
    Running,
    /// Terminal: the result was accepted.
    Completed,
    /// Terminal: the job failed.
    Failed,
    /// Terminal: the job was cancelled.
    Cancelled,
    /// Terminal: the deadline passed.
    Expired,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [Self; 8] = [
        Self::Submitted,
        Self::Announced,
        Self::Awarded,
        Self::Running,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
        Self::Expired,
    ];

    /// The name stored in the `state` column and used as an event kind.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Submitted => "submitted",
            Self::Announced => "announced",
            Self::Awarded => "awarded",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }

    /// Whether the state is final.
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled | Self::Expired)
    }

    /// Whether the store lets a job in state `self` move to `to`.
    ///
    /// The store guards only what must never happen whoever drives the job: leaving a
    /// terminal state, and re-entering `submitted`. Which non-terminal moves make sense
    /// (re-announcing, moving a provisional award) is the engine's business; a move to the
    /// same non-terminal state is allowed, to record an event with a version bump.
    pub const fn can_transition_to(self, to: Self) -> bool {
        !self.is_terminal() && !matches!(to, Self::Submitted)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| StoreError::InvalidInput(format!("unknown job state {s:?}")))
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The primary key, chosen by the submitter.
    pub job_id: String,
    /// The task database the job was submitted to.
    pub taskdb: String,
    /// The current state.
    pub state: JobState,
    /// The job document with its original Xchange field names, opaque to the store.
    pub document: Value,
    /// Hex SHA-256 of the canonical submitted body, as given by the caller.
    pub body_hash: String,
    /// The result, as set by the last transition.
    pub result: Option<Value>,
    /// A status code explaining the state (for failures), as set by the last transition.
    pub reason_code: Option<i32>,
    /// When the job was created.
    pub created_ms: i64,
    /// When the job last changed.
    pub updated_ms: i64,
    /// 1 at creation, incremented by every change.
    pub version: i64,
    /// The partition the job belongs to (see [`Fence`]); 0 for a job created unfenced.
    pub partition: i32,
}

impl Job {
    /// The job as a filter sees it (see [`Store`](crate::Store#filters)): the document's
    /// fields, with `job_id`, `taskdb`, `state`, `created_ms` and `updated_ms` overlaid at
    /// the top level. A document that is not an object contributes no field.
    pub fn filter_view(&self) -> Value {
        overlay(
            &self.document,
            [
                ("job_id", Value::from(self.job_id.as_str())),
                ("taskdb", Value::from(self.taskdb.as_str())),
                ("state", Value::from(self.state.as_str())),
                ("created_ms", Value::from(self.created_ms)),
                ("updated_ms", Value::from(self.updated_ms)),
            ],
        )
    }

    /// The job that `job` creates.
    pub(crate) fn created(job: &NewJob) -> Self {
        Self {
            job_id: job.job_id.clone(),
            taskdb: job.taskdb.clone(),
            state: JobState::Submitted,
            document: job.document.clone(),
            body_hash: job.body_hash.clone(),
            result: None,
            reason_code: None,
            created_ms: job.now_ms,
            updated_ms: job.now_ms,
            version: 1,
            partition: job.fence.map_or(0, |fence| fence.partition),
        }
    }

    /// Applies a transition that [`check_transition`](crate::checks::check_transition)
    /// accepted.
    pub(crate) fn apply(&mut self, t: &Transition) {
        self.state = t.state;
        self.result.clone_from(&t.result);
        self.reason_code = t.reason_code;
        self.updated_ms = t.now_ms;
        self.version += 1;
    }
}

/// A document's fields (none if it is not an object) with `fields` set over them: the
/// filter view of every record type.
pub(crate) fn overlay<const N: usize>(document: &Value, fields: [(&str, Value); N]) -> Value {
    let mut view = match document {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    for (name, value) in fields {
        view.insert(name.to_owned(), value);
    }
    Value::Object(view)
}

/// A job to create with [`Store::submit_job`](crate::Store::submit_job).
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// The primary key: not empty, no NUL character.
    pub job_id: String,
    /// The task database: not empty, no NUL character.
    pub taskdb: String,
    /// The job document (no NUL character in any string: PostgreSQL refuses them).
    pub document: Value,
    /// 64 lower-case hex digits: the SHA-256 of the canonical submitted body.
    pub body_hash: String,
    /// The creation time.
    pub now_ms: i64,
    /// With a fence, the job is created in its partition, and only while the partition's
    /// lease is at its epoch (else [`StoreError::Fenced`]); without, in partition 0,
    /// unconditionally (one process that leases nothing).
    pub fence: Option<Fence>,
}

/// What [`Store::submit_job`](crate::Store::submit_job) did.
#[derive(Debug, Clone, PartialEq)]
pub enum Submitted {
    /// The job was new: it and its `job_posting` event are committed.
    Created(Job),
    /// The same job id with the same body hash and task database was submitted before:
    /// nothing was written, this is the stored job as it is now.
    Existing(Job),
}

impl Submitted {
    /// The job, created or found.
    pub fn job(&self) -> &Job {
        match self {
            Self::Created(job) | Self::Existing(job) => job,
        }
    }

    /// The job, created or found.
    pub fn into_job(self) -> Job {
        match self {
            Self::Created(job) | Self::Existing(job) => job,
        }
    }

    /// Whether this call created the job.
    pub fn is_created(&self) -> bool {
        matches!(self, Self::Created(_))
    }
}

/// An event to write with a change, in the same transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// What happened: a state name, `job_notification`, ... (not empty).
    pub kind: String,
    /// Anything the event's readers need; opaque to the store.
    pub payload: Value,
}

/// A conditional job state change for [`Store::transition`](crate::Store::transition).
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The job.
    pub job_id: String,
    /// The version the caller read; the change applies only if the job is still at it.
    pub expected_version: i64,
    /// The new state.
    pub state: JobState,
    /// The job's result after the change (`None` clears it).
    pub result: Option<Value>,
    /// The job's reason code after the change (`None` clears it).
    pub reason_code: Option<i32>,
    /// The event recorded with the change.
    pub event: NewEvent,
    /// The change's time: the job's `updated_ms` and the event's `at_ms`.
    pub now_ms: i64,
    /// With a fence, the change applies only if the job is in the fence's partition and
    /// the partition's lease is still at its epoch (else [`StoreError::Fenced`]).
    pub fence: Option<Fence>,
}

/// An outbox event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Increasing in commit order (see [`Store::events_after`](crate::Store::events_after)); ids may have gaps.
    pub id: i64,
    /// The job the event is about.
    pub job_id: String,
    /// What happened ([`JOB_POSTING`], a state name, ...).
    pub kind: String,
    /// The payload. For [`JOB_POSTING`]: `{"taskdb": ..., "document": ...}`, so that a
    /// relay can publish it without reading the jobs table.
    pub payload: Value,
    /// When it happened.
    pub at_ms: i64,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn state_names_round_trip() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>().ok(), Some(state));
            assert_eq!(serde_json::to_value(state).ok(), Some(Value::String(state.as_str().to_owned())));
        }
        assert!("pending".parse::<JobState>().is_err());
    }

    #[test]
    fn terminal_states_are_final() {
        for from in JobState::ALL {
            for to in JobState::ALL {
                let allowed = !from.is_terminal() && to != JobState::Submitted;
                assert_eq!(from.can_transition_to(to), allowed, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn the_filter_view_overlays_the_columns() {
        let mut job = Job::created(&NewJob {
            job_id: "j".into(),
            taskdb: "db".into(),
            document: json!({"submitted_by": "alice", "state": "forged", "job_id": 7}),
            body_hash: "0".repeat(64),
            now_ms: 5,
            fence: None,
        });
        job.updated_ms = 9;
        job.state = JobState::Running;
        assert_eq!(
            job.filter_view(),
            json!({"submitted_by": "alice", "state": "running", "job_id": "j", "taskdb": "db",
                   "created_ms": 5, "updated_ms": 9})
        );
        job.document = json!([1, 2]);
        assert_eq!(job.filter_view().as_object().map(Map::len), Some(5));
    }
}

//! The [`Store`] trait and the types it takes and returns.
//!
//! Times are Unix milliseconds as `i64` and are passed in by the caller (the store reads
//! no clock, so tests and replays control time). Versions and event ids are `i64` because
//! both SQL backends store signed 64-bit integers.

use std::fmt;
use std::future::Future;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StoreError;

/// The kind of the event written with every newly created job.
pub const JOB_POSTING: &str = "job_posting";

/// A job's lifecycle state as the exchange service records it.
///
/// `submitted` is only entered by [`Store::submit_job`]; the four terminal states are
/// final (see [`Store::transition`]).
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
}

/// A job to create with [`Store::submit_job`].
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
}

/// What [`Store::submit_job`] did.
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

/// A conditional job state change for [`Store::transition`].
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
}

/// An outbox event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Increasing in commit order (see [`Store::events_after`]); ids may have gaps.
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

/// A task database registry entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskDb {
    /// The key (`task_listing_db_id` in the original Xchange schema).
    pub task_listing_db_id: String,
    /// The entry (`task_listing_db_api_url`, `association_ids`, ...), opaque to the store.
    pub document: Value,
    /// When the entry was first created (since its last deletion).
    pub created_ms: i64,
    /// When it last changed.
    pub updated_ms: i64,
    /// 1 at creation, incremented by every put.
    pub version: i64,
}

/// A job template: a schema that submissions are checked against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// The key.
    pub name: String,
    /// The schema, opaque to the store.
    pub schema: Value,
    /// When the template was first put (a replacement keeps it).
    pub created_ms: i64,
}

/// What the database connection reports about durability, read back from the connection
/// rather than from the options the store asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum Durability {
    /// SQLite's pragmas on the writing connection.
    Sqlite {
        /// `PRAGMA journal_mode`: `wal` expected.
        journal_mode: String,
        /// `PRAGMA synchronous` by name: `FULL` expected (`EXTRA` is stronger still).
        synchronous: String,
        /// `PRAGMA foreign_keys`.
        foreign_keys: bool,
        /// `PRAGMA busy_timeout`, in milliseconds.
        busy_timeout_ms: i64,
    },
    /// PostgreSQL's settings on a pooled connection.
    Postgres {
        /// `SHOW synchronous_commit`: `on` expected (`remote_write`, `remote_apply` are
        /// stronger with synchronous replicas).
        synchronous_commit: String,
        /// `SHOW fsync`: `on` expected; `off` makes every commit a lie.
        fsync: String,
    },
}

impl Durability {
    /// Whether a commit that returned survives a power loss of this machine.
    pub fn is_durable(&self) -> bool {
        match self {
            Self::Sqlite { journal_mode, synchronous, .. } => {
                journal_mode.eq_ignore_ascii_case("wal") && matches!(synchronous.as_str(), "FULL" | "EXTRA")
            }
            Self::Postgres { synchronous_commit, fsync } => {
                fsync == "on" && matches!(synchronous_commit.as_str(), "on" | "remote_write" | "remote_apply")
            }
        }
    }
}

/// Durable storage for the exchange service: jobs with their outbox of events, the task
/// database registry, and templates.
///
/// Every method that writes returns after its transaction is committed durably (fsync'd
/// WAL), or with an error and nothing written. Lists are ordered by key in byte order and
/// paged by key (`after` is the last key of the previous page, `None` for the first);
/// a `limit` of 0 returns nothing.
///
/// The futures are `Send` so that callers can spawn them on a multi-threaded runtime.
pub trait Store: Send + Sync + 'static {
    /// Creates a job and its [`JOB_POSTING`] event in one transaction.
    ///
    /// Idempotent: if `job_id` exists with the same `body_hash` and `taskdb`, returns
    /// [`Submitted::Existing`] and writes nothing. With another body or task database,
    /// fails with [`StoreError::Conflict`].
    fn submit_job(&self, job: NewJob) -> impl Future<Output = Result<Submitted, StoreError>> + Send;

    /// The job, or [`StoreError::NotFound`].
    fn get_job(&self, job_id: &str) -> impl Future<Output = Result<Job, StoreError>> + Send;

    /// Up to `limit` jobs with `job_id > after`, in `job_id` order; only those of `taskdb`
    /// when it is given.
    fn list_jobs(
        &self,
        taskdb: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Job>, StoreError>> + Send;

    /// Changes a job's state, result and reason code, increments its version and writes
    /// the event, in one transaction; returns the job as changed.
    ///
    /// Checked in this order: [`StoreError::NotFound`]; [`StoreError::StaleVersion`] when
    /// the job is no longer at `expected_version`; [`StoreError::IllegalTransition`] when
    /// the job is in a terminal state or the new state is `submitted`. On any error
    /// nothing is written, the event included.
    fn transition(&self, t: Transition) -> impl Future<Output = Result<Job, StoreError>> + Send;

    /// Up to `limit` events with `id > after`, in id order.
    ///
    /// Ids become visible in increasing order (a transaction that took a smaller id has
    /// committed before a larger one is visible), so a reader that resumes after the last
    /// id it processed misses nothing. Ids may have gaps (rolled-back transactions).
    fn events_after(
        &self,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Event>, StoreError>> + Send;

    /// The largest event id, 0 when there is none: where a new reader that wants only
    /// future events starts.
    fn last_event_id(&self) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Creates or replaces a registry entry and returns it.
    ///
    /// Creating sets version 1; replacing increments the version. With
    /// `expected_version`, the put applies only if the entry is at that version (0: does
    /// not exist), else [`StoreError::StaleVersion`]. Versions restart at 1 after a
    /// delete.
    fn put_taskdb(
        &self,
        task_listing_db_id: &str,
        document: Value,
        expected_version: Option<i64>,
        now_ms: i64,
    ) -> impl Future<Output = Result<TaskDb, StoreError>> + Send;

    /// The registry entry, or [`StoreError::NotFound`].
    fn get_taskdb(&self, task_listing_db_id: &str)
    -> impl Future<Output = Result<TaskDb, StoreError>> + Send;

    /// Deletes the registry entry, or fails with [`StoreError::NotFound`].
    fn delete_taskdb(&self, task_listing_db_id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to `limit` registry entries with a key greater than `after`, in key order.
    fn list_taskdbs(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<TaskDb>, StoreError>> + Send;

    /// Creates or replaces a template and returns it (a replacement keeps `created_ms`).
    fn put_template(
        &self,
        name: &str,
        schema: Value,
        now_ms: i64,
    ) -> impl Future<Output = Result<Template, StoreError>> + Send;

    /// The template, or [`StoreError::NotFound`].
    fn get_template(&self, name: &str) -> impl Future<Output = Result<Template, StoreError>> + Send;

    /// Up to `limit` templates with a name greater than `after`, in name order.
    fn list_templates(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Template>, StoreError>> + Send;

    /// What the connection reports about durability (see [`Durability::is_durable`]).
    fn durability_settings(&self) -> impl Future<Output = Result<Durability, StoreError>> + Send;

    /// Closes the connections, waiting for those in use to be returned. Calls after this
    /// fail.
    fn close(&self) -> impl Future<Output = ()> + Send;
}

// Checks shared by the backends, so that both refuse exactly the same input.

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

/// The payload of a job's [`JOB_POSTING`] event.
pub(crate) fn posting_payload(job: &NewJob) -> Value {
    serde_json::json!({ "taskdb": job.taskdb, "document": job.document })
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
    fn nul_characters_are_refused_anywhere() {
        assert!(check_json("d", &serde_json::json!({"a": [1, {"b": "x"}]})).is_ok());
        assert!(check_json("d", &serde_json::json!({"a": [1, {"b": "x\u{0}"}]})).is_err());
        assert!(check_json("d", &serde_json::json!({"a\u{0}": 1})).is_err());
        assert!(check_key("k", "a\0b").is_err());
        assert!(check_key("k", "").is_err());
    }
}

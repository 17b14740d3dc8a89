//! The job document: the original Xchange `JobCoreData` fields, plus what the exchange
//! needs to run it, and how it becomes a task of the engine.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use xchange_protocol::{Budget, Code, TaskSpec, is_valid_name};
use xchange_store::{Job, JobState};

use crate::error::ApiError;

/// The longest job id.
pub(crate) const MAX_JOB_ID_LEN: usize = 128;

/// A job as submitted. The first ten fields are the original `JobCoreData` (their names
/// are kept so that users of the original Xchange recognise them); the rest say what the
/// exchange needs to run it. Unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobDocument {
    /// Unique id chosen by the submitter (1-128 printable characters). Submitting the same
    /// id with the same body again returns the stored job; with another body, a conflict.
    /// Generated (a UUIDv7) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 128, pattern = r"^[^/\x00-\x1f\x7f-\x9f]*$")]
    pub job_id: Option<String>,
    /// What the job is for (any JSON).
    pub job_goal: Value,
    /// Its objectives (any JSON).
    #[serde(default)]
    pub job_objectives: Value,
    /// Higher runs first when agents are scarce (-1,000,000 to 1,000,000).
    #[serde(default, deserialize_with = "crate::body::whole::required")]
    #[schema(minimum = -1_000_000, maximum = 1_000_000)]
    pub job_priority_value: i64,
    /// `single_window` (one execution) or `multi_window`.
    #[serde(default)]
    pub job_completion_mode: CompletionMode,
    /// How the job may be steered while it runs (kept, not interpreted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_steerability_data: Option<Value>,
    /// A pointer to a knowledge base (kept, not interpreted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_knowledge_base_reference_ptr: Option<Value>,
    /// The job's input: what the contractor receives (a program wrapped by
    /// `xchange agent run` reads it on stdin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_init_data: Option<Value>,
    /// Who submitted it (not blank).
    #[schema(pattern = r"[^\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")]
    pub submitted_by: String,
    /// Service-level terms (kept, not interpreted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_sla_terms_json: Option<Value>,

    /// The capability a contractor needs: 1-64 of `[A-Za-z0-9_-]`.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub capability: String,
    /// The task database to submit to; routing rules decide when absent (else `global`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub task_db_id: Option<String>,
    /// Search constraints: a filter over registry entries that picks the task database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub search: Option<Value>,
    /// A registered template whose schema `job_init_data` must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub template: Option<String>,
    /// A JSON Schema `job_init_data` must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub input_schema: Option<Value>,
    /// A JSON Schema the result must match; a result that does not is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub output_schema: Option<Value>,
    /// Unix milliseconds after which the job expires if not completed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::body::whole::optional"
    )]
    pub deadline_ms: Option<u64>,
    /// Limits the whole job tree draws from.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::body::optional_object"
    )]
    pub budget: Option<JobBudget>,
    /// Executions that may fail before the job fails (default 3).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::body::whole::optional"
    )]
    pub retry_limit: Option<u32>,
    /// The highest price accepted from one contractor.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::body::whole::optional"
    )]
    pub max_price: Option<u64>,
    /// Estimated amount of work (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0)]
    pub size: Option<f64>,
    /// `public` (default) or `private` (only the task database's members see it).
    #[serde(default)]
    pub visibility: Visibility,
    /// Free tags (1-64 characters each); routing rules may add more.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(schema_with = tags_schema)]
    pub tags: Vec<String>,
}

/// `tags`: strings of 1-64 characters.
fn tags_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    let tag =
        ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).max_length(Some(MAX_TAG_LEN));
    ArrayBuilder::new()
        .items(tag)
        .description(Some("Free tags (1-64 characters each); routing rules may add more."))
        .build()
}

/// `job_completion_mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CompletionMode {
    /// One execution produces the result.
    #[default]
    SingleWindow,
    /// The job may run over several windows (kept for compatibility; executed as one).
    MultiWindow,
}

/// Who may see and run a job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Anyone.
    #[default]
    Public,
    /// The task database's members only.
    Private,
}

/// A job's budget. Absent fields are the node's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobBudget {
    /// Total price that may be paid to contractors.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::body::whole::optional"
    )]
    pub price: Option<u64>,
    /// Subtasks the job tree may create.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::body::whole::optional"
    )]
    pub subtasks: Option<u32>,
    /// Protocol messages the job tree may use.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::body::whole::optional"
    )]
    pub messages: Option<u32>,
    /// Retries and reassignments.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::body::whole::optional"
    )]
    pub retries: Option<u32>,
}

impl JobBudget {
    /// This budget with the node's `defaults` where a field is absent.
    pub fn or(self, defaults: Budget) -> Budget {
        Budget {
            price: self.price.unwrap_or(defaults.price),
            subtasks: self.subtasks.unwrap_or(defaults.subtasks),
            messages: self.messages.unwrap_or(defaults.messages),
            retries: self.retries.unwrap_or(defaults.retries),
        }
    }
}

/// The longest tag, in characters.
const MAX_TAG_LEN: usize = 64;

const PRIORITY_RANGE: std::ops::RangeInclusive<i64> = -1_000_000..=1_000_000;

impl JobDocument {
    /// Checks what serde cannot: names, ranges, ids, the deadline against `now_ms`.
    pub fn check(&self, now_ms: u64) -> Result<(), ApiError> {
        if let Some(id) = &self.job_id {
            check_job_id(id)?;
        }
        if !is_valid_name(&self.capability) {
            return Err(ApiError::schema("capability must be 1-64 of [A-Za-z0-9_-]").at("capability"));
        }
        if let Some(db) = &self.task_db_id
            && !is_valid_name(db)
        {
            return Err(ApiError::schema("task_db_id must be 1-64 of [A-Za-z0-9_-]").at("task_db_id"));
        }
        if self.submitted_by.trim().is_empty() {
            return Err(ApiError::schema("submitted_by must not be empty").at("submitted_by"));
        }
        if !PRIORITY_RANGE.contains(&self.job_priority_value) {
            return Err(ApiError::schema("job_priority_value must be between -1000000 and 1000000")
                .at("job_priority_value"));
        }
        if let Some(size) = self.size
            && !(size.is_finite() && size > 0.0)
        {
            return Err(ApiError::schema("size must be a positive number").at("size"));
        }
        if let Some(deadline) = self.deadline_ms
            && deadline <= now_ms
        {
            return Err(ApiError::new(
                Code::InvalidRequest,
                format!("deadline_ms {deadline} is in the past"),
            )
            .at("deadline_ms"));
        }
        if let Some(i) = self.tags.iter().position(|t| t.is_empty() || t.chars().count() > MAX_TAG_LEN) {
            return Err(ApiError::schema("tags must be 1-64 characters").at(format!("tags[{i}]")));
        }
        Ok(())
    }

    /// The task the engine runs for this job in task database `pool`.
    pub fn task_spec(&self, pool: &str, default_retry_limit: u32) -> TaskSpec {
        TaskSpec {
            capability: Arc::from(self.capability.as_str()),
            pool: Arc::from(pool),
            input: self.job_init_data.clone().unwrap_or(Value::Null),
            priority: self.job_priority_value,
            size: self.size.unwrap_or(1.0),
            deadline: self.deadline_ms,
            max_price: self.max_price,
            output_schema: self.output_schema.clone(),
            verifier: None,
            retry_limit: self.retry_limit.unwrap_or(default_retry_limit),
        }
    }
}

/// Refuses an empty, over-long (in characters) or non-printable job id, or one with a `/`
/// (the OpenAPI document says the same with a pattern).
pub(crate) fn check_job_id(id: &str) -> Result<(), ApiError> {
    let bad = |c: char| c.is_control() || c == '/';
    if id.is_empty() || id.chars().count() > MAX_JOB_ID_LEN || id.chars().any(bad) {
        return Err(ApiError::schema("job_id must be 1-128 printable characters without '/'").at("job_id"));
    }
    Ok(())
}

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    /// The job id.
    pub job_id: String,
    /// The task database it runs in.
    pub taskdb: String,
    /// `submitted`, `announced`, `awarded`, `running`, `completed`, `failed`, `cancelled`
    /// or `expired`.
    pub state: String,
    /// The job document as submitted (with `job_id` filled in).
    #[schema(value_type = Object)]
    pub document: Value,
    /// The accepted result, once completed (any JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Why the job is in its state, for failures and cancellations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// When it was accepted (Unix ms).
    pub created_ms: i64,
    /// When it last changed (Unix ms).
    pub updated_ms: i64,
    /// Incremented by every change.
    pub version: i64,
}

/// A status code with its name.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Reason {
    /// The code, e.g. 5026.
    pub code: u16,
    /// Its name, e.g. `retry_limit`.
    pub name: String,
}

impl Reason {
    /// The reason for `code`.
    pub fn of(code: Code) -> Self {
        Self { code: code.number(), name: code.name().to_owned() }
    }
}

impl From<Job> for JobView {
    fn from(job: Job) -> Self {
        let reason = job
            .reason_code
            .and_then(|c| u16::try_from(c).ok())
            .and_then(Code::from_number)
            .filter(|_| job.state != JobState::Completed)
            .map(Reason::of);
        Self {
            job_id: job.job_id,
            taskdb: job.taskdb,
            state: job.state.as_str().to_owned(),
            document: job.document,
            result: job.result,
            reason,
            created_ms: job.created_ms,
            updated_ms: job.updated_ms,
            version: job.version,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn doc(v: Value) -> JobDocument {
        serde_json::from_value(v).unwrap()
    }

    fn minimal() -> Value {
        json!({"job_goal": "echo", "submitted_by": "alice", "capability": "echo"})
    }

    #[test]
    fn minimal_document_gets_defaults() {
        let d = doc(minimal());
        assert_eq!(d.job_completion_mode, CompletionMode::SingleWindow);
        assert_eq!(d.visibility, Visibility::Public);
        assert_eq!(d.task_db_id, None);
        assert!(d.check(0).is_ok());
        let spec = d.task_spec("global", 3);
        assert_eq!((&*spec.capability, spec.retry_limit, spec.input.clone()), ("echo", 3, Value::Null));
    }

    #[test]
    fn checks_refuse_with_the_field() {
        let cases = [
            (json!({"capability": "ec ho"}), "capability"),
            (json!({"task_db_id": "a.b"}), "task_db_id"),
            (json!({"submitted_by": " "}), "submitted_by"),
            (json!({"job_priority_value": 2_000_000}), "job_priority_value"),
            (json!({"size": 0.0}), "size"),
            (json!({"deadline_ms": 5}), "deadline_ms"),
            (json!({"job_id": ""}), "job_id"),
            (json!({"job_id": "a/b"}), "job_id"),
            (json!({"tags": ["ok", ""]}), "tags[1]"),
        ];
        for (patch, field) in cases {
            let mut v = minimal();
            for (k, x) in patch.as_object().unwrap() {
                v[k] = x.clone();
            }
            let err = doc(v).check(10).unwrap_err();
            assert_eq!(err.field.as_deref(), Some(field), "{err}");
        }
    }

    #[test]
    fn budget_fills_defaults() {
        let b = JobBudget { price: Some(5), subtasks: None, messages: None, retries: Some(1) };
        let got = b.or(Budget { price: 1, subtasks: 2, messages: 3, retries: 4 });
        assert_eq!(got, Budget { price: 5, subtasks: 2, messages: 3, retries: 1 });
    }
}

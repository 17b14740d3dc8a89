//! What the conformance tests share: documents with the original Xchange field names, jobs,
//! transitions, and a few shortcuts.

use serde_json::{Value, json};
use xchange_store::{AnyStore, Event, Job, JobState, NewEvent, NewJob, Store, Submitted, Transition};

pub(crate) const T0: i64 = 1_700_000_000_000;

/// A job document with the original Xchange field names.
pub(crate) fn document(job_id: &str, n: u64) -> Value {
    json!({
        "job_id": job_id,
        "job_goal": {"text": format!("summarise report {n}"), "lang": "en"},
        "job_objectives": ["accuracy", "brevity"],
        "job_priority_value": n % 10,
        "job_completion_mode": "single_window",
        "job_steerability_data": null,
        "job_knowledge_base_reference_ptr": {"uri": "kb://reports", "version": 3},
        "job_init_data": {"max_words": 200, "ratio": 0.25, "big": 9_007_199_254_740_993_u64},
        "submitted_by": "agent:alice",
        "job_sla_terms_json": {"deadline_ms": 60_000, "unicode": "héllo ✓ 漢字"}
    })
}

/// A hex "SHA-256": the store only checks its shape.
pub(crate) fn hash(n: u64) -> String {
    format!("{n:064x}")
}

pub(crate) fn new_job(job_id: &str, taskdb: &str, n: u64) -> NewJob {
    NewJob {
        job_id: job_id.to_owned(),
        taskdb: taskdb.to_owned(),
        document: document(job_id, n),
        body_hash: hash(n),
        now_ms: T0 + n as i64,
        fence: None,
    }
}

pub(crate) fn to(job: &Job, state: JobState, now_ms: i64) -> Transition {
    Transition {
        job_id: job.job_id.clone(),
        expected_version: job.version,
        state,
        result: None,
        reason_code: None,
        event: NewEvent {
            kind: state.as_str().to_owned(),
            payload: json!({"state": state.as_str(), "at": now_ms}),
        },
        now_ms,
        fence: None,
    }
}

pub(crate) async fn created(store: &AnyStore, job: NewJob) -> Job {
    match store.submit_job(job).await {
        Ok(Submitted::Created(job)) => job,
        other => panic!("expected a created job, got {other:?}"),
    }
}

pub(crate) async fn all_events(store: &AnyStore) -> Vec<Event> {
    store.events_after(0, u32::MAX).await.expect("events")
}

//! Driving a job through the contract net and recording each step in the store.
//!
//! Each running job has a driver task that applies its steps in order. The steps come from
//! the runtime's events tap (announced, awarded, running, reassigned, finished), so the
//! history reads in the order the engine acted; drivers of different jobs run concurrently,
//! which lets the store commit their writes together. The tap may drop events when it
//! falls behind; the submission's own answer is therefore kept as a fallback and written
//! if the tap's `finished` does not come within [`FALLBACK_WAIT`].

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use xchange_core::{EngineConfig, EventKind, Submit};
use xchange_protocol::{Code, TaskState};
use xchange_runtime::TaskFailure;
use xchange_store::{Fence, Job, JobState, NewEvent, Store, StoreError, Transition};

use crate::job::JobDocument;
use crate::node::{JOB_NOTIFICATION, Node, RunningJob, now_ms, task_id_for};

/// How long a driver waits for the tap's `finished` once the submission has answered.
const FALLBACK_WAIT: Duration = Duration::from_secs(2);

/// What a job's driver is told.
#[derive(Debug)]
pub(crate) enum Progress {
    /// An intermediate state from the tap.
    Step(JobState, Value),
    /// The end, from the tap.
    Ended(Result<Arc<Value>, TaskFailure>),
    /// The end, from the submission's answer: used if the tap's does not come.
    Fallback(Result<Arc<Value>, TaskFailure>),
}

/// Where a running job's progress goes.
pub(crate) type JobLine = mpsc::UnboundedSender<Progress>;

/// A job as its events name it (the relay publishes each event under its task database),
/// with the fence its writes carry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JobRef<'a> {
    pub(crate) id: &'a str,
    pub(crate) taskdb: &'a str,
    pub(crate) fence: Fence,
    /// A private job: its events say so, for the readers who may not see them.
    pub(crate) private: bool,
}

impl<S: Store + Clone> Node<S> {
    /// Hands a stored job to the node's manager and starts its driver; its writes carry
    /// `fence`, the lease of its partition.
    pub(crate) fn dispatch(self: &Arc<Self>, job: &Job, fence: Fence) {
        let doc: JobDocument = match serde_json::from_value(job.document.clone()) {
            Ok(doc) => doc,
            Err(e) => {
                tracing::error!(job = %job.job_id, error = %e, "stored job document is unreadable");
                return;
            }
        };
        let task = task_id_for(&job.job_id, job.created_ms, &self.cluster.node_id);
        let mut submit = Submit::new(doc.task_spec(&job.taskdb, self.config.default_retry_limit));
        submit.task = Some(task);
        submit.budget = doc.budget.map(|b| b.or(EngineConfig::default().default_budget));
        let (tx, rx) = mpsc::unbounded_channel();
        // Held while spawning, so that the job's task cannot remove its entry before the
        // abort handle is in it.
        let mut running = self.running.lock();
        running.insert(job.job_id.clone(), RunningJob { task, fence, abort: None });
        self.jobs_by_task.lock().insert(task, tx.clone());
        let node = self.clone();
        let (job_id, taskdb, version) = (job.job_id.clone(), job.taskdb.clone(), job.version);
        let private = doc.visibility == crate::job::Visibility::Private;
        // One task per job: the submission and the driver run side by side in it.
        let handle = tokio::spawn(async move {
            let submission = async {
                // Private jobs go straight to a member (the private path): no call for proposals.
                let outcome = match node.directed_contractor(&taskdb, &doc).await {
                    Ok(contractor) => {
                        submit.contractor = contractor;
                        node.manager.submit_with(submit).await
                    }
                    Err(e) => Err(TaskFailure::new(TaskState::Failed, e.code, e.message)),
                };
                let _ = tx.send(Progress::Fallback(outcome));
            };
            tokio::join!(
                submission,
                node.drive(JobRef { id: &job_id, taskdb: &taskdb, fence, private }, version, rx)
            );
            node.running.lock().remove(&job_id);
            node.jobs_by_task.lock().remove(&task);
        });
        if let Some(entry) = running.get_mut(&job.job_id) {
            entry.abort = Some(handle.abort_handle());
        }
    }

    /// Applies a job's progress in order; `version` is the job's version as this driver
    /// last wrote it, so that a step costs one write and no read.
    async fn drive(&self, job: JobRef<'_>, mut version: i64, mut rx: mpsc::UnboundedReceiver<Progress>) {
        let mut fallback = None;
        loop {
            let next = match fallback {
                None => rx.recv().await,
                Some(_) => tokio::time::timeout(FALLBACK_WAIT, rx.recv()).await.ok().flatten(),
            };
            match next {
                Some(Progress::Step(state, detail)) => {
                    self.advance(job, Some(&mut version), state, None, None, detail).await;
                }
                Some(Progress::Ended(outcome)) => {
                    return self.finish(job, Some(&mut version), outcome).await;
                }
                Some(Progress::Fallback(outcome)) => fallback = Some(outcome),
                None => {
                    if let Some(outcome) = fallback {
                        self.finish(job, Some(&mut version), outcome).await;
                    }
                    return;
                }
            }
        }
    }

    /// Records a job's terminal state (`version`: see [`Self::advance`]).
    pub(crate) async fn finish(
        &self,
        job: JobRef<'_>,
        version: Option<&mut i64>,
        outcome: Result<Arc<Value>, TaskFailure>,
    ) {
        let (state, result, code, detail) = match outcome {
            Ok(result) => {
                let r = Value::clone(&result);
                (JobState::Completed, Some(r.clone()), Code::Processed, json!({"result": r}))
            }
            Err(f) => {
                let state = match f.state {
                    TaskState::Cancelled => JobState::Cancelled,
                    TaskState::Expired => JobState::Expired,
                    _ => JobState::Failed,
                };
                (state, None, f.code, json!({"reason": f.reason}))
            }
        };
        let counter = match state {
            JobState::Completed => &self.metrics.jobs_completed,
            JobState::Cancelled => &self.metrics.jobs_cancelled,
            JobState::Expired => &self.metrics.jobs_expired,
            _ => &self.metrics.jobs_failed,
        };
        if self.advance(job, version, state, result, Some(code), detail).await {
            counter.fetch_add(1, Relaxed);
        }
    }

    /// Moves a job to `state` with its event, retrying when another writer got there
    /// first; a job that already ended is left alone. Returns whether the change was
    /// written. With `known`, the write assumes that version (and updates it), reading
    /// the job only when another writer moved it.
    async fn advance(
        &self,
        job: JobRef<'_>,
        mut known: Option<&mut i64>,
        state: JobState,
        result: Option<Value>,
        code: Option<Code>,
        detail: Value,
    ) -> bool {
        let job_id = job.id;
        let manager =
            json!({"node": self.cluster.node_id, "partition": job.fence.partition, "epoch": job.fence.epoch});
        let mut payload = json!({"job_id": job_id, "taskdb": job.taskdb, "state": state.as_str(),
                                 "detail": detail, "manager": manager});
        if job.private {
            payload["visibility"] = json!("private");
        }
        if let Some(code) = code {
            payload["code"] = json!(code.number());
            payload["code_name"] = json!(code.name());
        }
        let mut assumed = known.as_deref().copied();
        loop {
            let expected_version = match assumed.take() {
                Some(v) => v,
                None => match self.store.get_job(job_id).await {
                    Ok(job) if job.state.is_terminal() => return false,
                    Ok(job) => job.version,
                    Err(e) => {
                        tracing::error!(job = %job_id, error = %e, "cannot read job to record its progress");
                        return false;
                    }
                },
            };
            let t = Transition {
                job_id: job_id.to_owned(),
                expected_version,
                state,
                result: result.clone(),
                reason_code: code.map(|c| i32::from(c.number())),
                event: NewEvent { kind: JOB_NOTIFICATION.to_owned(), payload: payload.clone() },
                now_ms: now_ms() as i64,
                fence: Some(job.fence),
            };
            match self.store.transition(t).await {
                Ok(job) => {
                    if let Some(v) = known.as_deref_mut() {
                        *v = job.version;
                    }
                    self.note_events();
                    return true;
                }
                Err(StoreError::StaleVersion { .. }) => continue,
                Err(StoreError::IllegalTransition { .. }) => return false,
                Err(e @ StoreError::Fenced { .. }) => {
                    // Another node manages the job now; the keeper drops it here.
                    tracing::warn!(job = %job_id, error = %e, "a write was fenced off");
                    self.cluster.note_fenced();
                    return false;
                }
                Err(e) => {
                    tracing::error!(job = %job_id, error = %e, "cannot record job progress");
                    self.metrics.store_errors.fetch_add(1, Relaxed);
                    return false;
                }
            }
        }
    }

    /// Routes the manager's events to the drivers of the jobs they are about.
    pub(crate) fn spawn_progress_listener(self: Arc<Self>) {
        let mut tap = self.runtime().subscribe_events();
        let me = self.manager.id();
        tokio::spawn(async move {
            while let Some((agent, event)) = tap.recv().await {
                if agent != me {
                    continue;
                }
                let task = event.task();
                let Some(progress) = progress(event.kind) else { continue };
                if let Some(line) = self.jobs_by_task.lock().get(&task) {
                    let _ = line.send(progress);
                }
            }
        });
    }
}

/// What an engine event means for a job, if anything.
fn progress(kind: EventKind) -> Option<Progress> {
    let step = |state, detail| Some(Progress::Step(state, detail));
    match kind {
        EventKind::Announced { round, solicited } => {
            step(JobState::Announced, json!({"round": round, "solicited": solicited}))
        }
        EventKind::Awarded { contractor, epoch, price, bids, .. } => step(
            JobState::Awarded,
            json!({"contractor": contractor.to_string(), "epoch": epoch, "price": price, "bids": bids}),
        ),
        EventKind::Started { epoch } => step(JobState::Running, json!({"epoch": epoch})),
        EventKind::Reassigned { code, from } => step(
            JobState::Announced,
            json!({"reassigned_from": from.to_string(), "code": code.number(), "code_name": code.name()}),
        ),
        EventKind::Finished { state: TaskState::Completed, result, .. } => {
            Some(Progress::Ended(Ok(result.unwrap_or_else(|| Arc::new(Value::Null)))))
        }
        EventKind::Finished { state, code, reason, .. } => {
            Some(Progress::Ended(Err(TaskFailure::new(state, code, reason))))
        }
        EventKind::Submitted { .. } | EventKind::Reported { .. } => None,
    }
}

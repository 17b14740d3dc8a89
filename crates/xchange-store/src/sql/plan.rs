//! Deciding a group-commit batch in memory.
//!
//! The batch's transaction reads every job the batch names (locked, or under the write
//! lock) and [`Plan::decide`] then takes the writes in queue order, each against the jobs
//! as the writes before it left them: exactly what running them one after the other would
//! answer, duplicates and conflicts within the batch included. A write that is refused
//! changes nothing in the plan, so it writes nothing. What remains to write is the final
//! state of each job the batch changed, and one event per accepted write, in order.
//!
//! A fenced write is decided against the epochs of the leases its batch read (locked
//! until the commit): a write under an epoch that is no longer the lease's is refused
//! like any other, after the checks that write nothing (a replayed submission is answered
//! whoever asks).

use std::collections::BTreeMap;

use crate::checks::{check_transition, replay_or_conflict};
use crate::error::StoreError;
use crate::job::{JOB_POSTING, Job, NewJob, Submitted, Transition};
use crate::lease::Fence;
use crate::sql::db::Arg;

/// A hot write, queued for the group commit.
#[derive(Debug, Clone)]
pub(crate) enum Write {
    Submit(NewJob),
    Transition(Transition),
}

impl Write {
    pub(crate) fn job_id(&self) -> &str {
        match self {
            Self::Submit(job) => &job.job_id,
            Self::Transition(t) => &t.job_id,
        }
    }

    pub(crate) fn fence(&self) -> Option<Fence> {
        match self {
            Self::Submit(job) => job.fence,
            Self::Transition(t) => t.fence,
        }
    }
}

/// The answer to a [`Write`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Written {
    Submitted(Submitted),
    Transitioned(Job),
}

/// An outbox row to insert.
#[derive(Debug)]
pub(crate) struct EventRow<'w> {
    pub(crate) job_id: &'w str,
    pub(crate) kind: &'w str,
    /// Borrowed from the write, not copied.
    pub(crate) payload: Arg<'w>,
    pub(crate) at_ms: i64,
}

#[derive(Debug)]
struct Slot {
    job: Option<Job>,
    /// Whether the row existed before the batch (an update) or not (an insert).
    stored: bool,
    changed: bool,
}

/// The batch's decisions so far; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Plan<'w> {
    slots: BTreeMap<String, Slot>,
    /// The current epoch of each partition the batch's fences name.
    epochs: BTreeMap<i32, i64>,
    events: Vec<EventRow<'w>>,
}

impl<'w> Plan<'w> {
    /// A plan over the stored jobs the batch names (those that do not exist are absent)
    /// and the epochs of the partitions its fences name (those that do not exist are
    /// absent).
    pub(crate) fn new(stored: Vec<Job>, epochs: BTreeMap<i32, i64>) -> Self {
        let slots = stored
            .into_iter()
            .map(|job| (job.job_id.clone(), Slot { job: Some(job), stored: true, changed: false }))
            .collect();
        Self { slots, epochs, events: Vec::new() }
    }

    /// Decides the next write of the batch.
    pub(crate) fn decide(&mut self, write: &'w Write) -> Result<Written, StoreError> {
        match write {
            Write::Submit(new) => self.submit(new).map(Written::Submitted),
            Write::Transition(t) => self.transition(t).map(Written::Transitioned),
        }
    }

    fn submit(&mut self, new: &'w NewJob) -> Result<Submitted, StoreError> {
        if let Some(existing) = self.slots.get(new.job_id.as_str()).and_then(|slot| slot.job.as_ref()) {
            return replay_or_conflict(new, existing.clone());
        }
        let job = Job::created(new);
        check_fence(&self.epochs, new.fence, job.partition)?;
        self.slots.insert(new.job_id.clone(), Slot { job: Some(job.clone()), stored: false, changed: true });
        self.events.push(EventRow {
            job_id: &new.job_id,
            kind: JOB_POSTING,
            payload: Arg::Posting { taskdb: &new.taskdb, document: &new.document },
            at_ms: new.now_ms,
        });
        Ok(Submitted::Created(job))
    }

    fn transition(&mut self, t: &'w Transition) -> Result<Job, StoreError> {
        let slot = self.slots.get_mut(t.job_id.as_str());
        let Some(Slot { job: Some(job), changed, .. }) = slot else {
            return Err(StoreError::not_found("job", &t.job_id));
        };
        check_transition(t, job.state, job.version)?;
        check_fence(&self.epochs, t.fence, job.partition)?;
        job.apply(t);
        *changed = true;
        self.events.push(EventRow {
            job_id: &t.job_id,
            kind: &t.event.kind,
            payload: Arg::Json(&t.event.payload),
            at_ms: t.now_ms,
        });
        Ok(job.clone())
    }

    /// The jobs the batch created, in their final state, in key order.
    pub(crate) fn inserts(&self) -> Vec<&Job> {
        self.changed(false)
    }

    /// The stored jobs the batch changed, in their final state, in key order.
    pub(crate) fn updates(&self) -> Vec<&Job> {
        self.changed(true)
    }

    fn changed(&self, stored: bool) -> Vec<&Job> {
        self.slots
            .values()
            .filter(|slot| slot.changed && slot.stored == stored)
            .filter_map(|slot| slot.job.as_ref())
            .collect()
    }

    /// The events of the accepted writes, in queue order.
    pub(crate) fn events(&self) -> &[EventRow<'w>] {
        &self.events
    }
}

/// Refuses a write under a lease that has moved on, or for a job of another partition.
fn check_fence(
    epochs: &BTreeMap<i32, i64>,
    fence: Option<Fence>,
    job_partition: i32,
) -> Result<(), StoreError> {
    let Some(fence) = fence else { return Ok(()) };
    let current = epochs.get(&fence.partition).copied();
    if job_partition != fence.partition || current != Some(fence.epoch) {
        let current = if job_partition == fence.partition { current.unwrap_or(-1) } else { -1 };
        return Err(StoreError::Fenced { partition: fence.partition, epoch: fence.epoch, current });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::job::{JobState, NewEvent};

    fn new_job(id: &str, n: u8) -> NewJob {
        NewJob {
            job_id: id.to_owned(),
            taskdb: "db".to_owned(),
            document: json!({"n": n}),
            body_hash: format!("{n:064x}"),
            now_ms: 10,
            fence: None,
        }
    }

    fn to(id: &str, version: i64, state: JobState) -> Transition {
        Transition {
            job_id: id.to_owned(),
            expected_version: version,
            state,
            result: None,
            reason_code: None,
            event: NewEvent { kind: state.as_str().to_owned(), payload: json!({"v": version}) },
            now_ms: 20 + version,
            fence: None,
        }
    }

    #[test]
    fn a_batch_answers_as_if_sequential() {
        let writes = [
            Write::Submit(new_job("a", 1)),
            Write::Submit(new_job("a", 1)),
            Write::Submit(new_job("a", 2)),
            Write::Transition(to("a", 1, JobState::Announced)),
            Write::Transition(to("a", 1, JobState::Awarded)),
            Write::Submit(new_job("a", 1)),
            Write::Transition(to("nowhere", 1, JobState::Announced)),
        ];
        let mut plan = Plan::new(Vec::new(), BTreeMap::new());
        let answers: Vec<_> = writes.iter().map(|w| plan.decide(w)).collect();

        let created = Job::created(&new_job("a", 1));
        assert_eq!(answers[0].as_ref().ok(), Some(&Written::Submitted(Submitted::Created(created.clone()))));
        assert_eq!(answers[1].as_ref().ok(), Some(&Written::Submitted(Submitted::Existing(created))));
        assert!(matches!(answers[2], Err(StoreError::Conflict { .. })), "{:?}", answers[2]);
        let Ok(Written::Transitioned(announced)) = &answers[3] else { panic!("{:?}", answers[3]) };
        assert_eq!((announced.state, announced.version, announced.updated_ms), (JobState::Announced, 2, 21));
        assert!(matches!(answers[4], Err(StoreError::StaleVersion { actual: 2, .. })), "{:?}", answers[4]);
        let Ok(Written::Submitted(Submitted::Existing(replayed))) = &answers[5] else { panic!() };
        assert_eq!(replayed, announced);
        assert!(matches!(answers[6], Err(StoreError::NotFound { .. })), "{:?}", answers[6]);

        // One row to insert, in its final state; an event per accepted write only.
        assert_eq!(plan.inserts(), vec![announced]);
        assert!(plan.updates().is_empty());
        let kinds: Vec<&str> = plan.events().iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [JOB_POSTING, "announced"]);
    }

    #[test]
    fn stored_jobs_are_updated_and_refusals_change_nothing() {
        let mut done = Job::created(&new_job("done", 3));
        done.state = JobState::Completed;
        let running = Job::created(&new_job("run", 4));
        let writes = [
            Write::Transition(to("done", 1, JobState::Running)),
            Write::Transition(to("run", 1, JobState::Running)),
            Write::Submit(new_job("new", 5)),
        ];
        let mut plan = Plan::new(vec![done, running], BTreeMap::new());
        let answers: Vec<_> = writes.iter().map(|w| plan.decide(w)).collect();
        assert!(matches!(answers[0], Err(StoreError::IllegalTransition { .. })), "{:?}", answers[0]);
        assert!(answers[1].is_ok() && answers[2].is_ok());
        let updated: Vec<(&str, i64)> =
            plan.updates().iter().map(|j| (j.job_id.as_str(), j.version)).collect();
        assert_eq!(updated, [("run", 2)]);
        let inserted: Vec<&str> = plan.inserts().iter().map(|j| j.job_id.as_str()).collect();
        assert_eq!(inserted, ["new"]);
        assert_eq!(plan.events().len(), 2);
    }
}

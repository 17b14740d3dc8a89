//! Resolution: leases, result reports and their assessment, failures, and the end of a
//! task (exactly one terminal state, budget settled with the parent contract).

use std::sync::Arc;

use serde_json::Value;
use xchange_protocol::{
    AckBody, AgentId, Body, Budget, Code, CodeBody, Envelope, ErrorBody, Recipient, TaskId, TaskState,
};

use crate::Micros;
use crate::engine::{Engine, Timer};
use crate::io::{Effect, EventKind, FinishedTask};
use crate::manager::{Ending, Round};

impl Engine {
    pub(crate) fn lease_check(&mut self, id: TaskId, epoch: u32) {
        let Some(m) = self.tasks.get_mut(&id) else { return };
        if m.lease_timer.is_some_and(|(_, e)| e == epoch) {
            m.lease_timer = None; // this is the timer firing
        }
        if m.rec.epoch != epoch || !matches!(m.rec.state, TaskState::Awarded | TaskState::Running) {
            return;
        }
        if m.lease_until > self.now {
            let at = m.lease_until;
            return self.arm_lease(id, at, epoch);
        }
        self.counters.lease_expiries += 1;
        let contractor = m.rec.contractor.expect("contracted task has a contractor");
        let cancel = Body::Cancel(CodeBody { code: Code::LeaseExpired, reason: "the lease lapsed".into() });
        self.send_about(id, Recipient::Agent(contractor), cancel, None, None);
        self.contract_ended(id, Code::LeaseExpired, Ending::Fault, None);
    }

    /// A contract ended without an accepted result: settle it, then place the task again
    /// (same contractor, next-best bid, new round) or fail it.
    pub(crate) fn contract_ended(&mut self, id: TaskId, code: Code, ending: Ending, spent: Option<Budget>) {
        let Some(m) = self.tasks.get_mut(&id) else { return };
        let Some(from) = m.rec.contractor.take() else { return };
        let armed = m.lease_timer.take();
        m.rec.budget.price += std::mem::take(&mut m.rec.price);
        let slice = std::mem::replace(&mut m.rec.slice, Budget::ZERO);
        if let Some(spent) = spent {
            // Whatever the contractor did not spend comes back; an over-report counts as all spent.
            m.rec.budget = m.rec.budget.plus(&slice.minus(&spent));
        }
        let retry_limit = m.rec.spec.retry_limit;
        self.by_contractor.remove(&(from, id));
        if let Some((at, epoch)) = armed {
            self.cancel_timer(at, Timer::Lease(id, epoch));
        }
        // Turning an award down or handing back work not yet started costs no reputation
        // (the award was provisional); a hand-back after start is charged where reported.
        if !matches!(ending, Ending::Declined | Ending::Moved)
            && code != Code::Decommitted
            && let Some(r) = self.index.reputation_mut(&from)
        {
            r.bad += 1;
        }
        self.emit(id, EventKind::Reassigned { code, from });
        if ending == Ending::Moved {
            // The agent holds an award worth at least what was offered: offer more next time.
            let offered = self.tasks.get(&id).map_or(0.0, |m| m.premium);
            let epsilon = self.cfg.auction.map_or(0.0, |a| a.epsilon);
            let known = self.premiums.get(&from).copied().unwrap_or(0.0);
            self.premiums.insert(from, known.max(offered + epsilon));
            self.counters.moved_awards += 1;
            if !self.place_by_auction(id, None) {
                self.announce(id);
            }
            return;
        }
        let m = self.tasks.get_mut(&id).expect("managed task");
        if matches!(ending, Ending::Failure { .. } | Ending::Rejected) {
            m.rec.retries += 1;
            self.counters.retries += 1;
            if m.rec.retries > retry_limit {
                let reason = format!("{} executions failed; the retry limit is {retry_limit}", m.rec.retries);
                return self.finish(id, TaskState::Failed, Code::RetryLimit, &reason, None);
            }
        }
        // A declined award cost only messages (charged when they were sent, and bounded by
        // the message budget); anything else re-executes work and draws on the retries.
        if ending != Ending::Declined {
            if m.rec.budget.retries == 0 {
                return self.finish(
                    id,
                    TaskState::Failed,
                    Code::BudgetExhausted,
                    "no retries left in the budget",
                    None,
                );
            }
            m.rec.budget.retries -= 1;
        }
        if ending == Ending::Declined {
            self.counters.declined_awards += 1;
        } else {
            self.counters.reassignments += 1;
        }
        if ending == (Ending::Failure { retryable: true }) && self.index.knows(&from) {
            let price = self.bid_price(id, from);
            return self.award(id, from, price, None, None);
        }
        if let Some(directed) = m.rec.directed {
            return self.award(id, directed, 0, None, None);
        }
        if !m.excluded.contains(&from) {
            m.excluded.push(from);
        }
        while !m.standby.is_empty() {
            let next = m.standby.remove(0);
            if !m.excluded.contains(&next.agent)
                && self.index.knows(&next.agent)
                && next.price <= m.rec.budget.price
            {
                return self.award(id, next.agent, next.price, Some(next.msg), None);
            }
        }
        self.announce(id);
    }

    pub(crate) fn bid_price(&self, id: TaskId, agent: AgentId) -> u64 {
        self.tasks
            .get(&id)
            .and_then(|m| m.standby.iter().find(|b| b.agent == agent).map(|b| b.price))
            .unwrap_or(0)
    }

    pub(crate) fn on_report(&mut self, msg: &Envelope) {
        let Some(id) = msg.conversation else {
            return self.refuse_message(msg, Code::SchemaInvalid, "a report must name its task");
        };
        let Some(m) = self.tasks.get(&id) else {
            if let Some(rec) = self.finished.get(&id) {
                let current = msg.epoch == rec.epoch && rec.contractor == Some(msg.from);
                if current && rec.state == TaskState::Completed && matches!(msg.body, Body::Inform(_)) {
                    // The ack was lost and the contractor sent the report again.
                    self.counters.duplicate_reports += 1;
                    return self.reply(msg, Body::Ack(AckBody { code: Code::Processed }));
                }
                let reason = "the task has ended";
                self.reply(
                    msg,
                    Body::Error(ErrorBody { code: Code::StaleEpoch, reason: reason.into(), supported: None }),
                );
                return self.refuse_message(msg, Code::StaleEpoch, reason);
            }
            self.reply(
                msg,
                Body::Error(ErrorBody {
                    code: Code::NotFound,
                    reason: "unknown task".into(),
                    supported: None,
                }),
            );
            return self.refuse_message(msg, Code::NotFound, "report for an unknown task");
        };
        let current = msg.epoch == m.rec.epoch && m.rec.contractor == Some(msg.from);
        let is_inform = matches!(msg.body, Body::Inform(_));
        if current && is_inform && m.rec.state == TaskState::Reported {
            // The ack was lost and the contractor sent the report again: acknowledge, apply nothing.
            self.counters.duplicate_reports += 1;
            return self.acknowledge(id, msg);
        }
        if m.rec.contractor != Some(msg.from) && msg.epoch >= m.rec.epoch {
            // Not a former contractor's late report: someone reporting on a contract it
            // never held.
            let reason = "the task's contract is held by another agent";
            self.reply(
                msg,
                Body::Error(ErrorBody { code: Code::Forbidden, reason: reason.into(), supported: None }),
            );
            return self.refuse_message(msg, Code::Forbidden, reason);
        }
        if !current || !matches!(m.rec.state, TaskState::Awarded | TaskState::Running) {
            let reason = "the report belongs to an older contract of this task";
            self.reply(
                msg,
                Body::Error(ErrorBody { code: Code::StaleEpoch, reason: reason.into(), supported: None }),
            );
            return self.refuse_message(msg, Code::StaleEpoch, reason);
        }
        match &msg.body {
            Body::Inform(inform) => {
                self.disarm_lease(id);
                self.acknowledge(id, msg);
                let m = self.tasks.get_mut(&id).expect("managed task");
                let slice = std::mem::replace(&mut m.rec.slice, Budget::ZERO);
                m.rec.budget = m.rec.budget.plus(&slice.minus(&inform.spent));
                m.rec.state = TaskState::Reported;
                let epoch = m.rec.epoch;
                let spec = m.rec.spec.clone();
                self.emit(id, EventKind::Reported { epoch });
                if spec.output_schema.is_some() || spec.verifier.is_some() {
                    self.counters.verifications += 1;
                    let m = self.tasks.get_mut(&id).expect("managed task");
                    m.result = Some(inform.result.clone());
                    self.out.push(Effect::Verify { task: id, epoch, spec, result: inform.result.clone() });
                } else {
                    self.complete(id, inform.result.clone());
                }
            }
            Body::Failure(failure) => {
                let ending = match failure.code {
                    Code::Outbid if !failure.started => Ending::Moved,
                    // The contractor turned the award down before doing anything.
                    Code::Busy | Code::NotCapable | Code::LoopDetected | Code::Declined
                        if !failure.started =>
                    {
                        Ending::Declined
                    }
                    Code::Decommitted
                    | Code::Busy
                    | Code::NotCapable
                    | Code::LoopDetected
                    | Code::Declined => Ending::Fault,
                    _ => Ending::Failure { retryable: failure.retryable },
                };
                if failure.code == Code::Decommitted && failure.started {
                    // Handing back started work costs reputation; provisional work does not.
                    if let Some(r) = self.index.reputation_mut(&msg.from) {
                        r.bad += 1;
                    }
                }
                self.contract_ended(id, failure.code, ending, Some(failure.spent));
            }
            _ => {}
        }
    }

    fn acknowledge(&mut self, id: TaskId, report: &Envelope) {
        let ack = Body::Ack(AckBody { code: Code::Processed });
        self.send_about(id, Recipient::Agent(report.from), ack, Some(report.id), None);
    }

    pub(crate) fn complete(&mut self, id: TaskId, result: Arc<Value>) {
        if let Some(c) = self.tasks.get(&id).and_then(|m| m.rec.contractor) {
            if let Some(r) = self.index.reputation_mut(&c) {
                r.good += 1;
            }
            self.by_contractor.remove(&(c, id));
        }
        self.finish(id, TaskState::Completed, Code::Processed, "", Some(result));
    }

    pub(crate) fn verdict(&mut self, id: TaskId, epoch: u32, accepted: bool, reason: String) {
        let Some(m) = self.tasks.get_mut(&id) else {
            return self.refuse_command(Some(id), Code::NotFound, "verdict for an unknown task");
        };
        if m.rec.state != TaskState::Reported || m.rec.epoch != epoch {
            return self.refuse_command(
                Some(id),
                Code::OutOfSequence,
                "no result of this epoch awaits a verdict",
            );
        }
        let result = m.result.take().expect("a reported task keeps its result until the verdict");
        if accepted {
            return self.complete(id, result);
        }
        self.counters.rejected_results += 1;
        m.rec.state = TaskState::Running;
        m.rec.reason = Some(reason);
        self.contract_ended(id, Code::VerificationFailed, Ending::Rejected, None);
    }

    pub(crate) fn cancel(&mut self, id: TaskId, reason: String) {
        match self.tasks.get(&id) {
            None if self.finished.contains_key(&id) => {
                self.refuse_command(Some(id), Code::Conflict, "the task has already ended")
            }
            None => self.refuse_command(Some(id), Code::NotFound, "no such task is managed here"),
            Some(m) if m.rec.state.is_terminal() => {
                self.refuse_command(Some(id), Code::Conflict, "the task has already ended")
            }
            Some(_) => self.finish(id, TaskState::Cancelled, Code::Cancelled, &reason, None),
        }
    }

    pub(crate) fn deadline_passed(&mut self, id: TaskId) {
        if self.tasks.get(&id).is_some_and(|m| !m.rec.state.is_terminal()) {
            self.finish(id, TaskState::Expired, Code::DeadlineExceeded, "the deadline passed", None);
        }
    }

    /// Ends a task, exactly once: tells a live contractor, settles the budget with the
    /// parent contract, persists, and emits `Finished`.
    pub(crate) fn finish(
        &mut self,
        id: TaskId,
        state: TaskState,
        code: Code,
        reason: &str,
        result: Option<Arc<Value>>,
    ) {
        let Some(m) = self.tasks.get(&id) else { return };
        if m.rec.state.is_terminal() {
            return;
        }
        let live = matches!(m.rec.state, TaskState::Awarded | TaskState::Running | TaskState::Reported);
        if let Some(c) = m.rec.contractor.filter(|_| state != TaskState::Completed && live) {
            if m.rec.state != TaskState::Reported {
                let cancel = Body::Cancel(CodeBody { code, reason: reason.to_owned() });
                self.send_about(id, Recipient::Agent(c), cancel, None, None);
            }
            self.by_contractor.remove(&(c, id));
        }
        let m = self.tasks.get_mut(&id).expect("managed task");
        if state != TaskState::Completed {
            m.rec.budget.price += std::mem::take(&mut m.rec.price);
            m.rec.slice = Budget::ZERO;
        }
        let key = m.priority_key();
        m.rec.state = state;
        m.rec.code = Some(code);
        m.rec.reason = (!reason.is_empty()).then(|| reason.to_owned());
        m.rec.result = result.clone();
        m.asked = Round::Closed;
        let (parent, leftover) = (m.rec.parent, m.rec.budget);
        self.waiting.remove(&key);
        match state {
            TaskState::Completed => self.counters.completed += 1,
            TaskState::Failed => self.counters.failed += 1,
            TaskState::Cancelled => self.counters.cancelled += 1,
            _ => self.counters.expired += 1,
        }
        self.forget.push_back((self.now + self.cfg.terminal_retention, id));
        self.disarm_lease(id);
        if let Some(deadline) = self.tasks.get(&id).and_then(|m| m.rec.spec.deadline) {
            self.cancel_timer(deadline * 1000, Timer::Deadline(id));
        }
        self.persist(id);
        self.emit(id, EventKind::Finished { state, code, reason: reason.to_owned(), result });
        if let Some(m) = self.tasks.remove(&id) {
            self.finished.insert(id, FinishedTask::of(&m.rec));
        }
        if let Some(parent) = parent {
            self.children.remove(&(parent, id));
            if let Some(c) = self.contracts.get_mut(&parent) {
                c.remaining = c.remaining.plus(&leftover);
            }
        }
    }

    pub(crate) fn forget(&mut self, id: TaskId) {
        self.finished.remove(&id);
    }

    pub(crate) fn arm_lease(&mut self, id: TaskId, at: Micros, epoch: u32) {
        if let Some(m) = self.tasks.get_mut(&id) {
            m.lease_timer = Some((at, epoch));
            self.timer(at, Timer::Lease(id, epoch));
        }
    }

    pub(crate) fn disarm_lease(&mut self, id: TaskId) {
        if let Some((at, epoch)) = self.tasks.get_mut(&id).and_then(|m| m.lease_timer.take()) {
            self.cancel_timer(at, Timer::Lease(id, epoch));
        }
    }
}

//! Membership and liveness: heartbeats and progress renew leases, agents arrive and leave,
//! partitions move (tasks adopted or let go), and the engine checks its own invariants.

use xchange_protocol::{
    AgentId, Body, Budget, Code, CodeBody, Envelope, Recipient, TaskId, TaskSpec, TaskState,
};

use crate::config::AgentCard;
use crate::engine::{Engine, Thread, Timer, tasks_of};
use crate::io::{EventKind, FinishedTask, TaskRecord};
use crate::manager::{Ending, Managed};

impl Engine {
    pub(crate) fn on_progress(&mut self, msg: &Envelope) {
        let Body::Progress(p) = &msg.body else { return };
        let Some(id) = msg.conversation else { return };
        let lease = self.cfg.lease;
        let now = self.now;
        match self.tasks.get_mut(&id) {
            Some(m)
                if m.rec.contractor == Some(msg.from)
                    && m.rec.epoch == msg.epoch
                    && matches!(m.rec.state, TaskState::Awarded | TaskState::Running) =>
            {
                m.lease_until = now + lease;
                if p.started && m.rec.state == TaskState::Awarded {
                    m.rec.state = TaskState::Running;
                    let epoch = m.rec.epoch;
                    self.emit(id, EventKind::Started { epoch });
                }
            }
            _ => self.refuse_message(msg, Code::StaleEpoch, "progress for a contract that is not current"),
        }
    }

    pub(crate) fn on_heartbeat(&mut self, msg: &Envelope) {
        let Body::Heartbeat(hb) = &msg.body else { return };
        let from = msg.from;
        let known = self.incarnations.get(&from).copied().unwrap_or(0);
        if hb.incarnation < known {
            return self.refuse_message(msg, Code::StaleEpoch, "heartbeat from an older incarnation");
        }
        if hb.incarnation > known {
            self.incarnations.insert(from, hb.incarnation);
            if known != 0 {
                // The contractor restarted: contracts it does not list are forgotten.
                let mut held = tasks_of(&self.by_contractor, from);
                held.retain(|t| !hb.contracts.iter().any(|r| r.task == *t));
                self.contracts_lost(&held, Code::UnexpectedDisconnect);
            }
        }
        let (now, lease) = (self.now, self.cfg.lease);
        for r in &hb.contracts {
            let current = self
                .tasks
                .get_mut(&r.task)
                .and_then(|m| (m.rec.contractor == Some(from) && m.rec.epoch == r.epoch).then_some(m));
            match current {
                Some(m) if matches!(m.rec.state, TaskState::Awarded | TaskState::Running) => {
                    m.lease_until = now + lease;
                    if r.started && m.rec.state == TaskState::Awarded {
                        m.rec.state = TaskState::Running;
                        let epoch = m.rec.epoch;
                        self.emit(r.task, EventKind::Started { epoch });
                    }
                }
                Some(_) => {}
                None if self
                    .finished
                    .get(&r.task)
                    .is_some_and(|f| f.contractor == Some(from) && f.epoch == r.epoch) => {}
                None => {
                    // A contract this manager no longer recognises: tell the contractor to drop it.
                    let thread = Thread {
                        conversation: Some(r.task),
                        epoch: r.epoch,
                        hops: msg.hops.max(1),
                        max_hops: self.cfg.max_hops,
                        lineage: self.root_lineage.clone(),
                    };
                    let body = Body::Cancel(CodeBody {
                        code: Code::Superseded,
                        reason: "the contract is not current".into(),
                    });
                    self.send(Recipient::Agent(from), &thread, body, Some(msg.id), None, None);
                }
            }
        }
    }

    /// Contracts whose contractor is gone or forgot them: placed again (a fault).
    fn contracts_lost(&mut self, tasks: &[TaskId], code: Code) {
        for t in tasks {
            if self
                .tasks
                .get(t)
                .is_some_and(|m| matches!(m.rec.state, TaskState::Awarded | TaskState::Running))
            {
                self.contract_ended(*t, code, Ending::Fault, None);
            }
        }
    }

    pub(crate) fn agent_arrived(&mut self, card: AgentCard) {
        self.index.insert(card.clone());
        if self.waiting.is_empty() {
            return;
        }
        let ready: Vec<TaskId> = self
            .waiting
            .iter()
            .map(|(_, id)| *id)
            .filter(|id| {
                self.tasks.get(id).is_some_and(|m| {
                    let spec: &TaskSpec = &m.rec.spec;
                    card.capabilities.contains(&spec.capability)
                        && (card.pools.is_empty() || card.pools.contains(&spec.pool))
                })
            })
            .collect();
        for id in ready {
            self.announce(id);
        }
    }

    pub(crate) fn agent_left(&mut self, agent: AgentId, code: Code) {
        self.index.remove(&agent);
        let held = tasks_of(&self.by_contractor, agent);
        self.contracts_lost(&held, code);
        self.manager_left(agent, code);
    }

    /// Drops tasks without a word: another node owns them now (fencing, partition moved).
    pub(crate) fn let_go(&mut self, ids: &[TaskId]) {
        for id in ids {
            self.finished.remove(id);
            let Some(m) = self.tasks.remove(id) else { continue };
            self.counters.fenced += 1;
            if let Some(c) = m.rec.contractor {
                self.by_contractor.remove(&(c, *id));
            }
            self.waiting.remove(&m.priority_key());
            if let Some(p) = m.rec.parent {
                self.children.remove(&(p, *id));
            }
        }
    }

    /// Takes over persisted tasks (after a restart or a partition takeover).
    pub(crate) fn adopt(&mut self, records: Vec<TaskRecord>) {
        for rec in records {
            let id = rec.id;
            if self.tasks.contains_key(&id) || self.finished.contains_key(&id) {
                continue;
            }
            let (state, parent, contractor, deadline) =
                (rec.state, rec.parent, rec.contractor, rec.spec.deadline);
            if state.is_terminal() {
                self.finished.insert(id, FinishedTask::of(&rec));
                self.forget.push_back((self.now + self.cfg.terminal_retention, id));
                continue;
            }
            self.tasks.insert(id, Box::new(Managed::new(rec)));
            if let Some(deadline) = deadline {
                self.timer(deadline * 1000, Timer::Deadline(id));
            }
            let m = self.tasks.get_mut(&id).expect("just inserted");
            if matches!(state, TaskState::Awarded | TaskState::Running | TaskState::Reported) {
                m.rec.state = if state == TaskState::Reported { TaskState::Running } else { state };
                m.lease_until = self.now + self.cfg.lease;
                let (epoch, at) = (m.rec.epoch, m.lease_until);
                if let Some(c) = contractor {
                    self.by_contractor.insert((c, id));
                }
                self.arm_lease(id, at, epoch);
            } else {
                m.rec.state = TaskState::Pending;
            }
            match parent {
                Some(p) if !self.contracts.contains_key(&p) => {
                    self.finish(
                        id,
                        TaskState::Cancelled,
                        Code::ParentLost,
                        "the parent contract was lost in a restart",
                        None,
                    );
                }
                Some(p) => {
                    self.children.insert((p, id));
                }
                None => {}
            }
            if self.tasks.get(&id).is_some_and(|m| m.rec.state == TaskState::Pending) {
                self.announce(id);
            }
        }
    }

    /// Checks the engine's own invariants; used by property tests and the simulator.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (agent, id) in &self.by_contractor {
            let m =
                self.tasks.get(id).ok_or_else(|| format!("{id}: indexed contract for an unknown task"))?;
            if m.rec.contractor != Some(*agent) || m.rec.state.is_terminal() {
                return Err(format!("{id}: contract index disagrees with the task ({:?})", m.rec.state));
            }
        }
        for m in self.tasks.values() {
            let id = m.rec.id;
            if m.overdraft > 0 {
                return Err(format!("{id}: message budget overdrawn {} times", m.overdraft));
            }
            let held = m.rec.budget.plus(&m.rec.slice).plus(&Budget { price: m.rec.price, ..Budget::ZERO });
            if !held.fits_in(&m.initial) {
                return Err(format!(
                    "{id}: budget {:?} + slice exceeds initial {:?}",
                    m.rec.budget, m.initial
                ));
            }
            if m.rec.retries > m.rec.spec.retry_limit + 1
                || (m.rec.retries > m.rec.spec.retry_limit && m.rec.state != TaskState::Failed)
            {
                return Err(format!(
                    "{id}: {} retries past a limit of {}",
                    m.rec.retries, m.rec.spec.retry_limit
                ));
            }
            let contracted =
                matches!(m.rec.state, TaskState::Awarded | TaskState::Running | TaskState::Reported);
            if contracted != m.rec.contractor.is_some_and(|c| self.by_contractor.contains(&(c, id)))
                && !m.rec.state.is_terminal()
            {
                return Err(format!("{id}: state {:?} but contract index says otherwise", m.rec.state));
            }
        }
        let running = self
            .contracts
            .values()
            .filter(|c| matches!(c.state, crate::contractor::ContractState::Running))
            .count();
        if running as u32 != self.running {
            return Err(format!("running counter {} but {running} contracts are running", self.running));
        }
        if let Some(p) = self.profile.as_ref().filter(|p| self.running > p.capacity) {
            return Err(format!("{} executions exceed capacity {}", self.running, p.capacity));
        }
        Ok(())
    }
}

//! The manager side: accept a task, announce it, collect bids, award, watch the lease,
//! assess the report, and resolve failures (retry, next-best bid, re-announce, or fail).

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::Value;
use xchange_protocol::{
    AcceptBody, AckBody, AgentId, Body, Budget, CfpBody, Code, CodeBody, Envelope, ErrorBody, MsgId,
    Recipient, TaskId, TaskSpec, TaskState, is_valid_name,
};

use crate::Micros;
use crate::config::{AgentCard, Announce};
use crate::engine::{Engine, Thread, Timer};
use crate::io::{Effect, EventKind, PersistToken, Submit, TaskRecord};
use crate::score::{Bid, rank};

/// Who was asked in the current round and who answered.
#[derive(Debug, Clone, Default)]
pub(crate) enum Round {
    /// No round is open.
    #[default]
    Closed,
    /// Sampled agents that have not answered yet.
    Sampled(Vec<AgentId>),
    /// A broadcast: agents that answered, and how many answers are expected.
    Broadcast(BTreeSet<AgentId>, u32),
}

/// A task managed by this engine: its durable record plus what only lives in memory.
#[derive(Debug, Clone)]
pub(crate) struct Managed {
    pub(crate) rec: TaskRecord,
    pub(crate) initial: Budget,
    pub(crate) events: u32,
    pub(crate) round: u32,
    pub(crate) round_cfps: Vec<MsgId>,
    pub(crate) asked: Round,
    pub(crate) bids: Vec<Bid>,
    pub(crate) standby: Vec<Bid>,
    pub(crate) excluded: Vec<AgentId>,
    pub(crate) announced_at: Micros,
    pub(crate) reply_by: Micros,
    pub(crate) waiting_since: Option<Micros>,
    pub(crate) lease_until: Micros,
    pub(crate) result: Option<Arc<Value>>,
    pub(crate) unconfirmed: Option<PersistToken>,
    pub(crate) overdraft: u32,
}

impl Managed {
    fn new(rec: TaskRecord) -> Self {
        Self {
            initial: rec.budget.plus(&rec.slice).plus(&Budget { price: rec.price, ..Budget::ZERO }),
            rec,
            events: 0,
            round: 0,
            round_cfps: Vec::new(),
            asked: Round::Closed,
            bids: Vec::new(),
            standby: Vec::new(),
            excluded: Vec::new(),
            announced_at: 0,
            reply_by: 0,
            waiting_since: None,
            lease_until: 0,
            result: None,
            unconfirmed: None,
            overdraft: 0,
        }
    }

    pub(crate) fn thread(&self) -> Thread {
        Thread {
            conversation: Some(self.rec.id),
            epoch: self.rec.epoch,
            hops: self.rec.hops,
            max_hops: self.rec.max_hops,
            lineage: self.rec.lineage.clone(),
        }
    }

    fn priority_key(&self) -> (Reverse<i64>, TaskId) {
        (Reverse(self.rec.spec.priority), self.rec.id)
    }

    /// Takes `n` messages from the budget; counts an overdraft if there are not enough
    /// (decisions check the budget first, so an overdraft is a bug the invariants catch).
    fn charge_messages(&mut self, n: u32) {
        if self.rec.budget.messages < n {
            self.overdraft += 1;
        }
        self.rec.budget.messages = self.rec.budget.messages.saturating_sub(n);
    }
}

/// How a contract ended without an accepted result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The contractor failed to hold the contract (lease, disconnect, hand-back, busy):
    /// draws on the job's budget, not on the retry limit.
    Fault,
    /// Execution failed; counts against the retry limit.
    Failure { retryable: bool },
    /// The result was rejected by assessment; counts against the retry limit.
    Rejected,
}

/// Messages a round may need beyond its calls for proposals: rejects to every bidder, the
/// award, the acknowledgement of the report and a cancel.
const ROUND_RESERVE: u32 = 3;

fn partition_of(id: &TaskId, partitions: u32) -> u32 {
    let tail = u64::from_le_bytes(id.0.as_bytes()[8..16].try_into().expect("eight bytes"));
    (tail % u64::from(partitions.max(1))) as u32
}

impl Engine {
    pub(crate) fn submit(&mut self, s: Submit) {
        let spec = s.spec;
        if !is_valid_name(&spec.capability) || !is_valid_name(&spec.pool) {
            return self.refuse_command(
                s.task,
                Code::SchemaInvalid,
                "capability and pool must be 1-64 of [A-Za-z0-9_-]",
            );
        }
        if !(spec.size.is_finite() && spec.size >= 0.0) {
            return self.refuse_command(s.task, Code::SchemaInvalid, "size must be a finite number >= 0");
        }
        if spec.deadline.is_some_and(|d| d.saturating_mul(1000) <= self.now) {
            return self.refuse_command(s.task, Code::DeadlineExceeded, "the deadline has already passed");
        }
        let id = match s.task {
            Some(id) => id,
            None => {
                let random = self.rng.bytes10();
                TaskId::new_v7(self.now_ms(), random)
            }
        };
        if self.tasks.contains_key(&id) {
            return self.refuse_command(Some(id), Code::Conflict, "a task with this id exists already");
        }
        let (hops, max_hops, lineage, budget) = match s.parent {
            None => {
                (1, self.cfg.max_hops, self.root_lineage.clone(), s.budget.unwrap_or(self.cfg.default_budget))
            }
            Some(parent) => {
                let me = self.id;
                let Some(c) = self.contracts.get_mut(&parent) else {
                    return self.refuse_command(
                        Some(id),
                        Code::NotFound,
                        "no contract is held for the parent task",
                    );
                };
                if !c.started() {
                    return self.refuse_command(
                        Some(id),
                        Code::OutOfSequence,
                        "the parent contract is not executing",
                    );
                }
                let hops = c.thread.hops.saturating_add(1);
                if hops > c.thread.max_hops {
                    return self.refuse_command(
                        Some(id),
                        Code::HopLimit,
                        "subtask would exceed the hop limit",
                    );
                }
                if c.thread.lineage.contains(&me) {
                    return self.refuse_command(
                        Some(id),
                        Code::LoopDetected,
                        "this agent already manages an ancestor",
                    );
                }
                if c.remaining.subtasks == 0 {
                    return self.refuse_command(
                        Some(id),
                        Code::BudgetExhausted,
                        "no subtasks left in the budget",
                    );
                }
                let after = Budget { subtasks: c.remaining.subtasks - 1, ..c.remaining };
                let child = match s.budget {
                    Some(b) if b.fits_in(&after) => b,
                    Some(_) => {
                        return self.refuse_command(
                            Some(id),
                            Code::BudgetExhausted,
                            "the requested budget exceeds what the parent has left",
                        );
                    }
                    None => after.half(),
                };
                c.remaining = after.minus(&child);
                let mut lineage = c.thread.lineage.to_vec();
                lineage.push(me);
                (hops, c.thread.max_hops, Arc::from(lineage), child)
            }
        };
        let rec = TaskRecord {
            id,
            spec: spec.clone(),
            parent: s.parent,
            hops,
            max_hops,
            lineage,
            state: TaskState::Pending,
            epoch: 0,
            contractor: None,
            directed: s.contractor,
            price: 0,
            budget,
            slice: Budget::ZERO,
            retries: 0,
            created_at: self.now,
            partition: partition_of(&id, self.cfg.partitions),
            code: None,
            reason: None,
            result: None,
        };
        self.tasks.insert(id, Managed::new(rec));
        self.counters.submitted += 1;
        if let Some(parent) = s.parent {
            self.counters.subcontracts += 1;
            self.children.insert((parent, id));
        }
        if let Some(deadline) = spec.deadline {
            self.timer(deadline * 1000, Timer::Deadline(id));
        }
        self.persist(id);
        self.emit(id, EventKind::Submitted { parent: s.parent });
        match s.contractor {
            Some(agent) => self.award(id, agent, 0, None, None),
            None => self.announce(id),
        }
    }

    pub(crate) fn persist(&mut self, id: TaskId) {
        if !self.cfg.durable {
            return;
        }
        let token = PersistToken { task: id, seq: self.next_seq() };
        let Some(m) = self.tasks.get_mut(&id) else { return };
        m.unconfirmed = Some(token);
        let record = Box::new(m.rec.clone());
        self.out.push(Effect::Persist { token, record });
    }

    fn barrier(&self, id: &TaskId) -> Option<PersistToken> {
        self.tasks.get(id).and_then(|m| m.unconfirmed)
    }

    /// Sends a message about managed task `id` to `to`, charging its budget.
    fn send_about(
        &mut self,
        id: TaskId,
        to: Recipient,
        body: Body,
        in_reply_to: Option<MsgId>,
        reply_by: Option<Micros>,
    ) -> MsgId {
        let barrier = self.barrier(&id);
        let m = self.tasks.get_mut(&id).expect("managed task");
        m.charge_messages(1);
        let thread = m.thread();
        self.send(to, &thread, body, in_reply_to, reply_by, barrier)
    }

    pub(crate) fn announce(&mut self, id: TaskId) {
        let Some(m) = self.tasks.get(&id) else { return };
        let spec = m.rec.spec.clone();
        let me = self.id;
        let eligible = self.index.eligible(&spec.pool, &spec.capability);
        let skip = |a: &AgentId| *a == me || m.rec.lineage.contains(a) || m.excluded.contains(a);
        let (targets, expected) = match self.cfg.announce {
            Announce::Sample(d) => {
                let chosen = eligible.sample(d as usize, &mut self.rng, skip);
                let n = chosen.len() as u32;
                (Some(chosen), n)
            }
            Announce::Broadcast => {
                let members = eligible.len() - usize::from(eligible.contains(&me));
                let unusable = m
                    .excluded
                    .iter()
                    .chain(m.rec.lineage.iter())
                    .filter(|a| **a != me && eligible.contains(a))
                    .count();
                if members <= unusable { (None, 0) } else { (None, members as u32) }
            }
        };
        if expected == 0 {
            if !m.excluded.is_empty() {
                // Every eligible agent failed this task once: give them another chance
                // rather than failing for want of contractors.
                self.tasks.get_mut(&id).expect("managed task").excluded.clear();
                return self.announce(id);
            }
            return self.wait(id);
        }
        let cfps_needed = targets.as_ref().map_or(1, |t| t.len() as u32);
        if m.rec.budget.messages < cfps_needed + expected + ROUND_RESERVE {
            return self.finish(
                id,
                TaskState::Failed,
                Code::BudgetExhausted,
                "no messages left in the budget",
                None,
            );
        }
        let reply_by = self.now + self.cfg.bid_window;
        let body = Body::Cfp(CfpBody { task: spec.clone(), budget: m.rec.budget.half() });
        let mut ids = Vec::with_capacity(cfps_needed as usize);
        let asked = match targets {
            Some(chosen) => {
                for agent in &chosen {
                    ids.push(self.send_about(
                        id,
                        Recipient::Agent(*agent),
                        body.clone(),
                        None,
                        Some(reply_by),
                    ));
                }
                Round::Sampled(chosen)
            }
            None => {
                let to = Recipient::Pool { pool: spec.pool.clone(), capability: spec.capability.clone() };
                ids.push(self.send_about(id, to, body, None, Some(reply_by)));
                Round::Broadcast(BTreeSet::new(), expected)
            }
        };
        let m = self.tasks.get_mut(&id).expect("managed task");
        let key = m.priority_key();
        m.round += 1;
        m.round_cfps = ids;
        m.asked = asked;
        m.bids.clear();
        m.rec.state = TaskState::Announced;
        m.announced_at = self.now;
        m.reply_by = reply_by;
        let round = m.round;
        self.waiting.remove(&key);
        self.timer(reply_by, Timer::BidWindow(id, round));
        self.counters.announcements += 1;
        self.emit(id, EventKind::Announced { round, solicited: expected });
    }

    /// No usable contractor now: wait (in priority order) and try again after a backoff,
    /// until the no-contractor timeout.
    fn wait(&mut self, id: TaskId) {
        let now = self.now;
        let timeout = self.cfg.no_contractor_timeout;
        let Some(m) = self.tasks.get_mut(&id) else { return };
        m.rec.state = TaskState::Pending;
        m.asked = Round::Closed;
        let since = *m.waiting_since.get_or_insert(now);
        let key = m.priority_key();
        if now.saturating_sub(since) >= timeout {
            return self.finish(
                id,
                TaskState::Failed,
                Code::NoEligibleContractor,
                "no eligible contractor bid in time",
                None,
            );
        }
        self.waiting.insert(key);
        self.timer(now + self.cfg.reannounce_backoff, Timer::Retry(id));
    }

    pub(crate) fn retry_waiting(&mut self, id: TaskId) {
        let Some(m) = self.tasks.get(&id) else { return };
        if m.rec.state == TaskState::Pending && self.waiting.contains(&m.priority_key()) {
            self.announce(id);
        }
    }

    pub(crate) fn on_bid(&mut self, msg: &Envelope) {
        let Some(id) = msg.conversation else {
            return self.refuse_message(msg, Code::SchemaInvalid, "a bid must name its task");
        };
        let Some(m) = self.tasks.get_mut(&id) else {
            return self.refuse_message(msg, Code::NotFound, "bid for an unknown task");
        };
        let in_round =
            m.rec.state == TaskState::Announced && msg.in_reply_to.is_some_and(|r| m.round_cfps.contains(&r));
        let fresh = in_round
            && match &mut m.asked {
                Round::Sampled(pending) => match pending.iter().position(|a| *a == msg.from) {
                    Some(i) => {
                        pending.swap_remove(i);
                        true
                    }
                    None => false,
                },
                Round::Broadcast(answered, _) => answered.insert(msg.from),
                Round::Closed => false,
            };
        if !fresh {
            if in_round {
                return self.refuse_message(msg, Code::Conflict, "a second answer to the same call");
            }
            if let Body::Propose(_) = msg.body {
                let reject = Body::Reject(CodeBody {
                    code: Code::BidWindowClosed,
                    reason: "the bid window is closed".into(),
                });
                self.send_about(id, Recipient::Agent(msg.from), reject, Some(msg.id), None);
            }
            return self.refuse_message(
                msg,
                Code::BidWindowClosed,
                "the answer arrived after the bid window closed",
            );
        }
        match &msg.body {
            Body::Propose(p) => {
                self.counters.bids += 1;
                m.bids.push(Bid {
                    agent: msg.from,
                    price: p.price,
                    eta_ms: p.eta_ms,
                    load: p.load,
                    msg: msg.id,
                });
            }
            _ => self.counters.refusals += 1,
        }
        let all_in = match &m.asked {
            Round::Sampled(pending) => pending.is_empty(),
            Round::Broadcast(answered, expected) => answered.len() as u32 >= *expected,
            Round::Closed => false,
        };
        if all_in {
            self.close_round(id);
        }
    }

    pub(crate) fn bid_window_closed(&mut self, id: TaskId, round: u32) {
        if self.tasks.get(&id).is_some_and(|m| m.rec.state == TaskState::Announced && m.round == round) {
            self.close_round(id);
        }
    }

    fn reputation_of(&self, agent: &AgentId) -> f64 {
        self.reputation.get(agent).map_or(0.5, |r| r.value())
    }

    fn close_round(&mut self, id: TaskId) {
        let Some(m) = self.tasks.get_mut(&id) else { return };
        let timer = (m.reply_by, Timer::BidWindow(id, m.round));
        m.asked = Round::Closed;
        let bids = std::mem::take(&mut m.bids);
        let max_price = m.rec.spec.max_price.unwrap_or(u64::MAX);
        let affordable = m.rec.budget.price;
        let (mut usable, unusable): (Vec<Bid>, Vec<Bid>) = bids.into_iter().partition(|b| {
            !m.excluded.contains(&b.agent)
                && b.price <= max_price
                && b.price <= affordable
                && self.index.knows(&b.agent)
        });
        let over_budget = unusable.iter().any(|b| b.price > affordable && b.price <= max_price);
        let priority = m.rec.spec.priority;
        self.cancel_timer(timer.0, timer.1);
        let weights = self.cfg.weights;
        rank(&mut usable, &weights, priority, |a| self.reputation_of(a));
        for loser in &unusable {
            let reject = Body::Reject(CodeBody {
                code: Code::Declined,
                reason: "the bid is not within the task's terms".into(),
            });
            self.send_about(id, Recipient::Agent(loser.agent), reject, Some(loser.msg), None);
        }
        let Some(winner) = usable.first().copied() else {
            if over_budget {
                return self.finish(
                    id,
                    TaskState::Failed,
                    Code::BudgetExhausted,
                    "every bid costs more than the budget has left",
                    None,
                );
            }
            return self.wait(id);
        };
        for loser in &usable[1..] {
            let reject = Body::Reject(CodeBody { code: Code::Outbid, reason: String::new() });
            self.send_about(id, Recipient::Agent(loser.agent), reject, Some(loser.msg), None);
        }
        let keep = self.cfg.standby_bids;
        let m = self.tasks.get_mut(&id).expect("managed task");
        m.standby = usable.iter().skip(1).take(keep).copied().collect();
        let since = self.now - m.announced_at;
        self.award(id, winner.agent, winner.price, Some(winner.msg), Some((since, usable.len() as u32)));
    }

    /// Makes a contract: a new epoch, a lease, the budget slice, and the `accept`.
    pub(crate) fn award(
        &mut self,
        id: TaskId,
        agent: AgentId,
        price: u64,
        bid: Option<MsgId>,
        round: Option<(Micros, u32)>,
    ) {
        let Some(m) = self.tasks.get_mut(&id) else { return };
        if m.rec.budget.messages < ROUND_RESERVE || m.rec.budget.price < price {
            return self.finish(
                id,
                TaskState::Failed,
                Code::BudgetExhausted,
                "the budget cannot pay for another contract",
                None,
            );
        }
        m.rec.epoch += 1;
        m.rec.contractor = Some(agent);
        m.rec.price = price;
        m.rec.budget.price -= price;
        let slice =
            Budget { messages: m.rec.budget.messages.saturating_sub(ROUND_RESERVE), ..m.rec.budget }.half();
        m.rec.slice = slice;
        m.rec.budget = m.rec.budget.minus(&slice);
        m.rec.state = TaskState::Awarded;
        m.lease_until = self.now + self.cfg.lease;
        m.waiting_since = None;
        let (epoch, lease_until, key) = (m.rec.epoch, m.lease_until, m.priority_key());
        let spec = m.rec.spec.clone();
        self.waiting.remove(&key);
        self.by_contractor.insert((agent, id));
        self.timer(lease_until, Timer::Lease(id, epoch));
        self.persist(id);
        let body =
            Body::Accept(AcceptBody { task: spec, budget: slice, price, lease_ms: self.cfg.lease / 1000 });
        self.send_about(id, Recipient::Agent(agent), body, bid, None);
        self.counters.contracts += 1;
        let (announce_to_award, bids) = match round {
            Some((t, n)) => (Some(t), n),
            None => (None, 0),
        };
        self.emit(id, EventKind::Awarded { contractor: agent, epoch, price, bids, announce_to_award });
    }

    pub(crate) fn lease_check(&mut self, id: TaskId, epoch: u32) {
        let Some(m) = self.tasks.get(&id) else { return };
        if m.rec.epoch != epoch || !matches!(m.rec.state, TaskState::Awarded | TaskState::Running) {
            return;
        }
        if m.lease_until > self.now {
            let at = m.lease_until;
            return self.timer(at, Timer::Lease(id, epoch));
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
        m.rec.budget.price += std::mem::take(&mut m.rec.price);
        let slice = std::mem::replace(&mut m.rec.slice, Budget::ZERO);
        if let Some(spent) = spent {
            // Whatever the contractor did not spend comes back; an over-report counts as all spent.
            m.rec.budget = m.rec.budget.plus(&slice.minus(&spent));
        }
        let retry_limit = m.rec.spec.retry_limit;
        self.by_contractor.remove(&(from, id));
        if code != Code::Busy {
            self.reputation.entry(from).or_default().bad += 1;
        }
        self.emit(id, EventKind::Reassigned { code, from });
        let m = self.tasks.get_mut(&id).expect("managed task");
        if ending != Ending::Fault {
            m.rec.retries += 1;
            self.counters.retries += 1;
            if m.rec.retries > retry_limit {
                let reason = format!("{} executions failed; the retry limit is {retry_limit}", m.rec.retries);
                return self.finish(id, TaskState::Failed, Code::RetryLimit, &reason, None);
            }
        }
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
        self.counters.reassignments += 1;
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

    fn bid_price(&self, id: TaskId, agent: AgentId) -> u64 {
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
        if current && is_inform && matches!(m.rec.state, TaskState::Reported | TaskState::Completed) {
            // The ack was lost and the contractor sent the report again: acknowledge, apply nothing.
            self.counters.duplicate_reports += 1;
            self.send_about(
                id,
                Recipient::Agent(msg.from),
                Body::Ack(AckBody { code: Code::Processed }),
                Some(msg.id),
                None,
            );
            return;
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
                self.send_about(
                    id,
                    Recipient::Agent(msg.from),
                    Body::Ack(AckBody { code: Code::Processed }),
                    Some(msg.id),
                    None,
                );
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
                    Code::Decommitted
                    | Code::Busy
                    | Code::NotCapable
                    | Code::LoopDetected
                    | Code::Declined => Ending::Fault,
                    _ => Ending::Failure { retryable: failure.retryable },
                };
                if failure.code == Code::Decommitted && failure.started {
                    // Handing back started work costs reputation; provisional work does not.
                    self.reputation.entry(msg.from).or_default().bad += 1;
                }
                self.contract_ended(id, failure.code, ending, Some(failure.spent));
            }
            _ => {}
        }
    }

    fn complete(&mut self, id: TaskId, result: Arc<Value>) {
        if let Some(c) = self.tasks.get(&id).and_then(|m| m.rec.contractor) {
            self.reputation.entry(c).or_default().good += 1;
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
        self.timer(self.now + self.cfg.terminal_retention, Timer::Forget(id));
        self.persist(id);
        self.emit(id, EventKind::Finished { state, code, reason: reason.to_owned(), result });
        if let Some(parent) = parent {
            self.children.remove(&(parent, id));
            if let Some(c) = self.contracts.get_mut(&parent) {
                c.remaining = c.remaining.plus(&leftover);
            }
        }
    }

    pub(crate) fn forget(&mut self, id: TaskId) {
        if self.tasks.get(&id).is_some_and(|m| m.rec.state.is_terminal()) {
            self.tasks.remove(&id);
        }
    }

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
                let held: Vec<TaskId> = self
                    .by_contractor
                    .range((from, TaskId::NIL)..)
                    .take_while(|(a, _)| *a == from)
                    .map(|(_, t)| *t)
                    .filter(|t| !hb.contracts.iter().any(|r| r.task == *t))
                    .collect();
                for t in held {
                    if self
                        .tasks
                        .get(&t)
                        .is_some_and(|m| matches!(m.rec.state, TaskState::Awarded | TaskState::Running))
                    {
                        self.contract_ended(t, Code::UnexpectedDisconnect, Ending::Fault, None);
                    }
                }
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
        let held: Vec<TaskId> = self
            .by_contractor
            .range((agent, TaskId::NIL)..)
            .take_while(|(a, _)| *a == agent)
            .map(|(_, t)| *t)
            .collect();
        for t in held {
            if self
                .tasks
                .get(&t)
                .is_some_and(|m| matches!(m.rec.state, TaskState::Awarded | TaskState::Running))
            {
                self.contract_ended(t, code, Ending::Fault, None);
            }
        }
        self.manager_left(agent, code);
    }

    /// Drops tasks without a word: another node owns them now (fencing, partition moved).
    pub(crate) fn let_go(&mut self, ids: &[TaskId]) {
        for id in ids {
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
            if self.tasks.contains_key(&id) {
                continue;
            }
            let (state, parent, contractor, deadline) =
                (rec.state, rec.parent, rec.contractor, rec.spec.deadline);
            self.tasks.insert(id, Managed::new(rec));
            if state.is_terminal() {
                self.timer(self.now + self.cfg.terminal_retention, Timer::Forget(id));
                continue;
            }
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
                self.timer(at, Timer::Lease(id, epoch));
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

//! The manager side: accept a task, announce it, collect bids, award, watch the lease,
//! assess the report, and resolve failures (retry, next-best bid, re-announce, or fail).

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::Value;
use xchange_protocol::{
    AcceptBody, AgentId, Body, Budget, CfpBody, Code, CodeBody, Envelope, MsgId, Provisional, Recipient,
    TaskId, TaskState, is_valid_name,
};

use crate::Micros;
use crate::config::Announce;
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
    /// The lease timer armed for this task (at, epoch), so that it can be disarmed when the
    /// contract ends instead of lingering in the timer set.
    pub(crate) lease_timer: Option<(Micros, u32)>,
    pub(crate) result: Option<Arc<Value>>,
    pub(crate) unconfirmed: Option<PersistToken>,
    pub(crate) overdraft: u32,
    /// The current round binds late: the first bid wins.
    pub(crate) late: bool,
    /// Iterated auctions: the premium of the current provisional award.
    pub(crate) premium: f64,
}

impl Managed {
    pub(crate) fn new(rec: TaskRecord) -> Self {
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
            lease_timer: None,
            result: None,
            unconfirmed: None,
            overdraft: 0,
            late: false,
            premium: 0.0,
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

    pub(crate) fn priority_key(&self) -> (Reverse<i64>, TaskId) {
        (Reverse(self.rec.spec.priority), self.rec.id)
    }

    /// Takes `n` messages from the budget; counts an overdraft if there are not enough
    /// (decisions check the budget first, so an overdraft is a bug the invariants catch).
    pub(crate) fn charge_messages(&mut self, n: u32) {
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
    /// The contractor turned the award down before starting (busy, not capable): placed
    /// again at once, counted apart from reassignments of work that was under way.
    Declined,
    /// A provisional award (iterated auction) was handed back or turned down for one with a
    /// higher premium: placed again from the bids in hand, the agent not excluded.
    Moved,
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
        if self.tasks.contains_key(&id) || self.finished.contains_key(&id) {
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
                    None => after.part(s.share),
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
        self.tasks.insert(id, Box::new(Managed::new(rec)));
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

    pub(crate) fn barrier(&self, id: &TaskId) -> Option<PersistToken> {
        self.tasks.get(id).and_then(|m| m.unconfirmed)
    }

    /// Sends a message about managed task `id` to `to`, charging its budget.
    pub(crate) fn send_about(
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
        let late = self.cfg.late_binding && targets.is_some();
        // A call cannot stay open longer than it lives.
        let reply_by =
            if late { self.now + self.cfg.late_window.min(self.cfg.message_ttl) } else { reply_by };
        let body = Body::Cfp(CfpBody { task: spec.clone(), budget: m.rec.budget.half(), late });
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
        m.late = late;
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
    pub(crate) fn wait(&mut self, id: TaskId) {
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
            if let Body::Propose(_) = msg.body {
                // The task ended or is unknown: say so, or a late-binding contractor would
                // wait for an answer that never comes.
                let reject =
                    CodeBody { code: Code::BidWindowClosed, reason: "the task is no longer open".into() };
                self.reply(msg, Body::Reject(reject));
            }
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
            if m.rec.directed.is_some() {
                // A directed task (a private database's, for one) never asked anyone: a bid
                // is an attempt to take work meant for a chosen contractor.
                let reason = "the task is directed to a chosen contractor and takes no bids";
                if let Body::Propose(_) = msg.body {
                    let reject = Body::Reject(CodeBody { code: Code::Forbidden, reason: reason.into() });
                    self.send_about(id, Recipient::Agent(msg.from), reject, Some(msg.id), None);
                }
                return self.refuse_message(msg, Code::Forbidden, reason);
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
                    reputation: 0.5,
                });
            }
            _ => self.counters.refusals += 1,
        }
        // Late binding: the first agent free to take the task gets it.
        let first_free = m.late && !m.bids.is_empty();
        let all_in = first_free
            || match &m.asked {
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

    fn close_round(&mut self, id: TaskId) {
        let Some(m) = self.tasks.get_mut(&id) else { return };
        let timer = (m.reply_by, Timer::BidWindow(id, m.round));
        m.asked = Round::Closed;
        let bids = std::mem::take(&mut m.bids);
        let max_price = m.rec.spec.max_price.unwrap_or(u64::MAX);
        let affordable = m.rec.budget.price;
        let (mut usable, mut unusable) = (Vec::with_capacity(bids.len()), Vec::new());
        for mut b in bids {
            // One lookup tells whether the bidder is still known and what the manager thinks of it.
            match self.index.reputation(&b.agent) {
                Some(r)
                    if !m.excluded.contains(&b.agent) && b.price <= max_price && b.price <= affordable =>
                {
                    b.reputation = r.value();
                    usable.push(b);
                }
                _ => unusable.push(b),
            }
        }
        let over_budget = unusable.iter().any(|b| b.price > affordable && b.price <= max_price);
        let priority = m.rec.spec.priority;
        self.cancel_timer(timer.0, timer.1);
        let weights = self.cfg.weights;
        rank(&mut usable, &weights, priority);
        if self.cfg.auction.is_some() {
            // Every bid stands until the task ends: the auction may move the task to any of
            // them, so no bidder is told it lost.
            let m = self.tasks.get_mut(&id).expect("managed task");
            m.standby = usable;
            let since = self.now - m.announced_at;
            let bids = m.standby.len() as u32;
            if !self.place_by_auction(id, Some((since, bids))) {
                self.wait(id);
            }
            return;
        }
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
        self.award_on(id, agent, price, bid, round, None);
    }

    /// Iterated auction: awards the task to the agent whose bid plus premium is lowest, and
    /// raises that agent's premium by its margin over the runner-up plus epsilon (Bertsekas).
    /// Returns false if no standing bid is usable.
    pub(crate) fn place_by_auction(&mut self, id: TaskId, round: Option<(Micros, u32)>) -> bool {
        let Some(auction) = self.cfg.auction else { return false };
        let Some(m) = self.tasks.get(&id) else { return false };
        let (mut best, mut second): (Option<(f64, usize)>, f64) = (None, f64::INFINITY);
        for (i, b) in m.standby.iter().enumerate() {
            if m.excluded.contains(&b.agent) || !self.index.knows(&b.agent) || b.price > m.rec.budget.price {
                continue;
            }
            let value = b.price as f64 + self.premiums.get(&b.agent).copied().unwrap_or(0.0);
            match best {
                Some((v, _)) if value >= v => second = second.min(value),
                _ => {
                    second = best.map_or(second, |(v, _)| v);
                    best = Some((value, i));
                }
            }
        }
        let Some((value, i)) = best else { return false };
        let bid = m.standby[i];
        let margin = if second.is_finite() { second - value } else { 0.0 };
        let premium = self.premiums.get(&bid.agent).copied().unwrap_or(0.0) + margin + auction.epsilon;
        self.premiums.insert(bid.agent, premium);
        let offer = Provisional { premium, settle_ms: auction.settle / 1000 };
        self.award_on(id, bid.agent, bid.price, Some(bid.msg), round, Some(offer));
        true
    }

    fn award_on(
        &mut self,
        id: TaskId,
        agent: AgentId,
        price: u64,
        bid: Option<MsgId>,
        round: Option<(Micros, u32)>,
        provisional: Option<Provisional>,
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
        m.premium = provisional.map_or(0.0, |p| p.premium);
        let (epoch, lease_until, key) = (m.rec.epoch, m.lease_until, m.priority_key());
        let spec = m.rec.spec.clone();
        self.waiting.remove(&key);
        self.by_contractor.insert((agent, id));
        self.arm_lease(id, lease_until, epoch);
        self.persist(id);
        let lease_ms = self.cfg.lease / 1000;
        let body = Body::Accept(AcceptBody { task: spec, budget: slice, price, lease_ms, provisional });
        self.send_about(id, Recipient::Agent(agent), body, bid, None);
        self.counters.contracts += 1;
        let (announce_to_award, bids) = match round {
            Some((t, n)) => (Some(t), n),
            None => (None, 0),
        };
        self.emit(id, EventKind::Awarded { contractor: agent, epoch, price, bids, announce_to_award });
    }
}

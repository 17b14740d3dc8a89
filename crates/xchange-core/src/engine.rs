//! The engine: state, input dispatch, timers and the helpers both roles share.
//!
//! One `Engine` is one agent. It may manage tasks (manager side, `manager.rs`) and hold
//! contracts (contractor side, `contractor.rs`) at the same time; a contractor that splits
//! its task becomes the manager of the subtasks in the same engine.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use xchange_protocol::{AgentId, Body, Code, Envelope, Lineage, MsgId, Recipient, TaskId, Version};

use crate::Micros;
use crate::agent_map::AgentMap;
use crate::config::{ContractorProfile, EngineConfig};
use crate::contractor::Contract;
use crate::counters::Counters;
use crate::index::CapabilityIndex;
use crate::io::{Effect, Event, EventKind, FinishedTask, Input, PersistToken, Refused, TaskRecord};
use crate::manager::Managed;
use crate::rng::DetRng;

/// Deadlines the engine waits for. Checked lazily: a timer that is no longer relevant when
/// it fires does nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    /// The bid window of a round closes.
    BidWindow(TaskId, u32),
    /// A contract's lease may have lapsed.
    Lease(TaskId, u32),
    /// A task's deadline.
    Deadline(TaskId),
    /// A waiting task may be announced again.
    Retry(TaskId),
    /// Time to send a heartbeat to this manager.
    Heartbeat(AgentId),
    /// Resend an unacknowledged result report.
    Resend(TaskId, u32),
    /// A late-binding bid got no answer in time.
    LateWait(TaskId),
    /// A provisional award may have settled.
    Settle(TaskId),
}

/// Conversation fields shared by every message about one task at one level of the tree.
#[derive(Debug, Clone)]
pub(crate) struct Thread {
    pub(crate) conversation: Option<TaskId>,
    pub(crate) epoch: u32,
    pub(crate) hops: u8,
    pub(crate) max_hops: u8,
    pub(crate) lineage: Lineage,
}

impl Thread {
    pub(crate) fn of(msg: &Envelope) -> Self {
        Self {
            conversation: msg.conversation,
            epoch: msg.epoch,
            hops: msg.hops,
            max_hops: msg.max_hops,
            lineage: msg.lineage.clone(),
        }
    }
}

/// The sans-IO contract-net engine of one agent.
///
/// Feed it inputs with [`Engine::handle`] and the passing of time with
/// [`Engine::handle_timeout`] (when [`Engine::poll_timeout`] is due), and apply the effects
/// each call returns, in order. It does no I/O, reads no clock and draws randomness only
/// from the seed it was given, so the same inputs always give the same effects.
#[derive(Debug)]
// Laid out by hand (`repr(C)`): what every message touches comes first, contractor state
// next, manager state last, so that a contractor among a hundred thousand, woken by a call
// for proposals, costs few cache lines.
#[repr(C)]
pub struct Engine {
    pub(crate) now: Micros,
    pub(crate) cfg: Arc<EngineConfig>,
    pub(crate) id: AgentId,
    pub(crate) rng: DetRng,
    pub(crate) out: Vec<Effect>,
    // Contractor side.
    pub(crate) running: u32,
    pub(crate) incarnation: u64,
    pub(crate) seq: u64,
    pub(crate) profile: Option<ContractorProfile>,
    pub(crate) run_queue: BTreeSet<(Reverse<i64>, u64, TaskId)>,
    pub(crate) contracts: BTreeMap<TaskId, Box<Contract>>,
    pub(crate) by_manager: BTreeSet<(AgentId, TaskId)>,
    /// Managers this agent holds contracts from, with the time of the next heartbeat.
    pub(crate) heartbeats: AgentMap<Micros>,
    pub(crate) timers: BTreeSet<(Micros, Timer)>,
    /// Late-binding calls for proposals waiting for this agent to be free, oldest first.
    pub(crate) reservations: VecDeque<Arc<Envelope>>,
    /// The provisional award held (iterated auctions): task, premium, settle time.
    pub(crate) provisional: Option<(TaskId, f64, Micros)>,
    /// The late-binding bid sent and not yet answered, with its timer.
    pub(crate) late_pending: Option<(TaskId, Micros)>,
    /// Finished tasks to forget, in time order (retention is constant, so a queue suffices
    /// and the timer set stays small). Next to `timers`: `poll_timeout` reads both after
    /// every input.
    pub(crate) forget: VecDeque<(Micros, TaskId)>,
    /// Right after the contractor's hot fields: every message counts itself here, and the
    /// runtime prefetches this far into an engine before it is woken.
    pub(crate) counters: Counters,
    /// Subtasks (managed here) of contracts (held here): (parent, child).
    pub(crate) children: BTreeSet<(TaskId, TaskId)>,
    // Manager side.
    pub(crate) root_lineage: Lineage,
    pub(crate) index: CapabilityIndex,
    /// Boxed: a task is a few hundred bytes, and ordered-map nodes shift their values.
    pub(crate) tasks: BTreeMap<TaskId, Box<Managed>>,
    /// Ended tasks, kept for `terminal_retention` to answer duplicates. Apart from `tasks`
    /// so that the map every message looks up holds live work only.
    pub(crate) finished: BTreeMap<TaskId, FinishedTask>,
    pub(crate) by_contractor: BTreeSet<(AgentId, TaskId)>,
    pub(crate) waiting: BTreeSet<(Reverse<i64>, TaskId)>,
    pub(crate) incarnations: AgentMap<u64>,
    /// Iterated auctions: the premium of each agent as this manager knows it.
    pub(crate) premiums: AgentMap<f64>,
    pub(crate) to_restore: Vec<TaskRecord>,
}

impl Engine {
    /// How many leading bytes of an engine handling any message touches: every field before
    /// the counters, and the first two counters (messages sent and received). A host that
    /// keeps engines inline prefetches this much before it wakes one.
    pub const HOT_BYTES: usize = std::mem::offset_of!(Self, counters) + 2 * size_of::<u64>();

    /// A fresh engine for agent `id`. Agents with a `profile` take work; all can manage.
    pub fn new(
        id: AgentId,
        config: Arc<EngineConfig>,
        profile: Option<ContractorProfile>,
        seed: u64,
    ) -> Self {
        Self {
            id,
            cfg: config,
            profile,
            rng: DetRng::new(seed),
            incarnation: 1,
            now: 0,
            root_lineage: Arc::from(vec![id]),
            index: CapabilityIndex::default(),
            tasks: BTreeMap::new(),
            finished: BTreeMap::new(),
            by_contractor: BTreeSet::new(),
            waiting: BTreeSet::new(),
            incarnations: AgentMap::default(),
            premiums: AgentMap::default(),
            contracts: BTreeMap::new(),
            by_manager: BTreeSet::new(),
            run_queue: BTreeSet::new(),
            running: 0,
            heartbeats: AgentMap::default(),
            children: BTreeSet::new(),
            timers: BTreeSet::new(),
            reservations: VecDeque::new(),
            late_pending: None,
            provisional: None,
            forget: VecDeque::new(),
            out: Vec::new(),
            counters: Counters::default(),
            seq: 0,
            to_restore: Vec::new(),
        }
    }

    /// An engine rebuilt from the records it persisted. `incarnation` must be higher than
    /// the previous run's, so that heartbeats tell managers that contracts were forgotten.
    /// Call [`Engine::resume`] once before anything else.
    pub fn restore(
        id: AgentId,
        config: Arc<EngineConfig>,
        profile: Option<ContractorProfile>,
        seed: u64,
        incarnation: u64,
        records: Vec<TaskRecord>,
    ) -> Self {
        let mut engine = Self::new(id, config, profile, seed);
        engine.incarnation = incarnation;
        engine.to_restore = records;
        engine
    }

    /// Continues the tasks given to [`Engine::restore`]: re-announces unplaced ones, gives
    /// running contracts a fresh lease, and cancels subtasks whose parent contract was lost.
    pub fn resume(&mut self, now: Micros) -> std::vec::Drain<'_, Effect> {
        self.now = now;
        let records = std::mem::take(&mut self.to_restore);
        self.adopt(records);
        self.out.drain(..)
    }

    /// This agent's id.
    pub fn id(&self) -> AgentId {
        self.id
    }

    /// This run's incarnation (1 for a fresh engine).
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// What the engine has done so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The contractor profile, if this agent takes work.
    pub fn profile(&self) -> Option<&ContractorProfile> {
        self.profile.as_ref()
    }

    /// The earliest time at which [`Engine::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Micros> {
        let timer = self.timers.first().map(|(at, _)| *at);
        let forget = self.forget.front().map(|(at, _)| *at);
        match (timer, forget) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Tasks managed here that have not ended.
    pub fn live_tasks(&self) -> usize {
        self.tasks.len()
    }

    /// Contracts held here (contractor side).
    pub fn held_contracts(&self) -> usize {
        self.contracts.len()
    }

    /// The record of a task managed here.
    pub fn task(&self, id: &TaskId) -> Option<&TaskRecord> {
        self.tasks.get(id).map(|m| &m.rec)
    }

    /// How a task that ended here ended (remembered for `terminal_retention`).
    pub fn finished_task(&self, id: &TaskId) -> Option<&FinishedTask> {
        self.finished.get(id)
    }

    /// Every live task managed here, in id order.
    pub fn tasks(&self) -> impl Iterator<Item = &TaskRecord> {
        self.tasks.values().map(|m| &m.rec)
    }

    /// The contracts held here: task, manager, epoch, and whether execution started.
    pub fn contracts(&self) -> impl Iterator<Item = (TaskId, AgentId, u32, bool)> + '_ {
        self.contracts.values().map(|c| (c.task, c.manager, c.thread.epoch, c.started()))
    }

    /// Handles one input at time `now` and returns the effects to apply, in order.
    pub fn handle(&mut self, now: Micros, input: Input) -> std::vec::Drain<'_, Effect> {
        self.dispatch(now, input);
        self.out.drain(..)
    }

    /// Like [`Engine::handle`], but appends the effects to the host's buffer. A host with
    /// many engines keeps one buffer warm instead of one per engine.
    pub fn handle_into(&mut self, now: Micros, input: Input, out: &mut Vec<Effect>) {
        std::mem::swap(&mut self.out, out);
        self.dispatch(now, input);
        std::mem::swap(&mut self.out, out);
    }

    /// Like [`Engine::handle_timeout`], appending to the host's buffer.
    pub fn handle_timeout_into(&mut self, now: Micros, out: &mut Vec<Effect>) {
        std::mem::swap(&mut self.out, out);
        self.run_timers(now);
        std::mem::swap(&mut self.out, out);
    }

    fn dispatch(&mut self, now: Micros, input: Input) {
        self.now = self.now.max(now);
        match input {
            Input::Submit(submit) => self.submit(submit),
            Input::Message(msg) => self.on_message(msg),
            Input::ExecutionFinished { task, epoch, outcome } => {
                self.execution_finished(task, epoch, outcome)
            }
            Input::ExecutionProgress { task, epoch, fraction } => {
                self.execution_progress(task, epoch, fraction)
            }
            Input::BidDecided { cfp, decision } => self.bid_decided(&cfp, decision),
            Input::Decommit { task, reason } => self.decommit(task, reason),
            Input::Cancel { task, reason } => self.cancel(task, reason),
            Input::Verdict { task, epoch, accepted, reason } => self.verdict(task, epoch, accepted, reason),
            Input::Persisted(_) => {}
            Input::PersistRefused(token) => self.let_go(&[token.task]),
            Input::AgentArrived(card) => self.agent_arrived(card),
            Input::AgentLeft { agent, code } => self.agent_left(agent, code),
            Input::PartitionGranted { partition: _, records } => self.adopt(records),
            Input::PartitionLost { partition } => {
                let lost: Vec<TaskId> =
                    self.tasks().filter(|r| r.partition == partition).map(|r| r.id).collect();
                self.finished.retain(|_, f| f.partition != partition);
                self.let_go(&lost);
            }
        }
    }

    /// Handles every deadline that is due at `now`.
    pub fn handle_timeout(&mut self, now: Micros) -> std::vec::Drain<'_, Effect> {
        self.run_timers(now);
        self.out.drain(..)
    }

    fn run_timers(&mut self, now: Micros) {
        self.now = self.now.max(now);
        while self.forget.front().is_some_and(|(at, _)| *at <= now) {
            let (_, task) = self.forget.pop_front().expect("checked");
            self.forget(task);
        }
        while let Some(&(at, timer)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            match timer {
                Timer::BidWindow(task, round) => self.bid_window_closed(task, round),
                Timer::Lease(task, epoch) => self.lease_check(task, epoch),
                Timer::Deadline(task) => self.deadline_passed(task),
                Timer::Retry(task) => self.retry_waiting(task),
                Timer::Heartbeat(manager) => self.send_heartbeat(manager),
                Timer::Resend(task, epoch) => self.resend_report(task, epoch),
                Timer::LateWait(task) => self.late_bid_unanswered(task),
                Timer::Settle(task) => self.settled(task),
            }
        }
        crate::contractor::release_if_empty(&mut self.timers);
    }

    fn on_message(&mut self, msg: Arc<Envelope>) {
        self.counters.messages_received += 1;
        // Edges check expiry too, but a message can expire while it waits in a queue.
        if msg.expires_at.saturating_mul(1000) <= self.now {
            return self.refuse_message(&msg, Code::Expired, "the message expired in a queue");
        }
        if msg.aixp.major != Version::V1_0.major {
            return self.refuse_message(&msg, Code::Incompatible, "unsupported protocol version");
        }
        match &msg.body {
            Body::Cfp(_) => self.on_cfp(msg),
            Body::Propose(_) | Body::Refuse(_) => self.on_bid(&msg),
            Body::Accept(_) => self.on_accept(msg),
            Body::Reject(_) => self.on_reject(&msg),
            Body::Progress(_) => self.on_progress(&msg),
            Body::Heartbeat(_) => self.on_heartbeat(&msg),
            Body::Inform(_) | Body::Failure(_) => self.on_report(&msg),
            Body::Cancel(_) => self.on_cancel(&msg),
            Body::Ack(_) => self.on_ack(&msg),
            Body::Error(_) => self.on_error(&msg),
        }
    }

    // ---- helpers shared by both roles ----

    pub(crate) fn now_ms(&self) -> u64 {
        self.now / 1000
    }

    pub(crate) fn timer(&mut self, at: Micros, timer: Timer) {
        self.timers.insert((at, timer));
    }

    pub(crate) fn cancel_timer(&mut self, at: Micros, timer: Timer) {
        self.timers.remove(&(at, timer));
        crate::contractor::release_if_empty(&mut self.timers);
    }

    pub(crate) fn next_msg_id(&mut self) -> MsgId {
        let random = self.rng.bytes10();
        MsgId::new_v7(self.now_ms(), random)
    }

    /// Sends a message about `thread` and returns its id.
    pub(crate) fn send(
        &mut self,
        to: Recipient,
        thread: &Thread,
        body: Body,
        in_reply_to: Option<MsgId>,
        reply_by: Option<Micros>,
        barrier: Option<PersistToken>,
    ) -> MsgId {
        let id = self.next_msg_id();
        let msg = Envelope {
            aixp: Version::V1_0,
            id,
            body,
            from: self.id,
            to,
            conversation: thread.conversation,
            epoch: thread.epoch,
            in_reply_to,
            reply_by: reply_by.map(|t| t / 1000),
            expires_at: (self.now + self.cfg.message_ttl) / 1000,
            hops: thread.hops,
            max_hops: thread.max_hops,
            lineage: thread.lineage.clone(),
            nonce: None,
            sig: None,
        };
        self.counters.messages_sent += 1;
        self.out.push(Effect::Send { msg: Arc::new(msg), barrier });
        id
    }

    /// Answers `msg` with a message of the same conversation.
    pub(crate) fn reply(&mut self, msg: &Envelope, body: Body) {
        let thread = Thread::of(msg);
        self.send(Recipient::Agent(msg.from), &thread, body, Some(msg.id), None, None);
    }

    pub(crate) fn refuse_message(&mut self, msg: &Envelope, code: Code, reason: &str) {
        if code == Code::StaleEpoch {
            self.counters.stale_epoch += 1;
        } else {
            self.counters.refused_messages += 1;
        }
        self.out.push(Effect::Refused {
            about: Refused::Message { id: msg.id, from: msg.from },
            code,
            reason: reason.to_owned(),
        });
    }

    pub(crate) fn refuse_command(&mut self, task: Option<TaskId>, code: Code, reason: impl Into<String>) {
        self.counters.refused_commands += 1;
        self.out.push(Effect::Refused { about: Refused::Command { task }, code, reason: reason.into() });
    }

    pub(crate) fn emit(&mut self, task: TaskId, kind: EventKind) {
        if !self.cfg.events {
            return;
        }
        let Some(m) = self.tasks.get_mut(&task) else { return };
        m.events += 1;
        self.out.push(Effect::Emit(Event { id: (task, m.events), at: self.now, kind }));
    }

    pub(crate) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
}

/// The tasks paired with `key` in a set ordered by (key, task): one agent's contracts, one
/// contract's subtasks.
pub(crate) fn tasks_of<K: Ord + Copy>(set: &BTreeSet<(K, TaskId)>, key: K) -> Vec<TaskId> {
    set.range((key, TaskId::NIL)..).take_while(|(k, _)| *k == key).map(|(_, t)| *t).collect()
}

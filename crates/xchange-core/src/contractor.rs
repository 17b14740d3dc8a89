//! The contractor side: evaluate calls for proposals, hold contracts, execute them in
//! priority order within capacity, send heartbeats, report, and hand work back.

use std::cmp::Reverse;
use std::sync::Arc;

use serde_json::Value;
use xchange_protocol::{
    AgentId, Body, Budget, Code, CodeBody, ContractRef, Envelope, FailureBody, HeartbeatBody, InformBody,
    ProgressBody, ProposeBody, Recipient, TaskId, TaskSpec, TaskState,
};

use crate::Micros;
use crate::engine::{Engine, Thread, Timer, tasks_of};
use crate::io::{BidTerms, Effect, ExecOutcome};

/// Where a held contract is.
#[derive(Debug, Clone)]
pub(crate) enum ContractState {
    /// Awarded, waiting for capacity (the award is still provisional).
    Queued,
    /// Executing.
    Running,
    /// Result reported, waiting for the manager's acknowledgement.
    Reported { result: Arc<Value>, spent: Budget, since: Micros, resend_at: Micros },
}

/// A contract held by this engine.
#[derive(Debug, Clone)]
pub(crate) struct Contract {
    pub(crate) task: TaskId,
    pub(crate) manager: AgentId,
    pub(crate) thread: Thread,
    pub(crate) spec: Arc<TaskSpec>,
    pub(crate) slice: Budget,
    pub(crate) remaining: Budget,
    pub(crate) state: ContractState,
    pub(crate) queue_key: (Reverse<i64>, u64, TaskId),
}

impl Contract {
    pub(crate) fn started(&self) -> bool {
        !matches!(self.state, ContractState::Queued)
    }
}

impl Engine {
    /// Contracts that occupy capacity (executing or queued).
    fn held(&self) -> u32 {
        self.running + self.run_queue.len() as u32 + u32::from(self.provisional.is_some())
    }

    fn reply_refuse(&mut self, msg: &Envelope, code: Code, reason: &str) {
        self.reply(msg, Body::Refuse(CodeBody { code, reason: reason.to_owned() }));
    }

    /// Checks that do not depend on price: can and may this agent take the task at all?
    fn eligibility(&self, msg: &Envelope, spec: &TaskSpec) -> Result<(), (Code, &'static str)> {
        let Some(profile) = &self.profile else {
            return Err((Code::NotCapable, "this agent takes no work"));
        };
        if !profile.offers(&spec.pool, &spec.capability) {
            return Err((Code::NotCapable, "this agent does not offer the capability in this pool"));
        }
        if msg.lineage.contains(&self.id) {
            return Err((Code::LoopDetected, "this agent already manages an ancestor of the task"));
        }
        if self.held() >= profile.capacity + profile.queue_limit {
            return Err((Code::Busy, "the agent's queue is full"));
        }
        Ok(())
    }

    pub(crate) fn on_cfp(&mut self, msg: Arc<Envelope>) {
        let Body::Cfp(cfp) = &msg.body else { return };
        if msg.from == self.id {
            return; // our own broadcast
        }
        if msg.reply_by.is_some_and(|r| r.saturating_mul(1000) < self.now) {
            return self.refuse_message(
                &msg,
                Code::BidWindowClosed,
                "the call for proposals is past its reply_by",
            );
        }
        let spec = cfp.task.clone();
        if let Err((code, reason)) = self.eligibility(&msg, &spec) {
            return self.reply_refuse(&msg, code, reason);
        }
        if cfp.late {
            let limit = self.profile.as_ref().map_or(0, |p| p.queue_limit) as usize;
            if self.reservations.len() >= limit.max(1) {
                return self.reply_refuse(&msg, Code::Busy, "too many reservations");
            }
            self.reservations.push_back(msg);
            return self.late_bind();
        }
        if self.profile.as_ref().is_some_and(|p| p.external_bidding) {
            return self.out.push(Effect::Evaluate { cfp: msg });
        }
        let terms = self.default_terms(&spec);
        self.propose(&msg, &spec, terms);
    }

    pub(crate) fn bid_decided(&mut self, cfp: &Envelope, decision: Result<BidTerms, (Code, String)>) {
        let Body::Cfp(body) = &cfp.body else { return };
        let spec = body.task.clone();
        match decision {
            Ok(terms) => {
                self.propose(cfp, &spec, terms);
            }
            Err((code, reason)) => self.reply_refuse(cfp, code, &reason),
        }
    }

    fn default_terms(&self, spec: &TaskSpec) -> BidTerms {
        let p = self.profile.as_ref().expect("eligibility checked the profile");
        let ahead = f64::from(self.held()) / f64::from(p.capacity.max(1));
        let seconds = (ahead + 1.0) * spec.size / p.speed.max(1e-9);
        BidTerms {
            price: (p.price_per_unit as f64 * spec.size).ceil() as u64,
            eta_ms: (seconds * 1000.0).ceil() as u64,
        }
    }

    /// Bids, or refuses if the price is above the task's limit; says whether it bid.
    fn propose(&mut self, cfp: &Envelope, spec: &TaskSpec, terms: BidTerms) -> bool {
        if spec.max_price.is_some_and(|max| terms.price > max) {
            self.reply_refuse(cfp, Code::Declined, "the price would exceed the task's max_price");
            return false;
        }
        let capacity = self.profile.as_ref().map_or(1, |p| p.capacity.max(1));
        let load = f64::from(self.held()) / f64::from(capacity);
        self.reply(cfp, Body::Propose(ProposeBody { price: terms.price, eta_ms: terms.eta_ms, load }));
        true
    }

    /// When free, bids for the oldest reservation still open (late binding).
    pub(crate) fn late_bind(&mut self) {
        let capacity = self.profile.as_ref().map_or(0, |p| p.capacity);
        if self.late_pending.is_some() || self.held() >= capacity {
            return;
        }
        while let Some(cfp) = self.reservations.pop_front() {
            let open = cfp.reply_by.is_none_or(|r| r.saturating_mul(1000) > self.now)
                && cfp.expires_at.saturating_mul(1000) > self.now;
            let (Body::Cfp(body), Some(task), true) = (&cfp.body, cfp.conversation, open) else { continue };
            let spec = body.task.clone();
            let terms = self.default_terms(&spec);
            if self.propose(&cfp, &spec, terms) {
                // The answer takes one round trip; a bid window is ample.
                let at = self.now + self.cfg.bid_window;
                self.late_pending = Some((task, at));
                return self.timer(at, Timer::LateWait(task));
            }
        }
        release_if_empty(&mut self.reservations);
    }

    /// The manager answered (or will never answer) our late bid: free to bid again.
    fn late_answered(&mut self, task: TaskId) {
        if let Some((pending, at)) = self.late_pending
            && pending == task
        {
            self.late_pending = None;
            self.cancel_timer(at, Timer::LateWait(task));
        }
    }

    pub(crate) fn late_bid_unanswered(&mut self, task: TaskId) {
        if self.late_pending.is_some_and(|(t, _)| t == task) {
            self.late_pending = None;
            self.late_bind();
        }
    }

    pub(crate) fn on_reject(&mut self, msg: &Envelope) {
        if let Some(task) = msg.conversation
            && self.late_pending.is_some_and(|(t, _)| t == task)
        {
            self.late_answered(task);
            self.late_bind();
        }
    }

    fn refuse_award(&mut self, msg: &Envelope, code: Code, reason: &str) {
        let body = FailureBody {
            code,
            reason: reason.to_owned(),
            retryable: false,
            started: false,
            spent: Budget::ZERO,
        };
        self.reply(msg, Body::Failure(body));
    }

    pub(crate) fn on_accept(&mut self, msg: Arc<Envelope>) {
        let Body::Accept(accept) = &msg.body else { return };
        let Some(task) = msg.conversation else {
            return self.refuse_message(&msg, Code::SchemaInvalid, "an award must name its task");
        };
        if let Some(existing) = self.contracts.get(&task) {
            if existing.manager != msg.from {
                return self.refuse_message(
                    &msg,
                    Code::Forbidden,
                    "another manager holds this task's contract",
                );
            }
            if existing.thread.epoch >= msg.epoch {
                let code = if existing.thread.epoch == msg.epoch { Code::Conflict } else { Code::StaleEpoch };
                return self.refuse_message(
                    &msg,
                    code,
                    "the contract is held already at this or a newer epoch",
                );
            }
            self.drop_contract(task, Code::Superseded);
        }
        self.late_answered(task);
        if let (Some(offer), Some((held, premium, _))) = (&accept.provisional, self.provisional) {
            if offer.premium <= premium {
                return self.refuse_award(
                    &msg,
                    Code::Outbid,
                    "this agent holds an award with a higher premium",
                );
            }
            self.hand_back_outbid(held);
        }
        if let Err((code, reason)) = self.eligibility(&msg, &accept.task) {
            return self.refuse_award(&msg, code, reason);
        }
        let queue_key = (Reverse(accept.task.priority), self.next_seq(), task);
        let contract = Contract {
            task,
            manager: msg.from,
            thread: Thread::of(&msg),
            spec: accept.task.clone(),
            slice: accept.budget,
            remaining: accept.budget,
            state: ContractState::Queued,
            queue_key,
        };
        self.contracts.insert(task, Box::new(contract));
        match accept.provisional {
            Some(offer) => {
                let at = self.now + offer.settle_ms.saturating_mul(1000);
                self.provisional = Some((task, offer.premium, at));
                self.timer(at, Timer::Settle(task));
            }
            None => {
                self.run_queue.insert(queue_key);
            }
        }
        self.by_manager.insert((msg.from, task));
        if !self.heartbeats.contains_key(&msg.from) {
            let at = self.now + self.cfg.heartbeat_interval;
            self.heartbeats.insert(msg.from, at);
            self.timer(at, Timer::Heartbeat(msg.from));
        }
        self.start_queued();
    }

    /// A provisional award went unchallenged for its settle time: it is final now.
    pub(crate) fn settled(&mut self, task: TaskId) {
        if self.provisional.is_some_and(|(t, _, _)| t == task) {
            self.provisional = None;
            let key = self.contracts.get(&task).expect("provisional contracts are held").queue_key;
            self.run_queue.insert(key);
            self.start_queued();
        }
    }

    /// Hands back the provisional award held, displaced by one with a higher premium.
    fn hand_back_outbid(&mut self, task: TaskId) {
        let body = FailureBody {
            code: Code::Outbid,
            reason: "an award with a higher premium displaced this one".into(),
            retryable: false,
            started: false,
            spent: Budget::ZERO,
        };
        self.send_to_manager(task, Body::Failure(body));
        self.drop_contract(task, Code::Outbid);
    }

    /// Starts queued contracts, highest priority first, while there is capacity; then, if
    /// still free, bids for a reservation.
    fn start_queued(&mut self) {
        self.start_from_queue();
        if !self.reservations.is_empty() {
            self.late_bind();
        }
    }

    fn start_from_queue(&mut self) {
        let capacity = self.profile.as_ref().map_or(0, |p| p.capacity);
        while self.running < capacity {
            let Some((_, _, task)) = self.run_queue.pop_first() else { break };
            let c = self.contracts.get_mut(&task).expect("queued contracts are held");
            c.state = ContractState::Running;
            self.running += 1;
            self.counters.executions += 1;
            let effect = Effect::StartExecution {
                task,
                epoch: c.thread.epoch,
                spec: c.spec.clone(),
                manager: c.manager,
            };
            self.out.push(effect);
        }
    }

    fn send_to_manager(&mut self, task: TaskId, body: Body) {
        let Some(c) = self.contracts.get(&task) else { return };
        let (to, thread) = (Recipient::Agent(c.manager), c.thread.clone());
        self.send(to, &thread, body, None, None, None);
    }

    /// Ends the subtasks this engine manages for a contract it held.
    fn end_children(&mut self, task: TaskId, code: Code, reason: &str) {
        let live = tasks_of(&self.children, task);
        for child in live {
            self.finish(child, TaskState::Cancelled, code, reason, None);
        }
    }

    pub(crate) fn execution_finished(&mut self, task: TaskId, epoch: u32, outcome: ExecOutcome) {
        match self.contracts.get(&task) {
            Some(c) if c.thread.epoch == epoch && matches!(c.state, ContractState::Running) => {}
            _ => {
                return self.refuse_command(
                    Some(task),
                    Code::StaleEpoch,
                    "no running contract for this execution",
                );
            }
        }
        self.running -= 1;
        self.end_children(task, Code::Cancelled, "the parent's execution ended");
        let c = self.contracts.get_mut(&task).expect("checked above");
        let spent = c.slice.minus(&c.remaining);
        match outcome {
            ExecOutcome::Done(result) => {
                let resend_at = self.now + self.cfg.report_resend;
                c.state =
                    ContractState::Reported { result: result.clone(), spent, since: self.now, resend_at };
                self.send_to_manager(task, Body::Inform(InformBody { result, spent }));
                self.timer(resend_at, Timer::Resend(task, epoch));
            }
            ExecOutcome::Failed { code, reason, retryable } => {
                self.send_to_manager(
                    task,
                    Body::Failure(FailureBody { code, reason, retryable, started: true, spent }),
                );
                self.remove_contract(task);
            }
        }
        self.start_queued();
    }

    pub(crate) fn execution_progress(&mut self, task: TaskId, epoch: u32, fraction: f64) {
        match self.contracts.get(&task) {
            Some(c) if c.thread.epoch == epoch && matches!(c.state, ContractState::Running) => {
                let body = ProgressBody { fraction: fraction.clamp(0.0, 1.0), started: true, note: None };
                self.send_to_manager(task, Body::Progress(body));
            }
            _ => self.refuse_command(Some(task), Code::StaleEpoch, "no running contract for this progress"),
        }
    }

    pub(crate) fn resend_report(&mut self, task: TaskId, epoch: u32) {
        let Some(c) = self.contracts.get_mut(&task) else { return };
        let ContractState::Reported { result, spent, since, resend_at } = &mut c.state else { return };
        if c.thread.epoch != epoch {
            return;
        }
        if self.now.saturating_sub(*since) > self.cfg.message_ttl {
            // The manager is gone for longer than any message lives: give up.
            return self.remove_contract(task);
        }
        *resend_at = self.now + self.cfg.report_resend;
        let (at, body) = (*resend_at, Body::Inform(InformBody { result: result.clone(), spent: *spent }));
        self.send_to_manager(task, body);
        self.timer(at, Timer::Resend(task, epoch));
    }

    fn remove_contract(&mut self, task: TaskId) {
        if let Some(c) = self.contracts.remove(&task) {
            self.by_manager.remove(&(c.manager, task));
            if self.by_manager.range((c.manager, TaskId::NIL)..).next().is_none_or(|(m, _)| *m != c.manager) {
                self.stop_heartbeats(c.manager);
            }
            self.run_queue.remove(&c.queue_key);
            if let Some((held, _, at)) = self.provisional
                && held == task
            {
                self.provisional = None;
                self.cancel_timer(at, Timer::Settle(task));
            }
            if let ContractState::Reported { resend_at, .. } = c.state {
                self.cancel_timer(resend_at, Timer::Resend(task, c.thread.epoch));
            }
            // An emptied ordered map keeps its node; a contractor among a hundred thousand
            // gives it back so that the memory is reused while still in cache.
            release_if_empty(&mut self.contracts);
            release_if_empty(&mut self.by_manager);
            release_if_empty(&mut self.run_queue);
        }
    }

    /// Gives a contract up (cancelled, superseded, manager gone, handed back).
    pub(crate) fn drop_contract(&mut self, task: TaskId, code: Code) {
        let Some(c) = self.contracts.get(&task) else { return };
        if matches!(c.state, ContractState::Running) {
            self.running -= 1;
            self.out.push(Effect::AbortExecution { task, epoch: c.thread.epoch });
        }
        self.end_children(task, code, "the parent contract ended");
        self.remove_contract(task);
        self.start_queued();
    }

    pub(crate) fn on_ack(&mut self, msg: &Envelope) {
        let Some(task) = msg.conversation else { return };
        match self.contracts.get(&task) {
            Some(c)
                if c.manager == msg.from
                    && c.thread.epoch == msg.epoch
                    && matches!(c.state, ContractState::Reported { .. }) =>
            {
                self.remove_contract(task);
            }
            _ => self.refuse_message(msg, Code::OutOfSequence, "acknowledgement for no pending report"),
        }
    }

    pub(crate) fn on_cancel(&mut self, msg: &Envelope) {
        let Body::Cancel(body) = &msg.body else { return };
        let Some(task) = msg.conversation else { return };
        match self.contracts.get(&task) {
            Some(c) if c.manager != msg.from => {
                self.refuse_message(msg, Code::Forbidden, "only the contract's manager may cancel it")
            }
            Some(c) if c.thread.epoch > msg.epoch => {
                self.refuse_message(msg, Code::StaleEpoch, "cancel for an older contract")
            }
            Some(_) => self.drop_contract(task, body.code),
            None => {}
        }
    }

    pub(crate) fn on_error(&mut self, msg: &Envelope) {
        let Body::Error(e) = &msg.body else { return };
        let Some(task) = msg.conversation else { return };
        // A manager that refuses our report as stale or unknown will never acknowledge it.
        let drop = matches!(e.code, Code::StaleEpoch | Code::NotFound)
            && self
                .contracts
                .get(&task)
                .is_some_and(|c| c.manager == msg.from && c.thread.epoch == msg.epoch);
        if drop {
            self.drop_contract(task, e.code);
        }
    }

    pub(crate) fn decommit(&mut self, task: TaskId, reason: String) {
        let Some(c) = self.contracts.get(&task) else {
            return self.refuse_command(Some(task), Code::NotFound, "no contract is held for this task");
        };
        let (started, spent) = (c.started(), c.slice.minus(&c.remaining));
        let body = FailureBody { code: Code::Decommitted, reason, retryable: false, started, spent };
        self.send_to_manager(task, Body::Failure(body));
        self.counters.decommits += 1;
        self.drop_contract(task, Code::Decommitted);
    }

    pub(crate) fn send_heartbeat(&mut self, manager: AgentId) {
        let contracts: Vec<ContractRef> = self
            .by_manager
            .range((manager, TaskId::NIL)..)
            .take_while(|(m, _)| *m == manager)
            .filter_map(|(_, t)| self.contracts.get(t))
            .map(|c| ContractRef { task: c.task, epoch: c.thread.epoch, started: c.started() })
            .collect();
        if contracts.is_empty() {
            return self.stop_heartbeats(manager);
        }
        let thread =
            Thread { conversation: None, epoch: 0, hops: 0, max_hops: 0, lineage: Arc::from(Vec::new()) };
        let body = Body::Heartbeat(HeartbeatBody { incarnation: self.incarnation, contracts });
        self.send(Recipient::Agent(manager), &thread, body, None, None, None);
        let at = self.now + self.cfg.heartbeat_interval;
        self.heartbeats.insert(manager, at);
        self.timer(at, Timer::Heartbeat(manager));
    }

    /// A manager we hold contracts from has left: its contracts are void.
    pub(crate) fn manager_left(&mut self, manager: AgentId, code: Code) {
        let held = tasks_of(&self.by_manager, manager);
        for task in held {
            self.drop_contract(task, code);
        }
        self.stop_heartbeats(manager);
    }

    /// No contract from `manager` is left: no more heartbeats to it.
    fn stop_heartbeats(&mut self, manager: AgentId) {
        if let Some(at) = self.heartbeats.remove(&manager) {
            self.cancel_timer(at, Timer::Heartbeat(manager));
        }
        if self.heartbeats.is_empty() {
            self.heartbeats = Default::default();
        }
    }
}

/// Drops the node (or buffer) an emptied collection keeps.
pub(crate) fn release_if_empty<T: Default + IsEmpty>(collection: &mut T) {
    if collection.is_empty() {
        *collection = T::default();
    }
}

/// Collections that can tell whether they are empty.
pub(crate) trait IsEmpty {
    fn is_empty(&self) -> bool;
}

impl<K, V> IsEmpty for std::collections::BTreeMap<K, V> {
    fn is_empty(&self) -> bool {
        self.is_empty()
    }
}

impl<K> IsEmpty for std::collections::BTreeSet<K> {
    fn is_empty(&self) -> bool {
        self.is_empty()
    }
}

impl<T> IsEmpty for std::collections::VecDeque<T> {
    fn is_empty(&self) -> bool {
        self.is_empty()
    }
}

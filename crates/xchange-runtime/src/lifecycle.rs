//! Hosting agents on a shard: spawning, submitting, and the lifecycle of fault injection
//! (kill, restart) and orderly departure (stop).

use std::collections::HashMap;

use xchange_bus::Inbox;
use xchange_core::{AgentCard, DetRng, Engine, Input, Micros, Submit};
use xchange_protocol::{Code, TaskId, TaskState};

use crate::contractor::Reply;
use crate::error::{RuntimeError, TaskFailure};
use crate::shard::{Lifecycle, NEVER, NewAgent, Shard, Slot, Work};

impl Shard {
    pub(crate) fn submit(&mut self, now: Micros, token: u32, mut submit: Submit, reply: Option<Reply>) {
        let random = self.rng.bytes10();
        let id = *submit.task.get_or_insert_with(|| TaskId::new_v7(now / 1000, random));
        let Some(slot) = self.live(token) else {
            if let Some(reply) = reply {
                let _ = reply.send(Err(TaskFailure::agent_gone(Code::AgentDisconnected)));
            }
            return;
        };
        if let Some(reply) = reply {
            if slot.waiters.contains_key(&id) {
                let reason = "a task with this id is already being waited for";
                let _ = reply.send(Err(TaskFailure::new(TaskState::Failed, Code::Conflict, reason)));
                return;
            }
            slot.waiters.insert(id, reply);
        }
        self.perform(now, Work::Input(token, Input::Submit(submit), Some(id)));
    }

    pub(crate) fn spawn(&mut self, now: Micros, new: NewAgent) {
        debug_assert_eq!(new.token as usize, self.slots.len(), "tokens are handed out in order");
        let config = self.shared.config.clone();
        let (engine, resume) = match new.restore {
            Some((incarnation, records)) => {
                (Engine::restore(new.id, config, new.profile.clone(), new.seed, incarnation, records), true)
            }
            None => (Engine::new(new.id, config, new.profile.clone(), new.seed), false),
        };
        let token = new.token;
        self.slots.push(Slot {
            id: new.id,
            key: new.key.map(Box::new),
            profile: new.profile,
            manages: new.manages,
            behavior: new.behavior,
            seed: new.seed,
            incarnation: engine.incarnation(),
            engine: Some(engine),
            subs: Vec::new(),
            running: HashMap::new(),
            waiters: HashMap::new(),
            scheduled: NEVER,
        });
        if new.manages {
            self.managers.push(token);
        }
        self.start(now, token, resume, new.cards);
    }

    /// Resumes a restored engine and tells it the agents it may contract with.
    fn start(&mut self, now: Micros, token: u32, resume: bool, cards: Vec<AgentCard>) {
        if resume {
            self.queue.push_back(Work::Resume(token));
        }
        for card in cards {
            self.queue.push_back(Work::Input(token, Input::AgentArrived(card), None));
        }
        self.drain(now);
    }

    pub(crate) fn lifecycle(&mut self, now: Micros, token: u32, op: Lifecycle) -> Result<(), RuntimeError> {
        let Some(slot) = self.slots.get(token as usize) else { return Err(RuntimeError::ShutDown) };
        let (id, alive) = (slot.id, slot.engine.is_some());
        match op {
            Lifecycle::Kill | Lifecycle::Stop if !alive => Err(RuntimeError::AgentNotRunning(id)),
            Lifecycle::Kill => {
                let failure = TaskFailure::agent_gone(Code::UnexpectedDisconnect);
                self.bring_down(token, &failure);
                Ok(())
            }
            Lifecycle::Stop => {
                self.bring_down(token, &TaskFailure::agent_gone(Code::AgentDisconnected));
                self.shared.depart(id, Code::AgentDisconnected);
                Ok(())
            }
            Lifecycle::Restart => {
                if alive {
                    self.bring_down(token, &TaskFailure::agent_gone(Code::UnexpectedDisconnect));
                }
                self.restart(now, token)
            }
        }
    }

    /// A fresh engine with the next incarnation, the same id and profile; managers hear of
    /// the agent again.
    fn restart(&mut self, now: Micros, token: u32) -> Result<(), RuntimeError> {
        let sink = self.shared.sinks[self.index].clone();
        let slot = &mut self.slots[token as usize];
        let incarnation = slot.incarnation + 1;
        // A new seed, or the new engine would mint the same message ids as the old one.
        let seed = DetRng::new(slot.seed ^ incarnation.rotate_left(32)).next_u64();
        let config = self.shared.config.clone();
        let engine = Engine::restore(slot.id, config, slot.profile.clone(), seed, incarnation, Vec::new());
        let subs = self.shared.subscribe(slot.id, slot.profile.as_ref(), &Inbox::from_sink(sink, token))?;
        let cards = match self.shared.arrive(slot.id, slot.profile.as_ref(), slot.manages) {
            Ok(cards) => cards,
            Err(e) => {
                self.shared.unsubscribe(subs);
                return Err(e);
            }
        };
        slot.engine = Some(engine);
        slot.incarnation = incarnation;
        slot.subs = subs;
        self.start(now, token, true, cards);
        Ok(())
    }

    /// Ends an agent's run: executions aborted, waiters answered with `failure`,
    /// subscriptions dropped, the engine forgotten.
    pub(crate) fn bring_down(&mut self, token: u32, failure: &TaskFailure) {
        let Some(slot) = self.slots.get_mut(token as usize) else { return };
        if slot.engine.take().is_none() {
            return;
        }
        slot.scheduled = NEVER;
        for (_, handle) in slot.running.drain() {
            handle.abort();
        }
        for (_, waiter) in slot.waiters.drain() {
            let _ = waiter.send(Err(failure.clone()));
        }
        let subs = std::mem::take(&mut slot.subs);
        self.shared.unsubscribe(subs);
    }
}

//! One shard: a single task that owns many engines and drains one queue.
//!
//! Everything that concerns a hosted agent (bus deliveries, commands, execution
//! completions, directory changes) arrives on the shard's one unbounded queue, drained in
//! batches. Inputs an effect produces on the spot (a ready execution, a bid decision, a
//! verdict) go to a local work queue and are handled in the same iteration, so a task
//! that executes in zero time never leaves the thread.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::{broadcast, oneshot};
use tokio::task::AbortHandle;
use xchange_bus::{Delivery, SubscriptionId};
use xchange_core::{
    AgentCard, ContractorProfile, Counters, DetRng, Engine, Event, ExecOutcome, Input, Micros, Submit,
    TaskRecord,
};
use xchange_protocol::{AgentId, AgentKey, Code, TaskId};

use crate::contractor::{Contractor, Reply};
use crate::error::{RuntimeError, TaskFailure};
use crate::shared::{EventBatch, Shared};
use crate::verify::SchemaCache;

/// How many messages ahead the shard asks for the slot of a delivery.
const PREFETCH_AHEAD: usize = 12;
/// Messages drained per batch: large enough to amortise the wake-up, small enough to keep
/// timers punctual.
const BATCH: usize = 1024;
pub(crate) const NEVER: Micros = Micros::MAX;
/// Batches drained while due timers wait (see `run`).
const MAX_DEFERRED: u32 = 4;

/// Everything a shard is told. Deliveries, by far the most frequent, stay small (24
/// bytes) and travel inline; everything else is boxed, so that a delivery does not pay to
/// copy the largest command through the queue.
pub(crate) enum ShardMsg {
    Deliver(Delivery),
    /// A batch slot whose message was taken (never sent).
    Consumed,
    Command(Box<Command>),
}

impl From<Delivery> for ShardMsg {
    fn from(d: Delivery) -> Self {
        Self::Deliver(d)
    }
}

impl From<Command> for ShardMsg {
    fn from(c: Command) -> Self {
        Self::Command(Box::new(c))
    }
}

pub(crate) enum Command {
    Spawn(Box<NewAgent>),
    Subscribed { token: u32, subs: Vec<SubscriptionId> },
    Submit { token: u32, submit: Submit, reply: Option<Reply> },
    Cancel { token: u32, task: TaskId, reason: String },
    Decommit { token: u32, task: TaskId, reason: String },
    ExecDone { token: u32, incarnation: u64, task: TaskId, epoch: u32, outcome: ExecOutcome },
    Progress { token: u32, incarnation: u64, task: TaskId, epoch: u32, fraction: f64 },
    Status { token: u32, reply: oneshot::Sender<AgentStatus> },
    Lifecycle { token: u32, op: Lifecycle, ack: oneshot::Sender<Result<(), RuntimeError>> },
    Arrived(AgentCard),
    Left { agents: Arc<[AgentId]>, code: Code },
    Shutdown,
}

/// Fault injection and orderly departure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lifecycle {
    Kill,
    Restart,
    Stop,
}

/// What an agent looks like from outside its shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentStatus {
    /// Whether the agent runs (not killed or stopped).
    pub alive: bool,
    /// The incarnation of its engine (the last one, if not alive).
    pub incarnation: u64,
    /// Its engine's counters (zero when not alive: a killed agent keeps nothing).
    pub counters: Counters,
}

pub(crate) struct NewAgent {
    pub(crate) token: u32,
    pub(crate) id: AgentId,
    pub(crate) key: Option<AgentKey>,
    pub(crate) profile: Option<ContractorProfile>,
    pub(crate) manages: bool,
    pub(crate) behavior: Arc<dyn Contractor>,
    pub(crate) seed: u64,
    pub(crate) cards: Vec<AgentCard>,
    pub(crate) restore: Option<(u64, Vec<TaskRecord>)>,
}

// Laid out by hand, on a cache-line boundary: the slot's own fields that deliveries read
// (the deadline after every step; behaviour, id and incarnation to bid and to execute) fill
// exactly the first line, the engine's hot prefix follows from the second, and what only
// commands and lifecycle changes read comes last. Waking one agent among a hundred thousand
// then costs `HOT_LINES` lines, all prefetched (see `Shard::prefetch`).
#[repr(C, align(64))]
pub(crate) struct Slot {
    /// The deadline pushed on the timer heap for this agent; other entries are stale.
    pub(crate) scheduled: Micros,
    pub(crate) incarnation: u64,
    pub(crate) behavior: Arc<dyn Contractor>,
    pub(crate) id: AgentId,
    /// Inline, not boxed: waking one agent among a hundred thousand then costs no pointer
    /// chase (and no page-table walk) beyond its slot.
    pub(crate) engine: Option<Engine>,
    /// Boxed: an expanded Ed25519 key is ~200 bytes, and most agents never sign. Read only
    /// when signing is on, which costs far more than a cache miss anyway.
    pub(crate) key: Option<Box<AgentKey>>,
    pub(crate) running: HashMap<(TaskId, u32), AbortHandle>,
    pub(crate) waiters: HashMap<TaskId, Reply>,
    pub(crate) profile: Option<ContractorProfile>,
    pub(crate) manages: bool,
    pub(crate) seed: u64,
    pub(crate) subs: Vec<SubscriptionId>,
}

const _: () = assert!(std::mem::offset_of!(Slot, engine) == 64, "the hot slot fields fill the first line");

/// The cache lines of a slot that a delivery touches: its first line and the engine's hot
/// prefix (`Option<Engine>` has no tag of its own: the engine's `Arc` is the niche).
const HOT_LINES: usize = (std::mem::offset_of!(Slot, engine) + Engine::HOT_BYTES).div_ceil(64);

pub(crate) enum Work {
    /// An input, and the task it submits (so that a refusal can answer the submitter).
    Input(u32, Input, Option<TaskId>),
    Timeout(u32),
    Resume(u32),
}

pub(crate) struct Shard {
    pub(crate) index: usize,
    rx: UnboundedReceiver<ShardMsg>,
    pub(crate) tx: UnboundedSender<ShardMsg>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) slots: Vec<Slot>,
    pub(crate) managers: Vec<u32>,
    timers: BinaryHeap<Reverse<(Micros, u32)>>,
    pub(crate) queue: VecDeque<Work>,
    /// The effects buffer every hosted engine writes into (see `step`).
    pub(crate) effects: Vec<xchange_core::Effect>,
    pub(crate) schemas: SchemaCache,
    pub(crate) rng: DetRng,
    /// Held by the shard and every execution task: shutdown waits until all are dropped.
    pub(crate) guard: mpsc::Sender<()>,
    pub(crate) events: broadcast::Sender<EventBatch>,
    /// Events of this iteration, sent as one batch when it ends (only while a tap listens).
    pub(crate) events_out: Vec<(AgentId, Event)>,
}

impl Shard {
    pub(crate) fn new(
        index: usize,
        rx: UnboundedReceiver<ShardMsg>,
        tx: UnboundedSender<ShardMsg>,
        shared: Arc<Shared>,
        guard: mpsc::Sender<()>,
        events: broadcast::Sender<EventBatch>,
    ) -> Self {
        let rng = DetRng::new(shared.seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        Self {
            index,
            rx,
            tx,
            shared,
            slots: Vec::new(),
            managers: Vec::new(),
            timers: BinaryHeap::new(),
            queue: VecDeque::new(),
            effects: Vec::new(),
            schemas: SchemaCache::default(),
            rng,
            guard,
            events,
            events_out: Vec::new(),
        }
    }

    pub(crate) async fn run(mut self) {
        let mut batch = Vec::with_capacity(BATCH);
        let sleep = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(sleep);
        let mut armed: Option<Micros> = None;
        let mut deferred = 0;
        loop {
            tokio::select! {
                biased;
                n = self.rx.recv_many(&mut batch, BATCH) => {
                    if n == 0 {
                        break;
                    }
                    let now = self.shared.clock.now();
                    self.stats().batches.fetch_add(1, Relaxed);
                    let mut stop = false;
                    // After a shutdown, the rest of the batch is dropped (its replies say so).
                    for i in 0..batch.len() {
                        self.prefetch(batch.get(i + PREFETCH_AHEAD));
                        let msg = std::mem::replace(&mut batch[i], ShardMsg::Consumed);
                        stop = stop || self.on_msg(now, msg).is_break();
                    }
                    batch.clear();
                    if stop {
                        break;
                    }
                }
                () = &mut sleep, if armed.is_some() => armed = None,
            }
            // Messages already queued (a report, a heartbeat) are handled before a deadline
            // is judged, or a lease could lapse with its renewal waiting in the queue; a few
            // batches at most, so that timers are never starved under sustained load.
            if self.rx.is_empty() || deferred >= MAX_DEFERRED {
                deferred = 0;
                self.fire_timers();
            } else {
                deferred += 1;
            }
            self.flush_events();
            // The sleep is reset only when the earliest deadline changes.
            let next = self.timers.peek().map(|Reverse((at, _))| *at);
            if next != armed {
                if let Some(at) = next {
                    let wait = Duration::from_micros(at.saturating_sub(self.shared.clock.now()));
                    sleep.as_mut().reset(tokio::time::Instant::now() + wait);
                }
                armed = next;
            }
        }
        self.flush_events();
        for token in 0..self.slots.len() as u32 {
            self.bring_down(token, &TaskFailure::runtime_stopped());
        }
    }

    fn flush_events(&mut self) {
        if !self.events_out.is_empty() {
            let _ = self.events.send(Arc::new(std::mem::take(&mut self.events_out)));
        }
    }

    /// Starts loading the slot a coming delivery is for. With a hundred thousand agents a
    /// delivery's agent is rarely in cache; asking for it a few messages early overlaps
    /// those misses with useful work.
    fn prefetch(&self, msg: Option<&ShardMsg>) {
        #[cfg(target_arch = "x86_64")]
        if let Some(ShardMsg::Deliver(d)) = msg
            && let Some(slot) = self.slots.get(d.token as usize)
        {
            use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let base: *const i8 = (slot as *const Slot).cast();
            // SAFETY: a prefetch is only a hint: it never faults and reads nothing into the
            // program, and the address is that of a live slot anyway.
            unsafe {
                for line in 0..HOT_LINES {
                    _mm_prefetch::<_MM_HINT_T0>(base.wrapping_add(64 * line));
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = msg;
    }

    pub(crate) fn stats(&self) -> &crate::shared::ShardStats {
        &self.shared.stats[self.index]
    }

    pub(crate) fn live(&mut self, token: u32) -> Option<&mut Slot> {
        self.slots.get_mut(token as usize).filter(|s| s.engine.is_some())
    }

    /// Handles `input` for agent `token` and everything it sets off.
    fn input(&mut self, now: Micros, token: u32, input: Input) {
        if self.live(token).is_none() {
            if matches!(input, Input::Message(_)) {
                self.stats().dead_deliveries.fetch_add(1, Relaxed);
            }
            return;
        }
        self.perform(now, Work::Input(token, input, None));
    }

    /// Does `work`, then the inputs its effects produced.
    pub(crate) fn perform(&mut self, now: Micros, work: Work) {
        self.step(now, work);
        self.drain(now);
    }

    pub(crate) fn drain(&mut self, now: Micros) {
        while let Some(work) = self.queue.pop_front() {
            self.step(now, work);
        }
    }

    fn step(&mut self, now: Micros, work: Work) {
        let (token, submitting) = match &work {
            Work::Input(t, _, s) => (*t, *s),
            Work::Timeout(t) | Work::Resume(t) => (*t, None),
        };
        // One warm buffer for every engine of the shard: a hundred thousand engines would
        // otherwise each keep (and miss in cache) a buffer of their own. The effects are
        // applied after the engine is done, so it stays in its slot.
        let mut effects = std::mem::take(&mut self.effects);
        let Some(engine) = self.slots.get_mut(token as usize).and_then(|s| s.engine.as_mut()) else {
            self.effects = effects;
            return;
        };
        match work {
            Work::Input(_, input, _) => engine.handle_into(now, input, &mut effects),
            Work::Timeout(_) => engine.handle_timeout_into(now, &mut effects),
            Work::Resume(_) => effects.extend(engine.resume(now)),
        }
        let next = engine.poll_timeout();
        for effect in effects.drain(..) {
            self.apply(token, effect, submitting);
        }
        self.effects = effects;
        let slot = &mut self.slots[token as usize];
        if let Some(at) = next
            && at < slot.scheduled
        {
            slot.scheduled = at;
            self.timers.push(Reverse((at, token)));
        }
    }

    fn fire_timers(&mut self) {
        let Some(&Reverse((first, _))) = self.timers.peek() else { return };
        let now = self.shared.clock.now();
        if first > now {
            return;
        }
        while let Some(&Reverse((at, token))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let slot = &mut self.slots[token as usize];
            if slot.scheduled == at {
                slot.scheduled = NEVER;
                self.queue.push_back(Work::Timeout(token));
            }
        }
        self.drain(now);
    }

    fn on_msg(&mut self, now: Micros, msg: ShardMsg) -> ControlFlow<()> {
        match msg {
            ShardMsg::Deliver(d) => {
                self.input(now, d.token, Input::Message(d.msg));
                ControlFlow::Continue(())
            }
            ShardMsg::Consumed => ControlFlow::Continue(()),
            ShardMsg::Command(command) => self.on_command(now, *command),
        }
    }

    fn on_command(&mut self, now: Micros, command: Command) -> ControlFlow<()> {
        match command {
            Command::Spawn(new) => self.spawn(now, *new),
            Command::Subscribed { token, subs } => match self.live(token) {
                Some(slot) => slot.subs = subs,
                None => self.shared.unsubscribe(subs),
            },
            Command::Submit { token, submit, reply } => self.submit(now, token, submit, reply),
            Command::Cancel { token, task, reason } => self.input(now, token, Input::Cancel { task, reason }),
            Command::Decommit { token, task, reason } => {
                self.input(now, token, Input::Decommit { task, reason })
            }
            Command::ExecDone { token, incarnation, task, epoch, outcome } => {
                // An aborted execution may still complete in a race; its contract is gone.
                let current = self.live(token).is_some_and(|s| {
                    s.incarnation == incarnation && s.running.remove(&(task, epoch)).is_some()
                });
                if current {
                    self.input(now, token, Input::ExecutionFinished { task, epoch, outcome });
                }
            }
            Command::Progress { token, incarnation, task, epoch, fraction } => {
                if self.live(token).is_some_and(|s| s.incarnation == incarnation) {
                    self.input(now, token, Input::ExecutionProgress { task, epoch, fraction });
                }
            }
            Command::Status { token, reply } => {
                let status = self.slots.get(token as usize).map(|s| AgentStatus {
                    alive: s.engine.is_some(),
                    incarnation: s.incarnation,
                    counters: s.engine.as_ref().map(|e| *e.counters()).unwrap_or_default(),
                });
                let _ = reply.send(status.unwrap_or(AgentStatus {
                    alive: false,
                    incarnation: 0,
                    counters: Counters::default(),
                }));
            }
            Command::Lifecycle { token, op, ack } => {
                let _ = ack.send(self.lifecycle(now, token, op));
            }
            Command::Arrived(card) => {
                for i in 0..self.managers.len() {
                    let token = self.managers[i];
                    if self.live(token).is_some_and(|s| s.id != card.id) {
                        self.queue.push_back(Work::Input(token, Input::AgentArrived(card.clone()), None));
                    }
                }
                self.drain(now);
            }
            Command::Left { agents, code } => {
                for i in 0..self.managers.len() {
                    let token = self.managers[i];
                    let Some(me) = self.live(token).map(|s| s.id) else { continue };
                    for &agent in agents.iter().filter(|a| **a != me) {
                        self.queue.push_back(Work::Input(token, Input::AgentLeft { agent, code }, None));
                    }
                }
                self.drain(now);
            }
            Command::Shutdown => return ControlFlow::Break(()),
        }
        ControlFlow::Continue(())
    }
}

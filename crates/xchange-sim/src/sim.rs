//! The discrete-event loop: one [`Engine`] per agent plus one manager, messages delivered
//! after a fixed delay, executions that take the workload's time, and engine timeouts, all
//! on virtual time.
//!
//! Every event has a (time, sequence number) key, so ties break in the order events were
//! scheduled and a run is a pure function of its inputs. Messages all take the same delay,
//! so they are already in key order when posted: they wait in a FIFO queue, and only
//! executions, timeouts and crashes go through the heap; the loop takes whichever of the
//! two fronts comes first. Engine timeouts are tracked lazily: an engine's earliest deadline
//! is pushed when it moves earlier, and a stale entry does nothing when it pops.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::sync::Arc;

use serde_json::json;
use xchange_core::{
    AgentCard, BidTerms, ContractorProfile, DetRng, Effect, Engine, EngineConfig, EventKind, ExecOutcome,
    Input, Micros, Submit,
};
use xchange_protocol::{AgentId, Body, Code, Envelope, Recipient, TaskId, TaskSpec, TaskState};

use crate::lookup::{AgentIndex, TaskIndex};

/// What the simulated agents know of the work: what a task costs each agent and how long
/// it takes. This is the only place an agent's private costs live.
pub trait Workload {
    /// The index of a task from its spec (the simulator puts it in the task's input).
    fn task_index(&self, spec: &TaskSpec) -> Option<usize>;
    /// What `agent` asks to do task `task`, or `None` to decline.
    fn price(&self, agent: usize, task: usize) -> Option<u64>;
    /// How long `agent` takes to execute task `task`.
    fn duration(&self, agent: usize, task: usize) -> Micros;
}

/// Settings of the event loop itself.
#[derive(Debug, Clone)]
pub struct LoopConfig {
    /// Delay of every message.
    pub delay: Micros,
    /// Virtual time after which the run stops even if events remain.
    pub horizon: Micros,
    /// Each agent executes at most this many tasks over the run; later calls for
    /// proposals are declined (`busy`). `None` for no limit.
    pub tasks_per_agent: Option<u32>,
    /// Probability that a message is lost on the way (drawn from the run's seed).
    pub loss: f64,
}

impl Default for LoopConfig {
    fn default() -> Self {
        Self { delay: 1_000, horizon: 3_600_000_000, tasks_per_agent: None, loss: 0.0 }
    }
}

/// One message in this many is encoded to JSON to measure message sizes: the mean of a
/// fixed, seed-independent sample, so bytes per task costs little and stays reproducible.
const SIZE_SAMPLE: u64 = 64;

/// An execution under way.
#[derive(Debug, Clone, Copy)]
struct Running {
    task_id: TaskId,
    agent: u32,
    task: u32,
    epoch: u32,
    started: Micros,
}

/// The simulated agents' ledger of one task, kept apart from the engines' counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskTally {
    /// Executions started.
    pub started: u32,
    /// Executions run to the end.
    pub finished: u32,
    /// The agent of the last execution run to the end.
    pub agent: Option<u32>,
}

/// The simulated agents' ledger of one agent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentTally {
    /// Executions started.
    pub started: u32,
    /// Executions run to the end.
    pub finished: u32,
    /// Time spent on executions run to the end.
    pub busy: Micros,
}

/// How a submitted task ended, as its manager announced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The terminal state.
    pub state: TaskState,
    /// Its code.
    pub code: Code,
    /// When.
    pub at: Micros,
}

/// A message on its way.
struct InFlight {
    at: Micros,
    seq: u64,
    to: u32,
    msg: Arc<Envelope>,
}

/// What can happen next. Ordered only to break ties deterministically after (time, seq).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// Execution `exec` (slot and generation) finished.
    Finish { exec: u32, generation: u32 },
    /// Engine `engine` may have a deadline due.
    Timeout { engine: u32 },
    /// Agent `agent` crashes: it loses its engine, its executions and its messages.
    Crash { agent: u32, recover_after: Micros },
    /// Agent `agent` comes back with a fresh engine (a new incarnation).
    Recover { agent: u32 },
}

/// What crashes did, from the simulator's side.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CrashLedger {
    /// Crashes that happened.
    pub crashes: u64,
    /// Crashes of agents that held at least one contract at that moment.
    pub crashes_holding_contracts: u64,
    /// Contracts held by crashed agents.
    pub contracts_lost: u64,
    /// Messages that reached a crashed agent and were lost.
    pub messages_lost: u64,
    /// For each contract lost in a crash and placed again: crash to reassignment, µs.
    pub crash_to_reassignment: Vec<Micros>,
}

/// The simulation: engines `0..n` are the agents, engine `n` is the manager.
pub struct Sim<'w, W: Workload> {
    now: Micros,
    cfg: LoopConfig,
    work: &'w W,
    engines: Vec<Engine>,
    ids: Vec<AgentId>,
    index: AgentIndex,
    profiles: Vec<Option<ContractorProfile>>,
    heap: BinaryHeap<Reverse<(Micros, u64, Event)>>,
    messages: VecDeque<InFlight>,
    armed: Vec<Option<Micros>>,
    /// Executions under way per agent: (task, epoch, slot).
    running: Vec<Vec<(TaskId, u32, u32)>>,
    /// Executions under way, by slot, with each slot's generation (a slot is reused once its
    /// execution ends, so a stale `Finish` is told apart by its generation).
    slots: Vec<(u32, Option<Running>)>,
    free_slots: Vec<u32>,
    seq: u64,
    /// Effect buffers, reused: handling an input can set off others before its own effects
    /// are all applied.
    spare: Vec<Vec<Effect>>,
    /// Per task (workload index): executions started and finished.
    pub task_tally: Vec<TaskTally>,
    /// Per agent: executions started and finished, time busy.
    pub agent_tally: Vec<AgentTally>,
    /// When the first execution finished.
    pub first_finish: Option<Micros>,
    /// When the last execution started.
    pub last_start: Micros,
    /// Tasks submitted.
    pub submitted: usize,
    tasks: TaskIndex,
    /// How each submitted task ended, by workload index.
    pub outcomes: Vec<Option<Outcome>>,
    /// Messages delivered to engines (a broadcast counts once per recipient).
    pub delivered: u64,
    /// Messages lost on the way (`LoopConfig::loss`).
    pub lost: u64,
    loss_rng: DetRng,
    sampled_bytes: u64,
    sampled_messages: u64,
    /// Events handled.
    pub events: u64,
    /// Effects of kind `Refused`, by code.
    pub refused: BTreeMap<Code, u64>,
    /// What crashes did.
    pub crash_ledger: CrashLedger,
    engine_cfg: Arc<EngineConfig>,
    seed: u64,
    alive: Vec<bool>,
    /// Contracts held by agents when they crashed, with the time of the crash.
    lost_in_crash: BTreeMap<TaskId, Micros>,
}

impl<'w, W: Workload> Sim<'w, W> {
    /// `agents` contractors with the given profiles and one manager, all on `engine`.
    pub fn new(
        engine: EngineConfig,
        cfg: LoopConfig,
        work: &'w W,
        agents: Vec<ContractorProfile>,
        seed: u64,
    ) -> Self {
        let engine = Arc::new(engine);
        let engine_cfg = engine.clone();
        let n = agents.len();
        let mut ids: Vec<AgentId> = (0..n as u64).map(|i| AgentId::from_index(2, i)).collect();
        ids.push(AgentId::from_index(1, 0));
        let mut profiles: Vec<Option<ContractorProfile>> = agents.into_iter().map(Some).collect();
        profiles.push(None);
        let engines = ids
            .iter()
            .zip(&profiles)
            .enumerate()
            .map(|(i, (id, p))| Engine::new(*id, engine.clone(), p.clone(), seed ^ ((i as u64 + 1) << 20)))
            .collect();
        let mut index = AgentIndex::default();
        for (i, id) in ids.iter().enumerate() {
            index.insert(*id, i as u32);
        }
        let mut sim = Self {
            now: 0,
            cfg,
            work,
            engines,
            ids,
            index,
            armed: vec![None; n + 1],
            running: vec![Vec::new(); n + 1],
            slots: Vec::new(),
            free_slots: Vec::new(),
            profiles,
            heap: BinaryHeap::new(),
            messages: VecDeque::new(),
            seq: 0,
            spare: Vec::new(),
            task_tally: Vec::new(),
            agent_tally: vec![AgentTally::default(); n],
            first_finish: None,
            last_start: 0,
            submitted: 0,
            tasks: TaskIndex::default(),
            outcomes: Vec::new(),
            delivered: 0,
            lost: 0,
            loss_rng: DetRng::new(seed ^ 0x1055_0000_0000_0003),
            sampled_bytes: 0,
            sampled_messages: 0,
            events: 0,
            refused: BTreeMap::new(),
            crash_ledger: CrashLedger::default(),
            engine_cfg,
            seed,
            alive: vec![true; n + 1],
            lost_in_crash: BTreeMap::new(),
        };
        for a in 0..n {
            let profile = sim.profiles[a].clone().expect("agents have profiles");
            let card = AgentCard::from_profile(sim.ids[a], &profile);
            sim.input(n, Input::AgentArrived(card));
        }
        sim
    }

    fn manager(&self) -> usize {
        self.engines.len() - 1
    }

    /// Submits `spec` to the manager now; `task` is its workload index.
    pub fn submit(&mut self, task: usize, spec: TaskSpec) {
        let before = self.submitted;
        self.input(self.manager(), Input::Submit(Submit::new(spec)));
        debug_assert!(self.submitted == before + 1 && task == before, "tasks submitted in order");
    }

    /// The spec of workload task `task`: its index goes in the input.
    pub fn spec(capability: &str, task: usize) -> TaskSpec {
        TaskSpec::new(capability, json!({ "task": task }))
    }

    /// Schedules a crash of agent `agent` at `at`, and its recovery `recover_after` later.
    pub fn crash_at(&mut self, agent: usize, at: Micros, recover_after: Micros) {
        assert!(agent < self.manager(), "only agents crash, not the manager");
        self.schedule(at, Event::Crash { agent: agent as u32, recover_after });
    }

    fn crash(&mut self, agent: usize, recover_after: Micros) {
        if !self.alive[agent] {
            return;
        }
        self.alive[agent] = false;
        self.armed[agent] = None;
        let held: Vec<TaskId> = self.engines[agent].contracts().map(|(task, ..)| task).collect();
        self.crash_ledger.crashes += 1;
        self.crash_ledger.crashes_holding_contracts += u64::from(!held.is_empty());
        self.crash_ledger.contracts_lost += held.len() as u64;
        for task in held {
            self.lost_in_crash.insert(task, self.now);
        }
        // Executions under way die with the agent: they never finish.
        for (_, _, exec) in std::mem::take(&mut self.running[agent]) {
            self.slots[exec as usize].1 = None;
            self.free_slots.push(exec);
        }
        self.schedule(self.now + recover_after, Event::Recover { agent: agent as u32 });
    }

    fn recover(&mut self, agent: usize) {
        let old = &self.engines[agent];
        let (id, incarnation) = (old.id(), old.incarnation() + 1);
        let seed = self.seed ^ ((agent as u64 + 1) << 20) ^ (incarnation << 48);
        let profile = self.profiles[agent].clone();
        self.engines[agent] =
            Engine::restore(id, self.engine_cfg.clone(), profile, seed, incarnation, Vec::new());
        self.alive[agent] = true;
        let effects: Vec<Effect> = self.engines[agent].resume(self.now).collect();
        self.apply(agent, effects);
    }

    /// Mean size of a message encoded as JSON, bytes, over a fixed sample of the messages
    /// sent (0 if none was sampled).
    pub fn mean_message_bytes(&self) -> f64 {
        if self.sampled_messages == 0 {
            0.0
        } else {
            self.sampled_bytes as f64 / self.sampled_messages as f64
        }
    }

    /// Engines' counters summed over every engine.
    pub fn counters(&self) -> xchange_core::Counters {
        let mut total = xchange_core::Counters::default();
        for e in &self.engines {
            total += e.counters();
        }
        total
    }

    /// Runs until no event is left or the horizon is reached.
    pub fn run(&mut self) {
        self.run_until(self.cfg.horizon);
    }

    /// The current virtual time.
    pub fn now(&self) -> Micros {
        self.now
    }

    /// Handles every event due by `until` (at most the horizon), then sets the clock to
    /// `until`, so that work can be submitted at that moment.
    pub fn run_until(&mut self, until: Micros) {
        let until = until.min(self.cfg.horizon);
        loop {
            let message = self.messages.front().map(|m| (m.at, m.seq));
            let other = self.heap.peek().map(|Reverse((at, seq, _))| (*at, *seq));
            let take_message = match (message, other) {
                (Some(m), Some(o)) => m < o,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let at = if take_message { message.expect("front").0 } else { other.expect("top").0 };
            if at > until {
                break;
            }
            self.now = self.now.max(at);
            self.events += 1;
            if take_message {
                let InFlight { to, msg, .. } = self.messages.pop_front().expect("front");
                if !self.alive[to as usize] {
                    self.crash_ledger.messages_lost += 1;
                    continue;
                }
                self.delivered += 1;
                self.input(to as usize, Input::Message(msg));
                continue;
            }
            let Some(Reverse((at, _, event))) = self.heap.pop() else { break };
            match event {
                Event::Crash { agent, recover_after } => self.crash(agent as usize, recover_after),
                Event::Recover { agent } => self.recover(agent as usize),
                Event::Finish { exec, generation } => {
                    let (live, run) = &mut self.slots[exec as usize];
                    if *live != generation {
                        continue; // aborted, and the slot reused
                    }
                    let Some(run) = run.take() else { continue }; // aborted
                    self.free_slots.push(exec);
                    let agent = run.agent as usize;
                    let running = &mut self.running[agent];
                    if let Some(i) = running.iter().position(|r| *r == (run.task_id, run.epoch, exec)) {
                        running.swap_remove(i);
                    }
                    let tally = &mut self.task_tally[run.task as usize];
                    tally.finished += 1;
                    tally.agent = Some(run.agent);
                    let worked = &mut self.agent_tally[agent];
                    worked.finished += 1;
                    worked.busy += self.now - run.started;
                    self.first_finish.get_or_insert(self.now);
                    let outcome = ExecOutcome::Done(Arc::new(json!({ "task": run.task })));
                    self.input(
                        agent,
                        Input::ExecutionFinished { task: run.task_id, epoch: run.epoch, outcome },
                    );
                }
                Event::Timeout { engine } => {
                    let engine = engine as usize;
                    if self.armed[engine] == Some(at) {
                        self.armed[engine] = None;
                    }
                    if !self.alive[engine] {
                        continue;
                    }
                    if self.engines[engine].poll_timeout().is_some_and(|t| t <= self.now) {
                        let mut effects = self.spare.pop().unwrap_or_default();
                        self.engines[engine].handle_timeout_into(self.now, &mut effects);
                        self.apply(engine, effects);
                    }
                    self.arm(engine);
                }
            }
        }
        self.now = self.now.max(until);
    }

    fn schedule(&mut self, at: Micros, event: Event) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, event)));
    }

    /// Pushes the engine's deadline if it is earlier than the one already in the heap.
    fn arm(&mut self, engine: usize) {
        let Some(at) = self.engines[engine].poll_timeout() else { return };
        let at = at.max(self.now);
        if self.armed[engine].is_none_or(|armed| at < armed) {
            self.armed[engine] = Some(at);
            self.schedule(at, Event::Timeout { engine: engine as u32 });
        }
    }

    fn input(&mut self, engine: usize, input: Input) {
        let mut effects = self.spare.pop().unwrap_or_default();
        self.engines[engine].handle_into(self.now, input, &mut effects);
        self.apply(engine, effects);
    }

    fn post(&mut self, to: u32, msg: &Arc<Envelope>) {
        self.seq += 1;
        if self.seq.is_multiple_of(SIZE_SAMPLE) {
            self.sampled_bytes += serde_json::to_vec(&**msg).map_or(0, |v| v.len() as u64);
            self.sampled_messages += 1;
        }
        if self.cfg.loss > 0.0 && crate::queueing::unit(&mut self.loss_rng) <= self.cfg.loss {
            self.lost += 1;
            return;
        }
        let at = self.now + self.cfg.delay;
        debug_assert!(self.messages.back().is_none_or(|m| m.at <= at), "one delay keeps messages in order");
        self.messages.push_back(InFlight { at, seq: self.seq, to, msg: msg.clone() });
    }

    fn apply(&mut self, engine: usize, mut effects: Vec<Effect>) {
        for effect in effects.drain(..) {
            match effect {
                Effect::Send { msg, .. } => match &msg.to {
                    Recipient::Agent(to) => {
                        if let Some(to) = self.index.get(to) {
                            self.post(to, &msg);
                        }
                    }
                    Recipient::Pool { pool, capability } => {
                        let targets: Vec<u32> = (0..self.profiles.len())
                            .filter(|&a| {
                                self.profiles[a].as_ref().is_some_and(|p| p.offers(pool, capability))
                            })
                            .map(|a| a as u32)
                            .collect();
                        for t in targets {
                            self.post(t, &msg);
                        }
                    }
                },
                Effect::Evaluate { cfp } => {
                    let decision = self.evaluate(engine, &cfp);
                    self.input(engine, Input::BidDecided { cfp, decision });
                }
                Effect::StartExecution { task, epoch, spec, .. } => {
                    let index = self.work.task_index(&spec).expect("simulated tasks carry their index");
                    let run = Running {
                        task_id: task,
                        agent: engine as u32,
                        task: index as u32,
                        epoch,
                        started: self.now,
                    };
                    let exec = match self.free_slots.pop() {
                        Some(free) => free,
                        None => {
                            self.slots.push((0, None));
                            (self.slots.len() - 1) as u32
                        }
                    };
                    let slot = &mut self.slots[exec as usize];
                    slot.0 += 1;
                    slot.1 = Some(run);
                    let generation = slot.0;
                    self.running[engine].push((task, epoch, exec));
                    self.agent_tally[engine].started += 1;
                    self.task_tally[index].started += 1;
                    self.last_start = self.now;
                    let at = self.now + self.work.duration(engine, index);
                    self.schedule(at, Event::Finish { exec, generation });
                }
                Effect::Verify { task, epoch, .. } => {
                    let verdict = Input::Verdict { task, epoch, accepted: true, reason: String::new() };
                    self.input(engine, verdict);
                }
                Effect::Emit(event) => match event.kind {
                    EventKind::Submitted { parent: None } if engine == self.manager() => {
                        self.tasks.insert(event.task(), self.submitted as u32);
                        self.submitted += 1;
                        self.outcomes.push(None);
                        self.task_tally.push(TaskTally::default());
                    }
                    EventKind::Reassigned { .. } if engine == self.manager() => {
                        if let Some(crashed) = self.lost_in_crash.remove(&event.task()) {
                            self.crash_ledger.crash_to_reassignment.push(event.at - crashed);
                        }
                    }
                    EventKind::Finished { state, code, .. } if engine == self.manager() => {
                        // A task ends once: only tasks under way stay in the index.
                        if let Some(i) = self.tasks.remove(&event.task()) {
                            self.outcomes[i as usize] = Some(Outcome { state, code, at: event.at });
                        }
                    }
                    _ => {}
                },
                Effect::Refused { code, .. } => *self.refused.entry(code).or_default() += 1,
                Effect::AbortExecution { task, epoch } => {
                    let running = &mut self.running[engine];
                    if let Some(i) = running.iter().position(|r| (r.0, r.1) == (task, epoch)) {
                        let (_, _, exec) = running.swap_remove(i);
                        self.slots[exec as usize].1 = None;
                        self.free_slots.push(exec);
                    }
                }
                Effect::Persist { .. } => {}
            }
        }
        self.spare.push(effects);
        self.arm(engine);
    }

    /// How a simulated agent prices a call for proposals: the workload's cost.
    fn evaluate(&self, agent: usize, cfp: &Envelope) -> Result<BidTerms, (Code, String)> {
        let Body::Cfp(body) = &cfp.body else {
            return Err((Code::SchemaInvalid, "not a call for proposals".into()));
        };
        if self.cfg.tasks_per_agent.is_some_and(|limit| self.agent_tally[agent].started >= limit) {
            return Err((Code::Busy, "this agent has done its share of tasks".into()));
        }
        let task = self
            .work
            .task_index(&body.task)
            .ok_or_else(|| (Code::SchemaInvalid, "the task carries no index".to_owned()))?;
        let eta_ms = self.work.duration(agent, task) / 1000;
        match self.work.price(agent, task) {
            Some(price) => Ok(BidTerms { price, eta_ms }),
            None => Err((Code::Declined, "this agent does not take this task".into())),
        }
    }
}

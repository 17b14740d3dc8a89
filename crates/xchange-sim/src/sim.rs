//! The discrete-event loop: one [`Engine`] per agent plus one manager, messages delivered
//! after a fixed delay, executions that take the workload's time, and engine timeouts, all
//! on virtual time.
//!
//! Events sit in one heap ordered by (time, sequence number), so ties break in the order
//! they were scheduled and a run is a pure function of its inputs. Engine timeouts are
//! tracked lazily: an engine's earliest deadline is pushed when it moves earlier, and a
//! stale entry does nothing when it pops.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

use serde_json::json;
use xchange_core::{
    AgentCard, BidTerms, ContractorProfile, Effect, Engine, EngineConfig, EventKind, ExecOutcome, Input,
    Micros, Submit,
};
use xchange_protocol::{AgentId, Body, Code, Envelope, Recipient, TaskId, TaskSpec, TaskState};

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
}

impl Default for LoopConfig {
    fn default() -> Self {
        Self { delay: 1_000, horizon: 3_600_000_000, tasks_per_agent: None }
    }
}

/// One execution started by a simulated agent: the ledger the simulator keeps apart from
/// the engines' counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    /// The agent (index).
    pub agent: usize,
    /// The task (index in the workload).
    pub task: usize,
    /// The task's id.
    pub task_id: TaskId,
    /// The contract epoch.
    pub epoch: u32,
    /// When it started.
    pub started: Micros,
    /// When it finished, if it did.
    pub finished: Option<Micros>,
}

/// What can happen next. Ordered only to break ties deterministically after (time, seq).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// Deliver stored message `msg` to engine `to`.
    Deliver { to: u32, msg: u64 },
    /// Ledger entry `exec` finished executing.
    Finish { exec: u32 },
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
    index: BTreeMap<AgentId, u32>,
    profiles: Vec<Option<ContractorProfile>>,
    heap: BinaryHeap<Reverse<(Micros, u64, Event)>>,
    messages: BTreeMap<u64, Arc<Envelope>>,
    armed: Vec<Option<Micros>>,
    /// Executions started per agent.
    done: Vec<u32>,
    /// Ledger entries of executions under way, by (agent, task, epoch).
    running: BTreeMap<(usize, TaskId, u32), u32>,
    seq: u64,
    /// Executions started, in order.
    pub ledger: Vec<Execution>,
    /// Tasks submitted, by workload index.
    pub submitted: Vec<TaskId>,
    /// How each task ended (`Finished` events of the manager).
    pub finished: BTreeMap<TaskId, (TaskState, Code)>,
    /// When each task ended.
    pub finished_at: BTreeMap<TaskId, Micros>,
    /// Messages delivered to engines (a broadcast counts once per recipient).
    pub delivered: u64,
    /// Events popped from the heap.
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
        let index = ids.iter().enumerate().map(|(i, id)| (*id, i as u32)).collect();
        let mut sim = Self {
            now: 0,
            cfg,
            work,
            engines,
            ids,
            index,
            armed: vec![None; n + 1],
            done: vec![0; n + 1],
            running: BTreeMap::new(),
            profiles,
            heap: BinaryHeap::new(),
            messages: BTreeMap::new(),
            seq: 0,
            ledger: Vec::new(),
            submitted: Vec::new(),
            finished: BTreeMap::new(),
            finished_at: BTreeMap::new(),
            delivered: 0,
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
        let before = self.submitted.len();
        self.input(self.manager(), Input::Submit(Submit::new(spec)));
        debug_assert!(self.submitted.len() == before + 1 && task == before, "tasks submitted in order");
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
        let dead: Vec<_> = self
            .running
            .range((agent, TaskId::NIL, 0)..)
            .take_while(|(k, _)| k.0 == agent)
            .map(|(k, _)| *k)
            .collect();
        for key in dead {
            self.running.remove(&key);
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
        while let Some(&Reverse((at, _, _))) = self.heap.peek() {
            if at > until {
                break;
            }
            let Some(Reverse((at, _, event))) = self.heap.pop() else { break };
            self.now = self.now.max(at);
            self.events += 1;
            match event {
                Event::Deliver { to, msg } => {
                    let msg = self.messages.remove(&msg).expect("stored message");
                    if !self.alive[to as usize] {
                        self.crash_ledger.messages_lost += 1;
                        continue;
                    }
                    self.delivered += 1;
                    self.input(to as usize, Input::Message(msg));
                }
                Event::Crash { agent, recover_after } => self.crash(agent as usize, recover_after),
                Event::Recover { agent } => self.recover(agent as usize),
                Event::Finish { exec } => {
                    let e = &self.ledger[exec as usize];
                    if self.running.remove(&(e.agent, e.task_id, e.epoch)).is_none() {
                        continue; // aborted
                    }
                    let e = &mut self.ledger[exec as usize];
                    e.finished = Some(self.now);
                    let (agent, task, epoch) = (e.agent, e.task_id, e.epoch);
                    let outcome = ExecOutcome::Done(Arc::new(json!({ "task": e.task })));
                    self.input(agent, Input::ExecutionFinished { task, epoch, outcome });
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
                        let effects: Vec<Effect> = self.engines[engine].handle_timeout(self.now).collect();
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
        let effects: Vec<Effect> = self.engines[engine].handle(self.now, input).collect();
        self.apply(engine, effects);
    }

    fn post(&mut self, to: u32, msg: &Arc<Envelope>) {
        self.seq += 1;
        let key = self.seq;
        self.messages.insert(key, msg.clone());
        self.schedule(self.now + self.cfg.delay, Event::Deliver { to, msg: key });
    }

    fn apply(&mut self, engine: usize, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Send { msg, .. } => match &msg.to {
                    Recipient::Agent(to) => {
                        if let Some(&to) = self.index.get(to) {
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
                    let exec = self.ledger.len() as u32;
                    self.done[engine] += 1;
                    self.running.insert((engine, task, epoch), exec);
                    self.ledger.push(Execution {
                        agent: engine,
                        task: index,
                        task_id: task,
                        epoch,
                        started: self.now,
                        finished: None,
                    });
                    let at = self.now + self.work.duration(engine, index);
                    self.schedule(at, Event::Finish { exec });
                }
                Effect::Verify { task, epoch, .. } => {
                    let verdict = Input::Verdict { task, epoch, accepted: true, reason: String::new() };
                    self.input(engine, verdict);
                }
                Effect::Emit(event) => match event.kind {
                    EventKind::Submitted { parent: None } if engine == self.manager() => {
                        self.submitted.push(event.task());
                    }
                    EventKind::Reassigned { .. } if engine == self.manager() => {
                        if let Some(crashed) = self.lost_in_crash.remove(&event.task()) {
                            self.crash_ledger.crash_to_reassignment.push(event.at - crashed);
                        }
                    }
                    EventKind::Finished { state, code, .. } if engine == self.manager() => {
                        self.finished.insert(event.task(), (state, code));
                        self.finished_at.insert(event.task(), event.at);
                    }
                    _ => {}
                },
                Effect::Refused { code, .. } => *self.refused.entry(code).or_default() += 1,
                Effect::AbortExecution { task, epoch } => {
                    self.running.remove(&(engine, task, epoch));
                }
                Effect::Persist { .. } => {}
            }
        }
        self.arm(engine);
    }

    /// How a simulated agent prices a call for proposals: the workload's cost.
    fn evaluate(&self, agent: usize, cfp: &Envelope) -> Result<BidTerms, (Code, String)> {
        let Body::Cfp(body) = &cfp.body else {
            return Err((Code::SchemaInvalid, "not a call for proposals".into()));
        };
        if self.cfg.tasks_per_agent.is_some_and(|limit| self.done[agent] >= limit) {
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

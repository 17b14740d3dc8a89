//! A deterministic world for driving engines: a message queue with delay, loss and
//! duplication, executions that take time and may fail, contractor crashes, manager
//! crash-and-restore from persisted records, and a ledger of what happened.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::sync::Arc;

use serde_json::json;
use xchange_core::{
    AgentCard, ContractorProfile, DetRng, Effect, Engine, EngineConfig, Event, EventKind, ExecOutcome, Input,
    Micros, Submit, TaskRecord,
};
use xchange_protocol::{
    AgentId, AgentKey, Code, EdgeLimits, Envelope, Nonce, Recipient, TaskId, TaskSpec, TaskState,
};

/// How a simulated contractor behaves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Behaviour {
    /// Execution time.
    pub(crate) exec_time: Micros,
    /// Probability that an execution reports failure.
    pub(crate) fail_rate: f64,
}

/// What can happen next.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Happening {
    Deliver(AgentId, u64),
    ExecDone(AgentId, TaskId, u32, u64),
    Verdict(AgentId, TaskId, u32, bool),
}

/// The world.
pub(crate) struct World {
    pub(crate) now: Micros,
    pub(crate) cfg: Arc<EngineConfig>,
    pub(crate) engines: BTreeMap<AgentId, Engine>,
    pub(crate) profiles: BTreeMap<AgentId, ContractorProfile>,
    pub(crate) behaviour: BTreeMap<AgentId, Behaviour>,
    pub(crate) managers: BTreeSet<AgentId>,
    pub(crate) dead: BTreeSet<AgentId>,
    pub(crate) store: BTreeMap<AgentId, BTreeMap<TaskId, TaskRecord>>,
    pub(crate) events: Vec<(AgentId, Event)>,
    pub(crate) refused: Vec<(AgentId, Code)>,
    /// (agent, task, epoch) of every execution started: the side ledger.
    pub(crate) executions: Vec<(AgentId, TaskId, u32)>,
    pub(crate) delivered: u64,
    pub(crate) rng: DetRng,
    pub(crate) loss: f64,
    pub(crate) duplicate: f64,
    pub(crate) delay: (Micros, Micros),
    pub(crate) reject_rate: f64,
    /// Probability that a message is tampered with on the wire (it must then be refused at
    /// the edge with the code the tampering calls for).
    pub(crate) tamper: f64,
    /// Messages go through the edge: signed, encoded, decoded and checked.
    pub(crate) through_edge: bool,
    /// (expected, actual) codes of tampered messages.
    pub(crate) tampered: Vec<(Code, Option<Code>)>,
    keys: BTreeMap<AgentId, AgentKey>,
    queue: BinaryHeap<Reverse<(Micros, u64, Happening)>>,
    messages: BTreeMap<u64, Arc<Envelope>>,
    seq: u64,
    incarnations: BTreeMap<AgentId, u64>,
}

impl World {
    pub(crate) fn new(cfg: EngineConfig, seed: u64) -> Self {
        Self {
            now: 1_767_225_600_000_000,
            cfg: Arc::new(cfg),
            engines: BTreeMap::new(),
            profiles: BTreeMap::new(),
            behaviour: BTreeMap::new(),
            managers: BTreeSet::new(),
            dead: BTreeSet::new(),
            store: BTreeMap::new(),
            events: Vec::new(),
            refused: Vec::new(),
            executions: Vec::new(),
            delivered: 0,
            rng: DetRng::new(seed),
            loss: 0.0,
            duplicate: 0.0,
            delay: (100, 1_000),
            reject_rate: 0.0,
            tamper: 0.0,
            through_edge: false,
            tampered: Vec::new(),
            keys: BTreeMap::new(),
            queue: BinaryHeap::new(),
            messages: BTreeMap::new(),
            seq: 0,
            incarnations: BTreeMap::new(),
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.rng.next_u64() as f64 / u64::MAX as f64) < p
    }

    /// The id of agent `n` of a kind (1: managers, 2: contractors): a real Ed25519 key.
    pub(crate) fn agent_id(kind: u8, n: u64) -> AgentId {
        Self::key(kind, n).id()
    }

    fn key(kind: u8, n: u64) -> AgentKey {
        let mut seed = [kind; 32];
        seed[..8].copy_from_slice(&n.to_le_bytes());
        AgentKey::from_seed(seed)
    }

    pub(crate) fn add_manager(&mut self, n: u64) -> AgentId {
        let id = Self::agent_id(1, n);
        self.keys.insert(id, Self::key(1, n));
        let engine = Engine::new(id, self.cfg.clone(), None, 1000 + n);
        self.engines.insert(id, engine);
        self.managers.insert(id);
        for (other, profile) in self.profiles.clone() {
            self.input(id, Input::AgentArrived(AgentCard::from_profile(other, &profile)));
        }
        id
    }

    pub(crate) fn add_contractor(
        &mut self,
        n: u64,
        profile: ContractorProfile,
        behaviour: Behaviour,
    ) -> AgentId {
        let id = Self::agent_id(2, n);
        self.keys.insert(id, Self::key(2, n));
        let engine = Engine::new(id, self.cfg.clone(), Some(profile.clone()), 2000 + n);
        self.engines.insert(id, engine);
        self.profiles.insert(id, profile.clone());
        self.behaviour.insert(id, behaviour);
        for m in self.managers.clone() {
            self.input(m, Input::AgentArrived(AgentCard::from_profile(id, &profile)));
        }
        id
    }

    /// Lets a contractor manage too (subcontracting): it learns every agent's card.
    pub(crate) fn make_manager(&mut self, agent: AgentId) {
        self.managers.insert(agent);
        for (id, p) in self.profiles.clone() {
            self.input(agent, Input::AgentArrived(AgentCard::from_profile(id, &p)));
        }
    }

    pub(crate) fn submit(&mut self, manager: AgentId, submit: Submit) -> Option<TaskId> {
        let before = self.events.len();
        self.input(manager, Input::Submit(submit));
        self.events[before..].iter().find_map(|(a, e)| {
            (*a == manager && matches!(e.kind, EventKind::Submitted { .. })).then(|| e.task())
        })
    }

    pub(crate) fn spec(capability: &str) -> TaskSpec {
        TaskSpec::new(capability, json!({"text": "hello"}))
    }

    pub(crate) fn input(&mut self, agent: AgentId, input: Input) {
        if self.dead.contains(&agent) {
            return;
        }
        let now = self.now;
        let engine = self.engines.get_mut(&agent).expect("known agent");
        let effects: Vec<Effect> = engine.handle(now, input).collect();
        self.apply(agent, effects);
    }

    fn schedule(&mut self, at: Micros, what: Happening) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, what)));
    }

    fn post(&mut self, to: AgentId, msg: &Arc<Envelope>) {
        if self.chance(self.loss) {
            return;
        }
        let msg = if self.through_edge {
            match self.cross_edge(to, msg) {
                Some(m) => m,
                None => return,
            }
        } else {
            msg.clone()
        };
        let msg = &msg;
        let copies = if self.chance(self.duplicate) { 2 } else { 1 };
        for _ in 0..copies {
            let (lo, hi) = self.delay;
            let delay = lo + self.rng.below((hi - lo + 1) as usize) as u64;
            self.seq += 1;
            let key = self.seq;
            self.messages.insert(key, msg.clone());
            self.schedule(self.now + delay, Happening::Deliver(to, key));
        }
    }

    fn apply(&mut self, agent: AgentId, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Send { msg, .. } => match &msg.to {
                    Recipient::Agent(to) => self.post(*to, &msg),
                    Recipient::Pool { pool, capability } => {
                        let targets: Vec<AgentId> = self
                            .profiles
                            .iter()
                            .filter(|(_, p)| p.offers(pool, capability))
                            .map(|(a, _)| *a)
                            .collect();
                        for t in targets {
                            self.post(t, &msg);
                        }
                    }
                },
                Effect::Persist { record, .. } => {
                    self.store.entry(agent).or_default().insert(record.id, *record);
                }
                Effect::Emit(event) => self.events.push((agent, event)),
                Effect::StartExecution { task, epoch, .. } => {
                    self.executions.push((agent, task, epoch));
                    let b = self.behaviour[&agent];
                    let fail = self.chance(b.fail_rate);
                    self.schedule(
                        self.now + b.exec_time,
                        Happening::ExecDone(agent, task, epoch, u64::from(fail)),
                    );
                }
                Effect::AbortExecution { .. } => {}
                Effect::Evaluate { .. } => panic!("no external bidding in these tests"),
                Effect::Verify { task, epoch, .. } => {
                    let ok = !self.chance(self.reject_rate);
                    self.schedule(self.now + 100, Happening::Verdict(agent, task, epoch, ok));
                }
                Effect::Refused { code, .. } => self.refused.push((agent, code)),
            }
        }
    }

    /// Signs (when the kind must be signed), encodes, maybe tampers, and decodes through the
    /// edge checks, as a real transport would. A tampered message must be refused.
    fn cross_edge(&mut self, to: AgentId, msg: &Envelope) -> Option<Arc<Envelope>> {
        let mut env = msg.clone();
        if env.kind().must_be_signed() {
            let nonce = Nonce(self.rng.next_u64().to_le_bytes().repeat(2).try_into().expect("16 bytes"));
            self.keys[&env.from].sign(&mut env, nonce);
        }
        let now_ms = self.now / 1000;
        let mut value = serde_json::to_value(&env).expect("envelope serializes");
        let expected =
            if self.chance(self.tamper) { Some(self.tamper_with(&mut value, &env, to)) } else { None };
        let bytes = match expected {
            Some(Code::Malformed) => b"{\"aixp\": \"1.0\", oops".to_vec(),
            _ => serde_json::to_vec(&value).expect("value serializes"),
        };
        let limits = EdgeLimits::default();
        let decoded = xchange_protocol::decode(&bytes, now_ms, Some(to), &limits);
        match (expected, decoded) {
            (None, Ok(env)) => Some(Arc::new(env)),
            (None, Err(refusal)) => panic!("an honest message was refused: {refusal}"),
            (Some(code), Ok(_)) => {
                self.tampered.push((code, None));
                None
            }
            (Some(code), Err(refusal)) => {
                self.tampered.push((code, Some(refusal.code)));
                None
            }
        }
    }

    fn tamper_with(&mut self, v: &mut serde_json::Value, env: &Envelope, to: AgentId) -> Code {
        let signed = env.kind().must_be_signed();
        let loopable = matches!(env.kind(), xchange_protocol::Kind::Cfp | xchange_protocol::Kind::Accept);
        let task_kind = env.conversation.is_some() && env.hops > 0;
        loop {
            match self.rng.below(8) {
                0 => return Code::Malformed,
                1 => {
                    v["aixp"] = serde_json::json!("2.0");
                    return Code::Incompatible;
                }
                2 if task_kind && !signed => {
                    v["hops"] = serde_json::json!(u64::from(env.max_hops) + 1);
                    return Code::HopLimit;
                }
                3 if loopable && !signed => {
                    v["lineage"].as_array_mut().expect("lineage").push(serde_json::json!(to.to_string()));
                    v["hops"] = serde_json::json!(env.lineage.len() + 1);
                    return Code::LoopDetected;
                }
                4 if !signed => {
                    v["expires_at"] = serde_json::json!(self.now / 1000 - 1);
                    return Code::Expired;
                }
                5 if signed => {
                    v.as_object_mut().expect("object").remove("sig");
                    return Code::SignatureMissing;
                }
                6 if signed => {
                    v["epoch"] = serde_json::json!(env.epoch + 7);
                    return Code::SignatureInvalid;
                }
                7 => {
                    v["kind"] = serde_json::json!("bogus");
                    return Code::SchemaInvalid;
                }
                _ => {}
            }
        }
    }

    /// Runs until nothing is left to do or `until` is reached.
    pub(crate) fn run_until(&mut self, until: Micros) {
        loop {
            let next_timer = self
                .engines
                .iter()
                .filter(|(a, _)| !self.dead.contains(*a))
                .filter_map(|(a, e)| e.poll_timeout().map(|t| (t, *a)))
                .min();
            let next_event = self.queue.peek().map(|Reverse((t, _, _))| *t);
            let at = match (next_timer, next_event) {
                (Some((t, _)), Some(e)) => t.min(e),
                (Some((t, _)), None) => t,
                (None, Some(e)) => e,
                (None, None) => return,
            };
            if at > until {
                self.now = until;
                return;
            }
            self.now = self.now.max(at);
            if next_timer.is_some_and(|(t, _)| t == at) {
                let agent = next_timer.expect("checked").1;
                let now = self.now;
                let effects: Vec<Effect> =
                    self.engines.get_mut(&agent).expect("agent").handle_timeout(now).collect();
                self.apply(agent, effects);
                continue;
            }
            let Reverse((_, _, what)) = self.queue.pop().expect("peeked");
            match what {
                Happening::Deliver(to, key) => {
                    let msg = self.messages.remove(&key).expect("stored message");
                    self.delivered += 1;
                    self.input(to, Input::Message(msg));
                }
                Happening::ExecDone(agent, task, epoch, failed) => {
                    let outcome = if failed == 1 {
                        ExecOutcome::Failed {
                            code: Code::ExecutionFailed,
                            reason: "simulated failure".into(),
                            retryable: false,
                        }
                    } else {
                        ExecOutcome::Done(Arc::new(json!({"done": task.to_string()})))
                    };
                    self.input(agent, Input::ExecutionFinished { task, epoch, outcome });
                }
                Happening::Verdict(agent, task, epoch, ok) => {
                    let reason = if ok { String::new() } else { "simulated rejection".into() };
                    self.input(agent, Input::Verdict { task, epoch, accepted: ok, reason });
                }
            }
        }
    }

    /// A contractor crashes: it forgets everything and stops answering.
    pub(crate) fn kill(&mut self, agent: AgentId) {
        self.dead.insert(agent);
    }

    /// A crashed contractor comes back with a fresh engine and a higher incarnation.
    pub(crate) fn revive(&mut self, agent: AgentId) {
        self.dead.remove(&agent);
        let incarnation = self.incarnations.entry(agent).or_insert(1);
        *incarnation += 1;
        let profile = self.profiles.get(&agent).cloned();
        let records: Vec<TaskRecord> =
            self.store.get(&agent).map(|s| s.values().cloned().collect()).unwrap_or_default();
        let mut engine = Engine::restore(
            agent,
            self.cfg.clone(),
            profile.clone(),
            9000 + *incarnation,
            *incarnation,
            records,
        );
        let effects: Vec<Effect> = engine.resume(self.now).collect();
        self.engines.insert(agent, engine);
        if self.managers.contains(&agent) {
            for (other, p) in self.profiles.clone() {
                self.input(agent, Input::AgentArrived(AgentCard::from_profile(other, &p)));
            }
        }
        self.apply(agent, effects);
    }

    /// Finished events per task.
    pub(crate) fn finished(&self) -> BTreeMap<TaskId, Vec<(TaskState, Code)>> {
        let mut out: BTreeMap<TaskId, Vec<_>> = BTreeMap::new();
        for (_, e) in &self.events {
            if let EventKind::Finished { state, code, .. } = &e.kind {
                out.entry(e.task()).or_default().push((*state, *code));
            }
        }
        out
    }

    pub(crate) fn counter(&self, f: impl Fn(&xchange_core::Counters) -> u64) -> u64 {
        self.engines.values().map(|e| f(e.counters())).sum()
    }

    /// Engine invariants plus the world-wide one: no two live contractors hold the
    /// current epoch of a task.
    pub(crate) fn check(&self) -> Result<(), String> {
        for (a, e) in &self.engines {
            if !self.dead.contains(a) {
                e.check_invariants().map_err(|err| format!("{a:?}: {err}"))?;
            }
        }
        let mut holders: BTreeMap<(TaskId, u32), Vec<AgentId>> = BTreeMap::new();
        for (a, e) in &self.engines {
            if self.dead.contains(a) {
                continue;
            }
            for (task, _, epoch, _) in e.contracts() {
                holders.entry((task, epoch)).or_default().push(*a);
            }
        }
        if let Some(((task, epoch), agents)) = holders.iter().find(|(_, v)| v.len() > 1) {
            return Err(format!("{task} epoch {epoch} held by {} agents", agents.len()));
        }
        Ok(())
    }
}

/// Default profile for tests.
pub(crate) fn profile(cap: &str, capacity: u32) -> ContractorProfile {
    ContractorProfile { capacity, queue_limit: 8, ..ContractorProfile::new([cap]) }
}

/// Fast protocol timings for tests (µs).
pub(crate) fn fast_config() -> EngineConfig {
    EngineConfig {
        bid_window: 5_000,
        lease: 50_000,
        heartbeat_interval: 15_000,
        report_resend: 20_000,
        reannounce_backoff: 10_000,
        no_contractor_timeout: 10_000_000,
        message_ttl: 1_000_000,
        terminal_retention: 60_000_000,
        durable: true,
        ..EngineConfig::default()
    }
}

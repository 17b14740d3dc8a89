//! Contract-net policies: the engines allocate the batch through messages, and the
//! allocation is read back from the simulated agents' ledger of completed executions.

use std::collections::BTreeMap;

use xchange_core::{Announce, AuctionConfig, ContractorProfile, EngineConfig, ScoreWeights};
use xchange_protocol::TaskState;

use crate::instance::{Batch, CAPABILITY};
use crate::sim::{LoopConfig, Sim};

/// What a contract-net run committed.
#[derive(Debug, Clone, PartialEq)]
pub struct CnpRun {
    /// The agent that completed each task, if any (from the ledger).
    pub assignment: Vec<Option<usize>>,
    /// Sum of `cost[task][agent]` over completed executions.
    pub cost: u64,
    /// Tasks that completed (the manager's `Finished` events).
    pub completed: usize,
    /// Executions started, per task (from the ledger).
    pub executions_per_task: Vec<u32>,
    /// Tasks executed, per agent (from the ledger).
    pub tasks_per_agent: Vec<u32>,
    /// Messages delivered (a broadcast counts once per recipient).
    pub delivered: u64,
    /// Messages sent by the engines (a broadcast counts once).
    pub sent: u64,
    /// Awards turned down because the contractor was busy.
    pub declined_awards: u64,
    /// Announcement rounds.
    pub announcements: u64,
    /// Awards made, provisional ones included.
    pub awards: u64,
    /// Contracts handed back.
    pub decommits: u64,
    /// Provisional awards moved to a higher premium (iterated).
    pub moved_awards: u64,
    /// Whether every execution started before the first one finished: the allocation
    /// settled while every agent still held its task.
    pub settled_before_first_completion: bool,
    /// Events the loop handled.
    pub events: u64,
    /// Tasks that ended otherwise than completed, by state and code.
    pub not_completed: BTreeMap<String, u64>,
    /// Tasks submitted that never ended within the horizon.
    pub unfinished: usize,
    /// Refused inputs, by code.
    pub refused: BTreeMap<String, u64>,
}

/// Engine settings for a batch: award on price alone, keep every bid on standby so that a
/// declined award moves down the list, and leases long enough that no heartbeat is needed
/// while a task runs.
pub fn batch_config(announce: Announce, agents: usize) -> EngineConfig {
    let defaults = EngineConfig::default();
    EngineConfig {
        announce,
        weights: ScoreWeights { price: 1.0, eta: 0.0, reputation: 0.0, load: 0.0, priority: 0.0 },
        standby_bids: agents,
        lease: 600_000_000,
        heartbeat_interval: 300_000_000,
        no_contractor_timeout: 600_000_000,
        durable: false,
        ..defaults
    }
}

/// One-shot contract net with broadcast announcements: every agent bids its cost on every
/// call it can take, the manager awards the best bid, a busy agent declines, the manager
/// moves to the next bid.
pub fn oneshot(batch: &Batch, seed: u64, delay: u64) -> CnpRun {
    let profile = ContractorProfile {
        capacity: 1,
        queue_limit: 0,
        external_bidding: true,
        ..ContractorProfile::new([CAPABILITY])
    };
    let engine = batch_config(Announce::Broadcast, batch.agents);
    let cfg = LoopConfig { delay, tasks_per_agent: Some(1), ..LoopConfig::default() };
    simulate(batch, seed, engine, cfg, profile)
}

/// Iterated contract net: the same broadcast and bids, then an auction (Bertsekas) over
/// provisional awards. Each task takes the agent whose bid plus premium is lowest and raises
/// that agent's premium; an agent holding a provisional award moves to a higher premium and
/// hands the old task back, which is placed again from the bids in hand. Awards start once
/// they have gone unchallenged for a settle time. Epsilon below 1/tasks makes the final
/// allocation optimal for integer costs.
pub fn iterated(batch: &Batch, seed: u64, delay: u64) -> CnpRun {
    let profile = ContractorProfile {
        capacity: 1,
        queue_limit: 0,
        external_bidding: true,
        ..ContractorProfile::new([CAPABILITY])
    };
    let mut engine = batch_config(Announce::Broadcast, batch.agents);
    engine.auction = Some(AuctionConfig { epsilon: 1.0 / (batch.tasks as f64 + 1.0), settle: 10_000_000 });
    let cfg = LoopConfig { delay, tasks_per_agent: Some(1), ..LoopConfig::default() };
    simulate(batch, seed, engine, cfg, profile)
}

fn simulate(
    batch: &Batch,
    seed: u64,
    engine: EngineConfig,
    cfg: LoopConfig,
    profile: ContractorProfile,
) -> CnpRun {
    let mut sim = Sim::new(engine, cfg, batch, vec![profile; batch.agents], seed);
    for t in 0..batch.tasks {
        sim.submit(t, Sim::<Batch>::spec(CAPABILITY, t));
    }
    sim.run();
    let mut assignment = vec![None; batch.tasks];
    let mut executions_per_task = vec![0; batch.tasks];
    let mut tasks_per_agent = vec![0; batch.agents];
    let mut cost = 0;
    let (mut last_start, mut first_finish) = (0, u64::MAX);
    for e in &sim.ledger {
        executions_per_task[e.task] += 1;
        tasks_per_agent[e.agent] += 1;
        last_start = last_start.max(e.started);
        if let Some(at) = e.finished {
            first_finish = first_finish.min(at);
            assignment[e.task] = Some(e.agent);
            cost += u64::from(batch.cost[e.task][e.agent]);
        }
    }
    let completed = sim.finished.values().filter(|(s, _)| *s == TaskState::Completed).count();
    let mut not_completed = BTreeMap::new();
    for (state, code) in sim.finished.values().filter(|(s, _)| *s != TaskState::Completed) {
        *not_completed.entry(format!("{state:?}/{code:?}")).or_default() += 1;
    }
    let refused = sim.refused.iter().map(|(c, n)| (format!("{c:?}"), *n)).collect();
    let counters = sim.counters();
    CnpRun {
        assignment,
        cost,
        completed,
        executions_per_task,
        tasks_per_agent,
        delivered: sim.delivered,
        sent: counters.messages_sent,
        declined_awards: counters.declined_awards,
        announcements: counters.announcements,
        awards: counters.contracts,
        decommits: counters.decommits,
        moved_awards: counters.moved_awards,
        settled_before_first_completion: last_start < first_finish,
        events: sim.events,
        not_completed,
        unfinished: sim.submitted.len() - sim.finished.len(),
        refused,
    }
}

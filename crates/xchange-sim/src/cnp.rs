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
    /// The agent whose execution of each task ran to the end, if any (from the ledger).
    pub assignment: Vec<Option<usize>>,
    /// Sum of `cost[task][agent]` over `assignment`.
    pub cost: u64,
    /// Tasks that completed (the manager's `Finished` events).
    pub completed: usize,
    /// Executions started, per task (from the ledger).
    pub executions_per_task: Vec<u32>,
    /// Tasks executed, per agent (from the ledger).
    pub tasks_per_agent: Vec<u32>,
    /// Messages delivered (a broadcast counts once per recipient).
    pub delivered: u64,
    /// Bytes of those messages encoded as JSON (estimated from a fixed sample).
    pub bytes: f64,
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
    // The committed allocation: the agent whose execution of each task ran to the end.
    let assignment: Vec<Option<usize>> = sim.task_tally.iter().map(|t| t.agent.map(|a| a as usize)).collect();
    let cost = assignment
        .iter()
        .enumerate()
        .filter_map(|(task, agent)| agent.map(|a| u64::from(batch.cost[task][a])))
        .sum();
    let executions_per_task = sim.task_tally.iter().map(|t| t.started).collect();
    let tasks_per_agent = sim.agent_tally.iter().map(|a| a.started).collect();
    let ended: Vec<_> = sim.outcomes.iter().flatten().collect();
    let completed = ended.iter().filter(|o| o.state == TaskState::Completed).count();
    let mut not_completed = BTreeMap::new();
    for o in ended.iter().filter(|o| o.state != TaskState::Completed) {
        *not_completed.entry(format!("{:?}/{:?}", o.state, o.code)).or_default() += 1;
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
        bytes: sim.mean_message_bytes() * sim.delivered as f64,
        sent: counters.messages_sent,
        declined_awards: counters.declined_awards,
        announcements: counters.announcements,
        awards: counters.contracts,
        decommits: counters.decommits,
        moved_awards: counters.moved_awards,
        settled_before_first_completion: sim.first_finish.is_none_or(|first| sim.last_start < first),
        events: sim.events,
        not_completed,
        unfinished: sim.submitted - ended.len(),
        refused,
    }
}

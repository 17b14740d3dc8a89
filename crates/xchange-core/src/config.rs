//! How an engine behaves: protocol timings, announce and award policy, and, for agents that
//! take work, their contractor profile.

use std::sync::Arc;

use xchange_protocol::{AgentId, Budget};

use crate::Micros;

/// Who gets a call for proposals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announce {
    /// Every eligible agent (one message on the pool subject, delivered to each).
    Broadcast,
    /// `d` eligible agents sampled at random (power of d choices), so that the cost per task
    /// does not grow with the number of agents.
    Sample(u32),
}

impl std::str::FromStr for Announce {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "broadcast" => Ok(Self::Broadcast),
            _ => match s.strip_prefix("sample:").map(str::parse::<u32>) {
                Some(Ok(d)) if d > 0 => Ok(Self::Sample(d)),
                _ => Err(format!("announce policy {s:?} is not `broadcast` or `sample:D` with D > 0")),
            },
        }
    }
}

impl std::fmt::Display for Announce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Broadcast => f.write_str("broadcast"),
            Self::Sample(d) => write!(f, "sample:{d}"),
        }
    }
}

/// Weights of the award score. Lower scores win. Each term is normalised within the bids of
/// one round, so the weights say how much each criterion matters relative to the others.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreWeights {
    /// Asked price.
    pub price: f64,
    /// Estimated time to result.
    pub eta: f64,
    /// The manager's own record of the bidder (failures, lapsed leases, hand-backs).
    pub reputation: f64,
    /// The bidder's load (contracts held per unit of capacity).
    pub load: f64,
    /// How much `job_priority_value` shifts weight from price to time: the time term is
    /// multiplied by `1 + priority_weight * max(priority, 0) / 100`.
    pub priority: f64,
}

impl Default for ScoreWeights {
    fn default() -> Self {
        Self { price: 1.0, eta: 1.0, reputation: 0.5, load: 0.5, priority: 1.0 }
    }
}

/// Engine settings. Times are in microseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Who receives calls for proposals.
    pub announce: Announce,
    /// How long bids are collected (the `reply_by` of a `cfp`). A round closes early once
    /// every solicited agent has answered.
    pub bid_window: Micros,
    /// Time-to-live of every message sent.
    pub message_ttl: Micros,
    /// A contract lapses if no heartbeat renews it within this time.
    pub lease: Micros,
    /// How often a contractor sends a heartbeat to each manager it holds contracts from.
    pub heartbeat_interval: Micros,
    /// How often a contractor resends an unacknowledged result report.
    pub report_resend: Micros,
    /// Wait before announcing again after a round that drew no usable bid.
    pub reannounce_backoff: Micros,
    /// A task that finds no contractor for this long fails with `no_eligible_contractor`.
    pub no_contractor_timeout: Micros,
    /// How long a finished task is remembered (to answer duplicates). Messages live at most
    /// `message_ttl`, so twice that is enough.
    pub terminal_retention: Micros,
    /// Hop limit of task trees rooted here.
    pub max_hops: u8,
    /// Award score weights.
    pub weights: ScoreWeights,
    /// Budget of a root task submitted without one.
    pub default_budget: Budget,
    /// Bids kept after an award, best first, for "award to the next-best bid".
    pub standby_bids: usize,
    /// Partitions that tasks are spread over (for replicated nodes; 1 otherwise).
    pub partitions: u32,
    /// Whether to emit lifecycle events (the runtime needs them to answer submitters).
    pub events: bool,
    /// Late binding (Sparrow's reservations) for sampled announcements: contractors keep
    /// a reservation and bid when they are free; the first bid wins.
    pub late_binding: bool,
    /// How long a late-binding call stays open (its `reply_by`).
    pub late_window: Micros,
    /// Iterated auction (Bertsekas) instead of one-shot awards, if set.
    pub auction: Option<AuctionConfig>,
    /// Whether the host keeps a store: if so, the engine emits `Persist` effects and holds
    /// the sends that reveal a change behind its write. Without a store nothing is persisted.
    pub durable: bool,
}

/// Iterated awards: each task, on behalf of its manager, bids for agents in an auction
/// (Bertsekas). An agent's premium is its price in that auction; a task takes the agent
/// with the lowest bid plus premium and raises that agent's premium by its margin over the
/// second-best agent plus `epsilon`. Awards are provisional: an agent holds one until
/// `settle` passes with no higher premium, and hands it back (`outbid`) for a higher one,
/// after which its task is placed again from the bids it already has (no new round). With
/// integer prices and `epsilon` below 1/n for n tasks the final allocation is optimal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AuctionConfig {
    /// Minimum premium increment.
    pub epsilon: f64,
    /// Quiet time before a provisional award starts.
    pub settle: Micros,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            announce: Announce::Sample(2),
            bid_window: 200_000,
            message_ttl: 30_000_000,
            lease: 3_000_000,
            heartbeat_interval: 1_000_000,
            report_resend: 1_000_000,
            reannounce_backoff: 100_000,
            no_contractor_timeout: 30_000_000,
            terminal_retention: 60_000_000,
            max_hops: 8,
            weights: ScoreWeights::default(),
            default_budget: Budget { subtasks: 1_000, messages: 100_000, retries: 100, price: u64::MAX / 4 },
            standby_bids: 4,
            partitions: 1,
            events: true,
            late_binding: false,
            late_window: 10_000_000,
            auction: None,
            durable: false,
        }
    }
}

/// A list of capability or pool names. Shared: agents with the same profile point at one
/// copy, which stays in cache when a hundred thousand of them are asked in turn.
pub type Names = Arc<[Arc<str>]>;

/// What an agent that takes work offers. Agents without a profile only manage.
#[derive(Debug, Clone, PartialEq)]
pub struct ContractorProfile {
    /// Capabilities offered.
    pub capabilities: Names,
    /// Pools (task databases) served; empty means every pool.
    pub pools: Names,
    /// Tasks executed at once.
    pub capacity: u32,
    /// Awarded tasks that may wait beyond `capacity`; more are refused with `busy`.
    pub queue_limit: u32,
    /// Price per unit of task size.
    pub price_per_unit: u64,
    /// Units of task size done per second (for the time estimate in bids).
    pub speed: f64,
    /// Ask the host for bid terms (`Effect::Evaluate`) instead of pricing from this profile.
    pub external_bidding: bool,
}

impl ContractorProfile {
    /// A profile for `capabilities` with capacity 1 and default terms.
    pub fn new<I, S>(capabilities: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Arc<str>>,
    {
        Self {
            capabilities: capabilities.into_iter().map(Into::into).collect::<Vec<_>>().into(),
            pools: Names::default(),
            capacity: 1,
            queue_limit: 16,
            price_per_unit: 10,
            speed: 1.0,
            external_bidding: false,
        }
    }

    /// Whether the profile offers `capability` in `pool`.
    pub fn offers(&self, pool: &str, capability: &str) -> bool {
        self.capacity > 0
            && self.capabilities.iter().any(|c| &**c == capability)
            && (self.pools.is_empty() || self.pools.iter().any(|p| &**p == pool))
    }
}

/// What a manager knows of another agent: its directory card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCard {
    /// The agent.
    pub id: AgentId,
    /// Capabilities offered.
    pub capabilities: Names,
    /// Pools served; empty means every pool.
    pub pools: Names,
}

impl AgentCard {
    /// The card of an agent with `profile`.
    pub fn from_profile(id: AgentId, profile: &ContractorProfile) -> Self {
        Self { id, capabilities: profile.capabilities.clone(), pools: profile.pools.clone() }
    }
}

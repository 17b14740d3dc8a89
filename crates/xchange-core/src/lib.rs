//! The contract-net engine of Xchange, sans-IO.
//!
//! One [`Engine`] is one agent, manager and contractor at once. The host feeds it
//! [`Input`]s with the current time (`handle(now, input)`), calls
//! `handle_timeout(now)` when [`Engine::poll_timeout`] is due, and applies the returned
//! [`Effect`]s in order: send a message, persist a task record (with a barrier that holds
//! the sends revealing it until it is committed), emit an [`Event`], start or abort an
//! execution, verify a result. The tokio runtime, the simulator and the tests all drive
//! this same engine.
//!
//! Layout: `engine.rs` (state, dispatch, timers), `manager.rs` (submit, announce, bids,
//! award, budgets), `resolution.rs` (leases, reports, assessment, resolution, the end of a
//! task), `membership.rs` (heartbeats, agents arriving and leaving, partitions, restore,
//! invariants), `contractor.rs` (bids, late binding, contracts, execution queue,
//! heartbeats, hand-back), `score.rs` (award score), `index.rs` (capability index with O(1)
//! sampling), `agent_map.rs` (agent-keyed maps), `io.rs` (inputs, effects, events,
//! records), `config.rs`, `counters.rs`, `rng.rs`.
//!
//! Agent-keyed maps (`agent_map.rs`) are hash maps with a fixed hasher that are never
//! iterated, so no iteration order can reach a decision.
//!
//! Must not depend on tokio, a clock, OS randomness or any I/O crate, and must not iterate
//! a hash map (`clippy.toml` forbids `Instant::now`, `SystemTime::now`, `HashMap`,
//! `HashSet`; CI checks `cargo tree`). Time is unix microseconds ([`Micros`]), passed in.

mod agent_map;
mod config;
mod contractor;
mod counters;
mod engine;
mod index;
mod io;
mod manager;
mod membership;
mod resolution;
mod rng;
mod score;

/// Unix time in microseconds: the engine's only notion of time, always passed in.
pub type Micros = u64;

pub use config::{AgentCard, Announce, AuctionConfig, ContractorProfile, EngineConfig, Names, ScoreWeights};
pub use counters::Counters;
pub use engine::Engine;
pub use io::{
    BidTerms, Effect, Event, EventKind, ExecOutcome, FinishedTask, Input, PersistToken, Refused, Submit,
    TaskRecord,
};
pub use rng::DetRng;

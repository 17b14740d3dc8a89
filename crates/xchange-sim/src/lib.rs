//! The Xchange simulator: the contract-net engine of `xchange-core` driven on virtual
//! time, compared with the optimum and with baselines on identical instances.
//!
//! Layout: `instance.rs` ([`Preset`], [`Batch`]: who the agents are and what each task
//! costs each of them), `sim.rs` ([`Sim`]: a discrete-event loop, one heap of message
//! deliveries, execution completions and engine timeouts, one [`xchange_core::Engine`] per
//! agent plus a manager, and the agents' ledger ([`TaskTally`], [`AgentTally`]) kept apart from the engines'
//! counters), `cnp.rs` (contract-net policies read back from that ledger), `baseline.rs`
//! (Hungarian optimum, global greedy, random matching), `queueing.rs` (online dispatch
//! without messages: random, round robin, power of d, and join-the-shortest-queue as the
//! omniscient reference), `report.rs` ([`Policy`],
//! [`Report`]: the table and the JSON line), and, behind the `plots` feature, `plot.rs`
//! (completion time against load and load-balance charts, written as SVG and PNG).
//!
//! A run is a pure function of its seed and workload: randomness comes only from
//! [`xchange_core::DetRng`], ties in the event heap break by scheduling order, and the
//! wall clock (`std::time::Instant`) is read only for the `perf` section of a report.
//! Must not depend on tokio or any I/O crate, nor read a clock anywhere else.

mod baseline;
mod cnp;
mod error;
mod hetero;
mod instance;
mod lookup;
mod metrics;
mod online;
#[cfg(feature = "plots")]
pub mod plot;
mod queueing;
mod report;
pub mod sim;
mod workload;

pub use baseline::{greedy, hungarian, random};
pub use cnp::{CnpRun, batch_config, iterated, oneshot};
pub use error::SimError;
pub use hetero::{Pool, SKILLS, dispatch_hetero};
pub use instance::{Batch, CAPABILITY, Preset};
pub use online::{
    Churn, CrashSummary, ONLINE_PRESETS, OnlinePolicy, OnlinePreset, OnlineReport, OnlineResult, Progress,
    online_preset, run_online, run_online_observed,
};
pub use queueing::{Arrivals, Dispatch, Dispatched, Online, Sizes, dispatch};
pub use report::{DELAY, Perf, Policy, PolicyResult, Report, peak_rss_mb, run};
pub use sim::{AgentTally, CrashLedger, LoopConfig, Outcome, Sim, TaskTally, Workload};
pub use workload::{ArrivalsSpec, ChurnSpec, SizesSpec, WorkloadChanges};

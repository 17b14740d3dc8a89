//! Errors of the simulator.

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// No preset has this name.
    #[error("unknown preset {0:?} (known: batch, online, online-pareto, online-hetero, churn, ci, million)")]
    UnknownPreset(String),
    /// No policy has this name.
    #[error("unknown policy {0:?} (known: hungarian, greedy, random, cnp-oneshot, cnp-iterated, all)")]
    UnknownPolicy(String),
    /// A batch instance needs at least one task and no more tasks than agents.
    #[error("a batch needs 1 <= tasks <= agents (got {tasks} tasks, {agents} agents)")]
    Infeasible {
        /// Agents.
        agents: usize,
        /// Tasks.
        tasks: usize,
    },
    /// A workload (file or command-line override) asks for something that cannot run.
    #[error("invalid workload: {0}")]
    InvalidWorkload(String),
    /// A chart could not be drawn or written (feature `plots`).
    #[error("could not draw {path}: {reason}")]
    Plot {
        /// The file, or the stem of the files, being written.
        path: String,
        /// Why.
        reason: String,
    },
}

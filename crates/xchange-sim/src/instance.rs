//! Problem instances: what the simulated agents are and what each task costs each agent.

use serde_json::Value;
use xchange_core::{DetRng, Micros};
use xchange_protocol::TaskSpec;

use crate::error::SimError;
use crate::sim::Workload;

/// A named workload with its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// An assignment problem: `agents` agents, `tasks` tasks, each (task, agent) cost drawn
    /// independently from 1..=1000, one task per agent.
    Batch {
        /// Agents (at least `tasks`).
        agents: usize,
        /// Tasks.
        tasks: usize,
    },
}

impl Preset {
    /// The `batch` preset at its standard size: 200 agents, 200 tasks.
    pub const BATCH: Self = Self::Batch { agents: 200, tasks: 200 };

    /// The preset's name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Batch { .. } => "batch",
        }
    }

    /// The same preset with another size.
    pub fn sized(self, agents: usize, tasks: usize) -> Self {
        match self {
            Self::Batch { .. } => Self::Batch { agents, tasks },
        }
    }
}

impl std::str::FromStr for Preset {
    type Err = SimError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "batch" => Ok(Self::BATCH),
            _ => Err(SimError::UnknownPreset(s.to_owned())),
        }
    }
}

/// A batch instance: the cost matrix, `cost[task][agent]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Agents.
    pub agents: usize,
    /// Tasks.
    pub tasks: usize,
    /// What each agent asks for each task, `cost[task][agent]`, in 1..=1000.
    pub cost: Vec<Vec<u32>>,
    /// How long every execution takes. Long enough that an agent still holds its task
    /// while the others are being placed, so that "one task per agent" holds through the
    /// engine's own `busy` refusals.
    pub duration: Micros,
}

/// The capability every batch agent offers.
pub const CAPABILITY: &str = "work";

impl Batch {
    /// Draws the cost matrix from `seed` (row by row, task-major).
    pub fn generate(agents: usize, tasks: usize, seed: u64) -> Result<Self, SimError> {
        if tasks == 0 || agents < tasks {
            return Err(SimError::Infeasible { agents, tasks });
        }
        let mut rng = DetRng::new(seed);
        let cost = (0..tasks).map(|_| (0..agents).map(|_| 1 + rng.below(1000) as u32).collect()).collect();
        Ok(Self { agents, tasks, cost, duration: 10_000_000 })
    }

    /// The cost of an assignment (`assignment[task] = agent`).
    pub fn cost_of(&self, assignment: &[usize]) -> u64 {
        assignment.iter().enumerate().map(|(t, &a)| u64::from(self.cost[t][a])).sum()
    }
}

impl Workload for Batch {
    fn task_index(&self, spec: &TaskSpec) -> Option<usize> {
        spec.input.get("task").and_then(Value::as_u64).map(|t| t as usize).filter(|&t| t < self.tasks)
    }

    fn price(&self, agent: usize, task: usize) -> Option<u64> {
        self.cost.get(task).and_then(|row| row.get(agent)).map(|&c| u64::from(c))
    }

    fn duration(&self, _agent: usize, _task: usize) -> Micros {
        self.duration
    }
}

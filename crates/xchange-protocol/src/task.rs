//! What a task is on the wire: its specification, its budget slice, its lifecycle states.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{TaskId, UnixMs};

/// The pool (task database) used when a task names none.
pub const GLOBAL_POOL: &str = "global";

/// The longest capability or pool name.
pub const MAX_NAME_LEN: usize = 64;

/// Whether `name` is a valid capability or pool name: 1-64 of `[A-Za-z0-9_-]`.
///
/// Names become single tokens of bus subjects, so dots, spaces and wildcards are excluded.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// What a manager asks to be done. Carried by `cfp` and `accept`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TaskSpec {
    /// The capability a contractor needs, e.g. `word-count`.
    #[cfg_attr(feature = "schema", schemars(regex(pattern = r"^[A-Za-z0-9_-]{1,64}$")))]
    pub capability: Arc<str>,
    /// The pool (task database) the task belongs to.
    #[serde(default = "global_pool")]
    #[cfg_attr(feature = "schema", schemars(regex(pattern = r"^[A-Za-z0-9_-]{1,64}$")))]
    pub pool: Arc<str>,
    /// The task's input data.
    #[serde(default)]
    pub input: Value,
    /// `job_priority_value`: higher runs first when agents are scarce, and weighs time
    /// against price in the award score.
    #[serde(default)]
    pub priority: i64,
    /// Estimated amount of work, in abstract units (a contractor of speed 1 takes one
    /// second per unit). Contractors use it to price and to estimate time.
    #[serde(default = "one")]
    pub size: f64,
    /// Unix ms after which the task is `expired` if not completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<UnixMs>,
    /// The highest price the manager accepts; higher bids are declined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_price: Option<u64>,
    /// A JSON Schema the result must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// The name of an outside verifier the manager consults on each result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifier: Option<String>,
    /// Executions that may end in a failure report or a rejected result before the task
    /// fails with `retry_limit`.
    #[serde(default = "default_retry_limit")]
    pub retry_limit: u32,
}

fn global_pool() -> Arc<str> {
    GLOBAL_POOL.into()
}
fn one() -> f64 {
    1.0
}
fn default_retry_limit() -> u32 {
    3
}

impl TaskSpec {
    /// A task for `capability` with `input` and default settings.
    pub fn new(capability: &str, input: Value) -> Self {
        Self {
            capability: capability.into(),
            pool: global_pool(),
            input,
            priority: 0,
            size: 1.0,
            deadline: None,
            max_price: None,
            output_schema: None,
            verifier: None,
            retry_limit: default_retry_limit(),
        }
    }
}

/// A budget: what a root job may spend across its whole tree of subtasks.
///
/// Budgets travel as slices: a manager reserves a slice for each contract (in `cfp` and
/// `accept`), the contractor spends from it for its own subtasks, and reports what it
/// spent (in `inform` and `failure`) so that the unspent part returns to the manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Budget {
    /// Subtasks that may still be created.
    pub subtasks: u32,
    /// Protocol messages that may still be exchanged.
    pub messages: u32,
    /// Retries and reassignments (after failures, rejected results or contractor faults).
    pub retries: u32,
    /// Total price that may still be paid to contractors.
    pub price: u64,
}

impl Budget {
    /// A budget large enough never to matter.
    pub const UNLIMITED: Self =
        Self { subtasks: u32::MAX, messages: u32::MAX, retries: u32::MAX, price: u64::MAX };

    /// An empty budget.
    pub const ZERO: Self = Self { subtasks: 0, messages: 0, retries: 0, price: 0 };

    /// Whether every field of `self` is at most the same field of `other`.
    pub fn fits_in(&self, other: &Self) -> bool {
        self.subtasks <= other.subtasks
            && self.messages <= other.messages
            && self.retries <= other.retries
            && self.price <= other.price
    }

    /// Field-wise saturating subtraction.
    pub fn minus(&self, other: &Self) -> Self {
        Self {
            subtasks: self.subtasks.saturating_sub(other.subtasks),
            messages: self.messages.saturating_sub(other.messages),
            retries: self.retries.saturating_sub(other.retries),
            price: self.price.saturating_sub(other.price),
        }
    }

    /// Field-wise saturating addition.
    pub fn plus(&self, other: &Self) -> Self {
        Self {
            subtasks: self.subtasks.saturating_add(other.subtasks),
            messages: self.messages.saturating_add(other.messages),
            retries: self.retries.saturating_add(other.retries),
            price: self.price.saturating_add(other.price),
        }
    }

    /// Half of each field, rounded down.
    pub fn half(&self) -> Self {
        self.part(2)
    }

    /// One `n`-th of each field, rounded down (`n` of 0 counts as 1).
    pub fn part(&self, n: u32) -> Self {
        let n = n.max(1);
        Self {
            subtasks: self.subtasks / n,
            messages: self.messages / n,
            retries: self.retries / n,
            price: self.price / u64::from(n),
        }
    }
}

/// A task's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Accepted, waiting for an eligible contractor.
    Pending,
    /// A call for proposals is out; bids are being collected.
    Announced,
    /// Awarded to a contractor that has not started it yet (the award is provisional).
    Awarded,
    /// The contractor is executing it.
    Running,
    /// A result report arrived and is being assessed.
    Reported,
    /// Terminal: the result was accepted.
    Completed,
    /// Terminal: the task failed (retry limit, budget, no contractor, …).
    Failed,
    /// Terminal: the task was cancelled.
    Cancelled,
    /// Terminal: the deadline passed.
    Expired,
}

impl TaskState {
    /// Whether the state is final.
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled | Self::Expired)
    }
}

/// A contract named in a heartbeat: the task and the epoch the contractor holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ContractRef {
    /// The task.
    pub task: TaskId,
    /// The contract epoch the contractor holds.
    pub epoch: u32,
    /// Whether the contractor has started executing it (the award is no longer provisional).
    #[serde(default)]
    pub started: bool,
}

//! Errors of the runtime and of the tasks it runs.

use xchange_bus::BusError;
use xchange_protocol::{AgentId, Code, TaskState};

/// Why a runtime operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// The runtime is shutting down or has stopped.
    #[error("runtime is shut down")]
    ShutDown,
    /// The agent is not running (killed or stopped).
    #[error("agent {0} is not running")]
    AgentNotRunning(AgentId),
    /// The bus refused an operation.
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    /// An agent with this id is already hosted or attached.
    #[error("agent {0} is already present")]
    AgentPresent(AgentId),
    /// The agent cannot be spawned as specified.
    #[error("invalid agent spec: {0}")]
    InvalidSpec(String),
}

/// How a task ended when it did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task {state:?} ({code}): {reason}")]
pub struct TaskFailure {
    /// The terminal state (`failed`, `cancelled`, `expired`).
    pub state: TaskState,
    /// Why, from the status-code table.
    pub code: Code,
    /// What happened, in words.
    pub reason: String,
}

impl TaskFailure {
    /// A failure with `code`.
    pub fn new(state: TaskState, code: Code, reason: impl Into<String>) -> Self {
        Self { state, code, reason: reason.into() }
    }

    pub(crate) fn runtime_stopped() -> Self {
        Self::new(TaskState::Failed, Code::Unavailable, "the runtime stopped before the task ended")
    }

    pub(crate) fn agent_gone(code: Code) -> Self {
        Self::new(TaskState::Failed, code, "the managing agent stopped before the task ended")
    }
}

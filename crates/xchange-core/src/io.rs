//! What goes into the engine ([`Input`]) and what comes out ([`Effect`], [`Event`]).
//!
//! The host (the tokio runtime, the simulator, a test) feeds inputs with the current time,
//! applies every effect in order, and calls `handle_timeout` when `poll_timeout` is due.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use xchange_protocol::{AgentId, Budget, Code, Envelope, Lineage, MsgId, TaskId, TaskSpec, TaskState};

use crate::Micros;
use crate::config::AgentCard;

/// A request to manage a new task.
#[derive(Debug, Clone)]
pub struct Submit {
    /// The task id, or `None` to let the engine make one.
    pub task: Option<TaskId>,
    /// What to do.
    pub spec: Arc<TaskSpec>,
    /// Subcontracting: the task this engine holds as contractor that this one is part of.
    pub parent: Option<TaskId>,
    /// Directed award: give the task to this agent without a call for proposals.
    pub contractor: Option<AgentId>,
    /// The root budget, or for a subtask its slice of the parent's budget (default: the
    /// configured budget for roots, `1/share` of what the parent has left for subtasks).
    pub budget: Option<Budget>,
    /// For a subtask without an explicit budget: take `1/share` of what the parent contract
    /// has left. Submitting n siblings with shares n, n-1, …, 1 splits it evenly; the
    /// default, 2, leaves half for later subtasks.
    pub share: u32,
}

impl Submit {
    /// A root task with default settings.
    pub fn new(spec: TaskSpec) -> Self {
        Self { task: None, spec: Arc::new(spec), parent: None, contractor: None, budget: None, share: 2 }
    }

    /// The same submission as a subtask of `parent`.
    pub fn under(mut self, parent: TaskId) -> Self {
        self.parent = Some(parent);
        self
    }
}

/// How an execution ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecOutcome {
    /// The result.
    Done(Arc<Value>),
    /// The execution failed.
    Failed {
        /// Usually `execution_failed`.
        code: Code,
        /// What went wrong.
        reason: String,
        /// Whether the same contractor may succeed on a retry.
        retryable: bool,
    },
}

/// A contractor's terms for a bid, decided outside the engine (`Effect::Evaluate`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BidTerms {
    /// Price asked.
    pub price: u64,
    /// Estimated time to result, ms.
    pub eta_ms: u64,
}

/// An opaque handle on one persisted change: the sends that reveal the change must wait
/// until the host reports it committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PersistToken {
    /// The task whose record was written.
    pub task: TaskId,
    /// Engine-wide sequence number of the write.
    pub seq: u64,
}

/// Everything that can happen to an engine, besides the passing of time.
#[derive(Debug, Clone)]
pub enum Input {
    /// Manage a new task.
    Submit(Submit),
    /// A message that passed the edge checks; its sender is authenticated as `from`.
    Message(Arc<Envelope>),
    /// An execution this engine started has ended.
    ExecutionFinished {
        /// The task.
        task: TaskId,
        /// The contract epoch the execution belongs to.
        epoch: u32,
        /// The outcome.
        outcome: ExecOutcome,
    },
    /// An execution reports progress (sent on to the manager).
    ExecutionProgress {
        /// The task.
        task: TaskId,
        /// The contract epoch.
        epoch: u32,
        /// Fraction done, 0 to 1.
        fraction: f64,
    },
    /// The host decided the terms of a bid that `Effect::Evaluate` asked for.
    BidDecided {
        /// The call for proposals.
        cfp: Arc<Envelope>,
        /// Terms, or a refusal.
        decision: Result<BidTerms, (Code, String)>,
    },
    /// Hand back a contract held by this engine.
    Decommit {
        /// The task.
        task: TaskId,
        /// Why.
        reason: String,
    },
    /// Cancel a task this engine manages (its subcontracts are cancelled too).
    Cancel {
        /// The task.
        task: TaskId,
        /// Why.
        reason: String,
    },
    /// An outside verifier judged a result (answer to `Effect::Verify`).
    Verdict {
        /// The task.
        task: TaskId,
        /// The epoch of the result judged.
        epoch: u32,
        /// Accepted or not.
        accepted: bool,
        /// Why not, if rejected.
        reason: String,
    },
    /// A persisted change was committed.
    Persisted(PersistToken),
    /// A write was refused because another node owns the partition now (fencing): the
    /// engine lets go of the task without sending anything more about it.
    PersistRefused(PersistToken),
    /// An agent announced itself (directory card).
    AgentArrived(AgentCard),
    /// An agent left: `agent_disconnected` (5003) or `unexpected_disconnect` (5009).
    AgentLeft {
        /// The agent.
        agent: AgentId,
        /// 5003 or 5009.
        code: Code,
    },
    /// This engine now owns a partition: it adopts the tasks persisted in it.
    PartitionGranted {
        /// The partition.
        partition: u32,
        /// Its persisted task records.
        records: Vec<TaskRecord>,
    },
    /// This engine no longer owns a partition: it drops those tasks silently.
    PartitionLost {
        /// The partition.
        partition: u32,
    },
}

/// Why an input was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Refused {
    /// A message (by id and sender).
    Message {
        /// The message id.
        id: MsgId,
        /// Its sender.
        from: AgentId,
    },
    /// A local command about a task.
    Command {
        /// The task, if known.
        task: Option<TaskId>,
    },
}

/// What the host must do. Effects are applied in the order they are returned.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Deliver a message to `msg.to`. If `barrier` is set, hold it until that write is
    /// committed (commit before revealing). The host signs it when it leaves the process and
    /// its kind must be signed.
    Send {
        /// The message.
        msg: Arc<Envelope>,
        /// A write that must be committed first.
        barrier: Option<PersistToken>,
    },
    /// Write (upsert) the durable record of a task.
    Persist {
        /// The handle to report back with.
        token: PersistToken,
        /// The record.
        record: Box<TaskRecord>,
    },
    /// A lifecycle event.
    Emit(Event),
    /// Start executing a contract.
    StartExecution {
        /// The task.
        task: TaskId,
        /// The contract epoch.
        epoch: u32,
        /// What to do.
        spec: Arc<TaskSpec>,
        /// Who awarded it.
        manager: AgentId,
    },
    /// Stop an execution (cancelled, superseded or handed back).
    AbortExecution {
        /// The task.
        task: TaskId,
        /// The contract epoch.
        epoch: u32,
    },
    /// Decide the terms of a bid (only for profiles with `external_bidding`).
    Evaluate {
        /// The call for proposals.
        cfp: Arc<Envelope>,
    },
    /// Assess a result (output schema, outside verifier) and answer with `Input::Verdict`.
    Verify {
        /// The task.
        task: TaskId,
        /// The epoch of the result.
        epoch: u32,
        /// The task (with its output schema and verifier name).
        spec: Arc<TaskSpec>,
        /// The result.
        result: Arc<Value>,
    },
    /// An input was refused; nothing changed.
    Refused {
        /// What was refused.
        about: Refused,
        /// Why.
        code: Code,
        /// What exactly was wrong.
        reason: String,
    },
}

/// A lifecycle event of a task this engine manages.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Deterministic id: the task and the event's sequence number within it.
    pub id: (TaskId, u32),
    /// When.
    pub at: Micros,
    /// What.
    pub kind: EventKind,
}

impl Event {
    /// The task.
    pub fn task(&self) -> TaskId {
        self.id.0
    }
}

/// What happened to a task.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// Accepted for management.
    Submitted {
        /// The parent task when this is a subtask.
        parent: Option<TaskId>,
    },
    /// A call for proposals went out.
    Announced {
        /// Round number (1 for the first).
        round: u32,
        /// Agents solicited.
        solicited: u32,
    },
    /// A contract was made.
    Awarded {
        /// The contractor.
        contractor: AgentId,
        /// The new epoch.
        epoch: u32,
        /// The agreed price.
        price: u64,
        /// Usable bids in the round.
        bids: u32,
        /// Time from the round's announcement to this award (none for directed awards).
        announce_to_award: Option<Micros>,
    },
    /// The contractor started executing.
    Started {
        /// The epoch.
        epoch: u32,
    },
    /// A result report arrived.
    Reported {
        /// The epoch.
        epoch: u32,
    },
    /// The contract ended without a result and the task is placed again.
    Reassigned {
        /// Why: `lease_expired`, `execution_failed`, `verification_failed`, `busy`, …
        code: Code,
        /// The contractor that lost it.
        from: AgentId,
    },
    /// The task ended.
    Finished {
        /// `completed`, `failed`, `cancelled` or `expired`.
        state: TaskState,
        /// `processed` (5002) on success, else why.
        code: Code,
        /// What happened, in words.
        reason: String,
        /// The accepted result.
        result: Option<Arc<Value>>,
    },
}

/// What an engine remembers of a task that ended, for `terminal_retention`: enough to
/// answer a duplicate report and to say how the task ended. The full record went out with
/// the last `Persist` and the `Finished` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinishedTask {
    /// `completed`, `failed`, `cancelled` or `expired`.
    pub state: TaskState,
    /// Why.
    pub code: Code,
    /// The last contract epoch.
    pub epoch: u32,
    /// The last contractor.
    pub contractor: Option<AgentId>,
    /// Executions that ended in failure or a rejected result.
    pub retries: u32,
    /// Partition the task belonged to.
    pub partition: u32,
}

impl FinishedTask {
    /// The summary of an ended task's record.
    pub fn of(rec: &TaskRecord) -> Self {
        Self {
            state: rec.state,
            code: rec.code.unwrap_or(Code::Processed),
            epoch: rec.epoch,
            contractor: rec.contractor,
            retries: rec.retries,
            partition: rec.partition,
        }
    }
}

/// The durable state of a task this engine manages: enough for `restore` to continue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The task.
    pub id: TaskId,
    /// What to do.
    pub spec: Arc<TaskSpec>,
    /// The parent task when this is a subtask (held by this engine as contractor).
    pub parent: Option<TaskId>,
    /// Depth in the task tree (root = 1).
    pub hops: u8,
    /// Hop limit of the tree.
    pub max_hops: u8,
    /// Managers above and including this engine, root first.
    pub lineage: Lineage,
    /// Lifecycle state.
    pub state: TaskState,
    /// Contract epoch (0 before the first award).
    pub epoch: u32,
    /// The current contractor.
    pub contractor: Option<AgentId>,
    /// The directed contractor, if the task was submitted with one.
    pub directed: Option<AgentId>,
    /// The agreed price of the current contract.
    pub price: u64,
    /// Budget the task still has (excluding the contractor's reserved slice).
    pub budget: Budget,
    /// Slice reserved for the current contractor.
    pub slice: Budget,
    /// Executions that ended in failure or a rejected result.
    pub retries: u32,
    /// When the task was submitted.
    pub created_at: Micros,
    /// Partition the task belongs to.
    pub partition: u32,
    /// Why it ended (terminal states).
    pub code: Option<Code>,
    /// What happened, in words (terminal states).
    pub reason: Option<String>,
    /// The accepted result (completed tasks).
    pub result: Option<Arc<Value>>,
}

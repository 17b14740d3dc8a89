//! What an agent does with work: the [`Contractor`] behaviour and the context an execution
//! gets to report progress and subcontract.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;
use xchange_core::{BidTerms, ExecOutcome, Submit};
use xchange_protocol::{AgentId, Code, TaskId, TaskSpec};

use crate::error::TaskFailure;
use crate::shard::{Command, ShardMsg};

/// An execution's future.
pub type ExecFuture = Pin<Box<dyn Future<Output = ExecOutcome> + Send>>;

/// How an execution proceeds.
pub enum Execution {
    /// Already done: the outcome goes back to the engine in the same loop iteration, with no
    /// task spawned and no channel crossed (the fast path for short tasks).
    Ready(ExecOutcome),
    /// Runs as its own tokio task; aborted if the contract is cancelled or moves.
    Pending(ExecFuture),
}

impl Execution {
    /// A finished execution with `result`.
    pub fn done(result: Value) -> Self {
        Self::Ready(ExecOutcome::Done(Arc::new(result)))
    }

    /// A failed execution that a retry with the same contractor may fix.
    pub fn failed(reason: impl Into<String>) -> Self {
        Self::Ready(ExecOutcome::Failed {
            code: Code::ExecutionFailed,
            reason: reason.into(),
            retryable: true,
        })
    }

    /// An execution that runs `fut` in its own task.
    pub fn pending(fut: impl Future<Output = ExecOutcome> + Send + 'static) -> Self {
        Self::Pending(Box::pin(fut))
    }
}

impl fmt::Debug for Execution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ready(o) => f.debug_tuple("Ready").field(o).finish(),
            Self::Pending(_) => f.write_str("Pending(..)"),
        }
    }
}

/// An agent's behaviour when it holds a contract.
pub trait Contractor: Send + Sync + 'static {
    /// Starts executing `spec`. Called on the shard's thread: do the work inline only if it
    /// takes microseconds, otherwise return [`Execution::Pending`].
    fn execute(&self, ctx: ExecContext, spec: Arc<TaskSpec>) -> Execution;

    /// Terms of a bid, asked only when the profile sets `external_bidding`. The default
    /// declines, so a profile that asks without overriding this never bids.
    fn bid(&self, spec: &TaskSpec) -> Result<BidTerms, (Code, String)> {
        let _ = spec;
        Err((Code::Declined, "this agent does not price bids itself".into()))
    }
}

/// The behaviour of an agent that only manages: it never executes anything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoWork;

impl Contractor for NoWork {
    fn execute(&self, _: ExecContext, _: Arc<TaskSpec>) -> Execution {
        Execution::Ready(ExecOutcome::Failed {
            code: Code::NotCapable,
            reason: "this agent does not execute tasks".into(),
            retryable: false,
        })
    }
}

/// A behaviour from a closure.
pub struct FnContractor<F>(pub F);

impl<F> Contractor for FnContractor<F>
where
    F: Fn(ExecContext, Arc<TaskSpec>) -> Execution + Send + Sync + 'static,
{
    fn execute(&self, ctx: ExecContext, spec: Arc<TaskSpec>) -> Execution {
        (self.0)(ctx, spec)
    }
}

/// A shared behaviour from a closure.
pub fn contractor_fn<F>(f: F) -> Arc<dyn Contractor>
where
    F: Fn(ExecContext, Arc<TaskSpec>) -> Execution + Send + Sync + 'static,
{
    Arc::new(FnContractor(f))
}

pub(crate) type Reply = oneshot::Sender<Result<Arc<Value>, TaskFailure>>;

/// The way from outside into one hosted agent: its shard's queue and its slot there.
#[derive(Clone)]
pub(crate) struct AgentPort {
    pub(crate) tx: UnboundedSender<ShardMsg>,
    pub(crate) token: u32,
}

impl AgentPort {
    pub(crate) fn send(&self, command: Command) -> bool {
        self.tx.send(ShardMsg::Command(Box::new(command))).is_ok()
    }

    /// Queues a submission; the receiver resolves when the task ends.
    pub(crate) fn start(&self, submit: Submit) -> oneshot::Receiver<Result<Arc<Value>, TaskFailure>> {
        let (reply, rx) = oneshot::channel();
        // If the shard is gone, `reply` is dropped with the message and `rx` says so.
        self.send(Command::Submit { token: self.token, submit, reply: Some(reply) });
        rx
    }

    pub(crate) async fn wait(
        rx: oneshot::Receiver<Result<Arc<Value>, TaskFailure>>,
    ) -> Result<Arc<Value>, TaskFailure> {
        rx.await.unwrap_or_else(|_| Err(TaskFailure::runtime_stopped()))
    }
}

/// What an execution knows about its contract, and its way back to its agent's engine.
#[derive(Clone)]
pub struct ExecContext {
    pub(crate) task: TaskId,
    pub(crate) epoch: u32,
    pub(crate) manager: AgentId,
    pub(crate) agent: AgentId,
    pub(crate) incarnation: u64,
    pub(crate) port: AgentPort,
}

impl fmt::Debug for ExecContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecContext")
            .field("task", &self.task)
            .field("epoch", &self.epoch)
            .field("manager", &self.manager)
            .field("agent", &self.agent)
            .finish_non_exhaustive()
    }
}

impl ExecContext {
    /// The task being executed.
    pub fn task(&self) -> TaskId {
        self.task
    }

    /// The contract epoch.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The agent that awarded the contract.
    pub fn manager(&self) -> AgentId {
        self.manager
    }

    /// The agent executing it.
    pub fn agent(&self) -> AgentId {
        self.agent
    }

    /// Subcontracts `spec` as a subtask of this task and waits for its result. The agent
    /// must be spawned with `manages` so that it knows contractors.
    pub async fn subcontract(&self, spec: TaskSpec) -> Result<Arc<Value>, TaskFailure> {
        AgentPort::wait(self.port.start(Submit::new(spec).under(self.task))).await
    }

    /// Subcontracts every spec at once and waits for all results, in the order given.
    pub async fn subcontract_all(&self, specs: Vec<TaskSpec>) -> Vec<Result<Arc<Value>, TaskFailure>> {
        // Submit everything before waiting on anything, so that the subtasks run concurrently.
        // Shares n, n-1, …, 1 of what the contract has left split the budget evenly.
        let n = specs.len() as u32;
        let pending: Vec<_> = specs
            .into_iter()
            .enumerate()
            .map(|(i, spec)| {
                self.port.start(Submit { share: n - i as u32, ..Submit::new(spec).under(self.task) })
            })
            .collect();
        let mut out = Vec::with_capacity(pending.len());
        for rx in pending {
            out.push(AgentPort::wait(rx).await);
        }
        out
    }

    /// Reports progress (0 to 1) to the manager.
    pub fn progress(&self, fraction: f64) {
        self.port.send(Command::Progress {
            token: self.port.token,
            incarnation: self.incarnation,
            task: self.task,
            epoch: self.epoch,
            fraction,
        });
    }

    /// Hands the contract back to the manager (which costs reputation once started); the
    /// execution is aborted.
    pub fn decommit(&self, reason: impl Into<String>) {
        self.port.send(Command::Decommit { token: self.port.token, task: self.task, reason: reason.into() });
    }
}

//! Hosting one agent: what to spawn ([`AgentSpec`]) and how to drive it ([`AgentHandle`]).

use std::fmt;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::oneshot;
use xchange_core::{ContractorProfile, Counters, Submit, TaskRecord};
use xchange_protocol::{AgentId, AgentKey, TaskId, TaskSpec};

use crate::contractor::{AgentPort, Contractor, NoWork};
use crate::error::{RuntimeError, TaskFailure};
use crate::shard::{AgentStatus, Command, Lifecycle};
use crate::shared::{Shared, validate_names};

/// What to host.
#[derive(Clone)]
pub struct AgentSpec {
    /// The agent's id (its public key when it signs).
    pub id: AgentId,
    /// The signing key; required when the bus wants signatures.
    pub key: Option<AgentKey>,
    /// What the agent offers; `None` for agents that only manage.
    pub profile: Option<ContractorProfile>,
    /// Whether the agent manages tasks: only managing agents are told of every other agent
    /// (sending every card to every engine would cost agents² inputs). A contractor that
    /// subcontracts must manage.
    pub manages: bool,
    /// What the agent does with contracts.
    pub behavior: Arc<dyn Contractor>,
    /// The engine's seed; derived from the runtime seed and the id when `None`.
    pub seed: Option<u64>,
    /// The shard to host the agent on; round robin when `None`. Agents that talk a lot do
    /// best on one shard, where a message never crosses cores.
    pub shard: Option<usize>,
    /// Restore from persisted records with this incarnation instead of starting fresh.
    pub restore: Option<(u64, Vec<TaskRecord>)>,
}

impl AgentSpec {
    /// An agent that only manages.
    pub fn manager(id: AgentId) -> Self {
        Self {
            id,
            key: None,
            profile: None,
            manages: true,
            behavior: Arc::new(NoWork),
            seed: None,
            shard: None,
            restore: None,
        }
    }

    /// An agent that takes work (and does not manage unless [`AgentSpec::managing`]).
    pub fn contractor(id: AgentId, profile: ContractorProfile, behavior: Arc<dyn Contractor>) -> Self {
        Self { profile: Some(profile), manages: false, behavior, ..Self::manager(id) }
    }

    /// Signs with `key`; the id becomes the key's.
    pub fn with_key(mut self, key: AgentKey) -> Self {
        self.id = key.id();
        self.key = Some(key);
        self
    }

    /// Sets whether the agent manages.
    pub fn managing(mut self, manages: bool) -> Self {
        self.manages = manages;
        self
    }

    /// Sets the engine seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Pins the agent to a shard.
    pub fn on_shard(mut self, shard: usize) -> Self {
        self.shard = Some(shard);
        self
    }

    /// Rebuilds the engine from `records` (`Engine::restore`); `incarnation` must be higher
    /// than the previous run's.
    pub fn restored(mut self, incarnation: u64, records: Vec<TaskRecord>) -> Self {
        self.restore = Some((incarnation, records));
        self
    }

    pub(crate) fn validate(&self, signing: bool) -> Result<(), RuntimeError> {
        if let Some(p) = &self.profile {
            validate_names(p)?;
        }
        match &self.key {
            Some(key) if key.id() != self.id => {
                Err(RuntimeError::InvalidSpec("the id is not the signing key's id".into()))
            }
            None if signing => {
                Err(RuntimeError::InvalidSpec("the bus checks signatures, so the agent needs a key".into()))
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Debug for AgentSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentSpec")
            .field("id", &self.id)
            .field("profile", &self.profile)
            .field("manages", &self.manages)
            .field("shard", &self.shard)
            .finish_non_exhaustive()
    }
}

/// A hosted agent. Clonable; dropping it does not stop the agent.
#[derive(Clone)]
pub struct AgentHandle {
    id: AgentId,
    port: AgentPort,
    shared: Arc<Shared>,
}

impl fmt::Debug for AgentHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentHandle").field("id", &self.id).finish_non_exhaustive()
    }
}

impl AgentHandle {
    pub(crate) fn new(id: AgentId, port: AgentPort, shared: Arc<Shared>) -> Self {
        Self { id, port, shared }
    }

    /// The agent's id.
    pub fn id(&self) -> AgentId {
        self.id
    }

    /// Submits a root task and waits until it ends: its result, or how it failed.
    pub async fn submit(&self, spec: TaskSpec) -> Result<Arc<Value>, TaskFailure> {
        self.submit_with(Submit::new(spec)).await
    }

    /// Submits with every option (task id, directed contractor, budget, parent) and waits.
    pub async fn submit_with(&self, submit: Submit) -> Result<Arc<Value>, TaskFailure> {
        AgentPort::wait(self.port.start(submit)).await
    }

    /// Submits without waiting; the outcome shows in the events tap. Returns the task id.
    pub fn submit_detached(&self, mut submit: Submit) -> TaskId {
        let id = *submit.task.get_or_insert_with(|| self.shared.task_id());
        self.port.send(Command::Submit { token: self.port.token, submit, reply: None });
        id
    }

    /// Cancels a task this agent manages (and its subcontracts).
    pub fn cancel(&self, task: TaskId, reason: impl Into<String>) {
        self.port.send(Command::Cancel { token: self.port.token, task, reason: reason.into() });
    }

    /// Hands back a contract this agent holds.
    pub fn decommit(&self, task: TaskId, reason: impl Into<String>) {
        self.port.send(Command::Decommit { token: self.port.token, task, reason: reason.into() });
    }

    /// Whether the agent runs, its incarnation and its engine's counters.
    pub async fn status(&self) -> Result<AgentStatus, RuntimeError> {
        let (reply, rx) = oneshot::channel();
        self.port.send(Command::Status { token: self.port.token, reply });
        rx.await.map_err(|_| RuntimeError::ShutDown)
    }

    /// The engine's counters (zero when the agent is not running or the runtime stopped).
    pub async fn counters(&self) -> Counters {
        self.status().await.map(|s| s.counters).unwrap_or_default()
    }

    async fn lifecycle(&self, op: Lifecycle) -> Result<(), RuntimeError> {
        let (ack, rx) = oneshot::channel();
        self.port.send(Command::Lifecycle { token: self.port.token, op, ack });
        rx.await.map_err(|_| RuntimeError::ShutDown)?
    }

    /// Fault injection: the agent stops answering at once. Its deliveries are dropped (and
    /// counted), its executions aborted, its state forgotten; managers are not told, so
    /// they find out when leases lapse.
    pub async fn kill(&self) -> Result<(), RuntimeError> {
        self.lifecycle(Lifecycle::Kill).await
    }

    /// Starts a fresh engine with the next incarnation, the same id and profile (killing
    /// the current one first if it runs). Managers hear of the agent again.
    pub async fn restart(&self) -> Result<(), RuntimeError> {
        self.lifecycle(Lifecycle::Restart).await
    }

    /// Leaves in an orderly way: like [`AgentHandle::kill`], but managers are told (5003).
    pub async fn stop(&self) -> Result<(), RuntimeError> {
        self.lifecycle(Lifecycle::Stop).await
    }
}

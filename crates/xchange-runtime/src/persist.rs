//! The seam where a store plugs in.
//!
//! Engines emit `Persist` effects only when their config says `durable`. The runtime hands
//! each one to a [`Persister`]; a real store (SQLite, PostgreSQL) will commit it and hold the
//! sends behind its barrier until then. [`MemoryPersister`] commits instantly, so barriers
//! are trivially satisfied and sends go out in order.

use std::collections::HashMap;

use parking_lot::Mutex;
use xchange_core::{PersistToken, TaskRecord};
use xchange_protocol::{AgentId, TaskId};

/// Stores the durable records of the tasks agents manage.
pub trait Persister: Send + Sync + 'static {
    /// Writes (upserts) `record` for `agent`. Returns once the write is durable.
    fn persist(&self, agent: AgentId, token: PersistToken, record: TaskRecord);

    /// Every record of `agent`, for `Engine::restore`.
    fn records(&self, agent: AgentId) -> Vec<TaskRecord>;
}

/// Keeps the last record of each task in memory.
#[derive(Debug, Default)]
pub struct MemoryPersister {
    records: Mutex<HashMap<AgentId, HashMap<TaskId, TaskRecord>>>,
}

impl MemoryPersister {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes so far, over every agent.
    pub fn len(&self) -> usize {
        self.records.lock().values().map(HashMap::len).sum()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Persister for MemoryPersister {
    fn persist(&self, agent: AgentId, _token: PersistToken, record: TaskRecord) {
        // Effects are applied in order, so the last write is the newest.
        self.records.lock().entry(agent).or_default().insert(record.id, record);
    }

    fn records(&self, agent: AgentId) -> Vec<TaskRecord> {
        let all = self.records.lock();
        let mut out: Vec<TaskRecord> =
            all.get(&agent).map(|t| t.values().cloned().collect()).unwrap_or_default();
        out.sort_by_key(|r| r.id);
        out
    }
}

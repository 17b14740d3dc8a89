//! The runtime handle, its builder, and the events tap.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use parking_lot::Mutex;
use tokio::sync::broadcast;
use tokio::sync::mpsc;
use xchange_bus::Bus;
use xchange_core::{EngineConfig, Event};
use xchange_protocol::{AgentId, TaskSpec};

use crate::agent::{AgentHandle, AgentSpec};
use crate::clock::{Clock, SystemClock};
use crate::error::RuntimeError;
use crate::persist::Persister;
use crate::shard::{Shard, ShardMsg};
use crate::shared::{EventBatch, Parts, Shared};
use crate::verify::Verifier;

/// What the runtime itself did, summed over its shards (engines count the protocol).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Batches drained from shard queues.
    pub batches: u64,
    /// Deliveries for agents that were killed or stopped, dropped.
    pub dead_deliveries: u64,
    /// Inputs the engines refused.
    pub refused: u64,
    /// Sends the bus failed.
    pub publish_errors: u64,
    /// Executions that finished inline (`Execution::Ready`).
    pub executions_inline: u64,
    /// Executions spawned as tasks (`Execution::Pending`).
    pub executions_spawned: u64,
    /// Spawned executions aborted.
    pub aborted: u64,
}

enum ShardJoin {
    Task(tokio::task::JoinHandle<()>),
    Thread(std::thread::JoinHandle<()>),
}

/// Owns the shards: when the last [`Runtime`] clone goes, the shards are told to stop.
struct Owner {
    shared: Arc<Shared>,
    joins: Mutex<Vec<ShardJoin>>,
    /// The tokio handle of each shard thread (only with `start_on_threads`).
    handles: Mutex<Vec<tokio::runtime::Handle>>,
    guard: Mutex<Option<mpsc::Receiver<()>>>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shared.close(false);
    }
}

/// Builds a [`Runtime`].
pub struct RuntimeBuilder {
    /// Where messages go.
    pub bus: Arc<dyn Bus>,
    /// Settings of every engine.
    pub engine: Arc<EngineConfig>,
    /// Shards, each one task (or thread) hosting many agents. Default 1.
    pub shards: usize,
    /// Seed from which engine seeds are derived when an agent names none.
    pub seed: u64,
    /// The time engines are given.
    pub clock: Arc<dyn Clock>,
    /// Where durable engines' records go (`EngineConfig::durable`).
    pub persister: Option<Arc<dyn Persister>>,
    /// Event batches (one per shard iteration) kept for a slow tap before it lags.
    pub event_capacity: usize,
}

impl RuntimeBuilder {
    /// One shard on the system clock.
    pub fn new(bus: Arc<dyn Bus>, engine: Arc<EngineConfig>) -> Self {
        Self {
            bus,
            engine,
            shards: 1,
            seed: 0,
            clock: Arc::new(SystemClock::new()),
            persister: None,
            event_capacity: 1024,
        }
    }

    /// Sets the number of shards.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards.max(1);
        self
    }

    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the persister.
    pub fn persister(mut self, persister: Arc<dyn Persister>) -> Self {
        self.persister = Some(persister);
        self
    }

    fn prepare(self) -> (Runtime, Vec<Shard>) {
        let n = self.shards.max(1);
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::unbounded_channel::<ShardMsg>()).unzip();
        let (events, _) = broadcast::channel(self.event_capacity.max(1));
        let shared = Arc::new(Shared::new(Parts {
            bus: self.bus,
            config: self.engine,
            clock: self.clock,
            persister: self.persister,
            seed: self.seed,
            shards: txs.clone(),
            events: events.clone(),
        }));
        let (guard_tx, guard_rx) = mpsc::channel(1);
        let shards = rxs
            .into_iter()
            .zip(txs)
            .enumerate()
            .map(|(i, (rx, tx))| Shard::new(i, rx, tx, shared.clone(), guard_tx.clone(), events.clone()))
            .collect();
        let owner = Owner {
            shared: shared.clone(),
            joins: Mutex::new(Vec::new()),
            handles: Mutex::new(Vec::new()),
            guard: Mutex::new(Some(guard_rx)),
        };
        (Runtime { shared, owner: Arc::new(owner) }, shards)
    }

    /// Starts each shard as a task on the current tokio runtime. Panics outside one.
    pub fn start(self) -> Runtime {
        let (runtime, shards) = self.prepare();
        let joins = shards.into_iter().map(|s| ShardJoin::Task(tokio::spawn(s.run()))).collect();
        *runtime.owner.joins.lock() = joins;
        runtime
    }

    /// Starts each shard on its own OS thread with a current-thread tokio runtime, so that a
    /// shard's hot loop never migrates between cores. Executions a shard spawns run on its
    /// thread too.
    pub fn start_on_threads(self) -> std::io::Result<Runtime> {
        let (runtime, shards) = self.prepare();
        let mut joins = Vec::new();
        let mut handles = Vec::new();
        for shard in shards {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            handles.push(rt.handle().clone());
            let thread = std::thread::Builder::new().name(format!("xchange-shard-{}", shard.index)).spawn(
                move || {
                    rt.block_on(shard.run());
                    // Dropping the runtime drops the executions still spawned on it.
                    drop(rt);
                },
            )?;
            joins.push(ShardJoin::Thread(thread));
        }
        *runtime.owner.joins.lock() = joins;
        *runtime.owner.handles.lock() = handles;
        Ok(runtime)
    }
}

/// A handle on a running set of shards. Clones share them; when the last clone is dropped
/// the shards are told to stop, but only [`Runtime::shutdown`] waits for them.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) shared: Arc<Shared>,
    owner: Arc<Owner>,
}

impl Runtime {
    /// Hosts an agent: its engine goes to a shard, its topics are subscribed, and managers
    /// hear of it if it has a profile.
    pub fn spawn_agent(&self, spec: AgentSpec) -> Result<AgentHandle, RuntimeError> {
        let id = spec.id;
        let port = self.shared.host(spec)?;
        Ok(AgentHandle::new(id, port, self.shared.clone()))
    }

    /// Registers an outside verifier that tasks name in `spec.verifier`.
    pub fn register_verifier<F>(&self, name: impl Into<String>, verifier: F)
    where
        F: Fn(&TaskSpec, &serde_json::Value) -> Result<(), String> + Send + Sync + 'static,
    {
        let verifier: Verifier = Arc::new(verifier);
        self.shared.verifiers.write().insert(name.into(), verifier);
    }

    /// Lifecycle events of every task every hosted agent manages, from now on. Costs
    /// nothing while no tap exists; a tap that falls behind skips events (see
    /// [`EventTap::lagged`]).
    pub fn subscribe_events(&self) -> EventTap {
        EventTap {
            rx: self.shared.subscribe_events(),
            shared: self.shared.clone(),
            batch: None,
            next: 0,
            lagged: 0,
        }
    }

    /// What the runtime itself did, over all shards.
    pub fn stats(&self) -> RuntimeStats {
        let mut out = RuntimeStats::default();
        for s in self.shared.stats.iter() {
            out.batches += s.batches.load(Relaxed);
            out.dead_deliveries += s.dead_deliveries.load(Relaxed);
            out.refused += s.refused.load(Relaxed);
            out.publish_errors += s.publish_errors.load(Relaxed);
            out.executions_inline += s.executions_inline.load(Relaxed);
            out.executions_spawned += s.executions_spawned.load(Relaxed);
            out.aborted += s.aborted.load(Relaxed);
        }
        out
    }

    /// The bus the runtime sends on.
    pub fn bus(&self) -> &Arc<dyn Bus> {
        &self.shared.bus
    }

    /// The tokio handle of a shard's thread, to run work next to the agents it hosts
    /// (sends and replies then never cross cores). `None` unless started with
    /// [`RuntimeBuilder::start_on_threads`].
    pub fn shard_handle(&self, shard: usize) -> Option<tokio::runtime::Handle> {
        self.owner.handles.lock().get(shard).cloned()
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shared.shards.len()
    }

    /// Tells managers that every agent left (5003), stops the shards (aborting running
    /// executions and failing tasks still awaited), and waits until every shard and every
    /// execution task is gone. Later calls return at once.
    pub async fn shutdown(&self) {
        self.shared.close(true);
        let joins = std::mem::take(&mut *self.owner.joins.lock());
        for join in joins {
            match join {
                ShardJoin::Task(handle) => {
                    let _ = handle.await;
                }
                ShardJoin::Thread(handle) => {
                    let _ = tokio::task::spawn_blocking(move || handle.join()).await;
                }
            }
        }
        let guard = self.owner.guard.lock().take();
        if let Some(mut guard) = guard {
            // Resolves when the shards and every execution task dropped their guard.
            let _ = guard.recv().await;
        }
    }
}

/// A stream of `(agent, event)` for the tasks hosted agents manage, in the order each
/// shard emitted them (events of different shards interleave).
pub struct EventTap {
    rx: broadcast::Receiver<EventBatch>,
    shared: Arc<Shared>,
    batch: Option<EventBatch>,
    next: usize,
    lagged: u64,
}

impl EventTap {
    /// The next event; `None` once the runtime has shut down.
    pub async fn recv(&mut self) -> Option<(AgentId, Event)> {
        loop {
            if let Some(event) = self.batch.as_ref().and_then(|b| b.get(self.next)) {
                self.next += 1;
                return Some(event.clone());
            }
            match self.rx.recv().await {
                Ok(batch) => (self.batch, self.next) = (Some(batch), 0),
                Err(broadcast::error::RecvError::Lagged(n)) => self.lagged += n,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The next event if one is ready, without waiting. A tap read this way never registers a
    /// waker, so shards publishing to it never have to wake a thread parked on another core.
    pub fn try_recv(&mut self) -> Option<(AgentId, Event)> {
        loop {
            if let Some(event) = self.batch.as_ref().and_then(|b| b.get(self.next)) {
                self.next += 1;
                return Some(event.clone());
            }
            match self.rx.try_recv() {
                Ok(batch) => (self.batch, self.next) = (Some(batch), 0),
                Err(broadcast::error::TryRecvError::Lagged(n)) => self.lagged += n,
                Err(_) => return None,
            }
        }
    }

    /// Batches of events skipped because this tap fell behind (a shard sends one batch per
    /// loop iteration).
    pub fn lagged(&self) -> u64 {
        self.lagged
    }
}

impl Drop for EventTap {
    fn drop(&mut self) {
        self.shared.listeners.fetch_sub(1, Relaxed);
    }
}

//! The state every shard and handle shares: the bus, settings, verifiers, and the agent
//! directory that tells managers who arrived and who left.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use parking_lot::Mutex;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::{broadcast, oneshot};
use xchange_bus::{Bus, DeliverySink, Inbox, SubscriptionId, Topic};
use xchange_core::{AgentCard, ContractorProfile, DetRng, EngineConfig, Event};
use xchange_protocol::{AgentId, Code, GLOBAL_POOL, TaskId, is_valid_name};

use crate::agent::AgentSpec;
use crate::clock::Clock;
use crate::contractor::AgentPort;
use crate::error::RuntimeError;
use crate::persist::Persister;
use crate::shard::{Command, Lifecycle, NewAgent, ShardMsg};
use crate::verify::Verifiers;

/// Counters a shard keeps about itself. Aligned so that two shards never share a line.
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct ShardStats {
    pub(crate) batches: AtomicU64,
    pub(crate) dead_deliveries: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) publish_errors: AtomicU64,
    pub(crate) executions_inline: AtomicU64,
    pub(crate) executions_spawned: AtomicU64,
    pub(crate) aborted: AtomicU64,
}

struct Directory {
    /// Cards of agents with a profile that have not left: what a new manager is told.
    cards: HashMap<AgentId, AgentCard>,
    hosted: HashMap<AgentId, usize>,
    /// Agents attached from outside (`Runtime::attach_remote`): they have a card but no
    /// engine here.
    remote: HashSet<AgentId>,
    next_token: Vec<u32>,
    next_shard: usize,
    closed: bool,
}

pub(crate) struct Shared {
    pub(crate) bus: Arc<dyn Bus>,
    pub(crate) config: Arc<EngineConfig>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) persister: Option<Arc<dyn Persister>>,
    pub(crate) verifiers: Verifiers,
    /// Only for `subscribe_events`; shards hold their own senders, so taps close when the
    /// shards stop.
    events: Mutex<Option<broadcast::Sender<EventBatch>>>,
    pub(crate) listeners: AtomicUsize,
    pub(crate) sign: bool,
    pub(crate) seed: u64,
    pub(crate) shards: Vec<UnboundedSender<ShardMsg>>,
    pub(crate) sinks: Vec<Arc<dyn DeliverySink>>,
    pub(crate) stats: Box<[ShardStats]>,
    directory: Mutex<Directory>,
    ids: AtomicU64,
}

/// Topics an agent listens on: its own, and each capability in each pool it serves.
pub fn agent_topics(id: AgentId, profile: Option<&ContractorProfile>) -> Vec<Topic> {
    let mut out = vec![Topic::Agent(id)];
    if let Some(p) = profile {
        let global: [Arc<str>; 1] = [GLOBAL_POOL.into()];
        let pools = if p.pools.is_empty() { &global[..] } else { &p.pools[..] };
        for pool in pools {
            for cap in p.capabilities.iter() {
                out.push(Topic::Pool { pool: pool.clone(), capability: cap.clone() });
            }
        }
    }
    out
}

/// The events one shard emitted in one loop iteration: sent as one message, so that a
/// listening tap costs one lock and one wake-up per batch, not per event.
pub(crate) type EventBatch = Arc<Vec<(AgentId, Event)>>;

/// What a shared state is made from.
pub(crate) struct Parts {
    pub(crate) bus: Arc<dyn Bus>,
    pub(crate) config: Arc<EngineConfig>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) persister: Option<Arc<dyn Persister>>,
    pub(crate) seed: u64,
    pub(crate) shards: Vec<UnboundedSender<ShardMsg>>,
    pub(crate) events: broadcast::Sender<EventBatch>,
}

impl Shared {
    pub(crate) fn new(p: Parts) -> Self {
        let n = p.shards.len();
        Self {
            sign: p.bus.wants_signatures(),
            bus: p.bus,
            config: p.config,
            clock: p.clock,
            persister: p.persister,
            verifiers: Verifiers::default(),
            events: Mutex::new(Some(p.events)),
            listeners: AtomicUsize::new(0),
            seed: p.seed,
            sinks: p.shards.iter().map(|tx| Arc::new(tx.clone()) as Arc<dyn DeliverySink>).collect(),
            shards: p.shards,
            stats: (0..n).map(|_| ShardStats::default()).collect(),
            directory: Mutex::new(Directory {
                cards: HashMap::new(),
                hosted: HashMap::new(),
                remote: HashSet::new(),
                next_token: vec![0; n],
                next_shard: 0,
                closed: false,
            }),
            ids: AtomicU64::new(0),
        }
    }

    /// Places an agent on a shard, subscribes its topics and registers its card.
    pub(crate) fn host(&self, spec: AgentSpec) -> Result<AgentPort, RuntimeError> {
        spec.validate(self.sign)?;
        let n = self.shards.len();
        let mut dir = self.directory.lock();
        if dir.closed {
            return Err(RuntimeError::ShutDown);
        }
        if dir.hosted.contains_key(&spec.id) {
            return Err(RuntimeError::InvalidSpec(format!("agent {} is already hosted", spec.id)));
        }
        if dir.remote.contains(&spec.id) {
            return Err(RuntimeError::AgentPresent(spec.id));
        }
        let shard = spec.shard.map_or_else(
            || {
                let s = dir.next_shard;
                dir.next_shard = (s + 1) % n;
                s
            },
            |s| s % n,
        );
        let token = dir.next_token[shard];
        dir.next_token[shard] += 1;
        dir.hosted.insert(spec.id, shard);
        let cards = if spec.manages {
            dir.cards.values().filter(|c| c.id != spec.id).cloned().collect()
        } else {
            Vec::new()
        };
        let (id, profile) = (spec.id, spec.profile.clone());
        let seed = spec.seed.unwrap_or_else(|| DetRng::new(self.seed ^ id.short()).next_u64());
        let port = AgentPort { tx: self.shards[shard].clone(), token };
        // The slot exists before the first delivery can reach the shard.
        port.send(Command::Spawn(Box::new(NewAgent {
            token,
            id,
            key: spec.key,
            profile: spec.profile,
            manages: spec.manages,
            behavior: spec.behavior,
            seed,
            cards,
            restore: spec.restore,
        })));
        let subs = self.subscribe(id, profile.as_ref(), &Inbox::from_sink(self.sinks[shard].clone(), token));
        port.send(Command::Subscribed { token, subs: subs.as_ref().cloned().unwrap_or_default() });
        if let Err(e) = subs {
            let (ack, _) = oneshot::channel();
            port.send(Command::Lifecycle { token, op: Lifecycle::Kill, ack });
            return Err(e);
        }
        if let Some(p) = &profile {
            let card = AgentCard::from_profile(id, p);
            dir.cards.insert(id, card.clone());
            // Sent under the lock, so every shard sees arrivals and departures in one order.
            self.broadcast(|| Command::Arrived(card.clone()));
        }
        Ok(port)
    }

    /// A tap on the events; closed at once after shutdown.
    pub(crate) fn subscribe_events(&self) -> broadcast::Receiver<EventBatch> {
        let rx = match &*self.events.lock() {
            Some(tx) => tx.subscribe(),
            None => broadcast::channel(1).1,
        };
        self.listeners.fetch_add(1, Relaxed);
        rx
    }

    pub(crate) fn subscribe(
        &self,
        id: AgentId,
        profile: Option<&ContractorProfile>,
        inbox: &Inbox,
    ) -> Result<Vec<SubscriptionId>, RuntimeError> {
        let mut subs = Vec::new();
        for topic in agent_topics(id, profile) {
            match self.bus.subscribe(topic, inbox.clone()) {
                Ok(s) => subs.push(s),
                Err(e) => {
                    self.unsubscribe(subs);
                    return Err(e.into());
                }
            }
        }
        Ok(subs)
    }

    pub(crate) fn unsubscribe(&self, subs: Vec<SubscriptionId>) {
        for s in subs {
            if let Err(e) = self.bus.unsubscribe(s) {
                tracing::debug!(error = %e, "unsubscribe failed");
            }
        }
    }

    fn broadcast(&self, command: impl Fn() -> Command) {
        for tx in &self.shards {
            let _ = tx.send(command().into());
        }
    }

    /// Registers an agent's card and returns the cards a managing agent starts with.
    pub(crate) fn arrive(
        &self,
        id: AgentId,
        profile: Option<&ContractorProfile>,
        manages: bool,
    ) -> Result<Vec<AgentCard>, RuntimeError> {
        let mut dir = self.directory.lock();
        if dir.closed {
            return Err(RuntimeError::ShutDown);
        }
        let cards =
            if manages { dir.cards.values().filter(|c| c.id != id).cloned().collect() } else { Vec::new() };
        if let Some(p) = profile {
            let card = AgentCard::from_profile(id, p);
            dir.cards.insert(id, card.clone());
            self.broadcast(|| Command::Arrived(card.clone()));
        }
        Ok(cards)
    }

    /// A departure: managers are told with `code` (5003 orderly, 5009 unexpected).
    pub(crate) fn depart(&self, id: AgentId, code: Code) {
        let mut dir = self.directory.lock();
        dir.remote.remove(&id);
        if dir.cards.remove(&id).is_some() && !dir.closed {
            let agents: Arc<[AgentId]> = Arc::from(vec![id]);
            self.broadcast(|| Command::Left { agents: agents.clone(), code });
        }
    }

    /// Registers the card of an agent hosted elsewhere, so that managers hear of it.
    pub(crate) fn attach_remote(&self, id: AgentId, profile: &ContractorProfile) -> Result<(), RuntimeError> {
        validate_names(profile)?;
        let mut dir = self.directory.lock();
        if dir.closed {
            return Err(RuntimeError::ShutDown);
        }
        if dir.hosted.contains_key(&id) || !dir.remote.insert(id) {
            return Err(RuntimeError::AgentPresent(id));
        }
        let card = AgentCard::from_profile(id, profile);
        dir.cards.insert(id, card.clone());
        self.broadcast(|| Command::Arrived(card.clone()));
        Ok(())
    }

    /// Stops accepting agents and tells every shard to stop, after telling managers that
    /// every agent left when `farewell` is set.
    pub(crate) fn close(&self, farewell: bool) -> bool {
        let mut dir = self.directory.lock();
        if std::mem::replace(&mut dir.closed, true) {
            return false;
        }
        if farewell {
            let agents: Arc<[AgentId]> = dir.cards.keys().copied().collect();
            self.broadcast(|| Command::Left { agents: agents.clone(), code: Code::AgentDisconnected });
        }
        self.broadcast(|| Command::Shutdown);
        self.events.lock().take();
        true
    }

    pub(crate) fn task_id(&self) -> TaskId {
        let n = self.ids.fetch_add(1, Relaxed);
        let mut rng = DetRng::new(self.seed ^ n.rotate_left(17));
        TaskId::new_v7(self.clock.now() / 1000, rng.bytes10())
    }
}

pub(crate) fn validate_names(profile: &ContractorProfile) -> Result<(), RuntimeError> {
    for name in profile.capabilities.iter().chain(profile.pools.iter()) {
        if !is_valid_name(name) {
            return Err(RuntimeError::InvalidSpec(format!("{name:?} is not 1-64 of [A-Za-z0-9_-]")));
        }
    }
    Ok(())
}

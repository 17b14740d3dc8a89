//! The in-process bus: a routing table of inboxes, nothing else on the hot path.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use parking_lot::{Mutex, RwLock};
use xchange_protocol::{EdgeLimits, Envelope, Recipient};

use crate::counters::{BusCounters, Stats};
use crate::edge::{Edge, EdgeMode};
use crate::route_table::{AgentRoutes, Route, Sub, Subs};
use crate::types::{BusError, Inbox, SubscriptionId, Topic};
use crate::{Bus, MsClock};

/// Routing-table stripes. Publishers take a read lock, which still writes the lock word; with
/// one lock, two shard threads would bounce its cache line on every message.
const STRIPES: usize = 16;

type FastStr = foldhash::fast::RandomState;

type Capabilities = HashMap<Arc<str>, Subs, FastStr>;

#[derive(Default)]
struct Table {
    agents: AgentRoutes,
    // pool -> capability -> subscribers: nested so a lookup borrows the message's `&str`s.
    pools: HashMap<Arc<str>, Capabilities, FastStr>,
}

impl Table {
    fn add(&mut self, topic: &Topic, id: u64, inbox: Inbox) {
        match topic {
            Topic::Agent(a) => self.agents.add(*a, id, inbox),
            Topic::Pool { pool, capability } => self
                .pools
                .entry(pool.clone())
                .or_default()
                .entry(capability.clone())
                .or_default()
                .push(Sub::new(id, inbox)),
        }
    }

    fn remove(&mut self, topic: &Topic, id: u64) {
        match topic {
            Topic::Agent(a) => self.agents.remove(a, id),
            Topic::Pool { pool, capability } => {
                if let Some(caps) = self.pools.get_mut(pool) {
                    if let Some(subs) = caps.get_mut(capability) {
                        subs.remove(id);
                        if subs.is_empty() {
                            caps.remove(capability);
                        }
                    }
                    if caps.is_empty() {
                        self.pools.remove(pool);
                    }
                }
            }
        }
    }

    fn route(&self, to: &Recipient) -> Option<Route<'_>> {
        match to {
            Recipient::Agent(a) => self.agents.route(a),
            Recipient::Pool { pool, capability } => {
                self.pools.get(&**pool).and_then(|c| c.get(&**capability)).and_then(Route::to)
            }
        }
    }
}

#[repr(align(128))]
#[derive(Default)]
struct Stripe(RwLock<Table>);

/// The embedded bus: messages travel between tasks of one process as `Arc<Envelope>`.
///
/// Publishing is a hash lookup under a striped read lock plus one channel send per
/// subscriber; with [`EdgeMode::Encode`] every message first makes the round trip through
/// the wire format and the edge checks, as it would between processes.
pub struct InProcBus {
    stripes: Box<[Stripe]>,
    hasher: FastStr,
    // Subscription id -> topic, for unsubscribe; touched only when subscriptions change.
    topics: Mutex<HashMap<u64, Topic>>,
    next_id: AtomicU64,
    stats: Stats,
    edge: Option<Edge>,
}

impl Default for InProcBus {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for InProcBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcBus").field("edge", &self.edge.as_ref().map(Edge::mode)).finish_non_exhaustive()
    }
}

impl InProcBus {
    /// A bus in [`EdgeMode::Direct`].
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder, to choose the edge mode and its clock.
    pub fn builder() -> InProcBusBuilder {
        InProcBusBuilder::default()
    }

    fn stripe_of(&self, to: &Recipient) -> &RwLock<Table> {
        let h = match to {
            Recipient::Agent(a) => a.short(),
            Recipient::Pool { pool, capability } => self.hasher.hash_one((&**pool, &**capability)),
        };
        &self.stripes[(h % STRIPES as u64) as usize].0
    }

    fn stripe_of_topic(&self, topic: &Topic) -> &RwLock<Table> {
        match topic {
            Topic::Agent(a) => self.stripe_of(&Recipient::Agent(*a)),
            Topic::Pool { pool, capability } => {
                self.stripe_of(&Recipient::Pool { pool: pool.clone(), capability: capability.clone() })
            }
        }
    }

    /// Hands `msg` to every subscriber of its recipient and counts the copies.
    fn route(&self, msg: Arc<Envelope>) {
        let kind = msg.kind();
        let table = self.stripe_of(&msg.to).read();
        let Some(route) = table.route(&msg.to) else {
            drop(table);
            self.stats.dropped(1);
            return;
        };
        let (delivered, dead) = route.deliver(msg);
        drop(table);
        if delivered > 0 {
            self.stats.delivered(kind, delivered);
        }
        if dead > 0 {
            self.stats.dropped(dead);
        }
    }
}

impl Bus for InProcBus {
    fn publish(&self, msg: Arc<Envelope>) -> Result<(), BusError> {
        let Some(edge) = &self.edge else {
            self.route(msg);
            return Ok(());
        };
        match edge.round_trip(&msg, &self.stats) {
            Ok(checked) => self.route(Arc::new(checked)),
            Err(refusal) => {
                tracing::debug!(code = refusal.code.number(), reason = %refusal.reason, id = %msg.id, "message refused at the edge");
                self.stats.refused(refusal.code);
            }
        }
        Ok(())
    }

    fn subscribe(&self, topic: Topic, inbox: Inbox) -> Result<SubscriptionId, BusError> {
        topic.check()?;
        let id = self.next_id.fetch_add(1, Relaxed);
        // Register the id first so that a concurrent unsubscribe of it can find the topic.
        self.topics.lock().insert(id, topic.clone());
        self.stripe_of_topic(&topic).write().add(&topic, id, inbox);
        Ok(SubscriptionId(id))
    }

    fn unsubscribe(&self, id: SubscriptionId) -> Result<(), BusError> {
        let Some(topic) = self.topics.lock().remove(&id.0) else {
            return Ok(());
        };
        self.stripe_of_topic(&topic).write().remove(&topic, id.0);
        Ok(())
    }

    fn counters(&self) -> BusCounters {
        self.stats.snapshot()
    }

    fn wants_signatures(&self) -> bool {
        self.edge.as_ref().is_some_and(Edge::verifies_signatures)
    }
}

/// Builds an [`InProcBus`].
#[derive(Default)]
pub struct InProcBusBuilder {
    edge: EdgeMode,
    clock: Option<MsClock>,
    limits: EdgeLimits,
}

impl InProcBusBuilder {
    /// How messages cross the bus (default [`EdgeMode::Direct`]).
    pub fn edge(mut self, edge: EdgeMode) -> Self {
        self.edge = edge;
        self
    }

    /// The clock (unix ms) the edge checks read; the system clock by default.
    pub fn clock(mut self, clock: MsClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Size, time-to-live and hop limits of [`EdgeMode::Encode`] (its `require_signatures`
    /// is taken from the mode).
    pub fn limits(mut self, limits: EdgeLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The bus.
    pub fn build(self) -> InProcBus {
        let clock = self.clock.unwrap_or_else(crate::system_ms_clock);
        InProcBus {
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
            hasher: FastStr::default(),
            topics: Mutex::default(),
            next_id: AtomicU64::new(1),
            stats: Stats::default(),
            edge: Edge::new(self.edge, clock, self.limits),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::bus_conformance_suite!(InProcBus::new());

    mod encoded {
        use super::*;
        crate::bus_conformance_suite!(
            InProcBus::builder().edge(EdgeMode::Encode { verify_signatures: false }).build()
        );
    }

    #[test]
    fn invalid_pool_names_are_refused() {
        let bus = InProcBus::new();
        let (inbox, _rx) = Inbox::channel(0);
        let err = bus.subscribe(Topic::pool("a.b", "x"), inbox.clone()).unwrap_err();
        assert!(matches!(err, BusError::InvalidTopic { .. }), "{err}");
        assert!(bus.subscribe(Topic::pool("p", "*"), inbox).is_err());
    }
}

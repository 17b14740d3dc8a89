//! The in-process bus: a routing table of inboxes, nothing else on the hot path.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use parking_lot::{Mutex, RwLock};
use xchange_protocol::{AgentId, EdgeLimits, Envelope, Recipient, is_valid_name};

use crate::counters::{BusCounters, Stats};
use crate::edge::{Edge, EdgeMode};
use crate::types::{BusError, Inbox, SubscriptionId, Topic};
use crate::{Bus, MsClock};

/// Routing-table stripes. Publishers take a read lock, which still writes the lock word; with
/// one lock, two shard threads would bounce its cache line on every message.
const STRIPES: usize = 16;

/// Hashes an [`AgentId`] by its first eight bytes, which are already well spread.
#[derive(Clone, Copy, PartialEq, Eq)]
struct AgentKey(AgentId);

impl Hash for AgentKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.short());
    }
}

#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only reached if a key other than AgentKey is ever hashed with this hasher.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type FastStr = foldhash::fast::RandomState;

struct Sub {
    id: u64,
    inbox: Inbox,
    /// Unsubscribed, not yet compacted away.
    gone: bool,
}

/// The subscribers of one topic, in subscription order.
///
/// Ids grow with every subscription, so the list is sorted by id: unsubscribing finds the
/// entry by binary search, marks it gone, and compacts once half the list is gone. A pool
/// subject with 100,000 subscribers would otherwise cost a scan per unsubscribe.
#[derive(Default)]
struct Subs {
    list: Vec<Sub>,
    gone: usize,
}

impl Subs {
    fn push(&mut self, sub: Sub) {
        self.list.push(sub);
    }

    fn remove(&mut self, id: u64) {
        if let Ok(i) = self.list.binary_search_by_key(&id, |s| s.id)
            && !self.list[i].gone
        {
            self.list[i].gone = true;
            self.gone += 1;
        }
        if self.gone * 2 > self.list.len() {
            self.list.retain(|s| !s.gone);
            self.gone = 0;
        }
    }

    fn is_empty(&self) -> bool {
        self.list.len() == self.gone
    }

    /// The one subscriber, when there is exactly one (the usual agent inbox).
    fn only(&self) -> Option<&Sub> {
        match self.list.as_slice() {
            [only] if !only.gone => Some(only),
            _ => None,
        }
    }

    fn live(&self) -> impl Iterator<Item = &Sub> {
        self.list.iter().filter(|s| !s.gone)
    }
}

/// The subscribers of one agent's inbox: almost always exactly one, kept inline so that
/// routing to one agent among a hundred thousand costs one cache miss less.
///
/// The single case is 32 bytes (the `Many` case is boxed), so that with its 32-byte key a
/// table entry fills one cache line.
enum AgentSubs {
    One { id: u64, inbox: Inbox },
    Many(Box<Subs>),
}

impl Default for AgentSubs {
    fn default() -> Self {
        Self::Many(Box::default())
    }
}

impl AgentSubs {
    fn push(&mut self, sub: Sub) {
        match self {
            Self::Many(subs) if subs.is_empty() => *self = Self::One { id: sub.id, inbox: sub.inbox },
            Self::Many(subs) => subs.push(sub),
            Self::One { .. } => {
                let Self::One { id, inbox } = std::mem::take(self) else { unreachable!("matched One") };
                let mut subs = Box::<Subs>::default();
                subs.push(Sub { id, inbox, gone: false });
                subs.push(sub);
                *self = Self::Many(subs);
            }
        }
    }

    fn remove(&mut self, id: u64) {
        match self {
            Self::One { id: own, .. } if *own == id => *self = Self::default(),
            Self::One { .. } => {}
            Self::Many(subs) => subs.remove(id),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Self::One { .. } => false,
            Self::Many(subs) => subs.is_empty(),
        }
    }

    fn as_subs(&self) -> Route<'_> {
        match self {
            Self::One { inbox, .. } => Route::One(inbox),
            Self::Many(subs) => match subs.only() {
                Some(sub) => Route::One(&sub.inbox),
                None => Route::Many(subs),
            },
        }
    }
}

/// Where one published message goes.
enum Route<'a> {
    One(&'a Inbox),
    Many(&'a Subs),
}

type Capabilities = HashMap<Arc<str>, Subs, FastStr>;

#[derive(Default)]
struct Table {
    agents: HashMap<AgentKey, AgentSubs, BuildHasherDefault<PassThrough>>,
    // pool -> capability -> subscribers: nested so a lookup borrows the message's `&str`s.
    pools: HashMap<Arc<str>, Capabilities, FastStr>,
}

impl Table {
    fn add(&mut self, topic: &Topic, sub: Sub) {
        match topic {
            Topic::Agent(a) => self.agents.entry(AgentKey(*a)).or_default().push(sub),
            Topic::Pool { pool, capability } => {
                self.pools.entry(pool.clone()).or_default().entry(capability.clone()).or_default().push(sub)
            }
        }
    }

    fn remove(&mut self, topic: &Topic, id: u64) {
        match topic {
            Topic::Agent(a) => {
                let key = AgentKey(*a);
                if let Some(subs) = self.agents.get_mut(&key) {
                    subs.remove(id);
                    if subs.is_empty() {
                        self.agents.remove(&key);
                    }
                }
            }
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
        let route = match &msg.to {
            Recipient::Agent(a) => {
                table.agents.get(&AgentKey(*a)).filter(|s| !s.is_empty()).map(AgentSubs::as_subs)
            }
            Recipient::Pool { pool, capability } => table
                .pools
                .get(&**pool)
                .and_then(|c| c.get(&**capability))
                .filter(|s| !s.is_empty())
                .map(|s| s.only().map_or(Route::Many(s), |sub| Route::One(&sub.inbox))),
        };
        let Some(route) = route else {
            drop(table);
            self.stats.dropped(1);
            return;
        };
        let (mut delivered, mut dead) = (0, 0);
        match route {
            // The common case (one agent inbox): move the Arc instead of cloning it.
            Route::One(only) => {
                if only.deliver(msg) {
                    delivered += 1
                } else {
                    dead += 1
                }
            }
            Route::Many(subs) => {
                for s in subs.live() {
                    if s.inbox.deliver(msg.clone()) { delivered += 1 } else { dead += 1 }
                }
            }
        }
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
        if let Topic::Pool { pool, capability } = &topic {
            for name in [pool, capability] {
                if !is_valid_name(name) {
                    return Err(BusError::InvalidTopic {
                        topic: topic.to_string(),
                        reason: format!("{name:?} is not 1-64 of [A-Za-z0-9_-]"),
                    });
                }
            }
        }
        let id = self.next_id.fetch_add(1, Relaxed);
        // Register the id first so that a concurrent unsubscribe of it can find the topic.
        self.topics.lock().insert(id, topic.clone());
        self.stripe_of_topic(&topic).write().add(&topic, Sub { id, inbox, gone: false });
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

    #[test]
    fn pass_through_hash_uses_the_short_id() {
        let id = AgentId::from_index(3, 9);
        let h = BuildHasherDefault::<PassThrough>::default().hash_one(AgentKey(id));
        assert_eq!(h, id.short());
    }
}

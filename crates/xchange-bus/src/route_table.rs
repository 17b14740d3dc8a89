//! The routing structures of the in-process bus: the subscriber list of a topic, where one
//! message goes, and the open-addressing table that maps agent topics to their inboxes.
//!
//! The agent table exists for one reason: with a hundred thousand agents nearly every
//! lookup misses in cache, and a general hash map costs a control-byte line, a bucket that
//! may straddle two lines, then the subscriber list's heap allocation. Here a lookup reads
//! one 64-byte bucket (rarely its neighbours) that holds the agent's id and, in the usual
//! one-subscriber case, its inbox inline.

use std::sync::Arc;

use xchange_protocol::{AgentId, Envelope};

use crate::types::{Delivery, DeliverySink, Inbox};

pub(crate) struct Sub {
    pub(crate) id: u64,
    pub(crate) inbox: Inbox,
    /// Unsubscribed, not yet compacted away.
    gone: bool,
}

impl Sub {
    pub(crate) fn new(id: u64, inbox: Inbox) -> Self {
        Self { id, inbox, gone: false }
    }
}

/// The subscribers of one topic, in subscription order.
///
/// Ids grow with every subscription, so the list is sorted by id: unsubscribing finds the
/// entry by binary search, marks it gone, and compacts once half the list is gone. A pool
/// subject with 100,000 subscribers would otherwise cost a scan per unsubscribe.
#[derive(Default)]
pub(crate) struct Subs {
    list: Vec<Sub>,
    gone: usize,
}

impl Subs {
    pub(crate) fn push(&mut self, sub: Sub) {
        self.list.push(sub);
    }

    pub(crate) fn remove(&mut self, id: u64) {
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

    pub(crate) fn is_empty(&self) -> bool {
        self.list.len() == self.gone
    }

    fn live(&self) -> impl Iterator<Item = &Sub> {
        self.list.iter().filter(|s| !s.gone)
    }
}

/// Where one published message goes.
pub(crate) enum Route<'a> {
    One { sink: &'a dyn DeliverySink, token: u32 },
    Many(&'a Subs),
}

impl<'a> Route<'a> {
    /// The route to `subs`, if anyone still listens.
    pub(crate) fn to(subs: &'a Subs) -> Option<Self> {
        match subs.list.as_slice() {
            [only] if !only.gone => Some(Self::One { sink: only.inbox.sink(), token: only.inbox.token() }),
            _ if subs.is_empty() => None,
            _ => Some(Self::Many(subs)),
        }
    }

    /// Hands `msg` over; returns the copies delivered and those whose receiver was gone.
    pub(crate) fn deliver(self, msg: Arc<Envelope>) -> (u64, u64) {
        match self {
            // The common case (one agent inbox): move the Arc instead of cloning it.
            Self::One { sink, token } => {
                if sink.deliver(Delivery { token, msg }) {
                    (1, 0)
                } else {
                    (0, 1)
                }
            }
            Self::Many(subs) => subs.live().fold((0, 0), |(delivered, dead), s| {
                if s.inbox.deliver(msg.clone()) { (delivered + 1, dead) } else { (delivered, dead + 1) }
            }),
        }
    }
}

/// The subscribers of one agent's inbox: almost always exactly one, kept inline (the inbox
/// taken apart, so that the enum's tag fits beside the token and a bucket stays 64 bytes).
enum Subscribers {
    Vacant,
    One { id: u64, sink: Arc<dyn DeliverySink>, token: u32 },
    Many(Box<Subs>),
}

impl Subscribers {
    fn push(&mut self, id: u64, inbox: Inbox) {
        match self {
            Self::Vacant => {
                let (sink, token) = inbox.into_parts();
                *self = Self::One { id, sink, token };
            }
            Self::One { .. } => {
                let Self::One { id: first, sink, token } = std::mem::replace(self, Self::Vacant) else {
                    unreachable!("matched One")
                };
                let mut subs = Box::<Subs>::default();
                subs.push(Sub::new(first, Inbox::from_sink(sink, token)));
                subs.push(Sub::new(id, inbox));
                *self = Self::Many(subs);
            }
            Self::Many(subs) => subs.push(Sub::new(id, inbox)),
        }
    }

    fn remove(&mut self, id: u64) {
        match self {
            Self::One { id: own, .. } if *own == id => *self = Self::Vacant,
            Self::Many(subs) => {
                subs.remove(id);
                if subs.is_empty() {
                    *self = Self::Vacant;
                }
            }
            Self::Vacant | Self::One { .. } => {}
        }
    }
}

/// One agent and its subscribers: exactly one cache line, aligned to it.
#[repr(align(64))]
struct Bucket {
    agent: AgentId,
    subs: Subscribers,
}

const _: () = assert!(size_of::<Bucket>() == 64, "a bucket must fill exactly one cache line");

impl Bucket {
    const VACANT: Self = Self { agent: AgentId([0; 32]), subs: Subscribers::Vacant };

    fn is_vacant(&self) -> bool {
        matches!(self.subs, Subscribers::Vacant)
    }
}

/// Agent topic -> subscribers, by open addressing with linear probing in a flat array of
/// one-line buckets; removal shifts the following run back, so there are no tombstones and
/// a lookup stops at the first vacant bucket.
///
/// Kept at most half full: a hit then reads 1.5 buckets on average, and the next bucket is
/// the adjacent line, which the hardware prefetcher tends to bring along anyway.
#[derive(Default)]
pub(crate) struct AgentRoutes {
    /// Empty until the first subscription, then a power of two long.
    buckets: Box<[Bucket]>,
    len: usize,
    /// 64 minus log2 of the capacity: the home bucket is the top bits of the mixed key.
    shift: u32,
}

/// The smallest table allocated: 8 buckets, half a kilobyte.
const MIN_BUCKETS: usize = 8;

impl AgentRoutes {
    /// The bucket where a probe for `agent` starts. The bus picks a stripe from the low bits
    /// of the short id, so every agent of one table shares them: the top bits of a
    /// multiplicative mix are used instead (Fibonacci hashing), which also spreads ids whose
    /// leading bytes are not random.
    fn home(&self, agent: &AgentId) -> usize {
        (agent.short().wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.shift) as usize
    }

    fn mask(&self) -> usize {
        self.buckets.len() - 1
    }

    /// The bucket holding `agent`, if it has subscribers.
    fn find(&self, agent: &AgentId) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let mut i = self.home(agent);
        loop {
            let bucket = &self.buckets[i];
            if bucket.is_vacant() {
                return None;
            }
            if bucket.agent == *agent {
                return Some(i);
            }
            i = (i + 1) & self.mask();
        }
    }

    /// The first vacant bucket of `agent`'s probe sequence (there is one: the table is kept
    /// at most half full).
    fn vacancy(&self, agent: &AgentId) -> usize {
        let mut i = self.home(agent);
        while !self.buckets[i].is_vacant() {
            i = (i + 1) & self.mask();
        }
        i
    }

    /// Where a message to `agent` goes, if anyone listens.
    pub(crate) fn route(&self, agent: &AgentId) -> Option<Route<'_>> {
        match &self.buckets[self.find(agent)?].subs {
            Subscribers::One { sink, token, .. } => Some(Route::One { sink: &**sink, token: *token }),
            Subscribers::Many(subs) => Route::to(subs),
            Subscribers::Vacant => None,
        }
    }

    /// Adds subscription `id` of `agent`'s topic, delivering to `inbox`.
    pub(crate) fn add(&mut self, agent: AgentId, id: u64, inbox: Inbox) {
        if let Some(i) = self.find(&agent) {
            self.buckets[i].subs.push(id, inbox);
            return;
        }
        if (self.len + 1) * 2 > self.buckets.len() {
            self.grow();
        }
        let i = self.vacancy(&agent);
        self.buckets[i].agent = agent;
        self.buckets[i].subs.push(id, inbox);
        self.len += 1;
    }

    /// Removes subscription `id` of `agent`'s topic; unknown ids are ignored.
    pub(crate) fn remove(&mut self, agent: &AgentId, id: u64) {
        let Some(i) = self.find(agent) else { return };
        self.buckets[i].subs.remove(id);
        if self.buckets[i].is_vacant() {
            self.len -= 1;
            self.close_gap(i);
        }
    }

    /// Moves back the buckets after the vacated `hole` whose probe sequence passes through
    /// it, so that every lookup still finds its agent before the first vacant bucket.
    fn close_gap(&mut self, mut hole: usize) {
        let mask = self.mask();
        let mut i = hole;
        loop {
            i = (i + 1) & mask;
            if self.buckets[i].is_vacant() {
                return;
            }
            // The bucket at `i` may fill the hole if the hole lies between its home and `i`
            // (cyclically), i.e. it is at least as far from home as from the hole.
            let from_home = i.wrapping_sub(self.home(&self.buckets[i].agent)) & mask;
            if from_home >= i.wrapping_sub(hole) & mask {
                self.buckets.swap(hole, i);
                hole = i;
            }
        }
    }

    fn grow(&mut self) {
        let capacity = (self.buckets.len() * 2).max(MIN_BUCKETS);
        let old = std::mem::replace(&mut self.buckets, (0..capacity).map(|_| Bucket::VACANT).collect());
        self.shift = 64 - capacity.trailing_zeros();
        for bucket in old.into_vec().into_iter().filter(|b| !b.is_vacant()) {
            let i = self.vacancy(&bucket.agent);
            self.buckets[i] = bucket;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// The tokens a route delivers to, in order.
    fn tokens(route: Option<Route<'_>>) -> Vec<u32> {
        match route {
            None => Vec::new(),
            Some(Route::One { token, .. }) => vec![token],
            Some(Route::Many(subs)) => subs.live().map(|s| s.inbox.token()).collect(),
        }
    }

    /// Random subscribes and unsubscribes over a few agents, checked against a plain map
    /// after every step: growth, probe runs that wrap around, and backward shifts on
    /// removal all happen many times.
    #[test]
    fn agrees_with_a_map_under_random_churn() {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel::<Delivery>();
        let agents: Vec<AgentId> = (0..40).map(|i| AgentId::from_index(7, i)).collect();
        let mut model: HashMap<AgentId, Vec<(u64, u32)>> = HashMap::new();
        let mut table = AgentRoutes::default();
        let mut x = 0x1234_5678_u64;
        for id in 1..20_000u64 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let agent = agents[(x >> 33) as usize % agents.len()];
            let subs = model.entry(agent).or_default();
            // Grow while the table is young, then hover around a steady size.
            if subs.is_empty() || (x >> 20) % 8 < if id < 5_000 { 5 } else { 3 } {
                let token = (x >> 40) as u32;
                table.add(agent, id, Inbox::new(tx.clone(), token));
                subs.push((id, token));
            } else {
                let (gone, _) = subs.remove((x >> 12) as usize % subs.len());
                table.remove(&agent, gone);
                table.remove(&agent, gone);
            }
            for a in &agents {
                let want: Vec<u32> = model.get(a).map_or(Vec::new(), |s| s.iter().map(|&(_, t)| t).collect());
                assert_eq!(tokens(table.route(a)), want, "step {id}");
            }
            assert_eq!(table.len, model.values().filter(|s| !s.is_empty()).count());
        }
        assert!(table.buckets.len() >= 64, "the table grew");
    }

    #[test]
    fn an_empty_table_routes_nowhere() {
        let mut table = AgentRoutes::default();
        let agent = AgentId::from_index(1, 1);
        assert!(table.route(&agent).is_none());
        table.remove(&agent, 1);
        assert!(table.route(&agent).is_none());
    }
}

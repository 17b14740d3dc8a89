//! The capability index: which agents offer which capability in which pool, with O(1)
//! uniform sampling so that announcing to `d` agents costs the same with a thousand agents
//! or a million.

use std::collections::BTreeMap;
use std::sync::Arc;

use xchange_protocol::AgentId;

use crate::agent_map::AgentMap;
use crate::config::AgentCard;
use crate::rng::DetRng;
use crate::score::Reputation;

/// A set of agents with O(1) sampling and O(log n) removal.
#[derive(Debug, Default, Clone)]
struct Members {
    list: Vec<AgentId>,
    pos: AgentMap<usize>,
}

impl Members {
    fn insert(&mut self, id: AgentId) {
        if !self.pos.contains_key(&id) {
            self.pos.insert(id, self.list.len());
            self.list.push(id);
        }
    }

    fn remove(&mut self, id: &AgentId) {
        if let Some(i) = self.pos.remove(id) {
            self.list.swap_remove(i);
            if let Some(moved) = self.list.get(i) {
                self.pos.insert(*moved, i);
            }
        }
    }

    fn contains(&self, id: &AgentId) -> bool {
        self.pos.contains_key(id)
    }
}

/// Agents by pool and capability. Agents whose card names no pool serve every pool.
#[derive(Debug, Default, Clone)]
pub(crate) struct CapabilityIndex {
    by_pool: BTreeMap<Arc<str>, BTreeMap<Arc<str>, Members>>,
    every_pool: BTreeMap<Arc<str>, Members>,
    /// Every known agent's card: read only when agents arrive and leave.
    cards: AgentMap<AgentCard>,
    /// This manager's record of every known agent: read for every bid judged, so kept
    /// apart from the cards in entries of one cache line.
    records: AgentMap<Reputation>,
}

/// The agents eligible for one (pool, capability): up to two member lists.
pub(crate) struct Eligible<'a> {
    parts: [Option<&'a Members>; 2],
}

impl Eligible<'_> {
    /// How many agents.
    pub(crate) fn len(&self) -> usize {
        self.parts.iter().flatten().map(|m| m.list.len()).sum()
    }

    pub(crate) fn contains(&self, id: &AgentId) -> bool {
        self.parts.iter().flatten().any(|m| m.contains(id))
    }

    fn get(&self, mut i: usize) -> AgentId {
        for m in self.parts.iter().flatten() {
            if i < m.list.len() {
                return m.list[i];
            }
            i -= m.list.len();
        }
        unreachable!("index within len")
    }

    /// Up to `d` distinct agents, uniformly at random, none of them rejected by `skip`.
    pub(crate) fn sample(&self, d: usize, rng: &mut DetRng, skip: impl Fn(&AgentId) -> bool) -> Vec<AgentId> {
        let n = self.len();
        let mut chosen: Vec<AgentId> = Vec::with_capacity(d.min(n));
        if n == 0 || d == 0 {
            return chosen;
        }
        // Rejection sampling is O(d) when the pool is large; small pools are enumerated so
        // that a pool with few eligible agents still yields all of them.
        if n > 4 * d {
            let mut attempts = 0;
            while chosen.len() < d && attempts < 8 * d {
                attempts += 1;
                let id = self.get(rng.below(n));
                if !skip(&id) && !chosen.contains(&id) {
                    chosen.push(id);
                }
            }
            if chosen.len() == d {
                return chosen;
            }
            chosen.clear();
        }
        let mut all: Vec<AgentId> = (0..n).map(|i| self.get(i)).filter(|id| !skip(id)).collect();
        all.dedup();
        while chosen.len() < d && !all.is_empty() {
            let i = rng.below(all.len());
            chosen.push(all.swap_remove(i));
        }
        chosen
    }
}

impl CapabilityIndex {
    pub(crate) fn insert(&mut self, card: AgentCard) {
        // A returning agent keeps its record.
        let reputation = self.records.get(&card.id).copied().unwrap_or_default();
        self.remove(&card.id);
        for cap in card.capabilities.iter() {
            if card.pools.is_empty() {
                self.every_pool.entry(cap.clone()).or_default().insert(card.id);
            } else {
                for pool in card.pools.iter() {
                    self.by_pool
                        .entry(pool.clone())
                        .or_default()
                        .entry(cap.clone())
                        .or_default()
                        .insert(card.id);
                }
            }
        }
        self.records.insert(card.id, reputation);
        self.cards.insert(card.id, card);
    }

    /// The manager's record of a known agent.
    pub(crate) fn reputation(&self, id: &AgentId) -> Option<Reputation> {
        self.records.get(id).copied()
    }

    /// The manager's record of a known agent, to update.
    pub(crate) fn reputation_mut(&mut self, id: &AgentId) -> Option<&mut Reputation> {
        self.records.get_mut(id)
    }

    pub(crate) fn remove(&mut self, id: &AgentId) {
        self.records.remove(id);
        let Some(card) = self.cards.remove(id) else { return };
        for cap in card.capabilities.iter() {
            if card.pools.is_empty() {
                if let Some(m) = self.every_pool.get_mut(cap) {
                    m.remove(id);
                }
            } else {
                for pool in card.pools.iter() {
                    if let Some(m) = self.by_pool.get_mut(pool).and_then(|p| p.get_mut(cap)) {
                        m.remove(id);
                    }
                }
            }
        }
    }

    pub(crate) fn knows(&self, id: &AgentId) -> bool {
        self.cards.contains_key(id)
    }

    pub(crate) fn eligible(&self, pool: &str, capability: &str) -> Eligible<'_> {
        Eligible {
            parts: [self.by_pool.get(pool).and_then(|p| p.get(capability)), self.every_pool.get(capability)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(i: u64, caps: &[&str], pools: &[&str]) -> AgentCard {
        AgentCard {
            id: AgentId::from_index(0, i),
            capabilities: caps.iter().map(|c| Arc::from(*c)).collect::<Vec<_>>().into(),
            pools: pools.iter().map(|p| Arc::from(*p)).collect::<Vec<_>>().into(),
        }
    }

    #[test]
    fn eligibility_follows_pools_and_capabilities() {
        let mut idx = CapabilityIndex::default();
        idx.insert(card(1, &["ocr"], &[]));
        idx.insert(card(2, &["ocr", "nlp"], &["private"]));
        idx.insert(card(3, &["nlp"], &[]));
        assert_eq!(idx.eligible("global", "ocr").len(), 1);
        assert_eq!(idx.eligible("private", "ocr").len(), 2);
        assert_eq!(idx.eligible("private", "nlp").len(), 2);
        idx.remove(&AgentId::from_index(0, 2));
        assert_eq!(idx.eligible("private", "ocr").len(), 1);
        assert!(!idx.knows(&AgentId::from_index(0, 2)));
    }

    #[test]
    fn sampling_is_distinct_respects_skip_and_covers_small_pools() {
        let mut idx = CapabilityIndex::default();
        for i in 0..100 {
            idx.insert(card(i, &["x"], &[]));
        }
        let mut rng = DetRng::new(1);
        let banned = AgentId::from_index(0, 5);
        for _ in 0..200 {
            let s = idx.eligible("global", "x").sample(3, &mut rng, |a| *a == banned);
            assert_eq!(s.len(), 3);
            assert!(!s.contains(&banned));
            assert!(s[0] != s[1] && s[1] != s[2] && s[0] != s[2]);
        }
        let s = idx.eligible("global", "x").sample(200, &mut rng, |_| false);
        assert_eq!(s.len(), 100);
        let s = idx.eligible("global", "x").sample(2, &mut rng, |a| *a != banned);
        assert_eq!(s, vec![banned]);
    }
}

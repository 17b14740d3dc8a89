//! Maps keyed by agent id with O(1) lookups.
//!
//! A manager may know a million agents; ordered maps keyed by 32-byte ids then cost a dozen
//! key comparisons and cache misses per lookup. These maps are never iterated (so their
//! order cannot leak into decisions), their values sit inline in the table (one cache miss
//! per lookup, not two), and the hasher is fixed, so even their layout is reproducible.

use std::hash::{BuildHasherDefault, Hasher};

use xchange_protocol::AgentId;

/// Hashes an agent id by its first eight bytes (public keys and `AgentId::from_index` ids are
/// both well spread there). Fixed, so a table's layout depends only on what was inserted.
#[derive(Default)]
pub(crate) struct AgentIdHasher(u64);

impl Hasher for AgentIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only the first eight bytes of the id are mixed in; later writes are ignored.
        if self.0 == 0 && bytes.len() >= 8 {
            self.0 = u64::from_le_bytes(bytes[..8].try_into().expect("eight bytes")) | 1;
        }
    }
}

/// A map from agent id. Never iterate it.
pub(crate) type AgentMap<V> = hashbrown::HashMap<AgentId, V, BuildHasherDefault<AgentIdHasher>>;

//! Maps keyed by agent id with O(1) lookups and a deterministic iteration order.
//!
//! A manager may know a million agents; ordered maps keyed by 32-byte ids then cost a dozen
//! key comparisons and cache misses per lookup. An insertion-ordered hash map with a fixed
//! hasher iterates the same way on every run, so determinism is kept.

use std::hash::{BuildHasherDefault, Hasher};

use xchange_protocol::AgentId;

/// Hashes an agent id by its first eight bytes (public keys and `AgentId::from_index` ids are
/// both well spread there). Fixed, so iteration order depends only on insertion order.
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

/// An insertion-ordered map from agent id.
pub(crate) type AgentMap<V> = indexmap::IndexMap<AgentId, V, BuildHasherDefault<AgentIdHasher>>;

//! Constant-time maps from agent and task ids to the simulator's dense indices.
//!
//! A million agents and ten million tasks make ordered maps keyed by 16- and 32-byte ids the
//! largest cost of the event loop. These maps are only looked up, never iterated, so their
//! order cannot leak into a run; their hasher is fixed, so even their layout is reproducible.

use std::hash::{BuildHasherDefault, Hash, Hasher};

use xchange_protocol::{AgentId, TaskId};

/// Takes the first eight bytes written as the hash: agent ids are spread evenly there (public
/// keys, or `AgentId::from_index`), and task keys write their random half as one `u64`.
#[derive(Default)]
struct FirstWordHasher(u64);

impl Hasher for FirstWordHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.0 == 0 && bytes.len() >= 8 {
            self.0 = u64::from_le_bytes(bytes[..8].try_into().expect("eight bytes")) | 1;
        }
    }
}

type Map<K, V> = hashbrown::HashMap<K, V, BuildHasherDefault<FirstWordHasher>>;

/// A task id as a map key hashed by its random half (a v7 id begins with its timestamp).
#[derive(Clone, Copy, PartialEq, Eq)]
struct TaskKey(u128);

impl Hash for TaskKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0 as u64);
        state.write_u64((self.0 >> 64) as u64);
    }
}

/// Agent id to engine index.
#[derive(Default)]
pub(crate) struct AgentIndex(Map<AgentId, u32>);

impl AgentIndex {
    pub(crate) fn insert(&mut self, id: AgentId, index: u32) {
        self.0.insert(id, index);
    }

    pub(crate) fn get(&self, id: &AgentId) -> Option<u32> {
        self.0.get(id).copied()
    }
}

/// Task id to workload index.
#[derive(Default)]
pub(crate) struct TaskIndex(Map<TaskKey, u32>);

impl TaskIndex {
    fn key(id: &TaskId) -> TaskKey {
        TaskKey(id.0.as_u128())
    }

    pub(crate) fn insert(&mut self, id: TaskId, index: u32) {
        self.0.insert(Self::key(&id), index);
    }

    pub(crate) fn remove(&mut self, id: &TaskId) -> Option<u32> {
        self.0.remove(&Self::key(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_map_to_their_indices_and_unknown_ids_to_none() {
        let (mut agents, mut tasks) = (AgentIndex::default(), TaskIndex::default());
        for i in 0..1000u32 {
            agents.insert(AgentId::from_index(2, u64::from(i)), i);
            // Same timestamp for all: only the random half tells them apart.
            tasks.insert(TaskId::new_v7(5, [0, 0, 0, 0, i as u8, (i >> 8) as u8, 0, 0, 0, 1]), i);
        }
        for i in 0..1000u32 {
            assert_eq!(agents.get(&AgentId::from_index(2, u64::from(i))), Some(i));
            assert_eq!(
                tasks.remove(&TaskId::new_v7(5, [0, 0, 0, 0, i as u8, (i >> 8) as u8, 0, 0, 0, 1])),
                Some(i)
            );
        }
        assert_eq!(agents.get(&AgentId::from_index(3, 0)), None);
        assert_eq!(tasks.remove(&TaskId::new_v7(5, [0; 10])), None);
        let first = TaskId::new_v7(5, [0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(tasks.remove(&first), None, "removed once, gone");
    }
}

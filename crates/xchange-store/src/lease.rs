//! Partitions, their leases and the nodes that hold them: what lets several replicas serve
//! the same task databases from one database without two of them managing one job.
//!
//! Jobs are split into partitions (the `partition_no` column). A node manages the jobs of
//! the partitions it leases. A lease has an owner, an expiry and an epoch that grows by
//! one at every acquisition; the node passes its [`Fence`] (partition and epoch) with
//! every job write, and the store applies the write only if the partition's lease is
//! still at that epoch, checked in the write's own transaction with the lease row locked
//! (PostgreSQL: `FOR SHARE`, so that a takeover waits for the writes under the old epoch
//! to commit, and every write after it sees the new epoch). A node that was paused or cut
//! off past its lease therefore cannot write: its writes are refused with
//! [`StoreError::Fenced`](crate::StoreError::Fenced), whatever it believes.
//!
//! Expiry times are on the database's clock (`now` below), the one clock that every node
//! shares; a node's own clock is never compared with another's.

use serde::{Deserialize, Serialize};

/// What a job write carries when its node manages the job under a lease: the write applies
/// only while the partition's lease is at `epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Fence {
    /// The partition.
    pub partition: i32,
    /// The lease's epoch when the node acquired it.
    pub epoch: i64,
}

/// A partition's lease as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The partition.
    pub partition: i32,
    /// The node holding it, `None` when released or never taken.
    pub owner: Option<String>,
    /// Grows by one at every acquisition; 0 before the first.
    pub epoch: i64,
    /// When the lease lapses unless renewed (database clock, Unix ms).
    pub expires_ms: i64,
    /// When its owner acquired it (database clock, Unix ms).
    pub acquired_ms: i64,
}

impl Lease {
    /// The fence a write under this lease carries.
    pub fn fence(&self) -> Fence {
        Fence { partition: self.partition, epoch: self.epoch }
    }

    /// Whether another node may take the partition at `now_ms` (database clock): nobody
    /// holds it, or its holder stopped renewing it.
    pub fn is_free(&self, now_ms: i64) -> bool {
        self.owner.is_none() || self.expires_ms <= now_ms
    }
}

/// A node that said it was alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterNode {
    /// Its id (its signing key's agent id).
    pub node_id: String,
    /// Where clients and other nodes reach it.
    pub url: String,
    /// When this incarnation first said it was alive (database clock, Unix ms).
    pub started_ms: i64,
    /// When it last said so (database clock, Unix ms).
    pub seen_ms: i64,
}

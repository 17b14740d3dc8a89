//! The registry of task databases shared by the nodes on one bus (federation): each node
//! puts the entries of the task databases it owns in the NATS key-value bucket
//! `{prefix}_registry`, under `{owner}.{task database id}`, with the URL it serves them
//! at; every node watches the bucket and keeps a copy of all entries, so that a registry
//! search on any node sees every node's task databases.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_nats::jetstream::kv::{self, Operation};
use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::RwLock;
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::backoff::Backoff;
use crate::error::MeshError;
use crate::names;

/// The largest entry the bucket takes.
const MAX_ENTRY_BYTES: i32 = 256 * 1024;

type Entries = Arc<RwLock<BTreeMap<String, Value>>>;

/// This node's view of the shared registry; the watch stops when it is dropped.
#[derive(Debug)]
pub struct SharedRegistry {
    kv: Arc<kv::Store>,
    entries: Entries,
    watch: JoinHandle<()>,
}

impl SharedRegistry {
    /// Gets (or creates) the bucket `{prefix}_registry` and starts copying it.
    pub async fn open(client: async_nats::Client, prefix: &str) -> Result<Self, MeshError> {
        names::check_prefix(prefix)?;
        let bucket = format!("{prefix}_registry");
        let kv = crate::kv::open_bucket(
            client,
            &bucket,
            "xchange task database registry",
            Default::default(),
            MAX_ENTRY_BYTES,
        )
        .await?;
        let kv = Arc::new(kv);
        let entries = Entries::default();
        let watch = tokio::spawn(copy(kv.clone(), entries.clone()));
        Ok(Self { kv, entries, watch })
    }

    /// Publishes `value` under `key` (`{owner}.{task database id}`).
    pub async fn put(&self, key: &str, value: &Value) -> Result<(), MeshError> {
        let bytes = Bytes::from(serde_json::to_vec(value).unwrap_or_default());
        self.kv.put(key, bytes).await.map(drop).map_err(MeshError::nats)
    }

    /// Withdraws `key`.
    pub async fn remove(&self, key: &str) -> Result<(), MeshError> {
        self.kv.delete(key).await.map_err(MeshError::nats)
    }

    /// Every entry of every node, as last seen, in key order.
    pub fn entries(&self) -> Vec<(String, Value)> {
        self.entries.read().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

impl Drop for SharedRegistry {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

async fn copy(kv: Arc<kv::Store>, entries: Entries) {
    let mut backoff = Backoff::new();
    loop {
        match kv.watch_with_history(">").await {
            Ok(mut watch) => {
                while let Some(entry) = watch.next().await {
                    let Ok(entry) = entry else { break };
                    backoff.reset();
                    match entry.operation {
                        Operation::Put => match serde_json::from_slice::<Value>(&entry.value) {
                            Ok(value) => {
                                entries.write().insert(entry.key, value);
                            }
                            Err(e) => {
                                tracing::warn!(key = %entry.key, error = %e, "registry entry is not JSON")
                            }
                        },
                        Operation::Delete | Operation::Purge => {
                            entries.write().remove(&entry.key);
                        }
                    }
                }
                tracing::warn!(bucket = %kv.name, "registry watch ended; watching again");
            }
            Err(e) => tracing::warn!(bucket = %kv.name, error = %e, "watching the registry failed"),
        }
        backoff.wait().await;
    }
}

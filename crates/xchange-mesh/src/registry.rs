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

/// A key-value bucket shared by the nodes on one bus, read key by key (no copy kept): where
/// a node records, say, which node a job was forwarded to.
#[derive(Debug, Clone)]
pub struct SharedKv {
    kv: Arc<kv::Store>,
}

impl SharedKv {
    /// Gets (or creates) the bucket `{prefix}_{name}`.
    pub async fn open(client: async_nats::Client, prefix: &str, name: &str) -> Result<Self, MeshError> {
        names::check_prefix(prefix)?;
        let bucket = format!("{prefix}_{name}");
        let description = format!("xchange {name}");
        let kv = crate::kv::open_bucket(client, &bucket, &description, Default::default(), MAX_ENTRY_BYTES)
            .await?;
        Ok(Self { kv: Arc::new(kv) })
    }

    /// Puts `value` under `key`.
    pub async fn put(&self, key: &str, value: &Value) -> Result<(), MeshError> {
        let bytes = Bytes::from(serde_json::to_vec(value).unwrap_or_default());
        self.kv.put(key, bytes).await.map(drop).map_err(MeshError::nats)
    }

    /// The value under `key`, if any (and if it is JSON).
    pub async fn get(&self, key: &str) -> Result<Option<Value>, MeshError> {
        let value = self.kv.get(key).await.map_err(MeshError::nats)?;
        Ok(value.and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Deletes `key`.
    pub async fn remove(&self, key: &str) -> Result<(), MeshError> {
        self.kv.delete(key).await.map_err(MeshError::nats)
    }
}

/// This node's view of the shared registry; the watch stops when it is dropped.
#[derive(Debug)]
pub struct SharedRegistry {
    shared: SharedKv,
    entries: Entries,
    watch: JoinHandle<()>,
}

impl SharedRegistry {
    /// Gets (or creates) the bucket `{prefix}_registry` and starts copying it.
    pub async fn open(client: async_nats::Client, prefix: &str) -> Result<Self, MeshError> {
        let shared = SharedKv::open(client, prefix, "registry").await?;
        let entries = Entries::default();
        let watch = tokio::spawn(copy(shared.kv.clone(), entries.clone()));
        Ok(Self { shared, entries, watch })
    }

    /// Publishes `value` under `key` (`{owner}.{task database id}`).
    pub async fn put(&self, key: &str, value: &Value) -> Result<(), MeshError> {
        self.shared.put(key, value).await
    }

    /// Withdraws `key`.
    pub async fn remove(&self, key: &str) -> Result<(), MeshError> {
        self.shared.remove(key).await
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

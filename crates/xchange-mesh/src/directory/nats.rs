//! The directory in a NATS key-value bucket: key = agent id, value = card, `max_age` = the
//! time-to-live, history 1.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv::{self, Entry, Operation, Watch};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use tokio::time::MissedTickBehavior;
use xchange_protocol::Code;
use xchange_runtime::Runtime;
use xchange_ws::{RemoteCard, SessionObserver};

use super::{CardHome, CardLease, DirectoryStats, DirectoryWatch, Roster, lease, offers, parse_card};
use crate::backoff::Backoff;
use crate::error::MeshError;
use crate::names;

/// The largest card value the bucket takes: a valid card (64 names of 64 bytes twice, 16
/// endpoints of 2 KiB) fits with room to spare.
const MAX_CARD_BYTES: i32 = 64 * 1024;

/// Agent cards in the NATS key-value bucket `{prefix}_agents`.
#[derive(Debug, Clone)]
pub struct NatsDirectory {
    /// Boxed: the handle carries the stream's info, over a kilobyte.
    kv: Arc<kv::Store>,
    ttl: Duration,
}

impl NatsDirectory {
    /// Gets the bucket `{prefix}_agents`, creating it with `max_age = ttl` and history 1 if
    /// it does not exist (an existing bucket keeps its own settings). `ttl` is at least one
    /// second.
    pub async fn open(client: async_nats::Client, prefix: &str, ttl: Duration) -> Result<Self, MeshError> {
        names::check_prefix(prefix)?;
        names::check_ttl(ttl)?;
        let bucket = names::agents_bucket(prefix);
        let kv = crate::kv::open_bucket(client, &bucket, "xchange agent cards", ttl, MAX_CARD_BYTES).await?;
        Ok(Self { kv: Arc::new(kv), ttl })
    }

    /// Puts `card` now and renews it every third of the time-to-live until the lease is
    /// withdrawn or dropped.
    pub fn announce(&self, card: RemoteCard) -> CardLease {
        lease(self.kv.clone(), &card, self.ttl / 3)
    }

    /// Attaches every live card of the bucket to `runtime`, now and as they come, and
    /// detaches them as they go: deleted or purged (5003), or not renewed for the
    /// time-to-live (5009, checked every third of it).
    pub fn watch(&self, runtime: Runtime, observer: Option<Arc<dyn SessionObserver>>) -> DirectoryWatch {
        let stats = Arc::new(DirectoryStats::default());
        let roster = Roster::new(runtime, stats.clone(), observer);
        DirectoryWatch::new(tokio::spawn(run(self.kv.clone(), roster, self.ttl)), stats)
    }

    /// The live cards that offer `capability` with a valid profile, by agent id.
    pub async fn lookup(&self, capability: &str) -> Result<Vec<RemoteCard>, MeshError> {
        let keys: Vec<String> =
            self.kv.keys().await.map_err(MeshError::nats)?.try_collect().await.map_err(MeshError::nats)?;
        let mut cards = Vec::new();
        for key in keys {
            // A card that expired or left between the listing and now reads as `None`.
            let Some(value) = self.kv.get(key.as_str()).await.map_err(MeshError::nats)? else { continue };
            if let Ok(card) = parse_card(&key, &value)
                && offers(&card, capability)
            {
                cards.push(card);
            }
        }
        cards.sort_by_key(|card| card.id.to_string());
        Ok(cards)
    }
}

impl CardHome for Arc<kv::Store> {
    async fn put(&self, id: &str, card: Bytes) -> Result<(), MeshError> {
        kv::Store::put(self, id, card).await.map(drop).map_err(MeshError::nats)
    }

    async fn remove(&self, id: &str) -> Result<(), MeshError> {
        self.delete(id).await.map_err(MeshError::nats)
    }
}

async fn run(kv: Arc<kv::Store>, mut roster: Roster, ttl: Duration) {
    let mut sweep = tokio::time::interval(ttl / 3);
    sweep.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut watch = None;
    let mut backoff = Backoff::new();
    loop {
        tokio::select! {
            _ = sweep.tick() => roster.sweep(ttl),
            entry = next_entry(&kv, &mut watch, &mut backoff) => match entry.operation {
                Operation::Put => roster.card(&entry.key, &entry.value),
                Operation::Delete | Operation::Purge => roster.left(&entry.key, Code::AgentDisconnected),
            },
        }
    }
}

/// The next change of the bucket, (re)opening the watch as needed. A new watch starts
/// with the last value of every key, so that a watch lost and reopened misses no card
/// still live and no goodbye still kept (delete markers live for `max_age` too); a card
/// that expired meanwhile is left to the sweep.
async fn next_entry(kv: &kv::Store, watch: &mut Option<Watch>, backoff: &mut Backoff) -> Entry {
    loop {
        let Some(current) = watch else {
            match kv.watch_with_history(">").await {
                Ok(opened) => *watch = Some(opened),
                Err(err) => {
                    tracing::warn!(error = %err, bucket = %kv.name, "watching the agent cards failed");
                    backoff.wait().await;
                }
            }
            continue;
        };
        match current.next().await {
            Some(Ok(entry)) => {
                backoff.reset();
                return entry;
            }
            Some(Err(err)) => tracing::warn!(error = %err, bucket = %kv.name, "agent card watch failed"),
            None => tracing::warn!(bucket = %kv.name, "agent card watch ended"),
        }
        *watch = None;
        backoff.wait().await;
    }
}

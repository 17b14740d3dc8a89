//! The directory of agent cards: agents announce their card with a time-to-live and renew
//! it; watchers attach the live cards to a runtime, so that its managers offer work to
//! agents hosted anywhere. One implementation per backend (`nats.rs`, `redis.rs`) over what
//! they share: the renewing lease (here) and the attach/detach bookkeeping (`roster.rs`).

#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "redis")]
mod redis;
mod roster;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use xchange_protocol::AgentId;
use xchange_ws::RemoteCard;

use crate::error::MeshError;

#[cfg(feature = "nats")]
pub use nats::NatsDirectory;
#[cfg(feature = "redis")]
pub use redis::RedisDirectory;
pub(crate) use roster::Roster;

/// What a directory watcher did since it started. Cards are counted each time one is read:
/// the NATS watcher reads every renewal, the Redis watcher re-reads only cards it has not
/// attached (invalid ones, and those of agents hosted by the watching runtime) at every poll.
#[derive(Debug, Default)]
pub struct DirectoryStats {
    /// Card values read.
    pub cards_seen: AtomicU64,
    /// Card values that did not parse, named another agent than their key, or described an
    /// invalid profile.
    pub cards_invalid: AtomicU64,
    /// Agents attached to the runtime.
    pub arrivals: AtomicU64,
    /// Agents detached after an orderly goodbye (5003).
    pub departures: AtomicU64,
    /// Agents detached because their card was no longer renewed (5009).
    pub expiries: AtomicU64,
}

impl DirectoryStats {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }
}

/// A running directory watcher. Dropping it stops the watcher, and the agents it attached
/// then leave the runtime as unexpected disconnects (5009): without a watcher nobody would
/// notice them go.
#[derive(Debug)]
pub struct DirectoryWatch {
    task: JoinHandle<()>,
    stats: Arc<DirectoryStats>,
}

impl DirectoryWatch {
    pub(crate) fn new(task: JoinHandle<()>, stats: Arc<DirectoryStats>) -> Self {
        Self { task, stats }
    }

    /// What the watcher did so far.
    pub fn stats(&self) -> &DirectoryStats {
        &self.stats
    }
}

impl Drop for DirectoryWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Goodbye = Pin<Box<dyn Future<Output = Result<(), MeshError>> + Send>>;

/// A card kept live in a directory: renewed every third of the directory's time-to-live
/// until [`CardLease::withdraw`] (an orderly goodbye) or drop (the card then expires, which
/// watchers report as an unexpected disconnect).
pub struct CardLease {
    id: AgentId,
    renew: JoinHandle<()>,
    /// The removal, built when the lease is (an async block does nothing until awaited).
    goodbye: Option<Goodbye>,
}

impl CardLease {
    /// The agent whose card this is.
    pub fn id(&self) -> AgentId {
        self.id
    }

    /// Stops renewing and removes the card, so that watchers detach the agent at once with
    /// 5003 (agent_disconnected).
    pub async fn withdraw(mut self) -> Result<(), MeshError> {
        self.renew.abort();
        // Requests go out in order on one connection, so a renewal cut short by the abort
        // cannot land after the removal.
        match self.goodbye.take() {
            Some(goodbye) => goodbye.await,
            None => Ok(()),
        }
    }
}

impl Drop for CardLease {
    fn drop(&mut self) {
        self.renew.abort();
    }
}

impl fmt::Debug for CardLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardLease").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Where a backend keeps cards, as the lease needs it.
pub(crate) trait CardHome: Clone + Send + Sync + 'static {
    /// Stores (or renews) the card of agent `id` with the directory's time-to-live.
    fn put(&self, id: &str, card: Bytes) -> impl Future<Output = Result<(), MeshError>> + Send;
    /// Removes the card of agent `id` as an orderly goodbye.
    fn remove(&self, id: &str) -> impl Future<Output = Result<(), MeshError>> + Send;
}

/// Starts renewing `card` in `home` every `period`, first at once.
pub(crate) fn lease<H: CardHome>(home: H, card: &RemoteCard, period: Duration) -> CardLease {
    let id = card.id.to_string();
    // A card is plain strings and numbers: serialising it cannot fail.
    let value = Bytes::from(serde_json::to_vec(card).expect("an agent card serialises to JSON"));
    let renew = tokio::spawn({
        let (home, id) = (home.clone(), id.clone());
        async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(err) = home.put(&id, value.clone()).await {
                    // The next renewal retries; two may fail before the card expires.
                    tracing::warn!(agent = %id, error = %err, "renewing an agent card failed");
                }
            }
        }
    });
    let goodbye: Goodbye = Box::pin(async move { home.remove(&id).await });
    CardLease { id: card.id, renew, goodbye: Some(goodbye) }
}

/// Whether `card` offers `capability` and describes a valid profile (what a manager could
/// use).
pub(crate) fn offers(card: &RemoteCard, capability: &str) -> bool {
    card.capabilities.iter().any(|c| c == capability) && card.profile().is_ok()
}

/// The card stored under agent id `id`, if it is one and names that agent.
pub(crate) fn parse_card(id: &str, value: &[u8]) -> Result<RemoteCard, String> {
    let card: RemoteCard = serde_json::from_slice(value).map_err(|e| format!("not a card: {e}"))?;
    if card.id.to_string() != id {
        return Err(format!("the card of {} is stored under {id}", card.id));
    }
    Ok(card)
}

//! The event relay: the store's outbox, in event id order, to a bus. One loop
//! ([`run`]) over a small trait per destination ([`Outlet`]): JetStream (`jetstream.rs`),
//! where the event id as message id makes a replayed event a dropped duplicate, and Redis
//! publish/subscribe (`redis.rs`), where it does not.

#[cfg(feature = "nats")]
mod jetstream;
#[cfg(feature = "redis")]
mod redis;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use xchange_store::{Event, Store};

use crate::backoff::Backoff;
use crate::error::MeshError;
use crate::names;

#[cfg(feature = "nats")]
pub use jetstream::JetStreamRelay;
#[cfg(feature = "redis")]
pub use redis::RedisRelay;

/// Events read from the store per batch.
const BATCH: u32 = 256;

/// How long the relay waits for a nudge before it looks at the store anyway.
const POLL: Duration = Duration::from_millis(200);

/// What a relay did since it started.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Events the destination took as new.
    pub published: AtomicU64,
    /// Events JetStream acknowledged as duplicates (already in the stream).
    pub duplicates: AtomicU64,
    /// Failed reads of the store and failed publishes, each followed by a retry.
    pub errors: AtomicU64,
    /// The id of the last event relayed (0 before the first).
    pub cursor: AtomicI64,
}

/// A running relay. Dropping it stops the relay; a new one resumes where it stopped.
#[derive(Debug)]
pub struct RelayHandle {
    task: JoinHandle<()>,
    stats: Arc<RelayStats>,
    nudge: Arc<Notify>,
}

impl RelayHandle {
    /// Tells the relay that new events were committed, so that it does not wait for its
    /// next poll. A nudge while it is busy is kept for when it is done.
    pub fn nudge(&self) {
        self.nudge.notify_one();
    }

    /// What the relay did so far.
    pub fn stats(&self) -> &RelayStats {
        &self.stats
    }
}

impl Drop for RelayHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A destination of the relay.
pub(crate) trait Outlet: Send + 'static {
    /// Gets the destination ready and returns the id of the last event it holds (0: none),
    /// where the relay resumes.
    fn resume(&mut self) -> impl Future<Output = Result<i64, MeshError>> + Send;

    /// Publishes `batch` (not empty, in id order), returning how many events were
    /// duplicates. An error means any part of the batch may have been published.
    fn publish(&mut self, batch: &[Event]) -> impl Future<Output = Result<u64, MeshError>> + Send;
}

/// Starts relaying `store`'s outbox to `outlet`.
pub(crate) fn spawn<S: Store, O: Outlet>(store: S, outlet: O) -> RelayHandle {
    let stats = Arc::new(RelayStats::default());
    let nudge = Arc::new(Notify::new());
    let task = tokio::spawn(run(store, outlet, stats.clone(), nudge.clone()));
    RelayHandle { task, stats, nudge }
}

async fn run<S: Store, O: Outlet>(store: S, mut outlet: O, stats: Arc<RelayStats>, nudge: Arc<Notify>) {
    let mut backoff = Backoff::new();
    let mut cursor = loop {
        match outlet.resume().await {
            Ok(cursor) => break cursor,
            Err(err) => failed(&stats, &mut backoff, &err, "resuming the event relay failed").await,
        }
    };
    backoff.reset();
    stats.cursor.store(cursor, Relaxed);
    tracing::debug!(cursor, "event relay resumed");
    loop {
        let batch = match store.events_after(cursor, BATCH).await {
            Ok(batch) => batch,
            Err(err) => {
                failed(&stats, &mut backoff, &err.into(), "reading the outbox failed").await;
                continue;
            }
        };
        let Some(last) = batch.last().map(|e| e.id) else {
            let _ = tokio::time::timeout(POLL, nudge.notified()).await;
            continue;
        };
        // The same batch until it is acknowledged: the cursor moves only past events the
        // destination holds.
        let duplicates = loop {
            match outlet.publish(&batch).await {
                Ok(duplicates) => break duplicates,
                Err(err) => failed(&stats, &mut backoff, &err, "publishing events failed").await,
            }
        };
        backoff.reset();
        cursor = last;
        stats.duplicates.fetch_add(duplicates, Relaxed);
        stats.published.fetch_add(batch.len() as u64 - duplicates, Relaxed);
        stats.cursor.store(cursor, Relaxed);
    }
}

async fn failed(stats: &RelayStats, backoff: &mut Backoff, err: &MeshError, what: &str) {
    stats.errors.fetch_add(1, Relaxed);
    tracing::warn!(error = %err, "{what}");
    backoff.wait().await;
}

/// The subject (or channel) and payload of `event`: the event as the HTTP event stream
/// shows it, under its task database (`payload.taskdb`, else `global`) and kind.
pub(crate) fn message(prefix: &str, event: &Event) -> (String, Bytes) {
    let taskdb = event.payload.get("taskdb").and_then(|t| t.as_str());
    let subject = names::event_subject(prefix, taskdb, &event.kind);
    let payload = json!({
        "id": event.id,
        "job_id": event.job_id,
        "kind": event.kind,
        "payload": event.payload,
        "at_ms": event.at_ms,
    });
    (subject, Bytes::from(payload.to_string()))
}

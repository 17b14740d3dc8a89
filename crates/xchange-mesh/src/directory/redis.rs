//! The directory in Redis: the card of agent `id` is the string key `{prefix}:agent:{id}`
//! set with `EX ttl`; watchers poll the keys (`SCAN`) every third of the time-to-live.
//!
//! Redis forgets an expired key and a deleted one alike, so a goodbye also sets
//! `{prefix}:left:{id}` for one time-to-live: a watcher that finds a card gone and that key
//! present reports 5003, else 5009. The marker cannot outlive a later card of the same
//! agent's and misreport its expiry: that card was set after the marker, with the same
//! time-to-live.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::aio::ConnectionManager;
use tokio::time::MissedTickBehavior;
use xchange_protocol::Code;
use xchange_runtime::Runtime;
use xchange_ws::{RemoteCard, SessionObserver};

use super::{CardHome, CardLease, DirectoryStats, DirectoryWatch, Roster, lease, offers, parse_card};
use crate::error::MeshError;
use crate::names;

/// Keys asked for per `SCAN` step and per `MGET`.
const BATCH: usize = 256;

/// Agent cards in Redis string keys `{prefix}:agent:{id}`.
#[derive(Clone)]
pub struct RedisDirectory {
    conn: ConnectionManager,
    prefix: Arc<str>,
    ttl: Duration,
}

impl RedisDirectory {
    /// A directory in the keys under `prefix` whose cards live for `ttl` (at least one
    /// second; Redis counts whole seconds, so a fraction is rounded up).
    pub fn new(conn: ConnectionManager, prefix: &str, ttl: Duration) -> Result<Self, MeshError> {
        names::check_prefix(prefix)?;
        names::check_ttl(ttl)?;
        Ok(Self { conn, prefix: prefix.into(), ttl })
    }

    /// Sets `card` now and renews it every third of the time-to-live until the lease is
    /// withdrawn or dropped.
    pub fn announce(&self, card: RemoteCard) -> CardLease {
        lease(self.clone(), &card, self.ttl / 3)
    }

    /// Attaches every live card to `runtime`, now and as they come, and detaches them as
    /// they go (5003 after a goodbye, else 5009), polling every third of the time-to-live.
    pub fn watch(&self, runtime: Runtime, observer: Option<Arc<dyn SessionObserver>>) -> DirectoryWatch {
        let stats = Arc::new(DirectoryStats::default());
        let roster = Roster::new(runtime, stats.clone(), observer);
        DirectoryWatch::new(tokio::spawn(run(self.clone(), roster)), stats)
    }

    /// The live cards that offer `capability` with a valid profile, by agent id.
    pub async fn lookup(&self, capability: &str) -> Result<Vec<RemoteCard>, MeshError> {
        let ids = self.ids().await?;
        let values = self.cards(ids.iter()).await?;
        let mut cards: Vec<RemoteCard> = ids
            .iter()
            .zip(values)
            .filter_map(|(id, value)| parse_card(id, &value?).ok())
            .filter(|card| offers(card, capability))
            .collect();
        cards.sort_by_key(|card| card.id.to_string());
        Ok(cards)
    }

    fn card_key(&self, id: &str) -> String {
        format!("{}{id}", names::card_key_start(&self.prefix))
    }

    fn ttl_secs(&self) -> u64 {
        self.ttl.as_secs() + u64::from(self.ttl.subsec_nanos() > 0)
    }

    /// The ids of every card key.
    async fn ids(&self) -> Result<HashSet<String>, MeshError> {
        let start = names::card_key_start(&self.prefix);
        let pattern = format!("{start}*");
        let mut conn = self.conn.clone();
        let mut ids = HashSet::new();
        let mut cursor = 0_u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(BATCH)
                .query_async(&mut conn)
                .await?;
            ids.extend(keys.iter().filter_map(|key| key.strip_prefix(&start)).map(str::to_owned));
            if next == 0 {
                return Ok(ids);
            }
            cursor = next;
        }
    }

    /// The card values of `ids`, in order; `None` for a card gone since it was listed.
    async fn cards<'a>(
        &self,
        ids: impl ExactSizeIterator<Item = &'a String>,
    ) -> Result<Vec<Option<Vec<u8>>>, MeshError> {
        let keys: Vec<String> = ids.map(|id| self.card_key(id)).collect();
        let mut conn = self.conn.clone();
        let mut values = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH) {
            let got: Vec<Option<Vec<u8>>> = redis::cmd("MGET").arg(chunk).query_async(&mut conn).await?;
            values.extend(got);
        }
        Ok(values)
    }

    /// Whether agent `id` said goodbye within the last time-to-live.
    async fn said_goodbye(&self, id: &str) -> Result<bool, MeshError> {
        let key = names::goodbye_key(&self.prefix, id);
        Ok(redis::cmd("EXISTS").arg(key).query_async(&mut self.conn.clone()).await?)
    }
}

impl CardHome for RedisDirectory {
    async fn put(&self, id: &str, card: Bytes) -> Result<(), MeshError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.card_key(id)).arg(card.as_ref()).arg("EX").arg(self.ttl_secs());
        Ok(cmd.query_async(&mut self.conn.clone()).await?)
    }

    async fn remove(&self, id: &str) -> Result<(), MeshError> {
        let mut pipe = redis::pipe();
        pipe.atomic().del(self.card_key(id)).ignore();
        pipe.set_ex(names::goodbye_key(&self.prefix, id), 1, self.ttl_secs()).ignore();
        Ok(pipe.query_async(&mut self.conn.clone()).await?)
    }
}

impl fmt::Debug for RedisDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisDirectory").field("prefix", &self.prefix).field("ttl", &self.ttl).finish()
    }
}

async fn run(dir: RedisDirectory, mut roster: Roster) {
    let mut tick = tokio::time::interval(dir.ttl / 3);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // A failed poll changes nothing: the next one sees the same keys, or their absence.
        if let Err(err) = poll(&dir, &mut roster).await {
            tracing::warn!(error = %err, prefix = %dir.prefix, "polling the agent cards failed");
        }
    }
}

/// Attaches the cards not known yet and detaches the agents whose card is gone. Known
/// cards are not read again: Redis expires them itself.
async fn poll(dir: &RedisDirectory, roster: &mut Roster) -> Result<(), MeshError> {
    let ids = dir.ids().await?;
    let new: Vec<&String> = ids.iter().filter(|id| !roster.knows(id)).collect();
    let values = dir.cards(new.iter().copied()).await?;
    for (id, value) in new.into_iter().zip(values) {
        if let Some(value) = value {
            roster.card(id, &value);
        }
    }
    for id in roster.missing(&ids) {
        let code =
            if dir.said_goodbye(&id).await? { Code::AgentDisconnected } else { Code::UnexpectedDisconnect };
        roster.left(&id, code);
    }
    Ok(())
}

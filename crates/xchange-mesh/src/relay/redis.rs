//! The relay to Redis publish/subscribe, with its cursor in the key `{prefix}:relay:cursor`.

use std::fmt;

use redis::aio::ConnectionManager;
use xchange_store::{Event, Store};

use super::{Outlet, RelayHandle, message, spawn};
use crate::error::MeshError;
use crate::names;

/// The relay of a store's outbox to Redis channels.
pub struct RedisRelay {
    conn: ConnectionManager,
    prefix: String,
    cursor_key: String,
}

impl RedisRelay {
    /// Starts PUBLISHing `store`'s events on the channels `{prefix}.events.{taskdb}.{kind}`,
    /// from the event after the id in `{prefix}:relay:cursor`, which moves with every
    /// batch. Fails only for an invalid prefix: Redis errors are retried (see
    /// [`RelayStats::errors`](crate::RelayStats::errors)).
    ///
    /// Publish/subscribe keeps nothing: subscribers get the events published while they
    /// listen, and a batch retried after an error may reach them twice.
    pub fn start<S: Store>(
        conn: ConnectionManager,
        prefix: &str,
        store: S,
    ) -> Result<RelayHandle, MeshError> {
        names::check_prefix(prefix)?;
        let cursor_key = names::relay_cursor_key(prefix);
        Ok(spawn(store, Self { conn, prefix: prefix.to_owned(), cursor_key }))
    }
}

impl Outlet for RedisRelay {
    async fn resume(&mut self) -> Result<i64, MeshError> {
        let cursor: Option<i64> = redis::cmd("GET").arg(&self.cursor_key).query_async(&mut self.conn).await?;
        Ok(cursor.unwrap_or(0))
    }

    async fn publish(&mut self, batch: &[Event]) -> Result<u64, MeshError> {
        // One transaction: the cursor moves exactly when the batch went out.
        let mut pipe = redis::pipe();
        pipe.atomic();
        for event in batch {
            let (channel, payload) = message(&self.prefix, event);
            pipe.publish(channel, payload.as_ref()).ignore();
        }
        if let Some(last) = batch.last() {
            pipe.set(&self.cursor_key, last.id).ignore();
        }
        let () = pipe.query_async(&mut self.conn).await?;
        Ok(0)
    }
}

impl fmt::Debug for RedisRelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRelay").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

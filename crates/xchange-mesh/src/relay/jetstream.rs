//! The relay to the JetStream stream `{PREFIX}_EVENTS`, each event with its id as
//! `Nats-Msg-Id`.

use std::fmt;
use std::time::Duration;

use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{Config, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, Context};
use xchange_store::{Event, Store};

use super::{Outlet, RelayHandle, message, spawn};
use crate::error::MeshError;
use crate::names;

/// How long JetStream remembers a message id: a relay that restarts within it may replay
/// its last batch without a copy reaching the stream.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// How long the stream keeps events: consumers that were away longer read from the store.
const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// The relay of a store's outbox to JetStream.
pub struct JetStreamRelay {
    js: Context,
    prefix: String,
}

impl JetStreamRelay {
    /// Starts relaying `store`'s events to the stream `{PREFIX}_EVENTS` (created if
    /// missing: subjects `{prefix}.events.>`, file storage, 2 min duplicate window, kept
    /// 24 h) on `{prefix}.events.{taskdb}.{kind}`, from the event after the one whose id
    /// the stream's last message carries. Fails only for an invalid prefix: NATS errors are
    /// retried (see [`RelayStats::errors`](crate::RelayStats::errors)).
    pub fn start<S: Store>(
        client: async_nats::Client,
        prefix: &str,
        store: S,
    ) -> Result<RelayHandle, MeshError> {
        names::check_prefix(prefix)?;
        Ok(spawn(store, Self { js: jetstream::new(client), prefix: prefix.to_owned() }))
    }
}

impl Outlet for JetStreamRelay {
    async fn resume(&mut self) -> Result<i64, MeshError> {
        let config = Config {
            name: names::events_stream(&self.prefix),
            subjects: vec![names::events_subjects(&self.prefix)],
            retention: RetentionPolicy::Limits,
            storage: StorageType::File,
            duplicate_window: DUPLICATE_WINDOW,
            max_age: MAX_AGE,
            ..Config::default()
        };
        let stream = self.js.get_or_create_stream(config).await.map_err(MeshError::nats)?;
        let state = &stream.cached_info().state;
        if state.messages == 0 {
            // Never written, or every event aged out: then the relay starts over from the
            // first event still in the store (consumers see old events again rather than
            // missing any that were never relayed).
            return Ok(0);
        }
        let last = stream.get_raw_message(state.last_sequence).await.map_err(MeshError::nats)?;
        let id = last.headers.get(NATS_MESSAGE_ID).and_then(|id| id.as_str().parse::<i64>().ok());
        Ok(id.unwrap_or_else(|| {
            tracing::warn!(stream = %stream.cached_info().config.name, sequence = state.last_sequence,
                "the last event in the stream has no event id; relaying from the first event");
            0
        }))
    }

    async fn publish(&mut self, batch: &[Event]) -> Result<u64, MeshError> {
        // Everything goes out before any acknowledgement is awaited: one round trip per
        // batch, not per event.
        let mut acks = Vec::with_capacity(batch.len());
        for event in batch {
            let (subject, payload) = message(&self.prefix, event);
            let msg = PublishMessage::build().payload(payload).message_id(event.id.to_string());
            acks.push(self.js.send_publish(subject, msg).await.map_err(MeshError::nats)?);
        }
        let mut duplicates = 0;
        for ack in acks {
            duplicates += u64::from(ack.await.map_err(MeshError::nats)?.duplicate);
        }
        Ok(duplicates)
    }
}

impl fmt::Debug for JetStreamRelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JetStreamRelay").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

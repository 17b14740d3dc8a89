//! The Redis link: publish/subscribe on plain channels over one RESP3 connection, which
//! carries both the publications (pipelined per batch) and the pushed messages. The
//! connection manager reconnects and subscribes again by itself; what Redis dropped
//! meanwhile is gone, and the engines' timeouts recover it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{PushInfo, PushKind, Value};

use super::{Core, Link, NetBus, NetOptions};
use crate::types::{BusError, Topic};

fn transport(e: impl std::fmt::Display) -> BusError {
    BusError::Transport(e.to_string())
}

type Channels = Arc<RwLock<HashMap<Vec<u8>, Topic>>>;

pub(crate) struct RedisLink {
    conn: ConnectionManager,
    channels: Channels,
    by_topic: HashMap<Topic, String>,
}

impl Link for RedisLink {
    async fn publish(&mut self, batch: &mut Vec<(String, Bytes)>) -> Result<(), BusError> {
        let mut pipe = redis::pipe();
        for (channel, payload) in batch.drain(..) {
            pipe.publish(channel, payload.as_ref()).ignore();
        }
        pipe.query_async::<()>(&mut self.conn).await.map_err(transport)
    }

    async fn subscribe(&mut self, topic: Topic, subject: String) -> Result<(), BusError> {
        self.channels.write().insert(subject.clone().into_bytes(), topic.clone());
        self.conn.subscribe(&subject).await.map_err(transport)?;
        self.by_topic.insert(topic, subject);
        Ok(())
    }

    async fn unsubscribe(&mut self, topic: &Topic) -> Result<(), BusError> {
        let Some(channel) = self.by_topic.remove(topic) else { return Ok(()) };
        self.channels.write().remove(channel.as_bytes());
        self.conn.unsubscribe(&channel).await.map_err(transport)
    }

    async fn flush(&mut self) -> Result<(), BusError> {
        // Every command above awaited its reply: nothing is left in flight.
        Ok(())
    }
}

/// Handles one push from the server, on the connection's reader task.
fn on_push(core: &Core, channels: &Channels, push: PushInfo) {
    match push.kind {
        PushKind::Message => {
            let [Value::BulkString(channel), Value::BulkString(payload)] = &push.data[..] else {
                tracing::debug!(?push, "unexpected message push");
                return;
            };
            let topic = channels.read().get(channel).cloned();
            match topic {
                Some(topic) => core.receive(&topic, None, payload),
                None => core.stats.dropped(1),
            }
        }
        PushKind::Disconnection => {
            tracing::warn!("redis connection lost; reconnecting");
            core.stats.disconnected();
        }
        _ => {}
    }
}

impl NetBus {
    /// Connects to Redis at `url` (`redis://host:port[/db]`; RESP3 is switched on) and
    /// starts a bus over it. Must be called within a tokio runtime.
    pub async fn redis(url: &str, options: NetOptions) -> Result<Self, BusError> {
        let core = Self::core(&options, false)?;
        let channels = Channels::default();
        let (push_core, push_channels) = (core.clone(), channels.clone());
        let config = ConnectionManagerConfig::new().set_automatic_resubscription().set_push_sender(
            move |push: PushInfo| {
                on_push(&push_core, &push_channels, push);
                Ok::<(), Infallible>(())
            },
        );
        let url = with_resp3(url);
        let client = redis::Client::open(url.as_str()).map_err(transport)?;
        let conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(|e| BusError::Transport(format!("cannot connect to Redis at {url}: {e}")))?;
        let link = RedisLink { conn, channels, by_topic: HashMap::new() };
        Ok(Self::start(core, link))
    }
}

fn with_resp3(url: &str) -> String {
    if url.contains("protocol=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    }
}

//! The NATS link: core NATS subjects, one subscription per topic, the sender's id as the
//! subject's last token. The client reconnects by itself and renews its subscriptions;
//! what it drops because a subscription fell behind is counted (slow consumer), and the
//! engines' timeouts recover the conversations those messages belonged to.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::task::JoinHandle;

use super::{Core, Link, NetBus, NetOptions};
use crate::types::{BusError, Topic};

/// Messages a subscription may hold before NATS drops the overflow as a slow consumer.
const SUBSCRIPTION_CAPACITY: usize = 64 * 1024;

fn transport(e: impl std::fmt::Display) -> BusError {
    BusError::Transport(e.to_string())
}

pub(crate) struct NatsLink {
    client: async_nats::Client,
    core: Arc<Core>,
    subs: HashMap<Topic, JoinHandle<()>>,
}

impl Link for NatsLink {
    async fn publish(&mut self, batch: &mut Vec<(String, Bytes)>) -> Result<(), BusError> {
        for (subject, payload) in batch.drain(..) {
            self.client.publish(subject, payload).await.map_err(transport)?;
        }
        Ok(())
    }

    async fn subscribe(&mut self, topic: Topic, subject: String) -> Result<(), BusError> {
        let mut sub = self.client.subscribe(subject).await.map_err(transport)?;
        let (core, key) = (self.core.clone(), topic.clone());
        let task = tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                core.receive(&key, m.subject.rsplit('.').next(), &m.payload);
            }
        });
        if let Some(old) = self.subs.insert(topic, task) {
            old.abort();
        }
        Ok(())
    }

    async fn unsubscribe(&mut self, topic: &Topic) -> Result<(), BusError> {
        // Dropping the subscriber (with its task) sends the UNSUB.
        if let Some(task) = self.subs.remove(topic) {
            task.abort();
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), BusError> {
        self.client.flush().await.map_err(transport)
    }
}

impl Drop for NatsLink {
    fn drop(&mut self) {
        for task in self.subs.values() {
            task.abort();
        }
    }
}

impl NetBus {
    /// Connects to the NATS server at `url` (`nats://host:port`) and starts a bus over it.
    /// Also returns the client, for the directory and the event relay to share the
    /// connection. Must be called within a tokio runtime.
    pub async fn nats(url: &str, options: NetOptions) -> Result<(Self, async_nats::Client), BusError> {
        let core = Self::core(&options, true)?;
        let events = core.clone();
        let mut connect = async_nats::ConnectOptions::new();
        if let Some(seed) = &options.nkey_seed {
            connect = connect.nkey(seed.clone());
        }
        let client = connect
            .name("xchange")
            .max_reconnects(None)
            .subscription_capacity(SUBSCRIPTION_CAPACITY)
            .event_callback(move |event| {
                let core = events.clone();
                async move {
                    match event {
                        async_nats::Event::SlowConsumer(_) => core.stats.overflowed(),
                        async_nats::Event::Disconnected => {
                            tracing::warn!("nats connection lost; reconnecting");
                            core.stats.disconnected();
                        }
                        async_nats::Event::Connected => tracing::info!("nats connected"),
                        other => tracing::debug!(event = %other, "nats event"),
                    }
                }
            })
            .connect(url)
            .await
            .map_err(|e| BusError::Transport(format!("cannot connect to NATS at {url}: {e}")))?;
        let link = NatsLink { client: client.clone(), core: core.clone(), subs: HashMap::new() };
        Ok((Self::start(core, link), client))
    }
}

//! Buses between processes. [`NetBus`] is everything a network bus does besides moving
//! bytes: subject names, one transport subscription per topic however many local inboxes
//! share it, the edge checks on every message received, replay memory, counters, and one
//! writer task that keeps publications and subscription changes in the order they were
//! made. A [`Link`] (NATS, Redis) only moves bytes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, oneshot};
use xchange_protocol::{AgentId, Code, EdgeLimits, Envelope, Recipient, Refusal, is_valid_name};

use crate::counters::{BusCounters, Stats};
use crate::replay::ReplayGuard;
use crate::types::{BusError, Inbox, SubscriptionId, Topic};
use crate::{Bus, MsClock};

#[cfg(feature = "nats")]
pub(crate) mod nats;
#[cfg(feature = "redis")]
pub(crate) mod redis;

/// The prefix names start with when none is given.
pub const DEFAULT_PREFIX: &str = "aixp";

/// Settings every network bus takes.
#[derive(Clone)]
pub struct NetOptions {
    /// First token of every subject or channel; lets several exchanges (or test runs)
    /// share one server. 1-64 of `[A-Za-z0-9_-]`.
    pub prefix: String,
    /// Checks on every message received; signatures are required by default, since a
    /// network bus crosses a trust boundary.
    pub limits: EdgeLimits,
    /// The clock expiry is checked against.
    pub clock: MsClock,
    /// Signed messages remembered at once for replay checks.
    pub replay_capacity: usize,
    /// Messages each sender may send to this bus's subscriptions; more are refused (5005,
    /// counted). None: no limit (an agent must take what its managers send).
    pub sender_rate: Option<crate::RateLimit>,
    /// A NATS nkey seed (`SU...`) to authenticate with, for a server that has one user
    /// per agent (see `xchange_mesh::BusAccess`); ignored by Redis.
    pub nkey_seed: Option<String>,
}

impl NetOptions {
    /// Defaults with `prefix`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            limits: EdgeLimits::default(),
            clock: crate::system_ms_clock(),
            replay_capacity: 1 << 20,
            sender_rate: None,
            nkey_seed: None,
        }
    }

    fn validate(&self) -> Result<(), BusError> {
        if is_valid_name(&self.prefix) {
            Ok(())
        } else {
            Err(BusError::InvalidTopic {
                topic: self.prefix.clone(),
                reason: "the prefix must be 1-64 of [A-Za-z0-9_-]".into(),
            })
        }
    }
}

impl Default for NetOptions {
    fn default() -> Self {
        Self::new(DEFAULT_PREFIX)
    }
}

/// How a transport names things (docs/protocol.md, "Subjects and channels").
#[derive(Debug, Clone)]
pub(crate) struct Naming {
    prefix: String,
    /// NATS subjects end with the sender's id, so that broker permissions can say who may
    /// publish what; Redis channels end at the recipient.
    sender_token: bool,
}

impl Naming {
    /// Where `msg` is published.
    pub(crate) fn publish_subject(&self, msg: &Envelope) -> String {
        use std::fmt::Write as _;
        // One allocation per message: this runs for every message published.
        let mut s = String::with_capacity(self.prefix.len() + 128);
        let _ = match &msg.to {
            Recipient::Agent(a) => write!(s, "{}.agent.{a}", self.prefix),
            Recipient::Pool { pool, capability } => write!(s, "{}.pool.{pool}.{capability}", self.prefix),
        };
        if self.sender_token {
            let _ = write!(s, ".{}", msg.from);
        }
        s
    }

    /// What a subscription to `topic` listens on.
    pub(crate) fn subscribe_subject(&self, topic: &Topic) -> String {
        let base = match topic {
            Topic::Agent(a) => format!("{}.agent.{a}", self.prefix),
            Topic::Pool { pool, capability } => format!("{}.pool.{pool}.{capability}", self.prefix),
        };
        if self.sender_token { base + ".*" } else { base }
    }
}

/// Moves bytes for a [`NetBus`]. Called from the bus's one writer task, in order.
pub(crate) trait Link: Send + 'static {
    /// Publishes every `(subject, payload)` of `batch`, in order, and empties it.
    fn publish(
        &mut self,
        batch: &mut Vec<(String, Bytes)>,
    ) -> impl Future<Output = Result<(), BusError>> + Send;

    /// Starts delivering `topic`'s traffic to `core`; effective for every message published
    /// through this link afterwards.
    fn subscribe(
        &mut self,
        topic: Topic,
        subject: String,
    ) -> impl Future<Output = Result<(), BusError>> + Send;

    /// Stops delivering `topic`'s traffic.
    fn unsubscribe(&mut self, topic: &Topic) -> impl Future<Output = Result<(), BusError>> + Send;

    /// Returns once everything handed over so far reached the server.
    fn flush(&mut self) -> impl Future<Output = Result<(), BusError>> + Send;
}

enum Cmd {
    Publish(String, Bytes),
    Subscribe(Topic, String),
    Unsubscribe(Topic),
    Flush(oneshot::Sender<Result<(), BusError>>),
}

/// What the writer task and the receiving side share with the bus handle.
pub(crate) struct Core {
    naming: Naming,
    limits: EdgeLimits,
    clock: MsClock,
    replay: ReplayGuard,
    rates: Option<crate::SenderRates>,
    pub(crate) stats: Stats,
    routes: RwLock<HashMap<Topic, Vec<(u64, Inbox)>>>,
    topics: Mutex<HashMap<u64, Topic>>,
    next_id: AtomicU64,
}

impl Core {
    /// Checks one message taken from the transport and hands it to the local inboxes of
    /// `topic`. `sender` is the sender named by the subject, where the transport names it.
    /// Nothing here panics on bad input: a refused message is logged and counted.
    pub(crate) fn receive(&self, topic: &Topic, sender: Option<&str>, bytes: &[u8]) {
        let now = (self.clock)();
        let checked = self.check(topic, sender, bytes, now);
        let msg = match checked {
            Ok(env) => Arc::new(env),
            Err(refusal) => {
                tracing::debug!(code = refusal.code.number(), reason = %refusal.reason, %topic, "message refused at the edge");
                self.stats.refused(refusal.code);
                return;
            }
        };
        let kind = msg.kind();
        let routes = self.routes.read();
        let Some(inboxes) = routes.get(topic) else {
            drop(routes);
            self.stats.dropped(1);
            return;
        };
        let (mut delivered, mut dead) = (0, 0);
        for (_, inbox) in inboxes {
            if inbox.deliver(msg.clone()) {
                delivered += 1;
            } else {
                dead += 1;
            }
        }
        drop(routes);
        if delivered > 0 {
            self.stats.delivered(kind, delivered);
        }
        if dead > 0 {
            self.stats.dropped(dead);
        }
    }

    fn check(
        &self,
        topic: &Topic,
        sender: Option<&str>,
        bytes: &[u8],
        now: u64,
    ) -> Result<Envelope, Refusal> {
        let recipient = match topic {
            Topic::Agent(a) => Some(*a),
            Topic::Pool { .. } => None,
        };
        let env = xchange_protocol::decode(bytes, now, recipient, &self.limits)?;
        if Topic::of(&env.to) != *topic {
            return Err(Refusal::new(Code::Forbidden, format!("message to {} arrived on {topic}", env.to)));
        }
        if let Some(sender) = sender
            && sender.parse::<AgentId>().ok() != Some(env.from)
        {
            return Err(Refusal::new(
                Code::Forbidden,
                format!("message from {} was published as {sender:.60}", env.from),
            ));
        }
        if let Some(rates) = &self.rates {
            rates.admit(env.from).map_err(|over| over.refusal)?;
        }
        self.replay.admit(&env, now)?;
        Ok(env)
    }
}

/// A bus over a network transport; see the module docs. Dropping every handle stops its
/// writer task (the transport's own tasks stop with their connection).
pub struct NetBus {
    core: Arc<Core>,
    cmds: mpsc::UnboundedSender<Cmd>,
}

impl NetBus {
    /// Starts the writer task for `link` on the current tokio runtime.
    pub(crate) fn start<L: Link>(core: Arc<Core>, link: L) -> Self {
        let (cmds, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_loop(link, rx));
        Self { core, cmds }
    }

    pub(crate) fn core(options: &NetOptions, sender_token: bool) -> Result<Arc<Core>, BusError> {
        options.validate()?;
        Ok(Arc::new(Core {
            naming: Naming { prefix: options.prefix.clone(), sender_token },
            limits: options.limits.clone(),
            clock: options.clock.clone(),
            replay: ReplayGuard::new(options.replay_capacity),
            rates: options.sender_rate.map(crate::SenderRates::new),
            stats: Stats::default(),
            routes: RwLock::default(),
            topics: Mutex::default(),
            next_id: AtomicU64::new(1),
        }))
    }

    /// Returns once every message published and every subscription made before the call
    /// reached the server: after it, other processes' publications reach this bus's
    /// subscriptions (announce an agent only after its subscriptions are flushed).
    pub async fn flush(&self) -> Result<(), BusError> {
        let (tx, rx) = oneshot::channel();
        self.cmds.send(Cmd::Flush(tx)).map_err(|_| BusError::Closed)?;
        rx.await.map_err(|_| BusError::Closed)?
    }

    /// The subject or channel prefix.
    pub fn prefix(&self) -> &str {
        &self.core.naming.prefix
    }
}

async fn write_loop<L: Link>(mut link: L, mut rx: mpsc::UnboundedReceiver<Cmd>) {
    const BATCH: usize = 512;
    let mut cmds = Vec::with_capacity(BATCH);
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut cmds, BATCH).await > 0 {
        for cmd in cmds.drain(..) {
            let done = match cmd {
                Cmd::Publish(subject, payload) => {
                    batch.push((subject, payload));
                    continue;
                }
                Cmd::Subscribe(topic, subject) => {
                    publish_all(&mut link, &mut batch).await;
                    link.subscribe(topic, subject).await
                }
                Cmd::Unsubscribe(topic) => {
                    publish_all(&mut link, &mut batch).await;
                    link.unsubscribe(&topic).await
                }
                Cmd::Flush(ack) => {
                    publish_all(&mut link, &mut batch).await;
                    let _ = ack.send(link.flush().await);
                    Ok(())
                }
            };
            if let Err(e) = done {
                tracing::warn!(error = %e, "bus subscription change failed");
            }
        }
        publish_all(&mut link, &mut batch).await;
    }
}

async fn publish_all<L: Link>(link: &mut L, batch: &mut Vec<(String, Bytes)>) {
    if batch.is_empty() {
        return;
    }
    if let Err(e) = link.publish(batch).await {
        // What could not be handed over is lost like a message on a dead connection; the
        // engines' timeouts recover the conversations it belonged to.
        tracing::warn!(error = %e, lost = batch.len(), "bus publish failed");
        batch.clear();
    }
}

impl Bus for NetBus {
    fn publish(&self, msg: Arc<Envelope>) -> Result<(), BusError> {
        let payload = xchange_protocol::encode(&msg);
        self.core.stats.encoded(payload.len());
        let subject = self.core.naming.publish_subject(&msg);
        self.cmds.send(Cmd::Publish(subject, Bytes::from(payload))).map_err(|_| BusError::Closed)
    }

    fn subscribe(&self, topic: Topic, inbox: Inbox) -> Result<SubscriptionId, BusError> {
        topic.check()?;
        let id = self.core.next_id.fetch_add(1, Relaxed);
        self.core.topics.lock().insert(id, topic.clone());
        let mut routes = self.core.routes.write();
        let inboxes = routes.entry(topic.clone()).or_default();
        inboxes.push((id, inbox));
        if inboxes.len() == 1 {
            // Sent under the routes lock, so that subscription changes of one topic reach
            // the writer in the order the routes saw them.
            let subject = self.core.naming.subscribe_subject(&topic);
            self.cmds.send(Cmd::Subscribe(topic, subject)).map_err(|_| BusError::Closed)?;
        }
        Ok(SubscriptionId(id))
    }

    fn unsubscribe(&self, id: SubscriptionId) -> Result<(), BusError> {
        let Some(topic) = self.core.topics.lock().remove(&id.0) else {
            return Ok(());
        };
        let mut routes = self.core.routes.write();
        if let Some(inboxes) = routes.get_mut(&topic) {
            inboxes.retain(|(i, _)| *i != id.0);
            if inboxes.is_empty() {
                routes.remove(&topic);
                self.cmds.send(Cmd::Unsubscribe(topic)).map_err(|_| BusError::Closed)?;
            }
        }
        Ok(())
    }

    fn counters(&self) -> BusCounters {
        self.core.stats.snapshot()
    }

    fn wants_signatures(&self) -> bool {
        self.core.limits.require_signatures
    }

    fn counts_unrouted(&self) -> bool {
        false
    }
}

impl std::fmt::Debug for NetBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetBus").field("prefix", &self.core.naming.prefix).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;

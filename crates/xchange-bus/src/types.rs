//! The vocabulary shared by every bus: topics, inboxes, deliveries, errors.

use std::fmt;
use std::sync::Arc;

use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use xchange_protocol::{AgentId, Envelope, GLOBAL_POOL, Recipient, is_valid_name};

/// What a subscriber listens to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Messages addressed to one agent.
    Agent(AgentId),
    /// Messages addressed to a pool subject: every agent offering `capability` in `pool`.
    Pool {
        /// The pool (task database).
        pool: Arc<str>,
        /// The capability.
        capability: Arc<str>,
    },
}

impl Topic {
    /// The pool topic for `capability` in `pool`.
    pub fn pool(pool: impl Into<Arc<str>>, capability: impl Into<Arc<str>>) -> Self {
        Self::Pool { pool: pool.into(), capability: capability.into() }
    }

    /// The pool topic for `capability` in the global pool.
    pub fn global(capability: impl Into<Arc<str>>) -> Self {
        Self::pool(GLOBAL_POOL, capability)
    }

    /// Refuses a pool topic whose names are not subject tokens (1-64 of `[A-Za-z0-9_-]`):
    /// every bus keys pool subscriptions by them.
    pub fn check(&self) -> Result<(), BusError> {
        if let Self::Pool { pool, capability } = self {
            for name in [pool, capability] {
                if !is_valid_name(name) {
                    return Err(BusError::InvalidTopic {
                        topic: self.to_string(),
                        reason: format!("{name:?} is not 1-64 of [A-Za-z0-9_-]"),
                    });
                }
            }
        }
        Ok(())
    }

    /// The topic a message addressed to `to` is published on.
    pub fn of(to: &Recipient) -> Self {
        match to {
            Recipient::Agent(a) => Self::Agent(*a),
            Recipient::Pool { pool, capability } => {
                Self::Pool { pool: pool.clone(), capability: capability.clone() }
            }
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Agent(a) => fmt::Display::fmt(a, f),
            Self::Pool { pool, capability } => write!(f, "pool.{pool}.{capability}"),
        }
    }
}

/// One copy of a message handed to one subscriber.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The token of the inbox it was delivered to: lets one receiver that hosts many agents
    /// (a runtime shard) tell which of them the copy is for.
    pub token: u32,
    /// The message, shared by every copy of a broadcast.
    pub msg: Arc<Envelope>,
}

/// Where a bus hands deliveries over.
///
/// Implemented for every `UnboundedSender<T>` with `T: From<Delivery>`, so that a receiver
/// can merge deliveries into the one queue it already drains (commands, completions, …)
/// instead of polling a second channel.
pub trait DeliverySink: Send + Sync + 'static {
    /// Hands `delivery` over; `false` when the receiving side is gone.
    fn deliver(&self, delivery: Delivery) -> bool;
}

impl<T> DeliverySink for UnboundedSender<T>
where
    T: From<Delivery> + Send + 'static,
{
    fn deliver(&self, delivery: Delivery) -> bool {
        self.send(T::from(delivery)).is_ok()
    }
}

/// A subscriber's inbox: a clonable, non-blocking sender plus the token stamped on every
/// delivery made through it.
#[derive(Clone)]
pub struct Inbox {
    sink: Arc<dyn DeliverySink>,
    token: u32,
}

impl Inbox {
    /// An inbox that sends into `tx`.
    pub fn new(tx: UnboundedSender<Delivery>, token: u32) -> Self {
        Self { sink: Arc::new(tx), token }
    }

    /// An inbox over any sink; share one `Arc` between the many inboxes of one receiver.
    pub fn from_sink(sink: Arc<dyn DeliverySink>, token: u32) -> Self {
        Self { sink, token }
    }

    /// A fresh unbounded channel and the inbox that feeds it.
    pub fn channel(token: u32) -> (Self, UnboundedReceiver<Delivery>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self::new(tx, token), rx)
    }

    /// The token stamped on deliveries.
    pub fn token(&self) -> u32 {
        self.token
    }

    /// The sink behind the inbox (the bus's routing table keeps an agent's inbox in parts).
    pub(crate) fn sink(&self) -> &dyn DeliverySink {
        &*self.sink
    }

    pub(crate) fn into_parts(self) -> (Arc<dyn DeliverySink>, u32) {
        (self.sink, self.token)
    }

    /// Delivers `msg`; `false` when the receiver is gone.
    pub fn deliver(&self, msg: Arc<Envelope>) -> bool {
        self.sink.deliver(Delivery { token: self.token, msg })
    }
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbox").field("token", &self.token).finish_non_exhaustive()
    }
}

/// Names one subscription, for [`crate::Bus::unsubscribe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubscriptionId(pub u64);

/// Why a bus operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// The bus was shut down.
    #[error("bus is closed")]
    Closed,
    /// The topic cannot be subscribed to (for example a name that is not a subject token).
    #[error("invalid topic {topic}: {reason}")]
    InvalidTopic {
        /// The topic, in text form.
        topic: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The transport failed (network buses).
    #[error("bus transport failed: {0}")]
    Transport(String),
}

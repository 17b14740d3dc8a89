//! The message bus of Xchange: how AIXP envelopes travel between agents.
//!
//! - [`Bus`] is the transport-neutral interface: [`Bus::publish`] routes a message by its
//!   recipient (one agent's inbox, or every subscriber of a pool subject), [`Bus::subscribe`]
//!   hands a [`Topic`]'s traffic to an [`Inbox`], [`Bus::counters`] tells what crossed it.
//!   Publishing to a topic nobody listens to is not an error: the message is counted as
//!   dropped, like a NATS publish without subscribers.
//! - [`Inbox`] is a clonable, non-blocking sender with a token; every [`Delivery`] carries
//!   the token so that one receiver hosting many agents (a runtime shard) knows which agent
//!   a copy is for. Network buses forward from their subscriptions into the same inboxes.
//! - [`InProcBus`] is the embedded default: a striped routing table, atomics for counters,
//!   and [`EdgeMode`] to choose between passing `Arc`s (`Direct`) and making every message
//!   cross the wire format and the edge checks (`Encode`).
//! - [`BusCounters`] counts every delivered copy (a broadcast to N subscribers counts N), so
//!   per-task message counts compare with the FIPA formulas (3N+1 broadcast, 3d+1 sampled).
//! - [`NetBus`] (features `nats`, `redis`) is the bus between processes: subjects per
//!   docs/protocol.md, edge checks and replay memory on every message received
//!   ([`ReplayGuard`]) and, if set, a message rate per sender ([`SenderRates`]), one writer
//!   task per bus; `net/nats.rs` and `net/redis.rs` only move
//!   bytes.
//! - `bus_conformance_suite!` (feature `testsuite`) is the one test suite every
//!   implementation runs: in-process here, and over the real NATS and Redis servers.
//!
//! Depends on the protocol crate, tokio and (behind their features) the NATS and Redis
//! clients; it must not depend on the engine (`xchange-core`), the runtime or any store.

mod counters;
mod edge;
mod inproc;
#[cfg(any(feature = "nats", feature = "redis"))]
mod net;
mod rate;
mod replay;
mod route_table;
#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;
mod types;

use std::sync::Arc;

use xchange_protocol::Envelope;

pub use counters::{BusCounters, KINDS};
pub use edge::EdgeMode;
pub use inproc::{InProcBus, InProcBusBuilder};
#[cfg(any(feature = "nats", feature = "redis"))]
pub use net::{DEFAULT_PREFIX, NetBus, NetOptions};
pub use rate::{OverRate, RateLimit, SenderRates};
pub use replay::ReplayGuard;
pub use types::{BusError, Delivery, DeliverySink, Inbox, SubscriptionId, Topic};

/// A clock in unix milliseconds, for the edge checks (expiry); tests pass their own.
pub type MsClock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock in unix milliseconds.
pub fn system_ms_clock() -> MsClock {
    Arc::new(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    })
}

/// A message bus. Object safe: hosts hold an `Arc<dyn Bus>`.
pub trait Bus: Send + Sync + 'static {
    /// Routes `msg` by `msg.to`: to the inboxes subscribed to that agent, or to every
    /// subscriber of the pool subject. No subscriber is not an error (counted as dropped);
    /// neither is a message refused at the edge (counted under its code).
    fn publish(&self, msg: Arc<Envelope>) -> Result<(), BusError>;

    /// Delivers `topic`'s traffic to `inbox` from now on.
    fn subscribe(&self, topic: Topic, inbox: Inbox) -> Result<SubscriptionId, BusError>;

    /// Stops a subscription. Unknown or already removed ids are ignored.
    fn unsubscribe(&self, id: SubscriptionId) -> Result<(), BusError>;

    /// What the bus did so far.
    fn counters(&self) -> BusCounters;

    /// Whether senders must sign the kinds that create obligations (the bus crosses a trust
    /// boundary and checks signatures).
    fn wants_signatures(&self) -> bool {
        false
    }

    /// Whether a message that reaches no subscriber anywhere is counted as dropped. A
    /// network bus cannot know (another process may have taken it); it counts only the
    /// copies for its own closed inboxes.
    fn counts_unrouted(&self) -> bool {
        true
    }
}

//! Agents and events beyond one process, over NATS and Redis: the card directory and the
//! event relay (docs/protocol.md, "Subjects and channels").
//!
//! - **Directory** (discovery without a node). An agent announces its card
//!   ([`xchange_ws::RemoteCard`]) with a time-to-live and renews it every third of that
//!   ([`CardLease`]); withdrawing the lease says goodbye, dropping it lets the card expire.
//!   A watcher ([`DirectoryWatch`]) attaches every live card to a [`xchange_runtime::Runtime`],
//!   so that the managers it hosts offer work to agents hosted anywhere, and detaches them
//!   as they leave: 5003 after a goodbye, 5009 when the card expired. `lookup` lists the
//!   live cards offering a capability. Two backends with the same operations:
//!   [`NatsDirectory`] (key-value bucket `{prefix}_agents`) and [`RedisDirectory`] (keys
//!   `{prefix}:agent:{id}` with `EX`).
//! - **Event relay.** A task reads the store's outbox ([`xchange_store::Store::events_after`])
//!   in id order and publishes each event on `{prefix}.events.{taskdb}.{kind}`, moving its
//!   cursor only past what the destination acknowledged: [`JetStreamRelay`] (stream
//!   `{PREFIX}_EVENTS`, event id as `Nats-Msg-Id`, so a replay is dropped as a duplicate;
//!   resumes from the stream's last message) and [`RedisRelay`] (PUBLISH, cursor in
//!   `{prefix}:relay:cursor`). [`RelayHandle::nudge`] wakes it when events were committed.
//!
//! - **Shared registry** (federation, NATS only). [`SharedRegistry`]: each node puts the
//!   task databases it owns in the bucket `{prefix}_registry` with the URL it serves them
//!   at, and keeps a copy of every node's entries.
//!
//! - **Access** (NATS only). [`BusAccess`] writes the nats-server `authorization` block:
//!   an nkey user per node and per agent (the agent's AIXP key, [`nkey_user`]), agents
//!   limited to their own subjects and kept from private task databases' events.
//!
//! Everything runs in spawned tasks that retry failed requests (with a backoff where they
//! would otherwise spin) and count what they did ([`DirectoryStats`], [`RelayStats`]);
//! their handles stop them when dropped. [`MeshError`] is the one error type.
//!
//! # Layout
//!
//! `directory/`: the lease and the stats (`mod.rs`), the attach/detach bookkeeping both
//! watchers share (`roster.rs`), one file per backend. `relay/`: the loop and the stats
//! (`mod.rs`) over a small trait per destination, one file per backend. `names.rs`: every
//! bucket, stream, subject and key name. Backends sit behind the features `nats` and
//! `redis` (both on by default).
//!
//! # Dependencies
//!
//! The runtime (to attach remote agents), the WebSocket crate for the card type, the store
//! trait (the outbox), the protocol, async-nats and redis. It must not depend on an HTTP
//! framework or on the node: the node starts these tasks, not the other way round.

#[cfg(not(any(feature = "nats", feature = "redis")))]
compile_error!("xchange-mesh needs a backend: enable the `nats` or `redis` feature");

#[cfg(feature = "nats")]
mod access;
mod backoff;
#[cfg(all(feature = "nats", feature = "redis"))]
mod connect;
mod directory;
mod error;
#[cfg(feature = "nats")]
mod kv;
mod names;
#[cfg(feature = "nats")]
mod registry;
mod relay;

#[cfg(feature = "nats")]
pub use access::{AgentAccess, BusAccess, nkey_seed, nkey_user};
#[cfg(all(feature = "nats", feature = "redis"))]
pub use connect::Mesh;
#[cfg(feature = "nats")]
pub use directory::NatsDirectory;
#[cfg(feature = "redis")]
pub use directory::RedisDirectory;
pub use directory::{CardLease, DirectoryStats, DirectoryWatch};
pub use error::MeshError;
#[cfg(feature = "nats")]
pub use registry::{SharedKv, SharedRegistry};
#[cfg(feature = "nats")]
pub use relay::JetStreamRelay;
#[cfg(feature = "redis")]
pub use relay::RedisRelay;
pub use relay::{RelayHandle, RelayStats};

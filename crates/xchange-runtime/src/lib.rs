//! The tokio driver of Xchange: it hosts sans-IO engines (`xchange-core`) and applies their
//! effects to the bus, the store, executions and verifiers. Nodes and agents share it.
//!
//! # Layout
//!
//! - [`RuntimeBuilder`] / [`Runtime`] (`runtime.rs`): starting shards (as tasks or on their
//!   own threads), the events tap, verifiers, shutdown; `shared.rs` holds what shards and
//!   handles share, including the agent directory that tells managers who came and went.
//! - `shard.rs`: one shard is one task (or one OS thread with a current-thread runtime)
//!   hosting many engines. It drains a single queue (bus deliveries, commands, completions)
//!   in batches, keeps one timer heap with lazy invalidation and one sleep, and handles the
//!   inputs that effects produce on the spot in the same iteration. Throughput comes from
//!   staying on one thread: a wake-up across cores costs 20 times one on the same core.
//!   `lifecycle.rs` hosts agents on a shard: spawn, submit, kill, restart, stop.
//! - `effects.rs`: send (signing when the bus checks signatures), persist, emit (answering
//!   submitters, feeding the tap), start and abort executions, evaluate bids, verify.
//! - [`AgentSpec`] / [`AgentHandle`] (`agent.rs`): what to host and how to drive it: submit,
//!   cancel, counters, and fault injection (kill, restart, stop).
//! - [`Contractor`], [`Execution`], [`ExecContext`] (`contractor.rs`): what an agent does
//!   with a contract. `Execution::Ready` never leaves the shard's loop; `Pending` futures
//!   are spawned, tracked per contract and aborted when the engine says so.
//! - [`ExecContractor`] (`exec.rs`): a contractor that runs a shell command per execution,
//!   JSON in on stdin, JSON out on stdout: any program becomes an agent.
//! - [`Runtime::attach_remote`] / [`RemoteAttachment`] (`remote.rs`): agents hosted in
//!   another process (over a WebSocket, say) get a card in the directory, so that managers
//!   hear of them arriving and leaving (5003 orderly, 5009 unexpected), without an engine
//!   here; [`agent_topics`] names the topics their transport subscribes for them.
//! - [`Clock`] / [`SystemClock`], [`Persister`] / [`MemoryPersister`] (the seam where a
//!   store plugs in), schema and outside verification (`verify.rs`).
//!
//! Depends on the engine, the bus and the protocol; must not depend on HTTP, a particular
//! store or a particular network transport (those plug in through [`xchange_bus::Bus`] and
//! [`Persister`]).

mod agent;
mod clock;
mod contractor;
mod effects;
mod error;
mod exec;
mod lifecycle;
mod persist;
mod remote;
mod runtime;
mod shard;
mod shared;
mod verify;

pub use agent::{AgentHandle, AgentSpec};
pub use clock::{Clock, SystemClock};
pub use contractor::{Contractor, ExecContext, ExecFuture, Execution, FnContractor, NoWork, contractor_fn};
pub use error::{RuntimeError, TaskFailure};
pub use exec::ExecContractor;
pub use persist::{MemoryPersister, Persister};
pub use remote::RemoteAttachment;
pub use runtime::{EventTap, Runtime, RuntimeBuilder, RuntimeStats};
pub use shard::AgentStatus;
pub use shared::agent_topics;
pub use verify::Verifier;

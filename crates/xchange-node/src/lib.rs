//! The Xchange service (`xchange serve`): job intake over REST, task databases and their
//! registry, templates, live events, on top of the runtime that runs the contract net.
//!
//! # Layout
//!
//! - [`Node`] (`node.rs`): the store, the runtime and the node's managing agent. A
//!   submitted job is validated (`validate.rs`), routed, committed with its `job_posting`
//!   event, then handed to the manager as a task; every later transition (announced,
//!   awarded, running, reassigned, and the terminal state) is a `job_notification` event
//!   written in the same transaction as the change. Unfinished jobs are carried on at
//!   start-up, so an acknowledged job is never lost (it may run more than once).
//! - [`JobDocument`] (`job.rs`): the original `JobCoreData` fields plus what the exchange
//!   needs; [`TaskDbEntry`] (`taskdb.rs`): the original `TaskListingSchema` fields with the
//!   statistics the node maintains; `query.rs`: the filter language over both.
//! - `http/`: handlers (`jobs.rs`, `registry.rs`, `events.rs` for server-sent events),
//!   paging, the OpenAPI document ([`ApiDoc`]) with Swagger UI at `/docs`, `/healthz`,
//!   `/metrics`, and [`run`] (`run(listener, node, shutdown)`, so that tests bind port 0).
//! - [`ApiError`] (`error.rs`): every refusal is a code of the protocol's one table with
//!   its HTTP status, a sentence and the offending field; `body.rs` reads JSON bodies so
//!   that a malformed body, a wrong type and an oversized body each get their own code.
//! - [`NodeConfig`] (`config.rs`): defaults, a TOML file with `deny_unknown_fields`,
//!   `XCHANGE_*` variables and flags (the last two applied by the CLI).
//! - `transport.rs`: the bus the node joins (in process, or NATS / Redis through
//!   `xchange_mesh::Mesh`, with the directory watcher and the outbox relay), the manager's
//!   signing key ([`keyfile`], in the data folder), and their metrics.
//!
//! The node is generic over [`xchange_store::Store`] so that tests can put a store that
//! delays or fails commits under it. It must not reach into the engine: jobs become tasks
//! through the runtime's agent API only.

mod agents;
mod auth;
pub mod body;
mod cluster;
mod config;
mod drive;
mod error;
mod federation;
// utoipa's generated code for `params(...)` qualifies paths the lint calls needless.
#[allow(unused_qualifications)]
pub mod http;
mod job;
pub mod keyfile;
mod limits;
mod metrics;
mod node;
mod orgs;
mod query;
mod routing;
mod taskdb;
mod transport;
mod validate;
mod visibility;

pub use agents::{AgentDirectory, AgentEntry};
pub use auth::{ADMIN_KEY_FILE, Caller, OPERATOR_ORG, Scope, fresh_api_key};
pub use cluster::{ClusterStatus, NodeStatus, PartitionStatus};
pub use config::{ConfigError, DEFAULT_PORT, NodeConfig};
pub use error::{ApiError, ApiResult, ErrorBody, ErrorDetail};
pub use federation::FederatedTaskDb;
pub use http::{ApiDoc, router, run};
pub use job::{CompletionMode, JobBudget, JobDocument, JobView, Reason, Visibility};
pub use metrics::Metrics;
pub use node::{Accepted, JOB_NOTIFICATION, Node, body_hash, now_ms};
pub use orgs::{OrgEntry, OrgView, SubscriptionView};
pub use routing::Routed;
pub use taskdb::{TaskDbEntry, TaskDbView};
pub use transport::NODE_KEY_FILE;
pub use visibility::Hidden;

//! Durable storage for the Xchange exchange service: jobs and their outbox of events, the
//! task database registry, organisations, subscriptions, agent cards and templates,
//! behind one [`Store`] trait with two backends.
//!
//! - [`SqliteStore`] (feature `sqlite`, the embedded default): one file in WAL mode with
//!   `synchronous=FULL`, `busy_timeout` and foreign keys on.
//! - [`PostgresStore`] (feature `postgres`): for several replicas on one database, with
//!   `synchronous_commit=on` and JSONB documents.
//! - [`open`] picks the backend from a URL (`sqlite://PATH`, `postgres://...`) and returns
//!   an [`AnyStore`]; code that knows its backend can use the concrete types, which
//!   implement [`Store`] too.
//! - [`FaultyStore`] (feature `testsuite`) wraps a store so that its commits can be
//!   delayed or made to fail, for the tests of the service.
//!
//! # What it guarantees
//!
//! - **Durable before acknowledged.** A write returns after its transaction is committed
//!   and flushed; [`Store::durability_settings`] reads back what the connection actually
//!   does.
//! - **Group commit.** [`Store::submit_job`] and [`Store::transition`] go through one
//!   writer task per store, which commits everything queued since its last commit (up to
//!   512 writes) in one transaction and one flush. Each caller gets its own answer, the
//!   one it would have got had the writes run one after the other in queue order: two
//!   submissions of one job id in a batch create it once and replay it (or conflict), a
//!   stale transition is refused while the others apply. A refused write writes nothing
//!   and changes no other answer; if the database refuses a statement of the batch, the
//!   batch is rolled back and its writes are retried one per transaction; if the commit
//!   fails, every write of the batch gets the error and nothing of it is written.
//!   [`Store::close`] commits and answers what is queued before closing.
//! - **Outbox.** Creating a job writes a [`JOB_POSTING`] event, and every
//!   [`Store::transition`] writes its event, in the same transaction as the change; a
//!   change that fails writes no event. Event ids become visible in increasing order (in
//!   queue order within a batch), so [`Store::events_after`] resumes a stream or a relay
//!   without missing anything.
//! - **Exactly-once changes.** A job id submitted again with the same body hash returns
//!   the stored job ([`Submitted::Existing`]); with another body it is a
//!   [`StoreError::Conflict`]. Transitions are conditional on the job's version and never
//!   leave a terminal state.
//! - **Filters.** The `find_*` methods answer exactly what [`xchange_filter::Filter`]
//!   accepts on a record's filter view ([`Job::filter_view`] and the like; see
//!   [`Store`]'s docs). Both backends push the filter down to SQL over a view computed in
//!   a subquery (`sql/find.rs` says why not a stored column); a filter that a backend's
//!   compiler refuses is evaluated in memory over pages read in key order.
//! - **Same answers on both backends.** Keys compare by bytes on both (`COLLATE "C"` in
//!   PostgreSQL), and input that one backend could not store (a NUL character) is refused
//!   by both. One conformance suite (`tests/store/`) runs against each.
//!
//! Documents (jobs with their original Xchange field names, registry entries,
//! organisations, agent cards, template schemas) are opaque JSON: the store reads only
//! its key columns, except when a filter reads the documents.
//!
//! # Layout
//!
//! - `store.rs`: the trait; `job.rs` and `records.rs` its types; `error.rs` the one error
//!   type; `checks.rs` the input checks and decisions both backends share.
//! - `sql/`: the store written once for both databases (`SqlStore<D>`), generic over a
//!   `Dialect`: `db.rs` (the sqlx plumbing behind one bound), `dialect.rs` (what differs),
//!   `record.rs` (get, list, delete for every table), `commit.rs`, `batch.rs`, `plan.rs`
//!   and `bulk.rs` (the group commit), `registry.rs` (the other writes), `jobs.rs`
//!   (outbox, statistics), `find.rs` (filters), `lease.rs` (partition leases, nodes).
//! - `sqlite.rs` and `postgres.rs`: connecting, and each database's `Dialect`.
//! - `migrations.rs` with the SQL in `migrations/{sqlite,postgres}/`: the schemas.
//! - `any.rs`: the URL dispatch. `forward.rs`: the macro that implements [`Store`] for
//!   the types that hand every call to another store. `faulty.rs`: [`FaultyStore`].
//! - `examples/submit_throughput.rs`: concurrent submissions per second, printed.
//!
//! - **Fencing.** Jobs belong to partitions that nodes lease ([`Lease`], with an epoch
//!   that grows at every acquisition, on the database's clock); a write that carries a
//!   [`Fence`] applies only while its partition's lease is at that epoch, checked in the
//!   write's transaction with the lease row locked, so that a node that lost its lease
//!   cannot write and the node that took it over sees every write acknowledged before
//!   (`lease.rs`, `sql/lease.rs`). Else [`StoreError::Fenced`].
//!
//! # Not yet
//!
//! - **Group commit of the registry writes**: task databases, organisations, cards,
//!   subscriptions and templates are one transaction each (they are rare).
//! - **Document indexes**: a filter on document fields reads every row in its key range
//!   (the key, and for jobs the task database, narrow it).
//! - PostgreSQL's pushdown depends on `xchange_filter::Filter::to_postgres`; a filter it
//!   refuses is evaluated in memory, as are SQLite's refusals (array operands).
//!
//! # Dependencies
//!
//! sqlx (runtime queries only; no compile-time checked macros, as CI has no database
//! when it compiles), tokio (the writer task and its channels), serde_json, thiserror,
//! `xchange-protocol` for status codes and `xchange-filter` for filters. It must not
//! depend on HTTP, on a bus, or on the engine (`xchange-core`): the runtime drives the
//! store, not the other way round.

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
compile_error!("xchange-store needs a backend: enable the `sqlite` or `postgres` feature");

#[macro_use]
mod forward;

mod any;
mod checks;
mod error;
#[cfg(feature = "testsuite")]
mod faulty;
mod job;
mod lease;
mod migrations;
#[cfg(feature = "postgres")]
mod postgres;
mod records;
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;
#[cfg(all(test, feature = "sqlite"))]
mod testing;

pub use any::{AnyStore, open};
pub use error::{StoreError, redact_url};
#[cfg(feature = "testsuite")]
pub use faulty::FaultyStore;
pub use job::{Event, JOB_POSTING, Job, JobState, NewEvent, NewJob, Submitted, Transition};
pub use lease::{ClusterNode, Fence, Lease};
#[cfg(feature = "postgres")]
pub use postgres::{DEFAULT_MAX_CONNECTIONS, IDLE_IN_TRANSACTION_MS, PostgresStore};
pub use records::{
    AgentCard, ApiKey, Durability, LatencySummary, Org, Subscription, TaskDb, TaskDbJobCounts, Template,
};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
pub use store::Store;

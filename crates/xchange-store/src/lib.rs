//! Durable storage for the Xchange exchange service: jobs, their outbox of events, the
//! task database registry and templates, behind one [`Store`] trait with two backends.
//!
//! - [`SqliteStore`] (feature `sqlite`, the embedded default): one file in WAL mode with
//!   `synchronous=FULL`, `busy_timeout` and foreign keys on.
//! - [`PostgresStore`] (feature `postgres`): for several replicas on one database, with
//!   `synchronous_commit=on` and JSONB documents.
//! - [`open`] picks the backend from a URL (`sqlite://PATH`, `postgres://...`) and returns
//!   an [`AnyStore`]; code that knows its backend can use the concrete types, which
//!   implement [`Store`] too.
//!
//! # What it guarantees
//!
//! - **Durable before acknowledged.** A write returns after its transaction is committed
//!   and flushed; [`Store::durability_settings`] reads back what the connection actually
//!   does.
//! - **Outbox.** Creating a job writes a [`JOB_POSTING`] event, and every
//!   [`Store::transition`] writes its event, in the same transaction as the change; a
//!   change that fails writes no event. Event ids become visible in increasing order, so
//!   [`Store::events_after`] resumes a stream or a relay without missing anything.
//! - **Exactly-once changes.** A job id submitted again with the same body hash returns
//!   the stored job ([`Submitted::Existing`]); with another body it is a
//!   [`StoreError::Conflict`]. Transitions are conditional on the job's version and never
//!   leave a terminal state.
//! - **Same answers on both backends.** Keys compare by bytes on both (`COLLATE "C"` in
//!   PostgreSQL), and input that one backend could not store (a NUL character) is refused
//!   by both. One conformance suite (`tests/store/`) runs against each.
//!
//! Documents (jobs with their original Xchange field names, registry entries, template
//! schemas) are opaque JSON: the store reads only its key columns.
//!
//! # Layout
//!
//! `store.rs` holds the trait and its types, `sqlite.rs` and `postgres.rs` the backends,
//! `migrations.rs` (with the SQL in `migrations/{sqlite,postgres}/`) the schema, `any.rs`
//! the URL dispatch and `error.rs` the one error type.
//!
//! # Not yet
//!
//! - **Group commit.** Each submission is its own transaction and its own fsync;
//!   concurrent submissions are not batched into one commit yet (and in PostgreSQL the
//!   outbox lock serializes commits that write events).
//! - **Filter pushdown.** Lists are by key only; Mongo-style filters are not compiled to
//!   SQL yet.
//! - **Partition leases and fencing** for several replicas.
//!
//! # Dependencies
//!
//! sqlx (runtime queries only; no compile-time checked macros, as CI has no database
//! when it compiles), serde_json, thiserror, and `xchange-protocol` for status codes. It
//! must not depend on HTTP, on a bus, or on the engine (`xchange-core`): the runtime
//! drives the store, not the other way round.

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
compile_error!("xchange-store needs a backend: enable the `sqlite` or `postgres` feature");

/// The columns of `jobs` in the order both backends select them: a macro so that it can
/// be `concat!`ed into `'static` SQL.
macro_rules! job_columns {
    () => {
        "job_id, taskdb, state, document, body_hash, result, reason_code, created_ms, \
         updated_ms, version"
    };
}

mod any;
mod error;
mod migrations;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;

pub use any::{AnyStore, open};
pub use error::StoreError;
#[cfg(feature = "postgres")]
pub use postgres::{DEFAULT_MAX_CONNECTIONS, PostgresStore};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
pub use store::{
    Durability, Event, JOB_POSTING, Job, JobState, NewEvent, NewJob, Store, Submitted, TaskDb, Template,
    Transition,
};

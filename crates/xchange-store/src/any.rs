//! [`open`]: a store from a URL, whichever backend it names.

use serde_json::Value;

use crate::error::{StoreError, redact_url};
#[cfg(feature = "postgres")]
use crate::postgres::PostgresStore;
#[cfg(feature = "sqlite")]
use crate::sqlite::SqliteStore;
use crate::store::{Durability, Event, Job, NewJob, Store, Submitted, TaskDb, Template, Transition};

/// A store of either backend, as [`open`] returns it.
///
/// An enum rather than a `Box<dyn Store>`: the trait's methods return `impl Future`, which
/// keeps them free of boxing and of an `async-trait` dependency but makes the trait not
/// object-safe. Cloning is cheap and shares the connections.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AnyStore {
    /// The embedded SQLite backend.
    #[cfg(feature = "sqlite")]
    Sqlite(SqliteStore),
    /// The PostgreSQL backend.
    #[cfg(feature = "postgres")]
    Postgres(PostgresStore),
}

/// Opens the store a URL names, creating and migrating its schema as needed.
///
/// - `sqlite://PATH` (also `sqlite:PATH`, `sqlite:///ABSOLUTE/PATH`): the file is created
///   if missing. In-memory databases are refused (not durable).
/// - `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?options=-c search_path=SCHEMA]`
///   (or `postgresql://`): the schema is the first of the connection's `search_path`.
///
/// Any other scheme, or a backend left out of this build, is a
/// [`StoreError::InvalidUrl`] whose message says what is expected.
pub async fn open(url: &str) -> Result<AnyStore, StoreError> {
    let scheme = url.split_once(':').map(|(scheme, _)| scheme);
    match scheme {
        #[cfg(feature = "sqlite")]
        Some("sqlite") => Ok(AnyStore::Sqlite(SqliteStore::open(url).await?)),
        #[cfg(feature = "postgres")]
        Some("postgres" | "postgresql") => Ok(AnyStore::Postgres(PostgresStore::connect(url).await?)),
        // A guard, not a pattern: with both features on, this arm is reached by no scheme.
        Some(scheme) if matches!(scheme, "sqlite" | "postgres" | "postgresql") => {
            Err(StoreError::InvalidUrl {
                url: redact_url(url),
                reason: format!("this build has no {scheme} backend (cargo feature of xchange-store)"),
            })
        }
        _ => Err(StoreError::InvalidUrl {
            url: redact_url(url),
            reason: "unknown scheme; expected sqlite://PATH or postgres://USER@HOST/DATABASE".to_owned(),
        }),
    }
}

/// Calls the same method on whichever backend `self` holds.
macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            #[cfg(feature = "sqlite")]
            AnyStore::Sqlite($store) => $call.await,
            #[cfg(feature = "postgres")]
            AnyStore::Postgres($store) => $call.await,
        }
    };
}

impl Store for AnyStore {
    async fn submit_job(&self, job: NewJob) -> Result<Submitted, StoreError> {
        dispatch!(self, s => s.submit_job(job))
    }

    async fn get_job(&self, job_id: &str) -> Result<Job, StoreError> {
        dispatch!(self, s => s.get_job(job_id))
    }

    async fn list_jobs(
        &self,
        taskdb: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        dispatch!(self, s => s.list_jobs(taskdb, after, limit))
    }

    async fn transition(&self, t: Transition) -> Result<Job, StoreError> {
        dispatch!(self, s => s.transition(t))
    }

    async fn events_after(&self, after: i64, limit: u32) -> Result<Vec<Event>, StoreError> {
        dispatch!(self, s => s.events_after(after, limit))
    }

    async fn last_event_id(&self) -> Result<i64, StoreError> {
        dispatch!(self, s => s.last_event_id())
    }

    async fn put_taskdb(
        &self,
        task_listing_db_id: &str,
        document: Value,
        expected_version: Option<i64>,
        now_ms: i64,
    ) -> Result<TaskDb, StoreError> {
        dispatch!(self, s => s.put_taskdb(task_listing_db_id, document, expected_version, now_ms))
    }

    async fn get_taskdb(&self, task_listing_db_id: &str) -> Result<TaskDb, StoreError> {
        dispatch!(self, s => s.get_taskdb(task_listing_db_id))
    }

    async fn delete_taskdb(&self, task_listing_db_id: &str) -> Result<(), StoreError> {
        dispatch!(self, s => s.delete_taskdb(task_listing_db_id))
    }

    async fn list_taskdbs(&self, after: Option<&str>, limit: u32) -> Result<Vec<TaskDb>, StoreError> {
        dispatch!(self, s => s.list_taskdbs(after, limit))
    }

    async fn put_template(&self, name: &str, schema: Value, now_ms: i64) -> Result<Template, StoreError> {
        dispatch!(self, s => s.put_template(name, schema, now_ms))
    }

    async fn get_template(&self, name: &str) -> Result<Template, StoreError> {
        dispatch!(self, s => s.get_template(name))
    }

    async fn list_templates(&self, after: Option<&str>, limit: u32) -> Result<Vec<Template>, StoreError> {
        dispatch!(self, s => s.list_templates(after, limit))
    }

    async fn durability_settings(&self) -> Result<Durability, StoreError> {
        dispatch!(self, s => s.durability_settings())
    }

    async fn close(&self) {
        dispatch!(self, s => s.close())
    }
}

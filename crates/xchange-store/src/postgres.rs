//! The backend for several replicas: PostgreSQL, JSONB documents.
//!
//! One pool; every connection starts with `synchronous_commit=on` as a startup option, so
//! a commit returns only once its WAL is flushed, whatever the server, database or role
//! default says. Other startup options in the URL (`?options=-c search_path=myschema`)
//! are kept: that is how several stores share one database, each in its own schema.
//! Transactions run at READ COMMITTED. A group-commit batch locks the rows of the jobs
//! it names (`FOR UPDATE`, in key order) before deciding, and takes the outbox lock
//! before it inserts events (see [`OUTBOX_LOCK`]).
//!
//! Filters are pushed down with [`Filter::to_postgres`] over the record's `jsonb` view;
//! every connection runs with `jit=off`, as that compiler asks: the planner overestimates
//! the rows of `jsonb_array_elements` and would spend seconds compiling millisecond
//! queries.

use std::str::FromStr;

use sqlx::Postgres;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use xchange_filter::{Filter, SqlCondition};

use crate::error::{StoreError, redact_url};
use crate::migrations;
use crate::records::Durability;
use crate::sql::SqlStore;
use crate::sql::dialect::Dialect;

/// Connections in the pool when the caller does not choose.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 8;

/// The outbox lock: a transaction-scoped advisory lock taken just before inserting
/// events and held to the commit.
///
/// A BIGSERIAL id is taken at insert time but becomes visible at commit, so without the
/// lock a transaction could commit id 7 while id 6 is still in flight, and a reader that
/// saw 7 would resume after it and never see 6. With it, ids are taken and committed in
/// the same order. It is the last lock a writer takes, so it cannot deadlock; its cost is
/// that commits that write events are serialized, which the group commit amortizes (one
/// lock per batch). The first key is "XCEV" (0x58434556); the second a hash of the
/// schema name, so that stores in different schemas of one database do not wait for each
/// other.
const OUTBOX_LOCK: &str =
    "SELECT pg_advisory_xact_lock(1480803670, hashtext(COALESCE(current_schema(), '')))";

/// How long the server lets a transaction of this store sit idle before ending it, in
/// milliseconds. The store's transactions send their statements back to back, so only a
/// stalled process idles this long. A takeover waits at most this long for a stalled
/// node's locks: well within the default partition lease (10 s).
pub const IDLE_IN_TRANSACTION_MS: u64 = 1_000;

/// The PostgreSQL store. Cloning is cheap and shares the pool and the writer task.
///
/// Connecting starts its group-commit writer on the current tokio runtime, which must
/// outlive the store.
#[derive(Debug, Clone)]
pub struct PostgresStore(SqlStore<Postgres>);

impl PostgresStore {
    /// Connects to a `postgres://` (or `postgresql://`) URL with a pool of
    /// [`DEFAULT_MAX_CONNECTIONS`] and migrates the schema.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let invalid = |reason: String| StoreError::InvalidUrl { url: redact_url(url), reason };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(invalid("expected postgres://...".to_owned()));
        }
        let options = PgConnectOptions::from_str(url).map_err(|e| invalid(e.to_string()))?;
        Self::connect_with(options, DEFAULT_MAX_CONNECTIONS).await
    }

    /// Connects with explicit options and pool size and migrates the schema.
    ///
    /// A transaction left idle for [`IDLE_IN_TRANSACTION_MS`] is ended by the server: a
    /// node paused (or cut off) inside a batch must not keep the lease rows and the outbox
    /// lock that a takeover and the other nodes' commits wait for.
    pub async fn connect_with(options: PgConnectOptions, max_connections: u32) -> Result<Self, StoreError> {
        let idle = IDLE_IN_TRANSACTION_MS.to_string();
        let options = options.options([
            ("synchronous_commit", "on"),
            ("jit", "off"),
            ("idle_in_transaction_session_timeout", idle.as_str()),
        ]);
        let pool = PgPoolOptions::new().max_connections(max_connections).connect_with(options).await?;
        // The migrator serializes concurrent starts with an advisory lock of its own.
        migrations::migrator(migrations::POSTGRES).run(&pool).await?;
        Ok(Self(SqlStore::new(pool.clone(), pool)))
    }
}

impl_store_by!(impl[] PostgresStore => via_newtype);

impl Dialect for Postgres {
    const BEGIN_WRITE: &'static str = "BEGIN";
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    // Not KEY SHARE: a takeover's UPDATE of a non-key column would not wait for that.
    const FOR_SHARE: &'static str = " FOR SHARE";
    const NOW_MS: &'static str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";
    const OUTBOX_LOCK: Option<&'static str> = Some(OUTBOX_LOCK);

    fn param(n: usize) -> String {
        format!("${n}")
    }

    fn overlay(document: &str, fields: &[&str]) -> String {
        let pairs: Vec<String> = fields.iter().map(|f| format!("'{f}', {f}")).collect();
        format!(
            "(CASE WHEN jsonb_typeof({document}) = 'object' THEN {document} ELSE '{{}}'::jsonb END) \
             || jsonb_build_object({})",
            pairs.join(", ")
        )
    }

    fn condition(filter: &Filter, column: &str) -> Option<SqlCondition> {
        // A filter the compiler refuses (see `Filter::to_postgres`) is evaluated in memory.
        filter.to_postgres(column).ok()
    }

    async fn durability(conn: &mut PgConnection) -> Result<Durability, StoreError> {
        let synchronous_commit: String =
            sqlx::query_scalar("SHOW synchronous_commit").fetch_one(&mut *conn).await?;
        let fsync: String = sqlx::query_scalar("SHOW fsync").fetch_one(&mut *conn).await?;
        Ok(Durability::Postgres { synchronous_commit, fsync })
    }
}

//! The embedded backend: one SQLite file in WAL mode.
//!
//! Two pools on the same file: a writer with a single connection and readers. One writer
//! because SQLite allows one write transaction at a time anyway; queueing writers on the
//! pool instead of on the file lock avoids `SQLITE_BUSY` within the process and keeps
//! event ids committed in order. Writes still open with `BEGIN IMMEDIATE`, so that another
//! process on the same file waits (`busy_timeout`) for the write lock at the start of a
//! transaction rather than failing when a read lock would have to be upgraded. Readers
//! run concurrently with the writer, which WAL allows, and are `query_only`.
//!
//! The group commit (see the crate docs) is what makes the single writer fast: with
//! `synchronous=FULL` every commit waits for an fsync of the WAL, and one commit carries
//! a whole batch. Filters are pushed down with [`Filter::to_sqlite`], whose `$regex`
//! needs the `regexp` function that sqlx registers on every connection (`with_regexp`).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::Sqlite;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use xchange_filter::{Filter, SqlCondition};

use crate::error::{StoreError, redact_url};
use crate::migrations;
use crate::records::Durability;
use crate::sql::SqlStore;
use crate::sql::dialect::Dialect;

/// How long a connection waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections for concurrent reads. Small: the machine this runs on has few cores and
/// each SQLite connection has its own worker thread.
const READERS: u32 = 4;

/// The SQLite store. Cloning is cheap and shares the connections and the writer task.
///
/// Opening it starts its group-commit writer on the current tokio runtime, which must
/// outlive the store.
#[derive(Debug, Clone)]
pub struct SqliteStore(pub(crate) SqlStore<Sqlite>);

impl SqliteStore {
    /// Opens (creating if missing) the database named by a `sqlite://PATH` URL
    /// (`sqlite:PATH` and `sqlite:///ABSOLUTE/PATH` work too) and migrates it.
    ///
    /// In-memory databases are refused: they are not durable, and each connection would
    /// see a different one.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let invalid = |reason: String| StoreError::InvalidUrl { url: redact_url(url), reason };
        if !url.starts_with("sqlite:") {
            return Err(invalid("expected sqlite://PATH".to_owned()));
        }
        if url.contains(":memory:") || url.contains("mode=memory") {
            return Err(invalid("in-memory databases are not durable; give a file path".to_owned()));
        }
        let options = SqliteConnectOptions::from_str(url).map_err(|e| invalid(e.to_string()))?;
        if options.get_filename().as_os_str().is_empty() {
            return Err(invalid("no file path".to_owned()));
        }
        Self::open_with(options).await
    }

    /// Opens (creating if missing) the database file at `path` and migrates it.
    pub async fn open_path(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(SqliteConnectOptions::new().filename(path)).await
    }

    async fn open_with(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let base = options.foreign_keys(true).busy_timeout(BUSY_TIMEOUT).with_regexp();
        // journal_mode=WAL is persistent in the file, so only the writer sets it (setting
        // it needs an exclusive lock that busy_timeout does not wait for). synchronous is
        // per connection; FULL syncs the WAL at every commit, which is what makes a
        // returned commit durable in WAL mode (NORMAL would not).
        let writer_options = base
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            // Keep the one connection: reopening costs pragmas and the WAL index mapping.
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(writer_options)
            .await?;
        migrations::migrator(migrations::SQLITE).run(&writer).await?;
        let reader_options = base.pragma("query_only", "ON");
        let reader = SqlitePoolOptions::new().max_connections(READERS).connect_with(reader_options).await?;
        Ok(Self(SqlStore::new(writer, reader)))
    }
}

impl_store_by!(impl[] SqliteStore => via_newtype);

impl Dialect for Sqlite {
    // IMMEDIATE takes the write lock at the start, so that the batch's reads and writes
    // see one state, and another process on the file waits (busy_timeout) instead of
    // failing on a lock upgrade.
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const FOR_UPDATE: &'static str = "";
    const FOR_SHARE: &'static str = "";
    const NOW_MS: &'static str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";
    // One writing connection per process and the file's write lock across processes:
    // commits, and so ids, are already in order.
    const OUTBOX_LOCK: Option<&'static str> = None;

    fn param(n: usize) -> String {
        format!("?{n}")
    }

    fn ordered_param(_: usize) -> String {
        // Anonymous: sqlx looks a numbered parameter up by name, and SQLite's lookup is
        // linear, which makes binding a 2,560-parameter statement quadratic.
        "?".to_owned()
    }

    fn overlay(document: &str, fields: &[&str]) -> String {
        let set: String = fields.iter().map(|f| format!(", '$.{f}', {f}")).collect();
        format!("json_set(CASE WHEN json_type({document}) = 'object' THEN {document} ELSE '{{}}' END{set})")
    }

    fn condition(filter: &Filter, column: &str) -> Option<SqlCondition> {
        // A filter the compiler refuses (an array operand, ...) is evaluated in memory.
        filter.to_sqlite(column).ok()
    }

    async fn durability(conn: &mut SqliteConnection) -> Result<Durability, StoreError> {
        let journal_mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut *conn).await?;
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&mut *conn).await?;
        let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys").fetch_one(&mut *conn).await?;
        let busy_timeout_ms: i64 = sqlx::query_scalar("PRAGMA busy_timeout").fetch_one(&mut *conn).await?;
        let synchronous = match synchronous {
            0 => "OFF".to_owned(),
            1 => "NORMAL".to_owned(),
            2 => "FULL".to_owned(),
            3 => "EXTRA".to_owned(),
            other => other.to_string(),
        };
        let foreign_keys = foreign_keys != 0;
        Ok(Durability::Sqlite { journal_mode, synchronous, foreign_keys, busy_timeout_ms })
    }
}

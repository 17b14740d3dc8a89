//! Where each conformance test runs: a fresh SQLite file, or a fresh PostgreSQL schema.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, SqliteConnection};
use xchange_store::{AnyStore, open};

/// The environment variable with the PostgreSQL URL; unset, the PostgreSQL tests skip.
pub(crate) const POSTGRES_VAR: &str = "XCHANGE_TEST_POSTGRES";

/// What a test gets: the URL of its own empty store, which it may open several times.
pub(crate) struct Ctx {
    pub(crate) url: String,
}

impl Ctx {
    pub(crate) async fn open(&self) -> AnyStore {
        open(&self.url).await.unwrap_or_else(|e| panic!("cannot open {}: {e}", self.url))
    }

    pub(crate) fn is_postgres(&self) -> bool {
        self.url.starts_with("postgres")
    }

    /// A connection of the test's own to the store's database (schema), beside the
    /// store's: to set traps and take locks.
    pub(crate) async fn raw(&self) -> Raw {
        if self.is_postgres() {
            Raw::Postgres(PgConnection::connect(&self.url).await.expect("connect to postgres"))
        } else {
            Raw::Sqlite(SqliteConnection::connect(&self.url).await.expect("connect to sqlite"))
        }
    }
}

pub(crate) enum Raw {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

impl Raw {
    /// Runs SQL (several statements allowed), the one for this backend.
    pub(crate) async fn execute(&mut self, sqlite: &str, postgres: &str) {
        let outcome = match self {
            Self::Sqlite(conn) => {
                sqlx::raw_sql(AssertSqlSafe(sqlite.to_owned())).execute(conn).await.map(drop)
            }
            Self::Postgres(conn) => {
                sqlx::raw_sql(AssertSqlSafe(postgres.to_owned())).execute(conn).await.map(drop)
            }
        };
        outcome.unwrap_or_else(|e| panic!("raw sql failed: {e}"));
    }

    pub(crate) async fn close(self) {
        let _ = match self {
            Self::Sqlite(conn) => conn.close().await,
            Self::Postgres(conn) => conn.close().await,
        };
    }
}

/// A name no other test of any concurrent run uses.
fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}_{}_{}_{nanos}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A temporary directory removed on drop (even when the test panicked).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(unique_name("xchange_store_test"));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the test as its own task, so that a panic comes back as a value and the caller
/// can clean up before re-raising it with [`reraise`].
async fn spawn<F, Fut>(test: F, ctx: Ctx) -> Result<(), tokio::task::JoinError>
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(test(ctx)).await
}

fn reraise(outcome: Result<(), tokio::task::JoinError>) {
    if let Err(e) = outcome {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
        panic!("test task failed: {e}");
    }
}

pub(crate) async fn on_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = TempDir::new();
    let url = format!("sqlite://{}", dir.0.join("store.db").display());
    let outcome = spawn(test, Ctx { url }).await;
    drop(dir);
    reraise(outcome);
}

pub(crate) async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Ok(base) = std::env::var(POSTGRES_VAR) else {
        eprintln!("skipping: {POSTGRES_VAR} is not set (e.g. postgres://postgres@127.0.0.1:5432/test)");
        return;
    };
    let schema = unique_name("xchange_test");
    let mut admin = PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("{POSTGRES_VAR}={base}: cannot connect: {e}"));
    admin.execute(AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).await.expect("create the test schema");
    // The schema travels in the URL as a startup option, so every pooled connection has it.
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
    let outcome = spawn(test, Ctx { url }).await;
    admin
        .execute(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .await
        .expect("drop the test schema");
    let _ = admin.close().await;
    reraise(outcome);
}

//! The three evaluators side by side: [`Filter::matches`] in memory, the SQLite condition
//! on an in-memory SQLite database, and the PostgreSQL condition on the database at
//! `XCHANGE_TEST_POSTGRES` (skipped, with a printed reason, when it is not set).
//!
//! PostgreSQL runs on one connection in a temporary table, which no other connection
//! sees and which goes when the connection does: concurrent test runs cannot meet, and
//! nothing is left behind even when a test panics.

use std::cell::RefCell;
use std::str::FromStr;
use std::sync::Once;

use serde_json::Value;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Database, Encode, Executor, Row, Type};
use tokio::runtime::Runtime;
use xchange_filter::{Filter, FilterError, SqlFragment, SqlParam};

/// The environment variable with the PostgreSQL URL.
pub(crate) const POSTGRES_VAR: &str = "XCHANGE_TEST_POSTGRES";

/// The table every test loads its documents into: `id` is the document's position.
pub(crate) const TABLE: &str = "xchange_filter_docs";

/// Connections to both databases, with the runtime that drives them. The connections
/// come first so that they are dropped while the runtime still exists.
pub(crate) struct Dbs {
    sqlite: SqliteConnection,
    pg: Option<PgConnection>,
    rt: Runtime,
}

/// What one evaluator answered: the positions of the matching documents, ascending.
pub(crate) type Ids = Vec<i64>;

impl Dbs {
    /// Opens both databases and creates the table in each.
    pub(crate) fn open() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let (sqlite, pg) = rt.block_on(async {
            let mut sqlite = SqliteConnectOptions::from_str("sqlite::memory:")
                .expect("an in-memory database URL")
                .with_regexp()
                .connect()
                .await
                .expect("open SQLite in memory");
            sqlite
                .execute(AssertSqlSafe(format!("CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, doc TEXT NOT NULL)")))
                .await
                .expect("create the SQLite table");
            let pg = match std::env::var(POSTGRES_VAR) {
                Ok(url) => {
                    let mut pg = PgConnection::connect(&url)
                        .await
                        .unwrap_or_else(|e| panic!("{POSTGRES_VAR}={url}: cannot connect: {e}"));
                    // As `to_postgres` advises: the planner counts 100 rows for every
                        // `jsonb_array_elements`, so nested conditions look costly enough for the
                        // JIT, which then spends seconds compiling a millisecond's query.
                    pg.execute("SET jit = off").await.expect("turn the JIT off");
                    pg.execute(AssertSqlSafe(format!(
                        "CREATE TEMPORARY TABLE {TABLE} (id bigint PRIMARY KEY, doc jsonb NOT NULL)"
                    )))
                    .await
                    .expect("create the PostgreSQL table");
                    Some(pg)
                }
                Err(_) => {
                    static SAID: Once = Once::new();
                    SAID.call_once(|| {
                        eprintln!(
                            "skipping PostgreSQL: {POSTGRES_VAR} is not set (e.g. postgres://postgres@127.0.0.1:5432/test)"
                        );
                    });
                    None
                }
            };
            (sqlite, pg)
        });
        Self { sqlite, pg, rt }
    }

    /// Whether PostgreSQL takes part.
    pub(crate) fn has_postgres(&self) -> bool {
        self.pg.is_some()
    }

    /// Replaces the documents of both tables; document `i` gets id `i`.
    pub(crate) fn load(&mut self, docs: &[Value]) {
        let Self { sqlite, pg, rt } = self;
        rt.block_on(async {
            sqlite.execute(AssertSqlSafe(format!("DELETE FROM {TABLE}"))).await.expect("empty SQLite");
            let insert = format!("INSERT INTO {TABLE} (id, doc) VALUES (?1, ?2)");
            for (i, doc) in docs.iter().enumerate() {
                sqlx::query(AssertSqlSafe(insert.as_str()))
                    .bind(i64::try_from(i).expect("few documents"))
                    .bind(doc.to_string())
                    .execute(&mut *sqlite)
                    .await
                    .expect("insert into SQLite");
            }
            if let Some(pg) = pg {
                pg.execute(AssertSqlSafe(format!("TRUNCATE {TABLE}"))).await.expect("empty PostgreSQL");
                // One statement for all: the documents travel as one JSON array.
                let insert = format!(
                    "INSERT INTO {TABLE} (id, doc) SELECT n - 1, d FROM jsonb_array_elements($1::text::jsonb) \
                     WITH ORDINALITY AS t(d, n)"
                );
                sqlx::query(AssertSqlSafe(insert))
                    .bind(Value::Array(docs.to_vec()).to_string())
                    .execute(&mut *pg)
                    .await
                    .expect("insert into PostgreSQL");
            }
        });
    }

    /// The documents SQLite finds with `filter`.
    pub(crate) fn sqlite(&mut self, filter: &Filter) -> Result<Ids, FilterError> {
        let cond = filter.to_sqlite(&format!("{TABLE}.doc"))?;
        Ok(self.sqlite_ids(&where_clause(&cond), &cond.params))
    }

    /// The documents PostgreSQL finds with `filter`, when it takes part.
    pub(crate) fn postgres(&mut self, filter: &Filter) -> Option<Result<Ids, FilterError>> {
        self.pg.as_ref()?;
        let cond = match filter.to_postgres(&format!("{TABLE}.doc")) {
            Ok(cond) => cond,
            Err(e) => return Some(Err(e)),
        };
        Some(Ok(self.postgres_ids(&where_clause(&cond), &cond.params)))
    }

    /// Runs a statement that selects ids on SQLite.
    pub(crate) fn sqlite_ids(&mut self, sql: &str, params: &[SqlParam]) -> Ids {
        let Self { sqlite, rt, .. } = self;
        let rows = rt
            .block_on(bind(sqlx::query(AssertSqlSafe(sql)), params).fetch_all(&mut *sqlite))
            .unwrap_or_else(|e| panic!("SQLite refused {sql}\nwith {params:?}: {e}"));
        rows.iter().map(|r| r.get::<i64, _>(0)).collect()
    }

    /// Runs a statement that selects ids on PostgreSQL (which must take part).
    pub(crate) fn postgres_ids(&mut self, sql: &str, params: &[SqlParam]) -> Ids {
        let Self { pg, rt, .. } = self;
        let pg = pg.as_mut().expect("PostgreSQL takes part");
        let rows = rt
            .block_on(bind(sqlx::query(AssertSqlSafe(sql)), params).fetch_all(&mut *pg))
            .unwrap_or_else(|e| panic!("PostgreSQL refused {sql}\nwith {params:?}: {e}"));
        rows.iter().map(|r| r.get::<i64, _>(0)).collect()
    }
}

thread_local! {
    /// One pair of connections per thread, kept across the cases of a property.
    static DBS: RefCell<Option<Dbs>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's connections, opened on first use.
pub(crate) fn with_dbs<R>(f: impl FnOnce(&mut Dbs) -> R) -> R {
    DBS.with_borrow_mut(|dbs| f(dbs.get_or_insert_with(Dbs::open)))
}

/// The in-memory answer.
pub(crate) fn in_memory(filter: &Filter, docs: &[Value]) -> Ids {
    (0..).zip(docs).filter(|(_, d)| filter.matches(d)).map(|(i, _)| i).collect()
}

fn where_clause(cond: &SqlFragment) -> String {
    format!("SELECT id FROM {TABLE} WHERE {} ORDER BY id", cond.sql)
}

fn bind<'q, DB: Database>(
    mut query: sqlx::query::Query<'q, DB, DB::Arguments>,
    params: &[SqlParam],
) -> sqlx::query::Query<'q, DB, DB::Arguments>
where
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> f64: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
{
    for p in params {
        query = match p {
            SqlParam::Integer(i) => query.bind(*i),
            SqlParam::Real(f) => query.bind(*f),
            SqlParam::Text(s) => query.bind(s.clone()),
        };
    }
    query
}

//! A fresh PostgreSQL schema per test, when `XCHANGE_TEST_POSTGRES` names a server.

use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

const VAR: &str = "XCHANGE_TEST_POSTGRES";

pub(crate) struct Schema {
    pub(crate) url: String,
    base: String,
    name: String,
}

/// A new schema and a store URL whose connections use it; `None` (with the reason
/// printed) without the variable.
pub(crate) async fn fresh_schema(tag: &str) -> Option<Schema> {
    let Ok(base) = std::env::var(VAR) else {
        eprintln!("skipping: {VAR} is not set (e.g. postgres://postgres@127.0.0.1:5432/test)");
        return None;
    };
    let name = format!("xchange_cli_{tag}_{}", std::process::id());
    let mut admin = PgConnection::connect(&base).await.unwrap_or_else(|e| panic!("{VAR}={base}: {e}"));
    admin.execute(AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {name} CASCADE"))).await.unwrap();
    admin.execute(AssertSqlSafe(format!("CREATE SCHEMA {name}"))).await.unwrap();
    let _ = admin.close().await;
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options=-c%20search_path%3D{name}");
    Some(Schema { url, base, name })
}

impl Schema {
    pub(crate) async fn drop_schema(self) {
        let mut admin = PgConnection::connect(&self.base).await.unwrap();
        admin.execute(AssertSqlSafe(format!("DROP SCHEMA {} CASCADE", self.name))).await.unwrap();
        let _ = admin.close().await;
    }
}

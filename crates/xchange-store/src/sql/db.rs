//! [`Db`]: the few sqlx capabilities the shared SQL code uses, as methods of the database
//! type, and [`Stmt`], a statement built on them.
//!
//! Generic sqlx code would otherwise need a dozen bounds (`Encode`, `Decode`, `Type` for
//! every Rust type it binds or reads, `Executor` for `&mut Connection`, ...) repeated on
//! every generic function. Here they are written once, on the blanket implementation
//! below, and the rest of the crate needs only `D: Db`.

use std::future::Future;

use serde_json::Value;
use sqlx::database::Database;
use sqlx::query::Query;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};

use crate::error::StoreError;

/// A statement with its arguments.
type Q<D> = Query<'static, D, <D as Database>::Arguments>;

/// A value to bind, whatever the database.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    Text(&'a str),
    Int(i64),
    /// `reason_code`: PostgreSQL's `INTEGER` wants a 32-bit parameter.
    OptInt32(Option<i32>),
    Real(f64),
    Json(&'a Value),
    OptJson(Option<&'a Value>),
    /// A [`JOB_POSTING`](crate::JOB_POSTING) event's payload, `{"taskdb", "document"}`,
    /// serialized from the submission without copying its document.
    Posting {
        taskdb: &'a str,
        document: &'a Value,
    },
}

#[derive(serde::Serialize)]
pub(crate) struct Posting<'a> {
    taskdb: &'a str,
    document: &'a Value,
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Self::Text(v)
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Self::Text(v)
    }
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<Option<i32>> for Arg<'_> {
    fn from(v: Option<i32>) -> Self {
        Self::OptInt32(v)
    }
}

impl From<i32> for Arg<'_> {
    fn from(v: i32) -> Self {
        Self::OptInt32(Some(v))
    }
}

impl<'a> From<&'a Value> for Arg<'a> {
    fn from(v: &'a Value) -> Self {
        Self::Json(v)
    }
}

impl<'a> From<Option<&'a Value>> for Arg<'a> {
    fn from(v: Option<&'a Value>) -> Self {
        Self::OptJson(v)
    }
}

/// What the shared SQL code needs from a database driver; see the module docs.
pub(crate) trait Db: Database {
    fn bind(q: Q<Self>, arg: Arg<'_>) -> Q<Self>;

    fn all<'c>(
        q: Q<Self>,
        conn: &'c mut Self::Connection,
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send + 'c;

    fn optional<'c>(
        q: Q<Self>,
        conn: &'c mut Self::Connection,
    ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send + 'c;

    fn text(row: &Self::Row, col: &str) -> Result<String, sqlx::Error>;
    fn opt_text(row: &Self::Row, col: &str) -> Result<Option<String>, sqlx::Error>;
    fn int(row: &Self::Row, col: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(row: &Self::Row, col: &str) -> Result<Option<i64>, sqlx::Error>;
    fn opt_int32(row: &Self::Row, col: &str) -> Result<Option<i32>, sqlx::Error>;
    fn json(row: &Self::Row, col: &str) -> Result<Value, sqlx::Error>;
    fn opt_json(row: &Self::Row, col: &str) -> Result<Option<Value>, sqlx::Error>;
}

impl<D> Db for D
where
    D: Database,
    D::Arguments: IntoArguments<D>,
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    for<'a> &'a str: Encode<'a, D> + Type<D> + ColumnIndex<D::Row>,
    for<'a> i64: Encode<'a, D> + Decode<'a, D> + Type<D>,
    for<'a> Option<i64>: Decode<'a, D> + Type<D>,
    for<'a> Option<i32>: Encode<'a, D> + Decode<'a, D> + Type<D>,
    for<'a> f64: Encode<'a, D> + Type<D>,
    for<'a> String: Decode<'a, D> + Type<D>,
    for<'a> Option<String>: Decode<'a, D> + Type<D>,
    for<'a> Json<&'a Value>: Encode<'a, D> + Type<D>,
    for<'a> Option<Json<&'a Value>>: Encode<'a, D> + Type<D>,
    for<'a> Json<Posting<'a>>: Encode<'a, D> + Type<D>,
    for<'a> Json<Value>: Decode<'a, D> + Type<D>,
    for<'a> Option<Json<Value>>: Decode<'a, D> + Type<D>,
{
    fn bind(q: Q<Self>, arg: Arg<'_>) -> Q<Self> {
        match arg {
            Arg::Text(v) => q.bind(v),
            Arg::Int(v) => q.bind(v),
            Arg::OptInt32(v) => q.bind(v),
            Arg::Real(v) => q.bind(v),
            Arg::Json(v) => q.bind(Json(v)),
            Arg::OptJson(v) => q.bind(v.map(Json)),
            Arg::Posting { taskdb, document } => q.bind(Json(Posting { taskdb, document })),
        }
    }

    fn all<'c>(
        q: Q<Self>,
        conn: &'c mut Self::Connection,
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send + 'c {
        conn.fetch_all(q)
    }

    fn optional<'c>(
        q: Q<Self>,
        conn: &'c mut Self::Connection,
    ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send + 'c {
        conn.fetch_optional(q)
    }

    fn text(row: &Self::Row, col: &str) -> Result<String, sqlx::Error> {
        row.try_get(col)
    }

    fn opt_text(row: &Self::Row, col: &str) -> Result<Option<String>, sqlx::Error> {
        row.try_get(col)
    }

    fn int(row: &Self::Row, col: &str) -> Result<i64, sqlx::Error> {
        row.try_get(col)
    }

    fn opt_int(row: &Self::Row, col: &str) -> Result<Option<i64>, sqlx::Error> {
        row.try_get(col)
    }

    fn opt_int32(row: &Self::Row, col: &str) -> Result<Option<i32>, sqlx::Error> {
        row.try_get(col)
    }

    fn json(row: &Self::Row, col: &str) -> Result<Value, sqlx::Error> {
        row.try_get::<Json<Value>, _>(col).map(|json| json.0)
    }

    fn opt_json(row: &Self::Row, col: &str) -> Result<Option<Value>, sqlx::Error> {
        row.try_get::<Option<Json<Value>>, _>(col).map(|json| json.map(|json| json.0))
    }
}

/// A statement being built: SQL, then its arguments in placeholder order.
#[must_use]
pub(crate) struct Stmt<D: Db>(Q<D>);

impl<D: Db> Stmt<D> {
    /// A statement of fixed SQL.
    pub(crate) fn new(sql: &'static str) -> Self {
        Self(sqlx::query(sql))
    }

    /// A statement whose SQL was put together at run time. Only from this crate's own
    /// constants and placeholders: every value travels as an argument.
    pub(crate) fn built(sql: String) -> Self {
        Self(sqlx::query(AssertSqlSafe(sql)))
    }

    pub(crate) fn bind<'a>(self, arg: impl Into<Arg<'a>>) -> Self {
        Self(D::bind(self.0, arg.into()))
    }

    pub(crate) async fn all(self, conn: &mut D::Connection) -> Result<Vec<D::Row>, StoreError> {
        Ok(D::all(self.0, conn).await?)
    }

    pub(crate) async fn optional(self, conn: &mut D::Connection) -> Result<Option<D::Row>, StoreError> {
        Ok(D::optional(self.0, conn).await?)
    }

    /// Runs a statement that returns one row.
    pub(crate) async fn one(self, conn: &mut D::Connection) -> Result<D::Row, StoreError> {
        Ok(D::optional(self.0, conn).await?.ok_or(sqlx::Error::RowNotFound)?)
    }

    /// Runs a statement for its effect.
    pub(crate) async fn run(self, conn: &mut D::Connection) -> Result<(), StoreError> {
        D::all(self.0, conn).await?;
        Ok(())
    }
}

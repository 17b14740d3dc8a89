//! [`Dialect`]: where the two backends' SQL really differs. Everything else is written once
//! in the `sql` module, in SQL that both accept.

use std::future::Future;

use xchange_filter::{Filter, SqlCondition};

use crate::error::StoreError;
use crate::records::Durability;
use crate::sql::db::Db;

/// A database the store runs on: implemented for `sqlx::Sqlite` in `sqlite.rs` and for
/// `sqlx::Postgres` in `postgres.rs`.
pub(crate) trait Dialect: Db {
    /// Opens a transaction that will write.
    const BEGIN_WRITE: &'static str;

    /// Appended to a `SELECT` of the rows that a write transaction will change, to lock
    /// them until it commits (empty where the transaction already holds the write lock).
    const FOR_UPDATE: &'static str;

    /// Appended to the `SELECT` of the leases that a batch's fenced writes name, to keep
    /// a takeover from committing until the batch has (empty where the transaction
    /// already holds the write lock).
    const FOR_SHARE: &'static str;

    /// The database's clock in Unix milliseconds, as an SQL expression: the one clock of
    /// the leases.
    const NOW_MS: &'static str;

    /// Run in a write transaction just before it inserts events, if anything is needed so
    /// that event ids become visible in increasing order.
    const OUTBOX_LOCK: Option<&'static str>;

    /// The `n`th bind parameter (from 1) in SQL put together at run time.
    fn param(n: usize) -> String;

    /// The `n`th bind parameter where every parameter appears once, in the order they are
    /// bound (multi-row statements).
    fn ordered_param(n: usize) -> String {
        Self::param(n)
    }

    /// A JSON expression: `document` (a JSON column) with the columns `fields` set over
    /// its top level by name, or only them if the document is not an object. Names are
    /// this crate's constants (plain identifiers).
    fn overlay(document: &str, fields: &[&str]) -> String;

    /// `filter` as a condition on the JSON column `column`, with parameters numbered from
    /// 1; `None` when this backend cannot push the filter down, and the store evaluates it
    /// in memory instead.
    fn condition(filter: &Filter, column: &str) -> Option<SqlCondition>;

    /// What a writing connection reports about durability.
    fn durability(conn: &mut Self::Connection)
    -> impl Future<Output = Result<Durability, StoreError>> + Send;
}

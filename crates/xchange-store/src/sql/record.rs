//! [`Record`]: a row type of one table, and the reads every such table has (get by key,
//! list by key pages, delete), written once for all of them.

use serde_json::Value;

use crate::checks::parse_state;
use crate::error::StoreError;
use crate::job::Job;
use crate::records::{AgentCard, ApiKey, Org, Subscription, TaskDb, Template};
use crate::sql::db::{Arg, Db, Stmt};
use crate::sql::dialect::Dialect;

/// A row type. The names are this crate's constants: they go into SQL text.
pub(crate) trait Record: Sized + Send {
    /// What [`StoreError::NotFound`] calls it.
    const KIND: &'static str;
    const TABLE: &'static str;
    /// The key column (for subscriptions, one of the two).
    const KEY: &'static str;
    /// Every column, in the order [`Record::from_row`] reads them.
    const COLUMNS: &'static str;

    fn from_row<D: Db>(row: &D::Row) -> Result<Self, StoreError>;
}

/// A record that filters search: a JSON document with some columns overlaid.
pub(crate) trait Viewed: Record {
    /// The JSON column.
    const DOCUMENT: &'static str;
    /// The columns overlaid on the document, under their own names.
    const OVERLAID: &'static [&'static str];

    /// The key of this record, for paging.
    fn key(&self) -> &str;

    /// The view that [`Viewed::OVERLAID`] describes, built in memory.
    fn view(&self) -> Value;
}

/// A page of a table: rows with `order_by > after`, only those where `scope.0 = scope.1`
/// and `condition` (a fixed SQL condition, `""` for none) when given.
#[derive(Clone, Copy)]
pub(crate) struct Page<'a> {
    pub(crate) order_by: &'static str,
    pub(crate) scope: Option<(&'static str, &'a str)>,
    pub(crate) condition: &'static str,
    pub(crate) after: Option<&'a str>,
    pub(crate) limit: u32,
}

impl<'a> Page<'a> {
    /// The plain page of a table by its key.
    pub(crate) fn by_key<R: Record>(after: Option<&'a str>, limit: u32) -> Self {
        Self { order_by: R::KEY, scope: None, condition: "", after, limit }
    }

    /// The page's condition and its `ORDER BY ... LIMIT ...` tail, with placeholders
    /// numbered from `first` in the order [`Page::bind`] binds them.
    fn clauses<D: Dialect>(&self, first: usize) -> (String, String) {
        let mut n = first;
        let mut next = || {
            n += 1;
            D::param(n - 1)
        };
        let mut condition = format!("{} > {}", self.order_by, next());
        if let Some((column, _)) = self.scope {
            condition += &format!(" AND {column} = {}", next());
        }
        if !self.condition.is_empty() {
            condition += &format!(" AND {}", self.condition);
        }
        (condition, format!(" ORDER BY {} LIMIT {}", self.order_by, next()))
    }

    fn bind<D: Db>(&self, stmt: Stmt<D>) -> Stmt<D> {
        // Keys are never empty, so "" sorts before every key.
        let stmt = stmt.bind(self.after.unwrap_or(""));
        let stmt = match self.scope {
            Some((_, value)) => stmt.bind(value),
            None => stmt,
        };
        stmt.bind(i64::from(self.limit))
    }
}

/// The record with that key, or [`StoreError::NotFound`].
pub(crate) async fn get<D: Dialect, R: Record>(conn: &mut D::Connection, key: &str) -> Result<R, StoreError> {
    let sql = format!("SELECT {} FROM {} WHERE {} = {}", R::COLUMNS, R::TABLE, R::KEY, D::param(1));
    let row = Stmt::<D>::built(sql).bind(key).optional(conn).await?;
    R::from_row::<D>(&row.ok_or_else(|| StoreError::not_found(R::KIND, key))?)
}

/// A page of records.
pub(crate) async fn list<D: Dialect, R: Record>(
    conn: &mut D::Connection,
    page: &Page<'_>,
) -> Result<Vec<R>, StoreError> {
    let (condition, tail) = page.clauses::<D>(1);
    let sql = format!("SELECT {} FROM {} WHERE {condition}{tail}", R::COLUMNS, R::TABLE);
    let rows = page.bind(Stmt::<D>::built(sql)).all(conn).await?;
    rows.iter().map(R::from_row::<D>).collect()
}

/// A page of the records whose view matches a pushed-down condition (see `find.rs`).
pub(crate) async fn list_matching<D: Dialect, R: Viewed>(
    conn: &mut D::Connection,
    condition: &xchange_filter::SqlCondition,
    page: &Page<'_>,
) -> Result<Vec<R>, StoreError> {
    let view = D::overlay(R::DOCUMENT, R::OVERLAID);
    // The page's condition goes inside, where it can use the key index; the filter
    // applies to the view outside; order and limit come last.
    let (inner, tail) = page.clauses::<D>(condition.params.len() + 1);
    let sql = format!(
        "SELECT {cols} FROM (SELECT {cols}, {view} AS view_doc FROM {table} WHERE {inner}) AS t \
         WHERE {cond}{tail}",
        cols = R::COLUMNS,
        table = R::TABLE,
        cond = condition.sql,
    );
    let mut stmt = Stmt::<D>::built(sql);
    for param in &condition.params {
        stmt = match param {
            xchange_filter::SqlParam::Integer(v) => stmt.bind(*v),
            xchange_filter::SqlParam::Real(v) => stmt.bind(Arg::Real(*v)),
            xchange_filter::SqlParam::Text(v) => stmt.bind(v),
        };
    }
    let rows = page.bind(stmt).all(conn).await?;
    rows.iter().map(R::from_row::<D>).collect()
}

/// Deletes the record with that key, or fails with [`StoreError::NotFound`].
pub(crate) async fn delete<D: Dialect, R: Record>(
    conn: &mut D::Connection,
    key: &str,
) -> Result<(), StoreError> {
    let sql = format!("DELETE FROM {} WHERE {k} = {} RETURNING {k}", R::TABLE, D::param(1), k = R::KEY);
    match Stmt::<D>::built(sql).bind(key).optional(conn).await? {
        Some(_) => Ok(()),
        None => Err(StoreError::not_found(R::KIND, key)),
    }
}

impl Record for Job {
    const KIND: &'static str = "job";
    const TABLE: &'static str = "jobs";
    const KEY: &'static str = "job_id";
    const COLUMNS: &'static str = "job_id, taskdb, state, document, body_hash, result, reason_code, created_ms, updated_ms, version, \
         partition_no";

    fn from_row<D: Db>(row: &D::Row) -> Result<Self, StoreError> {
        Ok(Self {
            job_id: D::text(row, "job_id")?,
            taskdb: D::text(row, "taskdb")?,
            state: parse_state(&D::text(row, "state")?)?,
            document: D::json(row, "document")?,
            body_hash: D::text(row, "body_hash")?,
            result: D::opt_json(row, "result")?,
            reason_code: D::opt_int32(row, "reason_code")?,
            created_ms: D::int(row, "created_ms")?,
            updated_ms: D::int(row, "updated_ms")?,
            version: D::int(row, "version")?,
            partition: D::opt_int32(row, "partition_no")?.unwrap_or(0),
        })
    }
}

impl Viewed for Job {
    const DOCUMENT: &'static str = "document";
    const OVERLAID: &'static [&'static str] = &["job_id", "taskdb", "state", "created_ms", "updated_ms"];

    fn key(&self) -> &str {
        &self.job_id
    }

    fn view(&self) -> Value {
        self.filter_view()
    }
}

impl Record for TaskDb {
    const KIND: &'static str = "taskdb";
    const TABLE: &'static str = "taskdbs";
    const KEY: &'static str = "task_listing_db_id";
    const COLUMNS: &'static str = "task_listing_db_id, document, created_ms, updated_ms, version";

    fn from_row<D: Db>(row: &D::Row) -> Result<Self, StoreError> {
        Ok(Self {
            task_listing_db_id: D::text(row, "task_listing_db_id")?,
            document: D::json(row, "document")?,
            created_ms: D::int(row, "created_ms")?,
            updated_ms: D::int(row, "updated_ms")?,
            version: D::int(row, "version")?,
        })
    }
}

impl Viewed for TaskDb {
    const DOCUMENT: &'static str = "document";
    const OVERLAID: &'static [&'static str] = &["task_listing_db_id", "created_ms", "updated_ms", "version"];

    fn key(&self) -> &str {
        &self.task_listing_db_id
    }

    fn view(&self) -> Value {
        self.filter_view()
    }
}

impl Record for Org {
    const KIND: &'static str = "org";
    const TABLE: &'static str = "orgs";
    const KEY: &'static str = "org_id";
    const COLUMNS: &'static str = "org_id, document, created_ms, updated_ms, version";

    fn from_row<D: Db>(row: &D::Row) -> Result<Self, StoreError> {
        Ok(Self {
            org_id: D::text(row, "org_id")?,
            document: D::json(row, "document")?,
            created_ms: D::int(row, "created_ms")?,
            updated_ms: D::int(row, "updated_ms")?,
            version: D::int(row, "version")?,
        })
    }
}

impl Record for ApiKey {
    const KIND: &'static str = "api key";
    const TABLE: &'static str = "api_keys";
    const KEY: &'static str = "key_id";
    const COLUMNS: &'static str = "key_id, org_id, scopes, secret_hash, label, created_ms, revoked_ms";

    fn from_row<D: Db>(row: &D::Row) -> Result<Self, StoreError> {
        Ok(Self {
            key_id: D::text(row, "key_id")?,
            org_id: D::text(row, "org_id")?,
            scopes: D::text(row, "scopes")?.split_whitespace().map(str::to_owned).collect(),
            secret_hash: D::text(row, "secret_hash")?,
            label: D::text(row, "label")?,
            created_ms: D::int(row, "created_ms")?,
            revoked_ms: D::opt_int(row, "revoked_ms")?,
        })
    }
}

impl Record for AgentCard {
    const KIND: &'static str = "agent card";
    const TABLE: &'static str = "agent_cards";
    const KEY: &'static str = "agent_id";
    const COLUMNS: &'static str = "agent_id, card, updated_ms";

    fn from_row<D: Db>(row: &D::Row) -> Result<Self, StoreError> {
        Ok(Self {
            agent_id: D::text(row, "agent_id")?,
            card: D::json(row, "card")?,
            updated_ms: D::int(row, "updated_ms")?,
        })
    }
}

impl Viewed for AgentCard {
    const DOCUMENT: &'static str = "card";
    const OVERLAID: &'static [&'static str] = &["agent_id", "updated_ms"];

    fn key(&self) -> &str {
        &self.agent_id
    }

    fn view(&self) -> Value {
        self.filter_view()
    }
}

impl Record for Template {
    const KIND: &'static str = "template";
    const TABLE: &'static str = "templates";
    const KEY: &'static str = "name";
    const COLUMNS: &'static str = "name, schema, created_ms";

    fn from_row<D: Db>(row: &D::Row) -> Result<Self, StoreError> {
        Ok(Self {
            name: D::text(row, "name")?,
            schema: D::json(row, "schema")?,
            created_ms: D::int(row, "created_ms")?,
        })
    }
}

impl Record for Subscription {
    const KIND: &'static str = "subscription";
    const TABLE: &'static str = "subscriptions";
    const KEY: &'static str = "subject_id";
    const COLUMNS: &'static str = "taskdb, subject_id, created_ms";

    fn from_row<D: Db>(row: &D::Row) -> Result<Self, StoreError> {
        Ok(Self {
            taskdb: D::text(row, "taskdb")?,
            subject_id: D::text(row, "subject_id")?,
            created_ms: D::int(row, "created_ms")?,
        })
    }
}

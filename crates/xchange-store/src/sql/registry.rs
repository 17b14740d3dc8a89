//! The registry's writes: versioned documents (task databases, organisations), agent
//! cards, templates, subscriptions. Each is one statement in its own transaction, not
//! group-committed: they are rare next to job writes.

use serde_json::Value;

use crate::checks::{check_json, check_key};
use crate::error::StoreError;
use crate::records::{AgentCard, ApiKey, Org, TaskDb, Template};
use crate::sql::db::Stmt;
use crate::sql::dialect::Dialect;
use crate::sql::record::Record;

/// A record with a JSON `document` column and a version that every put increments.
pub(crate) trait Versioned: Record {
    fn new(key: &str, document: Value, created_ms: i64, updated_ms: i64, version: i64) -> Self;
}

impl Versioned for TaskDb {
    fn new(key: &str, document: Value, created_ms: i64, updated_ms: i64, version: i64) -> Self {
        Self { task_listing_db_id: key.to_owned(), document, created_ms, updated_ms, version }
    }
}

impl Versioned for Org {
    fn new(key: &str, document: Value, created_ms: i64, updated_ms: i64, version: i64) -> Self {
        Self { org_id: key.to_owned(), document, created_ms, updated_ms, version }
    }
}

/// Creates or replaces a versioned record; see [`Store::put_taskdb`](crate::Store::put_taskdb).
pub(crate) async fn put_versioned<D: Dialect, R: Versioned>(
    conn: &mut D::Connection,
    key: &str,
    document: Value,
    expected_version: Option<i64>,
    now_ms: i64,
) -> Result<R, StoreError> {
    check_key(R::KEY, key)?;
    check_json("document", &document)?;
    let (table, k) = (R::TABLE, R::KEY);
    let insert = format!(
        "INSERT INTO {table} ({k}, document, created_ms, updated_ms, version) VALUES ({}, {}, {}, {}, 1)",
        D::param(1),
        D::param(2),
        D::param(3),
        D::param(3)
    );
    let sql = match expected_version {
        None => format!(
            "{insert} ON CONFLICT ({k}) DO UPDATE SET document = excluded.document, \
             updated_ms = excluded.updated_ms, version = {table}.version + 1 RETURNING created_ms, version"
        ),
        Some(0) => format!("{insert} ON CONFLICT ({k}) DO NOTHING RETURNING created_ms, version"),
        Some(_) => format!(
            "UPDATE {table} SET document = {}, updated_ms = {}, version = version + 1 \
             WHERE {k} = {} AND version = {} RETURNING created_ms, version",
            D::param(1),
            D::param(2),
            D::param(3),
            D::param(4)
        ),
    };
    let stmt = match expected_version {
        Some(expected) if expected != 0 => {
            Stmt::<D>::built(sql).bind(&document).bind(now_ms).bind(key).bind(expected)
        }
        _ => Stmt::<D>::built(sql).bind(key).bind(&document).bind(now_ms),
    };
    let Some(row) = stmt.optional(conn).await? else {
        let version = format!("SELECT version FROM {table} WHERE {k} = {}", D::param(1));
        let actual = Stmt::<D>::built(version).bind(key).optional(conn).await?;
        return Err(StoreError::StaleVersion {
            kind: R::KIND,
            id: key.to_owned(),
            expected: expected_version.unwrap_or(0),
            actual: actual.map(|row| D::int(&row, "version")).transpose()?.unwrap_or(0),
        });
    };
    Ok(R::new(key, document, D::int(&row, "created_ms")?, now_ms, D::int(&row, "version")?))
}

/// Creates or replaces a template (a replacement keeps `created_ms`).
pub(crate) async fn put_template<D: Dialect>(
    conn: &mut D::Connection,
    name: &str,
    schema: Value,
    now_ms: i64,
) -> Result<Template, StoreError> {
    check_key("template name", name)?;
    check_json("schema", &schema)?;
    let row = Stmt::<D>::new(
        "INSERT INTO templates (name, schema, created_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET schema = excluded.schema RETURNING created_ms",
    )
    .bind(name)
    .bind(&schema)
    .bind(now_ms)
    .one(conn)
    .await?;
    Ok(Template { name: name.to_owned(), schema, created_ms: D::int(&row, "created_ms")? })
}

/// Creates or replaces an agent card.
pub(crate) async fn put_agent_card<D: Dialect>(
    conn: &mut D::Connection,
    agent_id: &str,
    card: Value,
    now_ms: i64,
) -> Result<AgentCard, StoreError> {
    check_key("agent_id", agent_id)?;
    check_json("card", &card)?;
    Stmt::<D>::new(
        "INSERT INTO agent_cards (agent_id, card, updated_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (agent_id) DO UPDATE SET card = excluded.card, updated_ms = excluded.updated_ms",
    )
    .bind(agent_id)
    .bind(&card)
    .bind(now_ms)
    .run(conn)
    .await?;
    Ok(AgentCard { agent_id: agent_id.to_owned(), card, updated_ms: now_ms })
}

/// Subscribes; whether the subscription is new.
pub(crate) async fn subscribe<D: Dialect>(
    conn: &mut D::Connection,
    taskdb: &str,
    subject_id: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    check_key("taskdb", taskdb)?;
    check_key("subject_id", subject_id)?;
    let row = Stmt::<D>::new(
        "INSERT INTO subscriptions (taskdb, subject_id, created_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (taskdb, subject_id) DO NOTHING RETURNING created_ms",
    )
    .bind(taskdb)
    .bind(subject_id)
    .bind(now_ms)
    .optional(conn)
    .await?;
    Ok(row.is_some())
}

/// Unsubscribes; whether there was a subscription.
pub(crate) async fn unsubscribe<D: Dialect>(
    conn: &mut D::Connection,
    taskdb: &str,
    subject_id: &str,
) -> Result<bool, StoreError> {
    let row = Stmt::<D>::new(
        "DELETE FROM subscriptions WHERE taskdb = $1 AND subject_id = $2 RETURNING created_ms",
    )
    .bind(taskdb)
    .bind(subject_id)
    .optional(conn)
    .await?;
    Ok(row.is_some())
}

/// Creates an API key; one with the same id is refused (ids are random: a clash is a bug).
pub(crate) async fn create_api_key<D: Dialect>(
    conn: &mut D::Connection,
    key: &ApiKey,
) -> Result<(), StoreError> {
    check_key("key_id", &key.key_id)?;
    check_key("org_id", &key.org_id)?;
    for scope in &key.scopes {
        if scope.is_empty() || scope.contains(char::is_whitespace) || scope.contains('\0') {
            return Err(StoreError::InvalidInput(format!("scope {scope:?} must be one word")));
        }
    }
    if key.secret_hash.len() != 64 || !key.secret_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StoreError::InvalidInput("secret_hash must be 64 hex digits".to_owned()));
    }
    if key.label.contains('\0') {
        return Err(StoreError::InvalidInput("label must not contain a NUL character".to_owned()));
    }
    let created = Stmt::<D>::new(
        "INSERT INTO api_keys (key_id, org_id, scopes, secret_hash, label, created_ms, revoked_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, NULL) ON CONFLICT (key_id) DO NOTHING RETURNING key_id",
    )
    .bind(&key.key_id)
    .bind(&key.org_id)
    .bind(key.scopes.join(" ").as_str())
    .bind(&key.secret_hash)
    .bind(&key.label)
    .bind(key.created_ms)
    .optional(conn)
    .await?;
    match created {
        Some(_) => Ok(()),
        None => Err(StoreError::InvalidInput(format!("api key {:?} already exists", key.key_id))),
    }
}

/// Revokes a key (a revoked key stays revoked at its first revocation time).
pub(crate) async fn revoke_api_key<D: Dialect>(
    conn: &mut D::Connection,
    key_id: &str,
    now_ms: i64,
) -> Result<ApiKey, StoreError> {
    Stmt::<D>::new("UPDATE api_keys SET revoked_ms = $2 WHERE key_id = $1 AND revoked_ms IS NULL")
        .bind(key_id)
        .bind(now_ms)
        .run(conn)
        .await?;
    crate::sql::record::get::<D, ApiKey>(conn, key_id).await
}

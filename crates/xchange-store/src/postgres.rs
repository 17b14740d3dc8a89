//! The backend for several replicas: PostgreSQL, JSONB documents.
//!
//! One pool; every connection starts with `synchronous_commit=on` as a startup option, so
//! a commit returns only once its WAL is flushed, whatever the server, database or role
//! default says. Other startup options in the URL (`?options=-c search_path=myschema`)
//! are kept: that is how several stores share one database, each in its own schema.
//! Transactions run at READ COMMITTED; a job change locks the job's row (`FOR UPDATE`)
//! before checking its version, and outbox inserts take an advisory lock (see
//! [`insert_event`]).

use std::str::FromStr;

use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::types::Json;

use crate::error::{StoreError, redact_url};
use crate::migrations;
use crate::store::{
    Durability, Event, JOB_POSTING, Job, JobState, NewJob, Store, Submitted, TaskDb, Template, Transition,
    check_json, check_key, check_new_job, check_transition, check_transition_input, parse_state,
    posting_payload, replay_or_conflict, sql_limit,
};

/// Connections in the pool when the caller does not choose.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 8;

/// The first key of the outbox advisory lock ("XCEV"); the second is a hash of the schema
/// name, so stores in different schemas of one database do not wait for each other.
const OUTBOX_LOCK: i32 = 0x5843_4556;

/// The PostgreSQL store. Cloning is cheap and shares the pool.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

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
    pub async fn connect_with(options: PgConnectOptions, max_connections: u32) -> Result<Self, StoreError> {
        let options = options.options([("synchronous_commit", "on")]);
        let pool = PgPoolOptions::new().max_connections(max_connections).connect_with(options).await?;
        // The migrator serializes concurrent starts with an advisory lock of its own.
        migrations::migrator(migrations::POSTGRES).run(&pool).await?;
        Ok(Self { pool })
    }
}

fn job_from_row(row: &PgRow) -> Result<Job, StoreError> {
    Ok(Job {
        job_id: row.try_get("job_id")?,
        taskdb: row.try_get("taskdb")?,
        state: parse_state(row.try_get("state")?)?,
        document: row.try_get::<Json<Value>, _>("document")?.0,
        body_hash: row.try_get("body_hash")?,
        result: row.try_get::<Option<Json<Value>>, _>("result")?.map(|json| json.0),
        reason_code: row.try_get("reason_code")?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
        version: row.try_get("version")?,
    })
}

fn event_from_row(row: &PgRow) -> Result<Event, StoreError> {
    Ok(Event {
        id: row.try_get("id")?,
        job_id: row.try_get("job_id")?,
        kind: row.try_get("kind")?,
        payload: row.try_get::<Json<Value>, _>("payload")?.0,
        at_ms: row.try_get("at_ms")?,
    })
}

fn taskdb_from_row(row: &PgRow) -> Result<TaskDb, StoreError> {
    Ok(TaskDb {
        task_listing_db_id: row.try_get("task_listing_db_id")?,
        document: row.try_get::<Json<Value>, _>("document")?.0,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
        version: row.try_get("version")?,
    })
}

fn template_from_row(row: &PgRow) -> Result<Template, StoreError> {
    Ok(Template {
        name: row.try_get("name")?,
        schema: row.try_get::<Json<Value>, _>("schema")?.0,
        created_ms: row.try_get("created_ms")?,
    })
}

/// Inserts an outbox event inside the caller's transaction, after taking the outbox lock.
///
/// A BIGSERIAL id is taken at insert time but becomes visible at commit, so without the
/// lock a transaction could commit id 7 while id 6 is still in flight, and a reader that
/// saw 7 would resume after it and never see 6. The transaction-scoped advisory lock
/// (one per schema) is taken before the insert and held to the commit, so ids are taken
/// and committed in the same order. It is the last lock a writer takes, so it cannot deadlock; its cost
/// is that commits that write events are serialized (group commit will amortize it).
async fn insert_event(
    tx: &mut sqlx::PgConnection,
    job_id: &str,
    kind: &str,
    payload: &Value,
    at_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(COALESCE(current_schema(), '')))")
        .bind(OUTBOX_LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO events (job_id, kind, payload, at_ms) VALUES ($1, $2, $3, $4)")
        .bind(job_id)
        .bind(kind)
        .bind(Json(payload))
        .bind(at_ms)
        .execute(tx)
        .await?;
    Ok(())
}

impl PostgresStore {
    /// The current version of a registry entry, 0 if absent: the `actual` of a
    /// [`StoreError::StaleVersion`].
    async fn taskdb_version(&self, id: &str) -> Result<i64, StoreError> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT version FROM taskdbs WHERE task_listing_db_id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(version.unwrap_or(0))
    }
}

impl Store for PostgresStore {
    async fn submit_job(&self, job: NewJob) -> Result<Submitted, StoreError> {
        check_new_job(&job)?;
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO jobs (job_id, taskdb, state, document, body_hash, created_ms, \
             updated_ms, version) VALUES ($1, $2, $3, $4, $5, $6, $6, 1) \
             ON CONFLICT (job_id) DO NOTHING",
        )
        .bind(&job.job_id)
        .bind(&job.taskdb)
        .bind(JobState::Submitted.as_str())
        .bind(Json(&job.document))
        .bind(&job.body_hash)
        .bind(job.now_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            let row = sqlx::query(concat!("SELECT ", job_columns!(), " FROM jobs WHERE job_id = $1"))
                .bind(&job.job_id)
                .fetch_one(&mut *tx)
                .await?;
            // ON CONFLICT waited for a concurrent insert of the same id to commit, so the
            // row is there. Dropping the transaction rolls it back: nothing was written.
            return replay_or_conflict(&job, job_from_row(&row)?);
        }
        insert_event(&mut tx, &job.job_id, JOB_POSTING, &posting_payload(&job), job.now_ms).await?;
        tx.commit().await?;
        Ok(Submitted::Created(Job {
            job_id: job.job_id,
            taskdb: job.taskdb,
            state: JobState::Submitted,
            document: job.document,
            body_hash: job.body_hash,
            result: None,
            reason_code: None,
            created_ms: job.now_ms,
            updated_ms: job.now_ms,
            version: 1,
        }))
    }

    async fn get_job(&self, job_id: &str) -> Result<Job, StoreError> {
        let row = sqlx::query(concat!("SELECT ", job_columns!(), " FROM jobs WHERE job_id = $1"))
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::not_found("job", job_id))?;
        job_from_row(&row)
    }

    async fn list_jobs(
        &self,
        taskdb: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        // Keys are never empty, so "" sorts before every key.
        let after = after.unwrap_or("");
        let rows = match taskdb {
            Some(taskdb) => {
                sqlx::query(concat!(
                    "SELECT ",
                    job_columns!(),
                    " FROM jobs WHERE taskdb = $1 AND job_id > $2 \
                     ORDER BY job_id LIMIT $3"
                ))
                .bind(taskdb)
                .bind(after)
                .bind(sql_limit(limit))
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(concat!(
                    "SELECT ",
                    job_columns!(),
                    " FROM jobs WHERE job_id > $1 ORDER BY job_id LIMIT $2"
                ))
                .bind(after)
                .bind(sql_limit(limit))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(job_from_row).collect()
    }

    async fn transition(&self, t: Transition) -> Result<Job, StoreError> {
        check_transition_input(&t)?;
        let mut tx = self.pool.begin().await?;
        // FOR UPDATE: a concurrent transition of the same job waits here, then sees the
        // new version and fails with StaleVersion.
        let row = sqlx::query(concat!("SELECT ", job_columns!(), " FROM jobs WHERE job_id = $1 FOR UPDATE"))
            .bind(&t.job_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::not_found("job", &t.job_id))?;
        let mut job = job_from_row(&row)?;
        check_transition(&t, job.state, job.version)?;
        sqlx::query(
            "UPDATE jobs SET state = $2, result = $3, reason_code = $4, updated_ms = $5, \
             version = version + 1 WHERE job_id = $1",
        )
        .bind(&t.job_id)
        .bind(t.state.as_str())
        .bind(t.result.as_ref().map(Json))
        .bind(t.reason_code)
        .bind(t.now_ms)
        .execute(&mut *tx)
        .await?;
        insert_event(&mut tx, &t.job_id, &t.event.kind, &t.event.payload, t.now_ms).await?;
        tx.commit().await?;
        job.state = t.state;
        job.result = t.result;
        job.reason_code = t.reason_code;
        job.updated_ms = t.now_ms;
        job.version += 1;
        Ok(job)
    }

    async fn events_after(&self, after: i64, limit: u32) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, job_id, kind, payload, at_ms FROM events WHERE id > $1 \
             ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(sql_limit(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn last_event_id(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events").fetch_one(&self.pool).await?)
    }

    async fn put_taskdb(
        &self,
        task_listing_db_id: &str,
        document: Value,
        expected_version: Option<i64>,
        now_ms: i64,
    ) -> Result<TaskDb, StoreError> {
        check_key("task_listing_db_id", task_listing_db_id)?;
        check_json("document", &document)?;
        let stale = |actual| StoreError::StaleVersion {
            kind: "taskdb",
            id: task_listing_db_id.to_owned(),
            expected: expected_version.unwrap_or(0),
            actual,
        };
        let written: Option<(i64, i64)> = match expected_version {
            None => Some(
                sqlx::query_as(
                    "INSERT INTO taskdbs (task_listing_db_id, document, created_ms, updated_ms, \
                     version) VALUES ($1, $2, $3, $3, 1) \
                     ON CONFLICT (task_listing_db_id) DO UPDATE SET \
                     document = excluded.document, updated_ms = excluded.updated_ms, \
                     version = taskdbs.version + 1 \
                     RETURNING created_ms, version",
                )
                .bind(task_listing_db_id)
                .bind(Json(&document))
                .bind(now_ms)
                .fetch_one(&self.pool)
                .await?,
            ),
            Some(0) => {
                sqlx::query_as(
                    "INSERT INTO taskdbs (task_listing_db_id, document, created_ms, updated_ms, \
                     version) VALUES ($1, $2, $3, $3, 1) \
                     ON CONFLICT (task_listing_db_id) DO NOTHING RETURNING created_ms, version",
                )
                .bind(task_listing_db_id)
                .bind(Json(&document))
                .bind(now_ms)
                .fetch_optional(&self.pool)
                .await?
            }
            Some(expected) => {
                sqlx::query_as(
                    "UPDATE taskdbs SET document = $2, updated_ms = $3, version = version + 1 \
                     WHERE task_listing_db_id = $1 AND version = $4 \
                     RETURNING created_ms, version",
                )
                .bind(task_listing_db_id)
                .bind(Json(&document))
                .bind(now_ms)
                .bind(expected)
                .fetch_optional(&self.pool)
                .await?
            }
        };
        let Some((created_ms, version)) = written else {
            return Err(stale(self.taskdb_version(task_listing_db_id).await?));
        };
        Ok(TaskDb {
            task_listing_db_id: task_listing_db_id.to_owned(),
            document,
            created_ms,
            updated_ms: now_ms,
            version,
        })
    }

    async fn get_taskdb(&self, task_listing_db_id: &str) -> Result<TaskDb, StoreError> {
        let row = sqlx::query(
            "SELECT task_listing_db_id, document, created_ms, updated_ms, version \
             FROM taskdbs WHERE task_listing_db_id = $1",
        )
        .bind(task_listing_db_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::not_found("taskdb", task_listing_db_id))?;
        taskdb_from_row(&row)
    }

    async fn delete_taskdb(&self, task_listing_db_id: &str) -> Result<(), StoreError> {
        let deleted = sqlx::query("DELETE FROM taskdbs WHERE task_listing_db_id = $1")
            .bind(task_listing_db_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(StoreError::not_found("taskdb", task_listing_db_id));
        }
        Ok(())
    }

    async fn list_taskdbs(&self, after: Option<&str>, limit: u32) -> Result<Vec<TaskDb>, StoreError> {
        let rows = sqlx::query(
            "SELECT task_listing_db_id, document, created_ms, updated_ms, version \
             FROM taskdbs WHERE task_listing_db_id > $1 ORDER BY task_listing_db_id LIMIT $2",
        )
        .bind(after.unwrap_or(""))
        .bind(sql_limit(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(taskdb_from_row).collect()
    }

    async fn put_template(&self, name: &str, schema: Value, now_ms: i64) -> Result<Template, StoreError> {
        check_key("template name", name)?;
        check_json("schema", &schema)?;
        let created_ms: i64 = sqlx::query_scalar(
            "INSERT INTO templates (name, schema, created_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET schema = excluded.schema RETURNING created_ms",
        )
        .bind(name)
        .bind(Json(&schema))
        .bind(now_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(Template { name: name.to_owned(), schema, created_ms })
    }

    async fn get_template(&self, name: &str) -> Result<Template, StoreError> {
        let row = sqlx::query("SELECT name, schema, created_ms FROM templates WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::not_found("template", name))?;
        template_from_row(&row)
    }

    async fn list_templates(&self, after: Option<&str>, limit: u32) -> Result<Vec<Template>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, schema, created_ms FROM templates WHERE name > $1 \
             ORDER BY name LIMIT $2",
        )
        .bind(after.unwrap_or(""))
        .bind(sql_limit(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(template_from_row).collect()
    }

    async fn durability_settings(&self) -> Result<Durability, StoreError> {
        // One connection for both, so they describe the same session.
        let mut conn = self.pool.acquire().await?;
        let synchronous_commit: String =
            sqlx::query_scalar("SHOW synchronous_commit").fetch_one(&mut *conn).await?;
        let fsync: String = sqlx::query_scalar("SHOW fsync").fetch_one(&mut *conn).await?;
        Ok(Durability::Postgres { synchronous_commit, fsync })
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

//! The embedded backend: one SQLite file in WAL mode.
//!
//! Two pools on the same file: a writer with a single connection and readers. One writer
//! because SQLite allows one write transaction at a time anyway; queueing writers on the
//! pool instead of on the file lock avoids `SQLITE_BUSY` within the process and keeps
//! event ids committed in order. Writes still open with `BEGIN IMMEDIATE`, so that another
//! process on the same file waits (`busy_timeout`) for the write lock at the start of a
//! transaction rather than failing when a read lock would have to be upgraded. Readers
//! run concurrently with the writer, which WAL allows, and are `query_only`.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::types::Json;

use crate::error::{StoreError, redact_url};
use crate::migrations;
use crate::store::{
    Durability, Event, JOB_POSTING, Job, JobState, NewJob, Store, Submitted, TaskDb, Template, Transition,
    check_json, check_key, check_new_job, check_transition, check_transition_input, parse_state,
    posting_payload, replay_or_conflict, sql_limit,
};

/// How long a connection waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections for concurrent reads. Small: the machine this runs on has few cores and
/// each SQLite connection has its own worker thread.
const READERS: u32 = 4;

/// The SQLite store. Cloning is cheap and shares the connections.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

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
        let base = options.foreign_keys(true).busy_timeout(BUSY_TIMEOUT);
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
        Ok(Self { writer, reader })
    }
}

fn job_from_row(row: &SqliteRow) -> Result<Job, StoreError> {
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

fn event_from_row(row: &SqliteRow) -> Result<Event, StoreError> {
    Ok(Event {
        id: row.try_get("id")?,
        job_id: row.try_get("job_id")?,
        kind: row.try_get("kind")?,
        payload: row.try_get::<Json<Value>, _>("payload")?.0,
        at_ms: row.try_get("at_ms")?,
    })
}

fn taskdb_from_row(row: &SqliteRow) -> Result<TaskDb, StoreError> {
    Ok(TaskDb {
        task_listing_db_id: row.try_get("task_listing_db_id")?,
        document: row.try_get::<Json<Value>, _>("document")?.0,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
        version: row.try_get("version")?,
    })
}

fn template_from_row(row: &SqliteRow) -> Result<Template, StoreError> {
    Ok(Template {
        name: row.try_get("name")?,
        schema: row.try_get::<Json<Value>, _>("schema")?.0,
        created_ms: row.try_get("created_ms")?,
    })
}

/// Inserts an outbox event inside the caller's transaction.
async fn insert_event(
    tx: &mut sqlx::SqliteConnection,
    job_id: &str,
    kind: &str,
    payload: &Value,
    at_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO events (job_id, kind, payload, at_ms) VALUES ($1, $2, $3, $4)")
        .bind(job_id)
        .bind(kind)
        .bind(Json(payload))
        .bind(at_ms)
        .execute(tx)
        .await?;
    Ok(())
}

impl SqliteStore {
    /// The current version of a registry entry, 0 if absent: the `actual` of a
    /// [`StoreError::StaleVersion`].
    async fn taskdb_version(&self, id: &str) -> Result<i64, StoreError> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT version FROM taskdbs WHERE task_listing_db_id = $1")
                .bind(id)
                .fetch_optional(&self.writer)
                .await?;
        Ok(version.unwrap_or(0))
    }
}

impl Store for SqliteStore {
    async fn submit_job(&self, job: NewJob) -> Result<Submitted, StoreError> {
        check_new_job(&job)?;
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
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
            // Dropping the transaction rolls it back: nothing was written.
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
            .fetch_optional(&self.reader)
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
                .fetch_all(&self.reader)
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
                .fetch_all(&self.reader)
                .await?
            }
        };
        rows.iter().map(job_from_row).collect()
    }

    async fn transition(&self, t: Transition) -> Result<Job, StoreError> {
        check_transition_input(&t)?;
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query(concat!("SELECT ", job_columns!(), " FROM jobs WHERE job_id = $1"))
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
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn last_event_id(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events").fetch_one(&self.reader).await?)
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
                .fetch_one(&self.writer)
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
                .fetch_optional(&self.writer)
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
                .fetch_optional(&self.writer)
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
        .fetch_optional(&self.reader)
        .await?
        .ok_or_else(|| StoreError::not_found("taskdb", task_listing_db_id))?;
        taskdb_from_row(&row)
    }

    async fn delete_taskdb(&self, task_listing_db_id: &str) -> Result<(), StoreError> {
        let deleted = sqlx::query("DELETE FROM taskdbs WHERE task_listing_db_id = $1")
            .bind(task_listing_db_id)
            .execute(&self.writer)
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
        .fetch_all(&self.reader)
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
        .fetch_one(&self.writer)
        .await?;
        Ok(Template { name: name.to_owned(), schema, created_ms })
    }

    async fn get_template(&self, name: &str) -> Result<Template, StoreError> {
        let row = sqlx::query("SELECT name, schema, created_ms FROM templates WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.reader)
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
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(template_from_row).collect()
    }

    async fn durability_settings(&self) -> Result<Durability, StoreError> {
        // Read on the writer: synchronous and busy_timeout are per connection, and the
        // writer is the connection whose commits must be durable.
        let mut conn = self.writer.acquire().await?;
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
        Ok(Durability::Sqlite { journal_mode, synchronous, foreign_keys: foreign_keys != 0, busy_timeout_ms })
    }

    async fn close(&self) {
        self.reader.close().await;
        // The writer last: the last connection to close checkpoints the WAL into the file.
        self.writer.close().await;
    }
}
